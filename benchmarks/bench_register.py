"""Registration speed on one core: matching + Lanczos-3 warping of a 4096×3072 frame.

Target (issue 9): matching + warping in ≤ 1.5 s with NUMBA_NUM_THREADS=1. The peer measured in
the same run is ``scipy.ndimage.map_coordinates`` (cubic spline, order=3) through the same
homography, the usual pure-SciPy way to warp. Star detection is timed separately for context
(it belongs to the stars stage and is cached per frame by the pipeline).

Run: ``NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_register.py``
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # must precede the numba import

import time  # noqa: E402

import numpy as np  # noqa: E402
from scipy.special import erf  # noqa: E402

SHAPE = (3072, 4096)
N_STARS = 2000


def _render(xy: np.ndarray, flux: np.ndarray, shape: tuple[int, int], sigma: float = 1.5,
            sky: float = 0.05, seed: int = 0) -> np.ndarray:
    h, w = shape
    img = np.full(shape, sky, dtype=np.float32)
    s = np.sqrt(2.0) * sigma
    for (x, y), f in zip(xy, flux, strict=True):
        x0, x1 = max(int(x) - 8, 0), min(int(x) + 9, w)
        y0, y1 = max(int(y) - 8, 0), min(int(y) + 9, h)
        if x0 >= x1 or y0 >= y1:
            continue
        fx = np.diff(0.5 * erf((np.arange(x0, x1 + 1) - 0.5 - x) / s))
        fy = np.diff(0.5 * erf((np.arange(y0, y1 + 1) - 0.5 - y) / s))
        img[y0:y1, x0:x1] += (f * np.outer(fy, fx)).astype(np.float32)
    img += np.random.default_rng(seed).normal(0, 2e-3, shape).astype(np.float32)
    return img


def _best(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    import numba
    from scipy import ndimage

    from skystack.register import apply_h, find_transform, warp
    from skystack.stars import detect_stars

    rng = np.random.default_rng(42)
    ref_xy = rng.uniform([0, 0], [SHAPE[1], SHAPE[0]], (N_STARS, 2))
    flux = 10 ** rng.uniform(-1.0, 1.5, N_STARS)
    th = np.radians(0.7)
    c = np.array([[1, 0, -SHAPE[1] / 2], [0, 1, -SHAPE[0] / 2], [0, 0, 1.0]])
    m = np.array([[np.cos(th), -np.sin(th), 23.4], [np.sin(th), np.cos(th), -17.9],
                  [1e-7, -2e-7, 1.0]])
    h_true = np.linalg.inv(c) @ m @ c
    ref_img = _render(ref_xy, flux, SHAPE, seed=1)
    frame = _render(apply_h(h_true, ref_xy), flux, SHAPE, seed=2)

    warp(frame[:128, :128], h_true)  # compile / load the numba cache outside the timings
    detect_stars(ref_img[:256, :256])
    t_det, cats = _best(lambda: (detect_stars(ref_img), detect_stars(frame)), repeat=1)
    rc, fc = cats  # type: ignore[misc]
    r_xy, f_xy = np.column_stack([rc.x, rc.y]), np.column_stack([fc.x, fc.y])
    t_match, t = _best(lambda: find_transform(f_xy, r_xy, frame_flux=fc.flux, ref_flux=rc.flux))
    assert t, getattr(t, "reason", "")
    t_warp, _ = _best(lambda: warp(frame, t.H))
    t_cubic, _ = _best(lambda: warp(frame, t.H, method="bicubic"))
    t_lin, _ = _best(lambda: warp(frame, t.H, method="bilinear"))

    def scipy_warp() -> np.ndarray:
        yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]].astype(np.float64)
        pts = apply_h(t.H, np.column_stack([xx.ravel(), yy.ravel()]))
        return ndimage.map_coordinates(frame, [pts[:, 1], pts[:, 0]], order=3, cval=0.0)

    t_scipy, _ = _best(scipy_warp, repeat=1)

    gx, gy = np.meshgrid(np.linspace(0, SHAPE[1] - 1, 50), np.linspace(0, SHAPE[0] - 1, 50))
    g = np.column_stack([gx.ravel(), gy.ravel()])
    err = float(np.sqrt(np.mean(np.sum((apply_h(t.H, g) - apply_h(h_true, g)) ** 2, axis=1))))

    total = t_match + t_warp
    print(f"registration, {SHAPE[1]}×{SHAPE[0]} float32, {N_STARS} stars, "
          f"numba threads = {numba.get_num_threads()}\n")
    print("| step | seconds | vs scipy map_coordinates |")
    print("|---|---|---|")
    print(f"| star detection, both frames (context) | {t_det:.3f} | |")
    print(f"| matching + projective fit ({t.stars_matched} stars) | {t_match:.3f} | |")
    print(f"| warp Lanczos-3 + clamping | {t_warp:.3f} | {t_scipy / t_warp:.1f}× faster |")
    print(f"| warp bicubic + clamping | {t_cubic:.3f} | {t_scipy / t_cubic:.1f}× faster |")
    print(f"| warp bilinear | {t_lin:.3f} | {t_scipy / t_lin:.1f}× faster |")
    print(f"| scipy map_coordinates order=3 (peer) | {t_scipy:.3f} | 1.0× |")
    print(f"| **matching + Lanczos-3 warp** | **{total:.3f}** | target ≤ 1.5 s: "
          f"{'met' if total <= 1.5 else 'MISSED'} |")
    print(f"\ntransform error over the field: {err:.4f} px RMS; fit RMS {t.rms_px:.4f} px")


if __name__ == "__main__":
    main()
