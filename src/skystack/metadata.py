"""Frame metadata in every capture program's dialect → :class:`FrameInfo`.

A frame says what it is in three places: its header (FITS keywords, XISF properties), its file
name (ASIAIR, Seestar, N.I.N.A. templates) and the folders it sits in (``Darks/``,
``FILTER_Ha/``, ``NIGHT_2026-10-12/``). :func:`frame_info` reads all three, lets the header win,
and writes one sentence into :attr:`FrameInfo.warnings` whenever two places really disagree.
:attr:`FrameInfo.sources` says where every value came from, so reports can explain it.

Examples
--------
>>> from skystack.io import Header, Keyword
>>> h = Header("Flats/f_001.fits", "fits", (100, 200), "uint16",
...            [Keyword("IMAGETYP", "Flat Field"), Keyword("FILTER", "H-alpha")])
>>> info = frame_info(h)
>>> info.type, info.filter, info.sources["type"]
('flat', 'Ha', "header IMAGETYP 'Flat Field'")
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal

from skystack.errors import ConfigError
from skystack.io import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from skystack.io import Header

__all__ = [
    "FrameInfo",
    "FrameType",
    "FRAME_TYPES",
    "OVERRIDE_FIELDS",
    "frame_info",
    "hints_from_path",
    "normalize_filter",
    "observing_night",
    "parse_frame_type",
]

FrameType = Literal["light", "dark", "flat", "bias", "dark_flat"]
FRAME_TYPES: tuple[str, ...] = ("light", "dark", "flat", "bias", "dark_flat")


@dataclass
class FrameInfo:
    """Normalized metadata of one frame, with where each value came from.

    ``sources`` maps a field name to where its value was read, e.g.
    ``{"exposure": "header EXPTIME", "filter": "path token FILTER_Ha", "type": "folder 'Darks'"}``.
    ``warnings`` holds one sentence per disagreement found (header vs path vs pixels).
    ``date_obs`` is timezone-aware UTC; ``date_loc`` is naive local time (DATE-LOC or a file
    name timestamp); ``longitude`` is the site longitude in degrees east.
    """

    path: str
    type: FrameType | None = None
    master: bool = False
    exposure: float | None = None
    filter: str | None = None
    filter_raw: str | None = None
    binning: tuple[int, int] | None = None
    width: int | None = None
    height: int | None = None
    channels: int = 1
    temperature: float | None = None
    set_temperature: float | None = None
    gain: float | None = None
    offset: float | None = None
    readout_mode: str | None = None
    camera: str | None = None
    telescope: str | None = None
    focal_length: float | None = None
    pixel_size: float | None = None
    object: str | None = None
    panel: str | None = None
    date_obs: datetime | None = None
    session: str | None = None
    bayer: str | None = None
    row_order: str | None = None
    rotator: float | None = None
    ra: float | None = None
    dec: float | None = None
    format: str | None = None
    sample_format: str | None = None
    size_bytes: int | None = None
    mtime: float | None = None
    date_loc: datetime | None = None
    longitude: float | None = None
    bayer_offset: tuple[int, int] | None = None
    sources: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def binning_str(self) -> str | None:
        """Binning as ``"1x1"`` (None when unknown)."""
        return None if self.binning is None else f"{self.binning[0]}x{self.binning[1]}"

    def to_json(self, rel_path: str | None = None) -> dict[str, Any]:
        """The ``frames[]`` entry of the ``link --json`` schema (version 1) plus extra fields."""
        return {
            "path": rel_path if rel_path is not None else self.path,
            "type": self.type,
            "master": self.master,
            "exposure": self.exposure,
            "filter": self.filter,
            "binning": self.binning_str,
            "width": self.width,
            "height": self.height,
            "temperature": self.temperature,
            "gain": self.gain,
            "offset": self.offset,
            "camera": self.camera,
            "object": self.object,
            "session": self.session,
            "bayer": self.bayer,
            # extensions beyond version 1 (additive only)
            "set_temperature": self.set_temperature,
            "readout_mode": self.readout_mode,
            "panel": self.panel,
            "date_obs": self.date_obs.isoformat() if self.date_obs else None,
            "sources": dict(self.sources),
            "warnings": list(self.warnings),
        }


# --------------------------------------------------------------------------------------------
# Frame types
# --------------------------------------------------------------------------------------------

#: IMAGETYP / FRAME / PCL:Image:Type values, lower-cased with spaces, '_' and '-' removed.
#: N.I.N.A. (LIGHT, DARKFLAT), SGP/MaxIm/APT/CCDSoft ("Light Frame", "Flat Field", "Tricolor
#: Image", "Offset"), Ekos/INDI ("Dark Flat"), ASIAIR/Seestar ("Light"), IRAF ("object", "zero").
_TYPE_VALUES: dict[str, FrameType] = {
    "light": "light", "lightframe": "light", "science": "light", "scienceframe": "light",
    "object": "light", "tricolorimage": "light", "tricolor": "light",
    "dark": "dark", "darkframe": "dark",
    "flat": "flat", "flatframe": "flat", "flatfield": "flat", "flatfieldframe": "flat",
    "skyflat": "flat", "domeflat": "flat", "twilightflat": "flat",
    "bias": "bias", "biasframe": "bias", "zero": "bias", "zeroframe": "bias",
    "offset": "bias", "offsetframe": "bias",
    "darkflat": "dark_flat", "flatdark": "dark_flat", "darkflatframe": "dark_flat",
    "flatdarkframe": "dark_flat",
}

#: Words that name a type in folder and file names (plurals too). "offset"/"zero" are left out:
#: ``OFFSET_50`` in a path is a camera setting, not a bias.
_PATH_TYPE_WORDS: dict[str, FrameType] = {
    "light": "light", "lights": "light",
    "dark": "dark", "darks": "dark",
    "flat": "flat", "flats": "flat", "flatfield": "flat", "flatfields": "flat",
    "bias": "bias", "biases": "bias", "biass": "bias",
    "darkflat": "dark_flat", "darkflats": "dark_flat", "flatdark": "dark_flat",
    "flatdarks": "dark_flat",
}

_SQUASH = re.compile(r"[\s_\-]+")


def parse_frame_type(value: Any) -> tuple[FrameType | None, bool]:
    """Map an IMAGETYP-like value onto ``(type, master)``.

    Parameters
    ----------
    value : Any
        ``"Light Frame"``, ``"DARKFLAT"``, ``"Master Dark"``, ``"MasterFlat"``, ``"Zero"``...

    Returns
    -------
    type : str or None
        One of :data:`FRAME_TYPES`, None when the value is not a known frame type.
    master : bool
        True when the value names a master (``Master …``).
    """
    if value is None:
        return None, False
    key = _SQUASH.sub("", str(value)).lower()
    master = key.startswith("master")
    if master:
        key = key[len("master"):]
    return _TYPE_VALUES.get(key), master


# --------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------

_FILTER_ALIASES: dict[str, str] = {}
for _canon, _names in {
    "Ha": ("ha", "halpha", "hydrogenalpha", "h\u03b1"),
    "Hb": ("hb", "hbeta", "h\u03b2"),
    "OIII": ("oiii", "o3", "oxygen", "oxygeniii"),
    "SII": ("sii", "s2", "sulfur", "sulphur", "sulfurii", "sulphurii"),
    "NII": ("nii", "n2"),
    "L": ("l", "lum", "luminance"),
    "R": ("r", "red"),
    "G": ("g", "green"),
    "B": ("b", "blue"),
    "IRCUT": ("ircut", "uvircut", "uvir", "uvirblock", "irblock"),
}.items():
    for _n in _names:
        _FILTER_ALIASES[_n] = _canon

#: Values that mean "no filter" (SBIG CCDOPS writes 'None', WBPP defaults to 'NoFilter').
_NO_FILTER = frozenset({"", "none", "nofilter", "open", "empty", "nil"})
_FILTER_KEY = re.compile(r"[\s_\-./]+")
_BANDWIDTH = re.compile(r"^(.*?)[\s_\-]*(\d+(?:\.\d+)?)\s*nm$", re.IGNORECASE)


def _filter_key(name: str) -> str:
    return _FILTER_KEY.sub("", name.lower())


def normalize_filter(name: str | None) -> str | None:
    """Normalize a filter name: ``H-alpha``/``Halpha``/``H_Alpha`` → ``Ha``, ``O3`` → ``OIII``...

    A bandwidth stays part of the name (``"H-alpha 3nm"`` → ``"Ha 3nm"``): a 3 nm and a 7 nm
    filter need their own flats. Unknown names come back stripped but otherwise unchanged;
    "no filter" values (``None``, ``NoFilter``, ``Open``, empty) give None.
    """
    if name is None:
        return None
    text = str(name).strip()
    key = _filter_key(text)
    if key in _NO_FILTER:
        return None
    if key in _FILTER_ALIASES:
        return _FILTER_ALIASES[key]
    m = _BANDWIDTH.match(text)
    if m and _filter_key(m.group(1)) in _FILTER_ALIASES:
        width = m.group(2).rstrip("0").rstrip(".") if "." in m.group(2) else m.group(2)
        return f"{_FILTER_ALIASES[_filter_key(m.group(1))]} {width}nm"
    return text


def _is_known_filter(token: str, *, allow_single: bool) -> bool:
    key = _filter_key(token)
    return key in _FILTER_ALIASES and (allow_single or len(key) > 1)


# --------------------------------------------------------------------------------------------
# Value parsing
# --------------------------------------------------------------------------------------------

def _num(value: Any) -> float | None:
    """A finite float from a keyword value (numbers or numeric strings), else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        v = float(value)
    else:
        try:
            v = float(str(value).strip().replace("D", "E").replace("d", "e"))
        except ValueError:
            return None
    return v if math.isfinite(v) else None


