"""numba kernels of the stack engine (the hot loop). Keep this module stable: any edit here
invalidates numba's on-disk cache of every function in the file (≈ 15 s to recompile).

Semantics are defined by :mod:`skystack.integrate._reference`; ``tests/integrate`` compares the
two. Design (``reference/pystack.md`` §6): parallel over chunks of pixels, per-chunk scratch
buffers allocated once (never inside the pixel loop), insertion sort per pixel stack, clipping
from the ends of the sorted run, float64 statistics. ``fastmath`` excludes ``nnan`` because the
no-data test relies on ``x != x``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["integrate_kernel", "CHUNK"]

_FM = {"contract", "reassoc", "arcp"}
CHUNK = 1024            # pixels per parallel task

# Method / combine codes — must equal _reference.METHOD_CODES / COMBINE_CODES (tested).
NONE, MINMAX, PERCENTILE, SIGMA, WINSORIZED, AVSIGMA, LINFIT, ESD = 0, 1, 2, 3, 4, 5, 6, 7
AVERAGE, MEDIAN, MIN, MAX, SUM = 0, 1, 2, 3, 4

WINSOR_CUT = 1.5
WINSOR_FACTOR = 1.134
WINSOR_TOL = 0.0005
MAX_ITER = 50


@njit(cache=True, fastmath=_FM, inline="always")
def _median(s, lo, hi):  # type: ignore[no-untyped-def]
    k = hi - lo + 1
    mid = lo + k // 2
    if k % 2:
        return s[mid]
    return 0.5 * (s[mid - 1] + s[mid])


@njit(cache=True, fastmath=_FM, inline="always")
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


@njit(cache=True, fastmath=_FM)
def _std1(s, lo, hi):  # type: ignore[no-untyped-def]
    k = hi - lo + 1
    acc = 0.0
    for j in range(lo, hi + 1):
        acc += s[j]
    mean = acc / k
    var = 0.0
    for j in range(lo, hi + 1):
        d = s[j] - mean
        var += d * d
    return math.sqrt(var / (k - 1))


@njit(cache=True, fastmath=_FM)
def _winsor_sigma(s, lo, hi, m):  # type: ignore[no-untyped-def]
    k = hi - lo + 1
    sigma = _std1(s, lo, hi)
    for _ in range(MAX_ITER):
        a = m - WINSOR_CUT * sigma
        b = m + WINSOR_CUT * sigma
        acc = 0.0
        for j in range(lo, hi + 1):
            acc += min(max(s[j], a), b)
        mean = acc / k
        var = 0.0
        for j in range(lo, hi + 1):
            d = min(max(s[j], a), b) - mean
            var += d * d
        new = WINSOR_FACTOR * math.sqrt(var / (k - 1))
        done = abs(new - sigma) <= WINSOR_TOL * sigma
        sigma = new
        if done:
            break
    return sigma


@njit(cache=True, fastmath=_FM)
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
    if method == SIGMA or method == WINSORIZED or method == AVSIGMA:
        for _ in range(MAX_ITER):
            if hi - lo + 1 < 3:
                break
            m = _median(s, lo, hi)
            if method == SIGMA:
                sigma = _std1(s, lo, hi)
            elif method == WINSORIZED:
                sigma = _winsor_sigma(s, lo, hi, m)
            else:
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


@njit(parallel=True, cache=True, fastmath=_FM)
def integrate_kernel(stack, ra, rb, oa, ob, w, rl, rh, exclude, use_exclude,  # type: ignore[no-untyped-def]
                     method, combine, low, high, min_count, max_count, esd_frac, esd_relax,
                     gain, tables, image, nlow, nhigh, cov, mask, want_mask, frame_counts):
    """Integrate ``stack`` (N, P) float32 into ``image`` (P,) and the count maps (P,) uint16.

    ``tables`` (2, N + 1): ESD critical values and the linear-fit spread table by sample count.
    ``exclude`` (N, P) uint8 (1 low / 2 high) is read when ``use_exclude``; ``mask`` (N, P) uint8
    receives 0 kept-or-no-data / 1 low / 2 high when ``want_mask``; ``frame_counts``
    (n_chunks, N, 3) int64 receives per-frame counts of valid, low- and high-rejected samples.
    """
    n = stack.shape[0]
    npix = stack.shape[1]
    nchunks = (npix + CHUNK - 1) // CHUNK
    for c in prange(nchunks):
        s = np.empty(n, np.float64)
        idx = np.empty(n, np.int64)
        o = np.empty(n, np.float64)
        sides = np.empty(n + 1, np.int64)
        fc = frame_counts[c]
        p_end = min(npix, (c + 1) * CHUNK)
        for p in range(c * CHUNK, p_end):
            m = 0
            ncov = 0
            nl = 0
            nh = 0
            for i in range(n):
                x = stack[i, p]
                if want_mask:
                    mask[i, p] = 0
                if x != x or x == 0:
                    continue
                ncov += 1
                fc[i, 0] += 1
                flag = 0
                if x <= rl[i]:
                    flag = 1
                elif x >= rh[i]:
                    flag = 2
                elif use_exclude:
                    flag = exclude[i, p]
                if flag != 0:
                    if flag == 1:
                        nl += 1
                    else:
                        nh += 1
                    fc[i, flag] += 1
                    if want_mask:
                        mask[i, p] = flag
                    continue
                v = ra[i] * x + rb[i]
                j = m
                while j > 0 and s[j - 1] > v:
                    s[j] = s[j - 1]
                    idx[j] = idx[j - 1]
                    j -= 1
                s[j] = v
                idx[j] = i
                m += 1
            cov[p] = ncov
            if m == 0:
                image[p] = 0.0
                nlow[p] = nl
                nhigh[p] = nh
                continue
            lo, hi = _reject(s, m, sides, method, low, high, min_count, max_count, esd_frac,
                             esd_relax, gain, tables[0], tables[1])
            for j in range(lo):
                fc[idx[j], 1] += 1
                if want_mask:
                    mask[idx[j], p] = 1
            for j in range(hi + 1, m):
                fc[idx[j], 2] += 1
                if want_mask:
                    mask[idx[j], p] = 2
            nlow[p] = nl + lo
            nhigh[p] = nh + (m - 1 - hi)
            k = hi - lo + 1
            if combine == MEDIAN:
                for j in range(k):
                    v = oa[idx[lo + j]] * stack[idx[lo + j], p] + ob[idx[lo + j]]
                    q = j
                    while q > 0 and o[q - 1] > v:
                        o[q] = o[q - 1]
                        q -= 1
                    o[q] = v
                image[p] = _median(o, 0, k - 1)
            elif combine == MIN or combine == MAX:
                best = oa[idx[lo]] * stack[idx[lo], p] + ob[idx[lo]]
                for j in range(lo + 1, hi + 1):
                    v = oa[idx[j]] * stack[idx[j], p] + ob[idx[j]]
                    if (combine == MIN and v < best) or (combine == MAX and v > best):
                        best = v
                image[p] = best
            else:
                sw = 0.0
                swo = 0.0
                so = 0.0
                for j in range(lo, hi + 1):
                    i = idx[j]
                    v = oa[i] * stack[i, p] + ob[i]
                    sw += w[i]
                    swo += w[i] * v
                    so += v
                mean = swo / sw if sw > 0 else so / k
                if combine == SUM:
                    mean *= ncov
                image[p] = mean
