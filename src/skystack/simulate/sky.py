"""The sky: a star field with a power-law luminosity function, extended objects, backgrounds.

Everything here lives in the *reference frame* (see ``skystack.simulate`` docstring) and is in
e⁻/s as collected by the telescope + camera through a given band, before vignetting, dust,
pixel response, transparency and exposure time are applied.

Bands: the mono filters ``L R G B Ha OIII SII`` and the colour channels ``R G B`` that a Bayer
sensor sees (the same names: a Bayer "R" site behaves like an R filter here).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BANDS",
    "BandProfile",
    "StarField",
    "make_star_field",
    "Galaxy",
    "Nebula",
    "make_galaxy",
    "make_nebula",
    "render_extended",
    "sky_plane",
]


@dataclass(frozen=True)
class BandProfile:
    """How bright things are through one band, relative to L (stars) or absolutely (sky).

    Attributes
    ----------
    sky_e_s : float
        Mean sky background (e⁻/s/pixel).
    star_scale : float
        Star flux relative to L for a star of neutral colour.
    colour_slope : float
        How star flux changes with the star's colour index c ~ N(0, 1): × (1 + slope·c).
    galaxy, nebula : float
        Surface-brightness scale of the extended objects in this band (e⁻/s/pixel at peak).
    """

    sky_e_s: float
    star_scale: float
    colour_slope: float
    galaxy: float
    nebula: float


#: Band name → profile. Narrowband filters pass ~1/30 of the starlight and little sky.
BANDS: dict[str, BandProfile] = {
    "L": BandProfile(2.0, 1.00, 0.0, 1.2, 0.5),
    "R": BandProfile(0.7, 0.34, 0.15, 0.5, 0.35),
    "G": BandProfile(0.7, 0.33, 0.0, 0.4, 0.12),
    "B": BandProfile(0.6, 0.30, -0.15, 0.3, 0.1),
    "Ha": BandProfile(0.08, 0.035, 0.1, 0.03, 0.6),
    "OIII": BandProfile(0.08, 0.030, -0.1, 0.01, 0.3),
    "SII": BandProfile(0.06, 0.030, 0.1, 0.01, 0.18),
}


@dataclass(frozen=True, eq=False)
class StarField:
    """Stars in the reference frame.

    Attributes
    ----------
    x, y : ndarray of float64
        Positions (reference pixels); the field extends beyond the reference canvas by a margin
        so dithered and rotated frames have stars up to their edges.
    colour : ndarray of float64
        Colour index c ~ N(0, 1) (positive = red).
    flux_l : ndarray of float64
        Flux through L (e⁻/s, the whole star).
    """

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    colour: NDArray[np.float64]
    flux_l: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.x)

    @property
    def xy(self) -> NDArray[np.float64]:
        """(N, 2) positions."""
        return np.column_stack([self.x, self.y])

    def flux(self, band: str) -> NDArray[np.float64]:
        """Flux of every star through ``band`` (e⁻/s)."""
        p = BANDS[band]
        return self.flux_l * p.star_scale * np.clip(1.0 + p.colour_slope * self.colour, 0.05, None)


def make_star_field(
    width: int,
    height: int,
    rng: np.random.Generator,
    *,
    density_per_mpx: float = 2500.0,
    margin: float = 0.25,
    flux_min: float = 4.0,
    flux_max: float = 4.0e4,
    slope: float = 0.8,
    n_bright: int = 4,
    bright_flux: float = 2.5e4,
) -> StarField:
    """Draw a star field over a canvas (plus a margin on every side).

    Parameters
    ----------
    width, height : int
        Reference canvas size.
    rng : numpy.random.Generator
        Source of positions and fluxes.
    density_per_mpx : float
        Stars per million pixels of the canvas (margin area included at the same density).
    margin : float
        Extra border as a fraction of the canvas size on every side.
    flux_min, flux_max : float
        Flux range through L (e⁻/s).
    slope : float
        Luminosity function N(>F) ∝ F^(−slope) (0.6–1.0 is typical of star counts by
        magnitude: each magnitude fainter holds 10^(0.24…0.4) times more stars).
    n_bright : int
        Extra bright stars placed on the canvas (they saturate in long exposures).
    bright_flux : float
        Their flux through L (e⁻/s), each × U(1, 3).
    """
    x0, x1 = -margin * width, (1 + margin) * width
    y0, y1 = -margin * height, (1 + margin) * height
    n = int(rng.poisson(density_per_mpx * (x1 - x0) * (y1 - y0) / 1e6))
    x = rng.uniform(x0, x1, n)
    y = rng.uniform(y0, y1, n)
    # Inverse transform of a truncated power law.
    u = rng.uniform(0.0, 1.0, n)
    lo, hi = flux_min ** -slope, flux_max ** -slope
    flux = (lo - u * (lo - hi)) ** (-1.0 / slope)
    bx = rng.uniform(0.1 * width, 0.9 * width, n_bright)
    by = rng.uniform(0.1 * height, 0.9 * height, n_bright)
    bf = bright_flux * rng.uniform(1.0, 3.0, n_bright)
    x, y, flux = np.concatenate([x, bx]), np.concatenate([y, by]), np.concatenate([flux, bf])
    colour = rng.normal(0.0, 1.0, len(x))
    order = np.argsort(-flux, kind="stable")
    return StarField(x=x[order], y=y[order], colour=colour[order], flux_l=flux[order])


@dataclass(frozen=True)
class Galaxy:
    """A Sérsic galaxy: I(r) = I_e·exp(−b_n((r/r_e)^(1/n) − 1)) on elliptical radii.

    ``x, y`` centre, ``r_e`` effective radius (px), ``n`` Sérsic index, ``q`` axis ratio,
    ``angle`` (degrees, counter-clockwise from +x), ``brightness`` = I_e in units of
    :attr:`BandProfile.galaxy` (so the same galaxy is bright in L and faint in Ha).
    """

    x: float
    y: float
    r_e: float
    n: float = 2.0
    q: float = 0.5
    angle: float = 30.0
    brightness: float = 1.0


@dataclass(frozen=True)
class Nebula:
    """A blobby emission nebula: a sum of Gaussian blobs (x, y, sigma, amplitude) rows,
    amplitude in units of :attr:`BandProfile.nebula`."""

    blobs: tuple[tuple[float, float, float, float], ...] = field(default_factory=tuple)


def make_galaxy(width: int, height: int, rng: np.random.Generator) -> Galaxy:
    """A galaxy near the canvas centre, about 1/12 of the canvas in effective radius."""
    return Galaxy(x=width * rng.uniform(0.4, 0.6), y=height * rng.uniform(0.4, 0.6),
                  r_e=min(width, height) * rng.uniform(0.06, 0.1), n=rng.uniform(1.5, 3.0),
                  q=rng.uniform(0.35, 0.7), angle=rng.uniform(0, 180))


def make_nebula(width: int, height: int, rng: np.random.Generator, *, blobs: int = 24) -> Nebula:
    """A nebula of ``blobs`` Gaussian clumps clustered in one part of the canvas."""
    cx, cy = width * rng.uniform(0.25, 0.75), height * rng.uniform(0.25, 0.75)
    size = min(width, height)
    rows = []
    for _ in range(blobs):
        rows.append((float(cx + rng.normal(0, 0.15 * size)), float(cy + rng.normal(0, 0.12 * size)),
                     float(size * rng.uniform(0.015, 0.08)), float(rng.uniform(0.2, 1.0))))
    return Nebula(blobs=tuple(rows))


def _render_galaxy(img: NDArray[np.float32], g: Galaxy, scale: float) -> None:
    h, w = img.shape
    reach = g.r_e * 8.0
    x0, x1 = max(0, int(g.x - reach)), min(w, int(g.x + reach) + 1)
    y0, y1 = max(0, int(g.y - reach)), min(h, int(g.y + reach) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.ogrid[y0:y1, x0:x1]
    th = np.deg2rad(g.angle)
    u = (xx - g.x) * np.cos(th) + (yy - g.y) * np.sin(th)
    v = -(xx - g.x) * np.sin(th) + (yy - g.y) * np.cos(th)
    r = np.sqrt(u * u + (v / g.q) ** 2)
    b_n = 2.0 * g.n - 1.0 / 3.0  # Ciotti & Bertin's approximation, good for n ≥ 0.5
    prof = np.exp(-b_n * ((r / g.r_e) ** (1.0 / g.n) - 1.0))
    img[y0:y1, x0:x1] += (scale * g.brightness * prof).astype(np.float32)


def _render_nebula(img: NDArray[np.float32], neb: Nebula, scale: float) -> None:
    h, w = img.shape
    for bx, by, sig, amp in neb.blobs:
        reach = 4.0 * sig
        x0, x1 = max(0, int(bx - reach)), min(w, int(bx + reach) + 1)
        y0, y1 = max(0, int(by - reach)), min(h, int(by + reach) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        blob = np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * sig * sig))
        img[y0:y1, x0:x1] += (scale * amp * blob).astype(np.float32)


def render_extended(
    shape: tuple[int, int],
    objects: list[Galaxy | Nebula] | tuple[Galaxy | Nebula, ...],
    band: str,
    *,
    psf_sigma: float = 0.0,
) -> NDArray[np.float32]:
    """Surface brightness (e⁻/s/pixel) of the extended objects through ``band``.

    ``psf_sigma`` (pixels) blurs the result with a Gaussian (seeing on the smooth objects).
    """
    img = np.zeros(shape, np.float32)
    prof = BANDS[band]
    for obj in objects:
        if isinstance(obj, Galaxy):
            _render_galaxy(img, obj, prof.galaxy)
        else:
            _render_nebula(img, obj, prof.nebula)
    if psf_sigma > 0:
        from scipy.ndimage import gaussian_filter

        img = gaussian_filter(img, psf_sigma, mode="constant").astype(np.float32)
    return img


def sky_plane(shape: tuple[int, int], coeffs: tuple[float, float, float]) -> NDArray[np.float32]:
    """Sky background a + b·(x − x_c) + c·(y − y_c) (e⁻/s/pixel) on a frame, centre (x_c, y_c).

    Choose b and c so the plane stays positive over the frame (no clipping is done, so the
    truth stays exactly this plane).
    """
    h, w = shape
    a, b, c = coeffs
    xs = (np.arange(w, dtype=np.float32) - np.float32((w - 1) / 2)) * np.float32(b)
    ys = (np.arange(h, dtype=np.float32) - np.float32((h - 1) / 2)) * np.float32(c)
    out = ys[:, None] + xs[None, :]
    out += np.float32(a)
    return out