def _int_if_whole(v: float | None) -> float | None:
    """Camera settings such as gain 100 stay integers in JSON."""
    if v is not None and v == int(v) and abs(v) < 2**31:
        return int(v)
    return v


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    s = str(value).strip()
    return s or None


_SEXA_SPLIT = re.compile(r"[\s:hdms\u00b0'\"]+", re.IGNORECASE)


def _sexagesimal(value: Any) -> float | None:
    """``'-97 12 12'``, ``'20:57:04.4'``, ``'97d12m12sW'`` or a plain number → float."""
    v = _num(value)
    if v is not None:
        return v
    s = _text(value)
    if s is None:
        return None
    sign = 1.0
    # A trailing W is west; a trailing S is south unless it ends "12s" (seconds).
    if s[-1] in "Ww" or (s[-1] in "Ss" and (len(s) == 1 or not s[-2].isdigit())):
        sign, s = -1.0, s[:-1]
    elif s[-1] in "EeNn":
        s = s[:-1]
    s = s.strip()
    if s.startswith("-"):
        sign, s = -sign, s[1:]
    elif s.startswith("+"):
        s = s[1:]
    parts = [p for p in _SEXA_SPLIT.split(s) if p]
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        return None
    if not nums or len(nums) > 3:
        return None
    out = 0.0
    for i, n in enumerate(nums):
        out += n / 60.0**i
    return sign * out


def _is_sexagesimal_text(value: Any) -> bool:
    return isinstance(value, str) and _num(value) is None


