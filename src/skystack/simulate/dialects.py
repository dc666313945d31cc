"""File names, folders and FITS headers as capture programs write them.

One function pair per program: :func:`header_for` (the keyword cards) and :func:`path_for` (the
file's path relative to the capture root). Modelled on real files (N.I.N.A. 1.10–3.x, SGP 2.x
frame-type values with SGP's keyword set, MaxIm DL 5–6, KStars/Ekos with INDI drivers, ZWO
ASIAIR/Seestar), simplified where the programs let users configure patterns.

==========  ===================================================  ==============================
dialect     IMAGETYP (light, dark, flat, bias, dark flat)         layout (default pattern)
==========  ===================================================  ==============================
``nina``    LIGHT, DARK, FLAT, BIAS, DARKFLAT                     ``NIGHT/TYPE/DATETIME_FILTER_
                                                                  TEMP_EXPs_NNNN.fits``
``sgp``     Light Frame, Dark Frame, Flat Frame, Bias Frame,      ``TARGET/TARGET_EXPsec_1x1_
            Dark Frame                                            FILTER_frameN.fit``
``maxim``   Light Frame, Dark Frame, Flat Field, Bias Frame,      ``NIGHT/TARGET-NNNFILTER.fit``
            Dark Frame                                            (EGAIN in e⁻/ADU, no GAIN)
``ekos``    Light Frame, Dark Frame, Flat Frame, Bias Frame,      ``TARGET/Light/FILTER/TARGET_
            Dark Frame (+ FRAME Light/Dark/Flat/Bias/Dark Flat)   Light_FILTER_EXP_secs_TIME_NNN
                                                                  .fits``
``asiair``  Light, Dark, Flat, Bias, Dark                         ``Autorun/Light/TARGET/Light_
                                                                  TARGET_EXPs_Bin1_FILTER_gainG_
                                                                  TIME_TEMPC_NNNN.fit``
==========  ===================================================  ==============================

Mosaic panels add a ``PANEL_<n>`` folder after the type folder, OBJECT ``"<target> Panel <n>"``
and a ``PANEL`` keyword. Pre-made masters (``FrameSpec.master``) get IMAGETYP ``"Master Dark"``
etc. and ``master`` in their file name, as users' library masters usually do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from skystack.io import Keyword

__all__ = ["FrameSpec", "DIALECTS", "header_for", "path_for", "IMAGETYP", "FRAME_KINDS"]

FRAME_KINDS = ("light", "dark", "flat", "bias", "dark_flat")

#: dialect → frame kind → IMAGETYP value.
IMAGETYP: dict[str, dict[str, str]] = {
    "nina": {"light": "LIGHT", "dark": "DARK", "flat": "FLAT", "bias": "BIAS",
             "dark_flat": "DARKFLAT"},
    "sgp": {"light": "Light Frame", "dark": "Dark Frame", "flat": "Flat Frame",
            "bias": "Bias Frame", "dark_flat": "Dark Frame"},
    "maxim": {"light": "Light Frame", "dark": "Dark Frame", "flat": "Flat Field",
              "bias": "Bias Frame", "dark_flat": "Dark Frame"},
    "ekos": {"light": "Light Frame", "dark": "Dark Frame", "flat": "Flat Frame",
             "bias": "Bias Frame", "dark_flat": "Dark Frame"},
    "asiair": {"light": "Light", "dark": "Dark", "flat": "Flat", "bias": "Bias",
               "dark_flat": "Dark"},
}
_EKOS_FRAME = {"light": "Light", "dark": "Dark", "flat": "Flat", "bias": "Bias",
               "dark_flat": "Dark Flat"}
_MASTER = {"dark": "Master Dark", "flat": "Master Flat", "bias": "Master Bias",
           "dark_flat": "Master Dark", "light": "Master Light"}


@dataclass(frozen=True)
class FrameSpec:
    """What a capture program knows about one frame when it writes the file.

    Attributes
    ----------
    type : str
        One of :data:`FRAME_KINDS`.
    exposure : float
        Seconds.
    filter : str or None
        Filter wheel position name (None: no filter keyword, e.g. colour cameras).
    temperature, set_temperature : float, float or None
        Sensor temperature and cooler set point (°C).
    date_obs : datetime
        UTC start of the exposure (naive, UTC).
    utc_offset_hours : float
        Local time − UTC, for DATE-LOC and local-time file names.
    index : int
        Frame number within its sequence (0-based; programs print it 0- or 1-based).
    object : str or None
        Target name (lights and flats; None for darks/bias).
    panel : str or None
        Mosaic panel (``"1"``, ``"2"``) or None.
    night : str
        Local date of the evening (``YYYY-MM-DD``).
    gain, offset : int
        Driver gain and offset settings.
    egain : float
        e⁻/ADU.
    binning : int
        Binning factor (same on both axes).
    camera, telescope : str
        INSTRUME, TELESCOP.
    focal_length, pixel_size : float
        mm and µm.
    bayer : str or None
        BAYERPAT (colour cameras).
    row_order : str
        ROWORDER the program writes (``"TOP-DOWN"``).
    ra, dec : float
        Pointing (degrees).
    site_lat, site_long : float
        Site (degrees, East positive).
    pier_side : str or None
        ``"East"`` / ``"West"`` (lights).
    master : bool
        A pre-made master (``IMAGETYP = 'Master Dark'`` …).
    """

    type: str
    exposure: float
    filter: str | None = None
    temperature: float = -10.0
    set_temperature: float | None = -10.0
    date_obs: datetime = datetime(2026, 10, 12, 20, 0, 0)
    utc_offset_hours: float = 2.0
    index: int = 0
    object: str | None = None
    panel: str | None = None
    night: str = "2026-10-12"
    gain: int = 100
    offset: int = 50
    egain: float = 0.5
    binning: int = 1
    camera: str = "ZWO ASI2600MM Pro"
    telescope: str = "Esprit 100ED"
    focal_length: float = 550.0
    pixel_size: float = 3.76
    bayer: str | None = None
    row_order: str = "TOP-DOWN"
    ra: float = 10.684708
    dec: float = 41.26875
    site_lat: float = 46.5
    site_long: float = 7.25
    pier_side: str | None = None
    master: bool = False

    @property
    def object_name(self) -> str | None:
        """OBJECT as written (with the panel suffix for mosaics)."""
        if self.object and self.panel:
            return f"{self.object} Panel {self.panel}"
        return self.object

    @property
    def local_time(self) -> datetime:
        """Local start time."""
        return self.date_obs + timedelta(hours=self.utc_offset_hours)


def _sexa(value: float, *, hours: bool) -> str:
    """Degrees → ``'HH MM SS.ss'`` (hours) or ``'+DD MM SS.s'``."""
    v = value / 15.0 if hours else value
    sign = "-" if v < 0 else "+"
    v = abs(v)
    d = int(v)
    m = int((v - d) * 60)
    s = (v - d - m / 60) * 3600
    if hours:
        return f"{d:02d} {m:02d} {s:05.2f}"
    return f"{sign}{d:02d} {m:02d} {s:04.1f}"


def _iso(t: datetime, digits: int) -> str:
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    if digits <= 0:
        return base
    frac = f"{t.microsecond:06d}"
    return f"{base}.{(frac + '0' * digits)[:digits]}"


def _type_value(dialect: str, spec: FrameSpec) -> str:
    if spec.master:
        return _MASTER[spec.type]
    return IMAGETYP[dialect][spec.type]


def _is_sky(spec: FrameSpec) -> bool:
    return spec.type in ("light", "flat")


# --- N.I.N.A. -----------------------------------------------------------------------------------
def _nina_header(s: FrameSpec) -> list[Keyword]:
    k = [
        Keyword("IMAGETYP", _type_value("nina", s), "Type of exposure"),
        Keyword("EXPOSURE", float(s.exposure), "[s] Exposure duration"),
        Keyword("EXPTIME", float(s.exposure), "[s] Exposure duration"),
        Keyword("DATE-LOC", _iso(s.local_time, 3), "Time of observation (local)"),
        Keyword("DATE-OBS", _iso(s.date_obs, 3), "Time of observation (UTC)"),
        Keyword("XBINNING", s.binning, "X axis binning factor"),
        Keyword("YBINNING", s.binning, "Y axis binning factor"),
        Keyword("GAIN", s.gain, "Sensor gain"),
        Keyword("OFFSET", s.offset, "Sensor gain offset"),
        Keyword("EGAIN", s.egain, "[e-/ADU] Electrons per A/D unit"),
        Keyword("XPIXSZ", s.pixel_size * s.binning, "[um] Pixel X axis size"),
        Keyword("YPIXSZ", s.pixel_size * s.binning, "[um] Pixel Y axis size"),
        Keyword("INSTRUME", s.camera, "Imaging instrument name"),
    ]
    if s.set_temperature is not None:
        k.append(Keyword("SET-TEMP", float(s.set_temperature), "[degC] CCD temperature setpoint"))
    k.append(Keyword("CCD-TEMP", round(float(s.temperature), 1), "[degC] CCD temperature"))
    k.append(Keyword("READOUTM", "High Gain Mode" if s.gain >= 100 else "Normal",
                     "Sensor readout mode"))
    if s.bayer:
        k += [Keyword("BAYERPAT", s.bayer, "Sensor Bayer pattern"),
              Keyword("XBAYROFF", 0, "Bayer pattern X axis offset"),
              Keyword("YBAYROFF", 0, "Bayer pattern Y axis offset")]
    k += [Keyword("TELESCOP", s.telescope, "Name of telescope"),
          Keyword("FOCALLEN", float(s.focal_length), "[mm] Focal length")]
    if s.type == "light":
        k += [Keyword("RA", round(s.ra, 6), "[deg] RA of telescope"),
              Keyword("DEC", round(s.dec, 6), "[deg] Declination of telescope")]
        if s.pier_side:
            k.append(Keyword("PIERSIDE", s.pier_side.upper(), "Telescope pointing state"))
    k += [Keyword("SITELAT", s.site_lat, "[deg] Observation site latitude"),
          Keyword("SITELONG", s.site_long, "[deg] Observation site longitude")]
    if s.filter is not None and s.type != "bias":
        k.append(Keyword("FILTER", s.filter, "Active filter name"))
    if s.object_name and _is_sky(s):
        k.append(Keyword("OBJECT", s.object_name, "Name of the object of interest"))
    if s.type == "light":
        k += [Keyword("OBJCTRA", _sexa(s.ra, hours=True), "[H M S] RA of imaged object"),
              Keyword("OBJCTDEC", _sexa(s.dec, hours=False), "[D M S] Declination of imaged object")]
    k += [Keyword("ROWORDER", s.row_order, "FITS Image Orientation"),
          Keyword("EQUINOX", 2000.0, "Equinox of celestial coordinate system"),
          Keyword("SWCREATE", "N.I.N.A. 3.1.2.9001", "Software that created this file")]
    return k


def _nina_path(s: FrameSpec) -> str:
    folder = _type_value("nina", s) if not s.master else "MASTER"
    stamp = s.local_time.strftime("%Y-%m-%d_%H-%M-%S")
    filt = s.filter if s.filter is not None else ""
    name = f"{stamp}_{filt}_{s.temperature:.2f}_{s.exposure:.2f}s_{s.index:04d}.fits"
    if s.master:
        name = f"master_{_MASTER[s.type].split()[1].lower()}_{s.exposure:.2f}s_{s.temperature:.0f}C.fits"
    parts = [s.night, folder]
    if s.panel:
        parts.append(f"PANEL_{s.panel}")
    return "/".join([*parts, name])


# --- Sequence Generator Pro ---------------------------------------------------------------------
def _sgp_header(s: FrameSpec) -> list[Keyword]:
    k = []
    if s.object_name and _is_sky(s):
        k.append(Keyword("OBJECT", s.object_name, "Object name"))
    k += [Keyword("DATE-LOC", _iso(s.local_time, 7), "Local observation date"),
          Keyword("DATE-OBS", _iso(s.date_obs, 7), "UTC observation date"),
          Keyword("IMAGETYP", _type_value("sgp", s), "Type of frame"),
          Keyword("CREATOR", "Sequence Generator Pro v2.6.0.25", "Capture software"),
          Keyword("INSTRUME", s.camera, "Instrument name"),
          Keyword("SITELAT", _sexa(s.site_lat, hours=False).lstrip("+"), "Site latitude"),
          Keyword("SITELONG", _sexa(s.site_long, hours=False).lstrip("+"), "Site longitude")]
    if s.filter is not None and s.type != "bias":
        k += [Keyword("FWHEEL", "ZWO EFW", "Filter Wheel name"),
              Keyword("FILTER", s.filter, "Filter name")]
    k.append(Keyword("EXPOSURE", float(s.exposure), "Exposure time in seconds"))
    k.append(Keyword("CCD-TEMP", round(float(s.temperature), 1), "Camera cooler temperature"))
    if s.set_temperature is not None:
        k.append(Keyword("SET-TEMP", float(s.set_temperature), "Camera cooler target temperature"))
    k += [Keyword("XBINNING", s.binning, "Camera X Bin"), Keyword("CCDXBIN", s.binning, "Camera X Bin"),
          Keyword("YBINNING", s.binning, "Camera Y Bin"), Keyword("CCDYBIN", s.binning, "Camera Y Bin"),
          Keyword("XPIXSZ", s.pixel_size * s.binning, "Pixel size in microns"),
          Keyword("YPIXSZ", s.pixel_size * s.binning, "Pixel size in microns"),
          Keyword("TELESCOP", s.telescope, "Telescope name")]
    if s.type == "light":
        k += [Keyword("RA", round(s.ra, 6), "Object Right Ascension in degrees"),
              Keyword("DEC", round(s.dec, 6), "Object Declination in degrees"),
              Keyword("OBJCTRA", _sexa(s.ra, hours=True), "Object Right Ascension in hms"),
              Keyword("OBJCTDEC", _sexa(s.dec, hours=False), "Object Declination in dms")]
        if s.pier_side:
            k.append(Keyword("PIERSIDE", s.pier_side.upper(), "Pier side"))
    if s.bayer:
        k.append(Keyword("BAYERPAT", s.bayer, "Bayer color pattern"))
    k += [Keyword("FOCALLEN", float(s.focal_length), "The focal length of the telescope in mm"),
          Keyword("GAIN", s.gain, "Camera gain"),
          Keyword("EGAIN", s.egain, "Electrons Per ADU"),
          Keyword("OFFSET", s.offset, "Camera offset")]
    return k


def _sgp_path(s: FrameSpec) -> str:
    n = s.index + 1
    exp = f"{s.exposure:g}sec"
    if s.master:
        return f"Library/Master_{s.type.title().replace('_', '')}_{exp}_{s.temperature:.0f}C.fit"
    if s.type == "light":
        target = s.object_name or "Target"
        filt = f"_{s.filter}" if s.filter else ""
        sub = f"{target}/PANEL_{s.panel}" if s.panel else target
        return f"{sub}/{target}_{exp}_{s.binning}x{s.binning}{filt}_frame{n}.fit"
    folder = {"dark": "Darks", "flat": "Flats", "bias": "Bias", "dark_flat": "DarkFlats"}[s.type]
    label = {"dark": "Dark", "flat": "Flat", "bias": "Bias", "dark_flat": "Dark"}[s.type]
    filt = f"_{s.filter}" if (s.type == "flat" and s.filter) else ""
    temp = f"_{s.temperature:.0f}C" if s.type in ("dark", "dark_flat", "bias") else ""
    return f"{s.night}/{folder}/{label}_{exp}_{s.binning}x{s.binning}{filt}{temp}_frame{n}.fit"


# --- MaxIm DL -----------------------------------------------------------------------------------
def _maxim_header(s: FrameSpec) -> list[Keyword]:
    k = [Keyword("DATE-OBS", _iso(s.date_obs, 0), "[ISO 8601] UTC date/time of exposure start"),
         Keyword("EXPTIME", float(s.exposure), "[sec] Duration of exposure"),
         Keyword("EXPOSURE", float(s.exposure), "[sec] Duration of exposure")]
    if s.set_temperature is not None:
        k.append(Keyword("SET-TEMP", float(s.set_temperature), "CCD temperature setpoint in C"))
    k += [Keyword("CCD-TEMP", float(s.temperature), "CCD temperature at start of exposure in C"),
          Keyword("XPIXSZ", s.pixel_size * s.binning, "Pixel Width in microns (after binning)"),
          Keyword("YPIXSZ", s.pixel_size * s.binning, "Pixel Height in microns (after binning)"),
          Keyword("XBINNING", s.binning, "Binning level along the X-axis"),
          Keyword("YBINNING", s.binning, "Binning level along the Y-axis"),
          Keyword("XORGSUBF", 0, "Subframe X position in binned pixels"),
          Keyword("YORGSUBF", 0, "Subframe Y position in binned pixels"),
          Keyword("READOUTM", "Monochrome" if not s.bayer else "Raw", "Readout mode of image")]
    if s.filter is not None and s.type != "bias":
        k.append(Keyword("FILTER", s.filter, "Filter name"))
    k.append(Keyword("IMAGETYP", _type_value("maxim", s), "Type of image"))
    k += [Keyword("SITELAT", _sexa(s.site_lat, hours=False).lstrip("+")[:8].rstrip(),
                  "Latitude of the imaging location"),
          Keyword("SITELONG", _sexa(s.site_long, hours=False).lstrip("+")[:8].rstrip(),
                  "Longitude of the imaging location"),
          Keyword("FOCALLEN", float(s.focal_length), "Focal length of telescope in mm"),
          Keyword("EGAIN", s.egain, "Electronic gain in e-/ADU"),
          Keyword("SWCREATE", "MaxIm DL Version 6.40 230516 23RJX", "Name of software")]
    if s.bayer:
        k += [Keyword("BAYERPAT", s.bayer, "Bayer color pattern"),
              Keyword("XBAYROFF", 0, "X offset of Bayer array"),
              Keyword("YBAYROFF", 0, "Y offset of Bayer array")]
    if s.object_name and _is_sky(s):
        k.append(Keyword("OBJECT", s.object_name, "Target object name"))
    k += [Keyword("TELESCOP", s.telescope, "Telescope name"),
          Keyword("INSTRUME", s.camera, "Detector instrument name"),
          Keyword("PEDESTAL", 0, "Correction to add for zero-based ADU")]
    if s.type == "light":
        k += [Keyword("OBJCTRA", _sexa(s.ra, hours=True)[:8], "Nominal Right Ascension of center"),
              Keyword("OBJCTDEC", _sexa(s.dec, hours=False)[:9], "Nominal Declination of center")]
        if s.pier_side:
            k.append(Keyword("PIERSIDE", s.pier_side.upper(), "Side of pier"))
    return k


def _maxim_path(s: FrameSpec) -> str:
    n = s.index + 1
    if s.master:
        return f"{s.night}/Master{_MASTER[s.type].split()[1]}-{s.exposure:g}s.fit"
    if s.type == "light":
        target = (s.object_name or "Target").replace(" ", "_")
        return f"{s.night}/{target}-{n:03d}{s.filter or ''}.fit"
    label = {"dark": "Dark", "flat": "Flat", "bias": "Bias", "dark_flat": "Dark"}[s.type]
    filt = s.filter if s.type == "flat" and s.filter else ""
    return f"{s.night}/Calibration/{label}{filt}-{s.exposure:g}s-{n:03d}.fit"


# --- KStars / Ekos (INDI) -----------------------------------------------------------------------
def _ekos_header(s: FrameSpec) -> list[Keyword]:
    k = [Keyword("ROWORDER", s.row_order, "ROWORDER"),
         Keyword("INSTRUME", s.camera, "CCD Name"),
         Keyword("TELESCOP", s.telescope, "Telescope name"),
         Keyword("OBSERVER", "Unknown", "Observer name")]
    if s.object_name and _is_sky(s):
        k.append(Keyword("OBJECT", s.object_name, "Object name"))
    k += [Keyword("EXPTIME", float(s.exposure), "Total Exposure Time (s)"),
          Keyword("CCD-TEMP", round(float(s.temperature), 2), "CCD Temperature (Celsius)"),
          Keyword("PIXSIZE1", s.pixel_size, "Pixel Size 1 (microns)"),
          Keyword("PIXSIZE2", s.pixel_size, "Pixel Size 2 (microns)"),
          Keyword("XBINNING", s.binning, "Binning factor in width"),
          Keyword("YBINNING", s.binning, "Binning factor in height"),
          Keyword("XPIXSZ", s.pixel_size * s.binning, "X binned pixel size in microns"),
          Keyword("YPIXSZ", s.pixel_size * s.binning, "Y binned pixel size in microns"),
          Keyword("FRAME", _EKOS_FRAME[s.type], "Frame Type"),
          Keyword("IMAGETYP", _type_value("ekos", s), "Frame Type")]
    if s.filter is not None and s.type != "bias":
        k.append(Keyword("FILTER", s.filter, "Filter"))
    k += [Keyword("FOCALLEN", float(s.focal_length), "Focal Length (mm)"),
          Keyword("SITELAT", s.site_lat, "Latitude of the imaging site in degrees"),
          Keyword("SITELONG", s.site_long, "Longitude of the imaging site in degrees")]
    if s.type == "light":
        k += [Keyword("OBJCTRA", _sexa(s.ra, hours=True), "Object J2000 RA in Hours"),
              Keyword("OBJCTDEC", _sexa(s.dec, hours=False), "Object J2000 DEC in Degrees"),
              Keyword("RA", round(s.ra, 5), "Object J2000 RA in Degrees"),
              Keyword("DEC", round(s.dec, 5), "Object J2000 DEC in Degrees")]
        if s.pier_side:
            k.append(Keyword("PIERSIDE", s.pier_side.upper(), "Pier side"))
    if s.bayer:
        k += [Keyword("XBAYROFF", 0, "X offset of Bayer array"),
              Keyword("YBAYROFF", 0, "Y offset of Bayer array"),
              Keyword("BAYERPAT", s.bayer, "Bayer color pattern")]
    k += [Keyword("EQUINOX", 2000, "Equinox"),
          Keyword("DATE-OBS", _iso(s.date_obs, 3), "UTC start date of observation"),
          Keyword("GAIN", float(s.gain), "Gain"),
          Keyword("OFFSET", float(s.offset), "Offset")]
    return k


def _ekos_path(s: FrameSpec) -> str:
    stamp = s.local_time.strftime("%Y-%m-%dT%H-%M-%S")
    frame = _EKOS_FRAME[s.type].replace(" ", "_")
    n = s.index + 1
    if s.master:
        return f"Masters/master_{frame}_{s.exposure:g}_secs_{s.temperature:.0f}C.fits"
    target = (s.object_name or "").replace(" ", "_")
    parts = [target] if (target and s.type in ("light", "flat")) else []
    parts.append(_EKOS_FRAME[s.type])
    if s.filter and s.type in ("light", "flat"):
        parts.append(s.filter)
    if s.panel:
        parts.append(f"PANEL_{s.panel}")
    prefix = f"{target}_" if parts and parts[0] == target and target else ""
    filt = f"{s.filter}_" if s.filter and s.type in ("light", "flat") else ""
    name = f"{prefix}{frame}_{filt}{s.exposure:g}_secs_{stamp}_{n:03d}.fits"
    return "/".join([*parts, name])


# --- ZWO ASIAIR ---------------------------------------------------------------------------------
def _asiair_header(s: FrameSpec) -> list[Keyword]:
    k = [Keyword("CREATOR", "ZWO ASIAIR", "Capture software"),
         Keyword("PRODUCER", "ZWO", "Powered by ZWO"),
         Keyword("XORGSUBF", 0, "Subframe X position in binned pixels"),
         Keyword("YORGSUBF", 0, "Subframe Y position in binned pixels"),
         Keyword("FOCALLEN", int(round(s.focal_length)), "Focal length of telescope in mm"),
         Keyword("XBINNING", s.binning, "Camera X Bin"),
         Keyword("YBINNING", s.binning, "Camera Y Bin"),
         Keyword("XPIXSZ", s.pixel_size * s.binning, "pixel size in microns (with binning)"),
         Keyword("YPIXSZ", s.pixel_size * s.binning, "pixel size in microns (with binning)"),
         Keyword("IMAGETYP", _type_value("asiair", s), "Type of image"),
         Keyword("EXPOSURE", float(s.exposure), "Exposure time in seconds"),
         Keyword("EXPTIME", float(s.exposure), "Exposure time in seconds"),
         Keyword("CCD-TEMP", float(s.temperature), "sensor temperature in C")]
    if s.set_temperature is not None:
        k.append(Keyword("SET-TEMP", float(s.set_temperature), "cooler set point in C"))
    if s.type == "light":
        k += [Keyword("RA", round(s.ra, 5), "Object Right Ascension in degrees"),
              Keyword("DEC", round(s.dec, 6), "Object Declination in degrees")]
    k += [Keyword("SITELONG", s.site_long, "longitude of the imaging site in degrees"),
          Keyword("SITELAT", s.site_lat, "latitude of the imaging site in degrees"),
          Keyword("DATE-OBS", _iso(s.date_obs, 6), "Image created time")]
    if s.filter is not None and s.type != "bias":
        k.append(Keyword("FILTER", s.filter, "Filter used when taking image"))
    k.append(Keyword("INSTRUME", s.camera, "Camera model"))
    if s.bayer:
        k.append(Keyword("BAYERPAT", s.bayer, "Bayer pattern"))
    k += [Keyword("GAIN", s.gain, "Gain Value"), Keyword("OFFSET", s.offset, "Offset Value"),
          Keyword("TELESCOP", s.telescope, "Telescope name")]
    if s.object_name and _is_sky(s):
        k.append(Keyword("OBJECT", s.object_name, "name or catalog number of object being imaged"))
    return k


def _asiair_path(s: FrameSpec) -> str:
    stamp = s.local_time.strftime("%Y%m%d-%H%M%S")
    label = {"light": "Light", "dark": "Dark", "flat": "Flat", "bias": "Bias",
             "dark_flat": "Dark"}[s.type]
    exp = f"{max(s.exposure, 0.0001) if s.type == 'bias' else s.exposure:.1f}s"
    if s.type == "bias":
        exp = "0.0001s"
    filt = f"_{s.filter}" if s.filter and s.type in ("light", "flat") else ""
    temp = f"{s.temperature:.1f}C"
    target = (s.object or "").replace(" ", "_")
    if s.master:
        return (f"Autorun/Master/Master_{label}_{exp}_Bin{s.binning}_gain{s.gain}_{temp}.fit")
    if s.type == "light":
        tgt = target + (f"_Panel{s.panel}" if s.panel else "")
        name = (f"Light_{tgt}_{exp}_Bin{s.binning}{filt}_gain{s.gain}_{stamp}_{temp}_"
                f"{s.index + 1:04d}.fit")
        folder = f"Autorun/Light/{tgt}" + (f"/PANEL_{s.panel}" if s.panel else "")
        return f"{folder}/{name}"
    name = f"{label}_{exp}_Bin{s.binning}{filt}_gain{s.gain}_{stamp}_{temp}_{s.index + 1:04d}.fit"
    return f"Autorun/{label}/{name}"


@dataclass(frozen=True)
class Dialect:
    """A capture program's conventions: its name, header and path builders."""

    name: str
    program: str
    header: Callable[[FrameSpec], list[Keyword]]
    path: Callable[[FrameSpec], str]


