"""Reading and writing frames: FITS, XISF, DSLR raw and TIFF.

The format is chosen by the file's magic bytes (the suffix only breaks ties, e.g. TIFF-based raw
files). Every failure to read raises :class:`skystack.errors.ImageReadError` naming the file.

Examples
--------
>>> from skystack.io import read_image, write_image      # doctest: +SKIP
>>> img = read_image("light_0001.fits")                   # doctest: +SKIP
>>> img.data.dtype, img.get("EXPTIME")                    # doctest: +SKIP
(dtype('float32'), 60.0)
"""

from __future__ import annotations

import importlib
import struct
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

from skystack.errors import (
    ImageReadError,
    ImageWriteError,
    SkystackError,
    UnsupportedFormatError,
)
from skystack.io.image import SAMPLE_MAX, FileFormat, Header, Image, Keyword

__all__ = [
    "Image",
    "Header",
    "Keyword",
    "SAMPLE_MAX",
    "read_image",
    "read_header",
    "write_image",
    "detect_format",
    "IMAGE_SUFFIXES",
    "RAW_SUFFIXES",
]

RAW_SUFFIXES = frozenset(
    {".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".raf", ".orf",
     ".rw2", ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".erf", ".mef", ".mos", ".kdc", ".rwl"}
)
FITS_SUFFIXES = frozenset({".fits", ".fit", ".fts", ".fz"})
XISF_SUFFIXES = frozenset({".xisf"})
TIFF_SUFFIXES = frozenset({".tif", ".tiff"})
#: Suffixes a folder scan treats as candidate images (``.gz`` only as ``.fits.gz`` etc.).
IMAGE_SUFFIXES = RAW_SUFFIXES | FITS_SUFFIXES | XISF_SUFFIXES | TIFF_SUFFIXES | {".gz"}

_BACKENDS: dict[str, str] = {
    "fits": "skystack.io.fits",
    "xisf": "skystack.io.xisf",
    "raw": "skystack.io.raw",
    "tiff": "skystack.io.tiff",
}


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def detect_format(path: str | Path) -> FileFormat:
    """Decide a file's format from its first bytes (and, for TIFF-based raw files, its suffix).

    Raises
    ------
    ImageReadError
        The file is missing, empty or unreadable.
    UnsupportedFormatError
        The bytes match no supported format.
    """
    p = Path(path)
    if p.is_dir():
        raise ImageReadError(p, "is a directory, not an image file")
    try:
        with open(p, "rb") as fh:
            head = fh.read(16)
    except OSError as err:
        raise ImageReadError(p, f"cannot open: {err.strerror or err}") from err
    if not head:
        raise ImageReadError(p, "file is empty (0 bytes) — re-copy it from the capture computer")
    if head.startswith(b"XISF0100"):
        return "xisf"
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    if head[:2] == b"\x1f\x8b":
        name = p.name.lower()
        if any(name.endswith(s + ".gz") for s in (".fits", ".fit", ".fts")):
            return "fits"
        raise UnsupportedFormatError(p, "gzip file that is not .fits.gz — unpack it first")
    if head[:2] == b"\x1f\x9d" or head[:3] == b"BZh" or head[:4] == b"PK\x03\x04":
        kind = {b"\x1f\x9d": "Unix compress (.Z)", b"BZ": "bzip2", b"PK": "zip"}[head[:2]]
        raise UnsupportedFormatError(p, f"{kind} archive — unpack it first")
    suffix = _suffix(p)
    if suffix in RAW_SUFFIXES:
        return "raw"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[4:8] == b"ftyp" or head.startswith(b"FUJIFILM"):
        return "raw"
    raise UnsupportedFormatError(
        p, "not a FITS, XISF, TIFF or camera raw file (unrecognised first bytes)"
    )


def _backend(fmt: str) -> ModuleType:
    name = _BACKENDS[fmt]
    try:
        return importlib.import_module(name)
    except ImportError as err:
        hint = " — install the raw extra: pip install 'skystack[raw]'" if fmt == "raw" else ""
        msg = f"the {fmt} reader is not available ({err}){hint}"
        raise UnsupportedFormatError("<" + fmt + ">", msg) from err


def read_image(path: str | Path) -> Image:
    """Read a frame's pixels and metadata.

    Parameters
    ----------
    path : str or Path
        A FITS (also ``.fz``, ``.fits.gz``), XISF, TIFF or camera raw file.

    Returns
    -------
    Image
        float32 data in [0, 1], shape (H, W) or (C, H, W), with keywords and properties.

    Raises
    ------
    ImageReadError
        Anything wrong with the file; the message names it and says what is wrong.
    """
    fmt = detect_format(path)
    return _guarded(_backend(fmt).read, Path(path))


def read_header(path: str | Path) -> Header:
    """Read a frame's metadata without decoding its pixels."""
    fmt = detect_format(path)
    return _guarded(_backend(fmt).read_header, Path(path))


def _guarded(reader: Any, path: Path) -> Any:
    """Call a backend reader; any library error on bad input becomes an ImageReadError."""
    try:
        return reader(path)
    except SkystackError:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError, EOFError, OverflowError,
            struct.error, zlib.error) as err:
        text = " ".join(str(err).split())[:200] or type(err).__name__
        raise ImageReadError(path, f"cannot read ({type(err).__name__}: {text})") from err


def write_image(
    path: str | Path,
    image: Image,
    *,
    format: FileFormat | None = None,
    sample_format: str | None = None,
    compression: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Write ``image`` to ``path``.

    Parameters
    ----------
    path : str or Path
        Destination; the suffix chooses the format unless ``format`` is given
        (``.xisf`` → XISF, ``.tif``/``.tiff`` → TIFF, anything else FITS).
    image : Image
        The frame; its ``data`` is float32 in [0, 1].
    format : {"fits", "xisf", "tiff"}, optional
        Force a format.
    sample_format : str, optional
        Stored sample type; defaults to ``image.sample_format`` (float32 for computed data).
    compression : str, optional
        Format-specific: XISF ``"zstd+sh"``, ``"lz4+sh"``, ``"zlib"``...; FITS ``"rice"``, ``"gzip"``.
    overwrite : bool
        Refuse to replace an existing file when False.

    Returns
    -------
    Path
        The path written.
    """
    p = Path(path)
    if not overwrite and p.exists():
        msg = f"{p}: exists already (pass overwrite=True to replace it)"
        raise ImageWriteError(msg)
    if format is None:
        suffix = _suffix(p)
        format = "xisf" if suffix in XISF_SUFFIXES else "tiff" if suffix in TIFF_SUFFIXES else "fits"
    if format == "raw":
        msg = f"{p}: camera raw files cannot be written; write FITS or XISF"
        raise ImageWriteError(msg)
    kwargs: dict[str, Any] = {"sample_format": sample_format or image.sample_format}
    if compression is not None:
        kwargs["compression"] = compression
    p.parent.mkdir(parents=True, exist_ok=True)
    _backend(format).write(p, image, **kwargs)
    return p
