"""Subframe measurements, frame weights and frame selection (WBPP's SubframeSelector step).

:func:`measure_frame` turns one image into a :class:`FrameMeasurement`: star count, median FWHM
and eccentricity, sky level, noise (multiscale wavelet estimate, as PixInsight's
NoiseEvaluation), the SNR estimate, PSF Signal Weight and PSF SNR (PixInsight's definitions),
a trail test, and the star catalogue kept for registration.

:func:`compute_weights` turns a group of measurements into relative weights (the best frame = 1)
by one of ``psf_signal`` (default), ``psf_snr``, ``noise`` (inverse variance), ``snr`` or
``wbpp`` (WBPP's formula with its default coefficients). :func:`select_frames` accepts or rejects
each frame — minimum relative weight, a user expression such as ``fwhm < 4.5 and ecc < 0.6``,
and automatic flags for clouds, trails, tracking errors and too few stars — always with the
reason in plain words.
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from skystack import _star_kernels as K
from skystack.errors import ConfigError
from skystack.stars import DetectionConfig, StarCatalog, detect_and_measure, luminance

__all__ = [
    "MeasureConfig",
    "FrameMeasurement",
    "WBPPCoefficients",
    "FlagConfig",
    "Selection",
    "WeightMethod",
    "WEIGHT_METHODS",
    "measure_frame",
    "mrs_noise",
    "compute_weights",
    "select_frames",
    "evaluate_expression",
    "EXPRESSION_NAMES",
    "GROUP_STATISTICS",
]

WeightMethod = Literal["psf_signal", "psf_snr", "noise", "snr", "wbpp"]
WEIGHT_METHODS: tuple[str, ...] = ("psf_signal", "psf_snr", "noise", "snr", "wbpp")

# Standard deviation of the first five B3-spline à trous layers for unit white Gaussian noise.
_SIGMA_J = (0.8907, 0.2007, 0.0856, 0.0413, 0.0205)
# std of a unit normal truncated to ±3 sigma: the MRS sample keeps |w1| < 3σ·σ1 only
_TRUNC3 = 0.98658


@dataclass(frozen=True)
class MeasureConfig:
    """Options of :func:`measure_frame`.

    Attributes
    ----------
    detection : DetectionConfig
        Star detection and PSF fitting options.
    noise_layers : int
        Wavelet layers of the multiresolution support (PixInsight uses 4).
    noise_k : float
        Significance threshold of the support, in sigmas.
    noise_pixels : int
        Noise and M*/N* are evaluated on at most this many pixels (tiles spread over the frame).
    trail_min_length : float
        A trail must be at least this fraction of the frame's smaller side...
    trail_min_pixels : float
        ...and at least this many pixels long (short chains of merged star halos are not trails).
    """

    detection: DetectionConfig = field(default_factory=DetectionConfig)
    noise_layers: int = 4
    noise_k: float = 3.0
    noise_pixels: int = 1 << 20
    trail_min_length: float = 0.4
    trail_min_pixels: float = 150.0


@dataclass
class FrameMeasurement:
    """What :func:`measure_frame` found in one frame.

    Attributes
    ----------
    path : str or None
        The file, when known.
    width, height : int
        Frame size.
    stars : int
        Number of stars measured.
    fwhm : float
        Median FWHM in pixels of the fitted stars with SNR ≥ 30 (all fitted stars when fewer
        than 5 reach it; NaN without stars).
    fwhm_arcsec : float or None
        The same in arcseconds when the pixel scale is known.
    eccentricity : float
        Eccentricity of the frame's mean PSF shape (the stars' shape tensors are averaged before
        the square root, so noise does not make round stars look elongated).
    eccentricity_median : float
        Median of the per-star eccentricities (biased up for round stars; for reference).
    theta : float
        Position angle of the mean elongation, degrees.
    beta : float
        Median Moffat β of the fitted stars (inf = Gaussian).
    background : float
        Median sky level.
    median, mad : float
        Median and MAD of the pixels.
    noise : float
        Noise sigma by the multiresolution-support wavelet estimate (MRS).
    snr : float
        SNR estimate: (mean absolute deviation / noise)², PixInsight's "SNR" column.
    psf_flux, psf_mean_flux : float
        Total PSF flux and total mean PSF flux (flux / PSF area) of the unsaturated stars.
    m_star, n_star : float
        M* and N*: median and MAD-scaled sigma of the residual below the background model.
    psf_signal_weight, psf_snr : float
        PixInsight's PSF Signal Weight and PSF SNR.
    trail : bool
        A long straight bright streak was found (satellite, aircraft).
    trail_length, trail_angle : float
        Its length in pixels and angle in degrees (0 = along x), when found.
    pixel_scale : float or None
        Arcseconds per pixel used for ``fwhm_arcsec``.
    catalog : StarCatalog
        The stars (kept for registration; not part of :meth:`to_dict`).
    bright_fluxes : list of float
        Fluxes of the brightest unsaturated stars (up to 50), brightest first: the cloud test
        compares them between frames, and they survive a round trip through JSON.
    """

    path: str | None
    width: int
    height: int
    stars: int
    fwhm: float
    fwhm_arcsec: float | None
    eccentricity: float
    eccentricity_median: float
    theta: float
    beta: float
    background: float
    median: float
    mad: float
    noise: float
    snr: float
    psf_flux: float
    psf_mean_flux: float
    m_star: float
    n_star: float
    psf_signal_weight: float
    psf_snr: float
    trail: bool
    trail_length: float
    trail_angle: float
    pixel_scale: float | None
    catalog: StarCatalog = field(repr=False)
    bright_fluxes: list[float] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Every measurement as JSON-ready values (the catalogue is left out)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            if name == "catalog":
                continue
            v = getattr(self, name)
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            out[name] = v
        return out


# ---------------------------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------------------------


def _sample_tiles(img: NDArray[np.float32], max_pixels: int, tile: int = 256) -> list[NDArray]:
    """Up to ``max_pixels`` pixels as square tiles spread evenly over the frame."""
    h, w = img.shape
    if h * w <= max_pixels:
        return [img]
    t = min(tile, h, w)
    n = max(1, max_pixels // (t * t))
    ny = max(1, int(round(math.sqrt(n * h / w))))
    nx = max(1, n // ny)
    ys = np.linspace(0, h - t, ny).astype(int)
    xs = np.linspace(0, w - t, nx).astype(int)
    return [img[y : y + t, x : x + t] for y in ys for x in xs]


def mrs_noise(
    image: NDArray, *, layers: int = 4, k: float = 3.0, max_pixels: int = 1 << 20,
    max_iter: int = 10,
) -> float:
    """Noise sigma by the multiresolution support (MRS) of an à trous wavelet transform.

    The B3-spline starlet transform separates the image into layers w1…wJ. A pixel is part of
    the *support* (real structure: stars, nebulae) when any layer's coefficient exceeds
    ``k``·σ·σj, with σj that layer's response to unit white noise. The noise is the standard
    deviation of the first layer outside the support divided by σ1, iterated to convergence —
    the method of Starck & Murtagh that PixInsight's NoiseEvaluation uses.

    Parameters
    ----------
    image : ndarray
        (H, W) or (C, H, W) image.
    layers : int
        Number of wavelet layers for the support (1–5).
    k : float
        Support threshold in sigmas.
    max_pixels : int
        Evaluate at most this many pixels (tiles spread over the frame).
    max_iter : int
        Iterations of the support/sigma loop.

    Returns
    -------
    float
        Noise standard deviation in image units.
    """
    img = luminance(image)
    layers = int(min(max(layers, 1), len(_SIGMA_J)))
    w1_all: list[NDArray] = []
    absw: list[list[NDArray]] = []
    for tile in _sample_tiles(img, max_pixels):
        c = tile
        ws = []
        for j in range(layers):
            s = K.atrous_smooth(c, 1 << j)
            ws.append(np.abs(c - s).ravel())
            if j == 0:
                w1_all.append((c - s).ravel())
            c = s
        absw.append(ws)
    w1 = np.concatenate(w1_all)
    aw = [np.concatenate([t[j] for t in absw]) for j in range(layers)]
    sigma = 1.4826 * float(np.median(np.abs(w1 - np.median(w1)))) / _SIGMA_J[0]
    if sigma <= 0:
        return float(np.std(w1) / _SIGMA_J[0])
    for _ in range(max_iter):
        support = np.zeros(w1.shape, bool)
        for j in range(layers):
            support |= aw[j] > k * sigma * _SIGMA_J[j]
        free = w1[~support]
        if free.size < 16:
            break
        new = float(np.std(free)) / (_SIGMA_J[0] * _TRUNC3)
        done = abs(new - sigma) <= 1e-3 * sigma
        sigma = new
        if done:
            break
    return sigma


# ---------------------------------------------------------------------------------------------
# Trails
# ---------------------------------------------------------------------------------------------


def _elongated_pixels(mask: NDArray[np.bool_], min_len: float) -> tuple[NDArray, NDArray]:
    """Pixels of the connected blobs of ``mask`` that are elongated or long.

    Stars are round blobs, however bright; a trail is a line (possibly broken into pieces,
    each of them still a line). Dropping round blobs keeps a dense star field from drowning
    the trail's votes.
    """
    from scipy import ndimage

    lab, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ys, xs = np.nonzero(lab)
    ll = lab[ys, xs]
    cnt = np.bincount(ll, minlength=n + 1).astype(np.float64)
    cnt[0] = 1.0
    mx = np.bincount(ll, xs, n + 1) / cnt
    my = np.bincount(ll, ys, n + 1) / cnt
    dx, dy = xs - mx[ll], ys - my[ll]
    sxx = np.bincount(ll, dx * dx, n + 1) / cnt
    syy = np.bincount(ll, dy * dy, n + 1) / cnt
    sxy = np.bincount(ll, dx * dy, n + 1) / cnt
    tr = 0.5 * (sxx + syy)
    d = np.sqrt(0.25 * (sxx - syy) ** 2 + sxy**2)
    lam1, lam2 = tr + d, tr - d
    # a uniform segment of length L has variance L²/12 along it
    long_ = np.sqrt(12.0 * lam1) >= min_len
    thin = (lam1 >= 9.0 * lam2 + 0.25) & (cnt >= 4)
    keep = long_ | thin
    keep[0] = False
    sel = keep[ll]
    return ys[sel], xs[sel]


@dataclass(frozen=True)
class _Line:
    """A straight feature: points with x·nx + y·ny = rho (full-resolution pixels)."""

    length: float
    nx: float
    ny: float
    rho: float

    @property
    def angle(self) -> float:
        """Direction of the line in degrees, [0, 180), 0 = along +x."""
        return (math.degrees(math.atan2(self.ny, self.nx)) + 90.0) % 180.0

    def distance(self, x: NDArray, y: NDArray) -> NDArray:
        """Perpendicular distance of points from the line."""
        return np.abs(x * self.nx + y * self.ny - self.rho)


def _catalog_line(cat: StarCatalog, shape: tuple[int, int], min_len: float) -> _Line | None:
    """A line of elongated "stars" lying along it: the pieces of a trail the detector split
    (an airplane's strobes, a satellite crossing a crowded field).

    Random alignments are expected: a line needs many more members than chance gives.
    """
    el = np.nonzero((cat.eccentricity >= 0.6) & ~cat.saturated & (cat.snr >= 20.0))[0]
    if el.size < 6:
        return None
    h, w = shape
    x, y = cat.x[el], cat.y[el]
    rho_max = int(math.ceil(math.hypot(h, w) / 2.0)) + 1
    # 2-pixel rho bins: Hough at half resolution
    acc = K.hough_lines(x / 2.0, y / 2.0, 180, rho_max).astype(np.int64)
    acc3 = acc + np.roll(acc, 1, axis=1) + np.roll(acc, -1, axis=1)
    t, r = np.unravel_index(int(np.argmax(acc3)), acc3.shape)
    th = math.pi * t / 180
    line = _Line(length=0.0, nx=math.cos(th), ny=math.sin(th), rho=2.0 * (r - rho_max))
    # members must be elongated along the line (not a tracking error across it)
    dth = (cat.theta[el] - line.angle + 90.0) % 180.0 - 90.0
    aligned = np.abs(dth) <= 15.0
    on = (line.distance(x, y) <= 3.0) & aligned
    n_on = int(on.sum())
    # chance members: the aligned stars falling in a 6 px wide band across the frame
    expected = int(aligned.sum()) * 6.0 * math.hypot(h, w) / (h * w)
    if n_on < max(6.0, expected + 5.0 * math.sqrt(expected)):
        return None
    along = np.sort(-x[on] * line.ny + y[on] * line.nx)
    length = float(along[-1] - along[0])
    if length < min_len:
        return None
    return _Line(length=length, nx=line.nx, ny=line.ny, rho=line.rho)


def _find_trail(
    resid: NDArray[np.float32], rms: float, min_len_frac: float, min_len_px: float = 150.0
) -> _Line | None:
    """Look for one long, thin, straight bright feature (None when there is none).

    The background-free image is binned 4×4 (a trail survives, noise drops 4×); pixels above
    3σ, minus round blobs (stars), vote in a Hough accumulator, and the strongest line must
    be (a) long — a run of votes covering ``min_len_frac`` of the shorter side (and at least
    ``min_len_px``) with no big gaps — and (b) thin — several times more votes than the
    parallel lines a few pixels away (a galaxy or nebula is wide).
    """
    b = 4
    h, w = resid.shape
    hb, wb = h // b, w // b
    if hb < 16 or wb < 16:
        return None
    binned = resid[: hb * b, : wb * b].reshape(hb, b, wb, b).mean(axis=(1, 3), dtype=np.float32)
    thr = 3.0 * rms / b
    min_len = max(min_len_frac * min(hb, wb), min_len_px / b)
    ys, xs = _elongated_pixels(binned > thr, min_len)
    if ys.size < 10:
        return None
    if ys.size > 400_000:  # a frame full of nebulosity: thin out the votes
        sel = np.random.default_rng(0).choice(ys.size, 400_000, replace=False)
        ys, xs = ys[sel], xs[sel]
    n_theta = 180
    rho_max = int(math.ceil(math.hypot(hb, wb))) + 1
    acc = K.hough_lines(xs.astype(np.float64), ys.astype(np.float64), n_theta, rho_max)
    # votes in 3 adjacent rho bins (a line rarely falls on one bin)
    acc3 = acc.astype(np.int64)
    acc3 = acc3 + np.roll(acc3, 1, axis=1) + np.roll(acc3, -1, axis=1)
    t, r = np.unravel_index(int(np.argmax(acc3)), acc3.shape)
    peak = int(acc3[t, r])
    if peak < 0.5 * min_len:
        return None
    th = math.pi * t / n_theta
    rho = r - rho_max
    dist = xs * math.cos(th) + ys * math.sin(th) - rho
    along_all = -xs * math.sin(th) + ys * math.cos(th)
    on = np.abs(dist) <= 1.5
    along = np.sort(along_all[on])
    if along.size < 2:
        return None
    # longest run along the line with gaps no larger than 4 binned pixels
    gaps = np.nonzero(np.diff(along) > 4)[0]
    starts = np.concatenate([[0], gaps + 1])
    ends = np.concatenate([gaps, [along.size - 1]])
    lengths = along[ends] - along[starts]
    counts = ends - starts + 1
    best = int(np.argmax(lengths))
    length = float(lengths[best])
    a0, a1 = along[starts[best]], along[ends[best]]
    # the run must be long and densely filled (stars happening to line up are sparse)
    if length < min_len or counts[best] < 0.8 * length:
        return None
    # ...and thin: parallel lines a few pixels away, over the same stretch, hold far fewer
    # votes (a galaxy or a nebula is as dense beside the line as on it)
    within = (along_all >= a0) & (along_all <= a1)
    side = np.median([np.count_nonzero(within & (np.abs(dist - o) <= 1.5))
                      for o in (-8, -7, -6, -5, 5, 6, 7, 8)])
    if counts[best] < 3.0 * side + 5:
        return None
    # binned pixel i covers full pixels b·i … b·i + b - 1: its centre is b·i + (b - 1)/2
    c = (b - 1) / 2.0
    return _Line(length=length * b, nx=math.cos(th), ny=math.sin(th),
                 rho=b * rho + c * (math.cos(th) + math.sin(th)))


# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------


def _moffat_u(gamma: float, level: float) -> float:
    """u where (1 + γu/2)^(-1/γ) = level (Gaussian for γ = 0)."""
    if gamma < 1e-6:
        return -2.0 * math.log(level)
    return 2.0 * (level ** (-gamma) - 1.0) / gamma


def _psf_estimates(cat: StarCatalog) -> tuple[float, float]:
    """Total PSF flux and total mean PSF flux (flux over the FWTM ellipse) of unsaturated stars."""
    good = (~cat.saturated) & np.isfinite(cat.flux) & (cat.flux > 0)
    if not good.any():
        return 0.0, 0.0
    flux = cat.flux[good]
    b = cat.beta[cat.fitted & ~np.isnan(cat.beta)]
    gamma = float(np.median(1.0 / b)) if b.size else 0.0
    tenth_over_half = math.sqrt(_moffat_u(gamma, 0.1) / _moffat_u(gamma, 0.5))
    fwtm_a = cat.fwhm_major[good] * tenth_over_half
    fwtm_b = cat.fwhm_minor[good] * tenth_over_half
    mean = flux / (math.pi * 0.25 * fwtm_a * fwtm_b)
    # a few fits with tiny areas give absurd mean fluxes: winsorize them
    med = np.median(mean)
    mad = 1.4826 * np.median(np.abs(mean - med))
    if mad > 0:
        mean = np.clip(mean, med - 3 * mad, med + 3 * mad)
    return float(np.sum(flux, dtype=np.float64)), float(np.sum(mean, dtype=np.float64))


def _quality_stars(cat: StarCatalog, min_snr: float = 30.0, min_count: int = 5) -> NDArray:
    """Stars whose shape the frame statistics use: fitted ones with SNR ≥ 30 when there are
    enough (faint fits scatter and read wide), else every fitted star, else every star."""
    if cat.fitted.any():
        good = cat.fitted & (cat.snr >= min_snr)
        return good if good.sum() >= min_count else cat.fitted
    return np.ones(len(cat), bool)


def _mean_shape(cat: StarCatalog, use: NDArray) -> tuple[float, float]:
    """Eccentricity and angle of the average normalized shape tensor of the stars ``use``."""
    if not use.any():
        return float("nan"), float("nan")
    a2 = cat.fwhm_major[use] ** 2
    b2 = cat.fwhm_minor[use] ** 2
    th = np.radians(cat.theta[use])
    tr = a2 + b2
    # normalized tensor components (e1, e2) — scale-free so big stars do not dominate
    e1 = np.median((a2 - b2) / tr * np.cos(2 * th))
    e2 = np.median((a2 - b2) / tr * np.sin(2 * th))
    e = min(math.hypot(e1, e2), 0.999999)
    q2 = (1 - e) / (1 + e)  # (minor/major)²
    return math.sqrt(1 - q2), math.degrees(0.5 * math.atan2(e2, e1)) % 180.0


def measure_frame(
    image: NDArray,
    *,
    config: MeasureConfig | None = None,
    pixel_scale: float | None = None,
    path: str | None = None,
) -> FrameMeasurement:
    """Measure one frame: stars, FWHM, eccentricity, sky, noise, SNR, PSF weights, trail.

    Parameters
    ----------
    image : ndarray
        (H, W) float32 in [0, 1], or (C, H, W) (measured on the mean of the channels).
    config : MeasureConfig, optional
        Detection and noise options.
    pixel_scale : float, optional
        Arcseconds per pixel; gives ``fwhm_arcsec``.
    path : str, optional
        Recorded in the result.

    Returns
    -------
    FrameMeasurement
    """
    cfg = config or MeasureConfig()
    img = luminance(image)
    cat, bkg, resid = detect_and_measure(img, config=cfg.detection)
    h, w = img.shape

    min_len = max(cfg.trail_min_length * min(h, w), cfg.trail_min_pixels)
    line = _find_trail(resid, bkg.median_rms, cfg.trail_min_length, cfg.trail_min_pixels)
    if line is None:
        line = _catalog_line(cat, (h, w), min_len)
    if line is not None and len(cat):
        # the trail's pieces are not stars: keep them out of counts, fluxes and shapes
        width = 3.0 * float(np.nanmedian(cat.fwhm)) + 4.0
        cat = cat.select(line.distance(cat.x, cat.y) > width)

    noise = mrs_noise(img, layers=cfg.noise_layers, k=cfg.noise_k, max_pixels=cfg.noise_pixels)
    stride = max(1, int(math.ceil(math.sqrt(h * w / cfg.noise_pixels))))
    sample = img[::stride, ::stride].ravel()
    med = float(np.median(sample))
    mad = float(np.median(np.abs(sample - med)))
    avgdev = float(np.mean(np.abs(sample - med)))
    snr = (avgdev / noise) ** 2 if noise > 0 else float("nan")

    # M*, N*: the pixels below the background model (stars never fall there)
    below = -resid[::stride, ::stride].ravel()
    below = below[below > 0]
    if below.size:
        m_star = float(np.median(below))
        n_star = 2.48308 * float(np.median(np.abs(below - m_star)))
    else:
        m_star = n_star = float("nan")

    total, total_mean = _psf_estimates(cat)
    if total > 0 and noise > 0 and m_star > 0:
        # PixInsight's PSFSignalWeight and PSFSNR (its constants keep the numbers comparable)
        psfsw = (5.326e-6 * total * total_mean) / (9.0e6 * noise * m_star)
        psfsnr = (1.316e-7 * total * total) / (4.987e6 * noise * noise)
    else:
        psfsw = psfsnr = 0.0

    use = _quality_stars(cat)
    n = len(cat)
    fwhm = float(np.median(cat.fwhm[use])) if n else float("nan")
    ecc_med = float(np.median(cat.eccentricity[use])) if n else float("nan")
    ecc, theta = _mean_shape(cat, use) if n else (float("nan"), float("nan"))
    betas = cat.beta[cat.fitted & ~np.isnan(cat.beta)]
    beta = float(np.median(betas)) if betas.size else float("nan")
    return FrameMeasurement(
        path=path, width=w, height=h, stars=n, fwhm=fwhm,
        fwhm_arcsec=fwhm * pixel_scale if pixel_scale and math.isfinite(fwhm) else None,
        eccentricity=ecc, eccentricity_median=ecc_med, theta=theta, beta=beta,
        background=bkg.median_level, median=med, mad=mad, noise=noise, snr=snr,
        psf_flux=total, psf_mean_flux=total_mean, m_star=m_star, n_star=n_star,
        psf_signal_weight=psfsw, psf_snr=psfsnr, trail=line is not None,
        trail_length=line.length if line else 0.0, trail_angle=line.angle if line else 0.0,
        pixel_scale=pixel_scale, catalog=cat,
        bright_fluxes=[float(v) for v in np.sort(cat.flux[~cat.saturated])[::-1][:50]],
    )


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WBPPCoefficients:
    """Weights of WBPP's formula (its defaults: FWHM 5, ecc 10, SNR 20, pedestal 65)."""

    fwhm: float = 5.0
    eccentricity: float = 10.0
    snr: float = 20.0
    stars: float = 0.0
    psf_signal: float = 0.0
    psf_snr: float = 0.0
    pedestal: float = 65.0


def _unit_range(v: NDArray[np.float64], invert: bool = False) -> NDArray[np.float64]:
    lo, hi = float(np.min(v)), float(np.max(v))
    if not hi > lo:
        return np.zeros_like(v)  # WBPP: a range of 0 contributes nothing
    t = (v - lo) / (hi - lo)
    return 1.0 - t if invert else t


def _over_max(v: NDArray[np.float64]) -> NDArray[np.float64]:
    top = float(np.max(v)) if v.size else 0.0
    return v / top if top > 0 else np.zeros_like(v)


def compute_weights(
    measurements: list[FrameMeasurement],
    method: WeightMethod = "psf_signal",
    *,
    coefficients: WBPPCoefficients | None = None,
) -> NDArray[np.float64]:
    """Relative weight of each frame in a group (the best frame gets 1).

    Parameters
    ----------
    measurements : list of FrameMeasurement
        One group (same target, filter, exposure...).
    method : {"psf_signal", "psf_snr", "noise", "snr", "wbpp"}
        ``psf_signal``: PSF Signal Weight (WBPP's default). ``psf_snr``: PSF SNR. ``noise``:
        inverse noise variance. ``snr``: the SNR estimate. ``wbpp``: WBPP's formula
        pedestal + 5·(1 - FWHM') + 10·(1 - ecc') + 20·SNR' (primes: scaled to [0, 1] over the
        group), divided by the group's best score.
    coefficients : WBPPCoefficients, optional
        Formula weights for ``wbpp``.

    Returns
    -------
    ndarray of float64
        Weights in [0, 1]; frames that could not be measured get 0.
    """
    if not measurements:
        return np.zeros(0)

    def col(name: str) -> NDArray[np.float64]:
        v = np.array([float(getattr(m, name)) for m in measurements], dtype=np.float64)
        return np.where(np.isfinite(v), v, np.nan)

    if method == "psf_signal":
        raw = col("psf_signal_weight")
    elif method == "psf_snr":
        raw = col("psf_snr")
    elif method == "snr":
        raw = col("snr")
    elif method == "noise":
        nz = col("noise")
        with np.errstate(divide="ignore"):
            raw = np.where(nz > 0, 1.0 / nz**2, np.nan)
    elif method == "wbpp":
        c = coefficients or WBPPCoefficients()
        ok = np.array([m.stars > 0 for m in measurements]) & np.isfinite(col("fwhm"))
        score = np.full(len(measurements), np.nan)
        if ok.any():
            f = col("fwhm")[ok]
            e = col("eccentricity")[ok]
            s = col("snr")[ok]
            st = col("stars")[ok]
            score[ok] = (c.pedestal + c.fwhm * _unit_range(f, invert=True)
                         + c.eccentricity * _unit_range(e, invert=True)
                         + c.snr * _unit_range(s) + c.stars * _unit_range(st)
                         + c.psf_signal * _over_max(col("psf_signal_weight")[ok])
                         + c.psf_snr * _over_max(col("psf_snr")[ok]))
        raw = score
    else:
        msg = f"unknown weighting method {method!r}; choose one of {', '.join(WEIGHT_METHODS)}"
        raise ConfigError(msg)
    raw = np.where(np.isfinite(raw) & (raw > 0), raw, 0.0)
    return _over_max(raw)


# ---------------------------------------------------------------------------------------------
# Selection expressions (a tiny, safe evaluator — never eval())
# ---------------------------------------------------------------------------------------------

#: Names an expression may use → the FrameMeasurement attribute (or selection context value).
EXPRESSION_NAMES: dict[str, str] = {
    "fwhm": "fwhm", "fwhm_arcsec": "fwhm_arcsec", "ecc": "eccentricity",
    "eccentricity": "eccentricity", "stars": "stars", "noise": "noise", "snr": "snr",
    "psfsw": "psf_signal_weight", "psf_signal": "psf_signal_weight",
    "psf_signal_weight": "psf_signal_weight", "psfsnr": "psf_snr", "psf_snr": "psf_snr",
    "background": "background", "median": "median", "mad": "mad", "mstar": "m_star",
    "nstar": "n_star", "beta": "beta", "weight": "weight", "transparency": "transparency",
}

#: Group statistics an expression may use as ``<name>_<stat>`` (``fwhm_median``, ``fwhm_min``,
#: ``noise_sigma``...): over the frames given to :func:`select_frames`, as in PixInsight's
#: SubframeSelector (``FWHMMedian``, ``FWHMMin``...). ``sigma`` is the robust 1.4826·MAD.
GROUP_STATISTICS: tuple[str, ...] = ("min", "max", "median", "sigma")

_CMP = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
        ast.Eq: operator.eq, ast.NotEq: operator.ne}
