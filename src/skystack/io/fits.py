"""FITS backend (astropy.io.fits): read, read_header and write.

What it handles
---------------
- integers of 8/16/32/64 bits with BZERO/BSCALE: unsigned via the standard offsets (BZERO 2^(n-1),
  e.g. 32768 for uint16) and signed data map onto [0, 1] by their type's range; any other scaling
  is "real" and gives float32 physical values (BZERO + BSCALE * stored);
- float32/float64 (kept as they are; BZERO/BSCALE applied when present); BLANK → NaN;
- mono (H, W) and cubes (C, H, W) (leading axes of length 1 are dropped);
- tile-compressed images (``.fz``: Rice, GZIP, HCOMPRESS, PLIO), ``.fits.gz``, and the first image
  HDU of a multi-extension file (its primary header's keywords are added after its own);
- headers with invalid cards: read anyway, with one :class:`FitsHeaderWarning` per file.

Pixels are converted in row chunks straight from the stored (big-endian) samples into the float32
output, so a 16-bit frame costs one pass and no full-size temporary.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from skystack.errors import ImageReadError, ImageWriteError, SkystackWarning
from skystack.io.image import Header, Image, Keyword, KeywordValue, from_unit_range

__all__ = ["FitsHeaderWarning", "read", "read_header", "write", "COMPRESSIONS", "NotPlainFits",
           "PrimaryHeader", "read_primary_header"]


class FitsHeaderWarning(SkystackWarning):
    """A FITS file was read despite problems in its header (invalid cards, missing END...)."""


#: Cards that describe the data layout; they are regenerated on write, never copied.
_STRUCTURAL = frozenset(
    {"SIMPLE", "BITPIX", "NAXIS", "EXTEND", "BZERO", "BSCALE", "BLANK", "PCOUNT", "GCOUNT",
     "XTENSION", "GROUPS", "END", "CHECKSUM", "DATASUM", "INHERIT", "EXTNAME", "EXTVER"}
)
_NAXIS_N = re.compile(r"^NAXIS\d+$")
_COMMENTARY = frozenset({"COMMENT", "HISTORY", ""})
#: A card like ``TEL_FOCUS =  15420 / ...`` (keyword longer than 8 characters, no HIERARCH).
_LONG_KEY = re.compile(r"^([A-Za-z0-9_\-]{1,70}?)\s*=\s?(.*)$")

#: ``compression=`` names accepted by :func:`write` → astropy compression type for integer data.
COMPRESSIONS: dict[str, str] = {"rice": "RICE_1", "gzip": "GZIP_2", "hcompress": "HCOMPRESS_1"}

_CHUNK_BYTES = 1 << 19  # row chunks of ~0.5 MB keep the temporaries in cache


# ----------------------------------------------------------------------------------------------
# Layout: what the stored samples are and how they map onto [0, 1]


@dataclass(frozen=True)
class _Layout:
    """How one image HDU's stored samples become float32."""

    kind: str  # "unsigned", "signed", "scaled", "float"
    sample_format: str
    data_range: tuple[float, float]
    offset_bits: int = 0  # unsigned: XOR this sign bit to get the unsigned value
    bzero: float = 0.0
    bscale: float = 1.0
    blank: int | None = None


_INT_BITPIX = {8: "int8", 16: "int16", 32: "int32", 64: "int64"}


