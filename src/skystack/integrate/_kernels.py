"""numba kernels of the stack engine (the hot loop). Keep this module stable: any edit here
invalidates numba's on-disk cache of every function in the file (≈ 15 s to recompile).

Semantics are defined by :mod:`skystack.integrate._reference`; ``tests/integrate`` compares the
two. Design: parallel over blocks of CHUNK pixels, each gathered into (N, CHUNK) scratch so that
classification, sorting and combination run vectorised across pixels — the per-pixel sort is a
comparator network (Batcher's odd-even merge sort, branch-free min/max instead of the
mispredicted branches of an insertion sort, ~5× faster here). Rejection then works per pixel on
the sorted run, clipping from its ends; sigma and winsorized sigma keep the run's sums and
adjust them by the few samples clipped or clamped at its ends, so an iteration does not cost a
pass; the winsorized σ is solved exactly. Keys are float32, statistics float64. ``fastmath`` excludes ``nnan`` because the no-data test relies on ``x != x``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numba import njit, prange

__all__ = ["integrate_kernel", "sorting_network", "CHUNK"]

_FM = {"contract", "reassoc", "arcp"}
CHUNK = 256             # pixels per parallel task and vector block

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


@njit(cache=True, fastmath=_FM)
def _sort_block(s, t, net, k):  # type: ignore[no-untyped-def]
    """Sort the columns of ``s`` (N, CHUNK) by (value, t), carrying ``t``; vectorised over pixels.

    The tie-break on ``t`` (the frame index for candidates) makes the order total, so the result
    is exactly a stable sort of the candidates by value.
    """
    for e in range(net.shape[0]):
        a = net[e, 0]
        b = net[e, 1]
        for q in range(k):
            x = s[a, q]
            y = s[b, q]
            ta = t[a, q]
            tb = t[b, q]
            sw = (y < x) | ((y == x) & (tb < ta))
            s[a, q] = y if sw else x
            s[b, q] = x if sw else y
            t[a, q] = tb if sw else ta
            t[b, q] = ta if sw else tb


@njit(cache=True, fastmath=_FM)
def _winsor_sigma(s, c, s1, s2, lo, hi, m, sigma):  # type: ignore[no-untyped-def]
    """Winsorized σ of the sorted run s[lo..hi] around ``m``, starting from ``sigma``.

    The fixed point of σ = F·std(clamp(run, m ± Kσ)) that the plain iteration converges to,
    solved exactly (see ``_reference.winsorized_sigma``). ``s1``/``s2`` are the run's sums of
    (s − c) and (s − c)²: the clamped samples sit at the ends of the sorted run, so a step walks
    only those few and takes the middle's sums by difference instead of a pass over the run.
    """
    k = hi - lo + 1
    u = m - c
    lim = (k - 1) / (WINSOR_FACTOR * WINSOR_FACTOR)
    for _ in range(MAX_ITER):
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
        nc = (ja - lo) + (hi - jb)
        nd = (hi - jb) - (ja - lo)
        # clamped sums as polynomials in σ: S1 = α + βσ, S2 = γ + δσ + εσ²
        alpha = nc * u + (s1 - e1)
        beta = WINSOR_CUT * nd
        gamma = nc * u * u + (s2 - e2)
        delta = 2.0 * u * WINSOR_CUT * nd
        eps = WINSOR_CUT * WINSOR_CUT * nc
        qa = eps - beta * beta / k - lim
        qb = delta - 2.0 * alpha * beta / k
        qc = gamma - alpha * alpha / k
        if qa < 0:
            disc = qb * qb - 4.0 * qa * qc
            if disc >= 0:
                root = (-qb - math.sqrt(disc)) / (2.0 * qa)
                ra = m - WINSOR_CUT * root
                rb = m + WINSOR_CUT * root
                if (root > 0 and (ja == lo or s[ja - 1] < ra) and (ja > hi or s[ja] >= ra)
                        and (jb == hi or s[jb + 1] > rb) and (jb < lo or s[jb] <= rb)):
                    return root        # this clamping holds at its own fixed point
        var = (gamma + (delta + eps * sigma) * sigma - (alpha + beta * sigma) ** 2 / k) / (k - 1)
        new = WINSOR_FACTOR * math.sqrt(var) if var > 0 else 0.0
        done = abs(new - sigma) <= WINSOR_TOL * sigma
        sigma = new
        if done:
            break
    return sigma


@njit(cache=True, fastmath=_FM)
def _sigma_clip(s, n, winsorized, low, high):  # type: ignore[no-untyped-def]
    """Sigma or winsorized sigma clipping of sorted ``s[:n]`` (``_reference.reject_sorted``)."""
    lo = 0
    hi = n - 1
    if n < 3:
        return lo, hi
    c = _median(s, lo, hi)
    s1 = 0.0
    s2 = 0.0
    for j in range(n):
        d = s[j] - c
        s1 += d
        s2 += d * d
    for _ in range(MAX_ITER):
        k = hi - lo + 1
        if k < 3:
            break
        m = _median(s, lo, hi)
        var = (s2 - s1 * s1 / k) / (k - 1)
        sigma = math.sqrt(var) if var > 0 else 0.0
        if winsorized and sigma > 0:
            sigma = _winsor_sigma(s, c, s1, s2, lo, hi, m, sigma)
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


_INV_U16 = 1.0 / 65535.0


@njit(cache=True, fastmath=_FM, inline="always")
def _decode_u16(u):  # type: ignore[no-untyped-def]
    """A raw FITS uint16 sample (BITPIX 16 + BZERO 32768, big-endian, read as native) in [0, 1].

    Swap the bytes, flip the top bit, scale. The float64 product rounded to float32 equals the
    correctly rounded float32 quotient v / 65535 of ``to_unit_range`` for every v: v / 65535 is
    never within 1e-12 (relative) of a float32 rounding midpoint, far more than the product's
    error, so the rounding cannot differ (checked for all 65536 values by a test).
    """
    w = np.int32(u)
    v = (((w >> 8) | (w << 8)) & 0xFFFF) ^ 0x8000
    return np.float32(np.float64(v) * _INV_U16)


@njit(parallel=True, cache=True, fastmath=_FM, nogil=True)
def integrate_kernel(stack, raw, use_raw, ra, rb, oa, ob, w, rl, rh, exclude, use_exclude,  # type: ignore[no-untyped-def]
                     method, combine, low, high, min_count, max_count, esd_frac, esd_relax,
                     gain, tables, net, image, nlow, nhigh, cov, mask, want_mask, frame_counts):
    """Integrate ``stack`` (N, P) float32 into ``image`` (P,) and the count maps (P,) uint16.

    With ``use_raw`` the samples come from ``raw`` (N, P) instead: the undecoded uint16 of FITS
    files (see :func:`_decode_u16`), so the band is read without a decoding pass.

    Works on blocks of CHUNK pixels laid out (N, CHUNK) so that every step but the per-pixel
    rejection of the rarer methods runs vectorised across pixels: gather and classify, sort with
    the comparator network ``net`` (:func:`sorting_network`), sigma/winsorized clipping, flags,
    weighted combination.

    ``tables`` (2, N + 1): ESD critical values and the linear-fit spread table by sample count.
    ``exclude`` (N, P) uint8 (1 low / 2 high) is read when ``use_exclude``; ``mask`` (N, P) uint8
    receives 0 kept-or-no-data / 1 low / 2 high when ``want_mask``; ``frame_counts``
    (n_chunks, N, 3) int64 receives per-frame counts of valid, low- and high-rejected samples.
    """
    n = raw.shape[0] if use_raw else stack.shape[0]
    npix = raw.shape[1] if use_raw else stack.shape[1]
    nchunks = (npix + CHUNK - 1) // CHUNK
    for c in prange(nchunks):
        p0 = c * CHUNK
        k = min(npix, p0 + CHUNK) - p0
        # float32 keys and int32 tags: twice the lanes per vector in the sort (the statistics
        # are float64, from these float32 values, as in the reference)
        s = np.empty((n, k), np.float32)
        t = np.empty((n, k), np.int32)
        fl = np.empty((n, k), np.uint8)
        m = np.zeros(k, np.int64)
        ncov = np.zeros(k, np.int64)
        nl = np.zeros(k, np.int64)
        nh = np.zeros(k, np.int64)
        lo = np.zeros(k, np.int64)
        hi = np.zeros(k, np.int64)
        col = np.empty(n, np.float64)
        o = np.empty(n, np.float64)
        sides = np.empty(n + 1, np.int64)
        fc = frame_counts[c]
        # 0. the block's samples as float32 (decoded from raw FITS bytes when given)
        xs = np.empty((n, k), np.float32)
        if use_raw:
            for i in range(n):
                for q in range(k):
                    xs[i, q] = _decode_u16(raw[i, p0 + q])
        else:
            for i in range(n):
                for q in range(k):
                    xs[i, q] = stack[i, p0 + q]
        # 1. gather and classify: 0 candidate, 1/2 range- or large-scale-rejected, 3 no data
        for i in range(n):
            a_i = ra[i]
            b_i = rb[i]
            rl_i = rl[i]
            rh_i = rh[i]
            cv = 0
            cl = 0
            ch = 0
            for q in range(k):
                x = xs[i, q]
                valid = not (x != x or x == 0)
                f = 3
                if valid:
                    if x <= rl_i:
                        f = 1
                    elif x >= rh_i:
                        f = 2
                    elif use_exclude:
                        f = exclude[i, p0 + q]
                    else:
                        f = 0
                good = f == 0
                s[i, q] = np.float32(a_i * x + b_i) if good else np.float32(np.inf)
                t[i, q] = np.int32(i if good else n + i)
                fl[i, q] = f
                m[q] += good
                ncov[q] += valid
                nl[q] += f == 1
                nh[q] += f == 2
                cv += valid
                cl += f == 1
                ch += f == 2
            fc[i, 0] += cv
            fc[i, 1] += cl
            fc[i, 2] += ch
        # 2. sort every pixel's candidates (they come first: the rest are +inf with t >= n)
        _sort_block(s, t, net, k)
        # 3. rejection: the kept run s[lo..hi] of each pixel
        for q in range(k):
            mq = m[q]
            for j in range(mq):
                col[j] = s[j, q]
            if method == SIGMA or method == WINSORIZED:
                lo[q], hi[q] = _sigma_clip(col, mq, method == WINSORIZED, low, high)
            else:
                lo[q], hi[q] = _reject(col, mq, sides, method, low, high, min_count, max_count,
                                       esd_frac, esd_relax, gain, tables[0], tables[1])
        # 4. flags of rank rejections, counts and maps
        for q in range(k):
            for j in range(lo[q]):
                fl[t[j, q], q] = 1
                fc[t[j, q], 1] += 1
            for j in range(hi[q] + 1, m[q]):
                fl[t[j, q], q] = 2
                fc[t[j, q], 2] += 1
            cov[p0 + q] = ncov[q]
            if m[q] == 0:
                nlow[p0 + q] = nl[q]
                nhigh[p0 + q] = nh[q]
            else:
                nlow[p0 + q] = nl[q] + lo[q]
                nhigh[p0 + q] = nh[q] + (m[q] - 1 - hi[q])
        if want_mask:
            for i in range(n):
                for q in range(k):
                    f = fl[i, q]
                    mask[i, p0 + q] = f if f < 3 else 0
        # 5. combination of the kept samples in output space
        if combine == AVERAGE or combine == SUM:
            sw = np.zeros(k, np.float64)
            swo = np.zeros(k, np.float64)
            so = np.zeros(k, np.float64)
            for i in range(n):
                oa_i = oa[i]
                ob_i = ob[i]
                w_i = w[i]
                for q in range(k):
                    keep = fl[i, q] == 0
                    x = xs[i, q]
                    v = oa_i * x + ob_i
                    sw[q] += w_i if keep else 0.0
                    swo[q] += w_i * v if keep else 0.0
                    so[q] += v if keep else 0.0
            for q in range(k):
                if m[q] == 0:
                    image[p0 + q] = 0.0
                    continue
                mean = swo[q] / sw[q] if sw[q] > 0 else so[q] / (hi[q] - lo[q] + 1)
                if combine == SUM:
                    mean *= ncov[q]
                image[p0 + q] = mean
        else:
            for q in range(k):
                if m[q] == 0:
                    image[p0 + q] = 0.0
                    continue
                p = p0 + q
                kk = hi[q] - lo[q] + 1
                if combine == MEDIAN:
                    for j in range(kk):
                        i = t[lo[q] + j, q]
                        v = oa[i] * xs[i, q] + ob[i]
                        r = j
                        while r > 0 and o[r - 1] > v:
                            o[r] = o[r - 1]
                            r -= 1
                        o[r] = v
                    image[p] = _median(o, 0, kk - 1)
                else:
                    i = t[lo[q], q]
                    best = oa[i] * xs[i, q] + ob[i]
                    for j in range(lo[q] + 1, hi[q] + 1):
                        i = t[j, q]
                        v = oa[i] * xs[i, q] + ob[i]
                        if (combine == MIN and v < best) or (combine == MAX and v > best):
                            best = v
                    image[p] = best
