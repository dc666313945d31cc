"""Bayer colour-filter arrays: patterns, per-channel statistics and debayering.

A pattern is four letters naming the filters of the 2×2 cell in memory order: top-left, top-right,
bottom-left, bottom-right (``"RGGB"``). What the file says (BAYERPAT) is adjusted for how its rows
sit in memory (ROWORDER, XBAYROFF/YBAYROFF) by :func:`effective_pattern`, so every other function
here works on the pattern *as the pixels lie in the array*.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from skystack.errors import SkystackError

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
DebayerMethod = Literal["bilinear", "vng", "superpixel", "split"]
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


def _vng_green_weights(cfa: NDArray[np.float32]) -> tuple[NDArray[np.float32], ...]:
    # Absolute gradients to the four neighbours at distance 2 (same colour), as used by
    # gradient-directed interpolation: small gradient → that direction is trusted more.
    p = np.pad(cfa, 2, mode="reflect")
    c = p[2:-2, 2:-2]
    n = np.abs(p[:-4, 2:-2] - c) + np.abs(p[1:-3, 2:-2] - p[3:-1, 2:-2])
    s = np.abs(p[4:, 2:-2] - c) + np.abs(p[3:-1, 2:-2] - p[1:-3, 2:-2])
    w = np.abs(p[2:-2, :-4] - c) + np.abs(p[2:-2, 1:-3] - p[2:-2, 3:-1])
    e = np.abs(p[2:-2, 4:] - c) + np.abs(p[2:-2, 3:-1] - p[2:-2, 1:-3])
    return n, s, w, e


def _vng(cfa: NDArray[np.float32], masks: NDArray[np.bool_]) -> NDArray[np.float32]:
    """Gradient-directed demosaicing (a compact variant of threshold-based VNG).

    Green at R/B sites is interpolated from the neighbours whose gradients are at most
    ``min + 0.5·(max − min)`` of the four directions; R and B then follow from colour
    differences (R − G, B − G) interpolated bilinearly, which keeps edges free of colour zippers.
    """
    out = _bilinear(cfa, masks)
    p = np.pad(cfa, 1, mode="reflect")
    neigh = (p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:])  # n, s, w, e greens
    grads = np.stack(_vng_green_weights(cfa))
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


def debayer(
    cfa: NDArray[np.float32],
    pattern: str,
    *,
    method: DebayerMethod = "vng",
) -> NDArray[np.float32]:
    """Turn a CFA mosaic (H, W) into colour (3, H, W) — or (3, H/2, W/2) for super-pixel.

    Parameters
    ----------
    cfa : ndarray, (H, W)
        The mosaic, as it lies in memory.
    pattern : str
        The pattern in memory order (see :func:`effective_pattern`).
    method : {"vng", "bilinear", "superpixel", "split"}
        ``vng``: gradient-directed, the default (sharp, few colour artefacts); ``bilinear``:
        fastest full-resolution method; ``superpixel``: one RGB pixel per 2×2 cell (no
        interpolation, half size); ``split``: like super-pixel but returns the four CFA planes
        (R, G1, G2, B) separately, shape (4, H/2, W/2).

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
        return _vng(arr, masks)
    msg = f"unknown debayer method {method!r}"
    raise CFAError(msg)