def _layout(header: Any, path: Path) -> _Layout:
    bitpix = int(header.get("BITPIX", 0))
    bzero = float(header.get("BZERO", 0.0) or 0.0)
    bscale = float(header.get("BSCALE", 1.0) or 1.0)
    blank = header.get("BLANK")
    if bitpix in (-32, -64):
        if bzero == 0.0 and bscale == 1.0:
            return _Layout("float", "float32" if bitpix == -32 else "float64", (0.0, 1.0))
        return _Layout("scaled", "float32", (0.0, 1.0), bzero=bzero, bscale=bscale)
    if bitpix not in _INT_BITPIX:
        raise ImageReadError(path, f"BITPIX = {bitpix} is not a valid FITS sample type")
    bits = abs(bitpix)
    numeric = isinstance(blank, int | float) and not isinstance(blank, bool)
    blank_int = int(blank) if numeric else None
    half = 2.0 ** (bits - 1)
    if bscale == 1.0 and bitpix == 8 and bzero in (0.0, -128.0):
        # BITPIX 8 is stored unsigned; BZERO -128 is the signed-byte convention.
        if bzero == 0.0:
            return _Layout("unsigned", "uint8", (0.0, 255.0), blank=blank_int)
        return _Layout("unsigned", "int8", (-128.0, 127.0), blank=blank_int)
    if bscale == 1.0 and bitpix > 8 and bzero == half:
        name = f"uint{bits}"
        return _Layout("unsigned", name, (0.0, 2.0**bits - 1), offset_bits=bits, blank=blank_int)
    if bscale == 1.0 and bzero == 0.0 and bitpix > 8:
        return _Layout("signed", _INT_BITPIX[bitpix], (-half, half - 1), blank=blank_int)
    return _Layout("scaled", "float32", (0.0, 1.0), bzero=bzero, bscale=bscale, blank=blank_int)


def _row_chunks(n_rows: int, row_bytes: int) -> Iterator[slice]:
    step = max(1, _CHUNK_BYTES // max(1, row_bytes))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _converter(layout: _Layout) -> Callable[[NDArray[Any], NDArray[np.float32]], None]:
    """A function converting a block of stored samples into a float32 block in place."""
    if layout.kind == "float":
        def convert(src: NDArray[Any], dst: NDArray[np.float32]) -> None:
            dst[...] = src  # byte swap + (float64 → float32) in one pass
        return convert
    if layout.kind == "scaled":
        bzero, bscale = layout.bzero, layout.bscale

        def convert(src: NDArray[Any], dst: NDArray[np.float32]) -> None:
            np.add(src.astype(np.float64) * bscale, bzero, out=dst, casting="unsafe")
        return convert
    low, high = layout.data_range
    top = high - low
    if layout.kind == "signed":
        def convert(src: NDArray[Any], dst: NDArray[np.float32]) -> None:
            np.divide(src.astype(np.float64) - low, top, out=dst, casting="unsafe")
        return convert
    # Unsigned: stored as signed with BZERO = 2^(n-1); flipping the sign bit of the stored word
    # gives the unsigned value exactly (no BZERO arithmetic).
    bits = layout.offset_bits
    if bits:
        utype = np.dtype(f"uint{bits}")
        flip = utype.type(1 << (bits - 1))
    else:
        utype, flip = np.dtype(np.uint8), None
    exact32 = bits <= 16  # float32 division is exact-rounded for 8/16-bit integers

    def convert(src: NDArray[Any], dst: NDArray[np.float32]) -> None:
        u = src.view(src.dtype.str.replace("i", "u"))  # same bytes, unsigned, same byte order
        if flip is not None:
            u = np.bitwise_xor(u, flip, dtype=utype)
        if exact32:
            np.divide(u, np.float32(top), out=dst)
        else:
            np.divide(u, top, out=dst, casting="unsafe")
    return convert


def _decode(raw: NDArray[Any], layout: _Layout, shape: tuple[int, ...]) -> NDArray[np.float32]:
    """Stored samples (any byte order, possibly memory-mapped) → float32 of ``shape``."""
    out = np.empty(shape, dtype=np.float32)
    width = shape[-1]
    src2 = np.asarray(raw).reshape(-1, width)
    dst2 = out.reshape(-1, width)
    convert = _converter(layout)
    for rows in _row_chunks(src2.shape[0], width * src2.dtype.itemsize):
        convert(src2[rows], dst2[rows])
        if layout.blank is not None and layout.kind != "float":
            dst2[rows][src2[rows] == layout.blank] = np.nan
    return out


# ----------------------------------------------------------------------------------------------
# Opening files and finding the image


@contextmanager
def _collect_warnings(path: Path) -> Iterator[None]:
    """Turn astropy's header warnings into one :class:`FitsHeaderWarning` naming the file."""
    # Import astropy first: its logger replaces warnings.showwarning on import, which would
    # bypass the recording below if it happened inside the block.
    import astropy.io.fits  # noqa: F401

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    messages: list[str] = []
    for w in caught:
        if issubclass(w.category, FitsHeaderWarning):
            messages.append(str(w.message))
            continue
        if issubclass(w.category, ResourceWarning | DeprecationWarning):
            continue
        text = " ".join(str(w.message).split()).replace(
            "The following header keyword is invalid or follows an unrecognized non-standard "
            "convention:", "invalid card")
        if text not in messages:
            messages.append(text)
    if messages:
        summary = "; ".join(m[:160] for m in messages[:5])
        more = f" (+{len(messages) - 5} more)" if len(messages) > 5 else ""
        warnings.warn(
            f"{path}: header problems, read anyway: {summary}{more}",
            FitsHeaderWarning,
            stacklevel=4,
        )


def _open(path: Path, *, memmap: bool) -> Any:
    from astropy.io import fits

    try:
        return fits.open(
            path,
            memmap=memmap,
            do_not_scale_image_data=True,  # we scale ourselves, in one pass
            ignore_missing_end=True,
            lazy_load_hdus=True,
        )
    except (OSError, ValueError, TypeError, IndexError, KeyError, EOFError) as err:
        raise ImageReadError(path, f"not a readable FITS file ({_reason(err)})") from err


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:200]


