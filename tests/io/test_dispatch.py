"""Format dispatch by magic bytes, and clean errors naming the file for every kind of bad input."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from astropy.io import fits

from skystack.errors import ImageReadError, ImageWriteError, UnsupportedFormatError
from skystack.io import Image, detect_format, read_header, read_image, write_image
from skystack.io.fits import FitsHeaderWarning


def _fits_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "src.fits"
    fits.PrimaryHDU(np.arange(12, dtype=np.uint16).reshape(3, 4) * 100).writeto(path)
    return path.read_bytes()


@pytest.mark.parametrize("name", ["frame.xisf", "frame.tif", "frame.cr2", "frame", "frame.FIT"])
def test_fits_found_by_magic_whatever_the_name(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(_fits_bytes(tmp_path))
    assert detect_format(path) == "fits"
    img = read_image(path)
    assert img.format == "fits" and img.sample_format == "uint16"
    np.testing.assert_array_equal(np.rint(img.data * 65535), np.arange(12).reshape(3, 4) * 100)
    assert read_header(path).shape == (3, 4)


def test_tiff_named_fits_reads_as_tiff(tmp_path: Path) -> None:
    path = tmp_path / "export.fits"
    tifffile.imwrite(path, np.full((2, 3), 1000, dtype=np.uint16))
    assert detect_format(path) == "tiff"
    img = read_image(path)
    assert img.format == "tiff" and float(img.data[0, 0]) == np.float32(1000 / 65535)


def test_xisf_named_fits_reads_as_xisf(tmp_path: Path) -> None:
    pytest.importorskip("skystack.io.xisf")
    path = tmp_path / "master.xisf"
    data = np.full((4, 5), 0.25, dtype=np.float32)
    write_image(path, Image.from_array(data), sample_format="float32")
    renamed = tmp_path / "master.fits"
    path.rename(renamed)
    assert detect_format(renamed) == "xisf"
    np.testing.assert_array_equal(read_image(renamed).data, data)


def test_raw_suffix_beats_tiff_magic(tmp_path: Path) -> None:
    path = tmp_path / "IMG_1.dng"
    tifffile.imwrite(path, np.zeros((4, 4), dtype=np.uint16))
    assert detect_format(path) == "raw"  # DNG/CR2/NEF are TIFF containers
    assert detect_format(path.rename(tmp_path / "IMG_1.tif")) == "tiff"


def test_gzip_dispatch(tmp_path: Path) -> None:
    raw = _fits_bytes(tmp_path)
    good = tmp_path / "a.fits.gz"
    good.write_bytes(gzip.compress(raw))
    assert detect_format(good) == "fits" and read_image(good).data.shape == (3, 4)
    other = tmp_path / "a.tar.gz"
    other.write_bytes(gzip.compress(raw))
    with pytest.raises(UnsupportedFormatError, match=r"a\.tar\.gz.*unpack"):
        read_image(other)


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name → (path, words the message must contain)."""
    good = _fits_bytes(tmp_path)
    files: dict[str, tuple[Path, str]] = {}

    def put(name: str, content: bytes, words: str) -> None:
        path = tmp_path / name
        path.write_bytes(content)
        files[name] = (path, words)

    put("empty.fits", b"", "empty")
    put("empty.xisf", b"", "empty")
    put("empty.cr2", b"", "empty")
    put("header_cut.fits", good[:1000], "FITS")
    put("data_cut.fits", good[:2880 + 10], "truncated")
    put("no_data.fits", good[:2880], "truncated")
    put("wrong_magic.fits", bytes(range(256)) * 20, "unrecognised")
    put("notes.fits", b"Observing log, 2025-03-26\nclouds after 23h\n" * 50, "unrecognised")
    put("random.tif", b"II*\x00" + b"\xff" * 400, "TIFF holds no image")
    put("old.fits.Z", b"\x1f\x9d\x90SIMPLE" + bytes(300), "compress")
    bogus = bytearray(good)
    bogus[80:110] = b"BITPIX  =                   17"  # not a FITS sample type
    put("bitpix.fits", bytes(bogus), "BITPIX")
    folder = tmp_path / "Lights.fits"
    folder.mkdir()
    files["folder"] = (folder, "directory")
    files["missing"] = (tmp_path / "missing.fits", "cannot open")
    return files


def test_every_bad_file_raises_one_clean_error(tmp_path: Path) -> None:
    header_only_ok = {"data_cut.fits", "no_data.fits"}  # complete header, missing pixels
    for label, (path, words) in _bad_files(tmp_path).items():
        for reader in (read_image, read_header):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FitsHeaderWarning)
                if label in header_only_ok and reader is read_header:
                    assert reader(path).shape == (3, 4)
                    continue
                with pytest.raises(ImageReadError) as info:
                    reader(path)
            message = str(info.value)
            assert path.name in message, f"{label}: {message}"
            assert words.lower() in message.lower(), f"{label}: {message}"
            assert info.value.path == str(path)


def test_write_dispatch_and_refusals(tmp_path: Path) -> None:
    img = Image.from_array(np.full((2, 2), 0.5, dtype=np.float32))
    assert detect_format(write_image(tmp_path / "a.fits", img)) == "fits"
    assert detect_format(write_image(tmp_path / "a.fit", img)) == "fits"
    assert detect_format(write_image(tmp_path / "a.tiff", img)) == "tiff"
    assert detect_format(write_image(tmp_path / "noext", img)) == "fits"
    with pytest.raises(ImageWriteError, match="raw"):
        write_image(tmp_path / "a.cr2", img, format="raw")
    with pytest.raises(ImageWriteError, match="exists"):
        write_image(tmp_path / "a.fits", img, overwrite=False)
