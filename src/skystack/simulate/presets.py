"""Named simulation recipes: :class:`Preset` and :data:`PRESETS`.

Any field can be overridden: ``simulate(out, preset="night", frames=20, width=512)``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from skystack.errors import ConfigError

__all__ = ["Preset", "PRESETS", "get_preset"]


@dataclass(frozen=True)
class Preset:
    """Everything a simulation run varies.

    Attributes
    ----------
    name : str
        Preset name (recorded in the truth).
    width, height : int
        Frame size in pixels.
    frames : int
        Total number of lights, shared over nights × panels × filters by ``filters`` weights
        (every group gets at least one).
    filters : tuple of (name, exposure_s, weight)
        Light groups per night; name None for colour cameras.
    nights : int
        Number of nights (each has its own rotation, pointing, dust positions and flats).
    panels : int
        Mosaic panels side by side (1 = no mosaic); ``overlap`` is the shared fraction.
    bayer : str or None
        Colour camera pattern (``"RGGB"``, ``"GRBG"``…); None = mono with a filter wheel.
    dialect : str
        Capture program for every file (``messy`` mixes several regardless).
    bias, darks, flats, dark_flats : int
        Calibration counts: bias frames; darks per (exposure, temperature); flats per filter
        per night; dark-flats per flat exposure.
    dark_temps : tuple of float
        Set temperatures at which darks are taken (the lights use ``set_temp``).
    set_temp : float
        Cooler set point of the lights (°C).
    flat_exposures : tuple of (filter, seconds)
        Flat exposure per filter (default 2 s).
    dither_px : float
        Dither amplitude (pixels, uniform in ±dither_px).
    rotation_drift_deg : float
        Field rotation per frame within a night (degrees).
    night_rotation_deg : float
        Rotation between consecutive nights (degrees).
    meridian_flip : bool
        Flip (180°) half-way through each night.
    cloudy_fraction, trail_fraction : float
        Fraction of lights behind thin cloud / with a satellite or airplane trail.
    cosmic_ray_rate : float
        Hits per megapixel per second.
    fwhm : (float, float)
        Range of the nightly median seeing FWHM (pixels).
    field_curvature : float
        FWHM growth at the corners.
    star_density : float
        Stars per megapixel.
    galaxy, nebula : bool
        Extended objects.
    vignetting : float
        Light lost at the corners (0 disables).
    dust : bool
        Dust donuts on the filters.
    amp_glow, hot_pixels, bad_column : bool
        Sensor defects.
    messy : bool
        Plant the ``messy`` problems (mixed dialects, a master dark, missing flats, a 180 s
        light without darks, junk files).
    workers : int
        Processes rendering frames (1 = in this process).
    target : str
        OBJECT name.
    """

    name: str = "night"
    width: int = 1024
    height: int = 768
    frames: int = 60
    filters: tuple[tuple[str | None, float, float], ...] = (
        ("L", 120.0, 2.0), ("R", 120.0, 1.0), ("G", 120.0, 1.0), ("B", 120.0, 1.0),
        ("Ha", 300.0, 1.5),
    )
    nights: int = 2
    panels: int = 1
    overlap: float = 0.2
    bayer: str | None = None
    dialect: str = "nina"
    bias: int = 15
    darks: int = 10
    flats: int = 7
    dark_flats: int = 7
    dark_temps: tuple[float, ...] = (-10.0,)
    set_temp: float = -10.0
    flat_exposures: tuple[tuple[str, float], ...] = (
        ("L", 1.0), ("R", 2.0), ("G", 2.0), ("B", 2.0), ("Ha", 3.0), ("OIII", 3.0), ("SII", 3.0),
    )
    dither_px: float = 8.0
    rotation_drift_deg: float = 0.01
    night_rotation_deg: float = 37.0
    meridian_flip: bool = True
    cloudy_fraction: float = 0.1
    trail_fraction: float = 0.1
    cosmic_ray_rate: float = 0.2
    fwhm: tuple[float, float] = (2.4, 3.6)
    field_curvature: float = 0.0
    star_density: float = 2500.0
    galaxy: bool = True
    nebula: bool = True
    vignetting: float = 0.3
    dust: bool = True
    amp_glow: bool = True
    hot_pixels: bool = True
    bad_column: bool = False
    messy: bool = False
    workers: int = 1
    target: str = "M31"

    def flat_exposure(self, filt: str | None) -> float:
        """Flat exposure for a filter (2 s when not listed)."""
        return dict(self.flat_exposures).get(filt or "", 2.0)


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny", width=256, height=192, frames=6, filters=(("L", 60.0, 1.0), ("R", 60.0, 1.0)),
        nights=1, bias=3, darks=3, flats=3, dark_flats=3, meridian_flip=False, dither_px=5.0,
        cloudy_fraction=0.0, trail_fraction=0.0, star_density=4000.0,
    ),
    "night": Preset(name="night"),
    "osc": Preset(
        name="osc", frames=24, filters=((None, 120.0, 1.0),), nights=1, bayer="RGGB",
        bias=10, darks=10, flats=10, dark_flats=10, flat_exposures=(("", 1.0),),
        target="NGC 7000",
    ),
    "mosaic": Preset(
        name="mosaic", frames=24, filters=(("L", 120.0, 1.0),), nights=1, panels=2,
        bias=10, darks=10, flats=7, dark_flats=7, meridian_flip=False,
    ),
    "messy": Preset(
        name="messy", width=512, height=384, frames=16,
        filters=(("L", 120.0, 1.0), ("R", 120.0, 1.0), ("OIII", 300.0, 1.0)),
        nights=2, bias=5, darks=5, flats=5, dark_flats=5, messy=True, dialect="nina",
    ),
    "large": Preset(
        name="large", width=4096, height=3072, frames=40, filters=(("L", 120.0, 1.0),),
        nights=1, bias=5, darks=5, flats=5, dark_flats=5, workers=2, star_density=1500.0,
    ),
}


def get_preset(name: str, **overrides: Any) -> Preset:
    """A preset with some fields replaced.

    Raises
    ------
    ConfigError
        Unknown preset or field name.
    """
    if name not in PRESETS:
        msg = f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}"
        raise ConfigError(msg)
    names = {f.name for f in fields(Preset)}
    bad = sorted(set(overrides) - names)
    if bad:
        msg = f"unknown simulation option(s) {', '.join(bad)}; known: {', '.join(sorted(names))}"
        raise ConfigError(msg)
    clean = {k: v for k, v in overrides.items() if v is not None}
    return replace(PRESETS[name], **clean)