_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv}


def _known_name(name: str) -> bool:
    if name in EXPRESSION_NAMES:
        return True
    base, _, stat = name.rpartition("_")
    return stat in GROUP_STATISTICS and base in EXPRESSION_NAMES


def _parse(expression: str) -> ast.Expression:
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as err:
        msg = f"selection expression {expression!r} is not valid: {err.msg}"
        raise ConfigError(msg) from err
    for node in ast.walk(tree):
        ok = isinstance(node, (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not,
                               ast.USub, ast.UAdd, ast.Compare, ast.BinOp, ast.Name, ast.Load,
                               ast.Constant, *_CMP, *_BIN))
        if isinstance(node, ast.Constant) and (isinstance(node.value, bool)
                                               or not isinstance(node.value, (int, float))):
            ok = False
        if isinstance(node, ast.Name) and not _known_name(node.id):
            names = ", ".join(sorted(EXPRESSION_NAMES))
            stats = "/".join(GROUP_STATISTICS)
            msg = (f"selection expression {expression!r}: unknown name {node.id!r} (known: "
                   f"{names}; and group statistics such as fwhm_median: <name>_{{{stats}}})")
            raise ConfigError(msg)
        if not ok:
            msg = (f"selection expression {expression!r}: {type(node).__name__} is not allowed — "
                   "use names, numbers, comparisons, and/or/not and + - * /")
            raise ConfigError(msg)
    return tree


