"""FITS backend: integer scalings, floats, cubes, compression, MEF, bad headers, real files."""

from __future__ import annotations

import gzip
import os
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skystack.errors import ImageReadError, ImageWriteError
from skystack.io import Image, Keyword, read_header, read_image, write_image
from skystack.io.fits import FitsHeaderWarning

REALDATA = Path(os.environ.get("SKYSTACK_SHARED", Path(__file__).resolve().parents[3] / "shared"))
REALDATA = REALDATA / "realdata"


def _write_raw(path: Path, data: np.ndarray, **cards: object) -> Path:
    """Write stored samples exactly as given (no astropy scaling), with extra header cards."""
    hdu = fits.PrimaryHDU(data=data, do_not_scale_image_data=True)
    for key, value in cards.items():
        hdu.header[key] = value
    hdu.writeto(path, overwrite=True)
    return path


# ----------------------------------------------------------------------------------------------
# Integer mappings


def test_uint16_bzero_maps_by_65535_and_writes_back_identical(tmp_path: Path) -> None:
    values = np.array([[0, 1, 2, 32767], [32768, 40000, 65534, 65535]], dtype=np.uint16)
    src = tmp_path / "u16.fits"
    fits.PrimaryHDU(values).writeto(src)  # astropy stores BITPIX 16 + BZERO 32768
    assert fits.getheader(src)["BZERO"] == 32768

    img = read_image(src)
    assert img.sample_format == "uint16"
    assert img.data_range == (0.0, 65535.0)
    assert img.data.dtype == np.float32 and img.data.dtype.isnative
    np.testing.assert_array_equal(img.data, values.astype(np.float32) / np.float32(65535))
    assert img.data[0, 0] == 0.0 and img.data[1, 3] == 1.0

    out = tmp_path / "back.fits"
    write_image(out, img, sample_format="uint16")
    with fits.open(out) as hdul:
        assert hdul[0].header["BITPIX"] == 16 and hdul[0].header["BZERO"] == 32768
        np.testing.assert_array_equal(hdul[0].data, values)


def test_uint32_bzero_2_31(tmp_path: Path) -> None:
    values = np.array([[0, 1, 2**31, 2**32 - 1]], dtype=np.uint32)
    src = tmp_path / "u32.fits"
    fits.PrimaryHDU(values).writeto(src)
    img = read_image(src)
    assert img.sample_format == "uint32"
    assert img.data_range == (0.0, 4294967295.0)
    np.testing.assert_array_equal(img.data, (values / 4294967295.0).astype(np.float32))
    out = tmp_path / "back.fits"
    write_image(out, img, sample_format="uint32")
    # float32 cannot hold every uint32: the round trip is exact to float32 resolution.
    back = fits.getdata(out)
    assert back.dtype == np.uint32
    assert back[0, 0] == 0 and back[0, 3] == 2**32 - 1


def test_uint8_and_signed_byte(tmp_path: Path) -> None:
    stored = np.array([[0, 1, 128, 255]], dtype=np.uint8)
    img = read_image(_write_raw(tmp_path / "u8.fits", stored))
    assert img.sample_format == "uint8"
    np.testing.assert_array_equal(img.data, stored / np.float32(255))
    # BZERO -128 is the signed-byte convention: physical = stored - 128, still maps by 255.
    img = read_image(_write_raw(tmp_path / "i8.fits", stored, BZERO=-128))
    assert img.sample_format == "int8" and img.data_range == (-128.0, 127.0)
    np.testing.assert_array_equal(img.data, stored / np.float32(255))


def test_signed_int16_shifts_by_half_range(tmp_path: Path) -> None:
    stored = np.array([[-32768, -1, 0, 32767]], dtype=np.int16)
    img = read_image(_write_raw(tmp_path / "i16.fits", stored))
    assert img.sample_format == "int16" and img.data_range == (-32768.0, 32767.0)
    np.testing.assert_array_equal(
        img.data, ((stored.astype(np.float64) + 32768) / 65535).astype(np.float32)
    )
    out = tmp_path / "back.fits"
    write_image(out, img, sample_format="int16")
    back = fits.getdata(out)
    assert back.dtype == np.dtype(">i2")
    np.testing.assert_array_equal(back, stored)


def test_real_scaling_gives_physical_floats(tmp_path: Path) -> None:
    stored = np.array([[-100, 0, 7, 30000]], dtype=np.int16)
    img = read_image(_write_raw(tmp_path / "s.fits", stored, BSCALE=0.5, BZERO=100.0))
    assert img.sample_format == "float32"
    np.testing.assert_array_equal(img.data, [[50.0, 100.0, 103.5, 15100.0]])