def _axes(header: Any) -> tuple[int, ...]:
    naxis = int(header.get("NAXIS", 0) or 0)
    return tuple(int(header.get(f"NAXIS{i}", 0) or 0) for i in range(naxis, 0, -1))


def _first_image_hdu(hdul: Any, path: Path) -> tuple[Any, int]:
    """The first HDU holding a 2-D or 3-D image, and its index."""
    from astropy.io import fits

    seen_groups = False
    seen_1d = False
    try:
        for index, hdu in enumerate(hdul):
            if isinstance(hdu, fits.GroupsHDU):
                seen_groups = True
                continue
            if not hdu.is_image:
                continue
            axes = _axes(hdu.header)
            if not axes or 0 in axes:
                continue  # an empty primary HDU (data in extensions)
            if len(axes) < 2:
                seen_1d = True
                continue
            return hdu, index
    except (OSError, ValueError, TypeError, IndexError, KeyError, EOFError) as err:
        raise ImageReadError(path, f"corrupt FITS structure ({_reason(err)})") from err
    if seen_groups:
        raise ImageReadError(
            path, "random-groups FITS (interferometer visibilities), not an image"
        )
    if seen_1d:
        raise ImageReadError(path, "holds 1-D data (a spectrum or table), not a 2-D image")
    raise ImageReadError(path, "no image in this FITS file (only tables or empty HDUs)")


def _image_shape(header: Any, path: Path) -> tuple[int, ...]:
    """(H, W) or (C, H, W) from NAXISn, dropping leading axes of length 1."""
    axes = list(_axes(header))
    while len(axes) > 2 and axes[0] == 1:
        axes.pop(0)
    if len(axes) > 3:
        raise ImageReadError(path, f"{len(axes)}-D data {tuple(axes)}; only 2-D images and 3-D "
                                   "(C, H, W) cubes are read")
    if len(axes) == 3 and axes[0] == 1:
        axes.pop(0)
    return tuple(axes)


# ----------------------------------------------------------------------------------------------
# Keywords


def _is_structural(name: str) -> bool:
    return name in _STRUCTURAL or bool(_NAXIS_N.match(name))


