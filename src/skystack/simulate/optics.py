"""Optics: Moffat point-spread functions, star rendering, vignetting and dust donuts.

PSF convention: an elliptical Moffat profile I(r) ∝ (1 + r²)^(−β) with r the radius scaled by
α along the major axis and by α·(1 − ellipticity) along the minor axis. ``fwhm`` is the *mean*
FWHM √(FWHM_major · FWHM_minor); eccentricity = √(1 − (1 − ellipticity)²); ``angle`` is the major
axis direction in degrees, counter-clockwise from +x in (x, y) pixel coordinates.

Stars are integrated over each pixel (3×3 sub-samples in the core), so a point-sampled Moffat
fit to a rendered star reads the FWHM ~3 % high at FWHM 3 px and ~1 % at 5 px; the truth is the
PSF itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "moffat_alpha",
    "moffat_psf",
    "render_stars",
    "eccentricity",
    "vignetting",
    "DustMote",
    "dust_attenuation",
]

#: Stamp half-sizes; stars are grouped by these so each group is one vectorized evaluation.
_RADII = (3, 5, 8, 12, 18, 27, 40, 60, 90, 135, 200)
#: Elements per vectorized chunk (bounds memory to a few tens of MB).
_CHUNK = 3_000_000


def moffat_alpha(fwhm: float | NDArray[np.floating], beta: float) -> NDArray[np.float64]:
    """Moffat core width α for a given FWHM: FWHM = 2α√(2^(1/β) − 1)."""
    return np.asarray(fwhm, np.float64) / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def eccentricity(ellipticity: float) -> float:
    """Eccentricity √(1 − (b/a)²) of a PSF with ellipticity 1 − b/a."""
    q = 1.0 - ellipticity
    return float(np.sqrt(max(0.0, 1.0 - q * q)))


def _axes(fwhm: NDArray[np.float64], beta: float, ellipticity: float) -> tuple[NDArray, NDArray]:
    q = 1.0 - ellipticity
    a_major = moffat_alpha(fwhm, beta) / np.sqrt(q)
    return a_major, a_major * q


def moffat_psf(
    fwhm: float,
    beta: float = 3.5,
    *,
    ellipticity: float = 0.0,
    angle: float = 0.0,
    radius: int | None = None,
    oversample: int = 3,
) -> NDArray[np.float32]:
    """A centred, pixel-integrated Moffat PSF stamp that sums to 1.

    Parameters
    ----------
    fwhm : float
        Mean FWHM in pixels (see module docstring).
    beta : float
        Moffat β (2.5–4.5 is typical of real stars; large β tends to a Gaussian).
    ellipticity : float
        1 − minor/major axis ratio.
    angle : float
        Major-axis direction, degrees counter-clockwise from +x.
    radius : int, optional
        Stamp half-size; default ⌈3·FWHM_major⌉.
    oversample : int
        Sub-samples per pixel axis used to integrate over the pixel.

    Returns
    -------
    ndarray of float32
        Shape (2·radius + 1, 2·radius + 1), the star centred on the middle pixel.
    """
    if radius is None:
        radius = int(np.ceil(3.0 * float(fwhm) / np.sqrt(1.0 - ellipticity)))
    size = 2 * radius + 1
    stamp = render_stars((size, size), [[radius, radius]], [1.0], fwhm=fwhm, beta=beta,
                         ellipticity=ellipticity, angle=angle, oversample=oversample,
                         floor=0.0, max_radius=radius)
    return (stamp / stamp.sum()).astype(np.float32)


def _stamp_radius(peak: NDArray[np.float64], a_major: NDArray[np.float64], beta: float,
                  floor: float, fwhm_major: NDArray[np.float64], max_radius: int) -> NDArray:
    """Radius beyond which the profile is below ``floor`` (at least 2 FWHM, at most max)."""
    with np.errstate(divide="ignore", over="ignore"):
        ratio = np.where(floor > 0, peak / max(floor, 1e-300), np.inf)
        r = a_major * np.sqrt(np.maximum(ratio ** (1.0 / beta) - 1.0, 0.0))
    r = np.maximum(r, 2.0 * fwhm_major)
    return np.minimum(np.ceil(r), max_radius).astype(np.int64)


def render_stars(
    shape: tuple[int, int],
    xy: ArrayLike,
    flux: ArrayLike,
    *,
    fwhm: float | ArrayLike = 3.0,
    beta: float = 3.5,
    ellipticity: float = 0.0,
    angle: float = 0.0,
    oversample: int = 3,
    floor: float = 0.01,
    max_radius: int = 200,
    cfa_index: NDArray[np.int8] | None = None,
    out: NDArray[np.float32] | None = None,
) -> NDArray[np.float32]:
    """Render Moffat stars onto an image, integrating each pixel by sub-sampling.

    Parameters
    ----------
    shape : (int, int)
        (H, W) of the image.
    xy : array_like, shape (N, 2)
        Star centres (x = column, y = row; (0, 0) is the centre of the first pixel).
    flux : array_like, shape (N,) or (N, C)
        Total flux of each star (any unit: the image is in that unit per pixel). With
        ``cfa_index``, one column per colour channel.
    fwhm : float or array_like of shape (N,)
        Mean FWHM in pixels, per star if an array (e.g. field curvature).
    beta, ellipticity, angle : float
        Moffat β, 1 − b/a, and major-axis angle (degrees, counter-clockwise from +x).
    oversample : int
        Sub-samples per pixel axis (1 = point-sampled at pixel centres).
    floor : float
        Profile level (image units per pixel) where wings are cut; each star's stamp extends
        to where it falls below ``floor`` (at least 2·FWHM). 0 uses ``max_radius``.
    max_radius : int
        Largest stamp half-size.
    cfa_index : ndarray of int8, optional
        Channel of every pixel (Bayer); ``flux[:, channel]`` is used at that pixel.
    out : ndarray of float32, optional
        Image to add to (in place); a new zero image when None.

    Returns
    -------
    ndarray of float32
        ``out`` with the stars added.
    """
    h, w = shape
    img = np.zeros(shape, np.float32) if out is None else out
    pts = np.atleast_2d(np.asarray(xy, np.float64))
    fl = np.asarray(flux, np.float64)
    if pts.size == 0:
        return img
    n = len(pts)
    fl = fl.reshape(n, -1)
    fw = np.broadcast_to(np.asarray(fwhm, np.float64), (n,))
    a_major, a_minor = _axes(fw, beta, ellipticity)
    norm = (beta - 1.0) / (np.pi * a_major * a_minor)
    peak = norm * fl.max(axis=1)
    fwhm_major = fw / np.sqrt(1.0 - ellipticity)
    radius = _stamp_radius(peak, a_major, beta, floor, fwhm_major, max_radius)

    x, y = pts[:, 0], pts[:, 1]
    inside = (x + radius >= 0) & (x - radius <= w - 1) & (y + radius >= 0) & (y - radius <= h - 1)
    inside &= fl.max(axis=1) > 0
    bucket = np.searchsorted(np.asarray(_RADII), radius)
    th = np.deg2rad(angle)
    c, s = np.cos(th), np.sin(th)
    sub = (np.arange(oversample) + 0.5) / oversample - 0.5
    total = np.zeros(h * w, np.float64)
    for b in np.unique(bucket[inside]):
        r = _RADII[b] if b < len(_RADII) else int(radius[inside & (bucket == b)].max())
        idx = np.flatnonzero(inside & (bucket == b))
        # Row order keeps each chunk's pixels in a band, so its bincount stays small.
        idx = idx[np.argsort(y[idx], kind="stable")]
        core = int(np.ceil(fwhm_major[idx].max()))
        side, cside = 2 * r + 1, 2 * min(core, r) + 1
        per_star = side * side + (cside * oversample) ** 2
        step = max(1, _CHUNK // per_star)
        for k in range(0, len(idx), step):
            j = idx[k:k + step]
            _add_stamps(total, (h, w), x[j], y[j], fl[j], norm[j], a_major[j], a_minor[j],
                        beta, c, s, r, sub, cfa_index, core)
    img += total.reshape(h, w).astype(np.float32)
    return img


def _profile(ux: NDArray, uy: NDArray, c: float, s: float, am: NDArray, an: NDArray,
             beta: float) -> NDArray[np.float32]:
    """Moffat profile (1 + p² + q²)^(−β) at offsets (ux, uy) in float32."""
    p = (c * ux + s * uy) / am
    q = (-s * ux + c * uy) / an
    r2 = p * p + q * q
    # exp(−β·log1p) is several times faster than a float power.
    return np.exp(np.float32(-beta) * np.log1p(r2))


def _add_stamps(total: NDArray[np.float64], shape: tuple[int, int], x: NDArray, y: NDArray,
                flux: NDArray, norm: NDArray, a_major: NDArray, a_minor: NDArray, beta: float,
                c: float, s: float, r: int, sub: NDArray, cfa_index: NDArray | None,
                core: int) -> None:
    """Evaluate one group of equal-size stamps and accumulate them into ``total`` (flat).

    The stamp is point-sampled; only its core (half-size ``core``) is integrated over each
    pixel with ``len(sub)``² sub-samples, because the wings are too smooth to need it.
    """
    h, w = shape
    n = len(x)
    f32 = np.float32
    off = np.arange(-r, r + 1)
    ix = np.rint(x).astype(np.int64)[:, None] + off            # (n, S) pixel columns
    iy = np.rint(y).astype(np.int64)[:, None] + off            # (n, S) pixel rows
    dx = (ix - x[:, None]).astype(f32)
    dy = (iy - y[:, None]).astype(f32)
    am = a_major.astype(f32)[:, None, None]
    an = a_minor.astype(f32)[:, None, None]
    val = _profile(dx[:, None, :], dy[:, :, None], c, s, am, an, beta)   # (n, Sy, Sx)
    o = len(sub)
    if o > 1 and core > 0:
        k = min(core, r)
        lo, hi = r - k, r + k + 1
        sb = sub.astype(f32)
        ux = (dx[:, lo:hi, None] + sb)[:, None, None, :, :]             # (n,1,1,Sx,o)
        uy = (dy[:, lo:hi, None] + sb)[:, :, :, None, None]             # (n,Sy,o,1,1)
        fine = _profile(ux, uy, c, s, am[..., None, None], an[..., None, None], beta)
        val[:, lo:hi, lo:hi] = fine.mean(axis=(2, 4))
    val *= norm.astype(f32)[:, None, None]
    yy = np.broadcast_to(iy[:, :, None], val.shape)
    xx = np.broadcast_to(ix[:, None, :], val.shape)
    ok = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
    if cfa_index is None:
        val *= flux[:, 0].astype(f32)[:, None, None]
    else:
        ch = np.zeros(val.shape, np.intp)
        ch[ok] = cfa_index[yy[ok], xx[ok]]
        val *= flux.astype(f32)[np.arange(n)[:, None, None], ch]
    flat = yy[ok] * w + xx[ok]
    if flat.size == 0:
        return
    lo = int(flat.min())
    acc = np.bincount(flat - lo, weights=val[ok])
    total[lo: lo + len(acc)] += acc


def vignetting(
    shape: tuple[int, int],
    *,
    corner_loss: float = 0.3,
    center: tuple[float, float] | None = None,
) -> NDArray[np.float32]:
    """Smooth radial fall-off (1 at the optical centre), shaped like cos⁴ of the field angle.

    Parameters
    ----------
    shape : (int, int)
        (H, W).
    corner_loss : float
        Fraction of light lost at the farthest corner from a centred axis (0.3 → 70 % there).
    center : (float, float), optional
        Optical centre (x, y); the frame centre when None.
    """
    h, w = shape
    cx, cy = ((w - 1) / 2, (h - 1) / 2) if center is None else center
    rc = np.hypot((w - 1) / 2, (h - 1) / 2)
    # (1 + (r/f)²)^-2 is cos⁴θ for a focal length f (in pixels); pick f for the corner loss.
    f = rc / np.sqrt((1.0 - corner_loss) ** -0.5 - 1.0) if corner_loss > 0 else np.inf
    yy, xx = np.ogrid[:h, :w]
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / f**2
    return (1.0 / (1.0 + r2) ** 2).astype(np.float32)


@dataclass(frozen=True)
class DustMote:
    """An out-of-focus dust shadow: a ring (the aperture with its central obstruction).

    Attributes
    ----------
    x, y : float
        Centre (pixels, frame coordinates).
    radius : float
        Outer radius (pixels).
    depth : float
        Fraction of light blocked inside the ring (0.02–0.15 is typical).
    hole : float
        Inner radius as a fraction of ``radius`` (central obstruction shadow).
    """

    x: float
    y: float
    radius: float
    depth: float
    hole: float = 0.4


def dust_attenuation(shape: tuple[int, int], motes: list[DustMote] | tuple[DustMote, ...],
                     *, edge: float = 1.5) -> NDArray[np.float32]:
    """Multiplicative transmission (≤ 1) of a set of dust donuts with soft edges of ``edge`` px."""
    h, w = shape
    out = np.ones(shape, np.float32)
    for m in motes:
        x0, x1 = max(0, int(m.x - m.radius - 4 * edge)), min(w, int(m.x + m.radius + 4 * edge) + 1)
        y0, y1 = max(0, int(m.y - m.radius - 4 * edge)), min(h, int(m.y + m.radius + 4 * edge) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        r = np.hypot(xx - m.x, yy - m.y)
        outer = 1.0 / (1.0 + np.exp((r - m.radius) / edge))
        inner = 1.0 / (1.0 + np.exp((r - m.hole * m.radius) / edge))
        # The hole lets through about half the blocked light (diffraction fills it partly).
        ring = outer - 0.5 * inner
        out[y0:y1, x0:x1] *= (1.0 - m.depth * ring).astype(np.float32)
    return out
