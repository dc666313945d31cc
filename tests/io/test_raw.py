"""Camera raw backend, tested on minimal CFA DNG files written here with tifffile."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from skystack.errors import ImageReadError, UnsupportedFormatError
from skystack.io import read_header, read_image
from skystack.io import raw as raw_backend

pytest.importorskip("rawpy")
tifffile = pytest.importorskip("tifffile")

#: CFAPattern tag values (0 = R, 1 = G, 2 = B) of each 2x2 Bayer tile.
PATTERNS = {"RGGB": (0, 1, 1, 2), "GRBG": (1, 0, 2, 1), "BGGR": (2, 1, 1, 0), "GBRG": (1, 2, 0, 1)}


def write_dng(
    path: Path,
    mosaic: np.ndarray,
    *,
    pattern: str = "RGGB",
    black: int = 512,
    white: int = 16383,
    exposure: tuple[int, int] = (300, 1),
    iso: int = 1600,
    make: str = "Canon",
    model: str = "Canon EOS 6D",
    date: str = "2025:03:26 21:22:32",
    extra: list[tuple] | None = None,
) -> Path:
    """A minimal uncompressed CFA DNG that LibRaw reads."""
    tags = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, "s", 0, model, True),  # UniqueCameraModel
        (271, "s", 0, make, True),
        (272, "s", 0, model, True),
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, PATTERNS[pattern], True),  # CFAPattern
        (50710, "B", 3, (0, 1, 2), True),  # CFAPlaneColor
        (50711, "H", 1, 1, True),  # CFALayout
        (50714, "H", 1, black, True),  # BlackLevel
        (50717, "H", 1, white, True),  # WhiteLevel
        (33434, "2I", 1, exposure, True),  # ExposureTime
        (34855, "H", 1, iso, True),  # ISOSpeedRatings
        (306, "s", 0, date, True),  # DateTime
        (36867, "s", 0, date, True),  # DateTimeOriginal
        (50721, "2i", 9, (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1), True),
        *(extra or []),
    ]
    tifffile.imwrite(path, mosaic, photometric=32803, extratags=tags)
    return path


@pytest.fixture
def mosaic() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(512, 16384, size=(48, 64), dtype=np.uint16)


def test_dng_mosaic_levels_and_keywords(tmp_path: Path, mosaic: np.ndarray) -> None:
    path = write_dng(tmp_path / "IMG_0001.dng", mosaic)
    img = read_image(path)
    assert img.format == "raw" and img.data.shape == (48, 64) and img.data.dtype == np.float32
    # Not demosaiced, black not subtracted: ADU / white level, bit for bit.
    np.testing.assert_array_equal(img.data, mosaic.astype(np.float32) / np.float32(16383))
    assert img.sample_format == "uint16" and img.data_range == (0.0, 16383.0)
    assert img.bayer_pattern == "RGGB" and img.row_order == "TOP-DOWN"
    assert img.properties["Raw:BlackLevels"] == [512.0] * 4
    assert img.properties["Raw:WhiteLevel"] == 16383.0
    assert img.get("EXPTIME") == 300.0
    assert img.get("ISO") == 1600 and img.get("GAIN") == 1600
    assert img.get("INSTRUME") == "Canon EOS 6D"  # the make is not repeated
    assert img.get("DATE-OBS") == "2025-03-26T21:22:32"
    assert img.get("BAYERPAT") == "RGGB"
    assert img.get("BLKLEVEL") == 512.0 and img.get("WHITELVL") == 16383.0


def test_header_matches_read_without_decoding(
    tmp_path: Path, mosaic: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_dng(tmp_path / "a.dng", mosaic, pattern="GBRG", exposure=(1, 250), iso=800)
    unpacked: list[str] = []
    import rawpy

    original = rawpy.RawPy.unpack

    class Spy(rawpy.RawPy):  # type: ignore[misc]
        def unpack(self) -> None:
            unpacked.append("unpack")
            original(self)

    monkeypatch.setattr(rawpy, "RawPy", Spy)
    header = read_header(path)
    assert unpacked == [], "read_header decoded the pixels of a DNG"
    assert header.shape == (48, 64) and header.bayer_pattern == "GBRG"
    assert header.get("EXPTIME") == pytest.approx(0.004) and header.get("ISO") == 800
    img = read_image(path)
    assert img.bayer_pattern == "GBRG"
    assert {k.name: k.value for k in img.keywords} == {k.name: k.value for k in header.keywords}


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_every_bayer_pattern(tmp_path: Path, mosaic: np.ndarray, pattern: str) -> None:
    path = write_dng(tmp_path / f"{pattern}.dng", mosaic, pattern=pattern)
    assert read_image(path).bayer_pattern == pattern


def test_header_falls_back_to_libraw_without_tiff_tags(
    tmp_path: Path, mosaic: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As for CR3/RAF files: no TIFF tags, so LibRaw supplies pattern, levels and exposure.
    path = write_dng(tmp_path / "b.dng", mosaic, pattern="BGGR")
    monkeypatch.setattr(raw_backend, "_tiff_tags", lambda _path: {})
    header = read_header(path)
    assert header.bayer_pattern == "BGGR" and header.shape == (48, 64)
    assert header.get("EXPTIME") == 300.0 and header.get("WHITELVL") == 16383.0
    assert header.get("DATE-OBS") == "2025-03-26T21:22:32"


def test_utc_offset_and_subseconds(tmp_path: Path, mosaic: np.ndarray) -> None:
    extra = [(36881, "s", 0, "+02:00", True), (37521, "s", 0, "25", True)]
    path = write_dng(tmp_path / "c.dng", mosaic, extra=extra)
    assert read_image(path).get("DATE-OBS") == "2025-03-26T19:22:32.250000"


def test_cfa_pattern_mapping() -> None:
    assert raw_backend.cfa_pattern([[0, 1], [3, 2]], b"RGBG") == "RGGB"
    assert raw_backend.cfa_pattern([[1, 0], [2, 3]], b"RGBG") == "GRBG"
    assert raw_backend.cfa_pattern(np.zeros((6, 6), dtype=int), b"RGBG") is None


def test_corrupt_raw_names_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.cr2"
    path.write_bytes(b"II*\x00" + bytes(range(256)) * 8)
    with pytest.raises(ImageReadError, match="broken.cr2"):
        read_image(path)
    with pytest.raises(ImageReadError, match="broken.cr2"):
        read_header(path)


def test_without_rawpy_says_how_to_install(
    tmp_path: Path, mosaic: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_dng(tmp_path / "d.dng", mosaic)
    monkeypatch.setitem(sys.modules, "rawpy", None)  # import rawpy → ImportError
    for reader in (read_image, read_header):
        with pytest.raises(UnsupportedFormatError, match=r"d\.dng.*pip install 'skystack\[raw\]'"):
            reader(path)
