"""Light and flat calibration: bias, (scaled or optimized) dark, flat, pedestal, cosmetic correction.

The arithmetic follows PixInsight's ImageCalibration (``reference/wbpp.md`` §3.3)::

    out = (L − B − k·(D − B)) / (F / s) + pedestal        with both bias and dark
    out = (L − k·D) / (F / s) + pedestal                  dark only (k must be 1: D holds the bias)
    out = (L − B) / (F / s) + pedestal                    bias only

where ``s`` is the mean of the master flat (per CFA position for one-shot colour), ``k`` the dark
scale (exposure ratio from the link plan, or found by dark optimization). Flat pixels below
``flat_floor · s`` are never divided by: they are marked bad and repaired by cosmetic correction
(or set to 0 = "no data" when cosmetic correction is off).

Everything here is pure NumPy on float32 arrays in [0, 1]; the file shell is
:func:`calibrate_files`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numba as nb
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from skystack.cfa import cfa_channel_means
from skystack.errors import SkystackError

__all__ = [
    "CalibrationConfig",
    "CalibrationResult",
    "CalibrationError",
    "calibrate_frame",
    "PreparedMasters",
    "prepare_masters",
    "calibrate_prepared",
    "auto_pedestal",
    "optimize_dark_scale",
    "find_defects_in_dark",
    "find_defects_in_light",
    "repair_pixels",
    "mrs_noise",
    "flat_scale",
    "calibrate_files",
    "output_stem",
]

DN = 65535.0


class CalibrationError(SkystackError, ValueError):
    """Calibration frames do not fit the frame being calibrated."""


@dataclass(frozen=True)
class CalibrationConfig:
    """Options of :func:`calibrate_frame`.

    Attributes
    ----------
    pedestal : "auto", float or None
        Output pedestal in DN (of 65535). ``"auto"``: the smallest that leaves at most
        ``pedestal_limit`` of the pixels at or below 0 (PixInsight's automatic pedestal).
    pedestal_limit : float
        Fraction of pixels allowed to stay ≤ 0 with the automatic pedestal.
    optimize_dark : bool
        Find the dark scale that minimizes the noise of the result instead of using the plan's.
    flat_floor : float
        Flat pixels below this fraction of the flat's mean are bad (never divided by).
    cosmetic : bool
        Repair hot and cold pixels (from the master dark and detected in the frame).
    hot_sigma, cold_sigma : float
        Thresholds, in robust sigmas of the master dark, for hot and cold pixels.
    light_sigma : float
        Threshold for isolated defects found in the frame itself: a pixel that stands above
        (or below) *every* same-colour neighbour by this many noise sigmas.
    """

    pedestal: Literal["auto"] | float | None = "auto"
    pedestal_limit: float = 1e-4
    optimize_dark: bool = False
    flat_floor: float = 0.05
    cosmetic: bool = True
    hot_sigma: float = 10.0
    cold_sigma: float = 10.0
    light_sigma: float = 8.0


@dataclass
class CalibrationResult:
    """A calibrated frame and what was done to it."""

    data: NDArray[np.float32]
    pedestal_dn: float = 0.0
    dark_scale: float | None = None
    bad_flat_pixels: int = 0
    hot_pixels_from_dark: int = 0
    cold_pixels_from_dark: int = 0
    defects_in_frame: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def repaired(self) -> int:
        """Total number of pixels replaced by cosmetic correction."""
        return self.hot_pixels_from_dark + self.cold_pixels_from_dark + self.defects_in_frame


def _check_shape(name: str, arr: NDArray[np.float32] | None, shape: tuple[int, ...]) -> None:
    if arr is not None and arr.shape != shape:
        msg = f"master {name} has shape {arr.shape}, the frame {shape} — wrong binning or size"
        raise CalibrationError(msg)


def _robust_sigma(x: NDArray[np.floating]) -> tuple[float, float]:
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med)))
    return med, 1.4826 * mad


def mrs_noise(image: NDArray[np.float32], *, k: float = 3.0, iterations: int = 5) -> float:
    """Noise sigma from the first à-trous (B3-spline) wavelet layer with k-sigma clipping.

    The first layer holds almost only noise; its clipped standard deviation divided by the
    layer's response to unit white noise (0.8908) estimates the per-pixel Gaussian sigma.
    """
    b3 = np.array([1, 4, 6, 4, 1], np.float32) / 16
    arr = np.asarray(image, np.float32)
    smooth = ndimage.convolve1d(ndimage.convolve1d(arr, b3, axis=-1, mode="mirror"), b3,
                                axis=-2, mode="mirror")
    w1 = (arr - smooth).ravel()
    w1 = w1[np.isfinite(w1)]
    sigma = float(np.std(w1))
    for _ in range(iterations):
        keep = np.abs(w1) < k * sigma
        if not keep.any():
            break
        new = float(np.std(w1[keep]))
        if abs(new - sigma) <= 1e-6 * max(sigma, 1e-30):
            sigma = new
            break
        sigma = new
    return sigma / 0.8908


def _frame_noise(image: NDArray[np.float32], *, max_pixels: int = 1 << 20) -> float:
    """:func:`mrs_noise` of a large frame from 4 evenly spaced row bands of ``max_pixels`` in all:
    1 Mpx pins the noise to ~0.2 %, plenty for a defect threshold, at a fraction of the cost."""
    h, w = image.shape[-2:]
    if h * w <= max_pixels:
        return mrs_noise(image)
    rows = max(16, max_pixels // (4 * w))
    starts = np.linspace(0, h - rows, 4).astype(int)
    return float(np.median([mrs_noise(image[r : r + rows]) for r in starts]))


def flat_scale(flat: NDArray[np.float32], *, cfa_pattern: str | None = None) -> NDArray[np.float32]:
    """The divisor map ``s`` used for flat-fielding: the flat's mean, per CFA position if CFA.

    Returns an array broadcastable to the flat (a scalar array for mono, a (H, W) tile for CFA).
    """
    if cfa_pattern is None:
        good = flat[(flat > 2e-5) & (flat < 0.99998)]
        if good.size == 0:
            msg = "the master flat has no usable pixels (all zero or saturated)"
            raise CalibrationError(msg)
        return np.asarray(good.mean(), np.float32)
    means = cfa_channel_means(flat, cfa_pattern)
    if np.any(means <= 0):
        msg = "the master flat has a CFA channel with no usable pixels"
        raise CalibrationError(msg)
    h, w = flat.shape[-2:]
    tile = np.array([[means[0], means[1]], [means[2], means[3]]], np.float32)
    return np.tile(tile, ((h + 1) // 2, (w + 1) // 2))[:h, :w]


def auto_pedestal(data: NDArray[np.float32], *, limit: float = 1e-4) -> float:
    """Smallest pedestal (DN) that leaves at most ``limit`` of the pixels at or below zero.

    Mirrors PixInsight's automatic output pedestal: returns 0 when fewer than ``limit·N`` samples
    are ≤ 2·eps, else ``max(1, round(65535·|A[n−1]|))`` with A the sorted low samples.
    """
    eps2 = 2 * np.finfo(np.float32).eps
    flat = np.asarray(data).ravel()
    low = flat[flat < eps2]
    n = max(1, int(limit * flat.size))
    if low.size < n:
        return 0.0
    low = np.sort(low)
    return float(max(1.0, round(DN * abs(float(low[n - 1])))))


def optimize_dark_scale(
    light: NDArray[np.float32],
    dark: NDArray[np.float32],
    *,
    low_sigma: float = 3.0,
    bracket: tuple[float, float] = (0.0, 3.0),
    tol: float = 1e-4,
) -> float:
    """The factor k that minimizes the noise of ``light − k·dark`` (PixInsight's dark optimization).

    ``light`` must already have the bias removed and ``dark`` be bias-subtracted. Dark pixels
    below median + ``low_sigma``·sigma carry no thermal signal worth fitting and are zeroed for
    the search; the noise is the à-trous first-layer estimate (:func:`mrs_noise`), minimized by
    golden-section search over ``bracket``.
    """
    med, sig = _robust_sigma(dark[:: max(1, dark.shape[0] // 256), :: max(1, dark.shape[1] // 256)])
    d = np.where(dark > med + low_sigma * sig, dark, 0).astype(np.float32)
    if np.count_nonzero(d) < 16:
        return 1.0

    def cost(k: float) -> float:
        return mrs_noise(light - np.float32(k) * d)

    a, b = bracket
    g = (np.sqrt(5) - 1) / 2
    c, e = b - g * (b - a), a + g * (b - a)
    fc, fe = cost(c), cost(e)
    while b - a > tol:
        if fc < fe:
            b, e, fe = e, c, fc
            c = b - g * (b - a)
            fc = cost(c)
        else:
            a, c, fc = c, e, fe
            e = a + g * (b - a)
            fe = cost(e)
    return float((a + b) / 2)


def find_defects_in_dark(
    dark: NDArray[np.float32], *, hot_sigma: float = 10.0, cold_sigma: float = 10.0
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Hot and cold pixel masks from a master dark.

    A defect lies ``hot_sigma`` (``cold_sigma``) robust sigmas above (below) the dark's median
    *and* as far from the median of its 8 neighbours: amp glow and other smooth structure are
    dark signal that subtraction removes, not defects; a pair of hot pixels still counts (each
    one's neighbour median is the background).
    """
    step = max(1, int(np.sqrt(dark.size / 1e6)))
    med, sig = _robust_sigma(dark[::step, ::step])
    sig = max(sig, 1e-7)
    masks = []
    for cand, sign, k in ((dark > med + hot_sigma * sig, 1.0, hot_sigma),
                          (dark < med - cold_sigma * sig, -1.0, cold_sigma)):
        ys, xs = np.nonzero(cand)
        if ys.size:
            h, w = dark.shape
            nbrs = np.stack([dark[np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)]
                             for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx])
            local = np.median(nbrs, axis=0)
            isolated = sign * (dark[ys, xs] - local) > k * sig
            cand[ys[~isolated], xs[~isolated]] = False
        masks.append(cand)
    return masks[0], masks[1]


def _neighbour_extrema(
    data: NDArray[np.float32], step: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Max and min over the 8 neighbours at distance ``step`` (2 for CFA: same colour)."""
    p = np.pad(data, step, mode="reflect")
    h, w = data.shape
    hi = np.full(data.shape, -np.inf, np.float32)
    lo = np.full(data.shape, np.inf, np.float32)
    for dy in (-step, 0, step):
        for dx in (-step, 0, step):
            if dy == 0 and dx == 0:
                continue
            view = p[step + dy : step + dy + h, step + dx : step + dx + w]
            np.maximum(hi, view, out=hi)
            np.minimum(lo, view, out=lo)
    return hi, lo


@nb.njit(cache=True, nogil=True)
def _reflect(i, n):  # noqa: ANN001, ANN202
    return -i if i < 0 else (2 * (n - 1) - i if i >= n else i)


@nb.njit(cache=True, nogil=True)
def _screen_kernel(data, step, thr, range_rule_up):  # noqa: ANN001, ANN202
    """Per pixel: hot / cold by the rules of :func:`_screen_ref` (one pass, no temporaries)."""
    h, w = data.shape
    hot = np.zeros((h, w), np.bool_)
    cold = np.zeros((h, w), np.bool_)
    xs = np.empty(3, np.int64)
    for y in range(h):
        r0 = data[_reflect(y - step, h)]
        r1 = data[y]
        r2 = data[_reflect(y + step, h)]
        for x in range(w):
            if step <= x < w - step:
                xs[0], xs[1], xs[2] = x - step, x, x + step
            else:
                xs[0], xs[1], xs[2] = _reflect(x - step, w), x, _reflect(x + step, w)
            a, b, c = r0[xs[0]], r0[xs[1]], r0[xs[2]]
            d, e = r1[xs[0]], r1[xs[2]]
            f, g, k = r2[xs[0]], r2[xs[1]], r2[xs[2]]
            hi = max(max(max(a, b), max(c, d)), max(max(e, f), max(g, k)))
            lo = min(min(min(a, b), min(c, d)), min(min(e, f), min(g, k)))
            v = r1[x]
            spread = np.float32(2.5) * (hi - lo)
            up = v - hi
            down = lo - v
            hot[y, x] = up > thr and (up > spread or not range_rule_up)
            cold[y, x] = down > thr and down > spread
    return hot, cold


def _screen_ref(
    data: NDArray[np.float32], step: int, thr: float, range_rule_up: bool
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """NumPy reference of the screen: hot = above all 8 neighbours at distance ``step`` by
    ``thr`` (and by 2.5× their range when ``range_rule_up``), cold = below them by both."""
    hi, lo = _neighbour_extrema(data, step)
    t = np.float32(thr)
    spread = np.float32(2.5) * (hi - lo)
    up = data - hi
    down = lo - data
    hot = up > t
    if range_rule_up:
        hot &= up > spread
    return hot, (down > t) & (down > spread)


def find_defects_in_light(
    data: NDArray[np.float32], *, sigma: float = 8.0, cfa: bool = False, noise: float | None = None
) -> NDArray[np.bool_]:
    """Isolated hot/cold pixels in a frame: above (below) every same-colour neighbour by
    ``sigma``·noise, and not part of a star.

    Mono: a hot pixel stands above its brightest neighbour by far more than the neighbours
    spread among themselves; a star's peak does not: its neighbours fall off smoothly, so the step
    from the peak to the brightest neighbour is at most ~2× the neighbours' own range for any star
    with FWHM ≥ 2 px. Requiring both the noise threshold and a step of 2.5× the neighbour range
    keeps stars intact.

    CFA: the same-colour neighbours are 2 px away, where a sharp star (FWHM 2–3 px, as on a
    Seestar) has already fallen to a fifth of its peak, so the range rule would flag star cores.
    The 8 touching pixels decide instead, each against the local level of its own colour: a star
    lights them (the brightest by ≥ ~20 % of the peak's step even for FWHM 1.3 px, as on the
    sharpest Seestar subs), a hot pixel or cosmic-ray hit leaves them at the background — a hot
    pixel is one whose touching pixels are all raised by less than max(10 % of its step,
    3 noise sigmas). Cold pixels keep the range rule.
    """
    step = 2 if cfa else 1
    if noise is None:
        noise = _frame_noise(data[::step, ::step])
    thr = np.float32(sigma * max(noise, 1e-7))
    hot, found = _screen_kernel(np.ascontiguousarray(data, np.float32), step, thr, not cfa)
    if not cfa:
        return found | hot
    ys, xs = np.nonzero(hot)
    if ys.size:
        h, w = data.shape
        ring = [(dy, dx) for dy in (-2, 0, 2) for dx in (-2, 0, 2) if dy or dx]

        def at(dy: int, dx: int) -> NDArray[np.float32]:
            return data[np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)]

        def background(dy: int, dx: int) -> NDArray[np.float32]:
            # local level of the colour at (dy, dx): its same-colour ring
            return np.median(np.stack([at(dy + a, dx + b) for a, b in ring]), axis=0)

        step_up = data[ys, xs] - background(0, 0)
        raise_ = np.stack([at(dy, dx) - background(dy, dx)
                           for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]).max(axis=0)
        lone = raise_ < np.maximum(0.1 * step_up, 3.0 * float(noise))
        found[ys[lone], xs[lone]] = True
    return found


def repair_pixels(
    data: NDArray[np.float32], bad: NDArray[np.bool_], *, cfa: bool = False
) -> NDArray[np.float32]:
    """Replace ``bad`` pixels by the median of their good same-colour neighbours (a new array)."""
    out = data.copy()
    if not bad.any():
        return out
    step = 2 if cfa else 1
    ys, xs = np.nonzero(bad)
    h, w = data.shape
    for radius in (1, 2, 3):
        vals = []
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                if dy == 0 and dx == 0:
                    continue
                yy = ys + dy * step
                xx = xs + dx * step
                ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
                yy = np.clip(yy, 0, h - 1)
                xx = np.clip(xx, 0, w - 1)
                v = np.where(ok & ~bad[yy, xx], data[yy, xx], np.nan)
                vals.append(v)
        stack = np.stack(vals)
        have = np.isfinite(stack).any(axis=0)
        if have.any():
            med = np.nanmedian(np.where(have[None], stack, 0), axis=0)
            out[ys[have], xs[have]] = med[have]
        if have.all():
            break
        ys, xs = ys[~have], xs[~have]
    return out


@dataclass
class PreparedMasters:
    """What the masters contribute, computed once per set of masters (not per frame):
    bias, bias-subtracted dark, normalized flat, and the pixels to repair before each frame."""

    shape: tuple[int, int]
    bias: NDArray[np.float32] | None
    dark: NDArray[np.float32] | None  # thermal part: bias-subtracted when a bias is given
    norm: NDArray[np.float32] | None  # F / s
    bad: NDArray[np.bool_] | None  # flat pixels never divided by
    pre: NDArray[np.bool_] | None  # bad | hot | cold: repaired before looking at the frame
    n_bad_flat: int = 0
    n_hot: int = 0
    n_cold: int = 0


def prepare_masters(
    shape: tuple[int, ...], bias: NDArray[np.float32] | None, dark: NDArray[np.float32] | None,
    flat: NDArray[np.float32] | None, cfa_pattern: str | None, cfg: CalibrationConfig,
) -> PreparedMasters:
    """Do the masters' share of calibration once: checks, dark − bias, F / s, defect maps.

    Pass the result to :func:`calibrate_prepared` for every frame of that size and pattern.
    """
    for name, arr in (("bias", bias), ("dark", dark), ("flat", flat)):
        _check_shape(name, None if arr is None else np.asarray(arr), shape)
    b = None if bias is None else np.asarray(bias, np.float32)
    thermal = None
    if dark is not None:
        thermal = np.asarray(dark, np.float32)
        if b is not None:
            thermal = (thermal - b).astype(np.float32)
    norm = bad = None
    n_bad_flat = 0
    if flat is not None:
        f = np.asarray(flat, np.float32)
        norm = (f / flat_scale(f, cfa_pattern=cfa_pattern)).astype(np.float32)
        bad = ~(norm > cfg.flat_floor)
        n_bad_flat = int(bad.sum())
    pre = None
    n_hot = n_cold = 0
    if cfg.cosmetic:
        pre = np.zeros(shape, bool) if bad is None else bad.copy()
        if thermal is not None:
            hot, cold = find_defects_in_dark(thermal, hot_sigma=cfg.hot_sigma,
                                             cold_sigma=cfg.cold_sigma)
            n_hot = int((hot & ~pre).sum())
            n_cold = int((cold & ~pre & ~hot).sum())
            pre |= hot | cold
    return PreparedMasters(tuple(shape), b, thermal, norm, bad, pre, n_bad_flat, n_hot, n_cold)


def calibrate_frame(
    frame: NDArray[np.float32],
    *,
    bias: NDArray[np.float32] | None = None,
    dark: NDArray[np.float32] | None = None,
    flat: NDArray[np.float32] | None = None,
    dark_scale: float = 1.0,
    cfa_pattern: str | None = None,
    config: CalibrationConfig | None = None,
) -> CalibrationResult:
    """Calibrate one frame (a light, or a flat with its dark-flat as ``dark``).

    Parameters
    ----------
    frame : ndarray (H, W)
        Raw frame in [0, 1] (CFA mosaics stay mosaics).
    bias, dark, flat : ndarray (H, W), optional
        Masters. A master dark is taken to include the bias (it is built without bias
        subtraction); when ``bias`` is given too the dark is bias-subtracted before scaling.
    dark_scale : float
        k in the formula: the exposure ratio from the link plan (1 for an exact match).
    cfa_pattern : str, optional
        Bayer pattern in memory order: flat scaling and cosmetic correction become CFA-aware.
    config : CalibrationConfig, optional

    Returns
    -------
    CalibrationResult
    """
    cfg = config or CalibrationConfig()
    light = np.asarray(frame, np.float32)
    if light.ndim != 2:
        msg = f"calibration works on 2-D frames (mono or CFA mosaic), got shape {light.shape}"
        raise CalibrationError(msg)
    prep = prepare_masters(light.shape, bias, dark, flat, cfa_pattern, cfg)
    return calibrate_prepared(light, prep, dark_scale=dark_scale, cfa_pattern=cfa_pattern,
                              cfg=cfg)


def calibrate_prepared(
    light: NDArray[np.float32], prep: PreparedMasters, *, dark_scale: float,
    cfa_pattern: str | None, cfg: CalibrationConfig,
) -> CalibrationResult:
    """Calibrate one 2-D frame with masters made ready by :func:`prepare_masters`."""
    notes: list[str] = []
    out = light - prep.bias if prep.bias is not None else light.copy()
    k: float | None = None
    if prep.dark is not None:
        k = dark_scale
        if prep.bias is None and dark_scale != 1.0:
            notes.append(
                f"dark scaled by {dark_scale:.3f} without a master bias: the bias in the dark is "
                "scaled too — link a master bias"
            )
        if cfg.optimize_dark and prep.bias is not None:
            k = optimize_dark_scale(out, prep.dark)
            notes.append(f"dark optimization: k = {k:.4f}")
        out -= np.float32(k) * prep.dark
    if prep.norm is not None:
        out = np.divide(out, prep.norm, out=np.zeros_like(out), where=~prep.bad)

    n_frame = 0
    if prep.pre is not None:
        pre = prep.pre
        is_cfa = cfa_pattern is not None
        out = repair_pixels(out, pre, cfa=is_cfa)
        noise = None
        for _ in range(2):  # a second pass finds the partner of a hot pair (it was hidden by it)
            if noise is None:
                noise = _frame_noise(out[::2, ::2] if is_cfa else out)
            defects = find_defects_in_light(out, sigma=cfg.light_sigma, cfa=is_cfa, noise=noise)
            defects &= ~pre
            if not defects.any():
                break
            n_frame += int(defects.sum())
            pre = pre | defects
            out = repair_pixels(out, defects, cfa=is_cfa)
    elif prep.bad is not None and prep.n_bad_flat:
        out[prep.bad] = 0.0  # "no data": never a division by a near-zero flat

    pedestal = 0.0
    if cfg.pedestal == "auto":
        pedestal = auto_pedestal(out, limit=cfg.pedestal_limit)
    elif cfg.pedestal is not None:
        pedestal = float(cfg.pedestal)
    if pedestal:
        out += np.float32(pedestal / DN)
    np.clip(out, 0.0, 1.0, out=out)
    if prep.pre is None and prep.n_bad_flat:
        out[prep.bad] = 0.0
    return CalibrationResult(
        data=out.astype(np.float32, copy=False),
        pedestal_dn=pedestal,
        dark_scale=k,
        bad_flat_pixels=prep.n_bad_flat,
        hot_pixels_from_dark=prep.n_hot,
        cold_pixels_from_dark=prep.n_cold,
        defects_in_frame=n_frame,
        notes=notes,
    )


def output_stem(path: str | Path) -> str:
    """A file's name without its image suffixes (``a.fits.gz`` → ``a``), dots elsewhere kept:
    ``Light_M_94_10.0s_IRCUT_…-212046.fit`` → ``Light_M_94_10.0s_IRCUT_…-212046``."""
    name = Path(path).name
    for suffix in (".gz", ".fz", ".bz2"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    stem, dot, ext = name.rpartition(".")
    return stem if dot and ext.lower() in _IMAGE_EXT else name


_IMAGE_EXT = frozenset({"fits", "fit", "fts", "xisf", "tif", "tiff", "cr2", "cr3", "nef", "arw",
                        "dng", "raf", "orf", "rw2", "pef"})


def calibrate_files(
    paths: list[Path],
    out_dir: Path,
    *,
    bias: Path | None = None,
    dark: Path | None = None,
    flat: Path | None = None,
    dark_scale: float | None = None,
    config: CalibrationConfig | None = None,
    suffix: str = "_c",
) -> list[tuple[Path, CalibrationResult | str]]:
    """Calibrate files into ``out_dir`` (FITS float32, ``<stem>_c.fits``); inputs are only read.

    The dark scale defaults to the exposure ratio read from the headers (EXPTIME/EXPOSURE).
    A file that fails gives a one-line reason in place of its result; the rest carry on. The
    results keep the counts and notes; their pixels are in the written files (``data`` is empty).
    """
    from skystack.cfa import effective_pattern
    from skystack.errors import ImageReadError
    from skystack.io import read_image, write_image

    def exposure(img: object) -> float | None:
        for key in ("EXPTIME", "EXPOSURE"):
            v = img.get(key)  # type: ignore[attr-defined]
            if isinstance(v, int | float):
                return float(v)
        return None

    masters = {}
    for name, p in (("bias", bias), ("dark", dark), ("flat", flat)):
        masters[name] = read_image(p) if p is not None else None
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = config or CalibrationConfig()
    prepared: dict[tuple[tuple[int, ...], str | None], PreparedMasters] = {}
    results: list[tuple[Path, CalibrationResult | str]] = []
    for path in paths:
        try:
            img = read_image(path)
            pattern = effective_pattern(img.bayer_pattern, row_order=img.row_order,
                                        height=img.data.shape[-2],
                                        x_offset=int(img.get("XBAYROFF", 0) or 0),
                                        y_offset=int(img.get("YBAYROFF", 0) or 0))
            k = dark_scale
            if k is None and masters["dark"] is not None:
                le, de = exposure(img), exposure(masters["dark"])
                k = le / de if le and de else 1.0
            if img.data.ndim != 2:
                msg = (f"calibration works on 2-D frames (mono or CFA mosaic), got shape "
                       f"{img.data.shape}")
                raise CalibrationError(msg)
            key = (img.data.shape, pattern)
            if key not in prepared:  # the masters' share of the work: once, not per frame
                prepared[key] = prepare_masters(img.data.shape, *(
                    None if masters[n] is None else masters[n].data
                    for n in ("bias", "dark", "flat")), pattern, cfg)
            res = calibrate_prepared(img.data, prepared[key], dark_scale=k if k is not None else 1.0,
                             cfa_pattern=pattern, cfg=cfg)
        except (ImageReadError, CalibrationError) as err:
            msg = str(err)
            results.append((path, msg if str(path) in msg else f"{path}: {msg}"))
            continue
        img.data = res.data
        img.sample_format = "float32"
        img.set("PEDESTAL", res.pedestal_dn, "[DN] output pedestal added by calibration")
        applied = "".join(c for c, m in (("B", bias), ("D", dark), ("F", flat)) if m is not None)
        img.set("CALSTAT", applied, "calibration applied (B bias, D dark, F flat)")
        if res.dark_scale is not None:
            img.set("DARKSCAL", round(res.dark_scale, 6), "dark scale factor k")
        img.set("COSMCORR", res.repaired, "pixels repaired by cosmetic correction")
        target = out_dir / (output_stem(path) + suffix + ".fits")
        write_image(target, img, sample_format="float32")
        # the pixels are on disk now; keeping them would hold every frame in memory at once
        res.data = np.empty((0, 0), np.float32)
        results.append((target, res))
    return results