def _parse_datetime(value: Any, *, utc: bool) -> datetime | None:
    """ISO 8601 (``2025-03-27T01:20:32.955368``, with or without ``Z``) → datetime.

    ``utc=True`` gives an aware UTC datetime (naive values are taken as UTC, as FITS says);
    ``utc=False`` gives a naive local datetime.
    """
    s = _text(value)
    if s is None:
        return None
    s = s.replace(" ", "T", 1) if "T" not in s and len(s) > 10 else s
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if utc:
        return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return dt.replace(tzinfo=None)


def _parse_binning(value: Any) -> tuple[int, int] | None:
    """``2``, ``'2'``, ``'2x2'``, ``'1X2'`` → (x, y)."""
    v = _num(value)
    if v is not None:
        return (int(v), int(v)) if v >= 1 and v == int(v) else None
    s = _text(value)
    m = re.fullmatch(r"(\d+)\s*[xX*]\s*(\d+)", s or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def _parse_session(value: Any) -> str | None:
    """A night label from a path token: ``2026-10-12``, ``20261012`` → ``"2026-10-12"``.

    Anything else is kept as the user wrote it (it still groups frames correctly).
    """
    s = _text(value)
    if s is None:
        return None
    m = re.fullmatch(r"(\d{4})[-.]?(\d{2})[-.]?(\d{2})", s)
    if m:
        try:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
        except ValueError:
            return s
    return s


def observing_night(
    date_obs: datetime | None,
    *,
    longitude: float | None = None,
    date_loc: datetime | None = None,
) -> str | None:
    """The observing night a frame belongs to: the local date at the night's start.

    Nights are split at local noon, so a frame taken at 02:00 local belongs to the previous
    date. Local time is UTC shifted by ``longitude``/15 hours when a longitude is known (mean
    solar time: no time zones or daylight saving to get wrong); else ``date_loc``; else UTC.

    Parameters
    ----------
    date_obs : datetime or None
        Start of exposure in UTC (aware or naive-UTC).
    longitude : float, optional
        Site longitude in degrees, east positive.
    date_loc : datetime, optional
        Local civil time of the exposure (N.I.N.A. ``DATE-LOC``, a file name timestamp).

    Returns
    -------
    str or None
        ``"YYYY-MM-DD"``, None when no time is known.
    """
    if date_obs is not None and longitude is not None:
        local = date_obs.replace(tzinfo=None) + timedelta(hours=longitude / 15.0)
    elif date_loc is not None:
        local = date_loc.replace(tzinfo=None)
    elif date_obs is not None:
        local = date_obs.replace(tzinfo=None)
    else:
        return None
    return (local - timedelta(hours=12)).date().isoformat()


# --------------------------------------------------------------------------------------------
# Header → values
# --------------------------------------------------------------------------------------------

# For each field: XISF properties first (PixInsight lets them override FITS keywords), then
# FITS keywords in order of preference.
_PROPS: dict[str, tuple[str, ...]] = {
    "type": ("PCL:Image:Type", "XISF:ImageType", "ImageType"),
    "exposure": ("Instrument:ExposureTime", "Instrument:FrameExposureTime"),
    "filter": ("Instrument:Filter:Name",),
    "temperature": ("Instrument:Sensor:Temperature",),
    "set_temperature": ("Instrument:Sensor:TargetTemperature",),
    # Not Instrument:Camera:Gain — that is e-/ADU, like EGAIN.
    "gain": ("Instrument:Camera:ISOSpeed",),
    "readout_mode": ("Instrument:Camera:ReadoutMode",),
    "camera": ("Instrument:Camera:Name",),
    "telescope": ("Instrument:Telescope:Name",),
    "focal_length": ("Instrument:Telescope:FocalLength",),
    "pixel_size": ("Instrument:Sensor:XPixelSize",),
    "object": ("Observation:Object:Name",),
    "date_obs": ("Observation:Time:Start",),
    "longitude": ("Observation:Location:Longitude",),
    "bayer": ("PCL:CFASourcePattern",),
    "rotator": ("Instrument:Rotator:Angle",),
    "ra": ("Observation:Center:RA", "Observation:Object:RA"),
    "dec": ("Observation:Center:Dec", "Observation:Object:Dec"),
}
_KEYS: dict[str, tuple[str, ...]] = {
    "type": ("IMAGETYP", "FRAME", "FRAMETYP", "OBSTYPE"),
    "exposure": ("EXPTIME", "EXPOSURE", "EXP_TIME", "EXPOSURE_TIME"),
    "filter": ("FILTER", "INSFLNAM", "FILTNAME", "FILTER1"),
    "temperature": ("CCD-TEMP", "CCD_TEMP", "CCDTEMP", "SENSTEMP", "DET-TEMP"),
    "set_temperature": ("SET-TEMP", "SET_TEMP", "SETTEMP", "CCD-SET"),
    "gain": ("GAIN", "CCD_GAIN", "ISOSPEED", "ISO"),
    "offset": ("OFFSET", "BLKLEVEL", "BLACKLEV", "CCD_OFFSET"),
    "readout_mode": ("READOUTM", "READMODE", "READOUT"),
    "camera": ("INSTRUME", "CAMERA"),
    "telescope": ("TELESCOP",),
    "focal_length": ("FOCALLEN", "FOCAL"),
    "pixel_size": ("XPIXSZ", "PIXSIZE1", "PIXSIZE"),
    "object": ("OBJECT", "OBJNAME", "TARGET"),
    "panel": ("PANEL", "MOSAIC", "PANELID"),
    "date_obs": ("DATE-OBS", "DATE-BEG"),
    "date_loc": ("DATE-LOC",),
    "longitude": ("SITELONG", "LONG-OBS", "OBSGEO-L", "OBS-LONG"),
    "bayer": ("BAYERPAT", "COLORTYP", "CFA-PAT"),
    "row_order": ("ROWORDER",),
    "rotator": ("ROTATOR", "ROTATANG", "ROTANGLE"),
    "ra": ("RA", "OBJCTRA"),
    "dec": ("DEC", "OBJCTDEC"),
}
_NOT_SET = object()


def _convert(fieldname: str, name: str, value: Any, is_prop: bool) -> Any:
    """A raw keyword/property value → the field's type (None when it makes no sense)."""
    if fieldname in ("exposure", "temperature", "set_temperature", "pixel_size"):
        v = _num(value)
        if fieldname == "exposure" and v is not None and v < 0:
            return None
        return v
    if fieldname in ("gain", "offset"):
        return _int_if_whole(_num(value))
    if fieldname == "focal_length":
        v = _num(value)
        if v is None or v <= 0:  # MaxIm writes FOCALLEN = 0 when it does not know
            return None
        # XISF stores metres; a focal length below 20 mm is not a telescope.
        return v * 1000.0 if is_prop and v < 20 else v
    if fieldname == "longitude":
        v = _sexagesimal(value)
        return v if v is not None and -360 <= v <= 360 else None
    if fieldname == "ra":
        # OBJCTRA and sexagesimal RA strings are hours; numeric RA and properties are degrees.
        if name == "OBJCTRA" or _is_sexagesimal_text(value):
            h = _sexagesimal(value)
            return None if h is None else h * 15.0
        return _num(value)
    if fieldname == "dec":
        return _sexagesimal(value)
    if fieldname == "rotator":
        return _num(value)
    if fieldname == "date_obs":
        return _parse_datetime(value, utc=True)
    if fieldname == "date_loc":
        return _parse_datetime(value, utc=False)
    if fieldname == "bayer":
        s = _text(value)
        return s.upper() if s and re.fullmatch(r"[RGBCMYW]{4}", s.upper()) else None
    if fieldname == "row_order":
        s = _text(value)
        return s.upper() if s else None
    if fieldname == "panel":
        s = _text(value)
        return s if s else None
    if fieldname == "type":
        return _text(value)
    if fieldname == "readout_mode":
        s = _text(value)
        # MaxIm DL writes its colour-conversion setting here ('Monochrome', 'Raw'): not a sensor
        # readout mode, and treating it as one would split darks from lights for nothing.
        return None if s is None or s.strip().lower() in _NOT_READOUT_MODES else s
    return _text(value)


_NOT_READOUT_MODES = frozenset({"monochrome", "raw", "color", "colour", "rgb", "none", ""})


def _describe(fieldname: str, is_prop: bool, name: str, value: Any) -> str:
    kind = "property" if is_prop else "header"
    if fieldname in ("type", "filter") and isinstance(value, str):
        return f"{kind} {name} {value.strip()!r}"  # the exact words matter to the user
    return f"{kind} {name}"


_CANDIDATES: tuple[tuple[str, tuple[tuple[bool, str], ...]], ...] = tuple(
    (f, tuple([(True, n) for n in _PROPS.get(f, ())] + [(False, n) for n in _KEYS.get(f, ())]))
    for f in sorted(set(_PROPS) | set(_KEYS))
)


def _header_values(header: Header) -> dict[str, tuple[Any, str]]:
    """Every field the header knows, as ``field → (value, source)``."""
    # The first card of each name wins: build the dict from the end.
    first: dict[str, Any] = {c.name.upper(): c.value for c in reversed(header.keywords)}
    props = header.properties or {}
    out: dict[str, tuple[Any, str]] = {}
    for fieldname, candidates in _CANDIDATES:
        for is_prop, name in candidates:
            raw = props.get(name, _NOT_SET) if is_prop else first.get(name, _NOT_SET)
            if raw is _NOT_SET or raw is None:
                continue
            if fieldname == "filter":
                text = _text(raw)
                if text is None or normalize_filter(text) is None:
                    continue  # 'None'/'Open' filters say nothing; let the path speak
                out["filter"] = (text, _describe(fieldname, is_prop, name, raw))
                break
            value = _convert(fieldname, name, raw, is_prop)
            if value is None:
                continue
            out[fieldname] = (value, _describe(fieldname, is_prop, name, raw))
            break

    # DATE-OBS holding only a date, with the time in TIME-OBS/UT (old MaxIm, CCDOPS).
    d = first.get("DATE-OBS")
    if "date_obs" in out and isinstance(d, str) and "T" not in d.strip():
        t = first.get("TIME-OBS", first.get("UT"))
        dt = _parse_datetime(f"{d.strip()}T{str(t).strip()}", utc=True) if t else None
        if dt is not None:
            out["date_obs"] = (dt, "header DATE-OBS + TIME-OBS")

    x = next(((n, first[n]) for n in ("XBINNING", "CCDXBIN", "CCDBINX", "BINNING")
              if n in first), None)
    y = next((first[n] for n in ("YBINNING", "CCDYBIN", "CCDBINY") if n in first), None)
    px, py = props.get("Instrument:Camera:XBinning"), props.get("Instrument:Camera:YBinning")
    if px is not None and _num(px):
        bx = int(_num(px) or 1)
        out["binning"] = ((bx, int(_num(py) or bx)), "property Instrument:Camera:XBinning")
    elif x is not None:
        b = _parse_binning(x[1])
        if b is not None:
            yb = _num(y)
            if yb is not None and yb >= 1 and x[0] != "BINNING":
                b = (b[0], int(yb))
            out["binning"] = (b, f"header {x[0]}")

    if "bayer" not in out and header.bayer_pattern:
        bp = _convert("bayer", "BAYERPAT", header.bayer_pattern, False)
        if bp:
            out["bayer"] = (bp, "header BAYERPAT")
    if "row_order" not in out and header.row_order:
        out["row_order"] = (str(header.row_order).upper(), "header ROWORDER")
    if "bayer" in out:
        ox = _num(first.get("XBAYROFF", first.get("BAYOFFX")))
        oy = _num(first.get("YBAYROFF", first.get("BAYOFFY")))
        if ox is not None or oy is not None:
            out["bayer_offset"] = ((int(ox or 0), int(oy or 0)), "header XBAYROFF/YBAYROFF")
    return out


# --------------------------------------------------------------------------------------------
# Path → values
# --------------------------------------------------------------------------------------------

#: WBPP-style ``KEY_VALUE`` tokens; the key maps onto a field.
_PATH_KEYS: dict[str, str] = {
    "FILTER": "filter", "INSFLNAM": "filter",
    "EXPTIME": "exposure", "EXPOSURE": "exposure", "EXP": "exposure",
    "NIGHT": "session", "SESSION": "session", "DATE": "session",
    "PANEL": "panel", "MOSAIC": "panel",
    "BIN": "binning", "BINNING": "binning", "XBINNING": "binning", "CCDBINX": "binning",
    "GAIN": "gain", "ISO": "gain", "OFFSET": "offset",
    "TEMP": "temperature", "CCD-TEMP": "temperature", "CCDTEMP": "temperature",
    "SET-TEMP": "set_temperature", "SETTEMP": "set_temperature",
    "OBJECT": "object", "TARGET": "object",
    "IMAGETYP": "type", "TYPE": "type",
    "READOUTM": "readout_mode", "CAMERA": "camera", "INSTRUME": "camera",
}
_KEY_VALUE = re.compile(
    r"(?<![A-Za-z0-9])(" + "|".join(sorted((re.escape(k) for k in _PATH_KEYS), key=len,
                                           reverse=True))
    + r")[_=\-]+([A-Za-z0-9.:()+\-]+)",
    re.IGNORECASE,
)
_RE_EXPOSURE = re.compile(r"(\d+(?:\.\d+)?)(s|sec|secs|ms)", re.IGNORECASE)
_RE_BIN = re.compile(r"(?:bin(\d)(?:x(\d))?|(\d)x(\d))", re.IGNORECASE)
_RE_GAIN = re.compile(r"gain(\d+(?:\.\d+)?)", re.IGNORECASE)
_RE_OFFSET = re.compile(r"offset(\d+)", re.IGNORECASE)
_RE_TEMP = re.compile(r"([-+]?\d+(?:\.\d+)?)\u00b0?c", re.IGNORECASE)
_RE_STAMP = re.compile(r"(\d{8})-(\d{6})")  # ASIAIR / Seestar local time
_RE_ISO_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}")  # Ekos local time
_RE_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_RE_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_RE_TIME = re.compile(r"(\d{2})-(\d{2})-(\d{2})")
_RE_PANEL = re.compile(r"panel(\d+)", re.IGNORECASE)
_RE_SEQ = re.compile(r"\d+")
_IMAGE_EXT = re.compile(
    r"(" + "|".join(re.escape(s) for s in sorted(IMAGE_SUFFIXES - {".gz"})) + r")(\.gz)?$",
    re.IGNORECASE,
)


