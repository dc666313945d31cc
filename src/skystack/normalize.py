"""Global and local normalization, and the local-normalization (LN) reference.

Local normalization maps each registered frame onto a reference so that gradients and
transparency changes do not fight in the stack::

    out(x, y) = A0(x, y) + A1 · in(x, y)          (pixels equal to 0 — "no data" — stay 0)

* ``A1`` is a photometric scale: the flux ratio reference/frame of matched bright stars measured
  by aperture photometry (a clipped weighted fit), or, with too few stars, a robust ratio of
  high-pass pixel values.
* ``A0`` is the large-scale background difference ``R − A1·T``: sigma-clipped means of the
  difference image on a grid of cells (stars and objects cancel in the difference; trails,
  satellites and hot pixels are clipped by median/MAD rounds), modelled by a low-order polynomial
  plus a residual smoothed at the scale ``S`` (default ``min(W, H) / 4`` as WBPP). It is stored on
  the cell grid and interpolated on the fly by a separable cubic spline
  (:meth:`LocalNormalization.apply`), which is how the stack engine uses it.

  A clipped *mean*, not a median: the median of low-count (Poisson-skewed) sky sits below its
  mean by about σ·skewness/6 — 0.07 % of a 240 e⁻ sky, a third of the error budget.

The reference is built from the best frames by weight and validated. The pipeline integrates
them as WBPP does (:func:`build_reference_from_files`: average, auto rejection) rather than the
seed page's manual recipe ("stack your best 10–20 subs, average, no rejection", kept as
:func:`build_reference`): without rejection a satellite trail in one of the best frames lands in
the reference and drags every frame's LN scale (seen on a simulated night: one frame's a1 0.32
instead of 0.98). It must be a light (a dark has no sky), and zero or
non-finite pixels inside its data area are repaired by background fill (they are what breaks
PixInsight's LN with "LN vectors contain NaN values"). Mosaic panels each need their own reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba as nb
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
    "build_reference_from_files",
    "ChannelNormalization",
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


# --- kernels (numba, each with a NumPy reference the tests compare against) ----------------------

_JIT = {"cache": True, "nogil": True}
_SPLINE_PAD = 12  # as scipy's map_coordinates(mode="nearest"): edge padding before prefiltering


@nb.njit(**_JIT)
def _cell_stats_kernel(r, f, a1, low, high, cell, step, k):  # noqa: ANN001, ANN202
    """Clipped mean, clipped sigma and valid-sample count of ``r − a1·f`` per cell.

    Samples every ``step``-th row and column of each cell; a sample is valid when both ``r`` and
    ``f`` lie strictly inside (low, high) (NaN fails every comparison, so it is invalid too).
    """
    h, w = r.shape
    ny = (h + cell - 1) // cell
    nx = (w + cell - 1) // cell
    med = np.full((ny, nx), np.nan)
    sig = np.full((ny, nx), np.nan)
    count = np.zeros((ny, nx))
    per = ((cell + step - 1) // step) ** 2
    need = max(8, per // 8)
    buf = np.empty(per, np.float32)
    dev = np.empty(per, np.float32)
    for i in range(ny):
        for j in range(nx):
            n = 0
            for y in range(i * cell, min(h, (i + 1) * cell), step):
                for x in range(j * cell, min(w, (j + 1) * cell), step):
                    a = r[y, x]
                    b = f[y, x]
                    if a > low and a < high and b > low and b < high:
                        buf[n] = a - a1 * b
                        n += 1
            count[i, j] = n
            if n < need:
                continue
            s = 0.0
            for _ in range(3):
                m = np.median(buf[:n])
                for t in range(n):
                    dev[t] = abs(buf[t] - m)
                s = 1.4826 * np.median(dev[:n])
                lim = k * max(s, 1e-12)
                kept = 0
                for t in range(n):
                    if abs(buf[t] - m) <= lim:
                        buf[kept] = buf[t]
                        kept += 1
                n = kept
            total = 0.0  # float64 accumulator, as the NumPy reference
            for t in range(n):
                total += buf[t]
            med[i, j] = total / n
            sig[i, j] = s
    return med, sig, count


def _cell_stats_fast(
    r: NDArray[np.float32], f: NDArray[np.float32], a1: float, cell: int, *, low: float,
    high: float, k: float, step: int = 1,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Numba :func:`_cell_stats` of ``r − a1·f`` with validity taken from both images."""
    return _cell_stats_kernel(np.ascontiguousarray(r, np.float32),
                              np.ascontiguousarray(f, np.float32), np.float32(a1),
                              np.float32(low), np.float32(high), int(cell), int(step), float(k))