def _plain(value: Any) -> KeywordValue:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if type(value).__name__ == "Undefined":
        return None
    return str(value)


def _parse_long_key(image: str) -> Keyword | None:
    """Card-level fallback for ``NAME_LONGER_THAN_8 = value / comment`` (no HIERARCH)."""
    from astropy.io import fits

    match = _LONG_KEY.match(image.rstrip())
    if not match:
        return None
    name, rest = match.group(1).upper(), match.group(2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            card = fits.Card.fromstring(f"{'X':8}= {rest}"[:80].ljust(80))
            value = _plain(card.value)
            comment = card.comment or ""
    except Exception:  # noqa: BLE001 — any unparsable value is kept as text
        value, _, comment = rest.partition("/")
        value, comment = value.strip().strip("'").strip(), comment.strip()
    return Keyword(name, value, comment)


def _keywords(header: Any, problems: list[str]) -> list[Keyword]:
    out: list[Keyword] = []
    for card in header.cards:
        name = card.keyword
        if _is_structural(name):
            continue
        try:
            image = card.image
        except Exception:  # noqa: BLE001 — a card astropy cannot even render
            problems.append(f"unreadable card {name!r} skipped")
            continue
        if name not in _COMMENTARY and not image.startswith(("HIERARCH", "CONTINUE")) and (
            image[8:10] != "= "
        ):
            fixed = _parse_long_key(image[:80])
            if fixed is not None:
                problems.append(f"non-standard card {fixed.name!r} (value indicator not in "
                                "columns 9-10) parsed by hand")
                out.append(fixed)
                continue
        if name == "" and not str(card.value).strip():
            continue  # blank spacer cards
        try:
            value = _plain(card.value)
            comment = str(card.comment or "")
        except Exception:  # noqa: BLE001 — keep the text of a malformed value
            problems.append(f"malformed value of {name!r} kept as text")
            value, comment = image[10:80].strip(), ""
        out.append(Keyword(name, value, comment))
    return out


def _all_keywords(hdul: Any, hdu: Any, index: int, path: Path) -> list[Keyword]:
    problems: list[str] = []
    own = _keywords(hdu.header, problems)
    if index > 0:
        # Multi-extension files keep observation keywords (EXPTIME, DATE-OBS...) in the
        # primary header; add the ones the image HDU does not have.
        names = {kw.name for kw in own}
        own += [kw for kw in _keywords(hdul[0].header, problems)
                if kw.name not in names or kw.name in _COMMENTARY]
    if problems:
        warnings.warn("; ".join(dict.fromkeys(problems)), FitsHeaderWarning, stacklevel=2)
    return own


def _text(header: Any, name: str) -> str | None:
    value = header.get(name)
    if value is None or not str(value).strip():
        return None
    return str(value).strip().upper()


# ----------------------------------------------------------------------------------------------
# Plain primary headers without astropy (the scanner's cache and the stack engine's band reader)

_EMPTY = "file is empty (0 bytes) — re-copy it from the capture computer"
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][+-]?\d+)?")
_STRING_VALUE = re.compile(r" *'((?:[^']|'')*)'(.*)$", re.DOTALL)


class NotPlainFits(Exception):
    """:func:`read_primary_header` declines this file; astropy reads it instead."""


@dataclass(frozen=True)
class PrimaryHeader:
    """The primary header as read by :func:`read_primary_header`."""

    cards: dict[str, Any]          # first value of every valued card, structural ones included
    keywords: list[Keyword]        # the non-structural cards in file order
    data_offset: int               # byte offset of the primary data unit


@lru_cache(maxsize=4096)
def _structural_memo(name: str) -> bool:
    return _is_structural(name)  # the same few dozen names in every file