def _eval(node: ast.AST, env: dict[str, float]) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body, env)
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BoolOp):
        vals = (_eval(v, env) for v in node.values)
        return all(vals) if isinstance(node.op, ast.And) else any(vals)
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, env)
        if isinstance(node.op, ast.Not):
            return not v
        return -v if isinstance(node.op, ast.USub) else +v
    if isinstance(node, ast.BinOp):
        a, b = _eval(node.left, env), _eval(node.right, env)
        if isinstance(node.op, ast.Div) and b == 0:
            return float("nan")
        return _BIN[type(node.op)](a, b)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, env)
            if not _CMP[type(op)](left, right):
                return False
            left = right
        return True
    msg = f"cannot evaluate {type(node).__name__}"  # unreachable after _parse
    raise ConfigError(msg)


def evaluate_expression(expression: str, values: dict[str, float]) -> bool:
    """Evaluate a selection expression such as ``fwhm < 4.5 and ecc < 0.6``.

    Only names from :data:`EXPRESSION_NAMES` (and their group statistics ``<name>_min``,
    ``_max``, ``_median``, ``_sigma``, see :data:`GROUP_STATISTICS`), numbers, comparisons
    (chains allowed), ``and``/``or``/``not`` and ``+ - * /`` are accepted; anything else raises
    ConfigError. A comparison with a missing (NaN/None) value is false.

    Examples
    --------
    >>> evaluate_expression("fwhm <= 1.1 * fwhm_median", {"fwhm": 2.0, "fwhm_median": 1.9})
    True
    """
    tree = _parse(expression)
    env = {k: (float("nan") if v is None else float(v)) for k, v in values.items()}
    return bool(_eval(tree, _MissingIsNaN(env)))


