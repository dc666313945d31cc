"""Star detection and PSF measurement.

The stage, in order (each step a kernel in :mod:`skystack._star_kernels`):

1. **Background and noise maps** — clipped median and MAD-sigma of ``mesh``×``mesh`` blocks,
   median-filtered over 3×3 blocks (so a bright star or a galaxy core does not lift its block),
   interpolated bilinearly between block centres.
2. **Detection** — the background-free image is correlated with a Gaussian of the expected
   FWHM (the matched filter for faint stars); local maxima above ``threshold`` × the filtered
   noise are candidates.
3. **Adaptive moments** — for every candidate, Gaussian-weighted moments iterated until the
   weight matches the star: sub-pixel centroid, covariance (exact for Gaussians), flux.
   Neighbouring candidates claim the pixels where their own model is brighter (deblending).
   Candidates narrower than ``min_fwhm`` (hot pixels, cosmic rays) are dropped.
4. **PSF fit** — the brightest unsaturated stars get an elliptical Moffat (or Gaussian)
   least-squares fit: FWHM, eccentricity, position angle, amplitude, flux. The remaining stars
   keep their moment values scaled by the fitted/moment ratio of the fitted ones, so the whole
   catalogue is on one scale.

Coordinates follow ``design.md``: x = column, y = row, (0, 0) is the centre of the first pixel.
Sizes account for the pixel's own width (a pixel-integrated star is wider by 1/12 px² in each
second moment), so FWHM values are those of the optical PSF.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from skystack import _star_kernels as K
from skystack.errors import SkystackError

__all__ = [
    "DetectionConfig",
    "Background",
    "StarCatalog",
    "StarDetectionError",
    "luminance",
    "estimate_background",
    "detect_stars",
]

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548
_PIXEL_VAR = 1.0 / 12.0  # variance of a uniform pixel footprint, per axis


class StarDetectionError(SkystackError, ValueError):
    """The image cannot be searched for stars (wrong shape, no finite pixels...)."""


@dataclass(frozen=True)
class DetectionConfig:
    """Options of :func:`detect_stars`.

    Attributes
    ----------
    fwhm_guess : float
        Expected FWHM in pixels; sets the matched filter and the first moment window.
    threshold : float
        Detection threshold in units of the matched-filtered noise.
    mesh : int
        Background mesh size in pixels (larger than stars, smaller than gradients).
    min_fwhm, max_fwhm : float
        Accepted FWHM range in pixels (rejects hot pixels / cosmic rays and extended blobs).
    min_snr : float
        Stars whose measured SNR is below this are dropped.
    saturation : float or None
        Pixel level (in [0, 1]) at which a star counts as saturated; None = automatic (95 % of
        the image maximum when the brightest pixels form a plateau, else nothing saturates).
    psf : {"moffat", "gaussian", "none"}
        PSF model fitted to the brightest stars; "none" keeps moment measurements only.
    max_fit : int
        How many of the brightest unsaturated stars get a PSF fit.
    fit_min_snr : float
        Stars below this SNR are never fitted.
    max_stars : int or None
        Keep at most this many stars (the brightest).
    gain : float or None
        Electrons per unit of the [0, 1] data; adds the star's own shot noise to its SNR.
    """

    fwhm_guess: float = 3.0
    threshold: float = 5.0
    mesh: int = 64
    min_fwhm: float = 0.8
    max_fwhm: float = 30.0
    min_snr: float = 3.0
    saturation: float | None = None
    psf: Literal["moffat", "gaussian", "none"] = "moffat"
    max_fit: int = 400
    fit_min_snr: float = 10.0
    max_stars: int | None = None
    gain: float | None = None


@dataclass
class Background:
    """Background level and noise on a mesh grid (values at block centres).

    Attributes
    ----------
    level, rms : ndarray of float32, shape (ny, nx)
        Sky level and per-pixel noise sigma of each block.
    mesh : int
        Block size in pixels.
    shape : tuple of int
        (H, W) of the image.
    """

    level: NDArray[np.float32]
    rms: NDArray[np.float32]
    mesh: int
    shape: tuple[int, int]

    def at(self, x: NDArray | float, y: NDArray | float) -> tuple[NDArray, NDArray]:
        """(level, rms) interpolated at pixel positions (x, y)."""
        lv = K.interp_mesh_at(self.level, self.mesh, self.shape, np.asarray(x), np.asarray(y))
        rm = K.interp_mesh_at(self.rms, self.mesh, self.shape, np.asarray(x), np.asarray(y))
        return lv, rm

    def level_map(self) -> NDArray[np.float32]:
        """The full-resolution background level."""
        zero = np.zeros(self.shape, np.float32)
        return -K.subtract_background(zero, self.level, self.mesh)

    @property
    def median_level(self) -> float:
        """Median sky level over the frame."""
        return float(np.median(self.level))

    @property
    def median_rms(self) -> float:
        """Median per-pixel noise over the frame (block MAD-sigma)."""
        return float(np.median(self.rms))


_ARRAY_FIELDS = (
    "x", "y", "flux", "peak", "background", "fwhm", "fwhm_major", "fwhm_minor",
    "eccentricity", "theta", "snr", "saturated", "fitted", "beta",
)


@dataclass
class StarCatalog:
    """Stars of one image, one array entry per star, sorted by flux (brightest first).

    Attributes
    ----------
    x, y : ndarray
        Sub-pixel centroid (column, row); (0, 0) is the centre of the first pixel.
    flux : ndarray
        Total flux above the background, in image units × pixels.
    peak : ndarray
        Peak value above the background (fitted amplitude when fitted).
    background : ndarray
        Local sky level under the star.
    fwhm, fwhm_major, fwhm_minor : ndarray
        FWHM in pixels: geometric mean, major and minor axis.
    eccentricity : ndarray
        sqrt(1 - (minor/major)²): 0 for round stars.
    theta : ndarray
        Position angle of the major axis in degrees, [0, 180), from +x towards +y (rows).
    snr : ndarray
        Signal-to-noise estimate of the star's flux.
    saturated : ndarray of bool
        The star's core reaches the saturation level (its flux and shape are unreliable).
    fitted : ndarray of bool
        Shape and flux come from a PSF fit (else from scaled adaptive moments).
    beta : ndarray
        Moffat β of the fit (NaN when not fitted or Gaussian).
    """

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    flux: NDArray[np.float64]
    peak: NDArray[np.float64]
    background: NDArray[np.float64]
    fwhm: NDArray[np.float64]
    fwhm_major: NDArray[np.float64]
    fwhm_minor: NDArray[np.float64]
    eccentricity: NDArray[np.float64]
    theta: NDArray[np.float64]
    snr: NDArray[np.float64]
    saturated: NDArray[np.bool_]
    fitted: NDArray[np.bool_]
    beta: NDArray[np.float64]
    shape: tuple[int, int] = (0, 0)
    psf: str = "none"
    meta: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def select(self, index: NDArray) -> StarCatalog:
        """A new catalogue with the stars ``index`` (boolean mask or integer indices)."""
        kw = {name: getattr(self, name)[index] for name in _ARRAY_FIELDS}
        return replace(self, **kw)

    def brightest(self, n: int) -> StarCatalog:
        """The ``n`` brightest stars."""
        return self.select(np.arange(min(n, len(self))))

    @classmethod
    def empty(cls, shape: tuple[int, int] = (0, 0)) -> StarCatalog:
        """A catalogue without stars."""
        z = np.zeros(0)
        kw = {name: z.copy() for name in _ARRAY_FIELDS}
        kw["saturated"] = np.zeros(0, bool)
        kw["fitted"] = np.zeros(0, bool)
        return cls(**kw, shape=shape)

    def to_dict(self) -> dict[str, list]:
        """Plain lists per column (for JSON)."""
        out: dict[str, list] = {}
        for f in fields(self):
            if f.name in _ARRAY_FIELDS:
                out[f.name] = getattr(self, f.name).tolist()
        return out


# ---------------------------------------------------------------------------------------------


def luminance(image: NDArray) -> NDArray[np.float32]:
    """(H, W) float32 view of an image: mono as is, colour (C, H, W) as the mean of channels."""
    a = np.asarray(image)
    if a.ndim == 3:
        a = a.mean(axis=0, dtype=np.float32)
    if a.ndim != 2:
        msg = f"expected an (H, W) or (C, H, W) image, got shape {a.shape}"
        raise StarDetectionError(msg)
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        # NaN/inf (e.g. undefined pixels after registration) must not poison the medians
        good = np.isfinite(a)
        if not good.any():
            msg = "image has no finite pixels"
            raise StarDetectionError(msg)
        a = np.where(good, a, np.median(a[good])).astype(np.float32)
    return a


def estimate_background(image: NDArray, *, mesh: int = 64) -> Background:
    """Background level and noise maps on a mesh.

    Parameters
    ----------
    image : ndarray
        (H, W) or (C, H, W) float image.
    mesh : int
        Block size in pixels; clamped so that the image holds at least one block.

    Returns
    -------
    Background
        Clipped-median level and MAD-sigma per block, 3×3-median-filtered.
    """
    img = luminance(image)
    mesh = int(max(8, min(mesh, img.shape[0], img.shape[1])))
    # subsample big frames: 256 samples per 64 px block pin the median to ~8 % of the noise
    step = 1 if mesh < 32 else 4 if img.size > 4_000_000 else 2
    level, rms = K.mesh_stats(img, mesh, step=step)
    if min(level.shape) >= 3:
        level = _median3(level)
        rms = _median3(rms)
    rms = np.maximum(rms, np.float32(1e-12))
    return Background(level.astype(np.float32), rms.astype(np.float32), mesh, img.shape)


def _median3(grid: NDArray[np.float32]) -> NDArray[np.float32]:
    """3×3 median filter of a mesh grid, padded by linear extrapolation so planes stay planes."""
    from scipy.ndimage import median_filter

    g = grid.astype(np.float64)
    g = np.concatenate([2 * g[:1] - g[1:2], g, 2 * g[-1:] - g[-2:-1]], axis=0)
    g = np.concatenate([2 * g[:, :1] - g[:, 1:2], g, 2 * g[:, -1:] - g[:, -2:-1]], axis=1)
    return median_filter(g, size=3)[1:-1, 1:-1].astype(np.float32)


def _neighbours(
    x: NDArray, y: NDArray, radius: float
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """CSR lists of the points within ``radius`` of each point (itself excluded)."""
    from scipy.spatial import cKDTree

    n = x.shape[0]
    if n == 0:
        return np.zeros(1, np.int64), np.zeros(0, np.int64)
    pairs = cKDTree(np.column_stack([x, y])).query_pairs(radius, output_type="ndarray")
    if pairs.size == 0:
        return np.zeros(n + 1, np.int64), np.zeros(0, np.int64)
    a = np.concatenate([pairs[:, 0], pairs[:, 1]])
    b = np.concatenate([pairs[:, 1], pairs[:, 0]])
    order = np.argsort(a, kind="stable")
    a, b = a[order], b[order]
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(a, minlength=n), out=ptr[1:])
    return ptr, b.astype(np.int64)


def _deblend_radius(cfg: DetectionConfig) -> float:
    """Candidates closer than this share pixels by the deblending rule."""
    return 5.0 * cfg.fwhm_guess + 2.0


def _saturation_level(img: NDArray[np.float32], cfg: DetectionConfig) -> float:
    if cfg.saturation is not None:
        return float(cfg.saturation)
    top = float(img.max())
    if top <= 0:
        return math.inf
    # a saturated star is a plateau: several pixels at (almost) the maximum
    n_top = int(np.count_nonzero(img >= np.float32(0.995 * top)))
    return 0.95 * top if n_top >= 4 else math.inf


def _shape_from_cov(sxx: NDArray, sxy: NDArray, syy: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """Eigenvalues (major, minor) and major-axis angle in degrees [0, 180) of 2×2 covariances."""
    tr = 0.5 * (sxx + syy)
    d = np.sqrt(np.maximum(0.25 * (sxx - syy) ** 2 + sxy**2, 0.0))
    lam1 = tr + d
    lam2 = tr - d
    theta = np.degrees(0.5 * np.arctan2(2.0 * sxy, sxx - syy)) % 180.0
    return lam1, lam2, theta


def detect_stars(image: NDArray, *, config: DetectionConfig | None = None) -> StarCatalog:
    """Detect and measure the stars of an image.

    Parameters
    ----------
    image : ndarray
        (H, W) float32 in [0, 1], or (C, H, W) colour (measured on the mean of the channels).
    config : DetectionConfig, optional
        Detection and measurement options.

    Returns
    -------
    StarCatalog
        One entry per star, sorted by flux, brightest first.

    Examples
    --------
    >>> cat = detect_stars(frame)                                   # doctest: +SKIP
    >>> float(np.median(cat.fwhm)), len(cat)                        # doctest: +SKIP
    (3.51, 1987)
    """
    img = luminance(image)
    cat, _, _ = detect_and_measure(img, config=config)
    return cat


def detect_and_measure(
    img: NDArray[np.float32], *, config: DetectionConfig | None = None
) -> tuple[StarCatalog, Background, NDArray[np.float32]]:
    """:func:`detect_stars` on a luminance image, also returning the background and residual.

    The residual (image minus background) lets :mod:`skystack.weights` reuse the work.
    """
    cfg = config or DetectionConfig()
    h, w = img.shape
    if h < 16 or w < 16:
        msg = f"image of {w}×{h} pixels is too small to search for stars"
        raise StarDetectionError(msg)
    bkg = estimate_background(img, mesh=cfg.mesh)
    resid = K.subtract_background(img, bkg.level, bkg.mesh)
    sigma0 = cfg.fwhm_guess / _FWHM_PER_SIGMA
    kern = K.gaussian_kernel(max(sigma0, 0.5))
    smooth = K.smooth_separable(resid, kern)
    noise_gain = float(np.sum(kern.astype(np.float64) ** 2))  # sigma of the filtered noise / sigma
    thr = (cfg.threshold * noise_gain * bkg.rms).astype(np.float32)
    border = max(2, kern.shape[0] // 2)
    py, px = K.find_peaks(smooth, thr, bkg.mesh, border, radius=1)
    if px.size == 0:
        return StarCatalog.empty((h, w)), bkg, resid
    amp = smooth[py, px].astype(np.float64)
    ptr, nbr = _neighbours(px.astype(np.float64), py.astype(np.float64), _deblend_radius(cfg))
    rmax = int(max(8, math.ceil(2.5 * cfg.max_fwhm / _FWHM_PER_SIGMA * 2)))
    mom = K.measure_moments(resid, px, py, amp, ptr, nbr, sigma0, rmax=min(rmax, 40))
    ok = mom[:, 7] > 0
    mx, my = mom[:, 0], mom[:, 1]
    sxx, sxy, syy = mom[:, 2], mom[:, 3], mom[:, 4]
    flux_m = mom[:, 5]
    lam1, lam2, theta = _shape_from_cov(sxx - _PIXEL_VAR, sxy, syy - _PIXEL_VAR)
    with np.errstate(invalid="ignore"):
        fw_major = _FWHM_PER_SIGMA * np.sqrt(np.maximum(lam1, 0.0))
        fw_minor = _FWHM_PER_SIGMA * np.sqrt(np.maximum(lam2, 0.0))
    bg_here, rms_here = bkg.at(mx, my)
    noise_var = mom[:, 8] * rms_here**2
    if cfg.gain:
        noise_var = noise_var + np.maximum(flux_m, 0.0) / cfg.gain
    snr = flux_m / np.sqrt(np.maximum(noise_var, 1e-30))
    ok &= (fw_minor >= cfg.min_fwhm) & (fw_major <= cfg.max_fwhm)
    ok &= (flux_m > 0) & (snr >= cfg.min_snr)
    ok &= (mx >= -0.5) & (mx <= w - 0.5) & (my >= -0.5) & (my <= h - 0.5)
    keep = np.nonzero(ok)[0]
    # two peaks of one star converge on the same centroid: keep the brighter
    if keep.size > 1:
        from scipy.spatial import cKDTree

        pairs = cKDTree(np.column_stack([mx[keep], my[keep]])).query_pairs(
            1.0, output_type="ndarray")
        if pairs.size:
            i, j = keep[pairs[:, 0]], keep[pairs[:, 1]]
            drop = np.where(flux_m[i] >= flux_m[j], j, i)
            ok[drop] = False
            keep = np.nonzero(ok)[0]
    if keep.size == 0:
        return StarCatalog.empty((h, w)), bkg, resid

    sat_level = _saturation_level(img, cfg)
    cy = np.clip(py[keep], 1, h - 2)
    cx = np.clip(px[keep], 1, w - 2)
    local_max = np.max(np.stack([img[cy + dy, cx + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]),
                       axis=0)
    saturated = local_max >= sat_level

    n = keep.size
    cat_x = mx[keep].copy()
    cat_y = my[keep].copy()
    cat_flux = flux_m[keep].copy()
    cat_peak = mom[keep, 6].copy()
    cat_bg = bg_here[keep].copy()
    cat_major = fw_major[keep].copy()
    cat_minor = fw_minor[keep].copy()
    cat_theta = theta[keep].copy()
    cat_snr = snr[keep].copy()
    fitted = np.zeros(n, bool)
    beta = np.full(n, np.nan)
    meta: dict[str, float] = {"candidates": float(px.size), "saturation_level": sat_level}

    if cfg.psf != "none" and cfg.max_fit > 0:
        order = np.argsort(-cat_flux, kind="stable")
        eligible = order[(~saturated[order]) & (cat_snr[order] >= cfg.fit_min_snr)][: cfg.max_fit]
        if eligible.size:
            model = K.MOFFAT if cfg.psf == "moffat" else K.GAUSSIAN
            sub_ptr, sub_nbr = _neighbours(cat_x, cat_y, _deblend_radius(cfg))
            amp_k = np.maximum(cat_peak, 1e-12)
            res = K.fit_psf(resid, cat_x, cat_y, sxx[keep], sxy[keep], syy[keep], amp_k,
                            sub_ptr, sub_nbr, eligible, model=model, sigma0=sigma0)
            _apply_fit(res, eligible, model, cat_x, cat_y, cat_flux, cat_peak, cat_bg, cat_major,
                       cat_minor, cat_theta, fitted, beta)
            if fitted.any():
                # put the unfitted stars on the fitted scale (a Moffat is wider than its
                # moment-equivalent Gaussian; its wings carry flux the moments miss)
                fm = fitted
                mom_geo = np.sqrt(fw_major[keep] * fw_minor[keep])
                r_fw = float(np.median(np.sqrt(cat_major[fm] * cat_minor[fm]) / mom_geo[fm]))
                r_fl = float(np.median(cat_flux[fm] / flux_m[keep][fm]))
                meta["fwhm_fit_over_moments"] = r_fw
                meta["flux_fit_over_moments"] = r_fl
                nf = ~fitted
                cat_major[nf] *= r_fw
                cat_minor[nf] *= r_fw
                cat_flux[nf] *= r_fl
        nv = noise_var[keep] if not cfg.gain else (mom[keep, 8] * rms_here[keep] ** 2
                                                   + np.maximum(cat_flux, 0.0) / cfg.gain)
        cat_snr = cat_flux / np.sqrt(np.maximum(nv, 1e-30))

    fwhm = np.sqrt(cat_major * cat_minor)
    with np.errstate(invalid="ignore", divide="ignore"):
        ecc = np.sqrt(np.clip(1.0 - (cat_minor / cat_major) ** 2, 0.0, 1.0))
    order = np.argsort(-cat_flux, kind="stable")
    cat = StarCatalog(
        x=cat_x[order], y=cat_y[order], flux=cat_flux[order], peak=cat_peak[order],
        background=cat_bg[order], fwhm=fwhm[order], fwhm_major=cat_major[order],
        fwhm_minor=cat_minor[order], eccentricity=ecc[order], theta=cat_theta[order],
        snr=cat_snr[order], saturated=saturated[order], fitted=fitted[order], beta=beta[order],
        shape=(h, w), psf=cfg.psf, meta=meta,
    )
    if cfg.max_stars is not None and len(cat) > cfg.max_stars:
        cat = cat.brightest(cfg.max_stars)
    return cat, bkg, resid


def _apply_fit(res, idx, model, x, y, flux, peak, bg, major, minor, theta, fitted, beta) -> None:
    """Write successful PSF fits into the catalogue arrays (in place)."""
    ok = res[:, 10] > 0
    a, b, c = res[:, 2], res[:, 3], res[:, 4]
    det = a * c - b * b
    ok &= det > 0
    det = np.where(ok, det, 1.0)
    # the fitted quadratic form is the inverse of the (pixel-widened) shape matrix
    cxx, cxy, cyy = c / det, -b / det, a / det
    amp = res[:, 5]
    gam = res[:, 7] if model == K.MOFFAT else np.zeros(len(res))
    # the fitted form is the core's inverse covariance, widened by the pixel (1/12 px² per axis)
    lam1, lam2, th = _shape_from_cov(cxx - _PIXEL_VAR, cxy, cyy - _PIXEL_VAR)
    ok &= lam2 > 0
    # half maximum where (1 + γu/2)^(-1/γ) = 1/2, i.e. u = 2(2^γ - 1)/γ (2 ln 2 for γ = 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        u_half = np.where(gam > 1e-6, 2.0 * (2.0**gam - 1.0) / np.maximum(gam, 1e-6),
                          2.0 * math.log(2.0))
    f_major = 2.0 * np.sqrt(np.maximum(lam1, 0) * u_half)
    f_minor = 2.0 * np.sqrt(np.maximum(lam2, 0) * u_half)
    tot = 2.0 * math.pi * amp * np.sqrt(cxx * cyy - cxy**2) / (1.0 - gam)
    # a fit that wandered off or changed the size wildly is not trusted
    moved = np.hypot(res[:, 0] - x[idx], res[:, 1] - y[idx])
    geo_old = np.sqrt(major[idx] * minor[idx])
    geo_new = np.sqrt(f_major * f_minor)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = geo_new / geo_old
    ok &= (moved < 1.5) & (ratio > 0.5) & (ratio < 2.0) & (tot > 0) & np.isfinite(tot)
    sel = idx[ok]
    x[sel] = res[ok, 0]
    y[sel] = res[ok, 1]
    flux[sel] = tot[ok]
    peak[sel] = amp[ok]
    bg[sel] = bg[sel] + res[ok, 6]
    major[sel] = f_major[ok]
    minor[sel] = f_minor[ok]
    theta[sel] = th[ok]
    fitted[sel] = True
    if model == K.MOFFAT:
        with np.errstate(divide="ignore"):
            beta[sel] = 1.0 / res[ok, 7]