def _card_value(text: str) -> tuple[Any, str]:
    """Value and comment of a card's value field (columns 11–80)."""
    m = _STRING_VALUE.match(text)
    if m:
        rest = m.group(2)
        slash = rest.find("/")
        comment = rest[slash + 1:].strip() if slash >= 0 else ""
        return m.group(1).replace("''", "'").rstrip(), comment
    if text.lstrip().startswith("'"):
        raise NotPlainFits  # unterminated string
    slash = text.find("/")
    raw, comment = (text[:slash], text[slash + 1:].strip()) if slash >= 0 else (text, "")
    raw = raw.strip()
    if raw == "T":
        return True, comment
    if raw == "F":
        return False, comment
    if raw == "":
        return None, comment
    if raw.lstrip("+-").isdigit():
        return int(raw), comment
    if _FLOAT.fullmatch(raw):
        return float(raw.replace("D", "E").replace("d", "e")), comment
    raise NotPlainFits  # complex numbers and oddities: leave them to astropy


def read_primary_header(path: str | Path) -> PrimaryHeader:
    """Read an uncompressed FITS file's primary header without astropy (≈ 0.1 ms).

    Raises
    ------
    NotPlainFits
        Not a plain FITS file (``.gz``/``.fz``, not starting with SIMPLE) or a card this reader
        leaves to astropy (odd HIERARCH, CONTINUE without a string, no value indicator...).
    ImageReadError
        The file is empty, unreadable or its header is truncated.
    """
    p = str(path)
    try:
        fh = open(p, "rb")  # noqa: SIM115 — closed below; a with-block costs a re-indent
    except OSError as err:
        raise ImageReadError(p, f"cannot open: {err.strerror or err}") from err
    with fh:
        first = fh.read(2880)
        if not first:
            raise ImageReadError(p, _EMPTY)
        if not first.startswith(b"SIMPLE  =") or p.lower().endswith((".gz", ".fz")):
            raise NotPlainFits
        cards: dict[str, Any] = {}
        keywords: list[Keyword] = []
        block, nblocks, done = first, 1, False
        while True:
            if len(block) < 2880:
                raise ImageReadError(p, "truncated: the FITS header ends before its END "
                                        "card — re-copy the file")
            text = block.decode("latin-1")
            for k in range(0, 2880, 80):
                card = text[k:k + 80]
                name = card[:8].rstrip()
                if name == "END":
                    done = True
                    break
                if name in _COMMENTARY:  # COMMENT, HISTORY and blank-named cards
                    text_value = card[8:].rstrip()
                    if name or text_value.strip():  # blank spacer cards are dropped
                        keywords.append(Keyword(name, text_value, ""))
                    continue
                if name == "HIERARCH":
                    eq = card.find("=")
                    if eq < 0:
                        raise NotPlainFits
                    name = card[9:eq].strip()
                    if "''" in card:
                        raise NotPlainFits  # astropy reads quotes in HIERARCH strings its own way
                    value, comment = _card_value(card[eq + 1:])
                elif name == "CONTINUE":
                    prev = keywords[-1] if keywords else None
                    if prev is None or not isinstance(prev.value, str) \
                            or not prev.value.endswith("&"):
                        raise NotPlainFits
                    more, comment = _card_value(card[8:])
                    if not isinstance(more, str):
                        raise NotPlainFits
                    keywords[-1] = Keyword(prev.name, prev.value[:-1] + more,
                                           (prev.comment + " " + comment).strip())
                    cards[prev.name] = keywords[-1].value
                    continue
                elif card[8:10] == "= ":
                    value, comment = _card_value(card[10:])
                else:
                    raise NotPlainFits  # a card without a value indicator: astropy knows better
                cards.setdefault(name, value)
                if not _structural_memo(name):
                    keywords.append(Keyword(name, value, comment))
            if done:
                break
            block = fh.read(2880)
            nblocks += 1
    return PrimaryHeader(cards, keywords, nblocks * 2880)


# Public backend interface