class _MissingIsNaN(dict):  # type: ignore[type-arg]
    """Expression environment: a known name without a value reads as NaN (comparisons false)."""

    def __missing__(self, key: str) -> float:
        return float("nan")


def _group_statistics(values: dict[str, NDArray[np.float64]]) -> dict[str, float]:
    """``<name>_<stat>`` for every column: min, max, median and robust sigma of finite values."""
    out: dict[str, float] = {}
    for name, v in values.items():
        v = v[np.isfinite(v)]
        if not v.size:
            continue
        med = float(np.median(v))
        out[f"{name}_min"] = float(v.min())
        out[f"{name}_max"] = float(v.max())
        out[f"{name}_median"] = med
        out[f"{name}_sigma"] = 1.4826 * float(np.median(np.abs(v - med)))
    return out


# ---------------------------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlagConfig:
    """Thresholds of the automatic bad-frame flags.

    Attributes
    ----------
    cloud_ratio : float
        Flag a cloud when the frame's stars are fainter than this fraction of the set's typical
        frame (rank-by-rank flux of the brightest stars).
    tracking_elongation : float
        Flag a tracking error when the stars' axis ratio (major/minor) exceeds the set's median
        by this factor...
    tracking_min_ecc : float
        ...and the eccentricity is at least this.
    min_stars : int
        Flag frames with fewer stars than this...
    few_stars_fraction : float
        ...or than this fraction of the set's median star count.
    compare_stars : int
        How many of the brightest stars the transparency test compares.
    """

    cloud_ratio: float = 0.6
    tracking_elongation: float = 1.15
    tracking_min_ecc: float = 0.45
    min_stars: int = 10
    few_stars_fraction: float = 0.3
    compare_stars: int = 50