def _sample_step(cell: int) -> int:
    """Sampling step inside a cell: ~1000 samples pin a cell's level to ~3 % of the noise sigma,
    and the background model averages dozens of cells on top of that."""
    return max(1, cell // 32)


def _bspline_weights(t: NDArray[np.float64]) -> NDArray[np.float64]:
    """Cubic B-spline weights (…, 4) for fractional offsets ``t`` in [0, 1)."""
    t2, t3 = t * t, t * t * t
    return np.stack([(1 - t) ** 3, 3 * t3 - 6 * t2 + 4, -3 * t3 + 3 * t2 + 3 * t + 1, t3],
                    axis=-1) / 6.0


def _spline_axis(
    n: int, cell: int, start: int = 0
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """First coefficient index and the 4 weights of pixels ``start … start+n−1`` along one axis."""
    u = (np.arange(start, start + n, dtype=np.float64) + 0.5) / cell - 0.5 + _SPLINE_PAD
    i = np.floor(u).astype(np.int64)
    return i - 1, _bspline_weights(u - i)


def _spline_coefficients(grid: NDArray[np.float64]) -> NDArray[np.float64]:
    """Prefiltered cubic-spline coefficients of a cell grid, edge-padded (values held beyond the
    outer cell centres, as map_coordinates' ``mode="nearest"``)."""
    padded = np.pad(np.asarray(grid, np.float64), _SPLINE_PAD, mode="edge")
    return ndimage.spline_filter(padded, order=3, mode="mirror", output=np.float64)


@nb.njit(**_JIT)
def _apply_kernel(band, rows_x, iy, wy, a1, out):  # noqa: ANN001, ANN202
    """``out = A0 + a1·band`` where A0 row r = Σ_k wy[r, k]·rows_x[iy[r] + k]; 0/NaN in → 0 out."""
    h, w = band.shape
    for r in range(h):
        i = iy[r]
        w0, w1, w2, w3 = wy[r, 0], wy[r, 1], wy[r, 2], wy[r, 3]
        for x in range(w):
            v = band[r, x]
            if v == 0 or not np.isfinite(v):
                out[r, x] = 0.0
            else:
                a0 = (w0 * rows_x[i, x] + w1 * rows_x[i + 1, x] + w2 * rows_x[i + 2, x]
                      + w3 * rows_x[i + 3, x])
                out[r, x] = a0 + a1 * v
    return out


def _upsample(grid: NDArray[np.float64], cell: int, rows: NDArray[np.float64],
              cols: NDArray[np.float64]) -> NDArray[np.float32]:
    """Cubic-spline interpolation of a cell-centred grid at pixel rows × cols (NumPy reference:
    scipy's map_coordinates, which :class:`LocalNormalization` reproduces separably)."""
    gy = (rows + 0.5) / cell - 0.5
    gx = (cols + 0.5) / cell - 0.5
    yy, xx = np.meshgrid(gy, gx, indexing="ij")
    return ndimage.map_coordinates(grid, [yy, xx], order=3, mode="nearest").astype(np.float32)


@nb.njit(**_JIT)
def _photometry_kernel(image, xs, ys, radius):  # noqa: ANN001, ANN202
    h, w = image.shape
    r_out = int(np.ceil(3 * radius))
    n = xs.shape[0]
    flux = np.zeros(n)
    err = np.full(n, np.inf)
    ok = np.zeros(n, np.bool_)
    ann = np.empty((2 * r_out + 1) ** 2, np.float32)
    for s in range(n):
        cx = int(np.round(xs[s]))
        cy = int(np.round(ys[s]))
        if cx - r_out < 0 or cy - r_out < 0 or cx + r_out >= w or cy + r_out >= h:
            continue
        good = True
        total = 0.0
        n_ap = 0
        n_ann = 0
        for dy in range(-r_out, r_out + 1):
            for dx in range(-r_out, r_out + 1):
                v = image[cy + dy, cx + dx]
                if not np.isfinite(v):
                    good = False
                rr = np.sqrt(dx * dx + dy * dy)
                if rr <= radius:
                    if v == 0:
                        good = False
                    total += v
                    n_ap += 1
                elif rr >= 2 * radius and rr <= 3 * radius and v != 0:
                    ann[n_ann] = v
                    n_ann += 1
        if not good or n_ann < 10:
            continue
        med = np.median(ann[:n_ann])
        for t in range(n_ann):
            ann[t] = abs(ann[t] - med)
        flux[s] = total - n_ap * med
        err[s] = 1.4826 * np.median(ann[:n_ann]) * np.sqrt(n_ap)
        ok[s] = True
    return flux, err, ok


# --- stars and photometry -----------------------------------------------------------------------


def find_bright_stars(
    image: NDArray[np.float32], *, max_stars: int = 300, threshold: float = 10.0,
    high_clip: float = 0.85, border: int = 19,
) -> NDArray[np.float64]:
    """Positions (N, 2) as (x, y) of the brightest unsaturated star peaks, brightest first.

    A star peak is a local maximum over 7×7 pixels at least ``threshold`` sigmas above the local
    background (clipped cell statistics on a 64 px grid, zeros ignored), whose 5×5 neighbourhood
    is below ``high_clip``, and whose four neighbours carry at least 15 % of its height (a lone
    hot pixel or cosmic-ray hit does not). Peaks closer than ``border`` to an edge are skipped
    (the default fits the photometry annulus for a 6 px aperture).

    This is all photometric scaling needs: :func:`skystack.stars.detect_stars` also measures
    every star's PSF and costs ~40× more on a 12 Mpx frame (``benchmarks/bench_normalize.py``).
    """
    from skystack._star_kernels import find_peaks

    img = np.ascontiguousarray(image, np.float32)
    h, w = img.shape
    cell = 64 if min(h, w) >= 512 else 32
    med, sig, _ = _cell_stats_fast(img, img, 0.0, cell, low=0.0, high=np.inf, k=3.0, step=4)
    thr = np.where(np.isfinite(med), med + threshold * np.maximum(sig, 1e-9), np.inf)
    border = int(min(border, (min(h, w) - 1) // 2 - 3))
    ys, xs = find_peaks(img, thr.astype(np.float32), cell, max(border, 3), radius=3)
    if ys.size == 0:
        return np.zeros((0, 2))
    bg = med[ys // cell, xs // cell]
    amp = img[ys, xs] - bg
    win = np.stack([img[ys + dy, xs + dx] for dy in range(-2, 3) for dx in range(-2, 3)])
    cross = (img[ys - 1, xs] + img[ys + 1, xs] + img[ys, xs - 1] + img[ys, xs + 1]) / 4 - bg
    keep = (win.max(axis=0) < high_clip) & (cross >= 0.15 * amp) & np.isfinite(amp)
    order = np.argsort(-amp[keep], kind="stable")[:max_stars]
    return np.column_stack([xs[keep][order], ys[keep][order]]).astype(np.float64)


def aperture_photometry(
    image: NDArray[np.float32], xy: NDArray[np.float64], *, radius: float = 6.0
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Background-subtracted aperture fluxes at ``xy``, their noise, and where they are valid.

    The background is the median of an annulus from 2× to 3× the radius; the noise is the
    annulus scatter (1.4826·MAD) times √(aperture pixels) — sky-limited, which is what matters
    for choosing stars good enough to scale by. Stars whose stamp touches the edge, a non-finite
    pixel, or a 0 ("no data") in the aperture are not valid.
    """
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    return _photometry_kernel(np.ascontiguousarray(image, np.float32),
                              np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1]),
                              float(radius))


def _aperture_photometry_ref(
    image: NDArray[np.float32], xy: NDArray[np.float64], *, radius: float = 6.0
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """NumPy reference of :func:`aperture_photometry`."""
    h, w = image.shape
    r_out = int(np.ceil(3 * radius))
    yy, xx = np.mgrid[-r_out : r_out + 1, -r_out : r_out + 1]
    rr = np.sqrt(xx * xx + yy * yy)
    in_ap = rr <= radius
    in_ann = (rr >= 2 * radius) & (rr <= 3 * radius)
    flux = np.zeros(len(xy))
    err = np.full(len(xy), np.inf)
    ok = np.zeros(len(xy), bool)
    for i, (x, y) in enumerate(xy):
        cx, cy = int(np.round(x)), int(np.round(y))
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
        flux[i] = float(stamp[in_ap].astype(np.float64).sum() - in_ap.sum() * med)
        err[i] = 1.4826 * float(np.median(np.abs(ann - np.float32(med)))) * np.sqrt(in_ap.sum())
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
    """Sigma-clipped mean and valid count of ``diff`` in each cell (NaN where empty).

    Three rounds of clipping at ``k``·1.4826·MAD around the median, then the mean of what is
    left. NumPy reference of :func:`_cell_stats_fast` (and the pixel-ratio fallback's helper).
    """
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
        med[enough] = np.nanmean(b, axis=1, dtype=np.float64)
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

    _rows_x: NDArray[np.float64] | None = field(default=None, init=False, repr=False, compare=False)

    def _columns_done(self) -> NDArray[np.float64]:
        """Spline coefficients interpolated along x for every column: (grid rows + pad, W).

        The cubic B-spline is separable, so A0 at full resolution is this small array combined
        along y with 4 weights per row — made once per frame, then reused by every band.
        """
        if self._rows_x is None:
            coef = _spline_coefficients(self.a0_grid)
            ix, wx = _spline_axis(self.shape[1], self.cell)
            rows_x = np.zeros((coef.shape[0], self.shape[1]))
            for k in range(4):
                rows_x += coef[:, ix + k] * wx[:, k]
            self._rows_x = rows_x
        return self._rows_x

    def a0(self, row0: int = 0, rows: int | None = None) -> NDArray[np.float32]:
        """A0 for rows ``[row0, row0 + rows)`` at full resolution (cubic spline over the grid)."""
        n = self.shape[0] - row0 if rows is None else rows
        rows_x = self._columns_done()
        iy, wy = _spline_axis(n, self.cell, row0)
        out = np.zeros((n, self.shape[1]))
        for k in range(4):
            out += rows_x[iy + k] * wy[:, k, None]
        return out.astype(np.float32)

    def apply(self, band: NDArray[np.float32], row0: int = 0) -> NDArray[np.float32]:
        """Normalize rows ``[row0, row0 + len(band))``; pixels equal to 0 (or non-finite) give 0."""
        arr = np.asarray(band, np.float32)
        if arr.ndim == 3:
            return np.stack([self.apply(plane, row0) for plane in arr])
        iy, wy = _spline_axis(arr.shape[0], self.cell, row0)
        out = np.empty(arr.shape, np.float32)
        return _apply_kernel(np.ascontiguousarray(arr), self._columns_done(), iy, wy,
                             float(self.a1), out)

    def _apply_ref(self, band: NDArray[np.float32], row0: int = 0) -> NDArray[np.float32]:
        """NumPy reference of :meth:`apply` (scipy's map_coordinates for A0)."""
        arr = np.asarray(band, np.float32)
        a0 = _upsample(self.a0_grid, self.cell, np.arange(row0, row0 + arr.shape[0], dtype=float),
                       np.arange(self.shape[1], dtype=float))
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
    # a star whose ratio is off by more than ×1.5 either way is not the same light in both images
    # (a trail or cosmic ray across it in one, a blend): out before the first fit, where a few
    # bright ones have the leverage to drag the scale (a trail once gave 0.32 for 0.98)
    ratio = r / (a * t)
    use = (ratio > 0) & (np.abs(np.log(np.where(ratio > 0, ratio, 1.0))) <= np.log(1.5))
    if use.sum() < cfg.min_stars:
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
        bg = LocalNormalization(grid, 0.0, cell, img.shape).a0()
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
        msg = (f"frame {f.shape} and reference {r.shape} must be 2-D on the same grid "
               "(register first)")
        raise LNError(msg)
    scale, cell = _resolve(cfg, f.shape)
    # the overlap on a sparse sample (every 4th row and column) is plenty for a 5 % test
    if (_valid(f[::4, ::4], cfg) & _valid(r[::4, ::4], cfg)).mean() < 0.05:
        msg = ("frame and reference share less than 5 % of their pixels (different panel or "
               "failed registration)")
        raise LNReferenceError(msg)
    notes: list[str] = []
    xy = find_bright_stars(r, high_clip=cfg.high_clip) if stars_xy is None else stars_xy
    a1, n_stars = _scale_from_stars(f, r, xy, cfg)
    method = "stars"
    if a1 is None:
        a1 = _scale_from_pixels(f, r, _valid(f, cfg) & _valid(r, cfg), cell, scale)
        method = "pixels"
        notes.append(f"only {n_stars} stars measurable: scale from pixel ratios")
    if not (0.05 < a1 < 20):
        msg = f"implausible photometric scale {a1:.3g} (frame and reference too different?)"
        raise LNError(msg)
    step = _sample_step(cell)
    med, _, count = _cell_stats_fast(r, f, a1, cell, low=cfg.low_clip, high=cfg.high_clip,
                                     k=cfg.reject_sigma, step=step)
    count[~np.isfinite(med)] = 0
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
    notes.append(f"{n_bad} zero/non-finite pixels inside the data area filled with the local "
                 "background")
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


class ChannelNormalization:
    """A frame's LN functions, one per channel, as one band normalizer for the stack engine.

    ``apply(band, row0)`` maps rows of a mono (rows, W) or colour (C, rows, W) band; with no
    functions it is the identity (the reference frame itself). Saved as ``.npz`` arrays
    ``a0_<c>``, ``a1_<c>``, ``cell_<c>`` (:meth:`to_arrays`, :meth:`load`).
    """

    def __init__(self, planes: Sequence[LocalNormalization]) -> None:
        self.planes = list(planes)

    def apply(self, band: NDArray[np.float32], row0: int) -> NDArray[np.float32]:
        """Rows ``[row0, row0 + rows)`` of the frame mapped onto the reference."""
        if not self.planes:
            return band
        if band.ndim == 2:
            return self.planes[0].apply(band, row0)
        return np.stack([ln.apply(band[c], row0) for c, ln in enumerate(self.planes)])

    def to_arrays(self) -> dict[str, NDArray[Any]]:
        """The functions as named arrays (for ``np.savez``)."""
        out: dict[str, NDArray[Any]] = {}
        for c, ln in enumerate(self.planes):
            out[f"a0_{c}"] = ln.a0_grid
            out[f"a1_{c}"] = np.array(ln.a1)
            out[f"cell_{c}"] = np.array(ln.cell)
        return out

    @classmethod
    def load(cls, path: str | Path, shape: tuple[int, ...]) -> ChannelNormalization:
        """Read functions saved from :meth:`to_arrays` for frames of ``shape`` (H, W)."""
        z = np.load(path)
        n = len([k for k in z.files if k.startswith("a0_")])
        return cls([LocalNormalization(z[f"a0_{c}"], float(z[f"a1_{c}"]), int(z[f"cell_{c}"]),
                                       tuple(shape[-2:])) for c in range(n)])


def build_reference_from_files(
    paths: Sequence[str | Path],
    weights: Sequence[float],
    *,
    n: int | None = None,
    memory: int | str | None = None,
    config: LNConfig | None = None,
) -> ReferenceResult:
    """The LN reference the way WBPP makes it: the best frames, locally normalized, integrated.

    The best ``n`` frames by weight (default :func:`reference_frame_count`) are each locally
    normalized to the best one, then integrated by the stack engine (streaming row bands):
    average weighted by ``weights`` with the ``auto`` rejection for that many frames. Rejection
    after LN removes a satellite trail or cosmic ray of one frame (without it the trail lands in
    the reference and from there in every frame's LN scale); rejection after only a global
    normalization would not do: the frames' different sky gradients would read as outliers and
    bend the reference's background (measured: 5 % of sky in the corners). Frames whose LN
    fails are left out with a note. The result is validated and repaired per channel
    (:func:`validate_reference`).

    Parameters
    ----------
    paths : sequence of path
        Registered frames on the reference grid (0 = no data), mono or colour.
    weights : sequence of float
        Frame quality (higher is better), e.g. PSF Signal Weight.
    n : int, optional
        Frames to use.
    memory : int or str, optional
        Memory budget of the integration (see :func:`skystack.integrate.integrate`).
    config : LNConfig, optional
        Settings of the local normalizations to the best frame.

    Returns
    -------
    ReferenceResult
    """
    from skystack.integrate import IntegrationConfig, integrate
    from skystack.io import read_image

    if len(paths) == 0:
        msg = "no frames to build an LN reference from"
        raise LNError(msg)
    count = n or reference_frame_count(len(paths))
    order = [int(i) for i in np.argsort(-np.asarray(weights, float), kind="stable")[:count]]
    best = np.asarray(read_image(paths[order[0]]).data, np.float32)
    best_planes = best if best.ndim == 3 else best[None]
    used, lns, notes = [order[0]], [ChannelNormalization([])], []
    for i in order[1:]:
        data = np.asarray(read_image(paths[i]).data, np.float32)
        planes = data if data.ndim == 3 else data[None]
        try:
            lns.append(ChannelNormalization([compute_local_normalization(
                planes[c], best_planes[c], config=config) for c in range(len(planes))]))
        except LNError as err:
            notes.append(f"{Path(paths[i]).name}: left out of the LN reference ({err})")
            continue
        used.append(i)
    del best, best_planes
    w = np.array([max(float(weights[i]), 0.0) for i in used])
    cfg = IntegrationConfig(combine="average", rejection="auto", weights="none",
                            subtract_pedestal=False, range_low=0.0)
    res = integrate([paths[i] for i in used], config=cfg,
                    weights=w if w.sum() > 0 else None, local_normalization=lns, memory=memory)
    image = np.asarray(res.image, np.float32)
    fixed, repaired = [], 0
    for plane in image if image.ndim == 3 else image[None]:
        data, rep, note = validate_reference(plane)
        fixed.append(data)
        repaired += rep
        notes += note
    data = np.stack(fixed) if image.ndim == 3 else fixed[0]
    return ReferenceResult(data, used, repaired, notes)


def build_reference(
    frames: Sequence[NDArray[np.float32]] | Sequence[Callable[[], NDArray[np.float32]]],
    weights: Sequence[float],
    *,
    n: int | None = None,
) -> ReferenceResult:
    """Average the best frames (by weight) after global normalization, without rejection.

    The seed page's manual recipe for an LN reference, from arrays in memory; the pipeline and
    ``skystack normalize`` use :func:`build_reference_from_files` (LN to the best frame, then
    rejection).

    Parameters
    ----------
    frames : sequence of arrays (H, W), or of zero-argument loaders returning them
        Registered frames on the reference grid (0 = no data).
    weights : sequence of float
        Frame quality (higher is better), e.g. PSF Signal Weight.
    n : int, optional
        Frames to use; default :func:`reference_frame_count`.

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

    def normalized(i: int) -> NDArray[np.float32]:
        if i == order[0]:
            f = best
        else:
            f = load(i)  # read once: the normalization is measured on the same array it maps
            f = global_normalization(f, best).apply(f)
        return np.where(np.isfinite(f), f, 0).astype(np.float32)

    with np.errstate(all="ignore"):
        # streams: one frame in memory besides the sums
        total = np.zeros(best.shape, np.float64)
        cnt = np.zeros(best.shape, np.int32)
        for i in order:
            f = normalized(i)
            have = f != 0
            total += np.where(have, f, 0)
            cnt += have
        avg = np.where(cnt > 0, total / np.maximum(cnt, 1), 0).astype(np.float32)
    data, repaired, notes = validate_reference(avg)
    return ReferenceResult(data, order, repaired, notes)