def _path_type(token: str) -> tuple[FrameType | None, bool]:
    key = token.lower()
    master = key.startswith("master") and len(key) > len("master")
    if master:
        key = key[len("master"):]
    return _PATH_TYPE_WORDS.get(key), master


def _key_value(key: str, raw: str) -> tuple[str, Any] | None:
    fieldname = _PATH_KEYS[key.upper()]
    if fieldname == "exposure":
        m = _RE_EXPOSURE.fullmatch(raw)
        v = (float(m.group(1)) / (1000.0 if m.group(2).lower() == "ms" else 1.0)) if m \
            else _num(raw)
    elif fieldname in ("gain", "offset"):
        v = _int_if_whole(_num(raw))
    elif fieldname in ("temperature", "set_temperature"):
        v = _num(raw.rstrip("cC"))
    elif fieldname == "binning":
        v = _parse_binning(raw)
    elif fieldname == "session":
        v = _parse_session(raw)
    elif fieldname == "type":
        v, _ = parse_frame_type(raw)
    else:
        v = raw
    return None if v is None else (fieldname, v)


def _classify(token: str) -> tuple[str, Any] | None:
    """A generic file/folder name token → ``(field, value)`` or None."""
    m = _RE_EXPOSURE.fullmatch(token)
    if m:
        return "exposure", float(m.group(1)) / (1000.0 if m.group(2).lower() == "ms" else 1.0)
    m = _RE_BIN.fullmatch(token)
    if m:
        x = int(m.group(1) or m.group(3))
        y = int(m.group(2) or m.group(4) or x)
        return "binning", (x, y)
    m = _RE_GAIN.fullmatch(token)
    if m:
        return "gain", _int_if_whole(float(m.group(1)))
    m = _RE_OFFSET.fullmatch(token)
    if m:
        return "offset", int(m.group(1))
    m = _RE_TEMP.fullmatch(token)
    if m:
        return "temperature", float(m.group(1))
    m = _RE_STAMP.fullmatch(token)
    if m:
        try:
            return "date_loc", datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S")
        except ValueError:
            return None
    if _RE_ISO_STAMP.fullmatch(token):
        try:
            return "date_loc", datetime.strptime(token, "%Y-%m-%dT%H-%M-%S")
        except ValueError:
            return None
    m = _RE_PANEL.fullmatch(token)
    if m:
        return "panel", m.group(1)
    return None