def test_float_with_bzero_and_big_endian_float64(tmp_path: Path) -> None:
    stored = np.array([[-32768.0, 0.5, 1000.25]], dtype=np.float32)
    img = read_image(_write_raw(tmp_path / "f.fits", stored, BZERO=32768.0, BSCALE=1.0))
    np.testing.assert_array_equal(img.data, [[0.0, 32768.5, 33768.25]])
    f64 = np.array([[0.1, -2.5, 1e10]], dtype=np.float64)
    img = read_image(_write_raw(tmp_path / "d.fits", f64))
    assert img.sample_format == "float64" and img.data.dtype == np.float32
    assert img.data.dtype.isnative and img.data.flags.c_contiguous
    np.testing.assert_array_equal(img.data, f64.astype(np.float32))


def test_blank_becomes_nan(tmp_path: Path) -> None:
    stored = np.array([[5, -999, 7]], dtype=np.int16)
    img = read_image(_write_raw(tmp_path / "b.fits", stored, BLANK=-999))
    assert np.isnan(img.data[0, 1])
    assert img.data[0, 0] == np.float32((5 + 32768) / 65535)


def test_large_frame_chunked_conversion_matches_astropy(tmp_path: Path) -> None:
    # Bigger than one conversion chunk, odd width: the row chunking must cover every row.
    rng = np.random.default_rng(3)
    values = rng.integers(0, 65536, size=(777, 513), dtype=np.uint16)
    src = tmp_path / "big.fits"
    fits.PrimaryHDU(values).writeto(src)
    img = read_image(src)
    np.testing.assert_array_equal(img.data, fits.getdata(src).astype(np.float32) / 65535)


# ----------------------------------------------------------------------------------------------
# Geometry, row order, CFA


def test_cube_and_singleton_axis(tmp_path: Path) -> None:
    cube = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    img = read_image(_write_raw(tmp_path / "c.fits", cube))
    assert img.data.shape == (3, 4, 5)
    np.testing.assert_array_equal(img.data, cube)
    assert read_header(tmp_path / "c.fits").shape == (3, 4, 5)
    one = read_image(_write_raw(tmp_path / "one.fits", cube[:1]))
    assert one.data.shape == (4, 5)


def test_rows_never_flipped_and_cfa_kept(tmp_path: Path) -> None:
    stored = np.arange(12, dtype=np.uint16).reshape(3, 4)
    src = tmp_path / "cfa.fits"
    hdu = fits.PrimaryHDU(stored)
    hdu.header["BAYERPAT"] = "GRBG"
    hdu.header["ROWORDER"] = "BOTTOM-UP"
    hdu.writeto(src)
    img = read_image(src)
    assert img.bayer_pattern == "GRBG" and img.row_order == "BOTTOM-UP"
    np.testing.assert_array_equal(np.rint(img.data * 65535), stored)  # first row stays first
    out = tmp_path / "back.fits"
    write_image(out, img, sample_format="uint16")
    h = fits.getheader(out)
    assert h["BAYERPAT"] == "GRBG" and h["ROWORDER"] == "BOTTOM-UP"


# ----------------------------------------------------------------------------------------------
# Containers: compression, gzip, multi-extension


@pytest.mark.parametrize("ctype", ["RICE_1", "GZIP_1", "GZIP_2", "HCOMPRESS_1", "PLIO_1"])
def test_tile_compressed_integers(tmp_path: Path, ctype: str) -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(0, 4000, size=(64, 48), dtype=np.int16)
    src = tmp_path / "x.fits.fz"
    comp = fits.CompImageHDU(values, compression_type=ctype)
    comp.header["EXPTIME"] = 30.0
    fits.HDUList([fits.PrimaryHDU(), comp]).writeto(src)
    img = read_image(src)
    assert img.sample_format == "int16" and img.get("EXPTIME") == 30.0
    np.testing.assert_array_equal(np.rint(img.data * 65535 - 32768), values)
    assert read_header(src).shape == (64, 48)


def test_fits_gz(tmp_path: Path) -> None:
    values = np.arange(20, dtype=np.uint16).reshape(4, 5) * 1000
    plain = tmp_path / "p.fits"
    fits.PrimaryHDU(values).writeto(plain)
    gz = tmp_path / "p.fits.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    img = read_image(gz)
    assert img.sample_format == "uint16"
    np.testing.assert_array_equal(img.data, values / np.float32(65535))
    assert read_header(gz).shape == (4, 5)


