"""Star detection + measurement speed on a 4096×3072 frame with ~2000 stars, on ONE core.

Run: ``NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_stars.py [--repeat N]``

Prints a markdown table: each stage of :func:`skystack.stars.detect_stars` and
:func:`skystack.weights.measure_frame` (best wall time of N runs and its CPU time), and a peer
measured in the same run — the same job done with plain SciPy filters (Gaussian filter,
maximum filter, labelled centroids: no PSF fit), the usual first attempt in Python. CPU time is
the fairer number on a busy machine (it does not count time spent waiting for a core).
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

SHAPE = (3072, 4096)
N_STARS = 2000
FWHM = 3.5


def make_frame(seed: int = 0) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """A 4096×3072 frame: ~2000 Moffat stars (β = 3), sky 1000 e⁻, Poisson + read noise."""
    rng = np.random.default_rng(seed)
    h, w = SHAPE
    xy = np.column_stack([rng.uniform(10, w - 10, N_STARS), rng.uniform(10, h - 10, N_STARS)])
    flux = 10 ** rng.uniform(3.0, 5.5, N_STARS)
    e = np.full(SHAPE, 1000.0)
    beta = 3.0
    alpha = FWHM / (2 * math.sqrt(2 ** (1 / beta) - 1))
    r = 12
    off = np.arange(-r, r + 1)
    sub = (np.arange(3) - 1) / 3.0  # 3×3 samples per pixel: the pixel-integrated PSF
    for (x, y), f in zip(xy, flux, strict=True):
        x0, y0 = int(round(x)), int(round(y))
        gx = off[None, :, None, None] + x0 - x + sub[None, None, None, :]
        gy = off[:, None, None, None] + y0 - y + sub[None, None, :, None]
        d2 = gx**2 + gy**2
        prof = ((beta - 1) / (math.pi * alpha**2) * (1 + d2 / alpha**2) ** -beta).mean(axis=(2, 3))
        ys, xs = slice(max(0, y0 - r), y0 + r + 1), slice(max(0, x0 - r), x0 + r + 1)
        cut = prof[(ys.start - (y0 - r)) :, (xs.start - (x0 - r)) :][: e[ys, xs].shape[0],
                                                                        : e[ys, xs].shape[1]]
        e[ys, xs] += f * cut
    img = rng.poisson(e).astype(np.float64) + rng.normal(0, 5.0, SHAPE)
    return (img / 65535.0).astype(np.float32), xy


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Best wall time and the CPU time of that run (seconds), and the last result."""
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    i = int(np.argmin(walls))
    return walls[i], cpus[i], out


def scipy_peer(img: NDArray[np.float32]) -> int:
    """Detection with SciPy filters: smooth, local maxima above 5σ, labelled centroids."""
    from scipy import ndimage

    med = float(np.median(img[::4, ::4]))
    sig = 1.4826 * float(np.median(np.abs(img[::4, ::4] - med)))
    sk = FWHM / 2.3548
    s = ndimage.gaussian_filter(img - med, sk)
    # noise of the filtered image: sigma / (2 sk sqrt(pi))
    peaks = (s == ndimage.maximum_filter(s, size=3)) & (s > 5 * sig / (2 * sk * math.sqrt(math.pi)))
    lab, n = ndimage.label(ndimage.binary_dilation(peaks, iterations=3))
    ndimage.center_of_mass(np.maximum(img - med, 0), lab, np.arange(1, n + 1))
    return n


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    from skystack import _star_kernels as K
    from skystack import stars as S
    from skystack import weights as W

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)

    img, xy = make_frame()
    S.detect_stars(img[:512, :512])  # load/compile the numba kernels
    W.measure_frame(img[:512, :512])

    cfg = S.DetectionConfig()
    rows: list[tuple[str, float, float]] = []

    def stage(name: str, fn: Callable[[], Any]) -> Any:
        wall, cpu, out = best(fn, args.repeat)
        rows.append((name, wall, cpu))
        return out

    bkg = stage("background mesh (64 px, 3×3 median)", lambda: S.estimate_background(img))
    resid = stage("subtract background", lambda: K.subtract_background(img, bkg.level, bkg.mesh))
    kern = K.gaussian_kernel(cfg.fwhm_guess / 2.3548)
    smooth = stage("matched filter (Gaussian, separable)", lambda: K.smooth_separable(resid, kern))
    thr = (cfg.threshold * float(np.sum(kern.astype(np.float64) ** 2)) * bkg.rms)
    py, px = stage("local maxima", lambda: K.find_peaks(smooth, thr.astype(np.float32), bkg.mesh,
                                                        4, radius=1))
    amp = smooth[py, px].astype(np.float64)
    ptr, nbr = S._neighbours(px.astype(float), py.astype(float), S._deblend_radius(cfg))
    s0 = cfg.fwhm_guess / 2.3548
    stage(f"adaptive moments ({px.size} candidates)",
          lambda: K.measure_moments(resid, px, py, amp, ptr, nbr, s0, rmax=40))
    wall_d, cpu_d, cat = best(lambda: S.detect_stars(img), args.repeat)
    nfit = int(cat.fitted.sum())
    other = cpu_d - sum(r[2] for r in rows)  # CPU times: wall times jitter on a busy machine
    rows.append((f"PSF fits ({nfit} stars) + catalogue (remainder)", float("nan"), other))
    rows.append(("**detect_stars total**", wall_d, cpu_d))
    stage("MRS noise (4 layers, 1 Mpx of tiles)", lambda: W.mrs_noise(img))
    wall_m, cpu_m, m = best(lambda: W.measure_frame(img), args.repeat)
    rows.append(("**measure_frame total** (detect + noise + M*/N* + PSF weights + trail)",
                 wall_m, cpu_m))
    wall_p, cpu_p, n_peer = best(lambda: scipy_peer(img), max(1, args.repeat // 2))
    rows.append((f"peer: SciPy filters detection only ({n_peer} sources, no fit)", wall_p, cpu_p))

    d, _ = __import__("scipy.spatial", fromlist=["cKDTree"]).cKDTree(xy).query(
        np.column_stack([cat.x, cat.y]))
    print(f"frame {SHAPE[1]}×{SHAPE[0]}, {N_STARS} stars injected, {len(cat)} measured "
          f"({int((d < 1.5).sum())} matched), {nfit} PSF fits; NUMBA_NUM_THREADS="
          f"{os.environ.get('NUMBA_NUM_THREADS')}; best of {args.repeat}; load average "
          f"{os.getloadavg()[0]:.1f}")
    print()
    print("| stage | wall ms | CPU ms | vs peer (wall) |")
    print("|---|---:|---:|---:|")
    for name, wall, cpu in rows:
        ratio = f"{wall / wall_p:.2f}×" if "total" in name or name.startswith("peer") else ""
        cpu_s = "" if math.isnan(cpu) else f"{1000 * cpu:.0f}"
        wall_s = "" if math.isnan(wall) else f"{1000 * wall:.0f}"
        print(f"| {name} | {wall_s} | {cpu_s} | {ratio} |")
    print()
    print(f"median FWHM {m.fwhm:.3f} px (truth {FWHM}), noise {m.noise * 65535:.1f} ADU "
          f"(truth {math.sqrt(1025):.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