def _components(path: str | PurePath, root: str | PurePath | None) -> list[str]:
    if isinstance(path, str) and isinstance(root, str) and root and \
            path.startswith(root.rstrip(os.sep) + os.sep):
        # Fast path for the scanner (plain absolute strings); same result as below.
        rest = path[len(root.rstrip(os.sep)) + 1:]
        name = os.path.basename(root.rstrip(os.sep))
        return ([name] if name else []) + [c for c in rest.split(os.sep) if c]
    p = PurePath(path)
    if root is not None:
        r = PurePath(root)
        try:
            rel = p.relative_to(r)
        except ValueError:
            rel = None
        if rel is not None:
            return ([r.name] if r.name else []) + list(rel.parts)
    parts = list(p.parts)
    if p.anchor and parts and parts[0] == p.anchor:
        parts = parts[1:]
    return parts


def hints_from_path(
    path: str | PurePath, *, root: str | PurePath | None = None
) -> dict[str, tuple[Any, str]]:
    """What a frame's file and folder names say about it.

    Understands WBPP-style ``KEY_VALUE`` tokens anywhere (``FILTER_Ha``, ``EXPTIME_300``,
    ``NIGHT_2026-10-12``, ``PANEL_2``, ``BIN_2``, ``GAIN_100``), type words in folder and file
    names (``Darks/``, ``FLAT/``, ``DarkFlats/``, ``Light_…``), ``master`` anywhere, ASIAIR and
    Seestar file names (``Light_M31_60.0s_Bin2_G_gain100_20261014-220000_-10.0C_0001.fit``) and
    N.I.N.A. templates (a folder named ``2026-10-12`` is the night; ``Ha/`` is the filter). The
    deepest occurrence wins.

    Parameters
    ----------
    path : str or PurePath
        The frame's path.
    root : str or PurePath, optional
        The scanned folder: components above it (e.g. ``/home/me``) are ignored; its own name
        counts.

    Returns
    -------
    dict
        ``field → (value, source)``; fields as in :class:`FrameInfo` plus ``date_loc``.
    """
    parts = _components(path, root)
    out: dict[str, tuple[Any, str]] = {}
    master_src: str | None = None
    for i, comp in enumerate(parts):
        is_file = i == len(parts) - 1
        name = _IMAGE_EXT.sub("", comp) if is_file else comp
        where = f"file name '{comp}'" if is_file else f"folder '{comp}'"
        if "master" in comp.lower():
            master_src = where

        # KEY_VALUE tokens first; cut them out so their values are not read twice.
        rest = name
        for m in _KEY_VALUE.finditer(name):
            kv = _key_value(m.group(1), m.group(2))
            if kv is not None:
                out[kv[0]] = (kv[1], f"path token {m.group(0).strip(' _-')}")
            rest = rest.replace(m.group(0), " ")

        squashed = _SQUASH.sub("", rest).lower()
        dark_flat_here = "darkflat" in squashed or "flatdark" in squashed
        if dark_flat_here:
            out["type"] = ("dark_flat", where)
        if not is_file and re.fullmatch(r"\d{4}-\d{2}-\d{2}", comp):
            out["session"] = (_parse_session(comp), where)  # N.I.N.A. $$DATEMINUS12$$ folder
            continue
        if not is_file and _is_known_filter(comp, allow_single=True):
            out["filter"] = (comp, where)  # N.I.N.A. $$FILTER$$ folder
            continue

        tokens = [t for t in re.split(r"[_\s]+", rest) if t]
        seen_exposure = -1
        stamp = -1
        found: dict[int, str] = {}
        for j, tok in enumerate(tokens):
            ptype, pmaster = _path_type(tok)
            if ptype is not None:
                if not dark_flat_here:
                    out["type"] = (ptype, where if not is_file else f"file name token '{tok}'")
                found[j] = "type"
                continue
            c = _classify(tok)
            if c is None and _RE_DATE.fullmatch(tok) and j + 1 < len(tokens) \
                    and _RE_TIME.fullmatch(tokens[j + 1]):
                try:  # N.I.N.A. $$DATETIME$$: 2026-10-12_22-00-00 (local time)
                    c = ("date_loc", datetime.strptime(f"{tok} {tokens[j + 1]}",
                                                       "%Y-%m-%d %H-%M-%S"))
                    tok = f"{tok}_{tokens[j + 1]}"
                except ValueError:
                    c = None
            if c is None and _RE_NUMBER.fullmatch(tok) and j + 1 < len(tokens) \
                    and tokens[j + 1].lower() in ("s", "sec", "secs"):
                c = ("exposure", float(tok))  # Ekos/WBPP: 300_secs
                tok = f"{tok}_{tokens[j + 1]}"
                found[j + 1] = "exposure"
            if c is not None:
                out[c[0]] = (c[1], where if not is_file else f"file name token '{tok}'")
                found[j] = c[0]
                if c[0] == "exposure" and seen_exposure < 0:
                    seen_exposure = j
                if c[0] == "date_loc":
                    stamp = j
                continue
            if is_file and _is_known_filter(tok, allow_single=False):
                out["filter"] = (tok, f"file name token '{tok}'")
                found[j] = "filter"
            elif not is_file and "-" in tok:
                for sub in tok.split("-"):
                    st, _ = _path_type(sub)
                    if st is not None and not dark_flat_here:
                        out["type"] = (st, where)

        # ASIAIR / Seestar: TYPE_target_EXPOSURE_[BinN]_[filter]_[gainN]_STAMP_[TEMP]_[seq]
        if is_file and tokens and found.get(0) == "type" and seen_exposure > 0:
            target = [t for k, t in enumerate(tokens[1:seen_exposure], 1) if k not in found]
            if target:
                out["object"] = (" ".join(target), f"file name token '{'_'.join(target)}'")
            end = stamp if stamp > seen_exposure else len(tokens)
            for k in range(seen_exposure + 1, end):
                tok = tokens[k]
                if found.get(k) in (None, "filter") and not _RE_SEQ.fullmatch(tok) \
                        and re.fullmatch(r"[A-Za-z][A-Za-z0-9+\-]*", tok):
                    out["filter"] = (tok, f"file name token '{tok}'")
                    break
    if master_src is not None:
        out["master"] = (True, master_src)
    return out