def read_header(path: Path) -> Header:
    """Read the first image HDU's header without touching its pixel data.

    Parameters
    ----------
    path : Path
        A FITS file (``.fits``, ``.fz``, ``.fits.gz``...).

    Returns
    -------
    Header
        Shape as :attr:`Image.data` will have it, sample format, keywords.

    Raises
    ------
    ImageReadError
        The file is not readable FITS or holds no 2-D/3-D image.
    """
    path = Path(path)
    with _collect_warnings(path):
        hdul = _open(path, memmap=False)
        try:
            hdu, index = _first_image_hdu(hdul, path)
            h = hdu.header
            layout = _layout(h, path)
            return Header(
                path=str(path), format="fits", shape=_image_shape(h, path),
                sample_format=layout.sample_format,
                keywords=_all_keywords(hdul, hdu, index, path),
                bayer_pattern=_text(h, "BAYERPAT"), row_order=_text(h, "ROWORDER"),
                data_range=layout.data_range,
            )
        finally:
            hdul.close()


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _check_size(hdu: Any, path: Path, shape: tuple[int, ...]) -> None:
    """Fail clearly (instead of astropy's "buffer is too small") on a truncated data unit."""
    info = hdu.fileinfo()
    if not info or info.get("datLoc") is None:
        return
    need = int(info["datLoc"]) + math.prod(_axes(hdu.header)) * abs(int(hdu.header["BITPIX"])) // 8
    have = path.stat().st_size
    if need > have:
        raise ImageReadError(
            path, f"truncated: the header promises {need} bytes but the file has {have} "
                  f"(image {'x'.join(map(str, shape[::-1]))}) — re-copy the file")


def read(path: Path) -> Image:
    """Read the first image HDU as float32 in [0, 1] (integers) or as stored (floats).

    Parameters
    ----------
    path : Path
        A FITS file (``.fits``, ``.fz``, ``.fits.gz``...).

    Returns
    -------
    Image
        ``data`` float32 (H, W) or (C, H, W) in native byte order, rows in file order;
        ``sample_format`` and ``data_range`` describe the stored samples.

    Raises
    ------
    ImageReadError
        Unreadable, truncated or corrupt files, or files without a 2-D/3-D image.
    """
    from astropy.io import fits

    path = Path(path)
    gz = _is_gzip(path)
    with _collect_warnings(path):
        hdul = _open(path, memmap=not gz)
        try:
            hdu, index = _first_image_hdu(hdul, path)
            h = hdu.header
            shape = _image_shape(h, path)
            layout = _layout(h, path)
            compressed = isinstance(hdu, fits.CompImageHDU)
            if not compressed and not gz:
                _check_size(hdu, path, shape)
            try:
                raw = hdu.data
                if compressed and raw is not None and raw.dtype.kind == "f":
                    # Quantized floats come back dequantized; any BZERO/BSCALE is already in.
                    layout = _Layout("float", layout.sample_format
                                     if layout.kind == "float" else "float32", (0.0, 1.0))
                data = _decode(raw, layout, shape)
            except ImageReadError:
                raise
            except (OSError, ValueError, TypeError, IndexError, KeyError, EOFError,
                    MemoryError, RuntimeError) as err:
                raise ImageReadError(path, f"cannot decode the pixel data ({_reason(err)})") \
                    from err
            keywords = _all_keywords(hdul, hdu, index, path)
            return Image(
                data=data, keywords=keywords, sample_format=layout.sample_format,
                data_range=layout.data_range, bayer_pattern=_text(h, "BAYERPAT"),
                row_order=_text(h, "ROWORDER"), path=str(path), format="fits",
            )
        finally:
            hdul.close()


