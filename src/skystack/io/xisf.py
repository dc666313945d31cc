"""XISF 1.0 codec for monolithic files (PixInsight's native format).

Reads attached, inline (base64/hex) and embedded data blocks; UInt8/16/32, Int8/16/32 and
Float32/64 samples; Gray and RGB; Planar and Normal pixel storage; both byte orders; zlib, lz4,
lz4hc and zstd compression with or without byte shuffling, in one block or in sub-blocks; and
verifies SHA-1/SHA-2/SHA-3 block checksums. Writes monolithic files with the pixel block attached
at a 4096-byte boundary, optionally compressed and check-summed.

Only the first ``<Image>`` is read; thumbnails, ICC profiles, display functions and further
images are ignored. The XML header is parsed with :mod:`xml.etree.ElementTree` after refusing
any DTD, and every size and offset is checked against the file before memory is allocated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import struct
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import accumulate
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from skystack import __version__
from skystack.errors import ChecksumError, ImageReadError, ImageWriteError, UnsupportedFormatError
from skystack.io.image import Header, Image, Keyword, KeywordValue, from_unit_range, to_unit_range

__all__ = ["COMPRESSIONS", "NAMESPACE", "SIGNATURE", "read", "read_header", "write"]

SIGNATURE = b"XISF0100"
NAMESPACE = "http://www.pixinsight.com/xisf"
BLOCK_ALIGNMENT = 4096
#: Largest data block we agree to allocate (16 GiB): anything above is a corrupt header.
MAX_BLOCK_BYTES = 2**34
MAX_HEADER_BYTES = 2**28
#: Compressed data is split into sub-blocks of this size (lz4 blocks cannot exceed ~2 GiB).
SUBBLOCK_BYTES = 2**30
#: Attached property blocks larger than this are skipped (properties are metadata, not pixels).
MAX_PROPERTY_BLOCK_BYTES = 2**26

CODECS = ("zlib", "lz4", "lz4hc", "zstd")
#: Values accepted by :func:`write`'s ``compression`` option.
COMPRESSIONS: tuple[str | None, ...] = (None, *CODECS, *(c + "+sh" for c in CODECS))

# fmt: off
#: XISF sample format → little-endian NumPy type (the byte order is applied per block).
_SAMPLE_TYPES: dict[str, str] = {
    "UInt8": "u1", "UInt16": "u2", "UInt32": "u4", "Int8": "i1", "Int16": "i2", "Int32": "i4",
    "Float32": "f4", "Float64": "f8",
}
_HASHES: dict[str, str] = {
    "sha1": "sha1", "sha-1": "sha1", "sha256": "sha256", "sha-256": "sha256",
    "sha512": "sha512", "sha-512": "sha512", "sha3-256": "sha3_256", "sha3-512": "sha3_512",
}
#: Element type of vector/matrix properties (``F32Vector``, ``UI16Matrix``...) → NumPy type.
_ELEMENT_TYPES: dict[str, str] = {
    "I8": "i1", "UI8": "u1", "I16": "i2", "UI16": "u2", "I32": "i4", "UI32": "u4",
    "I64": "i8", "UI64": "u8", "F32": "f4", "F64": "f8", "C32": "c8", "C64": "c16",
}
# fmt: on
_XISF_NAMES: dict[str, str] = {np.dtype(v).name: k for k, v in _SAMPLE_TYPES.items()}
_WRITE_FORMATS = ("uint8", "uint16", "uint32", "float32", "float64")
_INT_TYPES = {f"{sign}Int{bits}" for sign in ("", "U") for bits in (8, 16, 32, 64, 128)}
_FLOAT_TYPES = {"Float32", "Float64", "Float128"}
_COMPLEX_TYPES = {"Complex32", "Complex64", "Complex128"}
_ARRAY_TYPE = re.compile(r"(I8|UI8|I16|UI16|I32|UI32|I64|UI64|F32|F64|C32|C64)(Vector|Matrix)\Z")

# FITS structural keywords describe a FITS file's storage, not XISF pixels (as in fits.py).
_STRUCTURAL = re.compile(
    r"(SIMPLE|BITPIX|NAXIS\d*|EXTEND|BZERO|BSCALE|PCOUNT|GCOUNT|XTENSION|END)\Z"
)
_COMMENTARY = {"COMMENT", "HISTORY", ""}
_ReadBlock = Callable[["_Block"], bytes | bytearray]
_INT_RE = re.compile(r"[+-]?\d+\Z")
_FLOAT_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([EeDd][+-]?\d+)?\Z")


# --------------------------------------------------------------------------- data blocks


@dataclass(frozen=True)
class _Block:
    """Where a data block is and how it is encoded (XISF 1.0 §8)."""

    kind: str  # "attachment" | "inline" | "embedded"
    position: int = 0
    size: int = 0  # stored bytes of an attachment
    text: str | None = None  # encoded data of an inline/embedded block
    encoding: str = "base64"
    codec: str | None = None
    shuffle: bool = False
    raw_size: int | None = None  # uncompressed size declared by `compression`
    item_size: int = 1
    subblocks: tuple[tuple[int, int], ...] = ()
    checksum: tuple[str, str] | None = None  # (hashlib name, hex digest)
    big_endian: bool = False


def _local(tag: str) -> str:
    """Element name without its namespace."""
    return tag.rsplit("}", 1)[-1]


def _child(elem: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in elem if _local(c.tag) == name), None)


def _int(text: str, path: Path, what: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ImageReadError(path, f"{what} is not an integer: {text!r}") from None
    if value < 0:
        raise ImageReadError(path, f"{what} is negative: {value}")
    return value


def _parse_block(elem: ET.Element, path: Path, file_size: int) -> _Block:
    """Read an element's data-block attributes, checking offsets against the file size."""
    location = elem.get("location", "").strip()
    if location.startswith(("url(", "path(")):
        raise UnsupportedFormatError(
            path, "distributed XISF (pixels in another file) is not supported"
        )
    attrs = dict(elem.attrib)
    parts = location.split(":")
    kind = parts[0].strip().lower()
    fields: dict[str, Any] = {}
    if kind == "attachment":
        if len(parts) != 3:
            raise ImageReadError(path, f"malformed block location {location!r}")
        pos = _int(parts[1], path, "attachment position")
        size = _int(parts[2], path, "attachment size")
        if pos < len(SIGNATURE) or pos + size > file_size:
            msg = (
                f"data block at bytes {pos}..{pos + size} lies outside the file "
                f"({file_size} bytes) — the file is truncated; copy it again"
            )
            raise ImageReadError(path, msg)
        fields.update(position=pos, size=size)
    elif kind == "inline":
        fields.update(text=elem.text or "", encoding=(parts[1] if len(parts) > 1 else "").lower())
    elif kind == "embedded":
        data = _child(elem, "Data")
        if data is None:
            raise ImageReadError(path, "embedded data block without a <Data> element")
        attrs.update(data.attrib)  # compression/checksum may sit on <Data>
        fields.update(text=data.text or "", encoding=data.get("encoding", "base64").lower())
    else:
        raise ImageReadError(path, f"unknown data block location {location!r}")
    if "encoding" in fields and fields["encoding"] not in ("base64", "hex"):
        raise ImageReadError(path, f"unknown block encoding {fields['encoding']!r}")

    if attrs.get("compression"):
        fields.update(_parse_compression(attrs["compression"], path))
    if attrs.get("subblocks"):
        fields["subblocks"] = _parse_subblocks(attrs["subblocks"], path)
    if attrs.get("checksum"):
        algo, _, digest = attrs["checksum"].partition(":")
        if algo.strip().lower() not in _HASHES or not digest:
            raise ImageReadError(path, f"unsupported block checksum {attrs['checksum']!r}")
        fields["checksum"] = (_HASHES[algo.strip().lower()], digest.strip().lower())
    order = attrs.get("byteOrder", "little").strip().lower()
    if order not in ("little", "big"):
        raise ImageReadError(path, f"unknown byteOrder {order!r}")
    fields["big_endian"] = order == "big"
    return _Block(kind=kind, **fields)


