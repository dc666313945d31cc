"""The stack engine: per-frame statistics, normalization coefficients, row-band streaming.

Pass 1 reads a subsample of rows from every frame (location, scale, noise; the sample stack for the
Poisson gain of averaged sigma). Pass 2 walks the image in row bands: each band is gathered from
every frame into one reusable buffer and integrated by the numba kernel. The band height comes
from the memory budget, so peak memory does not grow with the number or size of frames beyond
the output maps.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from skystack.errors import ConfigError, SkystackError
from skystack.integrate._reference import COMBINE_CODES, METHOD_CODES, KernelParams
from skystack.integrate.config import IntegrationConfig
from skystack.integrate.io import BandNormalizer, FrameSource, open_sources

__all__ = ["integrate", "IntegrationResult", "FrameStats", "parse_memory", "IntegrationError",
           "frame_statistics", "SAMPLE_PIXELS", "IntegrationPlan", "BandResult",
           "prepare_integration", "integrate_rows", "assemble_bands"]

#: Pixels per frame used for statistics (rows spread evenly over the frame).
SAMPLE_PIXELS = 1 << 18
_MAD = 1.482602218505602      # MAD → σ for a normal distribution


class IntegrationError(SkystackError, ValueError):
    """The frames cannot be integrated together (shapes differ, nothing to integrate...)."""


@dataclass
class FrameStats:
    """What the engine measured and decided for one frame (per channel where it matters)."""

    name: str
    location: NDArray[np.float64]
    scale: NDArray[np.float64]
    noise: NDArray[np.float64]
    weight: NDArray[np.float64]
    pedestal: float = 0.0
    valid: int = 0
    rejected_low: float = 0.0
    rejected_high: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"name": self.name, "location": self.location.tolist(),
                "scale": self.scale.tolist(), "noise": self.noise.tolist(),
                "weight": self.weight.tolist(), "pedestal": self.pedestal, "valid": self.valid,
                "rejected_low": self.rejected_low, "rejected_high": self.rejected_high}


@dataclass
class IntegrationResult:
    """The integrated image, its rejection and coverage maps, and per-frame statistics."""

    image: NDArray[np.float32]
    low_rejected: NDArray[np.uint16]
    high_rejected: NDArray[np.uint16]
    coverage: NDArray[np.uint16]
    stats: list[FrameStats]
    config: IntegrationConfig
    bands: int = 1
    band_rows: int = 0
    keywords: list[Any] = field(default_factory=list)

    def write(self, path: str | Path, *, keywords: Sequence[Any] = (), maps: bool = True) -> Path:
        """Write the master (FITS or XISF by suffix) with ``REJ_LOW``/``REJ_HIGH``/``COVERAGE``.

        See :func:`skystack.integrate.io.write_result`.
        """
        from skystack.integrate.io import write_result

        return write_result(self, path, keywords=keywords, maps=maps)


def parse_memory(memory: int | str | None) -> int:
    """Bytes from ``4G``, ``512M``, ``1.5GB``, ``1048576`` or None (a quarter of physical RAM)."""
    if memory is None:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            total = 8 << 30
        return int(total // 4)
    if isinstance(memory, int | float):
        return int(memory)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)[iI]?[bB]?\s*", str(memory))
    if not m:
        msg = f"memory={memory!r}: use a byte count or a size such as 512M or 4G"
        raise ConfigError(msg)
    unit = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * unit)


def _median(v: NDArray[np.float32], *, overwrite: bool = False) -> float:
    """Median by partial sort (no float64 copy: this runs on every frame's sample).

    One ``kth`` only: NumPy selects a single order statistic with its vectorised quickselect, but
    falls back to a several times slower scalar introselect for a list of them. The lower middle
    of an even sample is then the largest value left of the upper one (the same order statistic,
    so the same number as partitioning for both). ``overwrite`` partitions ``v`` in place.
    """
    k = v.size
    if overwrite:
        v.partition(k // 2)
        part = v
    else:
        part = np.partition(v, k // 2)
    upper = float(part[k // 2])
    if k % 2:
        return upper
    return 0.5 * (float(part[: k // 2].max()) + upper)


def _robust_stats(x: NDArray[np.float32]) -> tuple[float, float, float]:
    """(location, scale, noise) of sample rows (rows, W); 0 and NaN are no data."""
    valid = (x == x) & (x != 0)
    v = x[valid]
    if v.size == 0:
        return 0.0, 0.0, 0.0
    # v and d are fresh copies, reordered and overwritten in place: the medians only need their
    # values (the rare zero-MAD fallbacks take fresh copies, as their sums depend on the order)
    loc = _median(v, overwrite=True)
    dev = np.abs(np.subtract(v, np.float32(loc), out=v), out=v)
    scale = _MAD * _median(dev, overwrite=True)
    if scale == 0:
        scale = float(x[valid].astype(np.float64).std())
    # Noise from horizontal first differences: insensitive to gradients and extended signal.
    both = valid[:, 1:] & valid[:, :-1]
    d = (x[:, 1:] - x[:, :-1])[both]
    if not d.size:
        return loc, scale, 0.0
    md = np.float32(_median(d, overwrite=True))
    noise = _MAD * _median(np.abs(np.subtract(d, md, out=d), out=d), overwrite=True) / np.sqrt(2.0)
    if noise == 0:
        noise = float((x[:, 1:] - x[:, :-1])[both].astype(np.float64).std()) / np.sqrt(2.0)
    return loc, scale, noise


def frame_statistics(sources: Sequence[FrameSource], *,
                     keep_sample: bool = False) -> tuple[NDArray[np.float64], ...]:
    """Location, scale and noise (N, C) of every frame plus the sample stack (N, C, S).

    Values are pedestal-free (each source's pedestal is subtracted, no-data kept as 0). The sample
    stack (the same rows of every frame) is only kept when asked for (averaged sigma needs it);
    otherwise it is an empty (N, C, 0) array.
    """
    c, h, w = sources[0].shape
    n_rows = int(np.clip(SAMPLE_PIXELS // max(w, 1), 1, h))
    rows = np.unique(np.linspace(0, h - 1, n_rows).round().astype(np.intp))
    n = len(sources)
    loc = np.zeros((n, c))
    scale = np.zeros((n, c))
    noise = np.zeros((n, c))
    sample = np.zeros((n, c, len(rows) * w if keep_sample else 0), np.float32)

    def one(i: int) -> None:
        src = sources[i]
        x = src.sample_rows(rows)       # thread-safe: each call reads into its own buffer
        if src.pedestal:
            x = np.where((x == x) & (x != 0), x - np.float32(src.pedestal), x)
        for ch in range(c):
            loc[i, ch], scale[i, ch], noise[i, ch] = _robust_stats(x[ch])
            if keep_sample:
                sample[i, ch] = x[ch].reshape(-1)

    # the medians (np.partition) release the GIL: frames are measured in parallel
    with ThreadPoolExecutor(max_workers=min(n, os.cpu_count() or 1)) as pool:
        list(pool.map(one, range(n)))
    return loc, scale, noise, sample


def _affine(mode: str, loc: NDArray[np.float64], scale: NDArray[np.float64],
            ref: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-frame (a, b), (N, C), mapping a pedestal-free value x to a·x + b."""
    lr, sr = loc[ref], scale[ref]
    safe_l = np.where(loc != 0, loc, 1.0)
    safe_s = np.where(scale > 0, scale, 1.0)
    k_s = np.where(scale > 0, sr / safe_s, 1.0)
    k_m = np.where(loc != 0, lr / safe_l, 1.0)
    if mode == "none":
        return np.ones_like(loc), np.zeros_like(loc)
    if mode == "additive":
        return np.ones_like(loc), lr - loc
    if mode in ("multiplicative", "equalize"):
        return k_m, np.zeros_like(loc)
    if mode in ("additive-scaling", "scale"):
        return k_s, lr - k_s * loc
    if mode == "multiplicative-scaling":
        # multiplicative match of locations, then dispersion matched around the location
        k = np.where(k_m != 0, k_s / k_m, 1.0)
        return k_s, lr * (1.0 - k)
    msg = f"unknown normalization {mode!r}"
    raise ConfigError(msg)


def _poisson_gain(sample: NDArray[np.float32], ra: NDArray[np.float64],
                  rb: NDArray[np.float64]) -> float:
    """Variance per unit signal of the rejection-normalized sample stack (N, S) (averaged sigma)."""
    valid = np.all((sample == sample) & (sample != 0), axis=0)
    if valid.sum() < 16 or sample.shape[0] < 2:
        return 0.0
    r = ra[:, None] * sample[:, valid].astype(np.float64) + rb[:, None]
    med = np.median(r, axis=0)
    var = r.var(axis=0, ddof=1)
    m = np.abs(med)
    ok = m > 0
    return float(np.median(var[ok] / m[ok])) if ok.any() else 0.0


#: Largest useful gathered band (bytes): the kernel walks a band in cache-sized blocks, so a
#: larger one is no faster, only more memory to fault in and less overlap of reading and work.
BAND_CAP = 32 << 20


#: Memory of the interpreter, numba and astropy, counted against budgets of more than 1 GiB.
RUNTIME_BYTES = 256 << 20


def _output_bytes(c: int, h: int, w: int) -> int:
    """The integrated image (float32) and its three uint16 maps."""
    return c * h * w * (4 + 2 + 2 + 2)


def _band_rows(budget: int, *, n: int, c: int, h: int, w: int, large_scale: bool,
               halo: int) -> int:
    """Rows per band so that buffers + outputs fit ``budget`` bytes (at least one row).

    Two gathered bands are alive at once: one being integrated while the next is read.
    """
    fixed = _output_bytes(c, h, w)
    if budget > 1 << 30:
        fixed += RUNTIME_BYTES
    per_row = 2 * (n * c * w * 4 + c * w * 4) + w * 16   # gathered bands, one frame's rows, temps
    if large_scale:
        per_row += 2 * n * w + 4 * w * 8 + w * 10   # mask + exclude + filter temps + band outputs
    rows = (budget - fixed) // max(per_row, 1)
    if large_scale:
        rows -= 2 * halo
    rows = min(rows, max(1, BAND_CAP // max(n * c * w * 4, 1)))
    return int(np.clip(rows, 1, h))


def _large_scale_exclude(mask: NDArray[np.uint8], *, layers: int, growth: int) -> NDArray[np.uint8]:
    """Grow clustered rejections of one band mask (N, rows, W) into an exclusion mask."""
    from scipy.ndimage import maximum_filter, uniform_filter

    win = 2**layers + 1
    out = np.zeros_like(mask)
    for side in (1, 2):
        for i in range(mask.shape[0]):
            m = mask[i] == side
            if not m.any():
                continue
            count = uniform_filter(m.astype(np.float32), size=win, mode="constant") * (win * win)
            cluster = m & (count >= win - 0.5)
            if not cluster.any():
                continue
            grown = maximum_filter(cluster, size=2 * growth + 1, mode="constant") if growth else cluster
            out[i][grown & (out[i] == 0)] = side
    return out


@dataclass
class MappedRows:
    """A band left where it is: the address of each frame's first raw sample (FITS uint16 in a
    read-only memory map, see ``FitsBandSource.raw_rows_address``) and the samples per frame."""

    addrs: NDArray[np.int64]
    npix: int


def _run_kernel(stack: NDArray[Any] | MappedRows, co: dict[str, NDArray[np.float64]],
                p: KernelParams, lam: NDArray[np.float64], image: NDArray[np.float32],
                nlow: NDArray[np.uint16], nhigh: NDArray[np.uint16], cov: NDArray[np.uint16], *,
                exclude: NDArray[np.uint8] | None = None,
                mask: NDArray[np.uint8] | None = None) -> NDArray[np.int64]:
    from skystack.integrate._kernels import CHUNK, integrate_kernel, sorting_network

    use_ptr = isinstance(stack, MappedRows)
    if isinstance(stack, MappedRows):
        n, npix = len(stack.addrs), stack.npix
        addrs = np.ascontiguousarray(stack.addrs, np.int64)
        use_raw = True
        raw = np.zeros((1, 1), np.uint16)
    else:
        n, npix = stack.shape
        addrs = np.zeros(1, np.int64)
        # a uint16 stack holds raw FITS samples, decoded inside the kernel
        use_raw = stack.dtype == np.uint16
        raw = stack if use_raw else np.zeros((1, 1), np.uint16)
    counts = np.zeros(((npix + CHUNK - 1) // CHUNK, n, 3), np.int64)
    dummy = np.zeros((1, 1), np.uint8)
    fstack = stack if not use_raw else np.zeros((1, 1), np.float32)
    integrate_kernel(fstack, raw, use_raw, addrs, use_ptr, int(npix), co["ra"], co["rb"],
                     co["oa"], co["ob"], co["w"], co["rl"], co["rh"],
                     dummy if exclude is None else exclude, exclude is not None,
                     METHOD_CODES[p.method], COMBINE_CODES[p.combine], float(p.low),
                     float(p.high), int(p.min_count), int(p.max_count), float(p.esd_outliers),
                     float(p.esd_low_relaxation), float(p.poisson_gain), lam, sorting_network(n),
                     image, nlow, nhigh, cov, dummy if mask is None else mask, mask is not None,
                     counts)
    return counts.sum(axis=0)


def _warm_kernel(n: int) -> None:
    """Import the numba kernel and load its machine code: a tiny call through :func:`_run_kernel`.

    Every real call passes arrays of the same types and layouts (raw uint16 and float32 stacks
    share one signature: both arrays are always passed), so this loads (or, after a kernel
    change, compiles) the one specialisation the bands use, and starts numba's thread pool.
    """
    from skystack.integrate._kernels import sorting_network

    sorting_network(n)                  # cached per stack height; pure Python, built here too
    m = 2
    co = {"ra": np.ones(m), "rb": np.zeros(m), "oa": np.ones(m), "ob": np.zeros(m),
          "w": np.ones(m), "rl": np.full(m, -np.inf), "rh": np.full(m, np.inf)}
    maps = [np.zeros(1, np.uint16) for _ in range(3)]
    _run_kernel(np.zeros((m, 1), np.uint16), co, KernelParams(), np.zeros((2, m + 1)),
                np.zeros(1, np.float32), *maps)


class _KernelLoader:
    """:func:`_warm_kernel` on a background thread, started before pass 1.

    Importing numba and loading the cached kernel takes about half a second; behind the frame
    statistics and the first band's reading it costs no wall time. :meth:`wait` must be called
    before the first kernel call: it joins the thread and raises whatever the thread raised.
    """

    _ready = False      # the kernel is loaded in this process: nothing to hide any more

    def __init__(self, n: int) -> None:
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if not _KernelLoader._ready:
            self._thread = threading.Thread(target=self._load, args=(n,), daemon=True,
                                            name="skystack-kernel-load")
            self._thread.start()

    def _load(self, n: int) -> None:
        try:
            _warm_kernel(n)
            _KernelLoader._ready = True
        except BaseException as err:    # handed to wait(), not lost with the thread
            self._error = err

    def wait(self, *, quiet: bool = False) -> None:
        """Block until the kernel is loaded; re-raise the loader's exception unless ``quiet``."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None and not quiet:
            err, self._error = self._error, None
            raise err


def integrate(
    frames: Sequence[Any],
    *,
    config: IntegrationConfig | None = None,
    weights: Any = None,
    local_normalization: Sequence[BandNormalizer] | None = None,
    memory: int | str | None = None,
) -> IntegrationResult:
    """Combine frames into one image with pixel rejection, streaming row bands.

    Parameters
    ----------
    frames : sequence of path or array
        Paths (read band by band) or arrays (H, W) / (C, H, W) in [0, 1].
    config : IntegrationConfig, optional
        Combination, rejection, normalization and weighting (default: WBPP's light settings).
    weights : array-like, optional
        Per-frame weights (N,) or (N, C), overriding ``config.weights``.
    local_normalization : sequence of BandNormalizer, optional
        One per frame; replaces output and rejection normalization (pedestals are kept, as WBPP
        does with local normalization).
    memory : int or str, optional
        Memory budget (bytes or ``"4G"``); default a quarter of RAM.

    Returns
    -------
    IntegrationResult
    """
    cfg = config or IntegrationConfig()
    if len(frames) == 0:
        raise IntegrationError("no frames to integrate")
    if local_normalization is not None and len(local_normalization) != len(frames):
        raise IntegrationError("local_normalization needs one normalizer per frame")
    budget = parse_memory(memory)
    loader = _KernelLoader(len(frames))     # numba loads while pass 1 runs
    try:
        with tempfile.TemporaryDirectory(prefix="skystack-integrate-") as tmp:
            subtract = cfg.subtract_pedestal and local_normalization is None
            sources = open_sources(frames, cache_dir=Path(tmp), subtract_pedestal=subtract)
            try:
                result = _integrate(sources, cfg, weights, local_normalization, budget, loader)
            finally:
                for s in sources:
                    s.close()
    except BaseException:
        loader.wait(quiet=True)    # no thread left behind; the error already raised is the news
        raise
    loader.wait()
    return result


@dataclass
class IntegrationPlan:
    """Everything pass 1 decided: per-frame coefficients, kernel parameters and the band height.

    Small and picklable, so row bands can be integrated anywhere (a Dask worker) with exactly the
    numbers a local run uses — the results are bit-identical however the bands are spread.
    """

    shape: tuple[int, int, int]
    n: int
    cfg: IntegrationConfig
    loc: NDArray[np.float64]
    scale: NDArray[np.float64]
    noise: NDArray[np.float64]
    wts: NDArray[np.float64]
    coeffs: list[dict[str, NDArray[np.float64]]]
    params: list[KernelParams]
    lam: NDArray[np.float64]
    rows: int
    halo: int
    names: list[str]
    pedestals: list[float]
    mono: bool
    #: bands are gathered as raw FITS uint16 and decoded by the kernel (every frame is a plain
    #: unsigned 16-bit FITS, no LN, no large-scale rejection)
    raw: bool = False

    def bands(self) -> list[tuple[int, int]]:
        """Row ranges [r0, r1) of the bands."""
        h = self.shape[1]
        return [(r0, min(h, r0 + self.rows)) for r0 in range(0, h, self.rows)]


@dataclass
class BandResult:
    """One band's output rows and per-frame sample counts (valid, rejected low, high)."""

    r0: int
    r1: int
    image: NDArray[np.float32]
    nlow: NDArray[np.uint16]
    nhigh: NDArray[np.uint16]
    cov: NDArray[np.uint16]
    counts: NDArray[np.int64]


def _prepare(sources: list[FrameSource], cfg: IntegrationConfig, weights: Any,
             ln_given: bool, budget: int) -> IntegrationPlan:
    """Pass 1: statistics, normalization and weights, kernel parameters, band height."""
    from skystack.integrate._reference import esd_critical_values, linfit_spread_table

    shape = sources[0].shape
    for s in sources[1:]:
        if s.shape != shape:
            msg = (f"{s.name}: shape {s.shape} differs from {sources[0].name} {shape}; "
                   "register the frames (or drop this one) before integrating")
            raise IntegrationError(msg)
    n = len(sources)
    c, h, w = shape
    cfg = cfg.resolved(n)
    if not 0 <= cfg.reference < n:
        raise ConfigError(f"reference={cfg.reference} is outside 0..{n - 1}")
    loc, scale, noise, sample = frame_statistics(
        sources, keep_sample=cfg.rejection == "averaged-sigma")
    ped = np.array([s.pedestal for s in sources])
    if not ln_given:
        ra, rb = _affine(cfg.rejection_normalization, loc, scale, cfg.reference)
        oa, ob = _affine(cfg.normalization, loc, scale, cfg.reference)
        # fold the pedestal in: a·(x − p) + b
        rb = rb - ra * ped[:, None]
        ob = ob - oa * ped[:, None]
        noise_out = noise * np.abs(oa)
    else:
        ra = oa = np.ones((n, c))
        rb = ob = np.zeros((n, c))
        ka, _ = _affine("additive-scaling", loc, scale, cfg.reference)
        noise_out = noise * ka
    if weights is not None:
        wts = np.asarray(weights, np.float64)
        wts = np.broadcast_to(wts.reshape(n, -1), (n, c)).copy()
        if wts.shape[0] != n or not np.all(np.isfinite(wts)) or np.any(wts < 0):
            raise ConfigError("weights must be finite, >= 0, one per frame")
    elif cfg.weights == "noise":
        with np.errstate(divide="ignore"):
            wts = np.where(noise_out > 0, 1.0 / np.maximum(noise_out, 1e-30) ** 2, 0.0)
        top = wts.max(axis=0, keepdims=True)
        wts = np.where(top > 0, wts / np.where(top > 0, top, 1.0), 1.0)
    else:
        wts = np.ones((n, c))
    rl = np.full(n, -np.inf) if cfg.range_low is None else cfg.range_low + ped
    rh = np.full(n, np.inf) if cfg.range_high is None else cfg.range_high + ped
    lam = np.zeros((2, n + 1))
    if cfg.rejection == "esd":
        lam[0] = esd_critical_values(n, cfg.esd_alpha)
    if cfg.rejection == "linear-fit":
        lam[1] = linfit_spread_table(n)
    gains = [0.0] * c
    if cfg.rejection == "averaged-sigma":
        gains = [_poisson_gain(sample[:, ch], ra[:, ch], rb[:, ch]) for ch in range(c)]
    coeffs = [{"ra": ra[:, ch].copy(), "rb": rb[:, ch].copy(), "oa": oa[:, ch].copy(),
               "ob": ob[:, ch].copy(), "w": wts[:, ch].copy(), "rl": np.asarray(rl, np.float64),
               "rh": np.asarray(rh, np.float64)} for ch in range(c)]
    params = [KernelParams(method=cfg.rejection, combine=cfg.combine, low=float(cfg.low or 0.0),
                           high=float(cfg.high or 0.0), min_count=cfg.min_count,
                           max_count=cfg.max_count, esd_outliers=cfg.esd_outliers,
                           esd_low_relaxation=cfg.esd_low_relaxation, poisson_gain=gains[ch])
              for ch in range(c)]
    halo = (2 ** cfg.large_scale_layers + 1) // 2 + cfg.large_scale_growth if cfg.large_scale else 0
    rows = _band_rows(budget, n=n, c=c, h=h, w=w, large_scale=cfg.large_scale, halo=halo)
    # (the kernel's byte swap assumes a little-endian host, as x86 and ARM are)
    raw = (sys.byteorder == "little" and not ln_given and not cfg.large_scale
           and all(getattr(s, "raw_u16", False) for s in sources))
    return IntegrationPlan(shape=(c, h, w), n=n, cfg=cfg, loc=loc, scale=scale, noise=noise,
                           wts=wts, coeffs=coeffs, params=params, lam=lam, rows=rows, halo=halo,
                           names=[s.name for s in sources], pedestals=[float(p) for p in ped],
                           mono=all(getattr(s, "ndim", 3) == 2 for s in sources), raw=raw)


def _band_buffers(plan: IntegrationPlan, nr: int) -> tuple[NDArray[Any], NDArray[np.float32]]:
    """A gathered band (flat) and one frame's rows: uint16 when the plan gathers raw samples."""
    c, _, w = plan.shape
    return (np.empty(c * plan.n * nr * w, np.uint16 if plan.raw else np.float32),
            np.empty((c, 0 if plan.raw else nr, w), np.float32))


def _gather_band(sources: list[FrameSource], plan: IntegrationPlan, r0: int, r1: int,
                 ln: Sequence[BandNormalizer] | None,
                 buffers: tuple[NDArray[Any], NDArray[np.float32]] | None = None
                 ) -> NDArray[Any]:
    """Rows [r0, r1) plus halo of every frame, (C, N, rows, W), LN applied when given.

    float32 values, or the raw FITS uint16 samples when ``plan.raw`` (the kernel decodes them).
    """
    c, h, w = plan.shape
    n, halo = plan.n, plan.halo
    a0, a1 = max(0, r0 - halo), min(h, r1 + halo)
    nr = a1 - a0
    if buffers is None:
        buffers = _band_buffers(plan, nr)
    flat, tmp = buffers
    buf = flat[: c * n * nr * w].reshape(c, n, nr, w)
    if plan.raw:
        for i, src in enumerate(sources):
            for ch in range(c):
                src.read_raw_rows(a0, a1, ch, buf[ch, i])  # type: ignore[attr-defined]
        return buf
    for i, src in enumerate(sources):
        band = tmp[:, :nr]
        src.read_rows(a0, a1, band)
        if ln is not None:
            nodata = (band != band) | (band == 0)
            band = np.asarray(ln[i].apply(band if c > 1 else band[0], a0), np.float32)
            band = band.reshape(c, nr, w)
            band = np.where(nodata, np.float32(np.nan), band)
        buf[:, i] = band
    return buf


def _compute_band(buf: NDArray[Any] | list[MappedRows], plan: IntegrationPlan, r0: int, r1: int,
                  out: BandResult | None = None) -> BandResult:
    """Integrate a band into rows [r0, r1) of the output: gathered (from :func:`_gather_band`)
    or left in the mapped files (from :func:`_map_band`, one :class:`MappedRows` per channel).

    ``out`` may hold views of the final arrays (rows r0..r1 of each), written in place.
    """
    c, h, w = plan.shape
    n, halo, cfg = plan.n, plan.halo, plan.cfg
    a0 = max(0, r0 - halo)
    nr = r1 - r0 if isinstance(buf, list) else buf.shape[2]
    if out is None:
        out = BandResult(r0, r1, np.zeros((c, r1 - r0, w), np.float32),
                         np.zeros((c, r1 - r0, w), np.uint16),
                         np.zeros((c, r1 - r0, w), np.uint16),
                         np.zeros((c, r1 - r0, w), np.uint16), np.zeros((n, 3), np.int64))
    for ch in range(c):
        stack = buf[ch] if isinstance(buf, list) else buf[ch].reshape(n, nr * w)
        if not cfg.large_scale:
            out.counts += _run_kernel(stack, plan.coeffs[ch], plan.params[ch], plan.lam,
                                      out.image[ch].reshape(-1), out.nlow[ch].reshape(-1),
                                      out.nhigh[ch].reshape(-1), out.cov[ch].reshape(-1))
            continue
        out.counts += _large_scale_band(stack, plan.coeffs[ch], plan.params[ch], plan.lam, cfg,
                                        n=n, nr=nr, w=w, core=(r0 - a0, r1 - a0),
                                        image=out.image[ch], nlow=out.nlow[ch],
                                        nhigh=out.nhigh[ch], cov=out.cov[ch])
    return out


def _integrate_band(sources: list[FrameSource], plan: IntegrationPlan, r0: int, r1: int,
                    ln: Sequence[BandNormalizer] | None) -> BandResult:
    """Pass 2 for rows [r0, r1): gather the band from every frame and run the kernel."""
    return _compute_band(_gather_band(sources, plan, r0, r1, ln), plan, r0, r1)


def _output_arrays(plan: IntegrationPlan) -> tuple[NDArray[np.float32], NDArray[np.uint16],
                                                   NDArray[np.uint16], NDArray[np.uint16]]:
    c, h, w = plan.shape
    return (np.zeros((c, h, w), np.float32), np.zeros((c, h, w), np.uint16),
            np.zeros((c, h, w), np.uint16), np.zeros((c, h, w), np.uint16))


def _assemble(plan: IntegrationPlan, bands: Sequence[BandResult],
              arrays: tuple[NDArray[Any], ...] | None = None) -> IntegrationResult:
    """Put band results together into the integrated image, maps and per-frame statistics.

    With ``arrays`` (from :func:`_output_arrays`) the bands already wrote into them.
    """
    counts = np.zeros((plan.n, 3), np.int64)
    if arrays is None:
        image, nlow, nhigh, cov = _output_arrays(plan)
        for b in bands:
            image[:, b.r0:b.r1] = b.image
            nlow[:, b.r0:b.r1] = b.nlow
            nhigh[:, b.r0:b.r1] = b.nhigh
            cov[:, b.r0:b.r1] = b.cov
    else:
        image, nlow, nhigh, cov = arrays
    for b in bands:
        counts += b.counts
    stats = []
    for i, name in enumerate(plan.names):
        valid = int(counts[i, 0])
        stats.append(FrameStats(name=name, location=plan.loc[i], scale=plan.scale[i],
                                noise=plan.noise[i], weight=plan.wts[i],
                                pedestal=plan.pedestals[i], valid=valid,
                                rejected_low=counts[i, 1] / valid if valid else 0.0,
                                rejected_high=counts[i, 2] / valid if valid else 0.0))
    if plan.mono:
        image, nlow, nhigh, cov = image[0], nlow[0], nhigh[0], cov[0]
    return IntegrationResult(image=image, low_rejected=nlow, high_rejected=nhigh, coverage=cov,
                             stats=stats, config=plan.cfg, bands=len(bands), band_rows=plan.rows)


def _integrate(sources: list[FrameSource], cfg: IntegrationConfig, weights: Any,
               ln: Sequence[BandNormalizer] | None, budget: int,
               loader: _KernelLoader | None = None) -> IntegrationResult:
    plan = _prepare(sources, cfg, weights, ln is not None, budget)
    c, h, w = plan.shape
    nr = min(h, plan.rows + 2 * plan.halo)
    bands = plan.bands()
    mapped = _can_map(sources, plan, budget)
    buffers = [] if mapped else [_band_buffers(plan, nr) for _ in range(min(2, len(bands)))]
    results = []
    arrays = _output_arrays(plan)
    # One reader thread gathers the next band while the (GIL-free, parallel) kernel integrates
    # this one: reading and decoding overlap the arithmetic instead of adding to it. Mapped
    # 16-bit files need no reading at all: the kernel takes the samples where they are.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="skystack-read") as reader:
        if mapped:
            for src in sources:                 # map every file while numba may be loading
                src.raw_rows_address(0, 0)      # type: ignore[attr-defined]
        else:
            pending = reader.submit(_gather_band, sources, plan, *bands[0], ln, buffers[0])
        if loader is not None:
            loader.wait()               # while the first band is read
        for k, (r0, r1) in enumerate(bands):
            if mapped:
                buf: NDArray[Any] | list[MappedRows] = _map_band(sources, plan, r0, r1)
            else:
                buf = pending.result()
                if k + 1 < len(bands):
                    pending = reader.submit(_gather_band, sources, plan, *bands[k + 1], ln,
                                            buffers[(k + 1) % 2])
            view = BandResult(r0, r1, *(a[:, r0:r1] for a in arrays),
                              counts=np.zeros((plan.n, 3), np.int64))
            results.append(_compute_band(buf, plan, r0, r1, view))
            if mapped:
                for src in sources:
                    for ch in range(c):
                        src.release_rows(r0, r1, ch)    # type: ignore[attr-defined]
    return _assemble(plan, results, arrays)


def _can_map(sources: list[FrameSource], plan: IntegrationPlan, budget: int) -> bool:
    """Whether pass 2 may read the 16-bit files in place (see :func:`_map_band`).

    Only when the budget would hold every frame's samples on top of the outputs: mapped pages
    are dropped from the resident set after each band, but pages of files written moments ago
    (still dirty in the page cache) were measured to linger, up to ~20 % of the stack, so the
    budget is kept by construction rather than by the kernel's good behaviour.
    """
    if not plan.raw or not all(hasattr(s, "raw_rows_address") for s in sources):
        return False
    c, h, w = plan.shape
    return budget >= _output_bytes(c, h, w) + RUNTIME_BYTES + plan.n * c * h * w * 2


def _map_band(sources: list[FrameSource], plan: IntegrationPlan, r0: int,
              r1: int) -> list[MappedRows]:
    """Rows [r0, r1) of every frame left in the memory-mapped files: one MappedRows a channel.

    The counterpart of :func:`_gather_band` without the copy (which cost as much CPU as a tenth
    of the arithmetic on a machine with two cores).
    """
    c, _, w = plan.shape
    return [MappedRows(np.array([s.raw_rows_address(r0, ch) for s in sources],  # type: ignore[attr-defined]
                                np.int64), (r1 - r0) * w) for ch in range(c)]


def prepare_integration(frames: Sequence[str | Path], *, config: IntegrationConfig | None = None,
                        weights: Any = None, local_normalization: bool = False,
                        memory: int | str | None = None) -> IntegrationPlan:
    """Pass 1 only, for integrating row bands elsewhere (see :func:`integrate_rows`).

    ``frames`` must be plain FITS paths (what registration writes), which every worker can read
    by rows without a decode cache.
    """
    cfg = config or IntegrationConfig()
    subtract = cfg.subtract_pedestal and not local_normalization
    sources = open_sources(frames, cache_dir=None, subtract_pedestal=subtract)
    try:
        return _prepare(sources, cfg, weights, local_normalization, parse_memory(memory))
    finally:
        for s in sources:
            s.close()


def integrate_rows(frames: Sequence[str | Path], plan: IntegrationPlan, r0: int, r1: int, *,
                   local_normalization: Sequence[BandNormalizer] | None = None) -> BandResult:
    """Integrate rows [r0, r1) of ``frames`` with the decisions of ``plan`` (a band task)."""
    subtract = plan.cfg.subtract_pedestal and local_normalization is None
    sources = open_sources(frames, cache_dir=None, subtract_pedestal=subtract)
    try:
        return _integrate_band(sources, plan, r0, r1, local_normalization)
    finally:
        for s in sources:
            s.close()


def assemble_bands(plan: IntegrationPlan, bands: Sequence[BandResult]) -> IntegrationResult:
    """The :class:`IntegrationResult` of band results computed by :func:`integrate_rows`."""
    return _assemble(plan, sorted(bands, key=lambda b: b.r0))


def _large_scale_band(stack: NDArray[np.float32], co: dict[str, NDArray[np.float64]],
                      p: KernelParams, lam: NDArray[np.float64], cfg: IntegrationConfig, *,
                      n: int, nr: int, w: int, core: tuple[int, int], image: NDArray[np.float32],
                      nlow: NDArray[np.uint16], nhigh: NDArray[np.uint16],
                      cov: NDArray[np.uint16]) -> NDArray[np.int64]:
    """Two kernel passes over a band with halo: find clustered rejections, then re-integrate."""
    npix = nr * w
    t_img = np.empty(npix, np.float32)
    t_lo = np.empty(npix, np.uint16)
    t_hi = np.empty(npix, np.uint16)
    t_cov = np.empty(npix, np.uint16)
    mask = np.empty((n, npix), np.uint8)
    _run_kernel(stack, co, p, lam, t_img, t_lo, t_hi, t_cov, mask=mask)
    exclude = _large_scale_exclude(mask.reshape(n, nr, w), layers=cfg.large_scale_layers,
                                   growth=cfg.large_scale_growth).reshape(n, npix)
    _run_kernel(stack, co, p, lam, t_img, t_lo, t_hi, t_cov, exclude=exclude, mask=mask)
    k0, k1 = core
    sl = slice(k0 * w, k1 * w)
    image[...] = t_img[sl].reshape(k1 - k0, w)
    nlow[...] = t_lo[sl].reshape(k1 - k0, w)
    nhigh[...] = t_hi[sl].reshape(k1 - k0, w)
    cov[...] = t_cov[sl].reshape(k1 - k0, w)
    core_stack = stack[:, sl]
    core_mask = mask[:, sl]
    out = np.zeros((n, 3), np.int64)
    out[:, 0] = np.count_nonzero((core_stack == core_stack) & (core_stack != 0), axis=1)
    out[:, 1] = np.count_nonzero(core_mask == 1, axis=1)
    out[:, 2] = np.count_nonzero(core_mask == 2, axis=1)
    return out
