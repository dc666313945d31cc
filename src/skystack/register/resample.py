"""Resampling a frame onto the reference grid: Lanczos-3 (clamped), bicubic, bilinear.

``out(x_ref, y_ref) = image(H · [x_ref, y_ref, 1])``: ``H`` maps reference pixels to frame pixels
(``design.md``). Output pixels that map outside the frame are 0, meaning "no data".

The 2-D kernels are separable: six (Lanczos-3), four (bicubic) or two (bilinear) rows are
interpolated along x, then those values along y. Kernel weights are normalized to sum to 1, so a
constant image stays constant. Taps that fall off the frame edge reuse the edge pixel.

Clamping (deringing): each 1-D interpolation is kept from falling below the lowest of its taps.
The dark rings that Lanczos and cubic kernels draw around stars are exactly such undershoots, so
they vanish, while smooth data, star profiles and their peaks (which legitimately rise above the
samples) are untouched. Measured on Gaussian stars resampled through a rotation + 2 % scale +
projective term: flux changes by < 0.001 % at FWHM 3 px and +0.03 % at FWHM 2.4 px, but by
+1.2 % at FWHM 1.65 px — undersampled stars really do ring, and removing the dip adds its flux
(use ``clamp=False`` where photometry of undersampled stars matters). An earlier design that
scaled negative lobes down above a ratio threshold (as PixInsight's 0.3 threshold suggests)
added 1.9 % (FWHM 3 px) to 9 % (FWHM 1.65 px) to the same stars.

There are two implementations with identical arithmetic: numba kernels (:func:`warp`) and a plain
NumPy reference (:func:`warp_reference`) that the tests compare them against.
"""

from __future__ import annotations

import math
from typing import Literal

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

from skystack.errors import ConfigError

__all__ = ["METHODS", "Interpolation", "warp", "warp_reference"]

Interpolation = Literal["lanczos3", "bicubic", "bilinear"]
METHODS: dict[str, int] = {"bilinear": 0, "bicubic": 1, "lanczos3": 2}
_TAPS = {0: 2, 1: 4, 2: 6}
_FIRST = {0: 0, 1: -1, 2: -2}  # offset of the first tap from floor(x)

# Lanczos-3 weights come from a fine lookup table, linearly interpolated between 4096 phases per
# pixel (weight error ~1e-8, no positional quantisation), instead of six sin() calls per axis.
_LUT_N = 4096


def _lanczos3(d: NDArray[np.float64]) -> NDArray[np.float64]:
    d = np.abs(d)
    safe = np.maximum(d, 1e-12)
    out = 3.0 * np.sin(np.pi * safe) * np.sin(np.pi * safe / 3.0) / (np.pi * np.pi * safe * safe)
    return np.where(d < 1e-12, 1.0, np.where(d < 3.0, out, 0.0))


_LUT = _lanczos3(np.arange(_LUT_N + 1)[:, None] / _LUT_N - np.arange(-2, 4)[None, :])


def _weights_np(t: NDArray[np.float64], code: int) -> NDArray[np.float64]:
    """Normalized 1-D weights ``(n, taps)`` for sub-pixel phases ``t`` in [0, 1)."""
    if code == 0:
        w = np.stack([1.0 - t, t], axis=1)
    elif code == 1:  # Catmull-Rom cubic (a = -0.5)
        t2, t3 = t * t, t * t * t
        w = np.stack([-0.5 * t3 + t2 - 0.5 * t, 1.5 * t3 - 2.5 * t2 + 1.0,
                      -1.5 * t3 + 2.0 * t2 + 0.5 * t, 0.5 * t3 - 0.5 * t2], axis=1)
    else:
        f = t * _LUT_N
        i = np.minimum(f.astype(np.int64), _LUT_N - 1)
        a = (f - i)[:, None]
        w = (1.0 - a) * _LUT[i] + a * _LUT[i + 1]
    return w * (1.0 / w.sum(axis=1, keepdims=True))


def _combine_np(v: NDArray[np.float64], w: NDArray[np.float64], clamp: bool) -> NDArray[np.float64]:
    """Weighted sum along the last axis, floored at the lowest tap when clamping."""
    r = np.sum(v * w, axis=-1)
    return np.maximum(r, v.min(axis=-1)) if clamp else r


def _check(method: str) -> int:
    if method not in METHODS:
        raise ConfigError(f"unknown interpolation {method!r}; choose one of {', '.join(METHODS)}")
    return METHODS[method]


