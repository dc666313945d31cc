"""Plain NumPy/Python reference of every rejection and combination (one pixel at a time).

This is the specification the numba kernels in :mod:`skystack.integrate._kernels` must match; it
is slow on purpose (readable loops) and only used by tests and for tiny stacks.

Per pixel, with raw samples ``x_i`` (one per frame):

1. *No data*: NaN or exactly 0 is dropped; ``coverage`` counts what is left.
2. *Range rejection*: ``x_i <= range_lo_i`` is a low rejection, ``x_i >= range_hi_i`` a high one
   (thresholds already include the frame's pedestal).
3. The rest is mapped to rejection space ``r_i = ra_i·x_i + rb_i`` (rounded to float32) and sorted
   (stable: equal values in frame order); every method keeps
   a contiguous run ``s[lo..hi]`` of the sorted values (outliers are clipped from the ends) and
   always keeps at least one sample.
4. The kept samples are combined in output space ``o_i = oa_i·x_i + ob_i`` with weights ``w_i``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["KernelParams", "METHOD_CODES", "COMBINE_CODES", "esd_critical_values",
           "reject_sorted", "integrate_reference", "linfit_spread_table", "winsorized_sigma"]

#: Method and combine codes shared with the kernels (kept in sync by a test).
METHOD_CODES: dict[str, int] = {"none": 0, "minmax": 1, "percentile": 2, "sigma": 3,
                                "winsorized": 4, "averaged-sigma": 5, "linear-fit": 6, "esd": 7}
COMBINE_CODES: dict[str, int] = {"average": 0, "median": 1, "min": 2, "max": 3, "sum": 4}

WINSOR_CUT = 1.5          # winsorize at median ± 1.5 σ (PCL, Siril)
WINSOR_FACTOR = 1.134     # σ of a 1.5σ-winsorized normal sample is 1/1.134 of the true σ
WINSOR_TOL = 0.0005       # stop when σ changes by less than this fraction
WINSOR_JUMPS = 2          # winsorized σ: steps that may jump to their clamping's root
MAX_ITER = 50             # safety cap for every iterative loop


@dataclass(frozen=True)
class KernelParams:
    """Numbers a rejection needs, already resolved (no ``None`` and no ``auto``)."""

    method: str = "none"
    combine: str = "average"
    low: float = 0.0
    high: float = 0.0
    min_count: int = 1
    max_count: int = 1
    esd_outliers: float = 0.3
    esd_low_relaxation: float = 1.5
    poisson_gain: float = 0.0   # averaged-sigma: variance = gain · |median| in rejection units


def esd_critical_values(n_max: int, alpha: float) -> NDArray[np.float64]:
    """Rosner's critical values λ(k) for a test on a sample of size k (k = 0..n_max).

    λ(k) = (k−1)·t / sqrt((k−2+t²)·k) with t the Student-t quantile 1 − α/(2k) at k−2 degrees of
    freedom; entries for k < 3 are +inf (no test possible).
    """
    from scipy.stats import t as student_t

    lam = np.full(n_max + 1, np.inf)
    for k in range(3, n_max + 1):
        t = float(student_t.ppf(1.0 - alpha / (2.0 * k), k - 2))
        lam[k] = (k - 1) * t / math.sqrt((k - 2 + t * t) * k)
    return lam


def linfit_spread_table(n_max: int) -> NDArray[np.float64]:
    """Expected distance, in σ, between the sixth points of k sorted normal samples (k = 0..n_max).

    Linear-fit clipping turns the fitted slope into a σ estimate with it, so its thresholds are in
    the same units as sigma clipping's.
    """
    from statistics import NormalDist   # (not scipy: its import alone costs ~0.3 s per run)

    ndtri = NormalDist().inv_cdf
    out = np.zeros(n_max + 1)
    for k in range(2, n_max + 1):
        a, b = k // 6, k - 1 - k // 6
        if b > a:
            out[k] = float(ndtri((b + 0.5) / k) - ndtri((a + 0.5) / k))
    return out


def _median(s: NDArray[np.float64], lo: int, hi: int) -> float:
    k = hi - lo + 1
    mid = lo + k // 2
    return float(s[mid]) if k % 2 else 0.5 * (float(s[mid - 1]) + float(s[mid]))


def _clip_ends(s: NDArray[np.float64], lo: int, hi: int, a: float, b: float) -> tuple[int, int]:
    """Drop sorted samples below ``a`` or above ``b`` from the ends, keeping at least one."""
    new_lo, new_hi = lo, hi
    while new_lo <= new_hi and s[new_lo] < a:
        new_lo += 1
    while new_hi >= new_lo and s[new_hi] > b:
        new_hi -= 1
    if new_lo > new_hi:          # everything out: keep the middle sample
        new_lo = new_hi = lo + (hi - lo) // 2
    return new_lo, new_hi


def winsorized_sigma(run: NDArray[np.float64], m: float) -> float:
    """σ of a sorted run by winsorization at ``m ± 1.5σ`` with σ = 1.134·stddev(winsorized).

    PixInsight and Siril iterate σ ← F(σ) = 1.134·std(clamp(run, m ± 1.5σ)) from the plain
    standard deviation until it changes by less than 0.05 %. F is non-decreasing in σ and, while
    the same samples are clamped, F(σ)² is a quadratic in σ; so the limit of that iteration is
    solved exactly: for the current clamping, solve σ² = F(σ)², and accept the root if the same
    samples are clamped there. Otherwise the next σ is that root for the first two steps (it
    lands next to the answer, so most runs need two steps, not a slow geometric approach whose
    0.05 % stop can leave it 0.1 % short), then the plain step; the plain iteration with its
    tolerance is the fallback.
    """
    k = len(run)
    sigma = float(run.std(ddof=1))
    if not sigma > 0:
        return sigma
    lim = (k - 1) / WINSOR_FACTOR**2
    for it in range(MAX_ITER):
        a, b = m - WINSOR_CUT * sigma, m + WINSOR_CUT * sigma
        low, high = run < a, run > b
        mid = run[~low & ~high] - m
        nc, nd = int(low.sum() + high.sum()), int(high.sum() - low.sum())
        # clamped sums around m as polynomials in σ: S1 = α + βσ, S2 = γ + δσ + εσ²
        alpha, beta = float(mid.sum()), WINSOR_CUT * nd
        gamma, eps = float((mid * mid).sum()), WINSOR_CUT**2 * nc
        qa, qb, qc = eps - beta * beta / k - lim, -2 * alpha * beta / k, gamma - alpha * alpha / k
        root = 0.0
        if qa < 0 and qb * qb - 4 * qa * qc >= 0:
            root = (-qb - math.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa)
            if root > 0 and np.array_equal(run < m - WINSOR_CUT * root, low) and np.array_equal(
                    run > m + WINSOR_CUT * root, high):
                return root
        w = np.clip(run, a, b)
        new = WINSOR_FACTOR * float(w.std(ddof=1))
        if abs(new - sigma) <= WINSOR_TOL * sigma:
            return new
        sigma = root if root > 0 and it < WINSOR_JUMPS else new
    return sigma


def reject_sorted(s: NDArray[np.float64], p: KernelParams,
                  esd_lambda: NDArray[np.float64] | None = None,
                  spread: NDArray[np.float64] | None = None) -> tuple[int, int]:
    """Apply one rejection to ascending samples ``s``; return the kept run ``(lo, hi)``.

    ``esd_lambda`` (from :func:`esd_critical_values`) is needed by ``esd`` and ``spread`` (from
    :func:`linfit_spread_table`) by ``linear-fit``.
    """
    n = len(s)
    lo, hi = 0, n - 1
    if n == 0 or p.method == "none":
        return lo, hi
    if p.method == "minmax":
        if n > p.min_count + p.max_count:
            lo, hi = p.min_count, n - 1 - p.max_count
        return lo, hi
    if p.method == "percentile":
        if n < 2:
            return lo, hi
        m = _median(s, lo, hi)
        return _clip_ends(s, lo, hi, m - p.low * abs(m), m + p.high * abs(m))
    if p.method in ("sigma", "winsorized", "averaged-sigma"):
        for _ in range(MAX_ITER):
            if hi - lo + 1 < 3:
                break
            m = _median(s, lo, hi)
            run = s[lo:hi + 1]
            if p.method == "sigma":
                sigma = float(run.std(ddof=1))
            elif p.method == "winsorized":
                sigma = winsorized_sigma(run, m)
            else:
                sigma = math.sqrt(p.poisson_gain * abs(m))
            if not sigma > 0:
                break
            new_lo, new_hi = _clip_ends(s, lo, hi, m - p.low * sigma, m + p.high * sigma)
            if (new_lo, new_hi) == (lo, hi):
                break
            lo, hi = new_lo, new_hi
        return lo, hi
    if p.method == "linear-fit":
        if spread is None:
            msg = "linear-fit needs its spread table (linfit_spread_table)"
            raise ValueError(msg)
        for _ in range(MAX_ITER):
            k = hi - lo + 1
            if k < 5:
                break
            # Resistant line: through the median, slope from the centres of the outer thirds
            # (sixth points), so the outliers under test do not pull the fit (least squares does).
            a, b = lo + k // 6, hi - k // 6
            slope = float(s[b] - s[a]) / (b - a)
            icpt = _median(s, lo, hi) - slope * 0.5 * (lo + hi)
            # σ from the slope: the sixth points of k normal samples are spread[k] σ apart
            sigma = slope * (b - a) / spread[k] if spread is not None and spread[k] > 0 else 0.0
            if not sigma > 0:
                break
            new_lo, new_hi = lo, hi
            while new_lo < new_hi and s[new_lo] - (icpt + slope * new_lo) < -p.low * sigma:
                new_lo += 1
            while new_hi > new_lo and s[new_hi] - (icpt + slope * new_hi) > p.high * sigma:
                new_hi -= 1
            if (new_lo, new_hi) == (lo, hi):
                break
            lo, hi = new_lo, new_hi
        return lo, hi
    if p.method == "esd":
        if esd_lambda is None:
            msg = "esd needs its critical values (esd_critical_values)"
            raise ValueError(msg)
        max_out = int(p.esd_outliers * n)
        sides: list[int] = []
        last = 0
        a, b = lo, hi
        for i in range(1, max_out + 1):
            k = b - a + 1
            if k < 3:
                break
            run = s[a:b + 1]
            mean = float(run.mean())
            sd = float(run.std(ddof=1))
            if not sd > 0:
                break
            d_low = (mean - s[a]) / p.esd_low_relaxation
            d_high = s[b] - mean
            if d_high >= d_low:
                stat, side = d_high / sd, 1
                b -= 1
            else:
                stat, side = d_low / sd, 0
                a += 1
            sides.append(side)
            if stat > esd_lambda[k]:
                last = i
        n_low = sum(1 for side in sides[:last] if side == 0)
        return lo + n_low, hi - (last - n_low)
    msg = f"unknown rejection {p.method!r}"
    raise ValueError(msg)


def _combine(o: NDArray[np.float64], w: NDArray[np.float64], combine: str, coverage: int) -> float:
    if combine == "median":
        return float(np.median(o))
    if combine == "min":
        return float(o.min())
    if combine == "max":
        return float(o.max())
    sw = float(w.sum())
    mean = float(np.sum(w * o) / sw) if sw > 0 else float(o.mean())
    return mean * coverage if combine == "sum" else mean


def integrate_reference(
    stack: NDArray[np.floating],
    *,
    params: KernelParams,
    rej_scale: NDArray[np.floating] | None = None,
    rej_offset: NDArray[np.floating] | None = None,
    out_scale: NDArray[np.floating] | None = None,
    out_offset: NDArray[np.floating] | None = None,
    weights: NDArray[np.floating] | None = None,
    range_lo: NDArray[np.floating] | None = None,
    range_hi: NDArray[np.floating] | None = None,
    exclude: NDArray[np.uint8] | None = None,
    esd_lambda: NDArray[np.float64] | None = None,
    spread: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.uint16], NDArray[np.uint16], NDArray[np.uint16],
           NDArray[np.uint8]]:
    """Integrate a stack ``(N, P)`` pixel by pixel.

    ``exclude`` (N, P) marks samples rejected beforehand (1 = low, 2 = high; e.g. by large-scale
    rejection): they count as rejections and are removed before the statistical rejection.

    Returns
    -------
    image, low_rejected, high_rejected, coverage, mask
        ``mask`` (N, P) is 0 for kept or no-data samples, 1 for low and 2 for high rejections.
    """
    n, npix = stack.shape
    one = np.ones(n)
    zero = np.zeros(n)
    ra = one if rej_scale is None else np.asarray(rej_scale, np.float64)
    rb = zero if rej_offset is None else np.asarray(rej_offset, np.float64)
    oa = one if out_scale is None else np.asarray(out_scale, np.float64)
    ob = zero if out_offset is None else np.asarray(out_offset, np.float64)
    w = one if weights is None else np.asarray(weights, np.float64)
    rl = np.full(n, -np.inf) if range_lo is None else np.asarray(range_lo, np.float64)
    rh = np.full(n, np.inf) if range_hi is None else np.asarray(range_hi, np.float64)
    image = np.zeros(npix, np.float32)
    nlow = np.zeros(npix, np.uint16)
    nhigh = np.zeros(npix, np.uint16)
    cov = np.zeros(npix, np.uint16)
    mask = np.zeros((n, npix), np.uint8)
    for p in range(npix):
        x = stack[:, p].astype(np.float64)
        valid = (x == x) & (x != 0)
        cov[p] = int(valid.sum())
        low = valid & (x <= rl)
        high = valid & ~low & (x >= rh)
        if exclude is not None:
            low |= valid & ~high & (exclude[:, p] == 1)
            high |= valid & ~low & (exclude[:, p] == 2)
        cand = np.flatnonzero(valid & ~low & ~high)
        mask[low, p] = 1
        mask[high, p] = 2
        if len(cand) == 0:
            nlow[p], nhigh[p] = int(low.sum()), int(high.sum())
            continue
        # rejection-space values are float32 (as the kernel sorts them); statistics are float64
        r = (ra[cand] * x[cand] + rb[cand]).astype(np.float32)
        order = np.argsort(r, kind="stable")
        s = r[order].astype(np.float64)
        lo, hi = reject_sorted(s, params, esd_lambda, spread)
        idx = cand[order]
        mask[idx[:lo], p] = 1
        mask[idx[hi + 1:], p] = 2
        kept = idx[lo:hi + 1]
        nlow[p] = int(low.sum()) + lo
        nhigh[p] = int(high.sum()) + len(cand) - 1 - hi
        o = oa[kept] * x[kept] + ob[kept]
        image[p] = _combine(o, w[kept], params.combine, int(cov[p]))
    return image, nlow, nhigh, cov, mask