DIALECTS: dict[str, Dialect] = {
    "nina": Dialect("nina", "N.I.N.A.", _nina_header, _nina_path),
    "sgp": Dialect("sgp", "Sequence Generator Pro", _sgp_header, _sgp_path),
    "maxim": Dialect("maxim", "MaxIm DL", _maxim_header, _maxim_path),
    "ekos": Dialect("ekos", "KStars/Ekos", _ekos_header, _ekos_path),
    "asiair": Dialect("asiair", "ZWO ASIAIR", _asiair_header, _asiair_path),
}


def _dialect(name: str) -> Dialect:
    try:
        return DIALECTS[name]
    except KeyError:
        from skystack.errors import ConfigError

        msg = f"unknown dialect {name!r}; choose one of {', '.join(DIALECTS)}"
        raise ConfigError(msg) from None


def header_for(dialect: str, spec: FrameSpec) -> list[Keyword]:
    """FITS keyword cards ``dialect`` writes for a frame (structural cards excluded).

    A ``PANEL`` keyword is appended for mosaic panels (not written by the programs themselves:
    it stands for the grouping keyword users add).
    """
    cards = _dialect(dialect).header(spec)
    if spec.panel:
        cards.append(Keyword("PANEL", spec.panel, "Mosaic panel"))
    return cards


def path_for(dialect: str, spec: FrameSpec) -> str:
    """Path (relative, ``/``-separated) where ``dialect`` saves a frame by default."""
    return _dialect(dialect).path(spec)


def with_index(spec: FrameSpec, index: int) -> FrameSpec:
    """A copy of ``spec`` with another sequence number."""
    return replace(spec, index=index)
