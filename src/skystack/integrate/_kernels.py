"""numba kernels of the stack engine (the hot loop). Keep this module stable: any edit here
invalidates numba's on-disk cache of every function in the file (≈ 30 s to recompile).

Semantics are defined by :mod:`skystack.integrate._reference`; ``tests/integrate`` compares the
two. Design: each parallel task takes SUPER blocks of CHUNK pixels, decoded together (long
sequential reads per frame); a block is laid out (N, CHUNK) so that every step runs vectorised
across its pixels:

- classify: float32 keys (the rejection-normalized values; +inf for no data and range-rejected);
- sort the keys of every pixel with a comparator network (Batcher's odd-even merge sort; values
  only, branch-free min/max);
- reject: sigma, winsorized sigma and linear fit run their per-pixel iterations in lockstep over
  the block — run sums from prefix sums of the sorted columns, winsorized clamp counts from
  branch-free counting passes, clips by short walks in from the run's ends (most pixels clip
  nothing), per-pixel arithmetic in select form — and the last few pixels
  still iterating finish one by one with the scalar version of the same iteration; the other
  methods run per pixel on the sorted column;
- flag: which frame a rejected rank came from is recovered from the two thresholds (ties at a
  threshold by frame order, as a stable sort would order them);
- combine: weighted average (or median/min/max) of the kept samples in output space.

Keys are float32, statistics float64. ``fastmath`` excludes ``nnan`` because the no-data test
relies on ``x != x``; ``error_model="numpy"`` (no zero-division checks: every division that
matters is guarded, lanes that are not iterating compute values nobody reads).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numba import carray, njit, prange, types
from numba.extending import intrinsic

__all__ = ["integrate_kernel", "sorting_network", "CHUNK"]

_FM = {"contract", "reassoc", "arcp"}
CHUNK = 256             # pixels per vector block
SUPER = 4               # blocks per parallel task (decoded together)

# Method / combine codes — must equal _reference.METHOD_CODES / COMBINE_CODES (tested).
NONE, MINMAX, PERCENTILE, SIGMA, WINSORIZED, AVSIGMA, LINFIT, ESD = 0, 1, 2, 3, 4, 5, 6, 7
AVERAGE, MEDIAN, MIN, MAX, SUM = 0, 1, 2, 3, 4

WINSOR_CUT = 1.5
WINSOR_FACTOR = 1.134
WINSOR_TOL = 0.0005
WINSOR_JUMPS = 2        # winsorized σ steps that may jump to their clamping's root
MAX_ITER = 50


@njit(cache=True, error_model="numpy", fastmath=_FM, inline="always")
def _median(s, lo, hi):  # type: ignore[no-untyped-def]
    k = hi - lo + 1
    mid = lo + k // 2
    if k % 2:
        return s[mid]
    return 0.5 * (s[mid - 1] + s[mid])


@njit(cache=True, error_model="numpy", fastmath=_FM, inline="always")
def _clip_ends(s, lo, hi, a, b):  # type: ignore[no-untyped-def]
    nlo = lo
    nhi = hi
    while nlo <= nhi and s[nlo] < a:
        nlo += 1
    while nhi >= nlo and s[nhi] > b:
        nhi -= 1
    if nlo > nhi:
        nlo = lo + (hi - lo) // 2
        nhi = nlo
    return nlo, nhi


@njit(cache=True, error_model="numpy", fastmath=_FM, inline="always")
def _still_active(act, lo, hi, k, min_run):  # type: ignore[no-untyped-def]
    """Drop the pixels whose kept run is shorter than ``min_run``; return how many are left."""
    na = 0
    for q in range(k):
        a_ = act[q] & (hi[q] - lo[q] + 1 >= min_run)
        act[q] = a_
        na += a_
    return na


@njit(cache=True, error_model="numpy", fastmath=_FM, inline="always")
def _column(s, q, mq, col):  # type: ignore[no-untyped-def]
    """Copy the first ``mq`` sorted samples of pixel ``q`` into ``col`` (for the scalar code)."""
    for j in range(mq):
        col[j] = s[j, q]
    return col


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _linfit_clip(s, lo, hi, low, high, spread):  # type: ignore[no-untyped-def]
    """Linear fit clipping of the sorted run s[lo..hi] (scalar; see ``_reference``)."""
    for _ in range(MAX_ITER):
        k = hi - lo + 1
        if k < 5:
            break
        # resistant line: through the median, slope from the sixth points (see _reference)
        ia = lo + k // 6
        ib = hi - k // 6
        slope = (s[ib] - s[ia]) / (ib - ia)
        icpt = _median(s, lo, hi) - slope * (0.5 * (lo + hi))
        sigma = 0.0
        if spread[k] > 0:
            sigma = slope * (ib - ia) / spread[k]
        if not sigma > 0:
            break
        nlo = lo
        nhi = hi
        while nlo < nhi and s[nlo] - (icpt + slope * nlo) < -low * sigma:
            nlo += 1
        while nhi > nlo and s[nhi] - (icpt + slope * nhi) > high * sigma:
            nhi -= 1
        if nlo == lo and nhi == hi:
            break
        lo = nlo
        hi = nhi
    return lo, hi


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _linfit_block(s, m, k, low, high, spread, lo, hi, sl, ic, ta, tb, g, cl, last, act, alive,  # type: ignore[no-untyped-def]
                  col):
    """Linear fit clipping of every column of the sorted block ``s`` in lockstep.

    The iteration of :func:`_linfit_clip`, with its two walks from the run's ends replaced by one
    branch-free pass per round: the low walk's length is the count of leading residuals below
    the low threshold, the high walk stops at the last residual within the high one. ``sl``
    to ``col``: scratch lanes of the task (see :func:`integrate_kernel`), ``g`` at least (5, k).
    """
    n = s.shape[0]
    for q in range(k):
        lo[q] = 0
        hi[q] = m[q] - 1
        act[q] = m[q] >= 5
    for _ in range(MAX_ITER):
        na = _still_active(act, lo, hi, k, 5)
        if na == 0:
            break
        if na <= SCALAR_TAIL:
            for q in range(k):
                if act[q]:
                    lo[q], hi[q] = _linfit_clip(_column(s, q, m[q], col), lo[q], hi[q], low, high,
                                                spread)
            break
        for q in range(k):
            # gathers (scalar loads) into lane arrays; the arithmetic below vectorises
            l0 = lo[q]
            h0 = hi[q]
            kk = h0 - l0 + 1
            g[0, q] = s[h0 - kk // 6, q]
            g[1, q] = s[l0 + kk // 6, q]
            g[2, q] = s[l0 + (kk - 1) // 2, q]
            g[3, q] = s[l0 + kk // 2, q]
            g[4, q] = spread[max(kk, 0)]
        for q in range(k):
            l0 = lo[q]
            h0 = hi[q]
            kk = h0 - l0 + 1
            span = np.float64((h0 - kk // 6) - (l0 + kk // 6))
            slope = (g[0, q] - g[1, q]) / span
            md = 0.5 * (g[2, q] + g[3, q])
            sl[q] = slope
            ic[q] = md - slope * (0.5 * (l0 + h0))
            sp = g[4, q]
            sigma = slope * span / sp if sp > 0 else 0.0
            act[q] = act[q] & (sigma > 0)
            ta[q] = -low * sigma
            tb[q] = high * sigma
            alive[q] = True
            cl[q] = 0
            last[q] = -1
        for j in range(n):
            sr = s[j]
            for q in range(k):
                inr = act[q] & (j >= lo[q]) & (j <= hi[q])
                r = np.float64(sr[q]) - (ic[q] + sl[q] * j)
                a_ = alive[q] & (~(inr & (j < hi[q])) | (r < ta[q]))
                alive[q] = a_
                cl[q] += inr & (j < hi[q]) & a_
                last[q] = j if inr & (r <= tb[q]) else last[q]
        for q in range(k):
            a_ = act[q]
            l0 = lo[q]
            h0 = hi[q]
            nlo = l0 + cl[q]
            nhi = max(last[q], nlo)
            act[q] = a_ & ~((nlo == l0) & (nhi == h0))
            lo[q] = nlo if a_ else l0
            hi[q] = nhi if a_ else h0


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _reject(s, n, sides, method, low, high, min_count, max_count, esd_frac, esd_relax,  # type: ignore[no-untyped-def]
            gain, esd_lambda, spread):
    lo = 0
    hi = n - 1
    if n == 0 or method == NONE:
        return lo, hi
    if method == MINMAX:
        if n > min_count + max_count:
            return min_count, n - 1 - max_count
        return lo, hi
    if method == PERCENTILE:
        if n < 2:
            return lo, hi
        m = _median(s, lo, hi)
        return _clip_ends(s, lo, hi, m - low * abs(m), m + high * abs(m))
    if method == AVSIGMA:          # (sigma and winsorized: _sigma_clip)
        for _ in range(MAX_ITER):
            if hi - lo + 1 < 3:
                break
            m = _median(s, lo, hi)
            sigma = math.sqrt(gain * abs(m))
            if not sigma > 0:
                break
            nlo, nhi = _clip_ends(s, lo, hi, m - low * sigma, m + high * sigma)
            if nlo == lo and nhi == hi:
                break
            lo = nlo
            hi = nhi
        return lo, hi
    if method == LINFIT:
        return _linfit_clip(s, lo, hi, low, high, spread)
    if method == ESD:
        max_out = int(esd_frac * n)
        # running sums around a shift (the median) to avoid cancellation
        c = _median(s, lo, hi)
        s1 = 0.0
        s2 = 0.0
        for j in range(lo, hi + 1):
            d = s[j] - c
            s1 += d
            s2 += d * d
        a = lo
        b = hi
        last = 0
        for i in range(1, max_out + 1):
            k = b - a + 1
            if k < 3:
                break
            mean = c + s1 / k
            var = (s2 - s1 * s1 / k) / (k - 1)
            if not var > 0:
                break
            sd = math.sqrt(var)
            d_low = (mean - s[a]) / esd_relax
            d_high = s[b] - mean
            if d_high >= d_low:
                stat = d_high / sd
                d = s[b] - c
                b -= 1
                sides[i - 1] = 1
            else:
                stat = d_low / sd
                d = s[a] - c
                a += 1
                sides[i - 1] = 0
            s1 -= d
            s2 -= d * d
            if stat > esd_lambda[k]:
                last = i
        nl = 0
        for i in range(last):
            if sides[i] == 0:
                nl += 1
        return lo + nl, hi - (last - nl)
    return lo, hi


@lru_cache(maxsize=64)
def sorting_network(n: int) -> np.ndarray:
    """Comparators (K, 2) of a sorting network for ``n`` wires (Batcher's odd-even merge sort).

    Built on the next power of two and pruned to wires < n: padding wires hold +inf, which a
    comparator always sends to the higher wire, so they never move and their comparators are
    no-ops.
    """
    size = 1
    while size < n:
        size *= 2
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p) and i + j + k < n:
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    out = np.array(pairs, np.int64).reshape(-1, 2)
    out.flags.writeable = False
    return out


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _sort_values(s, net, k):  # type: ignore[no-untyped-def]
    """Sort the columns of ``s`` (N, CHUNK) in place, vectorised over pixels (branch-free).

    Values only: which frame a rejected rank belongs to is recovered afterwards from the
    thresholds (see :func:`_rank_flags`), which is cheaper than carrying a tag through the network.
    """
    # 2-D indexing, not row views: a view per comparator costs two atomic reference counts
    for e in range(net.shape[0]):
        a = net[e, 0]
        b = net[e, 1]
        for q in range(k):
            x = s[a, q]
            y = s[b, q]
            s[a, q] = min(x, y)
            s[b, q] = max(x, y)


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _winsor_sigma(s, c, s1, s2, lo, hi, m, sigma, it0):  # type: ignore[no-untyped-def]
    """Winsorized σ of the sorted run s[lo..hi] around ``m``, starting from ``sigma``.

    The fixed point of σ = F·std(clamp(run, m ± Kσ)), solved exactly (``_reference.
    winsorized_sigma`` states the rule; ``it0`` is the number of steps already taken).
    ``s1``/``s2`` are the run's sums of (s − c) and (s − c)²: the clamped samples sit at the ends
    of the sorted run, so a step walks only those few and takes the middle's sums by difference.
    """
    u = m - c
    for it in range(it0, MAX_ITER):
        a = m - WINSOR_CUT * sigma
        b = m + WINSOR_CUT * sigma
        e1 = 0.0
        e2 = 0.0
        ja = lo
        while ja <= hi and s[ja] < a:
            d = s[ja] - c
            e1 += d
            e2 += d * d
            ja += 1
        jb = hi
        while jb >= ja and s[jb] > b:
            d = s[jb] - c
            e1 += d
            e2 += d * d
            jb -= 1
        sigma, final = _winsor_step(s[max(ja - 1, 0)], s[min(ja, hi)], s[max(jb, 0)],
                                    s[min(jb + 1, hi)], ja, jb, lo, hi, u, m, sigma, s1 - e1,
                                    s2 - e2, it)
        if final:
            break
    return sigma


@njit(cache=True, error_model="numpy", fastmath=_FM, inline="always")
def _winsor_step(below, first, last, above, ja, jb, lo, hi, u, m, sigma, mid1, mid2, it):  # type: ignore[no-untyped-def]
    """One step of the winsorized σ for the clamping s[lo..ja-1] low, s[jb+1..hi] high.

    ``below``, ``first``, ``last``, ``above``: s[ja − 1], s[ja], s[jb], s[jb + 1] (read only where
    they exist); ``mid1``/``mid2``: sums of (s − c), (s − c)² over the unclamped middle s[ja..jb];
    ``u`` = m − c. Returns (σ, final): the root of this clamping when the same samples are clamped
    there (the exact answer), else the next σ — that root for the first WINSOR_JUMPS steps (it
    lands next to the answer), then the plain iteration's step, final once that moves by
    < WINSOR_TOL. Written with selects, not branches, so that a loop over pixels vectorises.
    """
    fk = np.float64(hi - lo + 1)
    lim = (fk - 1.0) / (WINSOR_FACTOR * WINSOR_FACTOR)
    nc = np.float64((ja - lo) + (hi - jb))
    nd = np.float64((hi - jb) - (ja - lo))
    # clamped sums as polynomials in σ: S1 = α + βσ, S2 = γ + δσ + εσ²
    alpha = nc * u + mid1
    beta = WINSOR_CUT * nd
    gamma = nc * u * u + mid2
    delta = 2.0 * u * WINSOR_CUT * nd
    eps = WINSOR_CUT * WINSOR_CUT * nc
    qa = eps - beta * beta / fk - lim
    qb = delta - 2.0 * alpha * beta / fk
    qc = gamma - alpha * alpha / fk
    disc = qb * qb - 4.0 * qa * qc
    has = (qa < 0) & (disc >= 0)
    root = (-qb - math.sqrt(max(disc, 0.0))) / (2.0 * min(qa, -1e-300))
    root = root if has else 0.0
    ra = m - WINSOR_CUT * root
    rb = m + WINSOR_CUT * root
    ok = (has & (root > 0) & ((ja == lo) | (below < ra)) & ((ja > hi) | (first >= ra))
          & ((jb == hi) | (above > rb)) & ((jb < lo) | (last <= rb)))
    var = (gamma + (delta + eps * sigma) * sigma - (alpha + beta * sigma) ** 2 / fk) / (fk - 1.0)
    new = WINSOR_FACTOR * math.sqrt(max(var, 0.0))
    done = abs(new - sigma) <= WINSOR_TOL * sigma
    nxt = root if (root > 0) & (it < WINSOR_JUMPS) else new
    return (root if ok else (new if done else nxt)), ok | done


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _sigma_clip(s, lo, hi, c, s1, s2, winsorized, low, high):  # type: ignore[no-untyped-def]
    """Sigma or winsorized sigma clipping of the sorted run ``s[lo..hi]`` (scalar).

    Continues from a state: ``c`` the first median, ``s1``/``s2`` the run's sums of (s − c) and
    (s − c)² (``_reference.reject_sorted`` from the start is lo = 0, hi = n − 1).
    """
    for _ in range(MAX_ITER):
        k = hi - lo + 1
        if k < 3:
            break
        m = _median(s, lo, hi)
        var = (s2 - s1 * s1 / k) / (k - 1)
        sigma = math.sqrt(var) if var > 0 else 0.0
        if winsorized and sigma > 0:
            sigma = _winsor_sigma(s, c, s1, s2, lo, hi, m, sigma, 0)
        if not sigma > 0:
            break
        nlo, nhi = _clip_ends(s, lo, hi, m - low * sigma, m + high * sigma)
        if nlo == lo and nhi == hi:
            break
        # the run's sums lose the clipped samples
        for j in range(lo, nlo):
            d = s[j] - c
            s1 -= d
            s2 -= d * d
        for j in range(nhi + 1, hi + 1):
            d = s[j] - c
            s1 -= d
            s2 -= d * d
        lo = nlo
        hi = nhi
    return lo, hi


#: A block's sigma clipping runs vectorised across its pixels while more than this many of them
#: are still iterating; the last few finish one by one (a pass costs the same for 1 or 256).
SCALAR_TAIL = 48


@njit(cache=True, error_model="numpy", fastmath=_FM, inline="always")
def _col_median(s, q, lo, hi):  # type: ignore[no-untyped-def]
    k = hi - lo + 1
    mid = lo + k // 2
    if k % 2:
        return np.float64(s[mid, q])
    return 0.5 * (np.float64(s[mid - 1, q]) + np.float64(s[mid, q]))


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _count_outside(s, lo, hi, act, a, b, k, cl, ch, wf, wi):  # type: ignore[no-untyped-def]
    """cl[q] / ch[q] = samples of the run s[lo[q]..hi[q], q] below a[q] / above b[q] (active q).

    Compares in float32 against the float32 thresholds that give the same answer for float32
    samples (the least float32 >= a, the greatest <= b): twice the lanes of float64. ``wf`` (2, k)
    float32 and ``wi`` (4, k) int32 are scratch.
    """
    a32 = wf[0]
    b32 = wf[1]
    ai = a32.view(np.int32)
    bi = b32.view(np.int32)
    l32 = wi[0]
    h32 = wi[1]
    c32 = wi[2]
    d32 = wi[3]
    for q in range(k):
        c32[q] = 0
        d32[q] = 0
        a32[q] = np.float32(a[q])
        b32[q] = np.float32(b[q])
        l32[q] = lo[q] if act[q] else s.shape[0]      # an empty run for inactive pixels
        h32[q] = hi[q]
    for q in range(k):
        # one ulp up / down where rounding went the wrong way (bit steps: no libm call)
        if np.float64(a32[q]) < a[q]:
            ai[q] += np.int32(1) if ai[q] >= 0 else np.int32(-1)
        if np.float64(b32[q]) > b[q]:
            bi[q] += np.int32(-1) if bi[q] > 0 else np.int32(1)
    for j in range(s.shape[0]):
        sr = s[j]
        j32 = np.int32(j)
        for q in range(k):
            x = sr[q]
            inr = (j32 >= l32[q]) & (j32 <= h32[q])
            c32[q] += inr & (x < a32[q])
            d32[q] += inr & (x > b32[q])
    for q in range(k):
        cl[q] = c32[q]
        ch[q] = d32[q]


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _sigma_block(s, m, k, winsorized, low, high, lo, hi):  # type: ignore[no-untyped-def]
    """Sigma / winsorized sigma clipping of every column of the sorted block ``s`` (N, CHUNK).

    The same iteration as :func:`_sigma_clip`, run in lockstep over the block's pixels: run sums
    come from prefix sums of the sorted columns, the winsorized clamp counts from branch-free
    counting passes (every pixel clamps a few samples: walking them mispredicts), the clip counts
    from short walks in from the run's ends (most pixels clip nothing). Pixels still iterating
    when few are left finish with :func:`_sigma_clip`. Fills ``lo``/``hi``.
    """
    n = s.shape[0]
    c = np.zeros(k, np.float64)
    act = np.zeros(k, np.bool_)
    for q in range(k):
        mq = m[q]
        lo[q] = 0
        hi[q] = mq - 1
        act[q] = mq >= 3
        if mq > 0:
            c[q] = _col_median(s, q, 0, mq - 1)
    # prefix sums of (s − c) and (s − c)² down each sorted column (+inf padding beyond m[q]
    # makes the tail inf/nan, never read: hi < m)
    p1 = np.empty((n + 1, k), np.float64)
    p2 = np.empty((n + 1, k), np.float64)
    for q in range(k):
        p1[0, q] = 0.0
        p2[0, q] = 0.0
    for j in range(n):
        sr = s[j]
        a1 = p1[j]
        a2 = p2[j]
        b1 = p1[j + 1]
        b2 = p2[j + 1]
        for q in range(k):
            d = np.float64(sr[q]) - c[q]
            b1[q] = a1[q] + d
            b2[q] = a2[q] + d * d
    med = np.zeros(k, np.float64)
    sig = np.zeros(k, np.float64)
    ta = np.zeros(k, np.float64)
    tb = np.zeros(k, np.float64)
    cl = np.zeros(k, np.int64)
    ch = np.zeros(k, np.int64)
    wact = np.zeros(k, np.bool_)
    col = np.empty(n, np.float64)
    wf = np.empty((2, k), np.float32)
    wi = np.empty((4, k), np.int32)
    g = np.empty((4, k), np.float64)
    for _ in range(MAX_ITER):
        na = _still_active(act, lo, hi, k, 3)
        if na == 0:
            break
        if na <= SCALAR_TAIL:
            for q in range(k):
                if act[q]:
                    _column(s, q, m[q], col)
                    l0 = lo[q]
                    h0 = hi[q]
                    lo[q], hi[q] = _sigma_clip(col, l0, h0, c[q], p1[h0 + 1, q] - p1[l0, q],
                                               p2[h0 + 1, q] - p2[l0, q], winsorized, low, high)
            break
        # branch-free per-pixel steps (select, not branch: they vectorise; inactive pixels
        # compute garbage that is never stored where it matters)
        for q in range(k):
            # gathers (scalar loads) into lane arrays; the arithmetic below vectorises
            l0 = lo[q]
            h0 = hi[q]
            kk = h0 - l0 + 1
            g[0, q] = s[l0 + (kk - 1) // 2, q]
            g[1, q] = s[l0 + kk // 2, q]
            g[2, q] = p1[h0 + 1, q] - p1[l0, q]
            g[3, q] = p2[h0 + 1, q] - p2[l0, q]
        for q in range(k):
            kk = np.float64(hi[q] - lo[q] + 1)
            # the median of the run; for odd kk both indices are the middle (x + x exact)
            md = 0.5 * (g[0, q] + g[1, q])
            t1 = g[2, q]
            var = (g[3, q] - t1 * t1 / kk) / (kk - 1.0)
            sg = math.sqrt(max(var, 0.0))
            a_ = act[q]
            med[q] = md if a_ else med[q]
            sig[q] = sg if a_ else sig[q]
            wact[q] = winsorized & a_ & (sg > 0)
        if winsorized:
            _winsor_block(s, p1, p2, c, lo, hi, med, sig, wact, m, k, col, ta, tb, cl, ch, wf, wi)
        # the clip (_clip_ends): most pixels clip nothing, so walking in from the run's ends (one
        # predictable test each) is cheaper than a counting pass over the block
        for q in range(k):
            if not (act[q] and sig[q] > 0):
                act[q] = False
                continue
            l0 = lo[q]
            h0 = hi[q]
            nlo, nhi = _clip_ends(s[:, q], l0, h0, med[q] - low * sig[q], med[q] + high * sig[q])
            act[q] = not (nlo == l0 and nhi == h0)
            lo[q] = nlo
            hi[q] = nhi


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _winsor_block(s, p1, p2, c, lo, hi, med, sig, wact, m, k, col, ta, tb, cl, ch, wf, wi):  # type: ignore[no-untyped-def]
    """Winsorized σ of every column with ``wact`` set (in ``sig``), in lockstep as _sigma_block."""
    g = np.empty((6, k), np.float64)    # per-pixel values gathered for the step
    for it in range(MAX_ITER):
        na = 0
        for q in range(k):
            na += wact[q]
        if na == 0:
            return
        if na <= SCALAR_TAIL:
            for q in range(k):
                if wact[q]:
                    _column(s, q, m[q], col)
                    l0 = lo[q]
                    h0 = hi[q]
                    sig[q] = _winsor_sigma(col, c[q], p1[h0 + 1, q] - p1[l0, q],
                                           p2[h0 + 1, q] - p2[l0, q], l0, h0, med[q], sig[q], it)
                    wact[q] = False
            return
        for q in range(k):
            ta[q] = med[q] - WINSOR_CUT * sig[q]
            tb[q] = med[q] + WINSOR_CUT * sig[q]
        _count_outside(s, lo, hi, wact, ta, tb, k, cl, ch, wf, wi)
        for q in range(k):
            # gathers (scalar loads) into lane arrays, then pure lane arithmetic (vectorises)
            l0 = lo[q]
            h0 = hi[q]
            ja = l0 + cl[q]
            jb = h0 - ch[q]
            g[0, q] = s[max(ja - 1, 0), q]
            g[1, q] = s[min(ja, h0), q]
            g[2, q] = s[max(jb, 0), q]
            g[3, q] = s[min(jb + 1, h0), q]
            g[4, q] = p1[jb + 1, q] - p1[ja, q]
            g[5, q] = p2[jb + 1, q] - p2[ja, q]
        for q in range(k):
            l0 = lo[q]
            h0 = hi[q]
            res, final = _winsor_step(g[0, q], g[1, q], g[2, q], g[3, q], l0 + cl[q], h0 - ch[q],
                                      l0, h0, med[q] - c[q], med[q], sig[q], g[4, q], g[5, q], it)
            w_ = wact[q]
            sig[q] = res if w_ else sig[q]
            wact[q] = w_ & ~final


#: _rank_flags flags pixel by pixel when at most 1 in this many of a block's pixels reject (at
#: 20 frames the two paths cost about the same with 18 of 256 rejecting).
RANK_SPARSE = 16


@njit(cache=True, error_model="numpy", fastmath=_FM, inline="always")
def _rank_flags_col(key, fl, q, vlo, vhi, lo, hi, m, fc):  # type: ignore[no-untyped-def]
    """:func:`_rank_flags` for pixel ``q`` alone: kept run s[lo..hi] = [vlo, vhi] of ``m``."""
    n = key.shape[0]
    below = 0
    above = 0
    at_hi = 0
    for i in range(n):
        if fl[i, q] == 0:
            x = key[i, q]
            below += x < vlo
            above += x > vhi
            at_hi += x == vhi
    ties_lo = lo - below                    # the first this many tied at vlo go low
    hi_from = at_hi - (m - 1 - above - hi)  # ties at vhi from this rank on go high
    seen_lo = 0
    seen_hi = 0
    for i in range(n):
        if fl[i, q] != 0:
            continue
        x = key[i, q]
        eql = x == vlo
        eqh = x == vhi
        if x < vlo or (eql and seen_lo < ties_lo):
            fl[i, q] = 1
            fc[i, 1] += 1
        elif x > vhi or (eqh and seen_hi >= hi_from):
            fl[i, q] = 2
            fc[i, 2] += 1
        seen_lo += eql
        seen_hi += eqh


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _rank_flags(key, s, fl, m, lo, hi, k, fc, wf, wi):  # type: ignore[no-untyped-def]
    """Flag the samples outside each pixel's kept run s[lo..hi] (1 low, 2 high) in ``fl``.

    ``key`` holds the unsorted candidate keys (+inf for non-candidates, fl != 0). A candidate below
    s[lo] / above s[hi] is rejected; of those equal to a threshold, the stable order (frame
    index) decides, as the reference's stable sort does: the first (lo − #below) tied at s[lo]
    go low, the last (m − 1 − #above − hi) tied at s[hi] go high. Adds per-frame counts to ``fc``.
    ``wf`` (2, CHUNK) float32 and ``wi`` (4, CHUNK) int32 are scratch.
    """
    n = key.shape[0]
    vlo = wf[0]
    vhi = wf[1]
    # most pixels reject nothing: when few do, flag theirs one pixel at a time (a pass over the
    # whole block costs the same for 1 or 256 of them)
    todo = wi[0]
    nrej = 0
    for q in range(k):
        if m[q] > 0 and (lo[q] > 0 or hi[q] < m[q] - 1):
            todo[nrej] = q
            nrej += 1
    if nrej * RANK_SPARSE <= k:
        for t in range(nrej):
            q = todo[t]
            _rank_flags_col(key, fl, q, s[lo[q], q], s[hi[q], q], lo[q], hi[q], m[q], fc)
        return
    nb = wi[0]
    na = wi[1]
    th = wi[2]
    seen_hi = wi[3]
    ties = False
    for q in range(k):
        mq = m[q]
        ok = mq > 0
        vlo[q] = s[lo[q], q] if ok else np.float32(np.inf)
        vhi[q] = s[hi[q], q] if ok else np.float32(np.inf)
        if ok and ((lo[q] > 0 and s[lo[q] - 1, q] == vlo[q])
                   or (hi[q] < mq - 1 and s[hi[q] + 1, q] == vhi[q])):
            ties = True
    if not ties:
        # no threshold splits a run of equal values: the thresholds alone decide (one pass)
        for i in range(n):
            cl = np.int32(0)
            ch = np.int32(0)
            for q in range(k):
                x = key[i, q]
                f = fl[i, q]
                cand = f == 0
                low = cand & (x < vlo[q])
                high = cand & (x > vhi[q])
                fl[i, q] = np.uint8(1) if low else (np.uint8(2) if high else f)
                cl += np.int32(low)
                ch += np.int32(high)
            fc[i, 1] += cl
            fc[i, 2] += ch
        return
    for q in range(k):
        nb[q] = 0
        na[q] = 0
        th[q] = 0
        seen_hi[q] = 0
    for i in range(n):
        for q in range(k):
            cand = fl[i, q] == 0
            x = key[i, q]
            nb[q] += cand & (x < vlo[q])
            na[q] += cand & (x > vhi[q])
            th[q] += cand & (x == vhi[q])
    for q in range(k):
        nb[q] = lo[q] - nb[q]                    # ties at s[lo] to reject low
        th[q] = th[q] - (m[q] - 1 - na[q] - hi[q])   # tie rank from which ties at s[hi] go high
        na[q] = 0                                # ties seen so far at s[lo]
    for i in range(n):
        cl = 0
        ch = 0
        for q in range(k):
            f = fl[i, q]
            cand = f == 0
            x = key[i, q]
            eql = cand & (x == vlo[q])
            eqh = cand & (x == vhi[q])
            low = cand & ((x < vlo[q]) | (eql & (na[q] < nb[q])))
            high = cand & ~low & ((x > vhi[q]) | (eqh & (seen_hi[q] >= th[q])))
            na[q] += eql
            seen_hi[q] += eqh
            fl[i, q] = np.uint8(1) if low else (np.uint8(2) if high else f)
            cl += low
            ch += high
        fc[i, 1] += cl
        fc[i, 2] += ch


_INV_U16 = 1.0 / 65535.0


@njit(cache=True, error_model="numpy", fastmath=_FM, inline="always")
def _decode_u16(u):  # type: ignore[no-untyped-def]
    """A raw FITS uint16 sample (BITPIX 16 + BZERO 32768, big-endian, read as native) in [0, 1].

    Swap the bytes, flip the top bit, scale. The float64 product rounded to float32 equals the
    correctly rounded float32 quotient v / 65535 of ``to_unit_range`` for every v: v / 65535 is
    never within 1e-12 (relative) of a float32 rounding midpoint, far more than the product's
    error, so the rounding cannot differ (checked for all 65536 values by a test).
    """
    w = np.uint32(u)
    v = (((w >> 8) | (w << 8)) & 0xFFFF) ^ 0x8000
    return np.float32(np.float64(v) * _INV_U16)


@intrinsic
def _u16_pointer(typingctx, address):  # type: ignore[no-untyped-def]
    """The integer ``address`` as a uint16 pointer (samples of a memory-mapped FITS file)."""
    if not isinstance(address, types.Integer):
        return None
    sig = types.CPointer(types.uint16)(address)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

    return sig, codegen


@njit(parallel=True, cache=True, error_model="numpy", fastmath=_FM, nogil=True)
def integrate_kernel(stack, raw, use_raw, addrs, use_ptr, npix_ptr, ra, rb, oa, ob, w, rl, rh,  # type: ignore[no-untyped-def]
                     exclude, use_exclude, method, combine, low, high, min_count, max_count,
                     esd_frac, esd_relax, gain, tables, net, image, nlow, nhigh, cov, mask,
                     want_mask, frame_counts):
    """Integrate ``stack`` (N, P) float32 into ``image`` (P,) and the count maps (P,) uint16.

    With ``use_raw`` the samples come from ``raw`` (N, P) instead: the undecoded uint16 of FITS
    files (see :func:`_decode_u16`), so the band is read without a decoding pass. With
    ``use_ptr`` too, frame i's ``npix_ptr`` raw samples are read where ``addrs[i]`` points (a
    memory-mapped file): no copy into a band at all.

    Works on blocks of CHUNK pixels laid out (N, CHUNK) so that every step but the per-pixel
    rejection of the rarer methods runs vectorised across pixels: decode and classify, sort with
    the comparator network ``net`` (:func:`sorting_network`), sigma/winsorized clipping, flags,
    weighted combination.

    ``tables`` (2, N + 1): ESD critical values and the linear-fit spread table by sample count.
    ``exclude`` (N, P) uint8 (1 low / 2 high) is read when ``use_exclude``; ``mask`` (N, P) uint8
    receives 0 kept-or-no-data / 1 low / 2 high when ``want_mask``; ``frame_counts``
    (n_chunks, N, 3) int64 receives per-frame counts of valid, low- and high-rejected samples.
    """
    n = addrs.shape[0] if use_ptr else (raw.shape[0] if use_raw else stack.shape[0])
    npix = npix_ptr if use_ptr else (raw.shape[1] if use_raw else stack.shape[1])
    nchunks = (npix + CHUNK - 1) // CHUNK
    ranged = use_exclude
    for i in range(n):
        if rl[i] > -np.inf or rh[i] < np.inf:
            ranged = True
    nsuper = (nchunks + SUPER - 1) // SUPER
    for sc in prange(nsuper):
        # a few blocks are decoded together: each frame's rows are read in longer sequential
        # runs (with many frames, short runs from as many streams defeat the prefetchers)
        c0 = sc * SUPER
        c1 = min(nchunks, c0 + SUPER)
        pa = c0 * CHUNK
        pb = min(npix, c1 * CHUNK)
        xsw = np.empty((c1 - c0, n, CHUNK), np.float32)
        # (2-D indexing throughout the hot loops, not row views: every view costs two atomic
        # reference-count updates, which at one per row of a block added up to ~10 % of the time)
        for i in range(n):
            if use_raw:
                rr = carray(_u16_pointer(addrs[i] + 2 * pa), pb - pa) if use_ptr else raw[i, pa:pb]
                for b in range(c1 - c0):
                    o_ = b * CHUNK
                    for q in range(min(CHUNK, pb - pa - o_)):
                        xsw[b, i, q] = _decode_u16(rr[o_ + q])
            else:
                for b in range(c1 - c0):
                    o_ = pa + b * CHUNK
                    for q in range(min(CHUNK, pb - o_)):
                        xsw[b, i, q] = stack[i, o_ + q]
        # scratch of the task's blocks (a block uses its first k columns); float32 keys: twice
        # the lanes per vector in the sort (statistics are float64 from them, as the reference)
        key = np.empty((n, CHUNK), np.float32)
        s = np.empty((n, CHUNK), np.float32)
        fl = np.empty((n, CHUNK), np.uint8)
        cnt = np.empty((4, CHUNK), np.int32)     # candidates, valid, range-low, range-high
        lo = np.empty(CHUNK, np.int64)
        hi = np.empty(CHUNK, np.int64)
        col = np.empty(n, np.float64)
        o = np.empty(n, np.float64)
        sides = np.empty(n + 1, np.int64)
        # scratch lanes of the linear fit, the rank flags and the combination, once per task
        # rather than per block; the linear fit's are passed as separate arrays (views made
        # inside it defeated LLVM's vectoriser)
        fw = np.empty((4, CHUNK), np.float64)
        g = np.empty((5, CHUNK), np.float64)
        iw = np.empty((2, CHUNK), np.int64)
        bw = np.empty((2, CHUNK), np.bool_)
        wf = np.empty((2, CHUNK), np.float32)
        wi = np.empty((4, CHUNK), np.int32)
        m = np.empty(CHUNK, np.int64)
        acc = np.empty((2, CHUNK), np.float64)
        sw = acc[0]
        swo = acc[1]
        for c in range(c0, c1):
            p0 = c * CHUNK
            k = min(npix, p0 + CHUNK) - p0
            cnt[:] = 0
            lo[:] = 0
            hi[:] = 0
            fc = frame_counts[c]
            # 1. the block's samples as float32 (decoded from raw FITS bytes when given), classified:
            #    0 candidate, 1/2 range- or large-scale-rejected, 3 no data; candidates' keys are the
            #    rejection-normalized values, the others +inf (sorted to the end). int32 counters keep
            #    the loop at the float32 vector width.
            cm = cnt[0]
            cc = cm if not ranged else cnt[1]
            cnl = cnt[2]
            cnh = cnt[3]
            b_ = c - c0
            for i in range(n):
                a_i = ra[i]
                b_i = rb[i]
                rl_i = rl[i]
                rh_i = rh[i]
                cv = np.int32(0)
                cl = np.int32(0)
                ch = np.int32(0)
                if not ranged:
                    # no range or large-scale rejection: valid samples are the candidates
                    for q in range(k):
                        x = xsw[b_, i, q]
                        valid = (x == x) & (x != 0)
                        v = np.float32(a_i * x + b_i) if valid else np.float32(np.inf)
                        key[i, q] = v
                        s[i, q] = v
                        fl[i, q] = np.uint8(0) if valid else np.uint8(3)
                        cm[q] += np.int32(valid)
                        cv += np.int32(valid)
                    fc[i, 0] += cv
                    continue
                for q in range(k):
                    x = xsw[b_, i, q]
                    valid = not (x != x or x == 0)
                    lowr = valid & (x <= rl_i)
                    highr = valid & ~lowr & (x >= rh_i)
                    f = (np.uint8(3) if not valid else np.uint8(1) if lowr
                         else np.uint8(2) if highr
                         else (exclude[i, p0 + q] if use_exclude else np.uint8(0)))
                    good = f == 0
                    v = np.float32(a_i * x + b_i) if good else np.float32(np.inf)
                    key[i, q] = v
                    s[i, q] = v
                    fl[i, q] = f
                    cm[q] += np.int32(good)
                    cc[q] += np.int32(valid)
                    cnl[q] += np.int32(f == 1)
                    cnh[q] += np.int32(f == 2)
                    cv += np.int32(valid)
                    cl += np.int32(f == 1)
                    ch += np.int32(f == 2)
                fc[i, 0] += cv
                fc[i, 1] += cl
                fc[i, 2] += ch
            for q in range(k):
                m[q] = cm[q]
            # 2.-3. sort every pixel's candidates (they come first: the rest are +inf) and find the
            #    kept run s[lo..hi] of each pixel
            if method == NONE:
                for q in range(k):
                    hi[q] = m[q] - 1
            else:
                _sort_values(s, net, k)
                if method == SIGMA or method == WINSORIZED:
                    _sigma_block(s, m, k, method == WINSORIZED, low, high, lo, hi)
                elif method == LINFIT:
                    _linfit_block(s, m, k, low, high, tables[1], lo, hi, fw[0], fw[1], fw[2], fw[3],
                                  g, iw[0], iw[1], bw[0], bw[1], col)
                else:
                    for q in range(k):
                        lo[q], hi[q] = _reject(_column(s, q, m[q], col), m[q], sides, method, low,
                                               high, min_count, max_count, esd_frac, esd_relax,
                                               gain, tables[0], tables[1])
                # 4. flags of rank rejections and their per-frame counts
                _rank_flags(key, s, fl, m, lo, hi, k, fc, wf, wi)
            for q in range(k):
                cov[p0 + q] = cc[q]
                if m[q] == 0:
                    nlow[p0 + q] = cnl[q]
                    nhigh[p0 + q] = cnh[q]
                else:
                    nlow[p0 + q] = cnl[q] + lo[q]
                    nhigh[p0 + q] = cnh[q] + (m[q] - 1 - hi[q])
            if want_mask:
                for i in range(n):
                    for q in range(k):
                        f = fl[i, q]
                        mask[i, p0 + q] = f if f < 3 else 0
            # 5. combination of the kept samples in output space
            if combine == AVERAGE or combine == SUM:
                for q in range(k):
                    sw[q] = 0.0
                    swo[q] = 0.0
                for i in range(n):
                    oa_i = oa[i]
                    ob_i = ob[i]
                    w_i = w[i]
                    for q in range(k):
                        keep = fl[i, q] == 0
                        v = oa_i * xsw[b_, i, q] + ob_i
                        sw[q] += w_i if keep else 0.0
                        swo[q] += w_i * v if keep else 0.0
                for q in range(k):
                    if m[q] == 0:
                        image[p0 + q] = 0.0
                        continue
                    if sw[q] > 0:
                        mean = swo[q] / sw[q]
                    else:
                        # every kept sample has weight 0: their plain mean
                        so = 0.0
                        for i in range(n):
                            if fl[i, q] == 0:
                                so += oa[i] * xsw[b_, i, q] + ob[i]
                        mean = so / (hi[q] - lo[q] + 1)
                    if combine == SUM:
                        mean *= cc[q]
                    image[p0 + q] = mean
            else:
                for q in range(k):
                    if m[q] == 0:
                        image[p0 + q] = 0.0
                        continue
                    p = p0 + q
                    kk = 0
                    best = 0.0
                    for i in range(n):
                        if fl[i, q] != 0:
                            continue
                        v = oa[i] * xsw[b_, i, q] + ob[i]
                        if combine == MEDIAN:
                            r = kk
                            while r > 0 and o[r - 1] > v:
                                o[r] = o[r - 1]
                                r -= 1
                            o[r] = v
                        elif kk == 0 or (combine == MIN and v < best) or (combine == MAX and v > best):
                            best = v
                        kk += 1
                    image[p] = _median(o, 0, kk - 1) if combine == MEDIAN else best