def _prepare(image: ArrayLike, H: ArrayLike, shape: tuple[int, int] | None
             ) -> tuple[NDArray[np.float32], NDArray[np.float64], tuple[int, int], bool]:
    img = np.asarray(image, dtype=np.float32)
    if img.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (C, H, W), got shape {img.shape}")
    mono = img.ndim == 2
    src = np.ascontiguousarray(img[None] if mono else img)
    h = np.asarray(H, dtype=np.float64)
    if h.shape != (3, 3) or not np.all(np.isfinite(h)):
        raise ValueError("H must be a finite 3x3 matrix")
    out_shape = tuple(int(s) for s in (shape if shape is not None else src.shape[1:]))
    return src, h, (out_shape[0], out_shape[1]), mono


def warp_reference(
    image: ArrayLike,
    H: ArrayLike,
    *,
    shape: tuple[int, int] | None = None,
    method: str = "lanczos3",
    clamp: bool = True,
) -> NDArray[np.float32]:
    """Plain NumPy version of :func:`warp` (same arguments, same arithmetic); slow, for tests."""
    code = _check(method)
    src, h, (ho, wo), mono = _prepare(image, H, shape)
    _, hs, ws = src.shape
    yy, xx = np.mgrid[0:ho, 0:wo].astype(np.float64)
    x, y = xx.ravel(), yy.ravel()
    den = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        xs = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / den
        ys = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / den
    valid = (den > 0) & (xs >= -0.5) & (xs <= ws - 0.5) & (ys >= -0.5) & (ys <= hs - 0.5)
    xs, ys = np.where(valid, xs, 0.0), np.where(valid, ys, 0.0)
    ix, iy = np.floor(xs), np.floor(ys)
    wx, wy = _weights_np(xs - ix, code), _weights_np(ys - iy, code)
    taps, first = _TAPS[code], _FIRST[code]
    cols = np.clip(ix.astype(np.int64)[:, None] + first + np.arange(taps), 0, ws - 1)
    rows = np.clip(iy.astype(np.int64)[:, None] + first + np.arange(taps), 0, hs - 1)
    clamp = bool(clamp) and code != 0
    out = np.zeros((src.shape[0], ho * wo), dtype=np.float32)
    for ch in range(src.shape[0]):
        plane = src[ch].astype(np.float64)
        row_vals = np.stack(
            [_combine_np(plane[rows[:, j][:, None], cols], wx, clamp) for j in range(taps)], axis=1
        )
        out[ch] = np.where(valid, _combine_np(row_vals, wy, clamp), 0.0)
    out = out.reshape(src.shape[0], ho, wo)
    return out[0] if mono else out


# ----------------------------------------------------------------------------- numba kernel


@numba.njit(cache=True, inline="always")
def _weights_nb(t: float, code: int, lut: NDArray[np.float64], w: NDArray[np.float64]) -> None:
    if code == 0:
        w[0] = 1.0 - t
        w[1] = t
        return
    if code == 1:
        t2 = t * t
        t3 = t2 * t
        w[0] = -0.5 * t3 + t2 - 0.5 * t
        w[1] = 1.5 * t3 - 2.5 * t2 + 1.0
        w[2] = -1.5 * t3 + 2.0 * t2 + 0.5 * t
        w[3] = 0.5 * t3 - 0.5 * t2
        s = 1.0 / (w[0] + w[1] + w[2] + w[3])
        for k in range(4):
            w[k] *= s
        return
    f = t * 4096.0
    i = min(int(f), 4095)
    a = f - i
    s = 0.0
    for k in range(6):
        w[k] = (1.0 - a) * lut[i, k] + a * lut[i + 1, k]
        s += w[k]
    s = 1.0 / s
    for k in range(6):
        w[k] *= s


@numba.njit(cache=True, inline="always")
def _row_sum(row: NDArray[np.float32], c: NDArray[np.int64], w: NDArray[np.float64], taps: int,
             clamp: bool) -> float:
    if taps == 6:  # unrolled: the Lanczos-3 default is the hot path
        v0 = np.float64(row[c[0]])
        v1 = np.float64(row[c[1]])
        v2 = np.float64(row[c[2]])
        v3 = np.float64(row[c[3]])
        v4 = np.float64(row[c[4]])
        v5 = np.float64(row[c[5]])
        r = w[0] * v0 + w[1] * v1 + w[2] * v2 + w[3] * v3 + w[4] * v4 + w[5] * v5
        if clamp:
            r = max(r, min(min(min(v0, v1), min(v2, v3)), min(v4, v5)))
        return r
    r = 0.0
    m = np.inf
    for i in range(taps):
        v = np.float64(row[c[i]])
        r += w[i] * v
        m = min(m, v)
    return max(r, m) if clamp else r