def _parse_compression(text: str, path: Path) -> dict[str, Any]:
    parts = text.split(":")
    codec = parts[0].strip().lower()
    shuffle = codec.endswith("+sh")
    codec = codec.removesuffix("+sh")
    if codec not in CODECS:
        raise UnsupportedFormatError(path, f"unknown compression codec {parts[0]!r}")
    if len(parts) < 2:
        raise ImageReadError(path, f"compression {text!r} lacks the uncompressed size")
    raw_size = _int(parts[1], path, "uncompressed block size")
    if raw_size > MAX_BLOCK_BYTES:
        raise ImageReadError(path, f"absurd uncompressed block size {raw_size} bytes")
    item = _int(parts[2], path, "shuffle item size") if len(parts) > 2 else 1
    if shuffle and len(parts) < 3:
        raise ImageReadError(path, f"byte-shuffled compression {text!r} lacks the item size")
    if not 1 <= item <= 16:
        raise ImageReadError(path, f"invalid shuffle item size {item}")
    return {"codec": codec, "shuffle": shuffle, "raw_size": raw_size, "item_size": item}


def _parse_subblocks(text: str, path: Path) -> tuple[tuple[int, int], ...]:
    out = []
    for pair in text.split(":"):
        stored, _, raw = pair.partition(",")
        out.append((_int(stored, path, "sub-block size"), _int(raw, path, "sub-block size")))
    return tuple(out)


