"""DSLR / mirrorless raw backend (LibRaw through ``rawpy``, the ``raw`` extra).

The pixels are the CFA mosaic exactly as the sensor recorded it (``raw_image_visible``: no
demosaicing, no black subtraction, no white balance), as float32 divided by the white level.
The black level(s) are recorded, not subtracted, so calibration decides what to do with them.

Metadata comes from the TIFF/EXIF tags when the file is TIFF-based (DNG, CR2, NEF, ARW, ORF,
PEF...; read with ``tifffile``, no pixels decoded) and from LibRaw otherwise. Keywords written:
EXPTIME, ISO, GAIN (= ISO), INSTRUME (make + model), DATE-OBS, BAYERPAT, ROWORDER, BLKLEVEL,
WHITELVL, FOCALLEN and APERTURE when known. Sensor temperature lives in maker notes LibRaw does
not expose; it is not read.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from skystack.errors import ImageReadError, UnsupportedFormatError
from skystack.io.image import Header, Image, Keyword

__all__ = ["read", "read_header", "cfa_pattern"]

_INSTALL_HINT = "install the raw extra: pip install 'skystack[raw]'"


def _rawpy(path: Path) -> ModuleType:
    try:
        import rawpy
    except ImportError as err:
        raise UnsupportedFormatError(
            path, f"camera raw files need LibRaw (rawpy), which is not installed — "
                  f"{_INSTALL_HINT}"
        ) from err
    return rawpy


def cfa_pattern(raw_pattern: Any, color_desc: bytes | str) -> str | None:
    """CFA pattern string (e.g. ``"RGGB"``) from LibRaw's pattern indices and colour letters.

    Parameters
    ----------
    raw_pattern : array-like of int, shape (2, 2)
        Colour index of each cell of the repeating tile (first row first).
    color_desc : bytes or str
        Colour letter of each index, e.g. ``b"RGBG"`` (index 3 is the second green).

    Returns
    -------
    str or None
        Four letters for a 2x2 Bayer tile; None for other tiles (X-Trans 6x6).
    """
    pattern = np.asarray(raw_pattern)
    desc = color_desc.decode("ascii") if isinstance(color_desc, bytes) else str(color_desc)
    if pattern.shape != (2, 2):
        return None
    try:
        return "".join(desc[int(i)] for i in pattern.ravel())
    except IndexError:
        return None


# ----------------------------------------------------------------------------------------------
# TIFF/EXIF tags (cheap: no pixel decoding)

_CFA_LETTERS = "RGBCMYW"


def _rational(value: Any) -> float | None:
    if isinstance(value, tuple | list) and len(value) == 2:
        num, den = value
        return float(num) / float(den) if den else None
    if isinstance(value, int | float):
        return float(value)
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if value is None:
        return None
    text = str(value).strip().strip("\x00").strip()
    return text or None


def _tiff_tags(path: Path) -> dict[str, Any]:
    """IFD0 + EXIF tags by name (empty for non-TIFF raws such as CR3 or RAF)."""
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            tags: dict[str, Any] = {tag.name: tag.value for tag in page.tags.values()}
            tags["_rational"] = {tag.name for tag in page.tags.values()
                                 if int(tag.dtype) in (5, 10)}  # RATIONAL, SRATIONAL
    except Exception:  # noqa: BLE001 — not TIFF-based: LibRaw's metadata is used instead
        return {}
    exif = tags.get("ExifTag")
    if isinstance(exif, dict):
        for name, value in exif.items():
            tags.setdefault(name, value)
    return tags


def _levels(tags: dict[str, Any], name: str) -> list[float] | None:
    """A DNG level tag (SHORT/LONG, or RATIONAL stored as numerator/denominator pairs)."""
    value = tags.get(name)
    if value is None:
        return None
    values = list(value) if isinstance(value, tuple | list) else [value]
    if name in tags.get("_rational", ()):
        pairs = zip(values[0::2], values[1::2], strict=False)
        return [float(n) / float(d) if d else 0.0 for n, d in pairs]
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return None


def _tiff_cfa(tags: dict[str, Any]) -> str | None:
    dims = tags.get("CFARepeatPatternDim")
    pattern = tags.get("CFAPattern")
    if dims is None or pattern is None or tuple(dims) != (2, 2):
        return None
    try:
        return "".join(_CFA_LETTERS[int(v)] for v in tuple(pattern)[:4])
    except (IndexError, TypeError, ValueError):
        return None


_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def _date_obs(tags: dict[str, Any], fallback: datetime | None) -> tuple[str, str] | None:
    """DATE-OBS (UTC when the camera recorded its UTC offset) and a comment saying which."""
    stamp = _text(tags.get("DateTimeOriginal") or tags.get("DateTime"))
    when: datetime | None = None
    if stamp:
        try:
            when = datetime.strptime(stamp[:19], "%Y:%m:%d %H:%M:%S")
        except ValueError:
            when = None
    if when is None:
        when = fallback
    if when is None:
        return None
    sub = _text(tags.get("SubsecTimeOriginal"))
    if sub and sub.isdigit():
        when = when.replace(microsecond=int((sub + "000000")[:6]))
    offset = _text(tags.get("OffsetTimeOriginal") or tags.get("OffsetTime"))
    match = _OFFSET.match(offset or "")
    if match:
        sign = 1 if match.group(1) == "+" else -1
        delta = timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
        when -= sign * delta
        comment = "UTC start of exposure (camera clock and offset)"
    else:
        comment = "camera clock (time zone unknown), start of exposure"
    return when.isoformat(timespec="microseconds" if when.microsecond else "seconds"), comment


# ----------------------------------------------------------------------------------------------
# Keywords


def _keywords(
    tags: dict[str, Any],
    *,
    other: Any,
    pattern: str | None,
    blacks: list[float] | None,
    white: float | None,
) -> list[Keyword]:
    out: list[Keyword] = []
    exposure = _rational(tags.get("ExposureTime"))
    if exposure is None and other is not None and getattr(other, "shutter_speed", 0) > 0:
        exposure = float(other.shutter_speed)
    if exposure is not None:
        out.append(Keyword("EXPTIME", exposure, "[s] exposure time"))
    iso = tags.get("ISOSpeedRatings", tags.get("PhotographicSensitivity"))
    if isinstance(iso, tuple | list):
        iso = iso[0] if iso else None
    if not iso and other is not None and getattr(other, "iso_speed", 0) > 0:
        iso = other.iso_speed
    if iso:
        iso_value = int(round(float(iso)))
        out.append(Keyword("ISO", iso_value, "ISO speed"))
        out.append(Keyword("GAIN", iso_value, "camera gain setting (ISO)"))
    make, model = _text(tags.get("Make")), _text(tags.get("Model"))
    if model:
        camera = model if make and model.lower().startswith(make.lower()) else \
            " ".join(p for p in (make, model) if p)
        out.append(Keyword("INSTRUME", camera, "camera make and model"))
    date = _date_obs(tags, getattr(other, "timestamp", None) if other is not None else None)
    if date is not None:
        out.append(Keyword("DATE-OBS", date[0], date[1]))
    if pattern:
        out.append(Keyword("BAYERPAT", pattern, "CFA pattern, first row first"))
    out.append(Keyword("ROWORDER", "TOP-DOWN", "sensor rows as read out"))
    if blacks:
        out.append(Keyword("BLKLEVEL", float(np.mean(blacks)), "[ADU] black level, not subtracted"))
    if white:
        out.append(Keyword("WHITELVL", float(white), "[ADU] white level; pixels are ADU/WHITELVL"))
    focal = _rational(tags.get("FocalLength"))
    if focal is None and other is not None and getattr(other, "focal_length", 0) > 0:
        focal = float(other.focal_length)
    if focal:
        out.append(Keyword("FOCALLEN", focal, "[mm] lens focal length"))
    aperture = _rational(tags.get("FNumber"))
    if aperture is None and other is not None and getattr(other, "aperture", 0) > 0:
        aperture = float(other.aperture)
    if aperture:
        out.append(Keyword("APERTURE", aperture, "f-number"))
    return out


# ----------------------------------------------------------------------------------------------
# Public backend interface


def _open(rawpy: ModuleType, path: Path) -> Any:
    raw = rawpy.RawPy()
    try:
        raw.open_file(str(path))
    except (rawpy.LibRawError, OSError, ValueError) as err:
        raw.close()
        raise ImageReadError(path, f"LibRaw cannot read this camera raw file ({err})") from err
    return raw


def read(path: Path) -> Image:
    """Read the CFA mosaic of a camera raw file.

    Parameters
    ----------
    path : Path
        CR2, CR3, NEF, ARW, DNG, RAF, ORF... anything LibRaw reads.

    Returns
    -------
    Image
        ``data`` (H, W) float32 = raw ADU / white level (black not subtracted);
        ``bayer_pattern`` e.g. ``"RGGB"``; ``properties["Raw:BlackLevels"]`` per CFA colour.

    Raises
    ------
    UnsupportedFormatError
        rawpy is not installed.
    ImageReadError
        LibRaw cannot decode the file.
    """
    path = Path(path)
    rawpy = _rawpy(path)
    raw = _open(rawpy, path)
    try:
        try:
            raw.unpack()
            mosaic = np.array(raw.raw_image_visible, copy=True)  # LibRaw memory: copy out
            pattern = cfa_pattern(raw.raw_pattern, raw.color_desc)
            full_pattern = raw.raw_pattern.tolist()
            desc = raw.color_desc.decode("ascii", "replace")
            blacks = [float(b) for b in raw.black_level_per_channel]
            white = float(raw.white_level)
            other = raw.other
        except (rawpy.LibRawError, OSError, ValueError) as err:
            raise ImageReadError(path, f"LibRaw cannot decode the pixels ({err})") from err
    finally:
        raw.close()
    if mosaic.ndim != 2:
        raise ImageReadError(path, f"not a CFA mosaic (raw data of shape {mosaic.shape})")
    top = white if white > 0 else float(np.iinfo(mosaic.dtype).max)
    data = np.empty(mosaic.shape, dtype=np.float32)
    np.divide(mosaic, np.float32(top), out=data, casting="unsafe")
    tags = _tiff_tags(path)
    keywords = _keywords(tags, other=other, pattern=pattern, blacks=blacks, white=top)
    properties = {
        "Raw:BlackLevels": blacks,
        "Raw:WhiteLevel": top,
        "Raw:ColorDesc": desc,
        "Raw:CFAPattern": full_pattern,
    }
    return Image(
        data=data, keywords=keywords, properties=properties,
        sample_format=mosaic.dtype.name, data_range=(0.0, top), bayer_pattern=pattern,
        row_order="TOP-DOWN", path=str(path), format="raw",
    )


def read_header(path: Path) -> Header:
    """Read a raw file's metadata.

    Cheap (no decoding) for TIFF-based files that store their CFA pattern in tags (DNG); other
    files are unpacked by LibRaw to learn their CFA pattern and levels, which costs about as
    much as :func:`read` without the float conversion.
    """
    path = Path(path)
    rawpy = _rawpy(path)
    tags = _tiff_tags(path)
    raw = _open(rawpy, path)
    try:
        sizes = raw.sizes
        shape = (int(sizes.height), int(sizes.width))
        pattern = _tiff_cfa(tags)
        blacks: list[float] | None = None
        white: float | None = None
        other = None
        if pattern is None or not tags:
            try:
                pattern = cfa_pattern(raw.raw_pattern, raw.color_desc)  # unpacks
                blacks = [float(b) for b in raw.black_level_per_channel]
                white = float(raw.white_level)
                other = raw.other
            except (rawpy.LibRawError, OSError, ValueError) as err:
                raise ImageReadError(path, f"LibRaw cannot decode this file ({err})") from err
        else:
            blacks = _levels(tags, "BlackLevel")
            whites = _levels(tags, "WhiteLevel")
            white = max(whites) if whites else None
    finally:
        raw.close()
    keywords = _keywords(tags, other=other, pattern=pattern, blacks=blacks, white=white)
    top = white or 65535.0
    return Header(
        path=str(path), format="raw", shape=shape, sample_format="uint16",
        keywords=keywords, properties={"Raw:BlackLevels": blacks, "Raw:WhiteLevel": white},
        bayer_pattern=pattern, row_order="TOP-DOWN", data_range=(0.0, top),
    )
