"""Global and local normalization, and the local-normalization (LN) reference.

Local normalization maps each registered frame onto a reference so that gradients and
transparency changes do not fight in the stack::

    out(x, y) = A0(x, y) + A1 · in(x, y)          (pixels equal to 0 — "no data" — stay 0)

* ``A1`` is a photometric scale: the median flux ratio reference/frame of matched stars measured
  by aperture photometry (or, with too few stars, a robust ratio of high-pass pixel values).
* ``A0`` is the large-scale background difference ``R − A1·T``: medians of the difference image
  on a grid of cells (stars and objects cancel in the difference; trails, satellites and hot
  pixels are clipped), modelled by a low-order polynomial plus a residual smoothed at the scale
  ``S`` (default ``min(W, H) / 4`` as WBPP). It is stored on the cell grid and interpolated on
  the fly (:meth:`LocalNormalization.apply`), which is how the stack engine uses it.

The reference is built from the best frames by weight (the seed page: "stack your best 10–20
subs, average, no rejection") and validated: it must be a light (a dark has no sky), and zero or
non-finite pixels inside its data area are repaired by background fill (they are what breaks
PixInsight's LN with "LN vectors contain NaN values"). Mosaic panels each need their own reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from skystack.errors import SkystackError

__all__ = [
    "LNConfig",
    "LNError",
    "LNReferenceError",
    "GlobalNormalization",
    "LocalNormalization",
    "ReferenceResult",
    "global_normalization",
    "compute_local_normalization",
    "build_reference",
    "validate_reference",
    "check_reference_type",
    "check_coverage",
    "reference_frame_count",
    "aperture_photometry",
    "find_bright_stars",
]


class LNError(SkystackError, ValueError):
    """Local normalization could not be computed for a frame."""


class LNReferenceError(LNError):
    """The LN reference is unusable (wrong frame type, does not cover the frame...)."""


@dataclass(frozen=True)
class LNConfig:
    """Options of local normalization.

    Attributes
    ----------
    scale : int or None
        Background modelling scale S in pixels; None → ``min(W, H) // 4`` (WBPP's grid of 4).
    cell : int or None
        Cell size of the background grid; None → ``clip(S // 8, 8, 64)``.
    low_clip, high_clip : float
        Samples at or below / at or above these are "missing" (PixInsight's clipping levels).
    poly_degree : int
        Degree of the polynomial part of the background-difference model.
    reject_sigma : float
        Clipping threshold (robust sigmas) inside a cell of the difference image.
    min_stars : int
        Fewer matched stars than this → the pixel-ratio scale estimate is used.
    aperture : float
        Aperture radius in pixels for star photometry (annulus from 2× to 3× this radius).
    """

    scale: int | None = None
    cell: int | None = None
    low_clip: float = 4.5e-5
    high_clip: float = 0.85
    poly_degree: int = 2
    reject_sigma: float = 3.0
    min_stars: int = 8
    aperture: float = 6.0


@dataclass(frozen=True)
class GlobalNormalization:
    """``out = (in − location) · factor + ref_location`` — robust location and scale matching."""

    location: float
    scale: float
    ref_location: float
    ref_scale: float

    @property
    def factor(self) -> float:
        """Multiplicative factor applied after removing the location."""
        return self.ref_scale / self.scale if self.scale > 0 else 1.0

    def apply(self, data: NDArray[np.float32]) -> NDArray[np.float32]:
        """Normalize ``data``; pixels equal to 0 (no data) stay 0."""
        out = ((data - np.float32(self.location)) * np.float32(self.factor)
               + np.float32(self.ref_location)).astype(np.float32)
        out[data == 0] = 0
        return out


def _valid(data: NDArray[np.float32], cfg: LNConfig) -> NDArray[np.bool_]:
    return np.isfinite(data) & (data > cfg.low_clip) & (data < cfg.high_clip)


def _location_scale(data: NDArray[np.float32]) -> tuple[float, float]:
    step = max(1, int(np.sqrt(data.size / 2e6)))
    sample = data[..., ::step, ::step]
    sample = sample[np.isfinite(sample) & (sample != 0)]
    if sample.size == 0:
        msg = "the frame has no valid pixels"
        raise LNError(msg)
    med = float(np.median(sample))
    mad = float(np.median(np.abs(sample - med))) * 1.4826
    return med, mad


def global_normalization(
    frame: NDArray[np.float32], reference: NDArray[np.float32]
) -> GlobalNormalization:
    """Location (median) and scale (1.4826·MAD) of ``frame`` matched to ``reference``."""
    loc, sc = _location_scale(frame)
    rloc, rsc = _location_scale(reference)
    return GlobalNormalization(loc, sc, rloc, rsc)


def find_bright_stars(
    image: NDArray[np.float32], *, max_stars: int = 300, threshold: float = 10.0,
    high_clip: float = 0.85,
) -> NDArray[np.float64]:
    """Positions (N, 2) as (x, y) of bright, isolated, unsaturated local maxima.

    Uses :func:`skystack.stars.detect_stars` when available; otherwise a small local-maximum
    finder on a lightly smoothed image (enough for photometric scaling, where only the positions
    of bright stars matter).
    """
    try:
        from skystack.stars import detect_stars  # the full detector, when present
    except ImportError:
        detect_stars = None
    if detect_stars is not None:
        try:
            cat = detect_stars(image)
            keep = ~np.asarray(cat.saturated, bool)
            xy = np.column_stack([np.asarray(cat.x)[keep], np.asarray(cat.y)[keep]])
            return xy[:max_stars]
        except Exception:  # noqa: BLE001 - fall back to the simple finder on any detector failure
            pass
    img = np.where(np.isfinite(image), image, 0).astype(np.float32)
    smooth = ndimage.gaussian_filter(img, 1.0)
    bg = ndimage.median_filter(smooth[::4, ::4], size=9)
    bg = ndimage.zoom(bg, (img.shape[0] / bg.shape[0], img.shape[1] / bg.shape[1]), order=1)
    bg = bg[: img.shape[0], : img.shape[1]]
    resid = smooth - bg
    sigma = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    peaks = (smooth == ndimage.maximum_filter(smooth, size=7)) & (resid > threshold * max(sigma, 1e-9))
    peaks &= image < high_clip
    ys, xs = np.nonzero(peaks)
    order = np.argsort(-resid[ys, xs])
    return np.column_stack([xs[order], ys[order]]).astype(np.float64)[:max_stars]


def aperture_photometry(
    image: NDArray[np.float32], xy: NDArray[np.float64], *, radius: float = 6.0
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Background-subtracted aperture fluxes at ``xy``, their noise, and where they are valid.

    The background is the median of an annulus from 2× to 3× the radius; the noise is the
    annulus scatter (1.4826·MAD) times √(aperture pixels) — sky-limited, which is what matters
    for choosing stars good enough to scale by.
    """
    h, w = image.shape
    r_out = int(np.ceil(3 * radius))
    yy, xx = np.mgrid[-r_out : r_out + 1, -r_out : r_out + 1]
    rr = np.hypot(xx, yy)
    in_ap = rr <= radius
    in_ann = (rr >= 2 * radius) & (rr <= 3 * radius)
    flux = np.zeros(len(xy))
    err = np.full(len(xy), np.inf)
    ok = np.zeros(len(xy), bool)
    for i, (x, y) in enumerate(xy):
        cx, cy = int(round(x)), int(round(y))
        if cx - r_out < 0 or cy - r_out < 0 or cx + r_out >= w or cy + r_out >= h:
            continue
        stamp = image[cy - r_out : cy + r_out + 1, cx - r_out : cx + r_out + 1]
        if not np.all(np.isfinite(stamp)) or np.any(stamp[in_ap] == 0):
            continue
        ann = stamp[in_ann]
        ann = ann[ann != 0]
        if ann.size < 10:
            continue
        med = float(np.median(ann))
        flux[i] = float(stamp[in_ap].sum() - in_ap.sum() * med)
        err[i] = 1.4826 * float(np.median(np.abs(ann - med))) * np.sqrt(in_ap.sum())
        ok[i] = True
    return flux, err, ok


def _robust_median(values: NDArray[np.float64], *, k: float = 3.0) -> float:
    v = values[np.isfinite(values)]
    for _ in range(5):
        med = np.median(v)
        mad = 1.4826 * np.median(np.abs(v - med))
        keep = np.abs(v - med) <= k * max(mad, 1e-12)
        if keep.all():
            break
        v = v[keep]
    return float(np.median(v))


def _cell_grid(shape: tuple[int, int], cell: int) -> tuple[int, int]:
    return int(np.ceil(shape[0] / cell)), int(np.ceil(shape[1] / cell))


def _cell_stats(
    diff: NDArray[np.float32], valid: NDArray[np.bool_], cell: int, k: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Sigma-clipped median and valid count of ``diff`` in each cell (NaN where empty)."""
    ny, nx = _cell_grid(diff.shape, cell)
    h, w = diff.shape
    pad = np.full((ny * cell, nx * cell), np.nan, np.float32)
    pad[:h, :w] = np.where(valid, diff, np.nan)
    blocks = pad.reshape(ny, cell, nx, cell).transpose(0, 2, 1, 3).reshape(ny, nx, cell * cell)
    count = np.isfinite(blocks).sum(axis=2).astype(np.float64)
    med = np.full((ny, nx), np.nan)
    enough = count >= max(8, cell * cell // 8)
    if not enough.any():
        return med, count
    b = blocks[enough]
    with np.errstate(all="ignore"):
        for _ in range(3):
            m = np.nanmedian(b, axis=1, keepdims=True)
            s = 1.4826 * np.nanmedian(np.abs(b - m), axis=1, keepdims=True)
            b = np.where(np.abs(b - m) <= k * np.maximum(s, 1e-12), b, np.nan)
        med[enough] = np.nanmedian(b, axis=1)
    count[~enough] = 0
    return med, count


def _poly_terms(u: NDArray[np.float64], v: NDArray[np.float64], degree: int) -> NDArray[np.float64]:
    return np.column_stack([u**i * v**j for i in range(degree + 1) for j in range(degree + 1 - i)])


def _model_surface(
    values: NDArray[np.float64], weights: NDArray[np.float64], *, degree: int, smooth_cells: float
) -> NDArray[np.float64]:
    """Smooth surface through cell values: robust polynomial + Gaussian-smoothed residual."""
    ny, nx = values.shape
    good = np.isfinite(values) & (weights > 0)
    if good.sum() < 4:
        msg = "insufficient data to model the background (fewer than 4 usable cells)"
        raise LNError(msg)
    jj, ii = np.meshgrid(np.linspace(-1, 1, nx), np.linspace(-1, 1, ny))
    deg = degree
    while deg > 0 and good.sum() < 3 * (deg + 1) * (deg + 2) // 2:
        deg -= 1
    a = _poly_terms(jj[good], ii[good], deg)
    y = values[good]
    wts = np.sqrt(weights[good])
    use = np.ones(len(y), bool)
    coef = np.zeros(a.shape[1])
    for _ in range(4):  # iteratively clipped least squares: cells on trails or clouds drop out
        coef, *_ = np.linalg.lstsq(a[use] * wts[use, None], y[use] * wts[use], rcond=None)
        res = y - a @ coef
        s = 1.4826 * np.median(np.abs(res[use] - np.median(res[use])))
        new = np.abs(res) <= 4 * max(s, 1e-12)
        if new.sum() < a.shape[1] or (new == use).all():
            break
        use = new
    trend = (_poly_terms(jj.ravel(), ii.ravel(), deg) @ coef).reshape(ny, nx)
    resid = np.where(good, values - trend, 0.0)
    wmap = np.where(good, weights, 0.0)
    if smooth_cells > 0:
        num = ndimage.gaussian_filter(resid * wmap, smooth_cells, mode="nearest")
        den = ndimage.gaussian_filter(wmap, smooth_cells, mode="nearest")
        resid_s = np.where(den > 1e-12, num / np.maximum(den, 1e-12), 0.0)
    else:
        resid_s = resid
    return trend + resid_s


def _upsample(grid: NDArray[np.float64], cell: int, rows: NDArray[np.float64],
              cols: NDArray[np.float64]) -> NDArray[np.float32]:
    """Cubic-spline interpolation of a cell-centred grid at pixel rows × cols."""
    gy = (rows + 0.5) / cell - 0.5
    gx = (cols + 0.5) / cell - 0.5
    yy, xx = np.meshgrid(gy, gx, indexing="ij")
    return ndimage.map_coordinates(grid, [yy, xx], order=3, mode="nearest").astype(np.float32)


@dataclass
class LocalNormalization:
    """A frame's LN function: ``out = A0(x, y) + a1 · in`` with ``A0`` on a coarse cell grid.

    Implements the stack engine's band-normalizer protocol (:meth:`apply`), so it is applied on
    the fly, row band by row band, without ever holding full-size A0 maps.
    """

    a0_grid: NDArray[np.float64]
    a1: float
    cell: int
    shape: tuple[int, int]
    stars_used: int = 0
    method: str = "stars"
    notes: list[str] = field(default_factory=list)

    def a0(self, row0: int = 0, rows: int | None = None) -> NDArray[np.float32]:
        """A0 for rows ``[row0, row0 + rows)`` at full resolution."""
        n = self.shape[0] - row0 if rows is None else rows
        return _upsample(self.a0_grid, self.cell, np.arange(row0, row0 + n, dtype=np.float64),
                         np.arange(self.shape[1], dtype=np.float64))

    def apply(self, band: NDArray[np.float32], row0: int = 0) -> NDArray[np.float32]:
        """Normalize rows ``[row0, row0 + len(band))``; pixels equal to 0 stay 0."""
        arr = np.asarray(band, np.float32)
        rows = arr.shape[-2]
        a0 = self.a0(row0, rows)
        out = (a0 + np.float32(self.a1) * arr).astype(np.float32)
        out[(arr == 0) | ~np.isfinite(arr)] = 0
        return out

    def to_json(self) -> dict[str, object]:
        """A compact description for run.json (the grid itself is kept out)."""
        return {"a1": self.a1, "cell": self.cell, "grid_shape": list(self.a0_grid.shape),
                "stars_used": self.stars_used, "method": self.method, "notes": list(self.notes)}


def _resolve(cfg: LNConfig, shape: tuple[int, int]) -> tuple[int, int]:
    scale = cfg.scale or max(32, min(shape) // 4)
    cell = cfg.cell or int(np.clip(scale // 8, 8, 64))
    return scale, cell


def _scale_from_stars(
    frame: NDArray[np.float32], reference: NDArray[np.float32], xy: NDArray[np.float64],
    cfg: LNConfig,
) -> tuple[float | None, int]:
    if len(xy) == 0:
        return None, 0
    fr, ef, okf = aperture_photometry(frame, xy, radius=cfg.aperture)
    rf, er, okr = aperture_photometry(reference, xy, radius=cfg.aperture)
    ok = okf & okr & (fr > 0) & (rf > 0) & (np.minimum(fr / ef, rf / er) >= 10)
    if ok.sum() < cfg.min_stars:
        return None, int(ok.sum())
    t, r, et, erf = fr[ok], rf[ok], ef[ok], er[ok]
    # Weighted least squares of R = a·T through the origin (errors in both): bright stars weigh
    # most, which a median of noisy ratios would not do; outliers (variables, blends, stars
    # saturated in one image) are clipped on their normalized residuals.
    a = _robust_median(r / t)
    use = np.ones(len(t), bool)
    for _ in range(5):
        var = erf**2 + (a * et) ** 2
        a = float(np.sum(r * t / var * use) / np.sum(t * t / var * use))
        z = (r - a * t) / np.sqrt(var)
        s = 1.4826 * np.median(np.abs(z[use]))
        new = np.abs(z) <= 4 * max(s, 1.0)
        if new.sum() < cfg.min_stars or (new == use).all():
            break
        use = new
    return a, int(use.sum())


def _scale_from_pixels(
    frame: NDArray[np.float32], reference: NDArray[np.float32], valid: NDArray[np.bool_],
    cell: int, scale: int,
) -> float:
    """Robust ratio of high-pass signals (R − RB)/(T − TB) over pixels significant in both.

    The backgrounds RB, TB are cell medians smoothed at the LN scale, so gradients (which differ
    between frame and reference) drop out while stars and nebulae larger than a cell remain.
    """
    def highpass(img: NDArray[np.float32]) -> tuple[NDArray[np.float32], float]:
        med, count = _cell_stats(img, valid, cell, 3.0)
        good = np.isfinite(med)
        w = good.astype(float)
        sig = max(1.0, scale / cell / 2)
        num = ndimage.gaussian_filter(np.where(good, med, 0.0), sig, mode="nearest")
        den = ndimage.gaussian_filter(w, sig, mode="nearest")
        grid = np.where(den > 1e-6, num / np.maximum(den, 1e-6), np.nanmedian(med))
        bg = _upsample(grid, cell, np.arange(img.shape[0], dtype=float),
                       np.arange(img.shape[1], dtype=float))
        hp = img - bg
        d = hp[valid]
        noise = 1.4826 * float(np.median(np.abs(d - np.median(d))))
        return hp, noise

    th, st = highpass(frame)
    rh, sr = highpass(reference)
    sig = valid & (th > 5 * st) & (rh > 5 * sr)
    if sig.sum() < 64:
        msg = "unable to compute a valid scale estimate: too few stars and significant pixels"
        raise LNError(msg)
    t, r = th[sig].astype(np.float64), rh[sig].astype(np.float64)
    # least squares through the origin, clipped: bright pixels dominate as they should
    use = np.ones(t.size, bool)
    a = float(np.median(r / t))
    for _ in range(5):
        a = float(np.sum(r[use] * t[use]) / np.sum(t[use] ** 2))
        res = r - a * t
        s = 1.4826 * np.median(np.abs(res[use]))
        new = np.abs(res) <= 4 * max(s, 1e-12)
        if new.sum() < 64 or (new == use).all():
            break
        use = new
    return a


def compute_local_normalization(
    frame: NDArray[np.float32],
    reference: NDArray[np.float32],
    *,
    config: LNConfig | None = None,
    stars_xy: NDArray[np.float64] | None = None,
) -> LocalNormalization:
    """The LN function that maps registered ``frame`` onto ``reference``.

    Parameters
    ----------
    frame, reference : ndarray (H, W)
        On the same pixel grid; 0 or non-finite = no data.
    config : LNConfig, optional
    stars_xy : ndarray (N, 2), optional
        Star positions (x, y) on the reference grid for photometry; found when not given.

    Returns
    -------
    LocalNormalization

    Raises
    ------
    LNError
        No overlap, no usable background, or no scale estimate possible.
    """
    cfg = config or LNConfig()
    f = np.asarray(frame, np.float32)
    r = np.asarray(reference, np.float32)
    if f.shape != r.shape or f.ndim != 2:
        msg = f"frame {f.shape} and reference {r.shape} must be 2-D on the same grid (register first)"
        raise LNError(msg)
    scale, cell = _resolve(cfg, f.shape)
    valid = _valid(f, cfg) & _valid(r, cfg)
    if valid.mean() < 0.05:
        msg = "frame and reference share less than 5 % of their pixels (different panel or failed registration)"
        raise LNReferenceError(msg)
    notes: list[str] = []
    xy = find_bright_stars(r, high_clip=cfg.high_clip) if stars_xy is None else stars_xy
    a1, n_stars = _scale_from_stars(f, r, xy, cfg)
    method = "stars"
    if a1 is None:
        a1 = _scale_from_pixels(f, r, valid, cell, scale)
        method = "pixels"
        notes.append(f"only {n_stars} stars measurable: scale from pixel ratios")
    if not (0.05 < a1 < 20):
        msg = f"implausible photometric scale {a1:.3g} (frame and reference too different?)"
        raise LNError(msg)
    diff = (r - np.float32(a1) * f).astype(np.float32)
    med, count = _cell_stats(diff, valid, cell, cfg.reject_sigma)
    grid = _model_surface(med, count, degree=cfg.poly_degree, smooth_cells=scale / cell / 2)
    return LocalNormalization(grid, float(a1), cell, f.shape, n_stars, method, notes)


# --- the reference ------------------------------------------------------------------------------

_NOT_LIGHT = {
    "dark": "a dark has no sky: linking a dark as the LN reference causes division by near-zero "
            "values — use a stack of your best lights",
    "dark_flat": "a dark-flat has no sky: use a stack of your best lights as the LN reference",
    "bias": "a bias has no sky: use a stack of your best lights as the LN reference",
    "flat": "a flat is not a sky image: use a stack of your best lights as the LN reference",
}


def check_reference_type(frame_type: str | None, *, path: str = "the reference") -> None:
    """Refuse a calibration frame as LN reference ("darks have no astronomical signal")."""
    if frame_type in _NOT_LIGHT:
        raise LNReferenceError(f"{path}: {_NOT_LIGHT[frame_type]}")


def check_coverage(
    frame: NDArray[np.float32], reference: NDArray[np.float32], *, min_fraction: float = 0.5,
    path: str = "frame",
) -> float:
    """Fraction of the frame's data area that the reference covers; refuse below ``min_fraction``.

    A mosaic panel's lights must not be normalized to another panel's reference: the reference
    does not cover them, and the background model would be extrapolated into seams.
    """
    fd = np.isfinite(frame) & (frame != 0)
    if not fd.any():
        raise LNReferenceError(f"{path}: has no data")
    cov = float((fd & np.isfinite(reference) & (reference != 0)).sum() / fd.sum())
    if cov < min_fraction:
        msg = (f"{path}: the LN reference covers only {cov:.0%} of this frame — it belongs to "
               "another mosaic panel or field; give each panel its own reference")
        raise LNReferenceError(msg)
    return cov


def reference_frame_count(n: int, *, maximum: int = 20) -> int:
    """How many best frames form the LN reference: ``min(maximum, max(3, n // 3))`` (≤ n)."""
    return min(n, min(maximum, max(3, n // 3)))


@dataclass
class ReferenceResult:
    """The LN reference and how it was made."""

    data: NDArray[np.float32]
    frames: list[int]
    repaired_pixels: int = 0
    notes: list[str] = field(default_factory=list)


def validate_reference(
    data: NDArray[np.float32], *, data_area: NDArray[np.bool_] | None = None,
    fill: bool = True, path: str = "the LN reference",
) -> tuple[NDArray[np.float32], int, list[str]]:
    """Find zero or non-finite pixels inside the reference's data area and repair them.

    Dead pixels and bad columns in the reference that the lights do not have are what makes
    PixInsight fail with "LN vectors contain NaN values". The data area is the region inside the
    frame's footprint (``data_area``; by default the bounding region of non-zero pixels, i.e.
    everything but fully empty border rows/columns). Bad pixels are filled with the local
    background (median of the surrounding valid pixels, growing the window as needed).

    Returns
    -------
    data, repaired_count, notes
    """
    img = np.asarray(data, np.float32).copy()
    finite = np.isfinite(img)
    nonzero = finite & (img != 0)
    if data_area is None:
        data_area = ~_outside_footprint(~nonzero)
    bad = data_area & ~nonzero
    n_bad = int(bad.sum())
    notes: list[str] = []
    if n_bad == 0:
        return img, 0, notes
    if not fill:
        msg = (f"{path}: {n_bad} zero or non-finite pixels inside its data area (dead pixels or "
               "bad columns) — LN would divide by them; add a pedestal or let skystack repair them")
        raise LNReferenceError(msg)
    from skystack.calibrate import repair_pixels

    img[~finite] = 0
    # neighbours' median for small defects (excluding every zero pixel as a source)...
    filled = repair_pixels(img, ~nonzero)
    filled[~data_area] = 0
    todo = bad & ~_nonzero_after(filled, img, nonzero)
    size = 9
    # ...and a growing block median for large holes
    while todo.any() and size <= 513:
        med = _block_nanmedian(np.where(nonzero, img, np.nan).astype(np.float32), size)
        ok = todo & np.isfinite(med)
        filled[ok] = med[ok]
        todo &= ~ok
        size = size * 2 + 1
    notes.append(f"{n_bad} zero/non-finite pixels inside the data area filled with the local background")
    return filled, n_bad, notes


def _nonzero_after(
    filled: NDArray[np.float32], original: NDArray[np.float32], nonzero: NDArray[np.bool_]
) -> NDArray[np.bool_]:
    """Pixels that hold data after filling (were valid, or got a finite non-zero value)."""
    return nonzero | (np.isfinite(filled) & (filled != 0) & (filled != original))


def _outside_footprint(zeros: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Zero pixels that belong to the empty area around a registered frame's footprint.

    Those are wide regions connected to the image edge. Thin zero structures — dead pixels, bad
    columns, even ones running edge to edge — vanish under a 5×5 opening and so stay inside the
    data area, where they are defects to repair.
    """
    wide = ndimage.binary_opening(zeros, structure=np.ones((5, 5), bool))
    border = np.zeros_like(zeros)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    outside = ndimage.binary_propagation(wide & border, mask=wide)
    # jagged footprint edges (rotated frames) are not defects either
    return ndimage.binary_dilation(outside, iterations=2) & zeros


def _block_nanmedian(vals: NDArray[np.float32], size: int) -> NDArray[np.float64]:
    cell = max(1, size // 2)
    ny, nx = _cell_grid(vals.shape, cell)
    pad = np.full((ny * cell, nx * cell), np.nan, np.float32)
    pad[: vals.shape[0], : vals.shape[1]] = vals
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(pad.reshape(ny, cell, nx, cell), axis=(1, 3))
    up = np.repeat(np.repeat(med, cell, 0), cell, 1)
    return up[: vals.shape[0], : vals.shape[1]]


def build_reference(
    frames: Sequence[NDArray[np.float32]] | Sequence[Callable[[], NDArray[np.float32]]],
    weights: Sequence[float],
    *,
    n: int | None = None,
    rejection: bool = False,
) -> ReferenceResult:
    """Average the best frames (by weight) after global normalization — the LN reference.

    Parameters
    ----------
    frames : sequence of arrays (H, W), or of zero-argument loaders returning them
        Registered frames on the reference grid (0 = no data).
    weights : sequence of float
        Frame quality (higher is better), e.g. PSF Signal Weight.
    n : int, optional
        Frames to use; default :func:`reference_frame_count`.
    rejection : bool
        Sigma-clip (3σ) per pixel instead of a plain average (off by default: "no rejection").

    Returns
    -------
    ReferenceResult
        The average (validated and repaired, see :func:`validate_reference`) and the indices used.
    """
    if len(frames) == 0:
        msg = "no frames to build an LN reference from"
        raise LNError(msg)
    count = n or reference_frame_count(len(frames))
    order = [int(i) for i in np.argsort(-np.asarray(weights, float), kind="stable")[:count]]

    def load(i: int) -> NDArray[np.float32]:
        f = frames[i]
        return np.asarray(f() if callable(f) else f, np.float32)

    best = load(order[0])
    stack = [best]
    for i in order[1:]:
        g = global_normalization(load(i), best)
        stack.append(g.apply(load(i)))
    cube = np.stack(stack).astype(np.float32)
    cube[~np.isfinite(cube)] = 0
    have = cube != 0
    with np.errstate(all="ignore"):
        if rejection and len(stack) >= 3:
            vals = np.where(have, cube, np.nan)
            med = np.nanmedian(vals, axis=0)
            sd = np.nanstd(vals, axis=0)
            have &= ~(np.abs(cube - med) > 3 * np.maximum(sd, 1e-12))
        total = np.where(have, cube, 0).sum(axis=0)
        cnt = have.sum(axis=0)
        avg = np.where(cnt > 0, total / np.maximum(cnt, 1), 0).astype(np.float32)
    data, repaired, notes = validate_reference(avg)
    return ReferenceResult(data, order, repaired, notes)
