"""The in-memory frame: :class:`Image`, its :class:`Header`, and FITS :class:`Keyword` cards.

Conventions (``design.md``): pixel data is float32 in [0, 1], shape (H, W) for mono and
(C, H, W) for colour. Integer samples are divided by their type's maximum (255, 65535,
4294967295); floats are kept as they are. The original sample format and range are recorded so
that writing back in the original format is lossless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

__all__ = ["Keyword", "Header", "Image", "SampleFormat", "FileFormat", "SAMPLE_MAX"]

SampleFormat = Literal["uint8", "uint16", "uint32", "int8", "int16", "int32", "float32", "float64"]
FileFormat = Literal["fits", "xisf", "raw", "tiff"]

#: Divisor that maps each integer sample format onto [0, 1].
SAMPLE_MAX: dict[str, float] = {
    "uint8": 255.0,
    "uint16": 65535.0,
    "uint32": 4294967295.0,
}

KeywordValue = str | int | float | bool | None

_CHUNK_ITEMS = 1 << 17  # samples per conversion chunk (≈0.5 MB of float32 output)


@dataclass(frozen=True)
class Keyword:
    """One FITS header card (also used for XISF ``FITSKeyword`` elements)."""

    name: str
    value: KeywordValue = None
    comment: str = ""


@dataclass
class Header:
    """What a file says about its pixels, read without decoding them.

    Attributes
    ----------
    path : str
        The file this header was read from.
    format : {"fits", "xisf", "raw", "tiff"}
        File format, decided by magic bytes.
    shape : tuple of int
        (H, W) for mono or (C, H, W) for colour, as :attr:`Image.data` will have it.
    sample_format : str
        Sample type stored in the file (``"uint16"``, ``"float32"``...).
    keywords : list of Keyword
        FITS keywords in file order (repeats such as HISTORY kept).
    properties : dict
        XISF properties by id (``"Instrument:ExposureTime"`` → value); raw metadata for DSLR files.
    bayer_pattern : str or None
        CFA pattern as stored (e.g. ``"RGGB"``), None for mono/debayered data.
    row_order : str or None
        ``"TOP-DOWN"`` or ``"BOTTOM-UP"`` when the file says so (FITS ROWORDER).
    data_range : tuple of float
        The range of the stored samples that maps onto [0, 1] (e.g. (0, 65535)).
    """

    path: str
    format: FileFormat
    shape: tuple[int, ...]
    sample_format: str
    keywords: list[Keyword] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)
    bayer_pattern: str | None = None
    row_order: str | None = None
    data_range: tuple[float, float] = (0.0, 1.0)

    def get(self, name: str, default: Any = None) -> Any:
        """Return the value of the first keyword called ``name`` (case-insensitive)."""
        upper = name.upper()
        for card in self.keywords:
            if card.name.upper() == upper:
                return card.value
        return default

    def has(self, name: str) -> bool:
        """True when a keyword called ``name`` is present (case-insensitive)."""
        upper = name.upper()
        return any(card.name.upper() == upper for card in self.keywords)

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return int(self.shape[-2])

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return int(self.shape[-1])

    @property
    def channels(self) -> int:
        """Number of channels (1 for mono)."""
        return int(self.shape[0]) if len(self.shape) == 3 else 1


@dataclass
class Image:
    """Pixels plus everything the file said about them.

    Attributes
    ----------
    data : ndarray of float32
        (H, W) or (C, H, W), normalized to [0, 1] for integer sources.
    keywords, properties, bayer_pattern, row_order, sample_format, data_range, path, format
        As in :class:`Header`.
    """

    data: NDArray[np.float32]
    keywords: list[Keyword] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)
    sample_format: str = "float32"
    bayer_pattern: str | None = None
    row_order: str | None = None
    data_range: tuple[float, float] = (0.0, 1.0)
    path: str | None = None
    format: FileFormat | None = None

    def get(self, name: str, default: Any = None) -> Any:
        """Return the value of the first keyword called ``name`` (case-insensitive)."""
        upper = name.upper()
        for card in self.keywords:
            if card.name.upper() == upper:
                return card.value
        return default

    def set(self, name: str, value: KeywordValue, comment: str = "") -> None:
        """Set keyword ``name``, replacing the first card of that name or appending one."""
        upper = name.upper()
        for i, card in enumerate(self.keywords):
            if card.name.upper() == upper:
                self.keywords[i] = Keyword(card.name, value, comment or card.comment)
                return
        self.keywords.append(Keyword(upper, value, comment))

    @property
    def header(self) -> Header:
        """A :class:`Header` describing this image."""
        return Header(
            path=self.path or "",
            format=self.format or "fits",
            shape=tuple(int(s) for s in self.data.shape),
            sample_format=self.sample_format,
            keywords=list(self.keywords),
            properties=dict(self.properties),
            bayer_pattern=self.bayer_pattern,
            row_order=self.row_order,
            data_range=self.data_range,
        )

    @classmethod
    def from_array(cls, data: NDArray[Any], **fields: Any) -> Image:
        """Wrap an array (converted to float32) with optional metadata fields."""
        arr = np.ascontiguousarray(np.asarray(data, dtype=np.float32))
        if arr.ndim not in (2, 3):
            msg = f"image data must be 2-D (H, W) or 3-D (C, H, W), got shape {arr.shape}"
            raise ValueError(msg)
        return cls(data=arr, **fields)


def to_unit_range(raw: NDArray[Any]) -> tuple[NDArray[np.float32], str, tuple[float, float]]:
    """Map stored samples onto float32 [0, 1].

    Parameters
    ----------
    raw : ndarray
        Samples as decoded from the file (native byte order preferred).

    Returns
    -------
    data : ndarray of float32
        Integers divided by their type's maximum; floats unchanged.
    sample_format : str
        Name of the stored sample type.
    data_range : tuple of float
        Stored range that maps onto [0, 1].
    """
    kind = raw.dtype.kind
    name = raw.dtype.newbyteorder("=").name
    if kind == "f":
        return np.ascontiguousarray(raw, dtype=np.float32), name, (0.0, 1.0)
    if kind == "u" and name in SAMPLE_MAX:
        top = SAMPLE_MAX[name]
        out = np.empty(raw.shape, dtype=np.float32)
        # uint32: float32 cannot hold every value, so divide in float64. Otherwise a true
        # float32 division (not a multiply by 1/top): correctly rounded, so every reader
        # (FITS, XISF, TIFF) gives bit-identical values for the same integers.
        divisor = top if name == "uint32" else np.float32(top)
        if raw.ndim >= 2 and raw.size > _CHUNK_ITEMS:
            # Row chunks keep source and result in cache: ~1.7x faster on a 26 Mpx frame.
            src, dst = raw.reshape(-1, raw.shape[-1]), out.reshape(-1, raw.shape[-1])
            step = max(1, _CHUNK_ITEMS // raw.shape[-1])
            for r in range(0, src.shape[0], step):
                np.divide(src[r : r + step], divisor, out=dst[r : r + step], casting="unsafe")
        else:
            np.divide(raw, divisor, out=out, casting="unsafe")
        return out, name, (0.0, top)
    if kind == "i":
        # Signed data: shift to the unsigned range of the same width (as PixInsight does).
        bits = raw.dtype.itemsize * 8
        low = -(2.0 ** (bits - 1))
        top = 2.0**bits - 1
        out = ((raw.astype(np.float64) - low) / top).astype(np.float32)
        return out, name, (low, low + top)
    msg = f"unsupported sample type {raw.dtype}"
    raise ValueError(msg)


def from_unit_range(data: NDArray[np.floating[Any]], sample_format: str) -> NDArray[Any]:
    """Inverse of :func:`to_unit_range` for writing: float [0, 1] → stored samples (rounded, clipped)."""
    if sample_format in ("float32", "float64"):
        return np.asarray(data, dtype=sample_format)
    if sample_format in SAMPLE_MAX:
        top = SAMPLE_MAX[sample_format]
        scaled = np.rint(np.clip(np.asarray(data, dtype=np.float64), 0.0, 1.0) * top)
        return scaled.astype(sample_format)
    if sample_format in ("int8", "int16", "int32"):
        # Inverse of the signed shift in to_unit_range: [0, 1] → [-2^(n-1), 2^(n-1) - 1].
        bits = np.dtype(sample_format).itemsize * 8
        low, top = -(2.0 ** (bits - 1)), 2.0**bits - 1
        unit = np.clip(np.asarray(data, dtype=np.float64), 0.0, 1.0)
        return np.rint(unit * top + low).astype(sample_format)
    msg = f"cannot write sample format {sample_format!r}"
    raise ValueError(msg)
