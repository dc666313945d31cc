"""Benchmark: local normalization of a 4096×3072 frame on one core.

Target (issue 10): ``compute_local_normalization`` + one ``apply`` over the whole frame ≤ 1 s on
one core. The frames are simulator lights (``skystack.simulate.render_light``: ~2,500 stars/Mpx,
a galaxy and a nebula, Poisson + read noise), "calibrated" (noiseless bias removed, +100 DN
pedestal); the frame has 80 % transparency, a linear gradient of ±5 % of the sky and a quadratic
term. Each stage is timed against its peer in the same run: the previous implementation (from
git), ``skystack.stars.detect_stars`` for finding stars, the NumPy references of the kernels.
Times are CPU seconds of this process (``time.process_time``, best of 3) — the machine is shared,
and CPU time is what "one core" means; wall times are shown too.

    .venv/bin/python benchmarks/bench_normalize.py [--no-old]
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from skystack import normalize as ln  # noqa: E402

W, H = 4096, 3072
EXPOSURE = 120.0
OLD_COMMIT = "dfc48e4"  # normalize.py before the numba kernels


def frames() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Reference, frame, their noiseless backgrounds, the sky level (unit range), transparency."""
    from skystack.simulate import Camera, LightSpec, make_scene, render_bias, render_light

    scene = make_scene(W, H, seed=1)
    cam = Camera(width=W, height=H, prnu_sigma=0.0, cold_fraction=0.0)
    bias, _ = render_bias(cam, seed=0, noise=False)
    ped = np.float32(100 / 65535)
    sky = 2.0
    sky_unit = sky * EXPOSURE / cam.gain_e_per_adu / 65535
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    u = ((xx - W / 2) * np.cos(1.1) + (yy - H / 2) * np.sin(1.1)) / (W / 2)
    quad = (0.04 * u**2 * sky_unit).astype(np.float32)
    t = 0.8
    g = 0.05 * sky / (W / 2)

    def make(tr: float, coeffs: tuple[float, float, float], extra: np.ndarray | float,
             noise: bool, seed: int) -> np.ndarray:
        spec = LightSpec(scene=scene, camera=cam, dark=False, transparency=tr, noise=noise,
                         sky={"L": coeffs}, exposure=EXPOSURE)
        return render_light(spec, seed=seed)[0] - bias + ped + extra

    ref = make(1.0, (sky, 0.0, 0.0), 0.0, True, 1)
    ref_bg = make(0.0, (sky, 0.0, 0.0), 0.0, False, 1)
    frame = make(t, (1.1 * sky, g * 0.6, -g * 0.8), quad, True, 2)
    frame_bg = make(0.0, (1.1 * sky, g * 0.6, -g * 0.8), quad, False, 2)
    return ref, frame, ref_bg, frame_bg, sky_unit, t


def best(fn: Callable[[], object], repeat: int = 3) -> tuple[float, float]:
    """Best CPU and wall seconds of ``repeat`` calls."""
    cpu, wall = [], []
    for _ in range(repeat):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return min(cpu), min(wall)


def old_module() -> types.ModuleType | None:
    """normalize.py as it was before the kernels, imported from git (None when unavailable)."""
    repo = Path(__file__).resolve().parent.parent
    try:
        src = subprocess.run(["git", "show", f"{OLD_COMMIT}:src/skystack/normalize.py"], cwd=repo,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    mod = types.ModuleType("normalize_old")
    sys.modules["normalize_old"] = mod  # dataclasses look their module up
    exec(compile(src, "normalize_old.py", "exec"), mod.__dict__)  # noqa: S102 - our own history
    return mod


def main() -> None:
    with_old = "--no-old" not in sys.argv
    print(f"rendering two {W}×{H} simulator lights…", file=sys.stderr)
    ref, frame, ref_bg, frame_bg, sky_unit, t = frames()
    small = (slice(0, 512), slice(0, 512))
    ln.compute_local_normalization(frame[small], ref[small]).apply(frame[small])  # JIT warm-up

    def full() -> ln.LocalNormalization:
        fn = ln.compute_local_normalization(frame, ref)
        fn.apply(frame)
        return fn

    rows: list[tuple[str, float, float, str, float | None]] = []
    cpu, wall = best(full)
    peer = None
    if with_old and (old := old_module()) is not None:
        print("timing the previous implementation (slow)…", file=sys.stderr)
        pc, _ = best(lambda: old.compute_local_normalization(frame, ref).apply(frame), repeat=1)
        peer = pc
        rows.append(("LN compute + apply (whole frame)", cpu, wall, "previous normalize.py", pc))
    else:
        rows.append(("LN compute + apply (whole frame)", cpu, wall, "-", None))

    fn = ln.compute_local_normalization(frame, ref)
    xy = ln.find_bright_stars(ref)
    c1, w1 = best(lambda: ln.find_bright_stars(ref))
    from skystack.stars import detect_stars

    c2, _ = best(lambda: detect_stars(ref), repeat=1)
    rows.append(("find_bright_stars (reference)", c1, w1, "stars.detect_stars", c2))
    c1, w1 = best(lambda: (ln.aperture_photometry(frame, xy), ln.aperture_photometry(ref, xy)))
    c2, _ = best(lambda: (ln._aperture_photometry_ref(frame, xy),
                          ln._aperture_photometry_ref(ref, xy)), repeat=1)
    rows.append((f"aperture photometry, {len(xy)} stars × 2", c1, w1, "NumPy reference", c2))
    step = ln._sample_step(fn.cell)
    c1, w1 = best(lambda: ln._cell_stats_fast(ref, frame, fn.a1, fn.cell, low=4.5e-5, high=0.85,
                                               k=3.0, step=step))
    diff = ref - np.float32(fn.a1) * frame
    valid = ln._valid(ref, ln.LNConfig()) & ln._valid(frame, ln.LNConfig())
    c2, _ = best(lambda: ln._cell_stats(diff, valid, fn.cell, 3.0), repeat=1)
    rows.append((f"cell statistics ({fn.cell} px cells, every {step}. px)", c1, w1,
                 "NumPy nanmedian, every px", c2))

    def fresh_apply() -> None:
        fn._rows_x = None
        fn.apply(frame)

    c1, w1 = best(fresh_apply)
    c2, _ = best(lambda: fn._apply_ref(frame), repeat=1)
    rows.append(("apply (separable spline, numba)", c1, w1, "map_coordinates", c2))

    print(f"\n## Local normalization, {W}×{H}, one core\n")
    print("| step | CPU s | wall s | peer | peer CPU s | speed-up |")
    print("|---|---:|---:|---|---:|---:|")
    for name, c, w, pname, p in rows:
        ratio = f"{p / c:.1f}×" if p else "-"
        pcol = f"{p:.3f}" if p else "-"
        print(f"| {name} | {c:.3f} | {w:.3f} | {pname} | {pcol} | {ratio} |")
    err = fn.a0() + fn.a1 * frame_bg - ref_bg
    rms = float(np.sqrt(np.mean(err.astype(np.float64) ** 2)))
    verdict = "meets" if cpu <= 1.0 else "MISSES"
    print(f"\nTarget ≤ 1 s: {cpu:.3f} s CPU ({verdict}); previous implementation "
          f"{'%.1f s' % peer if peer else 'not timed'}.")
    print(f"Accuracy against the truth: background RMS {rms / sky_unit:.3%} of the sky "
          f"(target ≤ 0.2 %), scale error {fn.a1 * t - 1:+.3%} (target ≤ 0.5 %), "
          f"{fn.stars_used} stars.")


if __name__ == "__main__":
    main()