def _card(kw: Keyword) -> Any | None:
    """An astropy Card for ``kw`` (HIERARCH for long names), or None when it cannot be written."""
    from astropy.io import fits

    name = kw.name.strip()
    if name.upper().startswith("HIERARCH "):
        name = name[9:].strip()
    value = kw.value
    if isinstance(value, float) and not math.isfinite(value):
        value = str(value)  # FITS headers cannot hold NaN/inf numbers
    if name.upper() in ("COMMENT", "HISTORY"):
        return fits.Card(name.upper(), "" if value is None else str(value))
    standard = len(name) <= 8 and re.fullmatch(r"[A-Za-z0-9_\-]+", name) is not None
    key = name.upper() if standard else f"HIERARCH {name}"
    for comment in (kw.comment or "", ""):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                card = fits.Card(key, value, comment)
                card.verify("exception")
                _ = card.image
            return card
        except Exception:  # noqa: BLE001 — try without the comment, then give up on this card
            continue
    return None


def _header(image: Image, path: Path) -> Any:
    from astropy.io import fits

    header = fits.Header()
    skipped: list[str] = []
    for kw in image.keywords:
        if _is_structural(kw.name.strip().upper()):
            continue
        card = _card(kw)
        if card is None:
            skipped.append(kw.name)
        elif card.keyword == "HISTORY":
            header.add_history(card.value)
        elif card.keyword == "COMMENT":
            header.add_comment(card.value)
        else:
            header.append(card, end=True)
    if image.bayer_pattern and "BAYERPAT" not in header:
        header["BAYERPAT"] = (image.bayer_pattern, "CFA pattern, first row first")
    if image.row_order and "ROWORDER" not in header:
        header["ROWORDER"] = (image.row_order, "order of the rows in the data")
    if skipped:
        warnings.warn(f"{path}: keywords not representable in FITS, skipped: "
                      f"{', '.join(skipped[:10])}", FitsHeaderWarning, stacklevel=3)
    return header


def write(
    path: Path,
    image: Image,
    *,
    sample_format: str = "float32",
    compression: str | None = None,
) -> None:
    """Write ``image`` as a FITS file.

    Parameters
    ----------
    path : Path
        Destination (replaced when it exists).
    image : Image
        float32 data in [0, 1] (integers formats) or any float values (float formats).
    sample_format : {"uint8", "uint16", "uint32", "int16", "int32", "float32", "float64"}
        Stored sample type. Unsigned 16/32-bit use the standard BZERO offsets.
    compression : {None, "rice", "gzip", "hcompress"}
        Tile-compress the image into extension 1 (an ``.fz``-style file). Compression is
        lossless: float samples always use byte-shuffled GZIP (Rice and HCOMPRESS would
        have to quantize them).

    Raises
    ------
    ImageWriteError
        Unknown sample format or compression, or the file cannot be written.
    """
    from astropy.io import fits

    path = Path(path)
    if compression is not None and compression.lower() not in COMPRESSIONS | {"none": ""}:
        msg = f"{path}: unknown FITS compression {compression!r}; use one of {sorted(COMPRESSIONS)}"
        raise ImageWriteError(msg)
    try:
        data = from_unit_range(image.data, sample_format)
    except ValueError as err:
        raise ImageWriteError(f"{path}: {err}") from err
    header = _header(image, path)
    mode = (compression or "none").lower()
    try:
        if mode == "none":
            hdul = fits.HDUList([fits.PrimaryHDU(data=data, header=header)])
        else:
            is_float = data.dtype.kind == "f"
            ctype = "GZIP_2" if is_float else COMPRESSIONS[mode]
            if ctype == "HCOMPRESS_1" and (data.ndim != 2 or min(data.shape) < 4):
                ctype = "RICE_1"  # HCOMPRESS needs 2-D tiles of at least 4x4
            comp = fits.CompImageHDU(data=data, header=header, compression_type=ctype,
                                     quantize_level=0.0)
            hdul = fits.HDUList([fits.PrimaryHDU(), comp])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=fits.verify.VerifyWarning)
            hdul.writeto(path, overwrite=True, output_verify="silentfix")
    except OSError as err:
        raise ImageWriteError(f"{path}: cannot write ({err})") from err
