"""XISF codec: round trips, crafted spec features, PixInsight-written files, malformed files."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import struct
import zlib
from pathlib import Path

import lz4.block
import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skystack.errors import ChecksumError, ImageReadError, UnsupportedFormatError
from skystack.io import read_image, write_image, xisf
from skystack.io.image import Image, Keyword, from_unit_range, to_unit_range

NS = "http://www.pixinsight.com/xisf"


# --------------------------------------------------------------------------- helpers


def craft(path: Path, image_xml: str, blocks: bytes = b"", *, extra_xml: str = "") -> Path:
    """Write a hand-made XISF file; ``{pos}`` in ``image_xml`` is the offset of ``blocks``."""

    def header(pos: int) -> bytes:
        body = image_xml.replace("{pos}", str(pos)) + extra_xml
        xml = (
            f'<?xml version="1.0" encoding="UTF-8"?><xisf version="1.0" xmlns="{NS}">{body}</xisf>'
        )
        return xml.encode()

    pos = 4096
    while 16 + len(header(pos)) > pos:
        pos += 4096
    xml = header(pos)
    data = xisf.SIGNATURE + struct.pack("<II", len(xml), 0) + xml
    path.write_bytes(data + b"\0" * (pos - len(data)) + blocks)
    return path


def header_xml(path: Path) -> str:
    raw = path.read_bytes()
    (length,) = struct.unpack("<I", raw[8:12])
    return raw[16 : 16 + length].decode("utf-8")


def block_span(path: Path) -> tuple[int, int]:
    m = re.search(r'<Image [^>]*location="attachment:(\d+):(\d+)"', header_xml(path))
    assert m is not None
    return int(m.group(1)), int(m.group(2))


def expected_samples(x: np.ndarray, fmt: str) -> np.ndarray:
    """What reading back ``x`` written as ``fmt`` must give (integers quantized)."""
    return to_unit_range(from_unit_range(x, fmt))[0]


def raises_naming(
    path: Path, exc: type[Exception] = ImageReadError, match: str = ""
) -> pytest.RaisesContext:
    ctx = pytest.raises(exc, match=re.escape(str(path)) + ".*" + match)
    return ctx


# --------------------------------------------------------------------------- round trips

FORMATS = ["uint8", "uint16", "uint32", "float32", "float64"]


@st.composite
def images(draw: st.DrawFn) -> tuple[np.ndarray, str, str | None]:
    fmt = draw(st.sampled_from(FORMATS))
    channels = draw(st.sampled_from([1, 3]))
    compression = draw(st.sampled_from(xisf.COMPRESSIONS))
    shape = (draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    if channels == 3:
        shape = (3, *shape)
    if fmt.startswith("float"):
        elements = st.floats(width=32, allow_nan=True, allow_infinity=True)
    else:
        elements = st.floats(0.0, 1.0, width=32)
    return draw(arrays(np.float32, shape, elements=elements)), fmt, compression


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=images())
def test_round_trip_every_format_channels_and_compression(tmp_path: Path, case) -> None:
    x, fmt, compression = case
    path = tmp_path / "rt.xisf"
    xisf.write(path, Image(data=x), sample_format=fmt, compression=compression)
    back = xisf.read(path)
    assert back.data.shape == x.shape
    assert back.data.dtype == np.float32
    assert back.sample_format == fmt
    if fmt == "float32":  # bitwise, NaN payloads included
        assert np.array_equal(back.data.view(np.uint32), x.view(np.uint32))
    elif fmt == "float64":
        assert np.array_equal(back.data, x, equal_nan=True)
    else:
        assert np.array_equal(back.data, expected_samples(x, fmt))
    header = xisf.read_header(path)
    assert header.shape == x.shape and header.sample_format == fmt


def test_integer_round_trip_is_exact_on_every_level(tmp_path: Path) -> None:
    levels = np.arange(65536, dtype=np.float64) / 65535
    x = levels.astype(np.float32).reshape(256, 256)
    xisf.write(tmp_path / "l.xisf", Image(data=x), sample_format="uint16", compression="lz4+sh")
    back = xisf.read(tmp_path / "l.xisf").data
    assert np.array_equal(
        np.rint(back.astype(np.float64) * 65535).astype(np.int64).ravel(), np.arange(65536)
    )


def test_metadata_round_trip(tmp_path: Path) -> None:
    keywords = [
        Keyword("EXPTIME", 120.5, "Exposure time [s]"),
        Keyword("GAIN", 100, ""),
        Keyword("OBJECT", "M31 'core'", "target"),
        Keyword("FLIPPED", False, ""),
        Keyword("CCD-TEMP", -10.25, "C"),
        Keyword("TINY", 1.5e-12, ""),
        Keyword("HISTORY", "calibrated with skystack", ""),
        Keyword("COMMENT", "second <line> & more", ""),
        Keyword("ROWORDER", "BOTTOM-UP", ""),
    ]
    properties = {
        "Instrument:ExposureTime": 120.5,
        "Instrument:Camera:Name": "ZWO ASI2600MM <Pro> & co",
        "Test:Flag": True,
        "Test:Off": False,
        "Test:Count": 7,
        "Test:Big": 2**40,
        "Test:F32": np.float32(0.1),
        "Test:U16": np.uint16(4096),
        "Test:Complex": complex(1.5, -2.0),
        "Test:Vector": np.array([1.0, -2.5, 3.25], dtype=np.float64),
        "Test:IVector": np.array([1, -2, 3], dtype=np.int32),
        "Test:Matrix": np.arange(6, dtype=np.float32).reshape(2, 3),
    }
    img = Image(
        data=np.full((10, 12), 0.25, np.float32),
        keywords=keywords,
        properties=properties,
        bayer_pattern="RGGB",
    )
    path = tmp_path / "meta.xisf"
    xisf.write(path, img, compression="zstd+sh")
    for back in (xisf.read(path), xisf.read_header(path)):
        assert back.keywords == keywords
        assert back.bayer_pattern == "RGGB"
        assert back.row_order == "BOTTOM-UP"
        got = {k: v for k, v in back.properties.items() if not k.startswith("XISF:")}
        assert got.keys() == properties.keys()
        for key, value in properties.items():
            if isinstance(value, np.ndarray):
                assert got[key].dtype == value.dtype and np.array_equal(got[key], value)
            else:
                assert got[key] == value and type(got[key]) is type(
                    value.item() if hasattr(value, "item") else value
                )
    xml = header_xml(path)
    assert '<Property id="Test:U16" type="UInt16" value="4096"' in xml
    assert '<Property id="Test:Flag" type="Boolean" value="true"' in xml
    assert '<ColorFilterArray pattern="RGGB" width="2" height="2"' in xml
    assert "<FITSKeyword name=\"OBJECT\" value=\"'M31 ''core'''\"" in xml


def test_structural_fits_keywords_are_not_copied(tmp_path: Path) -> None:
    img = Image(
        data=np.zeros((4, 4), np.float32),
        keywords=[Keyword("BZERO", 32768), Keyword("NAXIS1", 4), Keyword("FILTER", "Ha")],
    )
    xisf.write(tmp_path / "s.xisf", img)
    assert xisf.read(tmp_path / "s.xisf").keywords == [Keyword("FILTER", "Ha")]


# --------------------------------------------------------------------------- written layout


@pytest.mark.parametrize("n_keywords", [0, 300])
def test_written_layout_is_monolithic_xisf_with_aligned_block(
    tmp_path: Path, n_keywords: int
) -> None:
    rng = np.random.default_rng(1)
    x = rng.random((3, 40, 50), dtype=np.float32)
    kws = [Keyword(f"KEY{i}", i, "a comment to make the header long") for i in range(n_keywords)]
    path = tmp_path / "layout.xisf"
    xisf.write(path, Image(data=x, keywords=kws), sample_format="uint16")
    raw = path.read_bytes()
    assert raw[:8] == b"XISF0100"
    (length, reserved) = struct.unpack("<II", raw[8:16])
    assert reserved == 0
    xml = raw[16 : 16 + length].decode()
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>') and xml.endswith("</xisf>")
    assert f'xmlns="{NS}"' in xml
    assert re.search(
        r'<Image geometry="50:40:3" sampleFormat="UInt16" colorSpace="RGB" '
        r'pixelStorage="Planar" location="attachment:\d+:12000"',
        xml,
    )
    offset, size = block_span(path)
    assert offset % 4096 == 0 and offset >= 16 + length
    assert offset == -(-(16 + length) // 4096) * 4096 and (offset > 4096) == (n_keywords > 0)
    assert raw[16 + length : offset] == b"\0" * (offset - 16 - length)
    assert size == 3 * 40 * 50 * 2 and len(raw) == offset + size
    stored = np.frombuffer(raw[offset:], dtype="<u2").reshape(3, 40, 50)
    assert np.array_equal(stored, np.rint(x.astype(np.float64) * 65535).astype(np.uint16))
    assert re.search(
        r'<Property id="XISF:CreatorApplication" type="String">skystack [\d.]+</Property>', xml
    )
    assert re.search(
        r'<Property id="XISF:CreationTime" type="String">\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ<', xml
    )


@pytest.mark.parametrize("compression", ["zstd+sh", "lz4+sh", "zlib", "lz4hc"])
def test_written_compression_attribute_and_block(tmp_path: Path, compression: str) -> None:
    x = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64)
    path = tmp_path / "c.xisf"
    xisf.write(
        path, Image(data=x), sample_format="uint16", compression=compression, checksum="sha1"
    )
    xml = header_xml(path)
    suffix = ":2" if compression.endswith("+sh") else ""
    assert f'compression="{compression}:{64 * 48 * 2}{suffix}"' in xml
    offset, size = block_span(path)
    assert offset % 4096 == 0
    stored = path.read_bytes()[offset : offset + size]
    assert f'checksum="sha1:{hashlib.sha1(stored).hexdigest()}"' in xml
    # Decode the block with the codec libraries directly: the writer follows the spec.
    codec = compression.removesuffix("+sh")
    if codec == "zlib":
        plain = zlib.decompress(stored)
    elif codec == "zstd":
        plain = zstandard.ZstdDecompressor().decompress(stored, max_output_size=64 * 48 * 2)
    else:
        plain = lz4.block.decompress(stored, uncompressed_size=64 * 48 * 2)
    samples = from_unit_range(x, "uint16").astype("<u2").tobytes()
    if compression.endswith("+sh"):
        samples = np.frombuffer(samples, np.uint8).reshape(-1, 2).T.tobytes()
    assert plain == samples


def test_sub_blocks_written_and_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xisf, "SUBBLOCK_BYTES", 1000)
    x = np.random.default_rng(2).random((30, 50), dtype=np.float32)
    path = tmp_path / "sub.xisf"
    xisf.write(
        path, Image(data=x), sample_format="float32", compression="lz4+sh", checksum="sha256"
    )
    m = re.search(r'subblocks="([\d,:]+)"', header_xml(path))
    assert m is not None
    pairs = [tuple(map(int, p.split(","))) for p in m.group(1).split(":")]
    assert [u for _, u in pairs] == [1000] * 6
    assert sum(c for c, _ in pairs) == block_span(path)[1]
    assert np.array_equal(xisf.read(path).data, x)


def test_write_image_dispatch_and_magic(tmp_path: Path) -> None:
    x = np.full((2, 5, 7), 0.5, np.float32)
    path = write_image(
        tmp_path / "d.xisf", Image(data=x, sample_format="uint8"), compression="zstd"
    )
    back = read_image(path)
    assert back.format == "xisf" and back.sample_format == "uint8"
    assert np.array_equal(back.data, expected_samples(x, "uint8"))


# --------------------------------------------------------------------------- crafted spec features


def test_normal_pixel_storage_rgb(tmp_path: Path) -> None:
    planar = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5) * 100
    interleaved = planar.transpose(1, 2, 0).astype("<u2").tobytes()
    path = craft(
        tmp_path / "n.xisf",
        '<Image geometry="5:4:3" sampleFormat="UInt16" colorSpace="RGB" '
        'pixelStorage="Normal" location="attachment:{pos}:120"/>',
        interleaved,
    )
    data = xisf.read(path).data
    assert data.shape == (3, 4, 5) and data.flags.c_contiguous
    assert np.array_equal(np.rint(data * 65535).astype(np.uint16), planar)


@pytest.mark.parametrize(
    ("fmt", "dtype", "scale"),
    [
        ("UInt16", ">u2", 65535),
        ("UInt32", ">u4", 4294967295),
        ("Float32", ">f4", 1),
        ("Float64", ">f8", 1),
    ],
)
def test_big_endian_blocks(tmp_path: Path, fmt: str, dtype: str, scale: int) -> None:
    values = (
        np.array([1, 2, 3, 4], dtype=dtype)
        if scale > 1
        else np.array([0.125, 0.25, 0.5, 1.0], dtype)
    )
    path = craft(
        tmp_path / "be.xisf",
        f'<Image geometry="2:2:1" sampleFormat="{fmt}" byteOrder="big" '
        f'location="attachment:{{pos}}:{values.nbytes}"/>',
        values.tobytes(),
    )
    data = xisf.read(path).data
    expected = (values.astype(np.float64) / scale).astype(np.float32).reshape(2, 2)
    np.testing.assert_allclose(data, expected, rtol=1e-7)


@pytest.mark.parametrize("encoding", ["base64", "hex"])
def test_inline_and_embedded_blocks(tmp_path: Path, encoding: str) -> None:
    values = np.array([[0, 65535, 32768], [1, 2, 3]], dtype="<u2")
    text = (
        base64.b64encode(values.tobytes()).decode()
        if encoding == "base64"
        else values.tobytes().hex()
    )
    inline = craft(
        tmp_path / "i.xisf",
        f'<Image geometry="3:2:1" sampleFormat="UInt16" '
        f'location="inline:{encoding}">{text}</Image>',
    )
    embedded = craft(
        tmp_path / "e.xisf",
        '<Image geometry="3:2:1" sampleFormat="UInt16" location="embedded">'
        f'<Data encoding="{encoding}">\n  {text}\n</Data></Image>',
    )
    for path in (inline, embedded):
        assert np.array_equal(np.rint(xisf.read(path).data * 65535), values)


@pytest.mark.parametrize("codec", ["zlib", "lz4", "lz4hc", "zstd"])
def test_crafted_sub_blocks_with_shuffle_each_codec(tmp_path: Path, codec: str) -> None:
    values = np.arange(300, dtype="<u4") * 1000
    shuffled = values.view(np.uint8).reshape(-1, 4).T.tobytes()
    compress = {
        "zlib": zlib.compress,
        "zstd": zstandard.ZstdCompressor().compress,
        "lz4": lambda b: lz4.block.compress(b, store_size=False),
        "lz4hc": lambda b: lz4.block.compress(b, mode="high_compression", store_size=False),
    }[codec]
    parts = [compress(shuffled[:700]), compress(shuffled[700:])]
    sub = f"{len(parts[0])},700:{len(parts[1])},500"
    path = craft(
        tmp_path / "s.xisf",
        f'<Image geometry="20:15:1" sampleFormat="UInt32" '
        f'compression="{codec}+sh:1200:4" subblocks="{sub}" '
        f'location="attachment:{{pos}}:{len(parts[0]) + len(parts[1])}"/>',
        b"".join(parts),
    )
    data = xisf.read(path).data.astype(np.float64) * 4294967295
    assert np.array_equal(np.rint(data).ravel(), values)


@pytest.mark.parametrize(
    "algo", ["sha1", "sha-1", "SHA256", "sha-256", "sha512", "sha-512", "sha3-256", "sha3-512"]
)
def test_checksum_algorithms(tmp_path: Path, algo: str) -> None:
    block = np.full(12, 7, dtype="<u2").tobytes()
    name = algo.lower().replace("-", "") if not algo.startswith("sha3") else algo.replace("-", "_")
    digest = hashlib.new(name, block).hexdigest()
    good = craft(
        tmp_path / "g.xisf",
        f'<Image geometry="4:3:1" sampleFormat="UInt16" checksum="{algo}:{digest}" '
        'location="attachment:{pos}:24"/>',
        block,
    )
    assert np.all(xisf.read(good).data == np.float32(7 * np.float32(1 / 65535)))
    bad = craft(
        tmp_path / "b.xisf",
        f'<Image geometry="4:3:1" sampleFormat="UInt16" checksum="{algo}:{digest}" '
        'location="attachment:{pos}:24"/>',
        block[:-1] + b"\1",
    )
    with raises_naming(bad, ChecksumError, "checksum mismatch"):
        xisf.read(bad)


def test_signed_integer_samples(tmp_path: Path) -> None:
    values = np.array([-32768, 0, 32767, -1], dtype="<i2")
    path = craft(
        tmp_path / "i16.xisf",
        '<Image geometry="4:1:1" sampleFormat="Int16" location="attachment:{pos}:8"/>',
        values.tobytes(),
    )
    img = xisf.read(path)
    assert img.sample_format == "int16" and img.data_range == (-32768.0, 32767.0)
    np.testing.assert_allclose(img.data.ravel(), (values + 32768.0) / 65535, rtol=1e-7)


def test_property_types(tmp_path: Path) -> None:
    history = "<ProcessingHistory>" + "PixelMath " * 50 + "</ProcessingHistory>"
    packed = zstandard.ZstdCompressor().compress(history.encode())
    vec = np.array([1.5, -2.0, 1e10], dtype=">f4")
    mat = np.arange(6, dtype="<i2").reshape(2, 3)
    attached = np.array([3.0, 4.0], dtype="<f8")
    props = (
        '<Property id="T:Bool" type="Boolean" value="true"/>'
        '<Property id="T:False" type="Boolean" value="false"/>'
        '<Property id="T:I8" type="Int8" value="-5"/>'
        '<Property id="T:U16" type="UInt16" value="65535"/>'
        '<Property id="T:U64" type="UInt64" value="18446744073709551615"/>'
        '<Property id="T:F32" type="Float32" value="0.5"/>'
        '<Property id="T:F64" type="Float64" value="-1.25e-3"/>'
        '<Property id="T:C" type="Complex64" value="(1.5,-2)"/>'
        '<Property id="T:Time" type="TimePoint" value="2024-03-01T22:10:05.123Z"/>'
        '<Property id="T:Str" type="String">hello &amp; &lt;world&gt;</Property>'
        f'<Property id="T:Hist" type="String" compression="zstd:{len(history)}" '
        'location="inline:base64">'
        f"{base64.b64encode(packed).decode()}</Property>"
        '<Property id="T:Vec" type="F32Vector" length="3" byteOrder="big" location="inline:hex">'
        f"{vec.tobytes().hex()}</Property>"
        f'<Property id="T:Mat" type="I16Matrix" rows="2" columns="3" location="embedded">'
        f'<Data encoding="base64">{base64.b64encode(mat.tobytes()).decode()}</Data></Property>'
        '<Property id="T:Far" type="F64Vector" length="2" location="attachment:{far}:16"/>'
        '<Property id="T:Bad" type="Int32" value="not a number"/>'
    )
    pixels = np.zeros(4, "<u2").tobytes()
    image = (
        '<Image geometry="2:2:1" sampleFormat="UInt16" location="attachment:{pos}:8">'
        + props
        + "</Image>"
    )
    # the attached property block follows the pixels
    path = craft(tmp_path / "p.xisf", image.replace("{far}", "{pos}8"), pixels + attached.tobytes())
    xml = header_xml(path)
    pos = int(re.search(r'location="attachment:(\d+):8"', xml).group(1))  # type: ignore[union-attr]
    path = craft(
        tmp_path / "p.xisf", image.replace("{far}", str(pos + 8)), pixels + attached.tobytes()
    )
    p = xisf.read(path).properties
    assert p["T:Bool"] is True and p["T:False"] is False
    assert p["T:I8"] == -5 and p["T:U16"] == 65535 and p["T:U64"] == 2**64 - 1
    assert p["T:F32"] == 0.5 and p["T:F64"] == -1.25e-3 and p["T:C"] == complex(1.5, -2)
    assert p["T:Time"] == "2024-03-01T22:10:05.123Z"
    assert p["T:Str"] == "hello & <world>"
    assert p["T:Hist"] == history
    assert p["T:Vec"].dtype == np.float32 and np.array_equal(p["T:Vec"], vec.astype(np.float32))
    assert p["T:Mat"].dtype == np.int16 and np.array_equal(p["T:Mat"], mat)
    assert np.array_equal(p["T:Far"], attached)
    assert p["T:Bad"] == "not a number"
    header = xisf.read_header(path)
    assert "T:Far" not in header.properties  # header-only reads skip attached blocks
    assert header.properties["T:Hist"] == history


def test_keyword_value_parsing() -> None:
    cases = {
        "'Light Frame'": "Light Frame",
        "'Red     '": "Red",
        "'O''Neil'": "O'Neil",
        "''": "",
        "T": True,
        "F": False,
        "42": 42,
        "-7": -7,
        "+3": 3,
        "1.": 1.0,
        "0.5": 0.5,
        "-1.5E+03": -1500.0,
        "2.5D-2": 0.025,
        ".5": 0.5,
        "": None,
        "  ": None,
        "unquoted text": "unquoted text",
        "NaN": "NaN",
    }
    for text, expected in cases.items():
        value = xisf._keyword_value(text)
        assert value == expected and type(value) is type(expected), text


@pytest.mark.parametrize("source", ["property", "keyword", "cfa"])
def test_bayer_pattern_sources(tmp_path: Path, source: str) -> None:
    extra = {
        "property": '<Property id="PCL:CFASourcePattern" type="String">GRBG</Property>',
        "keyword": '<FITSKeyword name="BAYERPAT" value="\'grbg\'" comment=""/>',
        "cfa": '<ColorFilterArray pattern="GRBG" width="2" height="2" name="GRBG Bayer"/>',
    }[source]
    path = craft(
        tmp_path / "b.xisf",
        '<Image geometry="2:2:1" sampleFormat="UInt8" '
        f'location="attachment:{{pos}}:4">{extra}</Image>',
        b"\0\1\2\3",
    )
    assert xisf.read_header(path).bayer_pattern == "GRBG"


def test_shuffle_matches_reference() -> None:
    rng = np.random.default_rng(3)
    for item in (2, 4, 8):
        for size in (0, 1, item * 37, item * 37 + item - 1):
            data = rng.integers(0, 256, size, dtype=np.uint8)
            n = size // item
            ref = np.concatenate([data[: n * item].reshape(n, item).T.ravel(), data[n * item :]])
            shuffled = xisf._shuffle(data, item)
            assert bytes(shuffled) == ref.tobytes()
            assert bytes(xisf._unshuffle(shuffled, item)) == data.tobytes()


# --------------------------------------------------------------------------- header-only reads


def test_read_header_reads_no_data_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(4).random((3, 30, 40), dtype=np.float32)
    path = tmp_path / "h.xisf"
    xisf.write(
        path,
        Image(data=x, keywords=[Keyword("EXPTIME", 300.0)]),
        sample_format="uint16",
        compression="zstd+sh",
        checksum="sha1",
    )
    offset, size = block_span(path)
    raw = bytearray(path.read_bytes())
    raw[offset : offset + size] = b"\xa5" * size  # destroy the pixels
    path.write_bytes(bytes(raw))
    header = xisf.read_header(path)
    assert header.shape == (3, 30, 40) and header.sample_format == "uint16"
    assert header.get("EXPTIME") == 300.0 and header.format == "xisf"
    assert header.data_range == (0.0, 65535.0)
    with raises_naming(path, ChecksumError):
        xisf.read(path)

    def refuse(*args: object) -> bytes:
        raise AssertionError("read_header read a data block")

    monkeypatch.setattr(xisf, "_stored_bytes", refuse)
    monkeypatch.setattr(xisf, "_decompress", refuse)
    assert xisf.read_header(path).shape == (3, 30, 40)


# --------------------------------------------------------------------------- malformed files

GOOD_IMAGE = '<Image geometry="4:3:1" sampleFormat="UInt16" location="attachment:{pos}:24"/>'
GOOD_BLOCK = np.arange(12, dtype="<u2").tobytes()


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.xisf"
    path.write_bytes(b"")
    with raises_naming(path, match="truncated"):
        xisf.read(path)
    with raises_naming(path, match="empty"):
        read_image(path)


@pytest.mark.parametrize(
    ("content", "exc", "match"),
    [
        (b"XISF01", ImageReadError, "truncated"),
        (b"NOTXISF!" + bytes(8), ImageReadError, "signature"),
        (b"XISF0200" + bytes(8), UnsupportedFormatError, "version"),
        (b"XISF0100" + struct.pack("<II", 5000, 0) + b"<xisf/>", ImageReadError, "truncated"),
        (b"XISF0100" + struct.pack("<II", 0, 0), ImageReadError, "header length"),
    ],
)
def test_bad_preamble(tmp_path: Path, content: bytes, exc: type[Exception], match: str) -> None:
    path = tmp_path / "bad.xisf"
    path.write_bytes(content)
    with raises_naming(path, exc, match):
        xisf.read(path)
    with raises_naming(path, exc, match):
        xisf.read_header(path)


@pytest.mark.parametrize(
    ("image_xml", "extra", "block", "exc", "match"),
    [
        # DTDs and entities are refused before parsing (no entity expansion)
        (
            '<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>' + GOOD_IMAGE,
            "",
            GOOD_BLOCK,
            ImageReadError,
            "DTD",
        ),
        (GOOD_IMAGE.replace("/>", ">"), "", GOOD_BLOCK, ImageReadError, "malformed"),
        ("", "<Metadata/>", GOOD_BLOCK, ImageReadError, "no <Image>"),
        (GOOD_IMAGE.replace("4:3:1", "4:3"), "", GOOD_BLOCK, ImageReadError, "geometry"),
        (GOOD_IMAGE.replace("4:3:1", "4:x:1"), "", GOOD_BLOCK, ImageReadError, "integer"),
        (GOOD_IMAGE.replace("4:3:1", "4:0:1"), "", GOOD_BLOCK, ImageReadError, "empty"),
        (GOOD_IMAGE.replace("4:3:1", "4:3:2:1"), "", GOOD_BLOCK, UnsupportedFormatError, "3-D"),
        (
            GOOD_IMAGE.replace("4:3:1", "1000000:1000000:3").replace("UInt16", "Float64"),
            "",
            GOOD_BLOCK,
            ImageReadError,
            "absurd",
        ),
        (
            GOOD_IMAGE.replace("4:3:1", "400:300:1"),
            "",
            GOOD_BLOCK,
            ImageReadError,
            "needs 240000 bytes",
        ),
        (GOOD_IMAGE.replace(":24", ":240000"), "", GOOD_BLOCK, ImageReadError, "outside the file"),
        (
            GOOD_IMAGE.replace("UInt16", "Complex32"),
            "",
            GOOD_BLOCK,
            UnsupportedFormatError,
            "sample format",
        ),
        (
            GOOD_IMAGE.replace("UInt16", "UInt64"),
            "",
            GOOD_BLOCK,
            UnsupportedFormatError,
            "sample format",
        ),
        (
            GOOD_IMAGE.replace('location="attachment:{pos}:24"', 'location="url(http://x/y)"'),
            "",
            b"",
            UnsupportedFormatError,
            "distributed",
        ),
        (
            GOOD_IMAGE.replace('location="attachment:{pos}:24"', 'location="embedded"'),
            "",
            b"",
            ImageReadError,
            "<Data>",
        ),
        (
            GOOD_IMAGE.replace('location="attachment:{pos}:24"', 'location="floppy:1"'),
            "",
            b"",
            ImageReadError,
            "location",
        ),
        (
            GOOD_IMAGE.replace("/>", ' compression="lzma:24"/>'),
            "",
            GOOD_BLOCK,
            UnsupportedFormatError,
            "codec",
        ),
        (
            GOOD_IMAGE.replace("/>", ' compression="zstd:999999999999999"/>'),
            "",
            GOOD_BLOCK,
            ImageReadError,
            "absurd",
        ),
        (
            GOOD_IMAGE.replace("/>", ' compression="zstd+sh:24"/>'),
            "",
            GOOD_BLOCK,
            ImageReadError,
            "item size",
        ),
        (
            GOOD_IMAGE.replace("/>", ' checksum="md5:abcd"/>'),
            "",
            GOOD_BLOCK,
            ImageReadError,
            "checksum",
        ),
        (
            GOOD_IMAGE.replace("/>", ' byteOrder="middle"/>'),
            "",
            GOOD_BLOCK,
            ImageReadError,
            "byteOrder",
        ),
        (
            GOOD_IMAGE.replace("/>", ' pixelStorage="Tiled"/>'),
            "",
            GOOD_BLOCK,
            ImageReadError,
            "pixelStorage",
        ),
    ],
)
def test_malformed_header(
    tmp_path: Path, image_xml: str, extra: str, block: bytes, exc: type[Exception], match: str
) -> None:
    path = craft(tmp_path / "m.xisf", image_xml, block, extra_xml=extra)
    with raises_naming(path, exc, match):
        xisf.read_header(path)
    with raises_naming(path, exc, match):
        xisf.read(path)


@pytest.mark.parametrize(
    ("location", "match"),
    [
        ('location="inline:base64">AAAA!!!!', "corrupt base64"),
        ('location="inline:hex">0g', "corrupt hex"),
        ('location="inline:base64">AAAA', "holds 3 bytes"),
        ('location="inline:rot13">AAAA', "encoding"),
    ],
)
def test_malformed_inline_data(tmp_path: Path, location: str, match: str) -> None:
    path = craft(
        tmp_path / "i.xisf", f'<Image geometry="4:3:1" sampleFormat="UInt16" {location}</Image>'
    )
    with raises_naming(path, ImageReadError, match):
        xisf.read(path)


@pytest.mark.parametrize("compression", ["zlib", "zlib+sh", "lz4", "lz4hc+sh", "zstd", "zstd+sh"])
def test_corrupt_compressed_block(tmp_path: Path, compression: str) -> None:
    x = np.random.default_rng(5).random((20, 30), dtype=np.float32)
    path = tmp_path / "z.xisf"
    xisf.write(path, Image(data=x), sample_format="uint16", compression=compression)
    offset, size = block_span(path)
    raw = bytearray(path.read_bytes())
    raw[offset : offset + size] = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path.write_bytes(bytes(raw))
    with raises_naming(path, ImageReadError, compression.removesuffix("+sh")):
        xisf.read(path)


def test_wrong_declared_uncompressed_size(tmp_path: Path) -> None:
    packed = zstandard.ZstdCompressor().compress(GOOD_BLOCK + GOOD_BLOCK)  # 48 bytes, declared 24
    path = craft(
        tmp_path / "w.xisf",
        '<Image geometry="4:3:1" sampleFormat="UInt16" compression="zstd:24" '
        f'location="attachment:{{pos}}:{len(packed)}"/>',
        packed,
    )
    with raises_naming(path, ImageReadError, "zstd"):
        xisf.read(path)
    zipped = zlib.compress(GOOD_BLOCK)[:-6]  # cut stream
    path = craft(
        tmp_path / "t.xisf",
        '<Image geometry="4:3:1" sampleFormat="UInt16" compression="zlib:24" '
        f'location="attachment:{{pos}}:{len(zipped)}"/>',
        zipped,
    )
    with raises_naming(path, ImageReadError, "zlib"):
        xisf.read(path)


def test_bad_sub_block_table(tmp_path: Path) -> None:
    packed = zlib.compress(GOOD_BLOCK)
    path = craft(
        tmp_path / "sb.xisf",
        '<Image geometry="4:3:1" sampleFormat="UInt16" compression="zlib:24" '
        f'subblocks="{len(packed)},20" location="attachment:{{pos}}:{len(packed)}"/>',
        packed,
    )
    with raises_naming(path, ImageReadError, "sub-block"):
        xisf.read(path)


def test_truncated_written_file(tmp_path: Path) -> None:
    path = tmp_path / "t.xisf"
    xisf.write(path, Image(data=np.zeros((50, 60), np.float32)))
    path.write_bytes(path.read_bytes()[:-100])
    with raises_naming(path, ImageReadError, "truncated"):
        xisf.read(path)


def test_missing_file(tmp_path: Path) -> None:
    with raises_naming(tmp_path / "nope.xisf", ImageReadError, "cannot open"):
        xisf.read(tmp_path / "nope.xisf")


# ------------------------------------------------------------------ files written by PixInsight

U16 = 1 / 65535
EXPECTED: dict[str, tuple[tuple[int, ...], str, list[float]]] = {
    "XisfSharp/200x150-u16-zstd-shuffle-process-history-display-function-icc-sha1.xisf": (
        (150, 200),
        "uint16",
        [32768 * U16],
    ),
    "XisfSharp/400x300-f32.xisf": ((300, 400), "float32", [0.5]),
    "XisfSharp/400x300-u16.xisf": ((300, 400), "uint16", [32768 * U16]),
    "XisfSharp/400x300-u32.xisf": ((300, 400), "uint32", [2147483648 / 4294967295]),
    "XisfSharp/400x300-u8.xisf": ((300, 400), "uint8", [128 / 255]),
    "XisfSharp/40x30-u16-embedded.xisf": ((30, 40), "uint16", [32768 * U16]),
    **{
        f"XisfSharp/400x300-u16-{v}.xisf": ((300, 400), "uint16", [42 * U16])
        for v in (
            "lz4",
            "lz4-shuffle",
            "lz4hc",
            "zlib",
            "zlib-shuffle",
            "zstd",
            "zstd-shuffle",
            "sha1",
            "sha256",
        )
    },
    **{
        f"vrruiz_xisfits/xisf-image-{g}-256x256-8bits.xisf": ((256, 256), "uint8", [1.0])
        for g in ("gray", "grey")
    },
    **{
        f"vrruiz_xisfits/xisf-image-{g}-256x256-float-{b}bits.xisf": (
            (255, 255),
            f"float{b}",
            [1.0],
        )
        for g in ("gray", "grey")
        for b in (32, 64)
    },
    "vrruiz_xisfits/xisf-image-rgb-256x256-16bits.xisf": (
        (3, 256, 256),
        "uint16",
        [1.0, 0.5 + U16 / 2, 16384 * U16],
    ),
    "vrruiz_xisfits/xisf-image-rgb-256x256-8bits.xisf": (
        (3, 256, 256),
        "uint8",
        [1.0, 128 / 255, 64 / 255],
    ),
    "vrruiz_xisfits/xisf-image-rgb-256x256-8bits-compressed.xisf": ((256, 256), "uint8", [1.0]),
}
VARYING = {"vrruiz_xisfits/xisf-image-gray-256x256-16bits-zlib.xisf", "wrenby_xisf/test.xisf"}


def test_every_real_file_is_covered(realdata: Path) -> None:
    found = {str(p.relative_to(realdata / "xisf")) for p in (realdata / "xisf").rglob("*.xisf")}
    assert found == set(EXPECTED) | VARYING


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_constant_files(realdata: Path, name: str) -> None:
    shape, fmt, values = EXPECTED[name]
    path = realdata / "xisf" / name
    header = xisf.read_header(path)
    assert header.shape == shape and header.sample_format == fmt
    img = xisf.read(path)
    assert img.data.shape == shape and img.data.dtype == np.float32 and img.sample_format == fmt
    planes = img.data if img.data.ndim == 3 else img.data[None]
    for plane, value in zip(planes, values, strict=True):
        assert plane.min() == plane.max()
        np.testing.assert_allclose(plane[0, 0], value, rtol=1e-6)
    assert img.properties["XISF:CreatorApplication"].startswith("PixInsight")


def test_real_zlib_file_matches_direct_decode(realdata: Path) -> None:
    path = realdata / "xisf/vrruiz_xisfits/xisf-image-gray-256x256-16bits-zlib.xisf"
    raw = path.read_bytes()
    truth = np.frombuffer(zlib.decompress(raw[1243 : 1243 + 39639]), "<u2").reshape(256, 256)
    img = xisf.read(path)
    assert img.sample_format == "uint16" and len(np.unique(truth)) > 10
    assert np.array_equal(np.rint(img.data.astype(np.float64) * 65535), truth)


def test_real_kstars_file_keywords_and_pixels(realdata: Path) -> None:
    img = xisf.read(realdata / "xisf/wrenby_xisf/test.xisf")
    counts = np.rint(img.data.astype(np.float64) * 65535)
    assert img.data.shape == (10, 8) and img.sample_format == "uint16"
    assert counts[0].tolist() == [5, 7, 4, 2, 1, 1, 1, 5]
    # the capture software recorded the statistics of these very pixels
    assert counts.min() == img.get("DATAMIN") == 0.0 and counts.max() == img.get("DATAMAX") == 9.0
    assert np.median(counts) == img.get("MEDIAN1") == 5.0  # (its MEAN1/STDDEV1 do not match)
    assert counts.sum() == 390
    assert img.get("EXPTIME") == 1.0 and img.get("FILTER") == "Red" and img.get("FOCUSPOS") == 50000
    assert img.get("OBJCTRA") == "23 57 19.63" and img.get("DATE-OBS") == "2023-01-25T16:26:06.994"
    assert img.row_order == "TOP-DOWN" and img.get("BZERO") is None
    assert img.keywords[0] == Keyword(
        "COMMENT", "FITS (Flexible Image Transport System) format is defined in 'Astronomy", ""
    )


def test_real_processing_history_property(realdata: Path) -> None:
    path = (
        realdata
        / "xisf/XisfSharp/200x150-u16-zstd-shuffle-process-history-display-function-icc-sha1.xisf"
    )
    props = xisf.read_header(path).properties
    assert len(props["PixInsight:ProcessingHistory"]) == 14357
    assert props["PixInsight:ProcessingHistory"].startswith('<?xml version="1.0"')
    assert props["XISF:CompressionLevel"] == 0


@pytest.mark.parametrize(
    "name", ["XisfSharp/400x300-u16-sha1.xisf", "XisfSharp/400x300-u16-sha256.xisf"]
)
def test_real_checksum_files_detect_damage(realdata: Path, tmp_path: Path, name: str) -> None:
    copy = tmp_path / "damaged.xisf"
    shutil.copyfile(realdata / "xisf" / name, copy)
    raw = bytearray(copy.read_bytes())
    raw[4096 + 1000] ^= 0x01
    copy.write_bytes(bytes(raw))
    with raises_naming(copy, ChecksumError, "checksum"):
        xisf.read(copy)


def test_zstd_frame_declaring_a_huge_size_is_refused_before_allocation(tmp_path: Path) -> None:
    # magic, descriptor (8-byte content size, single segment), size 2**40, one empty last block
    frame = b"\x28\xb5\x2f\xfd\xe0" + struct.pack("<Q", 2**40) + b"\x01\x00\x00"
    path = craft(
        tmp_path / "bomb.xisf",
        '<Image geometry="4:3:1" sampleFormat="UInt16" compression="zstd:24" '
        f'location="attachment:{{pos}}:{len(frame)}"/>',
        frame,
    )
    with raises_naming(path, ImageReadError, "zstd.*1099511627776"):
        xisf.read(path)


def test_only_the_first_image_is_read_and_thumbnails_are_ignored(tmp_path: Path) -> None:
    first = np.full(12, 1000, dtype="<u2").tobytes()
    path = craft(
        tmp_path / "two.xisf",
        '<Image geometry="4:3:1" sampleFormat="UInt16" location="attachment:{pos}:24">'
        # a thumbnail pointing past the end of the file, as some PixInsight files have
        '<Thumbnail geometry="320:400:1" sampleFormat="UInt8" '
        'location="attachment:8192000:128000"/>'
        '</Image><Image geometry="2:2:1" sampleFormat="Float32" location="attachment:{pos}:16"/>',
        first,
    )
    img = xisf.read(path)
    assert img.data.shape == (3, 4) and img.sample_format == "uint16"
    assert np.all(img.data == np.float32(1000) * np.float32(1 / 65535))
