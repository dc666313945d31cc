"""Bayer colour-filter arrays: patterns, per-channel statistics and debayering.

A pattern is four letters naming the filters of the 2×2 cell in memory order: top-left, top-right,
bottom-left, bottom-right (``"RGGB"``). What the file says (BAYERPAT) is adjusted for how its rows
sit in memory (ROWORDER, XBAYROFF/YBAYROFF) by :func:`effective_pattern`, so every other function
here works on the pattern *as the pixels lie in the array*.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numba as nb
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from skystack.errors import SkystackError, SkystackWarning

__all__ = [
    "PATTERNS",
    "CFAError",
    "normalize_pattern",
    "effective_pattern",
    "channel_masks",
    "channel_index",
    "cfa_channel_means",
    "debayer",
    "DebayerMethod",
]

PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
DebayerMethod = Literal["rcd", "gradient", "bilinear", "superpixel", "split"]
_CHANNEL = {"R": 0, "G": 1, "B": 2}


class CFAError(SkystackError, ValueError):
    """A Bayer pattern is unknown or does not fit the data."""


def normalize_pattern(pattern: str | None) -> str | None:
    """Return a pattern from :data:`PATTERNS` (upper case, spaces removed), or None for mono.

    Raises
    ------
    CFAError
        For a pattern that is not a 2×2 RGGB-family Bayer pattern (e.g. X-Trans).
    """
    if pattern is None:
        return None
    p = str(pattern).strip().upper().replace(" ", "")
    if p in ("", "NONE", "MONO"):
        return None
    if p not in PATTERNS:
        msg = f"unsupported Bayer pattern {pattern!r} (expected one of {', '.join(PATTERNS)})"
        raise CFAError(msg)
    return p


def _flip_rows(p: str) -> str:
    return p[2:] + p[:2]


def _flip_cols(p: str) -> str:
    return p[1] + p[0] + p[3] + p[2]


def effective_pattern(
    bayerpat: str | None,
    *,
    row_order: str | None = None,
    height: int | None = None,
    x_offset: int = 0,
    y_offset: int = 0,
) -> str | None:
    """The pattern of the array as it lies in memory.

    Parameters
    ----------
    bayerpat : str or None
        BAYERPAT as written by the capture program, which describes the image read top-down.
    row_order : {"TOP-DOWN", "BOTTOM-UP"}, optional
        FITS ROWORDER. Memory keeps the file's row order, so for ``BOTTOM-UP`` data the first row
        in memory is the image's last row: the pattern shifts by ``height - 1`` rows.
    height : int, optional
        Image height; needed for ``BOTTOM-UP`` (an odd height leaves the pattern unchanged).
    x_offset, y_offset : int
        XBAYROFF / YBAYROFF: where the pattern starts; an odd offset shifts it by one.

    Returns
    -------
    str or None
    """
    p = normalize_pattern(bayerpat)
    if p is None:
        return None
    if y_offset % 2:
        p = _flip_rows(p)
    if x_offset % 2:
        p = _flip_cols(p)
    if row_order is not None and str(row_order).strip().upper() == "BOTTOM-UP":
        if height is None:
            msg = "ROWORDER BOTTOM-UP needs the image height to place the Bayer pattern"
            raise CFAError(msg)
        if (height - 1) % 2:
            p = _flip_rows(p)
    return p


def channel_index(pattern: str) -> NDArray[np.int8]:
    """2×2 array of channel numbers (0 R, 1 G, 2 B) for ``pattern``."""
    p = normalize_pattern(pattern)
    if p is None:
        msg = "a Bayer pattern is required"
        raise CFAError(msg)
    return np.array([[_CHANNEL[p[0]], _CHANNEL[p[1]]], [_CHANNEL[p[2]], _CHANNEL[p[3]]]], np.int8)


def channel_masks(pattern: str, shape: tuple[int, int]) -> NDArray[np.bool_]:
    """Boolean masks (3, H, W): where each of R, G, B was sampled."""
    idx = channel_index(pattern)
    h, w = shape
    tile = np.tile(idx, ((h + 1) // 2, (w + 1) // 2))[:h, :w]
    return np.stack([tile == c for c in range(3)])


def cfa_channel_means(
    data: NDArray[np.float32],
    pattern: str,
    *,
    low: float = 2e-5,
    high: float = 0.99998,
) -> NDArray[np.float64]:
    """Mean of each of the four CFA positions (2×2 cell order), ignoring clipped samples.

    Flats of one-shot-colour cameras are normalized per CFA position so that the colour balance
    of the lights is not changed by the flat (as PixInsight's separate CFA flat scaling does).
    """
    normalize_pattern(pattern)
    out = np.empty(4)
    for k, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        sub = data[dy::2, dx::2]
        good = sub[(sub > low) & (sub < high)]
        out[k] = float(good.mean()) if good.size else 0.0
    return out


_BILINEAR_G = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4
_BILINEAR_RB = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4


def _bilinear(cfa: NDArray[np.float32], masks: NDArray[np.bool_]) -> NDArray[np.float32]:
    out = np.empty((3,) + cfa.shape, np.float32)
    for c in range(3):
        kernel = _BILINEAR_G if c == 1 else _BILINEAR_RB
        sampled = np.where(masks[c], cfa, 0).astype(np.float32)
        # Normalized convolution: exact at the borders too (weights renormalized by coverage).
        num = ndimage.convolve(sampled, kernel, mode="mirror")
        den = ndimage.convolve(masks[c].astype(np.float32), kernel, mode="mirror")
        out[c] = np.where(masks[c], cfa, num / np.maximum(den, 1e-12))
    return out


def _green_gradients(cfa: NDArray[np.float32]) -> tuple[NDArray[np.float32], ...]:
    # Absolute gradients to the four neighbours at distance 2 (same colour), as used by
    # gradient-directed interpolation: small gradient → that direction is trusted more.
    p = np.pad(cfa, 2, mode="reflect")
    c = p[2:-2, 2:-2]
    n = np.abs(p[:-4, 2:-2] - c) + np.abs(p[1:-3, 2:-2] - p[3:-1, 2:-2])
    s = np.abs(p[4:, 2:-2] - c) + np.abs(p[3:-1, 2:-2] - p[1:-3, 2:-2])
    w = np.abs(p[2:-2, :-4] - c) + np.abs(p[2:-2, 1:-3] - p[2:-2, 3:-1])
    e = np.abs(p[2:-2, 4:] - c) + np.abs(p[2:-2, 3:-1] - p[2:-2, 1:-3])
    return n, s, w, e


def _gradient(cfa: NDArray[np.float32], masks: NDArray[np.bool_]) -> NDArray[np.float32]:
    """Gradient-thresholded demosaicing (``method="gradient"``).

    Green at R/B sites is the mean of the green neighbours whose directional gradients are at
    most ``min + 0.5·(max − min)`` of the four directions; R and B then follow from colour
    differences (R − G, B − G) interpolated bilinearly. The threshold idea comes from VNG
    (Chang et al. 1999), but this is not VNG: four directions instead of eight, green-only
    averaging, and no gradient-directed R/B step — hence its own name.
    """
    out = _bilinear(cfa, masks)
    p = np.pad(cfa, 1, mode="reflect")
    neigh = (p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:])  # n, s, w, e greens
    grads = np.stack(_green_gradients(cfa))
    gmin = grads.min(axis=0)
    gmax = grads.max(axis=0)
    thresh = gmin + 0.5 * (gmax - gmin)
    use = grads <= thresh + 1e-12
    num = sum(np.where(use[k], neigh[k], 0) for k in range(4))
    den = use.sum(axis=0)
    g_interp = num / np.maximum(den, 1)
    green = np.where(masks[1], cfa, g_interp).astype(np.float32)
    out[1] = green
    for c in (0, 2):
        diff = np.where(masks[c], cfa - green, 0).astype(np.float32)
        num_d = ndimage.convolve(diff, _BILINEAR_RB, mode="mirror")
        den_d = ndimage.convolve(masks[c].astype(np.float32), _BILINEAR_RB, mode="mirror")
        out[c] = np.where(masks[c], cfa, green + num_d / np.maximum(den_d, 1e-12))
    return out


_RCD_PAD = 8
_EPS = 1e-9


def _shift(a: NDArray[np.float32], dy: int, dx: int) -> NDArray[np.float32]:
    """``a`` sampled at (y + dy, x + dx), edge values repeated beyond the border."""
    h, w = a.shape
    p = max(abs(dy), abs(dx))
    if p == 0:
        return a
    padded = np.pad(a, p, mode="edge")
    return padded[p + dy : p + dy + h, p + dx : p + dx + w]


def _refine(d: NDArray[np.float32], nbrs: tuple[tuple[int, int], ...]) -> NDArray[np.float32]:
    """Where a pixel's discrimination is weak (near 0.5), borrow its neighbours' when stronger."""
    mean = sum(_shift(d, dy, dx) for dy, dx in nbrs) / len(nbrs)
    return np.where(np.abs(0.5 - d) < np.abs(0.5 - mean), mean, d).astype(np.float32)


def _rcd_ref(cfa: NDArray[np.float32], masks: NDArray[np.bool_]) -> NDArray[np.float32]:
    """Ratio-corrected demosaicing (NumPy reference of the numba :func:`_rcd`), after the
    published description of RCD (L. Sanz Rodríguez, 2017; Siril's default), with our own
    gradient statistics:

    1. directional discrimination: 1-D gradient energies along the vertical, horizontal and both
       diagonals, turned into a V/H (and P/Q) blend factor, borrowed from the neighbourhood where
       the pixel's own is indecisive;
    2. a low-pass image ``LPF = [1 2 1; 2 4 2; 1 2 1] ⊛ CFA`` (grey, nearly artefact-free);
    3. green at R/B sites from each neighbour, ratio-corrected:
       ``G_east = G(1) · 2·LPF(0) / (LPF(0) + LPF(2))``, directions weighted by their gradients
       and blended with the V/H factor;
    4. R and B from colour differences (R − G, B − G): first at B/R sites along the diagonals
       (P/Q blend), then at G sites along the axes (V/H blend).

    The ratios keep hard edges (stars) free of the over- and undershoot of colour-difference
    methods. The mosaic is mirror-padded by 8 pixels (which preserves the Bayer phase), so the
    borders are treated like the interior.
    """
    p = _RCD_PAD
    c = np.pad(np.asarray(cfa, np.float32), p, mode="reflect")
    m = np.pad(masks, ((0, 0), (p, p), (p, p)), mode="reflect")
    is_g = m[1]
    s = lambda a, dy, dx: _shift(a, dy, dx)  # noqa: E731 - local shorthand

    # 1. directional gradient energies (same-colour steps at distance 2, mixed steps at 1)
    def energy(dy: int, dx: int) -> NDArray[np.float32]:
        g = (np.abs(s(c, -dy, -dx) - s(c, dy, dx)) * 2
             + np.abs(c - s(c, -2 * dy, -2 * dx)) + np.abs(c - s(c, 2 * dy, 2 * dx)))
        return g * g

    def smooth_along(e: NDArray[np.float32], dy: int, dx: int) -> NDArray[np.float32]:
        return s(e, -dy, -dx) + 2 * e + s(e, dy, dx)

    v = smooth_along(energy(1, 0), 0, 1)  # vertical gradients, pooled across columns
    h = smooth_along(energy(0, 1), 1, 0)
    vh = _refine((v / (v + h + _EPS)).astype(np.float32), ((-1, -1), (-1, 1), (1, -1), (1, 1)))
    pd = smooth_along(energy(1, 1), 1, -1)  # NW–SE gradients, pooled along the other diagonal
    qd = smooth_along(energy(1, -1), 1, 1)
    pq = _refine((pd / (pd + qd + _EPS)).astype(np.float32), ((-1, 0), (1, 0), (0, -1), (0, 1)))

    # 2. low-pass image
    lpf = ndimage.correlate(c, np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 16,
                            mode="mirror")
    lpf = np.maximum(lpf, 0)

    # 3. green at R and B sites: one ratio-corrected estimate per neighbour, gradient-weighted
    def g_estimate(dy: int, dx: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        l0, l2 = lpf, s(lpf, 2 * dy, 2 * dx)
        den = l0 + l2
        ratio = np.where(den > 1e-6, 2 * l0 / np.maximum(den, 1e-6), 1.0)
        est = s(c, dy, dx) * ratio
        grad = (np.abs(s(c, dy, dx) - s(c, -dy, -dx)) + np.abs(c - s(c, 2 * dy, 2 * dx))
                + np.abs(s(c, dy, dx) - s(c, 3 * dy, 3 * dx)))
        return est, 1.0 / (grad * grad + _EPS)

    def blend(pairs: list[tuple[NDArray[np.float32], NDArray[np.float32]]]) -> NDArray[np.float32]:
        num = sum(e * w for e, w in pairs)
        return num / sum(w for _, w in pairs)

    g_v = blend([g_estimate(-1, 0), g_estimate(1, 0)])
    g_h = blend([g_estimate(0, -1), g_estimate(0, 1)])
    green = np.where(is_g, c, g_v * (1 - vh) + g_h * vh).astype(np.float32)

    # 4. R and B from colour differences: diagonals at the opposite sites, then axes at G sites
    def diff_blend(d: NDArray[np.float32], offs: tuple[tuple[int, int], tuple[int, int]]
                   ) -> NDArray[np.float32]:
        pairs = []
        for dy, dx in offs:
            grad = np.abs(s(green, dy, dx) - s(green, -dy, -dx)) + np.abs(
                green - s(green, 2 * dy, 2 * dx))
            pairs.append((s(d, dy, dx), 1.0 / (grad * grad + _EPS)))
        return blend(pairs)

    out = np.empty((3,) + c.shape, np.float32)
    out[1] = green
    planes = {}
    for ch in (0, 2):
        d = np.where(m[ch], c - green, 0).astype(np.float32)
        diag = (diff_blend(d, ((-1, -1), (1, 1))) * (1 - pq)
                + diff_blend(d, ((-1, 1), (1, -1))) * pq)
        other = m[2 - ch]
        d = np.where(other, diag, d).astype(np.float32)  # R−G (B−G) now at every non-G site
        axial = (diff_blend(d, ((-1, 0), (1, 0))) * (1 - vh)
                 + diff_blend(d, ((0, -1), (0, 1))) * vh)
        d = np.where(is_g, axial, d)
        planes[ch] = np.where(m[ch], c, green + d)
    out[0], out[2] = planes[0], planes[2]
    return out[:, p:-p, p:-p].copy()


@nb.njit(cache=True, nogil=True)
def _at(a, y, x):  # noqa: ANN001, ANN202
    """a[y, x] with indices clamped to the array (edge values repeated)."""
    h, w = a.shape
    return a[min(max(y, 0), h - 1), min(max(x, 0), w - 1)]


@nb.njit(cache=True, nogil=True)
def _energy(c, y, x, dy, dx):  # noqa: ANN001, ANN202
    g = (np.float32(2) * abs(_at(c, y - dy, x - dx) - _at(c, y + dy, x + dx))
         + abs(c[y, x] - _at(c, y - 2 * dy, x - 2 * dx))
         + abs(c[y, x] - _at(c, y + 2 * dy, x + 2 * dx)))
    return g * g


@nb.njit(cache=True, nogil=True)
def _diff_pair(green, d, y, x, dirs, k0, eps):  # noqa: ANN001, ANN202
    """Gradient-weighted mean of the colour difference ``d`` along directions k0 and k0 + 1.

    Scalar accumulators only: this runs once per pixel and must not allocate.
    """
    num = den = np.float32(0)
    for k in range(k0, k0 + 2):
        dy, dx = dirs[k]
        grad = (abs(_at(green, y + dy, x + dx) - _at(green, y - dy, x - dx))
                + abs(green[y, x] - _at(green, y + 2 * dy, x + 2 * dx)))
        wgt = np.float32(1) / (grad * grad + eps)
        num += _at(d, y + dy, x + dx) * wgt
        den += wgt
    return num / den


@nb.njit(cache=True, nogil=True)
def _rcd_kernel(c, is_r, is_g, is_b):  # noqa: ANN001, ANN202, C901
    """numba twin of :func:`_rcd_ref` on the padded mosaic (same statistics, same edge rule)."""
    h, w = c.shape
    eps = np.float32(_EPS)
    half = np.float32(0.5)
    ev = np.empty((h, w), np.float32)
    eh = np.empty((h, w), np.float32)
    ep = np.empty((h, w), np.float32)
    eq = np.empty((h, w), np.float32)
    for y in range(h):
        for x in range(w):
            ev[y, x] = _energy(c, y, x, 1, 0)
            eh[y, x] = _energy(c, y, x, 0, 1)
            ep[y, x] = _energy(c, y, x, 1, 1)
            eq[y, x] = _energy(c, y, x, 1, -1)
    vh0 = np.empty((h, w), np.float32)
    pq0 = np.empty((h, w), np.float32)
    for y in range(h):
        for x in range(w):
            v = _at(ev, y, x - 1) + 2 * ev[y, x] + _at(ev, y, x + 1)
            hh = _at(eh, y - 1, x) + 2 * eh[y, x] + _at(eh, y + 1, x)
            vh0[y, x] = v / (v + hh + eps)
            p = _at(ep, y - 1, x + 1) + 2 * ep[y, x] + _at(ep, y + 1, x - 1)
            q = _at(eq, y - 1, x - 1) + 2 * eq[y, x] + _at(eq, y + 1, x + 1)
            pq0[y, x] = p / (p + q + eps)
    vh = np.empty((h, w), np.float32)
    pq = np.empty((h, w), np.float32)
    lpf = np.empty((h, w), np.float32)
    for y in range(h):
        for x in range(w):
            m = (_at(vh0, y - 1, x - 1) + _at(vh0, y - 1, x + 1) + _at(vh0, y + 1, x - 1)
                 + _at(vh0, y + 1, x + 1)) / np.float32(4)
            vh[y, x] = m if abs(half - vh0[y, x]) < abs(half - m) else vh0[y, x]
            m = (_at(pq0, y - 1, x) + _at(pq0, y + 1, x) + _at(pq0, y, x - 1)
                 + _at(pq0, y, x + 1)) / np.float32(4)
            pq[y, x] = m if abs(half - pq0[y, x]) < abs(half - m) else pq0[y, x]
            s = (_at(c, y - 1, x - 1) + 2 * _at(c, y - 1, x) + _at(c, y - 1, x + 1)
                 + 2 * _at(c, y, x - 1) + 4 * c[y, x] + 2 * _at(c, y, x + 1)
                 + _at(c, y + 1, x - 1) + 2 * _at(c, y + 1, x) + _at(c, y + 1, x + 1))
            lpf[y, x] = max(s / np.float32(16), np.float32(0))
    green = np.empty((h, w), np.float32)
    dirs = ((-1, 0), (1, 0), (0, -1), (0, 1))
    for y in range(h):
        for x in range(w):
            if is_g[y, x]:
                green[y, x] = c[y, x]
                continue
            num_v = den_v = num_h = den_h = np.float32(0)
            for k in range(4):
                dy, dx = dirs[k]
                l0 = lpf[y, x]
                l2 = _at(lpf, y + 2 * dy, x + 2 * dx)
                den = l0 + l2
                ratio = np.float32(2) * l0 / den if den > np.float32(1e-6) else np.float32(1)
                n1 = _at(c, y + dy, x + dx)
                grad = (abs(n1 - _at(c, y - dy, x - dx))
                        + abs(c[y, x] - _at(c, y + 2 * dy, x + 2 * dx))
                        + abs(n1 - _at(c, y + 3 * dy, x + 3 * dx)))
                wgt = np.float32(1) / (grad * grad + eps)
                if k < 2:
                    num_v += n1 * ratio * wgt
                    den_v += wgt
                else:
                    num_h += n1 * ratio * wgt
                    den_h += wgt
            green[y, x] = (num_v / den_v) * (1 - vh[y, x]) + (num_h / den_h) * vh[y, x]
    out = np.empty((3, h, w), np.float32)
    out[1] = green
    diag = ((-1, -1), (1, 1), (-1, 1), (1, -1))
    d = np.empty((h, w), np.float32)
    d2 = np.empty((h, w), np.float32)
    for ch in (0, 2):
        own = is_r if ch == 0 else is_b
        other = is_b if ch == 0 else is_r
        for y in range(h):
            for x in range(w):
                d[y, x] = c[y, x] - green[y, x] if own[y, x] else np.float32(0)
        for y in range(h):  # colour difference at the opposite sites, along the diagonals
            for x in range(w):
                if not other[y, x]:
                    d2[y, x] = d[y, x]
                    continue
                d2[y, x] = (_diff_pair(green, d, y, x, diag, 0, eps) * (1 - pq[y, x])
                            + _diff_pair(green, d, y, x, diag, 2, eps) * pq[y, x])
        for y in range(h):  # then at the G sites, along the axes
            for x in range(w):
                if own[y, x]:
                    out[ch, y, x] = c[y, x]
                    continue
                dd = d2[y, x]
                if is_g[y, x]:
                    dd = (_diff_pair(green, d2, y, x, dirs, 0, eps) * (1 - vh[y, x])
                          + _diff_pair(green, d2, y, x, dirs, 2, eps) * vh[y, x])
                out[ch, y, x] = green[y, x] + dd
    return out


def _rcd(cfa: NDArray[np.float32], masks: NDArray[np.bool_]) -> NDArray[np.float32]:
    """RCD via the numba kernel (about 20× faster than :func:`_rcd_ref`, same numbers)."""
    p = _RCD_PAD
    c = np.pad(np.asarray(cfa, np.float32), p, mode="reflect")
    m = np.pad(masks, ((0, 0), (p, p), (p, p)), mode="reflect")
    return _rcd_kernel(c, m[0], m[1], m[2])[:, p:-p, p:-p].copy()


def debayer(
    cfa: NDArray[np.float32],
    pattern: str,
    *,
    method: DebayerMethod = "rcd",
) -> NDArray[np.float32]:
    """Turn a CFA mosaic (H, W) into colour (3, H, W) — or (3, H/2, W/2) for super-pixel.

    Parameters
    ----------
    cfa : ndarray, (H, W)
        The mosaic, as it lies in memory.
    pattern : str
        The pattern in memory order (see :func:`effective_pattern`).
    method : {"rcd", "gradient", "bilinear", "superpixel", "split"}
        ``rcd``: ratio-corrected demosaicing, the default (as Siril's): sharpest, least colour
        overshoot on stars (see ``tests/test_cfa.py`` for the errors against the truth);
        ``gradient``: a simpler gradient-thresholded method; ``bilinear``: fastest
        full-resolution method; ``superpixel``: one RGB pixel per 2×2 cell (no interpolation,
        half size); ``split``: like super-pixel but returns the four CFA planes (R, G1, G2, B)
        separately, shape (4, H/2, W/2). ``"vng"`` is accepted for now as a deprecated name of
        ``gradient`` (it never was VNG) and warns.

    Returns
    -------
    ndarray of float32
    """
    arr = np.asarray(cfa, dtype=np.float32)
    if arr.ndim != 2:
        msg = f"debayer needs a 2-D mosaic, got shape {arr.shape}"
        raise CFAError(msg)
    idx = channel_index(pattern)
    if method in ("superpixel", "split"):
        h2, w2 = arr.shape[0] // 2, arr.shape[1] // 2
        planes = {
            (dy, dx): arr[dy : 2 * h2 : 2, dx : 2 * w2 : 2] for dy in (0, 1) for dx in (0, 1)
        }
        by_colour: dict[int, list[NDArray[np.float32]]] = {0: [], 1: [], 2: []}
        for (dy, dx), plane in planes.items():
            by_colour[int(idx[dy, dx])].append(plane)
        if method == "split":
            return np.stack([by_colour[0][0], by_colour[1][0], by_colour[1][1], by_colour[2][0]])
        return np.stack(
            [by_colour[0][0], (by_colour[1][0] + by_colour[1][1]) / 2, by_colour[2][0]]
        ).astype(np.float32)
    masks = channel_masks(pattern, arr.shape)
    if method == "bilinear":
        return _bilinear(arr, masks)
    if method == "vng":
        warnings.warn("debayer method 'vng' is deprecated: it was never VNG — use 'rcd' (the "
                      "default) or 'gradient' (the same algorithm as before)", SkystackWarning,
                      stacklevel=2)
        method = "gradient"
    if method == "gradient":
        return _gradient(arr, masks)
    if method == "rcd":
        return _rcd(arr, masks)
    msg = f"unknown debayer method {method!r}"
    raise CFAError(msg)