# --------------------------------------------------------------------------------------------
# Merging and overrides
# --------------------------------------------------------------------------------------------

#: Fields a user may set in an overrides file (plus ``date_loc``/``longitude`` inputs).
OVERRIDE_FIELDS: frozenset[str] = frozenset({
    "type", "master", "exposure", "filter", "binning", "temperature", "set_temperature",
    "gain", "offset", "readout_mode", "camera", "telescope", "focal_length", "pixel_size",
    "object", "panel", "session", "bayer", "row_order", "rotator", "ra", "dec", "date_obs",
    "date_loc", "longitude", "width", "height",
})
_MERGED = ("exposure", "filter", "binning", "temperature", "set_temperature", "gain", "offset",
           "readout_mode", "camera", "telescope", "focal_length", "pixel_size", "object",
           "panel", "date_obs", "date_loc", "longitude", "bayer", "bayer_offset", "row_order",
           "rotator", "ra", "dec")


def _same(fieldname: str, a: Any, b: Any) -> bool:
    """Do a header value and a path value agree (allowing for rounding in file names)?"""
    if fieldname == "exposure":
        return abs(a - b) <= max(0.001, 0.01 * abs(a))
    if fieldname in ("temperature", "set_temperature"):
        return abs(a - b) <= 1.0
    if fieldname in ("gain", "offset", "focal_length", "pixel_size"):
        return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(a)))
    if fieldname == "filter":
        return (normalize_filter(a) or "").lower() == (normalize_filter(b) or "").lower()
    if fieldname in ("object", "camera", "telescope", "panel"):
        def squash(s: Any) -> str:
            return re.sub(r"[^a-z0-9]", "", str(s).lower())
        return squash(a) == squash(b)
    if fieldname == "date_loc":
        return abs((a - b).total_seconds()) <= 120
    return bool(a == b)