def test_first_image_hdu_of_mef_with_primary_keywords(tmp_path: Path) -> None:
    primary = fits.PrimaryHDU()
    primary.header["EXPTIME"] = 120.0
    primary.header["OBJECT"] = "M31"
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="J", array=[1, 2])])
    img_hdu = fits.ImageHDU(np.full((6, 7), 3.5, dtype=np.float32))
    img_hdu.header["OBJECT"] = "M31 core"
    second = fits.ImageHDU(np.zeros((2, 2), dtype=np.float32))
    src = tmp_path / "mef.fits"
    fits.HDUList([primary, table, img_hdu, second]).writeto(src)
    img = read_image(src)
    assert img.data.shape == (6, 7) and float(img.data[0, 0]) == 3.5
    assert img.get("EXPTIME") == 120.0  # from the primary header
    assert img.get("OBJECT") == "M31 core"  # the image HDU's own value wins


# ----------------------------------------------------------------------------------------------
# Headers: bad cards, laziness, writing keywords


def _card_bytes(*cards: str) -> bytes:
    text = "".join(c.ljust(80)[:80] for c in cards)
    return text.encode("ascii").ljust((len(text) + 2879) // 2880 * 2880, b" ")


def test_invalid_keywords_read_with_warning(tmp_path: Path) -> None:
    header = _card_bytes(
        "SIMPLE  =                    T",
        "BITPIX  =                    8",
        "NAXIS   =                    2",
        "NAXIS1  =                    3",
        "NAXIS2  =                    2",
        "TEL_FOCUS =              15420 / focus",
        "FILTER_A  =                  1 / Stroem_u",
        "EXPTIME =                 10.0 / s",
        "END",
    )
    src = tmp_path / "bad.fits"
    src.write_bytes(header + bytes([0, 1, 2, 3, 4, 255]).ljust(2880, b"\0"))
    with pytest.warns(FitsHeaderWarning, match="bad.fits"):
        img = read_image(src)
    assert img.get("TEL_FOCUS") == 15420
    assert img.get("FILTER_A") == 1
    assert img.get("EXPTIME") == 10.0
    np.testing.assert_array_equal(
        img.data, np.array([[0, 1, 2], [3, 4, 255]], dtype=np.float32) / np.float32(255)
    )


def test_missing_end_card_reads(tmp_path: Path) -> None:
    header = _card_bytes(
        "SIMPLE  =                    T",
        "BITPIX  =                    8",
        "NAXIS   =                    2",
        "NAXIS1  =                    2",
        "NAXIS2  =                    1",
    )
    src = tmp_path / "noend.fits"
    src.write_bytes(header + bytes([10, 20]).ljust(2880, b"\0"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitsHeaderWarning)
        h = read_header(src)
    assert h.shape == (1, 2) and h.sample_format == "uint8"


def test_read_header_does_not_read_pixels(tmp_path: Path) -> None:
    values = np.zeros((1000, 1000), dtype=np.uint16)  # 2 MB of pixels
    src = tmp_path / "lazy.fits"
    hdu = fits.PrimaryHDU(values)
    hdu.header["EXPTIME"] = 300.0
    hdu.writeto(src)
    tracemalloc.start()
    try:
        h = read_header(src)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert h.shape == (1000, 1000) and h.sample_format == "uint16" and h.get("EXPTIME") == 300.0
    assert peak < 500_000, f"read_header allocated {peak} bytes"
    # A file cut inside its pixels: the header still reads, the pixels give a clean error.
    cut = tmp_path / "cut.fits"
    cut.write_bytes(src.read_bytes()[: 2880 + 1000])
    with pytest.warns(FitsHeaderWarning, match="truncated"):
        assert read_header(cut).shape == (1000, 1000)
    with pytest.raises(ImageReadError, match="cut.fits.*truncated"):
        read_image(cut)


def test_write_keywords_long_strings_hierarch_comments(tmp_path: Path) -> None:
    long_text = ("a very long description " * 10).strip()  # FITS drops trailing blanks
    img = Image.from_array(
        np.zeros((4, 4), dtype=np.float32),
        keywords=[
            Keyword("EXPTIME", 60.0, "exposure time [s]"),
            Keyword("OBJECT", long_text, "target"),
            Keyword("SET-TEMPERATURE", -10.0, "cooler set point"),
            Keyword("HIERARCH ESO DET CHIP", "CCD42"),
            Keyword("FLAG", True),
            Keyword("BADVAL", float("nan")),
            Keyword("HISTORY", "calibrated by skystack"),
            Keyword("BITPIX", 99),  # structural: regenerated, never copied
        ],
    )
    out = tmp_path / "k.fits"
    write_image(out, img)
    h = fits.getheader(out)
    assert h["EXPTIME"] == 60.0 and h.comments["EXPTIME"] == "exposure time [s]"
    assert h["OBJECT"] == long_text
    assert h["SET-TEMPERATURE"] == -10.0 and h.comments["SET-TEMPERATURE"] == "cooler set point"
    assert h["ESO DET CHIP"] == "CCD42"
    assert h["FLAG"] is True and h["BADVAL"] == "nan" and h["BITPIX"] == -32
    assert "calibrated by skystack" in str(h["HISTORY"])
    back = read_image(out)
    assert back.get("OBJECT") == long_text and back.get("SET-TEMPERATURE") == -10.0


def test_write_rejects_unknown_compression_and_format(tmp_path: Path) -> None:
    img = Image.from_array(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ImageWriteError, match="compression"):
        write_image(tmp_path / "x.fits", img, compression="lzma")
    with pytest.raises(ImageWriteError, match="sample format"):
        write_image(tmp_path / "x.fits", img, sample_format="complex64")


# ----------------------------------------------------------------------------------------------
# Round trips (hypothesis)

_FORMATS = ["uint8", "uint16", "uint32", "int16", "float32", "float64"]
_TOP = {"uint8": 255, "uint16": 65535, "uint32": 4294967295, "int16": 65535}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sample_format=st.sampled_from(_FORMATS),
    channels=st.sampled_from([1, 3]),
    compression=st.sampled_from([None, "rice", "gzip"]),
    seed=st.integers(0, 2**16),
    height=st.integers(1, 17),
    width=st.integers(1, 19),
)
def test_round_trip(tmp_path: Path, sample_format: str, channels: int, compression: str | None,
                    seed: int, height: int, width: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (channels, height, width)
    if sample_format in _TOP:
        # Values that are exactly representable in the stored format.
        top = _TOP[sample_format]
        ints = rng.integers(0, top, size=shape, endpoint=True, dtype=np.int64)
        ints.flat[0] = top
        data = (ints / top).astype(np.float32)
    else:
        data = rng.normal(0.5, 2.0, size=shape).astype(np.float32)
    path = tmp_path / f"rt_{sample_format}_{channels}_{compression}.fits"
    write_image(path, Image.from_array(data, keywords=[Keyword("SEED", seed)]),
                sample_format=sample_format, compression=compression)
    back = read_image(path)
    assert back.sample_format == sample_format
    assert back.data.shape == shape and back.get("SEED") == seed
    if sample_format == "uint32":
        # float32 cannot hold every uint32 value: exact to one float32 step.
        np.testing.assert_allclose(back.data, data, rtol=0, atol=2**-24)
    else:
        np.testing.assert_array_equal(back.data, data)
    # Writing what was read, in the same format, reproduces the stored file's samples.
    again = tmp_path / "again.fits"
    write_image(again, back, sample_format=sample_format, compression=compression)
    hdu_index = 0 if compression is None else 1
    np.testing.assert_array_equal(fits.getdata(again, ext=hdu_index),
                                  fits.getdata(path, ext=hdu_index))


# ----------------------------------------------------------------------------------------------
# Real files written by other software

#: file (relative to realdata) → (shape, sample_format); every FITS file in the folders is listed.
EXPECTED: dict[str, tuple[tuple[int, ...], str]] = {
    "fits/astropy_testdata/blank.fits": ((1, 1), "int64"),
    "fits/astropy_testdata/checksum.fits": ((40, 30), "int16"),
    "fits/astropy_testdata/comp.fits": ((300, 440), "int16"),
    "fits/astropy_testdata/compressed_image.fits": ((10, 10), "int16"),
    "fits/astropy_testdata/fixed-1890.fits": ((100, 100), "uint16"),
    "fits/astropy_testdata/o4sp040b0_raw.fits": ((44, 62), "uint16"),
    "fits/astropy_testdata/scale.fits": ((21, 20), "float32"),
    "fits/astropy_testdata/test0.fits": ((40, 40), "int16"),
    "fits/ccdproc_testdata/a8280271.fits": ((520, 536), "uint16"),
    "fits/ccdproc_testdata/sip-wcs.fit": ((50, 100), "uint16"),
    "fits/eso_midas_testdata/NOT.fits": ((2052, 2148), "uint32"),
    "fits/eso_midas_testdata/badfitskeys.mt": ((2102, 2148), "uint16"),
    "fits/eso_midas_testdata/dss_test1.fits": ((177, 177), "int16"),
    "fits/eso_midas_testdata/nocdelt.fits": ((3, 125, 125), "int16"),
    "fits/eso_midas_testdata/timmi2.fits": ((2, 240, 320), "int32"),
    "fits/eso_midas_testdata/tst0004.mt": ((256, 256), "float32"),
    "fits/eso_midas_testdata/tst0009.mt": ((5, 31, 73), "int16"),
    "fits/eso_midas_testdata/tst0012.mt": ((109, 102), "float32"),
    "fits/nomtam_m13_compressed/checksum.fits": ((300, 440), "int16"),
    "fits/nomtam_m13_compressed/m13.fits": ((300, 300), "int16"),
    "fits/nomtam_m13_compressed/m13_gzip.fits": ((300, 300), "int16"),
    "fits/nomtam_m13_compressed/m13_hcomp.fits": ((300, 300), "int16"),
    "fits/nomtam_m13_compressed/m13_plio.fits": ((300, 300), "int16"),
    "fits/nomtam_m13_compressed/m13_rice.fits": ((300, 300), "int16"),
    "fits/nomtam_m13_compressed/m13real.fits": ((300, 300), "float32"),
    "fits/nomtam_m13_compressed/m13real_rice.fits": ((300, 300), "float32"),
    "fits/siril_testdata/star_test1.fit.fz": ((568, 931), "uint16"),
    "headers/msumastro/aspen_trimmed.fit": ((100, 100), "uint16"),
    "headers/msumastro/celestron_nightscape_10100_astro_fx_v106.fit": ((16, 16), "uint16"),
    "headers/msumastro/flattest.fit": ((100, 100), "float32"),
    "headers/msumastro/maximdl5_header.fit": ((16, 16), "float32"),
    "headers/msumastro/maximdl_5_21_header.fit": ((16, 16), "float32"),
    "headers/msumastro/maximdl_5_23_header.fit": ((100, 200), "uint16"),
    "headers/msumastro/maximdl_6_16_header.fit": ((100, 200), "uint16"),
    "headers/msumastro/maximdl_6_18_header.fit": ((100, 100), "uint16"),
    "headers/msumastro/neon-on-dome-10-sec-high-res-though-scope.fit": ((510, 765), "uint16"),
    **{f"headers/msumastro/{k}test{i}.fit": ((100, 100), "float32")
       for k in ("bias", "dark") for i in range(1, 6)},
    **{f"headers/msumastro/uint16{s}.fit": ((16, 16), "uint16")
       for s in ("", "_missing_filter", "_no_pointing", "_not_m101")},
}
#: Files astropy itself cannot read as an image: a clean ImageReadError naming the file.
UNREADABLE = {
    "fits/astropy_testdata/group.fits": "random-groups",
    "fits/astropy_testdata/lzw.fits.Z": "unpack",
    "fits/astropy_testdata/compressed_float_bzero.fits": "1-D",
}


def _real_files() -> list[str]:
    if not REALDATA.is_dir():
        return sorted(EXPECTED)
    found = []
    for folder in ("fits", "headers"):
        for p in sorted((REALDATA / folder).rglob("*")):
            if p.is_file() and not p.name.startswith("LICENSE") and p.suffix not in (".txt",
                                                                                      ".md"):
                found.append(p.relative_to(REALDATA).as_posix())
    return found


def _oracle(path: Path, sample_format: str) -> tuple[np.ndarray, bool]:
    """What the pixels should be, from astropy's own scaled read; and whether bit-exact.

    astropy applies real BSCALE/BZERO in float32, skystack in float64: those agree to 1 ulp.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's own complaints about bad cards
        hdul = fits.open(path)
    with hdul:
        hdu = next(h for h in hdul if h.is_image and h.header.get("NAXIS", 0) >= 2)
        scaled = hdu.header.get("BSCALE", 1) != 1 or (  # before .data: astropy drops them
            hdu.header["BITPIX"] < 0 and hdu.header.get("BZERO", 0) != 0
        )
        d = np.asarray(hdu.data)
    d = np.squeeze(d, axis=tuple(range(d.ndim - 2))) if d.ndim > 2 and d.shape[0] == 1 else d
    if sample_format in ("uint8", "uint16"):
        top = np.float32({"uint8": 255, "uint16": 65535}[sample_format])
        return d.astype(np.float32) / top, True
    if sample_format == "uint32":
        return (d / 4294967295.0).astype(np.float32), True
    if sample_format in ("int16", "int32", "int64"):
        bits = np.dtype(sample_format).itemsize * 8
        shifted = (d.astype(np.float64) + 2.0 ** (bits - 1)) / (2.0**bits - 1)
        return shifted.astype(np.float32), True
    return d.astype(np.float32), not scaled


@pytest.mark.realdata
@pytest.mark.parametrize("rel", _real_files())
def test_real_file(realdata: Path, rel: str) -> None:
    path = realdata / rel
    if rel in UNREADABLE:
        with pytest.raises(ImageReadError) as info:
            read_image(path)
        assert path.name in str(info.value) and UNREADABLE[rel] in str(info.value)
        with pytest.raises(ImageReadError):
            read_header(path)
        return
    assert rel in EXPECTED, f"new real file {rel}: add its expected shape and sample format"
    shape, sample_format = EXPECTED[rel]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitsHeaderWarning)
        header = read_header(path)
        img = read_image(path)
    assert header.shape == shape and img.data.shape == shape
    assert header.sample_format == sample_format and img.sample_format == sample_format
    assert img.data.dtype == np.float32 and img.data.dtype.isnative
    if sample_format.startswith("uint"):
        assert 0.0 <= float(np.nanmin(img.data)) and float(np.nanmax(img.data)) <= 1.0
    expected, exact = _oracle(path, sample_format)
    if exact:
        np.testing.assert_array_equal(img.data, expected)
    else:
        np.testing.assert_allclose(img.data, expected, rtol=2.4e-7, atol=0)


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["m13_gzip", "m13_hcomp", "m13_plio", "m13_rice"])
def test_nomtam_compressed_match_uncompressed(realdata: Path, name: str) -> None:
    folder = realdata / "fits/nomtam_m13_compressed"
    plain = read_image(folder / "m13.fits")
    np.testing.assert_array_equal(read_image(folder / f"{name}.fits").data, plain.data)
    stored = np.rint(plain.data.astype(np.float64) * 65535 - 32768)
    np.testing.assert_array_equal(stored, fits.getdata(folder / "m13.fits"))


@pytest.mark.realdata
def test_nomtam_lossy_float_rice_close(realdata: Path) -> None:
    folder = realdata / "fits/nomtam_m13_compressed"
    exact = read_image(folder / "m13real.fits").data
    lossy = read_image(folder / "m13real_rice.fits").data
    assert 0 < np.abs(lossy - exact).max() < 0.05 * np.std(exact)


@pytest.mark.realdata
def test_bad_keywords_file(realdata: Path) -> None:
    path = realdata / "fits/eso_midas_testdata/badfitskeys.mt"
    with pytest.warns(FitsHeaderWarning, match="badfitskeys.mt"):
        header = read_header(path)
    assert header.get("TEL_FOCUS") == 15420
    assert header.get("FILTER_A") == 1 and header.get("FILTER_B") == 0


@pytest.mark.realdata
def test_not_fits_header_is_lazy(realdata: Path) -> None:
    path = realdata / "fits/eso_midas_testdata/NOT.fits"
    assert path.stat().st_size > 17_000_000
    tracemalloc.start()
    try:
        header = read_header(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert header.shape == (2052, 2148) and header.sample_format == "uint32"
    assert peak < 1_000_000, f"read_header allocated {peak} bytes for a 17 MB file"


@pytest.mark.realdata
def test_seestar_subs(realdata: Path) -> None:
    files = sorted((realdata / "seestar").rglob("*.fit"))
    assert len(files) == 20
    for path in files:
        h = read_header(path)
        assert (h.width, h.height) == (1080, 1920)
        assert h.shape == (1920, 1080)
        assert h.sample_format == "uint16" and h.bayer_pattern == "GRBG"
        assert h.get("EXPTIME") == 10.0
    img = read_image(files[0])
    np.testing.assert_array_equal(img.data, fits.getdata(files[0]).astype(np.float32) / 65535)
    assert img.bayer_pattern == "GRBG"


@pytest.mark.realdata
def test_siril_fz_keeps_row_order(realdata: Path) -> None:
    img = read_image(realdata / "fits/siril_testdata/star_test1.fit.fz")
    assert img.row_order == "TOP-DOWN"
    assert img.get("DATE-OBS").startswith("2024-09-13")