@dataclass
class Selection:
    """The decision about one frame.

    Attributes
    ----------
    index : int
        Position in the list given to :func:`select_frames`.
    path : str or None
        The frame's file.
    weight : float
        Relative weight (best frame = 1).
    accepted : bool
        False when any reason below applies.
    reasons : list of str
        Plain-words reasons for rejecting the frame (empty when accepted).
    flags : list of str
        Machine-readable codes of the reasons: ``failed``, ``min_weight``, ``expression``,
        ``cloud``, ``trail``, ``tracking``, ``few_stars``.
    transparency : float
        Star brightness relative to the set's typical frame (1 = typical).
    """

    index: int
    path: str | None
    weight: float
    accepted: bool
    reasons: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    transparency: float = float("nan")

    @property
    def reason(self) -> str:
        """All reasons in one sentence ("" when accepted)."""
        return "; ".join(self.reasons)


def _transparency(measurements: list[FrameMeasurement], k_max: int) -> NDArray[np.float64]:
    """Each frame's rank-by-rank flux of its brightest unsaturated stars over the set's median.

    Without matching stars between frames: the k-th brightest star of every frame is (mostly)
    the same star, so the ratio of k-th fluxes is the ratio of transparencies, whatever the
    seeing or sky level.
    """
    lists = []
    for m in measurements:
        if m.bright_fluxes:
            f = np.asarray(m.bright_fluxes, dtype=np.float64)
        else:
            c = m.catalog
            f = c.flux[~c.saturated] if c is not None and len(c) else np.zeros(0)
        lists.append(np.sort(f)[::-1][:k_max])
    depth = max((len(f) for f in lists), default=0)
    out = np.full(len(measurements), np.nan)
    if depth == 0:
        return out
    table = np.full((len(lists), depth), np.nan)
    for i, f in enumerate(lists):
        table[i, : len(f)] = f
    ref = np.nanmedian(table, axis=0)
    for i, f in enumerate(lists):
        if len(f):
            out[i] = float(np.median(f / ref[: len(f)]))
    return out