def _show(v: Any) -> str:
    if isinstance(v, tuple) and len(v) == 2:
        return f"{v[0]}x{v[1]}"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, datetime):
        return v.isoformat()
    return str(v)


def _coerce_override(fieldname: str, value: Any, source: str) -> Any:
    """Check and convert one override value; raises ConfigError naming the source."""
    def bad(what: str) -> ConfigError:
        return ConfigError(f"{source}: {fieldname} = {value!r} is not {what}")

    if fieldname == "type":
        t, _ = parse_frame_type(value)
        if t is None:
            raise bad("a frame type (light, dark, flat, bias, dark_flat)")
        return t
    if fieldname == "master":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if fieldname == "binning":
        b = _parse_binning(value) if not isinstance(value, list | tuple) else (
            (int(value[0]), int(value[1])) if len(value) == 2 else None)
        if b is None:
            raise bad('a binning such as 2 or "2x2"')
        return b
    if fieldname in ("exposure", "temperature", "set_temperature", "focal_length",
                     "pixel_size", "rotator", "ra", "dec", "longitude"):
        v = _num(value)
        if v is None:
            raise bad("a number")
        return v
    if fieldname in ("gain", "offset"):
        v = _num(value)
        if v is None:
            raise bad("a number")
        return _int_if_whole(v)
    if fieldname in ("width", "height"):
        if not isinstance(value, int) or value <= 0:
            raise bad("a positive integer")
        return value
    if fieldname == "session":
        s = _parse_session(value if not isinstance(value, date) else value.isoformat())
        if s is None:
            raise bad("a night such as 2026-10-12")
        return s
    if fieldname in ("date_obs", "date_loc"):
        if isinstance(value, datetime):
            dt = value
            if fieldname == "date_obs":
                dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
            else:
                dt = dt.replace(tzinfo=None)
            return dt
        dt2 = _parse_datetime(value, utc=fieldname == "date_obs")
        if dt2 is None:
            raise bad("an ISO date-time")
        return dt2
    if fieldname == "bayer":
        s = _text(value)
        if s is None or s.lower() in ("none", "mono"):
            return None
        if not re.fullmatch(r"[RGBCMYW]{4}", s.upper()):
            raise bad("a CFA pattern such as RGGB")
        return s.upper()
    s = _text(value)
    if s is None:
        raise bad("a non-empty text")
    return s