def _stored_bytes(block: _Block, fh: BinaryIO | None, path: Path) -> bytes | bytearray:
    """The block's bytes as stored (compressed, not yet text-decoded for attachments)."""
    if block.kind == "attachment":
        assert fh is not None
        # np.empty: no zero-fill of a buffer that is overwritten at once (bytearray would
        # spend ~40 % of an uncompressed read clearing memory)
        buf = np.empty(block.size, np.uint8)
        fh.seek(block.position)
        if fh.readinto(memoryview(buf)) != block.size:
            raise ImageReadError(path, "file ended inside a data block — it is truncated")
        return buf
    text = block.text or ""
    try:
        if block.encoding == "hex":
            return bytes.fromhex(text)
        return base64.b64decode("".join(text.split()), validate=True)
    except (ValueError, binascii.Error) as err:
        raise ImageReadError(path, f"corrupt {block.encoding} data block: {err}") from None


def _decode_block(block: _Block, stored: bytes | bytearray, path: Path) -> bytes | bytearray:
    """Verify, decompress and unshuffle a stored block into its raw bytes."""
    if block.checksum is not None:
        algo, expected = block.checksum
        actual = hashlib.new(algo, stored).hexdigest()
        if actual != expected:
            msg = (
                f"data block checksum mismatch ({algo}: file says {expected[:12]}…, data gives "
                f"{actual[:12]}…) — the file is damaged; copy it again"
            )
            raise ChecksumError(path, msg)
    if block.codec is None:
        return stored
    raw_size = block.raw_size or 0
    pieces = block.subblocks or ((len(stored), raw_size),)
    if sum(s for s, _ in pieces) != len(stored) or sum(r for _, r in pieces) != raw_size:
        raise ImageReadError(path, "compressed sub-block sizes do not add up to the block size")
    view, starts = memoryview(stored), accumulate((s for s, _ in pieces), initial=0)
    parts = [
        _decompress(block.codec, view[start : start + size], raw, path)
        for start, (size, raw) in zip(starts, pieces, strict=False)
    ]
    out = parts[0] if len(parts) == 1 else b"".join(parts)  # one piece: no copy
    if block.shuffle and block.item_size > 1:
        return _unshuffle(out, block.item_size)
    return out


def _decompress(codec: str, data: memoryview, size: int, path: Path) -> bytes:
    """Decompress one (sub-)block, never producing more than ``size`` bytes."""
    out = b""
    try:
        if codec == "zlib":
            z = zlib.decompressobj()
            out = z.decompress(data, size) if size else b""  # max_length=0 would mean "no limit"
            if z.unconsumed_tail:
                raise zlib.error(f"stream holds more than the declared {size} bytes")
            if not z.eof:
                raise zlib.error("stream is truncated")
        elif codec in ("lz4", "lz4hc"):
            import lz4.block

            out = lz4.block.decompress(data, uncompressed_size=size) if size else b""
        else:
            import zstandard

            declared = zstandard.frame_content_size(data)
            if declared not in (-1, size):  # refuse before zstd allocates what the frame says
                raise ValueError(f"frame declares {declared} bytes instead of {size}")
            out = (
                zstandard.ZstdDecompressor().decompress(data, max_output_size=size) if size else b""
            )
    except Exception as err:  # each codec library has its own error class
        raise ImageReadError(path, f"corrupt {codec}-compressed data block: {err}") from None
    if len(out) != size:
        msg = f"{codec} data block decompressed to {len(out)} bytes, expected {size}"
        raise ImageReadError(path, msg)
    return out


def _byte_transpose(data: Any, rows: int, cols: int) -> bytearray:
    """Transpose the first rows*cols bytes as a (rows, cols) matrix; copy the tail unchanged."""
    src = np.frombuffer(data, dtype=np.uint8)
    out = bytearray(src.size)
    dst = np.frombuffer(out, dtype=np.uint8)
    body_in, body_out = (
        src[: rows * cols].reshape(rows, cols),
        dst[: rows * cols].reshape(cols, rows),
    )
    if cols <= rows:  # one strided copy per short row (much faster than .T.copy())
        for j in range(cols):
            body_out[j] = body_in[:, j]
    else:
        for i in range(rows):
            body_out[:, i] = body_in[i]
    dst[rows * cols :] = src[rows * cols :]
    return out


