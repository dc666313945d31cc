"""Numba kernels behind :mod:`skystack.stars` (each with a plain NumPy reference for the tests).

Everything here works on float32 (H, W) arrays in memory order; pixel (x, y) = (column, row),
with (0, 0) the centre of the first pixel. The kernels are single-threaded on purpose: frames are
measured in parallel one per process, so a kernel that grabs every core would only fight itself.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

__all__ = [
    "mesh_stats",
    "mesh_stats_ref",
    "subtract_background",
    "subtract_background_ref",
    "interp_mesh_at",
    "smooth_separable",
    "smooth_separable_ref",
    "find_peaks",
    "find_peaks_ref",
    "measure_moments",
    "measure_moments_ref",
    "fit_psf",
    "atrous_smooth",
    "atrous_smooth_ref",
    "hough_lines",
    "hough_lines_ref",
    "GAUSSIAN",
    "MOFFAT",
]

GAUSSIAN = 0
MOFFAT = 1

_JIT = {"cache": True, "nogil": True, "fastmath": False}


# ---------------------------------------------------------------------------------------------
# Background mesh
# ---------------------------------------------------------------------------------------------


def _mesh_edges(n: int, mesh: int) -> NDArray[np.int64]:
    """Block edges along one axis: blocks of ``mesh`` pixels, the last one absorbing the rest."""
    nb_ = max(1, n // mesh)
    edges = np.arange(nb_ + 1, dtype=np.int64) * mesh
    edges[-1] = n
    return edges


@nb.njit(**_JIT)
def _kth(a, n, k):
    """The k-th smallest of a[:n] (Hoare quickselect, partially reorders a in place)."""
    lo = 0
    hi = n - 1
    while lo < hi:
        pivot = a[(lo + hi) // 2]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                t = a[i]
                a[i] = a[j]
                a[j] = t
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return a[k]


@nb.njit(**_JIT)
def _clipped_median_sigma(v, n, work):
    """Median and MAD-sigma of v[:n] after up to three rounds of 3-sigma clipping.

    Medians are lower medians (element (m-1)//2 of the sorted sample); ``work`` is scratch.
    """
    lo = -np.inf
    hi = np.inf
    m_prev = -1
    med = 0.0
    sig = 0.0
    for _ in range(4):
        m = 0
        for i in range(n):
            if v[i] >= lo and v[i] <= hi:
                work[m] = v[i]
                m += 1
        if m < 8 or m == m_prev:
            break
        m_prev = m
        med = _kth(work, m, (m - 1) // 2)
        for i in range(m):
            work[i] = abs(work[i] - med)
        sig = 1.4826 * _kth(work, m, (m - 1) // 2)
        lo = med - 3.0 * sig
        hi = med + 3.0 * sig
    return med, sig


@nb.njit(**_JIT)
def _mesh_stats_kernel(img, ey, ex, step):
    nby = ey.shape[0] - 1
    nbx = ex.shape[0] - 1
    bkg = np.empty((nby, nbx), np.float32)
    rms = np.empty((nby, nbx), np.float32)
    cap = 0
    for i in range(nby):
        for j in range(nbx):
            c = ((ey[i + 1] - ey[i] + step - 1) // step) * ((ex[j + 1] - ex[j] + step - 1) // step)
            cap = max(cap, c)
    buf = np.empty(cap, np.float32)
    dif = np.empty(cap, np.float32)
    work = np.empty(cap, np.float32)
    w = img.shape[1]
    for i in range(nby):
        for j in range(nbx):
            n = 0
            for y in range(ey[i], ey[i + 1], step):
                for x in range(ex[j], ex[j + 1], step):
                    buf[n] = img[y, x]
                    # neighbour differences: the noise without the gradient across the block
                    x2 = x + 1 if x + 1 < w else x - 1
                    dif[n] = img[y, x2] - img[y, x]
                    n += 1
            med, _ = _clipped_median_sigma(buf, n, work)
            _, sig = _clipped_median_sigma(dif, n, work)
            bkg[i, j] = med
            rms[i, j] = sig / math.sqrt(2.0)
    return bkg, rms


def mesh_stats(
    img: NDArray[np.float32], mesh: int, step: int = 2
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Clipped median (background) and noise sigma of each ``mesh``×``mesh`` block.

    The noise is the clipped MAD-sigma of differences between horizontal neighbours / √2, so a
    gradient across the block or a star's wing does not inflate it.

    ``step`` subsamples each block (every ``step``-th row and column): 1024 samples of a 64 px
    block already pin the median to ~4 % of the noise, and it is 4× faster.
    """
    ey = _mesh_edges(img.shape[0], mesh)
    ex = _mesh_edges(img.shape[1], mesh)
    return _mesh_stats_kernel(img, ey, ex, step)


def mesh_stats_ref(
    img: NDArray[np.float32], mesh: int, step: int = 2
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """NumPy reference of :func:`mesh_stats`."""
    ey = _mesh_edges(img.shape[0], mesh)
    ex = _mesh_edges(img.shape[1], mesh)
    bkg = np.empty((len(ey) - 1, len(ex) - 1), np.float32)
    rms = np.empty_like(bkg)
    w = img.shape[1]

    def lower_median(a: NDArray) -> float:
        k = (a.size - 1) // 2
        return float(np.partition(a, k)[k])

    def clipped(v: NDArray) -> tuple[float, float]:
        keep = v
        med = sig = 0.0
        size_prev = -1
        for _ in range(4):
            if keep.size < 8 or keep.size == size_prev:
                break
            size_prev = keep.size
            med = lower_median(keep)
            sig = 1.4826 * lower_median(np.abs(keep - np.float32(med)))
            keep = v[(v >= med - 3 * sig) & (v <= med + 3 * sig)]
        return med, sig

    for i in range(len(ey) - 1):
        for j in range(len(ex) - 1):
            ys = np.arange(ey[i], ey[i + 1], step)
            xs = np.arange(ex[j], ex[j + 1], step)
            x2 = np.where(xs + 1 < w, xs + 1, xs - 1)
            v = img[np.ix_(ys, xs)].ravel().astype(np.float32)
            d = (img[np.ix_(ys, x2)] - img[np.ix_(ys, xs)]).ravel().astype(np.float32)
            bkg[i, j] = clipped(v)[0]
            rms[i, j] = clipped(d)[1] / math.sqrt(2.0)
    return bkg, rms


def _mesh_centres(n: int, mesh: int) -> NDArray[np.float64]:
    e = _mesh_edges(n, mesh)
    return (e[:-1] + e[1:] - 1) / 2.0


@nb.njit(**_JIT)
def _interp_axis(coord, centres):
    """(index, weight) of linear interpolation between mesh centres.

    Beyond the outer centres (half a mesh from the edge) the weight leaves [0, 1]: the slope
    of the outermost pair is extended, so a sky gradient reaches the corners.
    """
    n = centres.shape[0]
    if n == 1:
        return 0, 0.0
    if coord <= centres[0]:
        return 0, (coord - centres[0]) / (centres[1] - centres[0])
    if coord >= centres[n - 1]:
        return n - 2, (coord - centres[n - 2]) / (centres[n - 1] - centres[n - 2])
    i = 0
    # centres are evenly spaced except the last; a short scan is cheap
    i = int((coord - centres[0]) / (centres[1] - centres[0]))
    if i > n - 2:
        i = n - 2
    while i > 0 and centres[i] > coord:
        i -= 1
    while i < n - 2 and centres[i + 1] < coord:
        i += 1
    return i, (coord - centres[i]) / (centres[i + 1] - centres[i])


@nb.njit(**_JIT)
def _subtract_kernel(img, grid, cy, cx, out):
    h, w = img.shape
    nby, nbx = grid.shape
    row = np.empty(w, np.float32)
    x0 = np.empty(w, np.int64)
    fx = np.empty(w, np.float32)
    for x in range(w):
        i, f = _interp_axis(float(x), cx)
        x0[x] = i
        fx[x] = f
    for y in range(h):
        iy, fy = _interp_axis(float(y), cy)
        iy1 = min(iy + 1, nby - 1)
        for x in range(w):
            i = x0[x]
            i1 = min(i + 1, nbx - 1)
            a = grid[iy, i] + fx[x] * (grid[iy, i1] - grid[iy, i])
            b = grid[iy1, i] + fx[x] * (grid[iy1, i1] - grid[iy1, i])
            row[x] = a + fy * (b - a)
        for x in range(w):
            out[y, x] = img[y, x] - row[x]
    return out


def subtract_background(
    img: NDArray[np.float32], grid: NDArray[np.float32], mesh: int
) -> NDArray[np.float32]:
    """``img`` minus the mesh grid interpolated bilinearly between block centres (and
    extrapolated linearly over the outer half-mesh)."""
    cy = _mesh_centres(img.shape[0], mesh)
    cx = _mesh_centres(img.shape[1], mesh)
    out = np.empty(img.shape, np.float32)
    return _subtract_kernel(img, np.ascontiguousarray(grid, np.float32), cy, cx, out)


def _interp_ref(n: int, mesh: int, m: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    c = _mesh_centres(n, mesh)
    coord = np.arange(n, dtype=np.float64)
    if m == 1:
        return np.zeros(n, np.int64), np.zeros(n)
    i = np.clip(np.searchsorted(c, coord, side="right") - 1, 0, m - 2)
    return i, (coord - c[i]) / (c[i + 1] - c[i])


def subtract_background_ref(
    img: NDArray[np.float32], grid: NDArray[np.float32], mesh: int
) -> NDArray[np.float32]:
    """NumPy reference of :func:`subtract_background`."""
    iy, fy = _interp_ref(img.shape[0], mesh, grid.shape[0])
    ix, fx = _interp_ref(img.shape[1], mesh, grid.shape[1])
    iy1 = np.minimum(iy + 1, grid.shape[0] - 1)
    ix1 = np.minimum(ix + 1, grid.shape[1] - 1)
    g = grid.astype(np.float64)
    a = g[iy][:, ix] + fx * (g[iy][:, ix1] - g[iy][:, ix])
    b = g[iy1][:, ix] + fx * (g[iy1][:, ix1] - g[iy1][:, ix])
    model = a + fy[:, None] * (b - a)
    return (img - model).astype(np.float32)


def interp_mesh_at(
    grid: NDArray[np.float32], mesh: int, shape: tuple[int, int], x: NDArray, y: NDArray
) -> NDArray[np.float64]:
    """Bilinear value of a mesh grid at arbitrary (x, y) positions."""
    cy = _mesh_centres(shape[0], mesh)
    cx = _mesh_centres(shape[1], mesh)
    g = grid.astype(np.float64)

    def axis(c: NDArray, v: NDArray) -> tuple[NDArray, NDArray]:
        if c.size == 1:
            return np.zeros(v.shape, np.int64), np.zeros(v.shape)
        i = np.clip(np.searchsorted(c, v, side="right") - 1, 0, c.size - 2)
        return i, (v - c[i]) / (c[i + 1] - c[i])

    iy, fy = axis(cy, np.asarray(y, np.float64))
    ix, fx = axis(cx, np.asarray(x, np.float64))
    iy1 = np.minimum(iy + 1, g.shape[0] - 1)
    ix1 = np.minimum(ix + 1, g.shape[1] - 1)
    a = g[iy, ix] + fx * (g[iy, ix1] - g[iy, ix])
    b = g[iy1, ix] + fx * (g[iy1, ix1] - g[iy1, ix])
    return a + fy * (b - a)


# ---------------------------------------------------------------------------------------------
# Matched filter
# ---------------------------------------------------------------------------------------------


@nb.njit(**_JIT)
def _smooth_kernel(img, k, out):
    h, w = img.shape
    r = k.shape[0] // 2
    tmp = np.empty((h, w), np.float32)
    pad = np.empty(w + 2 * r, np.float32)
    acc = np.empty(w, np.float32)
    for y in range(h):
        for x in range(w):
            pad[x + r] = img[y, x]
        for x in range(r):
            pad[x] = img[y, 0]
            pad[w + r + x] = img[y, w - 1]
        acc[:] = 0.0
        for j in range(2 * r + 1):
            kj = k[j]
            for x in range(w):
                acc[x] += kj * pad[x + j]
        for x in range(w):
            tmp[y, x] = acc[x]
    for y in range(h):
        acc[:] = 0.0
        for j in range(2 * r + 1):
            yy = min(max(y - r + j, 0), h - 1)
            kj = k[j]
            for x in range(w):
                acc[x] += kj * tmp[yy, x]
        for x in range(w):
            out[y, x] = acc[x]
    return out


def gaussian_kernel(sigma: float) -> NDArray[np.float32]:
    """A normalized 1-D Gaussian of the given sigma, truncated at 3 sigma (at least 3 taps)."""
    r = max(1, int(math.ceil(3.0 * sigma)))
    t = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def smooth_separable(img: NDArray[np.float32], k: NDArray[np.float32]) -> NDArray[np.float32]:
    """Correlate ``img`` with the separable kernel k⊗k (edges: nearest pixel repeated)."""
    out = np.empty(img.shape, np.float32)
    return _smooth_kernel(np.ascontiguousarray(img, np.float32), k.astype(np.float32), out)


def smooth_separable_ref(img: NDArray[np.float32], k: NDArray[np.float32]) -> NDArray[np.float32]:
    """NumPy/SciPy reference of :func:`smooth_separable`."""
    from scipy.ndimage import correlate1d

    tmp = correlate1d(img.astype(np.float64), k.astype(np.float64), axis=1, mode="nearest")
    return correlate1d(tmp, k.astype(np.float64), axis=0, mode="nearest").astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Peaks
# ---------------------------------------------------------------------------------------------


@nb.njit(**_JIT)
def _peaks_kernel(s, thr, mesh, border, radius):
    h, w = s.shape
    nby, nbx = thr.shape
    ys = []
    xs = []
    for y in range(border, h - border):
        ty = min(y // mesh, nby - 1)
        for x in range(border, w - border):
            v = s[y, x]
            if v <= thr[ty, min(x // mesh, nbx - 1)]:
                continue
            ok = True
            for dy in range(-radius, radius + 1):
                yy = y + dy
                if yy < 0 or yy >= h:
                    continue
                for dx in range(-radius, radius + 1):
                    xx = x + dx
                    if xx < 0 or xx >= w or (dx == 0 and dy == 0):
                        continue
                    u = s[yy, xx]
                    # ties: the first pixel in memory order wins
                    if u > v or (u == v and (dy < 0 or (dy == 0 and dx < 0))):
                        ok = False
                        break
                if not ok:
                    break
            if ok:
                ys.append(y)
                xs.append(x)
    return np.array(ys, np.int64), np.array(xs, np.int64)


def find_peaks(
    s: NDArray[np.float32], thr: NDArray[np.float32], mesh: int, border: int, radius: int = 2
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Local maxima of ``s`` (within ±radius) above the per-mesh threshold ``thr``.

    Pixels closer than ``border`` to an edge are skipped. Returns (rows, columns).
    """
    return _peaks_kernel(s, np.ascontiguousarray(thr, np.float32), mesh, border, radius)


def find_peaks_ref(
    s: NDArray[np.float32], thr: NDArray[np.float32], mesh: int, border: int, radius: int = 2
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """NumPy/SciPy reference of :func:`find_peaks` (exact for images without ties)."""
    from scipy.ndimage import maximum_filter

    h, w = s.shape
    mx = maximum_filter(s, size=2 * radius + 1, mode="constant", cval=-np.inf)
    iy = np.minimum(np.arange(h) // mesh, thr.shape[0] - 1)
    ix = np.minimum(np.arange(w) // mesh, thr.shape[1] - 1)
    t = thr[iy][:, ix]
    ok = (s == mx) & (s > t)
    ok[:border] = ok[h - border :] = False
    ok[:, :border] = ok[:, w - border :] = False
    ys, xs = np.nonzero(ok)
    return ys.astype(np.int64), xs.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Adaptive moments (every candidate)
# ---------------------------------------------------------------------------------------------


@nb.njit(**_JIT)
def _owner_ok(x, y, own_x, own_y, own_amp, nbr_x, nbr_y, nbr_amp, n_nbr, inv4s2):
    """Deblending: a pixel belongs to this star unless a neighbour's model is brighter there.

    The model is a Moffat with β = 2 and the guessed core width: real stars have wings, and a
    Gaussian model would hand a faint star the wings of its bright neighbour.
    """
    d0 = (x - own_x) ** 2 + (y - own_y) ** 2
    t = 1.0 + d0 * inv4s2
    mine = own_amp / (t * t)
    for k in range(n_nbr):
        d = (x - nbr_x[k]) ** 2 + (y - nbr_y[k]) ** 2
        t = 1.0 + d * inv4s2
        if nbr_amp[k] / (t * t) > mine:
            return False
    return True


@nb.njit(**_JIT)
def _moments_kernel(r, px, py, amp, nbr_ptr, nbr_idx, sigma0, rmax, max_iter):
    h, w = r.shape
    n = px.shape[0]
    # out columns: x, y, sxx, sxy, syy, flux, peak, ok, npix
    out = np.zeros((n, 9), np.float64)
    inv2s2 = 1.0 / (4.0 * sigma0 * sigma0)  # deblending model scale (see _owner_ok)
    nx_ = np.empty(64, np.float64)
    ny_ = np.empty(64, np.float64)
    na_ = np.empty(64, np.float64)
    for s in range(n):
        cx = float(px[s])
        cy = float(py[s])
        nn = min(nbr_ptr[s + 1] - nbr_ptr[s], 64)
        for k in range(nn):
            j = nbr_idx[nbr_ptr[s] + k]
            nx_[k] = px[j]
            ny_[k] = py[j]
            na_[k] = amp[j]
        wxx = sigma0 * sigma0
        wyy = sigma0 * sigma0
        wxy = 0.0
        ok = False
        s0 = 0.0
        mxx = myy = mxy = 0.0
        for it in range(max_iter):
            det = wxx * wyy - wxy * wxy
            if det <= 1e-6:
                break
            ixx = wyy / det
            iyy = wxx / det
            ixy = -wxy / det
            rad = int(math.ceil(3.5 * math.sqrt(max(wxx, wyy))))
            rad = max(3, min(rad, rmax))
            x0 = int(round(cx))
            y0 = int(round(cy))
            s0 = 0.0
            sx = sy = 0.0
            sxx = sxy = syy = 0.0
            for y in range(max(0, y0 - rad), min(h, y0 + rad + 1)):
                dy = y - cy
                for x in range(max(0, x0 - rad), min(w, x0 + rad + 1)):
                    dx = x - cx
                    q = ixx * dx * dx + 2.0 * ixy * dx * dy + iyy * dy * dy
                    if q > 12.25:
                        continue
                    if nn > 0 and not _owner_ok(x, y, px[s], py[s], amp[s], nx_, ny_, na_, nn,
                                                inv2s2):
                        continue
                    v = r[y, x] * math.exp(-0.5 * q)
                    s0 += v
                    sx += v * dx
                    sy += v * dy
                    sxx += v * dx * dx
                    sxy += v * dx * dy
                    syy += v * dy * dy
            if s0 <= 0.0:
                break
            mx = sx / s0
            my = sy / s0
            mxx = sxx / s0 - mx * mx
            myy = syy / s0 - my * my
            mxy = sxy / s0 - mx * my
            cx += mx
            cy += my
            if abs(cx - px[s]) > rmax or abs(cy - py[s]) > rmax:
                break
            mdet = mxx * myy - mxy * mxy
            if mxx <= 0 or myy <= 0 or mdet <= 0:
                break
            # For a Gaussian star of covariance S under a Gaussian weight W the weighted
            # moments are M = (S^-1 + W^-1)^-1, so S = (M^-1 - W^-1)^-1; fall back to 2M when
            # noise makes that non-positive (the fixed point of both is W = S, M = S/2).
            a = myy / mdet - ixx
            b = -mxy / mdet - ixy
            c = mxx / mdet - iyy
            d2 = a * c - b * b
            if a > 0 and c > 0 and d2 > 0:
                nxx = c / d2
                nyy = a / d2
                nxy = -b / d2
            else:
                nxx = 2 * mxx
                nyy = 2 * myy
                nxy = 2 * mxy
            # damp growth so a noisy step cannot run away
            lim = 4.0 * max(wxx, wyy)
            if nxx > lim or nyy > lim:
                nxx = 0.5 * (nxx + wxx)
                nyy = 0.5 * (nyy + wyy)
                nxy = 0.5 * (nxy + wxy)
            change = abs(nxx - wxx) + abs(nyy - wyy) + abs(nxy - wxy)
            wxx, wyy, wxy = nxx, nyy, nxy
            if change < 1e-4 * (wxx + wyy) and abs(mx) + abs(my) < 1e-4:
                ok = True
                break
            if it == max_iter - 1:
                ok = change < 1e-2 * (wxx + wyy)
        if not ok:
            continue
        # flux of a Gaussian from the weighted sum: F = s0 * sqrt(det S / det M)
        mdet = mxx * myy - mxy * mxy
        sdet = wxx * wyy - wxy * wxy
        flux = s0 * math.sqrt(sdet / mdet) if mdet > 0 and sdet > 0 else 0.0
        x0 = int(round(cx))
        y0 = int(round(cy))
        pk = -1e30
        for y in range(max(0, y0 - 1), min(h, y0 + 2)):
            for x in range(max(0, x0 - 1), min(w, x0 + 2)):
                pk = max(pk, r[y, x])
        out[s, 0] = cx
        out[s, 1] = cy
        out[s, 2] = wxx
        out[s, 3] = wxy
        out[s, 4] = wyy
        out[s, 5] = flux
        out[s, 6] = pk
        out[s, 7] = 1.0
        out[s, 8] = 4.0 * math.pi * math.sqrt(sdet)
    return out


def measure_moments(
    r: NDArray[np.float32],
    px: NDArray[np.int64],
    py: NDArray[np.int64],
    amp: NDArray[np.float64],
    nbr_ptr: NDArray[np.int64],
    nbr_idx: NDArray[np.int64],
    sigma0: float,
    rmax: int = 20,
    max_iter: int = 40,
) -> NDArray[np.float64]:
    """Gaussian-weighted adaptive moments of each candidate on the background-free image ``r``.

    Returns an (N, 9) array: x, y, Sxx, Sxy, Syy (the star's pixel-domain covariance, exact
    for a Gaussian), flux, peak, ok flag, effective noise area in pixels.
    Neighbours (CSR ``nbr_ptr``/``nbr_idx``) claim the pixels where their own Gaussian model is
    brighter — a cheap deblending.
    """
    return _moments_kernel(r, px, py, amp.astype(np.float64), nbr_ptr, nbr_idx, float(sigma0),
                           int(rmax), int(max_iter))


# ---------------------------------------------------------------------------------------------
# PSF fit (Levenberg-Marquardt, elliptical Gaussian or Moffat)
# ---------------------------------------------------------------------------------------------


@nb.njit(**_JIT)
def _solve(a, b, n):
    """Solve a·x = b (n×n, symmetric positive) by Gaussian elimination with partial pivoting."""
    m = a.copy()
    v = b.copy()
    for i in range(n):
        p = i
        for k in range(i + 1, n):
            if abs(m[k, i]) > abs(m[p, i]):
                p = k
        if abs(m[p, i]) < 1e-300:
            return v, False
        if p != i:
            for k in range(n):
                t = m[i, k]
                m[i, k] = m[p, k]
                m[p, k] = t
            t = v[i]
            v[i] = v[p]
            v[p] = t
        for k in range(i + 1, n):
            f = m[k, i] / m[i, i]
            for j in range(i, n):
                m[k, j] -= f * m[i, j]
            v[k] -= f * v[i]
    for i in range(n - 1, -1, -1):
        s = v[i]
        for j in range(i + 1, n):
            s -= m[i, j] * v[j]
        v[i] = s / m[i, i]
    return v, True


@nb.njit(**_JIT)
def _model_jac(p, dx, dy, model, jac, npar):
    """Model value at (dx, dy) relative to the stamp's centre pixel; fills the Jacobian row."""
    amp = p[0]
    ex = dx - p[1]
    ey = dy - p[2]
    a = p[3]
    b = p[4]
    c = p[5]
    u = a * ex * ex + 2.0 * b * ex * ey + c * ey * ey
    if model == GAUSSIAN:
        e = math.exp(-0.5 * u)
        f = amp * e
        dfdu = -0.5 * f
        jac[0] = e
    else:
        # Moffat written with gamma = 1/beta: A·(1 + gamma·u/2)^(-1/gamma). Its core is the
        # Gaussian exp(-u/2) for every gamma and gamma = 0 *is* that Gaussian, so the fit moves
        # smoothly between the two (with beta, a Gaussian star drives beta to infinity).
        gam = p[7]
        t = 0.5 * gam * u
        if t < 1e-4:
            lg = 0.5 * u - gam * u * u / 8.0 + gam * gam * u * u * u / 24.0
            dl_dg = -u * u / 8.0 + gam * u * u * u / 12.0
        else:
            l1 = math.log1p(t)
            lg = l1 / gam
            dl_dg = -l1 / (gam * gam) + 0.5 * u / (gam * (1.0 + t))
        g = math.exp(-lg)
        f = amp * g
        dfdu = -0.5 * f / (1.0 + t)
        jac[0] = g
        jac[7] = -f * dl_dg
    jac[1] = dfdu * (-2.0 * (a * ex + b * ey))
    jac[2] = dfdu * (-2.0 * (b * ex + c * ey))
    jac[3] = dfdu * ex * ex
    jac[4] = dfdu * 2.0 * ex * ey
    jac[5] = dfdu * ey * ey
    jac[6] = 1.0
    return f + p[6]


@nb.njit(**_JIT)
def _fit_one(r, mask_ok, x0i, y0i, rad, p, model, max_iter, tol):
    """LM fit of one star; ``p`` is updated in place; returns (ok, chi2, npix, iterations)."""
    h, w = r.shape
    npar = 8 if model == MOFFAT else 7
    jt = np.zeros(8, np.float64)
    jtj = np.zeros((8, 8), np.float64)
    jtr = np.zeros(8, np.float64)
    trial = p.copy()
    lam = 1e-3
    rel = 1.0
    ylo = max(0, y0i - rad)
    yhi = min(h, y0i + rad + 1)
    xlo = max(0, x0i - rad)
    xhi = min(w, x0i + rad + 1)

    def chi2_of(q):
        s = 0.0
        for y in range(ylo, yhi):
            for x in range(xlo, xhi):
                if not mask_ok[y - ylo, x - xlo]:
                    continue
                f = _model_jac(q, float(x - x0i), float(y - y0i), model, jt, npar)
                d = r[y, x] - f
                s += d * d
        return s

    chi2 = chi2_of(p)
    npix = 0
    for y in range(ylo, yhi):
        for x in range(xlo, xhi):
            if mask_ok[y - ylo, x - xlo]:
                npix += 1
    if npix <= npar + 2:
        return False, chi2, npix, 0
    for it in range(max_iter):
        jtj[:, :] = 0.0
        jtr[:] = 0.0
        for y in range(ylo, yhi):
            for x in range(xlo, xhi):
                if not mask_ok[y - ylo, x - xlo]:
                    continue
                f = _model_jac(p, float(x - x0i), float(y - y0i), model, jt, npar)
                d = r[y, x] - f
                for i in range(npar):
                    ji = jt[i]
                    jtr[i] += ji * d
                    for j in range(i + 1):
                        jtj[i, j] += ji * jt[j]
        for i in range(npar):
            for j in range(i):
                jtj[j, i] = jtj[i, j]
        improved = False
        for _ in range(12):
            a = jtj[:npar, :npar].copy()
            for i in range(npar):
                a[i, i] *= 1.0 + lam
                a[i, i] += 1e-12
            step, good = _solve(a, jtr[:npar].copy(), npar)
            if not good:
                lam *= 10.0
                continue
            for i in range(npar):
                trial[i] = p[i] + step[i]
            # keep the quadratic form positive definite and beta in range
            if trial[0] <= 0 or trial[3] <= 0 or trial[5] <= 0 or \
                    trial[3] * trial[5] - trial[4] * trial[4] <= 0:
                lam *= 10.0
                continue
            if model == MOFFAT:
                trial[7] = min(max(trial[7], 0.0), 0.9)  # beta >= 1.11
            c2 = chi2_of(trial)
            if c2 < chi2:
                rel = (chi2 - c2) / max(chi2, 1e-300)
                for i in range(npar):
                    p[i] = trial[i]
                chi2 = c2
                lam = max(lam * 0.3, 1e-7)
                improved = True
                break
            lam *= 10.0
        if not improved or rel < tol:
            break
    return True, chi2, npix, it + 1


@nb.njit(**_JIT)
def _fit_kernel(r, xs, ys, sxx, sxy, syy, amp, nbr_ptr, nbr_idx, allx, ally, alla, idx, model,
                rad_factor, rmin, rmax, max_iter, sigma0, tol):
    n = idx.shape[0]
    # out: x, y, a, b, c, amp, bkg, beta, chi2, npix, ok, iterations
    out = np.zeros((n, 12), np.float64)
    p = np.zeros(8, np.float64)
    inv2s2 = 1.0 / (4.0 * sigma0 * sigma0)
    nx_ = np.empty(64, np.float64)
    ny_ = np.empty(64, np.float64)
    na_ = np.empty(64, np.float64)
    for t in range(n):
        s = idx[t]
        x0i = int(round(xs[s]))
        y0i = int(round(ys[s]))
        size = math.sqrt(max(sxx[s], syy[s]))
        rad = int(math.ceil(rad_factor * size))
        rad = max(rmin, min(rad, rmax))
        m = np.zeros((2 * rad + 1, 2 * rad + 1), np.bool_)
        nn = min(nbr_ptr[s + 1] - nbr_ptr[s], 64)
        for k in range(nn):
            j = nbr_idx[nbr_ptr[s] + k]
            nx_[k] = allx[j]
            ny_[k] = ally[j]
            na_[k] = alla[j]
        for y in range(y0i - rad, y0i + rad + 1):
            for x in range(x0i - rad, x0i + rad + 1):
                ok = True
                if nn > 0:
                    ok = _owner_ok(x, y, xs[s], ys[s], amp[s], nx_, ny_, na_, nn, inv2s2)
                m[y - y0i + rad, x - x0i + rad] = ok
        # crop mask to the image (the fit loops clip the same way)
        h, w = r.shape
        ylo = max(0, y0i - rad)
        xlo = max(0, x0i - rad)
        mk = m[ylo - (y0i - rad):, xlo - (x0i - rad):]
        det = sxx[s] * syy[s] - sxy[s] * sxy[s]
        if det <= 0:
            continue
        ia = syy[s] / det
        ib = -sxy[s] / det
        ic = sxx[s] / det
        p[1] = xs[s] - x0i
        p[2] = ys[s] - y0i
        p[6] = 0.0
        p[0] = max(amp[s], 1e-12)
        p[3] = ia
        p[4] = ib
        p[5] = ic
        if model == MOFFAT:
            p[7] = 0.25  # beta = 4 to start
        good, chi2, npix, iters = _fit_one(r, mk, x0i, y0i, rad, p, model, max_iter, tol)
        if not good:
            continue
        out[t, 0] = x0i + p[1]
        out[t, 1] = y0i + p[2]
        out[t, 2] = p[3]
        out[t, 3] = p[4]
        out[t, 4] = p[5]
        out[t, 5] = p[0]
        out[t, 6] = p[6]
        out[t, 7] = p[7] if model == MOFFAT else 0.0
        out[t, 8] = chi2
        out[t, 9] = npix
        out[t, 10] = 1.0 if abs(p[1]) < rad and abs(p[2]) < rad else 0.0
        out[t, 11] = iters
    return out


def fit_psf(
    r: NDArray[np.float32],
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    sxx: NDArray[np.float64],
    sxy: NDArray[np.float64],
    syy: NDArray[np.float64],
    amp: NDArray[np.float64],
    nbr_ptr: NDArray[np.int64],
    nbr_idx: NDArray[np.int64],
    idx: NDArray[np.int64],
    *,
    model: int,
    sigma0: float,
    rad_factor: float = 4.0,
    rmin: int = 5,
    rmax: int = 20,
    max_iter: int = 50,
    tol: float = 1e-5,
) -> NDArray[np.float64]:
    """Least-squares elliptical PSF fit of the stars ``idx`` on the background-free image ``r``.

    Model: B + A·exp(-u/2) (Gaussian) or B + A·(1 + γu/2)^(-1/γ) (Moffat, β = 1/γ, γ in
    [0, 0.9]) with the quadratic form u = a·dx² + 2b·dx·dy + c·dy² (the inverse covariance
    of the profile's Gaussian core), started from the adaptive moments. Stops when an accepted
    step lowers χ² by less than ``tol`` (relative). Returns an (len(idx), 12) array: x, y, a, b,
    c, A, B, γ, χ², pixels used, ok flag, iterations.
    """
    return _fit_kernel(r, x, y, sxx, sxy, syy, amp, nbr_ptr, nbr_idx, x, y, amp,
                       idx.astype(np.int64), int(model), float(rad_factor), int(rmin), int(rmax),
                       int(max_iter), float(sigma0), float(tol))


# ---------------------------------------------------------------------------------------------
# À trous (B3-spline) smoothing for the multiscale noise estimate
# ---------------------------------------------------------------------------------------------

_B3 = np.array([1.0, 4.0, 6.0, 4.0, 1.0], np.float32) / 16.0


@nb.njit(**_JIT)
def _mirror(i, n):
    # reflect about the edge pixels (…2 1 0 1 2…), repeated for holes wider than the image
    while i < 0 or i >= n:
        if i < 0:
            i = -i
        if i >= n:
            i = 2 * (n - 1) - i
    return i


@nb.njit(**_JIT)
def _atrous_kernel(img, d, out):
    h, w = img.shape
    tmp = np.empty((h, w), np.float32)
    k0, k1, k2 = 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0
    for y in range(h):
        for x in range(w):
            tmp[y, x] = (k0 * img[y, x]
                         + k1 * (img[y, _mirror(x - d, w)] + img[y, _mirror(x + d, w)])
                         + k2 * (img[y, _mirror(x - 2 * d, w)] + img[y, _mirror(x + 2 * d, w)]))
    for y in range(h):
        ym1 = _mirror(y - d, h)
        yp1 = _mirror(y + d, h)
        ym2 = _mirror(y - 2 * d, h)
        yp2 = _mirror(y + 2 * d, h)
        for x in range(w):
            out[y, x] = (k0 * tmp[y, x] + k1 * (tmp[ym1, x] + tmp[yp1, x])
                         + k2 * (tmp[ym2, x] + tmp[yp2, x]))
    return out


def atrous_smooth(img: NDArray[np.float32], d: int) -> NDArray[np.float32]:
    """One à trous step: correlate with the B3 spline [1 4 6 4 1]/16 with holes ``d`` (mirror)."""
    out = np.empty(img.shape, np.float32)
    return _atrous_kernel(np.ascontiguousarray(img, np.float32), int(d), out)


def atrous_smooth_ref(img: NDArray[np.float32], d: int) -> NDArray[np.float32]:
    """NumPy reference of :func:`atrous_smooth`."""
    from scipy.ndimage import correlate1d

    k = np.zeros(4 * d + 1)
    k[:: d] = _B3
    tmp = correlate1d(img.astype(np.float64), k, axis=1, mode="mirror")
    return correlate1d(tmp, k, axis=0, mode="mirror").astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Hough accumulator (trail detection)
# ---------------------------------------------------------------------------------------------


@nb.njit(**_JIT)
def hough_lines(xs, ys, n_theta, rho_max):
    """Accumulate points into (θ, ρ) bins: θ in [0, π) with n_theta bins, ρ in 1-pixel bins.

    ρ = x·cos θ + y·sin θ, stored at index round(ρ) + rho_max.
    """
    acc = np.zeros((n_theta, 2 * rho_max + 1), np.int32)
    cs = np.empty(n_theta)
    sn = np.empty(n_theta)
    for t in range(n_theta):
        th = math.pi * t / n_theta
        cs[t] = math.cos(th)
        sn[t] = math.sin(th)
    for i in range(xs.shape[0]):
        for t in range(n_theta):
            r = int(round(xs[i] * cs[t] + ys[i] * sn[t])) + rho_max
            if 0 <= r < acc.shape[1]:
                acc[t, r] += 1
    return acc


def hough_lines_ref(xs: NDArray, ys: NDArray, n_theta: int, rho_max: int) -> NDArray[np.int32]:
    """NumPy reference of :func:`hough_lines`."""
    th = np.pi * np.arange(n_theta) / n_theta
    r = np.rint(np.outer(xs, np.cos(th)) + np.outer(ys, np.sin(th))).astype(np.int64) + rho_max
    acc = np.zeros((n_theta, 2 * rho_max + 1), np.int32)
    t = np.broadcast_to(np.arange(n_theta), r.shape)
    ok = (r >= 0) & (r < acc.shape[1])
    np.add.at(acc, (t[ok], r[ok]), 1)
    return acc


def measure_moments_ref(
    r: NDArray[np.float32], px: int, py: int, sigma0: float, rmax: int = 20, max_iter: int = 40
) -> tuple[float, float, float, float, float, float] | None:
    """NumPy reference of :func:`measure_moments` for one isolated star.

    Returns (x, y, Sxx, Sxy, Syy, flux) or None when the iteration fails.
    """
    h, w = r.shape
    cx, cy = float(px), float(py)
    W = np.diag([sigma0**2, sigma0**2]).astype(np.float64)
    for it in range(max_iter):
        iw = np.linalg.inv(W)
        rad = int(np.clip(math.ceil(3.5 * math.sqrt(max(W[0, 0], W[1, 1]))), 3, rmax))
        x0, y0 = int(round(cx)), int(round(cy))
        ys = np.arange(max(0, y0 - rad), min(h, y0 + rad + 1))
        xs = np.arange(max(0, x0 - rad), min(w, x0 + rad + 1))
        dx = xs[None, :] - cx
        dy = ys[:, None] - cy
        q = iw[0, 0] * dx**2 + 2 * iw[0, 1] * dx * dy + iw[1, 1] * dy**2
        v = np.where(q <= 12.25, r[np.ix_(ys, xs)] * np.exp(-0.5 * q), 0.0)
        s0 = v.sum()
        if s0 <= 0:
            return None
        mx, my = (v * dx).sum() / s0, (v * dy).sum() / s0
        M = np.array([[(v * dx * dx).sum() / s0 - mx * mx, (v * dx * dy).sum() / s0 - mx * my],
                      [(v * dx * dy).sum() / s0 - mx * my, (v * dy * dy).sum() / s0 - my * my]])
        cx, cy = cx + mx, cy + my
        if np.linalg.det(M) <= 0 or M[0, 0] <= 0:
            return None
        A = np.linalg.inv(M) - iw
        if A[0, 0] > 0 and A[1, 1] > 0 and np.linalg.det(A) > 0:
            new = np.linalg.inv(A)
        else:
            new = 2 * M
        lim = 4.0 * max(W[0, 0], W[1, 1])
        if new[0, 0] > lim or new[1, 1] > lim:
            new = 0.5 * (new + W)
        change = np.abs(new - W)[[0, 1, 0], [0, 1, 1]].sum()
        W = new
        if change < 1e-4 * (W[0, 0] + W[1, 1]) and abs(mx) + abs(my) < 1e-4:
            flux = s0 * math.sqrt(np.linalg.det(W) / np.linalg.det(M))
            return cx, cy, W[0, 0], W[0, 1], W[1, 1], flux
    return None