def frame_info(
    header: Header,
    *,
    path_hints: bool = True,
    longitude: float | None = None,
    overrides: Mapping[str, Any] | None = None,
    root: str | PurePath | None = None,
    prefer_path: bool = False,
    override_source: str = "override",
) -> FrameInfo:
    """Read what a frame is from its header, XISF properties and path.

    Parameters
    ----------
    header : skystack.io.Header
        As returned by :func:`skystack.io.read_header`.
    path_hints : bool
        Also read file and folder names (:func:`hints_from_path`).
    longitude : float, optional
        Site longitude (degrees east) used for the observing night when the header has no
        SITELONG.
    overrides : mapping, optional
        ``field → value`` set by the user, applied last (see :data:`OVERRIDE_FIELDS`).
    root : str or PurePath, optional
        The scanned folder; only path components from its name downwards are read.
    prefer_path : bool
        Let path values win over header values (disagreements are still reported).
    override_source : str
        How ``sources`` names the overrides (``"override skystack-overrides.toml"``).

    Returns
    -------
    FrameInfo
        Values, ``sources`` for each, and ``warnings`` for every real disagreement.

    Raises
    ------
    ConfigError
        An override value has the wrong type.
    """
    info = FrameInfo(path=str(header.path), format=header.format,
                     sample_format=header.sample_format, channels=header.channels)
    if len(header.shape) >= 2:
        info.width, info.height = header.width, header.height
    hv = _header_values(header)
    pv = hints_from_path(header.path, root=root) if path_hints else {}
    warn = info.warnings

    # Frame type and master flag.
    htype = hmaster = None
    ptype = pv.get("type")
    if "type" in hv:
        htype, hmaster = parse_frame_type(hv["type"][0])
        if htype is None:
            fallback = f"using {ptype[0]} from {ptype[1]}" if ptype else "no path hint either"
            warn.append(f"type: {hv['type'][1]} is not a frame type skystack knows; {fallback} "
                        "(add an override to be explicit)")
    if htype is not None:
        hsrc = hv["type"][1]
        info.type, info.sources["type"] = htype, hsrc
        if ptype is not None and ptype[0] != htype:
            if htype == "dark" and ptype[0] == "dark_flat":
                # Many programs write plain 'Dark' for dark flats; the folder refines it.
                info.type, info.sources["type"] = "dark_flat", f"{hsrc} + {ptype[1]}"
            elif prefer_path:
                info.type, info.sources["type"] = ptype[0], ptype[1]
                warn.append(f"type: the {hsrc} says {htype} but {ptype[1]} says {ptype[0]}; "
                            f"using {ptype[0]} from the path as configured")
            else:
                warn.append(f"type: the {hsrc} says {htype} but {ptype[1]} says {ptype[0]}; "
                            f"using {htype} from the header (fix the file, or add an override "
                            "if the folder is right)")
    elif ptype is not None:
        info.type, info.sources["type"] = ptype[0], ptype[1]
    if hmaster:
        info.master, info.sources["master"] = True, hv["type"][1]
    elif "master" in pv and info.type not in (None, "light"):
        # WBPP's rule: 'master' anywhere in the path marks a calibration master, never a light.
        info.master, info.sources["master"] = True, pv["master"][1]

    # Everything else: header first, the path fills gaps, disagreements become warnings.
    values: dict[str, Any] = {}
    for f in _MERGED:
        h, p = hv.get(f), pv.get(f)
        if h is not None and p is not None and not _same(f, h[0], p[0]):
            pick = p if prefer_path else h
            warn.append(f"{f}: the {h[1]} says {_show(h[0])} but {p[1]} says {_show(p[0])}; "
                        + (f"using {_show(p[0])} from the path as configured" if prefer_path
                           else f"using {_show(h[0])} from the header"))
        else:
            pick = h if h is not None else p
        if pick is not None:
            values[f] = pick[0]
            info.sources[f] = pick[1]

    over = dict(overrides or {})
    unknown = set(over) - OVERRIDE_FIELDS
    if unknown:
        raise ConfigError(f"{override_source}: unknown field(s) {sorted(unknown)}; "
                          f"known: {sorted(OVERRIDE_FIELDS)}")
    clean = {k: _coerce_override(k, v, override_source) for k, v in over.items()}
    for k in ("date_obs", "date_loc", "longitude"):  # inputs of the night: apply them first
        if k in clean:
            values[k] = clean.pop(k)
            info.sources[k] = override_source

    for f, v in values.items():
        if f == "filter":
            info.filter_raw, info.filter = v, normalize_filter(v)
        else:
            setattr(info, f, v)

    _set_session(info, pv.get("session"), longitude)

    for f, v in clean.items():
        if f == "filter":
            info.filter_raw, info.filter = str(v), normalize_filter(str(v))
        else:
            setattr(info, f, v)
        info.sources[f] = override_source
    if "type" in clean and "master" not in clean and info.type == "light":
        info.master = False
    if info.type is None:
        warn.append("type: neither the header nor the path says what kind of frame this is; "
                    "put it in a Lights/, Darks/, Flats/ or Bias/ folder or add an override")
    return info


def _set_session(info: FrameInfo, from_path: tuple[Any, str] | None,
                 longitude: float | None) -> None:
    """The night: a NIGHT_/SESSION_ token or dated folder is the user's explicit word and wins;
    otherwise it is computed from the exposure time (see :func:`observing_night`)."""
    site, lon_src = info.longitude, info.sources.get("longitude", "")
    if site is None and longitude is not None:
        site, lon_src = longitude, "configured longitude"
    computed = observing_night(info.date_obs, longitude=site, date_loc=info.date_loc)
    how = ""
    if computed is not None:
        if info.date_obs is not None and site is not None:
            name = lon_src.split(" ")[1] if lon_src.startswith(("header ", "property ")) \
                else lon_src
            how = f"DATE-OBS + {name}"
        elif info.date_loc is not None:
            how = f"local time ({info.sources.get('date_loc', 'DATE-LOC')})"
        else:
            how = "DATE-OBS in UTC (no site longitude known)"
        how = f"night of {how}, split at local noon"
    if from_path is not None:
        info.session, info.sources["session"] = from_path
        if computed is not None and computed != from_path[0]:
            info.warnings.append(f"session: {from_path[1]} says {from_path[0]} but the {how} "
                                 f"gives {computed}; using {from_path[0]} from the path")
    elif computed is not None:
        info.session, info.sources["session"] = computed, how


def _merge_overrides(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Later mappings win (used by the library for several matching override rules)."""
    out: dict[str, Any] = {}
    for m in items:
        out.update(m)
    return out