@numba.njit(cache=True, parallel=True)
def _warp_nb(src: NDArray[np.float32], h: NDArray[np.float64], out: NDArray[np.float32],
             code: int, clamp: bool, lut: NDArray[np.float64], taps: int, first: int) -> None:
    nch, hs, ws = src.shape
    _, ho, wo = out.shape
    # 64×64 output tiles keep the source rows a tile touches in cache at any rotation.
    tiles_y = (ho + 63) // 64
    tiles_x = (wo + 63) // 64
    for tile in numba.prange(tiles_y * tiles_x):
        ty0 = (tile // tiles_x) * 64
        tx0 = (tile % tiles_x) * 64
        wx = np.empty(6)
        wy = np.empty(6)
        cols = np.empty(6, dtype=np.int64)
        for yo in range(ty0, min(ty0 + 64, ho)):
            for xo in range(tx0, min(tx0 + 64, wo)):
                den = h[2, 0] * xo + h[2, 1] * yo + h[2, 2]
                if den <= 0.0:
                    continue
                xs = (h[0, 0] * xo + h[0, 1] * yo + h[0, 2]) / den
                ys = (h[1, 0] * xo + h[1, 1] * yo + h[1, 2]) / den
                if not (xs >= -0.5 and xs <= ws - 0.5 and ys >= -0.5 and ys <= hs - 0.5):
                    continue
                fx = math.floor(xs)
                fy = math.floor(ys)
                _weights_nb(xs - fx, code, lut, wx)
                _weights_nb(ys - fy, code, lut, wy)
                ix = int(fx) + first
                iy = int(fy) + first
                for i in range(taps):
                    cols[i] = min(max(ix + i, 0), ws - 1)
                for ch in range(nch):
                    plane = src[ch]
                    r = 0.0
                    m = np.inf
                    for j in range(taps):
                        v = _row_sum(plane[min(max(iy + j, 0), hs - 1)], cols, wx, taps, clamp)
                        r += wy[j] * v
                        m = min(m, v)
                    out[ch, yo, xo] = max(r, m) if clamp else r


def warp(
    image: ArrayLike,
    H: ArrayLike,
    *,
    shape: tuple[int, int] | None = None,
    method: str = "lanczos3",
    clamp: bool = True,
) -> NDArray[np.float32]:
    """Resample ``image`` onto the reference grid through ``H`` (reference pixel → frame pixel).

    Parameters
    ----------
    image : array_like
        (H, W) or (C, H, W) frame, float32 in [0, 1]; channels are resampled alike.
    H : array_like, shape (3, 3)
        ``out(x, y) = image(H · [x, y, 1])``.
    shape : (int, int), optional
        Output (rows, columns); defaults to the input's.
    method : {"lanczos3", "bicubic", "bilinear"}
        Interpolation kernel.
    clamp : bool
        Deringing: never let a 1-D interpolation fall below its lowest tap (removes the dark
        rings around stars; flux changes < 0.03 % for FWHM ≥ 2.4 px, +1 % for FWHM ≈ 1.6 px).
        No effect on bilinear, which cannot ring.

    Returns
    -------
    ndarray of float32
        Same number of channels as ``image``, on the output grid; 0 where the frame has no data.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.arange(12, dtype=np.float32).reshape(3, 4) / 12
    >>> shift = np.array([[1.0, 0, 1], [0, 1, 0], [0, 0, 1]])  # out(x, y) = img(x + 1, y)
    >>> np.round(warp(img, shift)[0] * 12, 4).tolist()
    [1.0, 2.0, 3.0, 0.0]
    """
    code = _check(method)
    src, h, (ho, wo), mono = _prepare(image, H, shape)
    out = np.zeros((src.shape[0], ho, wo), dtype=np.float32)
    _warp_nb(src, h, out, code, bool(clamp) and code != 0, _LUT, _TAPS[code], _FIRST[code])
    return out[0] if mono else out
