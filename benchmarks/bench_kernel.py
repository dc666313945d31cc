"""CPU per sample of the stack engine's numba kernel, one thread, by rejection method.

A synthetic band (N frames × 384 rows × 4096 columns of big-endian 16-bit FITS samples: sky, noise,
stars, cosmic rays, a trail every 4th frame) goes through ``integrate.engine._run_kernel`` the way
the engine passes raw bands. The peer measured in the same run is NumPy decoding the same band to
float32 (what ``read_image`` does per frame), so the ratio says how many decodes one integration
costs. Usage: ``python benchmarks/bench_kernel.py [--frames 20 50] [--repeat 3]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")     # per-sample CPU: one thread, before numba

import argparse
import sys
import time
import timeit
from collections.abc import Callable
from functools import partial

import numpy as np

ROWS, COLS = 384, 4096


def make_band(n: int, seed: int = 0) -> np.ndarray:
    """(n, ROWS·COLS) uint16 as a FITS file stores them (BZERO 32768, big-endian), read natively."""
    rng = np.random.default_rng(seed)
    sky = np.full((ROWS, COLS), 0.08, np.float32)
    for _ in range(40):
        y, x = rng.integers(8, ROWS - 8), rng.integers(8, COLS - 8)
        sky[y - 3:y + 4, x - 3:x + 4] += rng.uniform(0.02, 0.5)
    band = np.empty((n, ROWS * COLS), np.uint16)
    for i in range(n):
        f = sky * rng.uniform(0.97, 1.03) + 0.005 * rng.standard_normal(sky.shape, np.float32)
        hits = rng.integers(0, f.size, f.size // 2000)
        f.reshape(-1)[hits] += 0.3
        if i % 4 == 0:
            f[:, 100 + i] += 0.2
        u = np.rint(np.clip(f, 0, 1) * 65535).astype(np.uint16)
        band[i] = ((u ^ np.uint16(0x8000)).astype(">u2").view(np.uint16)).reshape(-1)
    return band


def _decode(band: np.ndarray) -> np.ndarray:
    """What ``read_image`` does to 16-bit FITS samples: big-endian, BZERO 32768, to [0, 1]."""
    return (band.view(">i2").astype(np.float32) + np.float32(32768)) / np.float32(65535)


def _best(fn: Callable[[], object], repeat: int) -> float:
    """Least CPU time of ``repeat`` calls after one untimed warm-up call (timeit's rule)."""
    fn()
    return min(timeit.repeat(fn, timer=time.process_time, number=1, repeat=repeat))


def main(argv: list[str] | None = None) -> int:
    """Run and print a markdown table."""
    from skystack.integrate._reference import (
        KernelParams,
        esd_critical_values,
        linfit_spread_table,
    )
    from skystack.integrate.config import IntegrationConfig
    from skystack.integrate.engine import _run_kernel

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, nargs="+", default=[20, 50])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"\nkernel CPU per sample, {os.environ['NUMBA_NUM_THREADS']} thread, band "
          f"{ROWS}×{COLS}; peer: NumPy decoding the same band to float32\n")
    print("| frames | method | ns / sample | × NumPy decode |")
    print("|---|---|---:|---:|")
    for n in args.frames:
        band = make_band(n)
        npix = band.shape[1]

        t_dec = _best(partial(_decode, band), args.repeat)
        co = {"ra": np.ones(n), "rb": np.zeros(n), "oa": np.ones(n), "ob": np.zeros(n),
              "w": np.ones(n), "rl": np.full(n, -np.inf), "rh": np.full(n, np.inf)}
        lam = np.array([esd_critical_values(n, 0.05), linfit_spread_table(n)])
        img = np.empty(npix, np.float32)
        maps = [np.empty(npix, np.uint16) for _ in range(3)]
        for method in ("none", "sigma", "winsorized", "linear-fit"):
            cfg = IntegrationConfig(rejection=method).resolved(n)
            p = KernelParams(method=method, low=float(cfg.low or 0), high=float(cfg.high or 0))
            _run_kernel(band[:, :4096], co, p, lam, img[:4096], *(m[:4096] for m in maps))
            t = _best(partial(_run_kernel, band, co, p, lam, img, *maps), args.repeat)
            print(f"| {n} | {method} | {t / band.size * 1e9:.2f} | {t / t_dec:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