def select_frames(
    measurements: list[FrameMeasurement],
    *,
    min_weight: float = 0.05,
    expression: str | None = None,
    auto_flags: bool = True,
    method: WeightMethod = "psf_signal",
    flags: FlagConfig | None = None,
    weights: NDArray[np.float64] | None = None,
) -> list[Selection]:
    """Accept or reject each frame of a group, with the reasons in plain words.

    Parameters
    ----------
    measurements : list of FrameMeasurement
        One group of frames.
    min_weight : float
        Reject frames whose relative weight is below this (WBPP's default 0.05).
    expression : str, optional
        Keep only frames for which it is true, e.g. ``"fwhm < 4.5 and ecc < 0.6"``; see
        :func:`evaluate_expression` for the names. Group statistics of these frames are
        available as ``<name>_min/_max/_median/_sigma``: ``"fwhm <= 1.1 * fwhm_median"`` keeps
        the frames whose seeing is at most 10 % worse than the group's typical frame.
    auto_flags : bool
        Flag clouds, trails, tracking errors and frames with too few stars.
    method : str
        Weighting method (see :func:`compute_weights`).
    flags : FlagConfig, optional
        Thresholds of the automatic flags.
    weights : ndarray, optional
        Precomputed weights (otherwise computed with ``method``).

    Returns
    -------
    list of Selection
        One per measurement, in order.
    """
    fc = flags or FlagConfig()
    if expression:
        _parse(expression)  # fail early, before measuring anything else
    w = compute_weights(measurements, method) if weights is None else np.asarray(weights, float)
    transp = _transparency(measurements, fc.compare_stars)
    counts = np.array([m.stars for m in measurements], dtype=float)
    med_stars = float(np.median(counts)) if counts.size else 0.0
    eccs = np.array([m.eccentricity for m in measurements], dtype=float)
    elong = 1.0 / np.sqrt(np.clip(1.0 - eccs**2, 1e-12, 1.0))
    med_elong = float(np.nanmedian(elong)) if np.isfinite(elong).any() else 1.0
    med_ecc = float(np.nanmedian(eccs)) if np.isfinite(eccs).any() else 0.0
    columns: dict[str, NDArray[np.float64]] = {}
    group: dict[str, float] = {}
    if expression:
        for name, attr in EXPRESSION_NAMES.items():
            if attr == "weight":
                columns[name] = np.asarray(w, dtype=np.float64)
            elif attr == "transparency":
                columns[name] = np.asarray(transp, dtype=np.float64)
            else:
                columns[name] = np.array([np.nan if getattr(m, attr) is None
                                          else float(getattr(m, attr)) for m in measurements])
        # group statistics over the frames that could be measured (a failed frame's NaN FWHM
        # or 0 stars must not pull the median)
        measured = np.array([m.stars > 0 and math.isfinite(m.fwhm) for m in measurements])
        group = _group_statistics({k: np.where(measured, v, np.nan) for k, v in columns.items()})
    out = []
    for i, m in enumerate(measurements):
        reasons: list[str] = []
        codes: list[str] = []
        if m.stars == 0 or not math.isfinite(m.fwhm):
            reasons.append("no stars could be measured (empty, blank or badly out-of-focus frame)")
            codes.append("failed")
        if w[i] < min_weight:
            reasons.append(f"weight {w[i]:.3f} is below the minimum {min_weight:g} "
                           f"({method.replace('_', ' ')} relative to the best frame)")
            codes.append("min_weight")
        if auto_flags and m.stars > 0:
            if math.isfinite(transp[i]) and transp[i] < fc.cloud_ratio:
                reasons.append(f"cloud: stars are {100 * transp[i]:.0f}% as bright as in the "
                               "set's typical frame (transparency drop)")
                codes.append("cloud")
            if m.trail:
                reasons.append(f"trail: a straight bright streak {m.trail_length:.0f} px long "
                               f"at {m.trail_angle:.0f}° (satellite or aircraft)")
                codes.append("trail")
            if (math.isfinite(elong[i]) and elong[i] > fc.tracking_elongation * med_elong
                    and eccs[i] >= fc.tracking_min_ecc):
                reasons.append(f"tracking error: stars are elongated (eccentricity "
                               f"{eccs[i]:.2f} vs the set's median {med_ecc:.2f})")
                codes.append("tracking")
            few = max(fc.min_stars, fc.few_stars_fraction * med_stars)
            if m.stars < few:
                reasons.append(f"too few stars: {m.stars} (the set's median is {med_stars:.0f})")
                codes.append("few_stars")
        if expression:
            env = {name: float(col[i]) for name, col in columns.items()}
            env.update(group)
            if not evaluate_expression(expression, env):
                reasons.append(f"does not satisfy the selection expression '{expression}'")
                codes.append("expression")
        out.append(Selection(index=i, path=m.path, weight=float(w[i]), accepted=not reasons,
                             reasons=reasons, flags=codes, transparency=float(transp[i])))
    return out