def _shuffle(data: Any, item_size: int) -> bytearray:
    """XISF byte shuffling: byte plane j holds byte j of every item; the tail is kept."""
    return _byte_transpose(data, len(memoryview(data).cast("B")) // item_size, item_size)


def _unshuffle(data: Any, item_size: int) -> bytearray:
    """Inverse of :func:`_shuffle`."""
    return _byte_transpose(data, item_size, len(memoryview(data).cast("B")) // item_size)


# --------------------------------------------------------------------------- values


def _keyword_value(text: str) -> KeywordValue:
    """Parse a FITSKeyword value as FITS does: 'quoted' → str, T/F → bool, numbers → int/float."""
    s = text.strip()
    if not s:
        return None
    if s[0] == "'":
        inner = s[1:-1] if len(s) > 1 and s.endswith("'") else s[1:]
        return inner.replace("''", "'").rstrip()  # trailing blanks are not significant in FITS
    if s in ("T", "F"):
        return s == "T"
    if _INT_RE.match(s):
        return int(s)
    if _FLOAT_RE.match(s):
        return float(s.replace("D", "E").replace("d", "e"))
    return s  # some writers leave strings unquoted


def _format_keyword_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "T" if value else "F"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return repr(float(value)).upper()  # repr round-trips; FITS wants an upper-case exponent
    return "'" + str(value).replace("'", "''") + "'"


def _parse_scalar(ptype: str, text: str) -> Any:
    if ptype == "Boolean":
        return text.strip().lower() in ("true", "1")
    if ptype in _INT_TYPES:
        return int(text)
    if ptype in _FLOAT_TYPES:
        return float(text)
    if ptype in _COMPLEX_TYPES:
        re_, _, im = text.strip().strip("()").partition(",")
        return complex(float(re_), float(im))
    return text  # String, TimePoint and unknown types


def _property_value(
    elem: ET.Element,
    path: Path,
    file_size: int,
    read_block: _ReadBlock | None,
) -> tuple[bool, Any]:
    """(present, value) of a ``<Property>``.

    Values stored in data blocks are decoded; attached ones only when ``read_block`` is given
    (a header-only read skips them) and they are not huge.
    """
    ptype = elem.get("type", "String")
    array = _ARRAY_TYPE.match(ptype)
    if not elem.get("location"):
        if array is not None:
            return True, np.zeros(0, dtype=_ELEMENT_TYPES[array.group(1)])
        text = elem.get("value")
        return True, _safe_scalar(ptype, elem.text or "" if text is None else text)
    block = _parse_block(elem, path, file_size)
    if block.kind == "attachment":
        if read_block is None or block.size > MAX_PROPERTY_BLOCK_BYTES:
            return False, None
        raw = read_block(block)
    else:  # inline and embedded data are already in the header
        raw = _decode_block(block, _stored_bytes(block, None, path), path)
    if array is None:
        text = bytes(raw).decode("utf-8", errors="replace")
        return True, text if ptype == "String" else _safe_scalar(ptype, text)
    dtype = np.dtype(_ELEMENT_TYPES[array.group(1)]).newbyteorder(">" if block.big_endian else "<")
    pid = elem.get("id")
    if len(raw) % dtype.itemsize:
        raise ImageReadError(
            path, f"property {pid!r}: block size is not a multiple of {dtype.itemsize}"
        )
    values = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
    if array.group(2) == "Matrix":
        rows, cols = int(elem.get("rows", 0)), int(elem.get("columns", 0))
        if rows * cols != values.size:
            msg = f"property {pid!r}: a {rows}x{cols} matrix cannot hold {values.size} elements"
            raise ImageReadError(path, msg)
        values = values.reshape(rows, cols)
    return True, values


def _safe_scalar(ptype: str, text: str) -> Any:
    try:
        return _parse_scalar(ptype, text)
    except ValueError:
        return text  # a malformed value must not make the image unreadable


# --------------------------------------------------------------------------- header


@dataclass
class _Parsed:
    header: Header
    block: _Block
    dtype: np.dtype[Any]
    geometry: tuple[int, int, int]  # (width, height, channels)
    normal_storage: bool


def _read_xml(fh: BinaryIO, path: Path, file_size: int) -> ET.Element:
    head = fh.read(16)
    if len(head) < 16:
        raise ImageReadError(
            path, f"file is truncated ({len(head)} bytes; an XISF file has a 16-byte preamble)"
        )
    if head[:8] != SIGNATURE:
        if head[:4] == b"XISF":
            raise UnsupportedFormatError(
                path, f"unsupported XISF version {head[:8]!r} (only XISF0100)"
            )
        raise ImageReadError(path, "not an XISF file (the signature XISF0100 is missing)")
    (length,) = struct.unpack("<I", head[8:12])
    if length == 0 or length > MAX_HEADER_BYTES:
        raise ImageReadError(path, f"invalid XML header length {length}")
    if 16 + length > file_size:
        raise ImageReadError(
            path,
            f"XML header of {length} bytes runs past the end of the "
            f"{file_size}-byte file — the file is truncated; copy it again",
        )
    xml = fh.read(length)
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        raise ImageReadError(
            path, "XML header contains a DTD or entity declaration (refused for safety)"
        )
    try:
        root = ET.fromstring(xml.rstrip(b"\x00 \t\r\n"))
    except ET.ParseError as err:
        raise ImageReadError(path, f"XML header is malformed: {err}") from None
    if _local(root.tag) != "xisf":
        raise ImageReadError(path, f"XML root element is <{_local(root.tag)}>, expected <xisf>")
    return root


def _parse(fh: BinaryIO, path: Path, read_block: _ReadBlock | None) -> _Parsed:
    """Parse the header of an open file; ``read_block`` decodes attached property blocks."""
    file_size = os.fstat(fh.fileno()).st_size
    root = _read_xml(fh, path, file_size)
    image = _child(root, "Image")
    if image is None:
        raise ImageReadError(path, "no <Image> element in the XISF header")
    block, dtype, geometry = _pixel_layout(image, path, file_size)
    storage = image.get("pixelStorage", "Planar").strip().lower()
    if storage not in ("planar", "normal"):
        raise ImageReadError(path, f"unknown pixelStorage {image.get('pixelStorage')!r}")

    keywords = [_keyword(k) for k in image if _local(k.tag) == "FITSKeyword"]
    keywords = [k for k in keywords if not _STRUCTURAL.match(k.name)]
    properties: dict[str, Any] = {}
    metadata = _child(root, "Metadata")
    # File-level metadata first, image properties last so they win on a clash.
    for elem in [*(metadata if metadata is not None else []), *root, *image]:
        if _local(elem.tag) == "Property" and elem.get("id"):
            present, value = _property_value(elem, path, file_size, read_block)
            if present:
                properties[elem.get("id", "")] = value

    _, sample_format, data_range = to_unit_range(np.empty(0, dtype=dtype))
    width, height, channels = geometry
    header = Header(
        path=str(path),
        format="xisf",
        shape=(height, width) if channels == 1 else (channels, height, width),
        sample_format=sample_format,
        keywords=keywords,
        properties=properties,
        bayer_pattern=_bayer_pattern(image, keywords, properties),
        row_order=_row_order(keywords),
        data_range=data_range,
    )
    return _Parsed(header, block, dtype, geometry, storage == "normal")


def _pixel_layout(
    image: ET.Element, path: Path, file_size: int
) -> tuple[_Block, np.dtype[Any], tuple[int, int, int]]:
    """The pixel block, sample type and (width, height, channels), checked against each other."""
    geometry = image.get("geometry", "").split(":")
    if len(geometry) != 3:
        if len(geometry) > 3:
            raise UnsupportedFormatError(path, f"{len(geometry) - 1}-D images are not supported")
        raise ImageReadError(path, f"malformed image geometry {image.get('geometry')!r}")
    width, height, channels = (_int(g, path, "image geometry") for g in geometry)
    if min(width, height, channels) < 1:
        raise ImageReadError(path, f"empty image geometry {image.get('geometry')!r}")
    fmt = image.get("sampleFormat", "")
    if fmt not in _SAMPLE_TYPES:
        raise UnsupportedFormatError(path, f"unsupported sample format {fmt!r}")
    block = _parse_block(image, path, file_size)
    dtype = np.dtype(_SAMPLE_TYPES[fmt]).newbyteorder(">" if block.big_endian else "<")
    dims = f"{width}x{height}x{channels} {fmt}"
    nbytes = width * height * channels * dtype.itemsize
    if nbytes > MAX_BLOCK_BYTES:
        raise ImageReadError(path, f"absurd image geometry {dims} ({nbytes} bytes)")
    declared = block.raw_size if block.codec else block.size
    if (block.codec or block.kind == "attachment") and declared != nbytes:
        msg = f"geometry {dims} needs {nbytes} bytes but the data block holds {declared}"
        raise ImageReadError(path, msg)
    return block, dtype, (width, height, channels)


def _keyword(elem: ET.Element) -> Keyword:
    name = elem.get("name", "").strip().upper()
    value = _keyword_value(elem.get("value", ""))
    comment = elem.get("comment", "")
    if name in _COMMENTARY:
        # PixInsight keeps commentary text in `comment`; astropy (fits.py) gives it as the value.
        text = comment if value is None else f"{value} {comment}".rstrip()
        return Keyword(name, text, "")
    return Keyword(name, value, comment)


def _bayer_pattern(
    image: ET.Element, keywords: list[Keyword], properties: dict[str, Any]
) -> str | None:
    candidates = [properties.get("PCL:CFASourcePattern")]
    candidates += [k.value for k in keywords if k.name == "BAYERPAT"]
    cfa = _child(image, "ColorFilterArray")
    candidates.append(cfa.get("pattern") if cfa is not None else None)
    for value in candidates:
        if isinstance(value, str) and value.strip():
            return value.strip().upper()
    return None


def _row_order(keywords: list[Keyword]) -> str | None:
    value = next((k.value for k in keywords if k.name == "ROWORDER"), None)
    return value.strip().upper() if isinstance(value, str) and value.strip() else None


# --------------------------------------------------------------------------- public reading


def _open(path: Path) -> BinaryIO:
    try:
        return open(path, "rb", buffering=0)
    except OSError as err:
        raise ImageReadError(path, f"cannot open: {err.strerror or err}") from err


def read_header(path: str | Path) -> Header:
    """Read an XISF file's metadata without reading its pixel data.

    Parameters
    ----------
    path : str or Path
        A monolithic XISF 1.0 file.

    Returns
    -------
    Header
        Shape ((H, W) or (C, H, W)), sample format, FITS keywords, properties (attached property
        blocks are skipped; inline and embedded ones are decoded), bayer pattern and row order.

    Raises
    ------
    ImageReadError
        The file is not a readable XISF file; the message names it and the problem.
    """
    p = Path(path)
    with _open(p) as fh:
        return _parse(fh, p, None).header


def read(path: str | Path) -> Image:
    """Read the first image of an XISF file as float32 in [0, 1].

    Parameters
    ----------
    path : str or Path
        A monolithic XISF 1.0 file.

    Returns
    -------
    Image
        Data of shape (H, W) or (C, H, W); integers divided by their type's maximum, floats
        kept as stored; keywords, properties, sample format, bayer pattern and row order.

    Raises
    ------
    ImageReadError
        Truncated or malformed file, corrupt compressed data, impossible geometry.
    ChecksumError
        A block checksum does not match (a subclass of ImageReadError).
    """
    p = Path(path)
    with _open(p) as fh:

        def read_block(block: _Block) -> bytes | bytearray:
            return _decode_block(block, _stored_bytes(block, fh, p), p)

        parsed = _parse(fh, p, read_block)
        raw = read_block(parsed.block)
    width, height, channels = parsed.geometry
    count = width * height * channels
    if len(raw) != count * parsed.dtype.itemsize:
        msg = f"data block holds {len(raw)} bytes, geometry needs {count * parsed.dtype.itemsize}"
        raise ImageReadError(p, msg)
    samples = np.frombuffer(raw, dtype=parsed.dtype, count=count)
    if parsed.normal_storage:  # pixel-interleaved: (H, W, C) in the file
        samples = samples.reshape(height, width, channels).transpose(2, 0, 1)
    else:
        samples = samples.reshape(channels, height, width)
    if channels == 1:
        samples = samples[0]
    data, _, _ = to_unit_range(samples)
    if not data.flags.writeable or not data.flags.c_contiguous:
        data = np.array(data, dtype=np.float32, order="C")
    h = parsed.header
    return Image(
        data=data,
        keywords=h.keywords,
        properties=h.properties,
        sample_format=h.sample_format,
        bayer_pattern=h.bayer_pattern,
        row_order=h.row_order,
        data_range=h.data_range,
        path=str(p),
        format="xisf",
    )


# --------------------------------------------------------------------------- writing


def _compress(codec: str, data: memoryview, level: int | None) -> bytes:
    if codec == "zlib":
        return zlib.compress(data, 6 if level is None else level)
    if codec in ("lz4", "lz4hc"):
        import lz4.block

        if codec == "lz4hc":
            return lz4.block.compress(
                data, mode="high_compression", compression=level or 9, store_size=False
            )
        return lz4.block.compress(data, store_size=False)
    import zstandard

    return zstandard.ZstdCompressor(level=3 if level is None else level).compress(data)


def _property_element(pid: str, value: Any) -> ET.Element:
    """A typed ``<Property>`` element (unknown Python types are stored as strings)."""
    attrs = {"id": pid}
    text: str | None = None
    if isinstance(value, bool | np.bool_):
        attrs.update(type="Boolean", value="true" if value else "false")
    elif isinstance(value, np.integer) and value.dtype.name in _XISF_NAMES:
        attrs.update(type=_XISF_NAMES[value.dtype.name], value=str(int(value)))
    elif isinstance(value, int | np.integer):
        v = int(value)
        ptype = "Int32" if -(2**31) <= v < 2**31 else "Int64" if -(2**63) <= v < 2**63 else "UInt64"
        attrs.update(type=ptype, value=str(v))
    elif isinstance(value, np.float32):
        attrs.update(type="Float32", value=repr(float(value)))
    elif isinstance(value, float | np.floating):
        attrs.update(type="Float64", value=repr(float(value)))
    elif isinstance(value, complex | np.complexfloating):
        attrs.update(type="Complex64", value=f"({value.real!r},{value.imag!r})")
    elif isinstance(value, datetime | date):
        attrs.update(type="TimePoint", value=value.isoformat())
    elif isinstance(value, np.ndarray) and value.ndim in (1, 2) and value.dtype.kind in "iufc":
        code = next(
            (k for k, v in _ELEMENT_TYPES.items() if np.dtype(v) == value.dtype.newbyteorder("=")),
            None,
        )
        arr = value if code else value.astype(np.float64)
        code = code or "F64"
        arr = np.ascontiguousarray(arr, dtype=np.dtype(_ELEMENT_TYPES[code]).newbyteorder("<"))
        if value.ndim == 1:
            attrs.update(type=f"{code}Vector", length=str(arr.size))
        else:
            attrs.update(type=f"{code}Matrix", rows=str(arr.shape[0]), columns=str(arr.shape[1]))
        attrs["location"] = "inline:base64"
        text = base64.b64encode(arr.tobytes()).decode("ascii")
    else:
        attrs["type"] = "String"
        text = str(value)
    elem = ET.Element("Property", attrs)
    elem.text = text
    return elem


def _float_bounds(samples: NDArray[Any]) -> str:
    finite = samples[np.isfinite(samples)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if lo >= 0.0 and hi <= 1.0:
        return "0:1"
    lo, hi = min(lo, 0.0), max(hi, 1.0)
    return f"{lo!r}:{hi!r}"


def _header_xml(image: Image, image_attrs: dict[str, str], metadata: dict[str, Any]) -> bytes:
    root = ET.Element(
        "xisf",
        {
            "version": "1.0",
            "xmlns": NAMESPACE,
            "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
            "xsi:schemaLocation": f"{NAMESPACE} http://pixinsight.com/xisf/xisf-1.0.xsd",
        },
    )
    elem = ET.SubElement(root, "Image", image_attrs)
    for card in image.keywords:
        name = card.name.strip().upper()
        if _STRUCTURAL.match(name):
            continue  # they describe FITS storage, not this file
        if name in _COMMENTARY:
            attrs = {
                "name": name,
                "value": "",
                "comment": "" if card.value is None else str(card.value),
            }
        else:
            attrs = {
                "name": name,
                "value": _format_keyword_value(card.value),
                "comment": card.comment,
            }
        ET.SubElement(elem, "FITSKeyword", attrs)
    for pid, value in image.properties.items():
        if not pid.startswith("XISF:"):  # unit metadata is regenerated below
            elem.append(_property_element(pid, value))
    if (
        image.bayer_pattern
        and image.data.ndim == 2
        and re.fullmatch(r"[RGB]{4}", image.bayer_pattern)
    ):
        ET.SubElement(
            elem, "ColorFilterArray", {"pattern": image.bayer_pattern, "width": "2", "height": "2"}
        )
    meta = ET.SubElement(root, "Metadata")
    for pid, value in metadata.items():
        meta.append(_property_element(pid, value))
    body = ET.tostring(root, encoding="unicode", short_empty_elements=True)
    return (
        '<?xml version="1.0" encoding="UTF-8"?><!--\nExtensible Image Serialization Format'
        " - XISF version 1.0\nCreated with skystack\n-->" + body
    ).encode("utf-8")


def write(
    path: str | Path,
    image: Image,
    *,
    sample_format: str = "float32",
    compression: str | None = None,
    checksum: str | None = None,
    compression_level: int | None = None,
) -> None:
    """Write ``image`` as a monolithic XISF 1.0 file.

    Parameters
    ----------
    path : str or Path
        Destination (written to a temporary name, then renamed).
    image : Image
        float32 data, (H, W) or (C, H, W). Keywords are stored as ``<FITSKeyword>`` (FITS
        structural ones such as BITPIX/BZERO are dropped: they describe FITS storage), properties
        as typed ``<Property>`` (bool, int, float, complex, str, date/datetime, 1-D/2-D arrays;
        other values as strings; ``XISF:*`` ids are regenerated in ``<Metadata>``), and a mono
        image's bayer pattern as ``<ColorFilterArray>``.
    sample_format : {"float32", "float64", "uint8", "uint16", "uint32"}
        Stored sample type; integers are scaled from [0, 1] and rounded.
    compression : str, optional
        One of :data:`COMPRESSIONS` ("zstd+sh" is the best size/speed trade-off).
    checksum : {"sha1", "sha256", "sha512"}, optional
        Store a checksum of the data block.
    compression_level : int, optional
        Codec level (zlib 6, lz4hc 9 and zstd 3 by default).

    Raises
    ------
    ImageWriteError
        Unknown options, data of the wrong shape, or the file cannot be written.
    """
    p = Path(path)
    if sample_format not in _WRITE_FORMATS:
        raise ImageWriteError(
            f"{p}: XISF sample format must be one of {_WRITE_FORMATS}, got {sample_format!r}"
        )
    if compression not in COMPRESSIONS:
        raise ImageWriteError(
            f"{p}: unknown XISF compression {compression!r}; use one of {COMPRESSIONS[1:]}"
        )
    algo = _HASHES.get((checksum or "").lower()) if checksum else None
    if checksum and algo is None:
        raise ImageWriteError(f"{p}: unknown checksum {checksum!r}; use sha1, sha256 or sha512")
    data = np.asarray(image.data)
    if data.ndim not in (2, 3) or 0 in data.shape:
        raise ImageWriteError(
            f"{p}: image data must be (H, W) or (C, H, W), got shape {data.shape}"
        )
    channels, height, width = (1, *data.shape) if data.ndim == 2 else data.shape
    samples = np.ascontiguousarray(from_unit_range(data, sample_format))
    samples = samples.astype(samples.dtype.newbyteorder("<"), copy=False)
    raw = memoryview(samples).cast("B")

    attrs = {"geometry": f"{width}:{height}:{channels}", "sampleFormat": _XISF_NAMES[sample_format]}
    if sample_format.startswith("float"):
        attrs["bounds"] = _float_bounds(samples)
    attrs.update(colorSpace="RGB" if channels == 3 else "Gray", pixelStorage="Planar")
    stored: list[memoryview | bytes] = [raw]
    if compression:
        codec, shuffle = compression.removesuffix("+sh"), compression.endswith("+sh")
        item = samples.dtype.itemsize
        source = memoryview(_shuffle(raw, item)) if shuffle and item > 1 else raw
        stored = [
            _compress(codec, source[i : i + SUBBLOCK_BYTES], compression_level)
            for i in range(0, len(source), SUBBLOCK_BYTES)
        ]
        attrs["compression"] = f"{compression}:{len(raw)}" + (f":{item}" if shuffle else "")
        if len(stored) > 1:
            sizes = [min(SUBBLOCK_BYTES, len(raw) - i) for i in range(0, len(raw), SUBBLOCK_BYTES)]
            attrs["subblocks"] = ":".join(
                f"{len(s)},{r}" for s, r in zip(stored, sizes, strict=True)
            )
    if algo:
        digest = hashlib.new(algo)
        for part in stored:
            digest.update(part)
        attrs["checksum"] = f"{algo}:{digest.hexdigest()}"
    size = sum(len(part) for part in stored)

    # A creation time given by the caller (or SOURCE_DATE_EPOCH, the reproducible-builds
    # convention) keeps products bit-identical between runs.
    created = image.properties.get("XISF:CreationTime")
    if created is None and os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        created = datetime.fromtimestamp(int(os.environ["SOURCE_DATE_EPOCH"]), UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
    metadata: dict[str, Any] = {
        "XISF:CreationTime": str(created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")),
        "XISF:CreatorApplication": f"skystack {__version__}",
        "XISF:BlockAlignmentSize": np.uint16(BLOCK_ALIGNMENT),
    }
    if compression:
        metadata["XISF:CompressionCodecs"] = compression
    if algo:
        metadata["XISF:ChecksumAlgorithms"] = checksum.lower() if checksum else ""
    # The block offset is written inside the header it follows: grow it until the header fits.
    offset = BLOCK_ALIGNMENT
    while True:
        attrs["location"] = f"attachment:{offset}:{size}"
        xml = _header_xml(image, attrs, metadata)
        needed = -(-(16 + len(xml)) // BLOCK_ALIGNMENT) * BLOCK_ALIGNMENT
        if needed <= offset:
            break
        offset = needed
    tmp = p.with_name(p.name + ".part")
    try:
        with open(tmp, "wb") as fh:
            fh.write(SIGNATURE + struct.pack("<II", len(xml), 0) + xml)
            fh.write(b"\0" * (offset - 16 - len(xml)))
            for part in stored:
                fh.write(part)
        os.replace(tmp, p)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise ImageWriteError(f"{p}: cannot write XISF file: {err.strerror or err}") from err
