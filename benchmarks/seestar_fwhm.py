"""Seestar S50 session (issue 9): how sharp is the stack compared with the frames it is made of?

Runs ``skystack run`` on the real Seestar subs in ``../shared/realdata/seestar/M94_session1``
(20 × 10 s, Bayer GRBG, alt-az, no calibration frames) and measures star FWHM two ways:

``fwhm``
    The project's frame FWHM: :func:`skystack.weights.measure_frame` (``stars.detect_stars`` on
    the luminance, elliptical Moffat fits, median over the fitted stars with SNR ≥ 30) — what
    ``run.json`` reports and what the issue's criterion uses. Single frames are measured on the
    debayered, calibrated frame (``work/calibrated``), the stack on the master light.
``common``
    Gaussian-fit FWHM, median over one fixed set of stars (the registration reference's clear,
    unsaturated, fitted stars, mapped into each frame through its ``H``). Same stars everywhere, and a fit whose width
    does not trade against a free Moffat β: on these undersampled stars (FWHM ≈ 2 px) the Moffat
    FWHM swings by 10–20 % with sub-pixel changes of the core (β hits 1.1 for some stars and
    ∞ for others), the Gaussian width by 1–2 %.

Tables: per frame (registration matches, RMS over all matched stars and over the bright ones,
FWHM before and after warping onto the reference grid), then the summary: best / median single
frame, the best frame after warping (interpolation broadening), the stack ``skystack run``
made, and plain averages of the best k registered frames (ranked by ``fwhm``; the average of all
of them reproduces the run's stack within 0.01 px, so integration adds no blur).

Measured (2026-11-26, 19 of 20 subs integrated): registration is not what broadens the stack —
pairs of SNR ≥ 40 stars agree to 0.19 px RMS (both centroids' noise), a 2nd/3rd-order polynomial
on top of the projective fit lowers that by no more than its extra parameters explain (no
distortion to model), and bright stars scatter 0.08 px per axis across the registered frames;
a plain average of the registered frames gives the run's FWHM within 0.01 px. What remains is
the seeing spread of the subs (the stack sits at their median: 1.02× on ``common``) and the
resampling of undersampled stars (``fwhm`` of the sharpest frames +5–20 % after warping, with
any kernel; ``common`` +0–2 %). ``--select "fwhm <= fwhm_median"`` (the sharper half) brings
``common`` to 1.04× the best frame at 0.72× the noise gain.

Run: ``.venv/bin/python benchmarks/seestar_fwhm.py [--select "fwhm <= fwhm_median"]
[--weights measure] [--jobs 1]`` — about 3 minutes on one core. Exits 0 with a note when
``../shared/realdata`` is absent.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "realdata" / "seestar" / "M94_session1"
KS = (1, 2, 3, 5, 8, 12)


def _common_stars(ref_lum: np.ndarray, min_snr: float = 20.0) -> np.ndarray:
    """Clear (SNR ≥ ``min_snr``), unsaturated stars of the registration reference frame, away from the
    edges: (N, 2) x, y on the reference grid (the same stars whatever frames a run stacks)."""
    from skystack.stars import detect_stars

    c = detect_stars(ref_lum)
    h, w = ref_lum.shape
    ok = ~c.saturated & (c.snr >= min_snr)
    ok &= (c.x > 40) & (c.x < w - 41) & (c.y > 40) & (c.y < h - 41)
    return np.column_stack([c.x[ok], c.y[ok]])


def _fwhm(lum: np.ndarray) -> float:
    from skystack.weights import measure_frame

    return float(measure_frame(lum).fwhm)


def _fwhm_common(lum: np.ndarray, pts: np.ndarray) -> float:
    """Median Gaussian-fit FWHM of the stars found within 1 px of ``pts``."""
    from scipy.spatial import cKDTree

    from skystack.stars import DetectionConfig, detect_stars

    c = detect_stars(lum, config=DetectionConfig(psf="gaussian"))
    if not len(c):
        return float("nan")
    d, j = cKDTree(np.column_stack([c.x, c.y])).query(pts)
    ok = (d < 1.0) & c.fitted[j]
    return float(np.median(c.fwhm[j[ok]])) if ok.any() else float("nan")


def _bright_rms(frame_stars: dict, ref_stars: dict, H: np.ndarray, min_snr: float = 40.0) -> float:
    """RMS residual (px) of star pairs with SNR ≥ ``min_snr`` in both lists: the transform's
    accuracy where centroids are precise (the run's ``rms_px`` averages faint stars too)."""
    from scipy.spatial import cKDTree

    from skystack.register import apply_h

    r = np.column_stack([ref_stars["x"], ref_stars["y"]])
    f = np.column_stack([frame_stars["x"], frame_stars["y"]])
    rs, fs = np.asarray(ref_stars["snr"]), np.asarray(frame_stars["snr"])
    p = apply_h(H, r)
    d, j = cKDTree(f).query(p)
    ok = (d < 1.0) & (rs >= min_snr) & (fs[j] >= min_snr)
    return float(np.sqrt(np.mean(d[ok] ** 2))) if ok.sum() >= 3 else float("nan")


def _zero_to_nan(lum: np.ndarray) -> np.ndarray:
    a = lum.astype(np.float64)
    a[a <= 0] = np.nan  # 0 = no data on the reference grid
    return a - np.nanmedian(a)


def _fmt(v: float | None, nd: int = 3) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{v:.{nd}f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=Path("/tmp/skystack-seestar-fwhm"),
                   help="run folders go here (one per option set; reused when present)")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--select", default=None, help="selection expression of the run")
    p.add_argument("--weights", default="noise", choices=["noise", "measure"],
                   help="integration weights of the run")
    p.add_argument("--reference", default=None, help="registration reference (file name)")
    args = p.parse_args(argv)

    subs = sorted(args.data.glob("*.fit"))
    if not subs:
        print(f"note: no Seestar subs in {args.data} (../shared/realdata absent) — nothing to "
              "measure", file=sys.stderr)
        return 0

    from skystack.io import read_image
    from skystack.pipeline import RunConfig, run_pipeline
    from skystack.register import apply_h
    from skystack.stars import luminance

    ref = str(args.data / args.reference) if args.reference else None
    cfg = RunConfig(jobs=args.jobs, executor="local" if args.jobs > 1 else "serial",
                    select=args.select, integration_weights=args.weights, reference=ref)
    tag = hashlib.sha256(json.dumps(cfg.product_params(), sort_keys=True, default=str)
                         .encode()).hexdigest()[:10]
    out = args.out / f"run_{tag}"
    t0 = time.time()
    run_pipeline(subs, out, config=cfg, resume=True, log=lambda m: None)
    t_run = time.time() - t0
    run = json.loads((out / "run.json").read_text())
    (group,) = run["groups"]
    stars_of = {}
    for f in (out / "work" / "measure").glob("*.json"):
        d = json.loads(f.read_text())
        stars_of[d["path"]] = d["stars"]
    ref_path = group["registration_reference"]

    stack = luminance(read_image(group["output"]).data)
    ref_row = next(r for r in group["frame_rows"] if r["path"] == ref_path)
    pts = _common_stars(luminance(read_image(ref_row["calibrated"]).data))
    rows = [r for r in group["frame_rows"] if r.get("calibrated")]
    table = []
    for r in rows:
        raw = luminance(read_image(r["calibrated"]).data)
        H = np.asarray(r["H"], float) if r.get("H") else None
        row = {"name": Path(r["path"]).stem[-6:], "path": r["path"], "accepted": r["accepted"],
               "weight": r.get("weight"), "matched": r.get("stars_matched"),
               "rms": r.get("rms_px"), "fwhm": _fwhm(raw),
               "common": _fwhm_common(raw, apply_h(H, pts)) if H is not None else float("nan"),
               "rms_bright": float("nan"), "fwhm_reg": float("nan"), "common_reg": float("nan"),
               "registered": r.get("registered"), "reason": r.get("reason")}
        if H is not None and r.get("registered"):
            if r["path"] != ref_path:
                row["rms_bright"] = _bright_rms(stars_of[r["path"]], stars_of[ref_path], H)
            reg = luminance(read_image(r["registered"]).data)
            row["fwhm_reg"], row["common_reg"] = _fwhm(reg), _fwhm_common(reg, pts)
        table.append(row)

    print(f"## Seestar M94 session: {len(rows)} subs, {group['frames']} integrated "
          f"(select={args.select!r}, integration weights={args.weights!r}, reference "
          f"{Path(ref_path).name}); run {t_run:.0f} s\n")
    print("| frame | used | weight | matched | rms px | rms SNR≥40 px | fwhm | fwhm warped "
          "| common | common warped |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for t in table:
        used = "ref" if t["path"] == ref_path else ("yes" if t["accepted"] else "no")
        print(f"| {t['name']} | {used} | {_fmt(t['weight'], 2)} | {t['matched'] or '—'} | "
              f"{_fmt(t['rms'])} | {_fmt(t['rms_bright'])} | {_fmt(t['fwhm'])} | "
              f"{_fmt(t['fwhm_reg'])} | {_fmt(t['common'])} | {_fmt(t['common_reg'])} |")

    # singles: every frame that registered (accepted or not: "the best single frame")
    reg_rows = [t for t in table if t["registered"]]
    f_raw = np.array([t["fwhm"] for t in reg_rows])
    c_raw = np.array([t["common"] for t in reg_rows])
    best_i = int(np.nanargmin(f_raw))
    best_f, med_f = float(np.nanmin(f_raw)), float(np.nanmedian(f_raw))
    best_c, med_c = float(np.nanmin(c_raw)), float(np.nanmedian(c_raw))

    summary: list[tuple[str, float, float]] = [
        ("best single frame", best_f, best_c),
        ("median single frame", med_f, med_c),
        (f"best frame ({reg_rows[best_i]['name']}) warped onto the reference grid",
         reg_rows[best_i]["fwhm_reg"], reg_rows[best_i]["common_reg"]),
        ("best single frame, each measured warped",
         float(np.nanmin([t["fwhm_reg"] for t in reg_rows])),
         float(np.nanmin([t["common_reg"] for t in reg_rows]))),
        (f"stack from skystack run ({group['frames']} frames)", _fwhm(stack),
         _fwhm_common(stack, pts)),
    ]
    used = [t for t in reg_rows if t["accepted"]]
    order = sorted(used, key=lambda t: t["fwhm"])
    lums = [_zero_to_nan(luminance(read_image(t["registered"]).data)).astype(np.float32)
            for t in order]
    for k in [k for k in KS if k < len(order)] + [len(order)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # pixels no frame covers
            mean = np.nanmean(np.stack(lums[:k]), axis=0)
        img = (np.nan_to_num(mean) + 0.1).astype(np.float32)
        summary.append((f"plain average of the best {k} registered frames", _fwhm(img),
                        _fwhm_common(img, pts)))

    print(f"\n### Summary ({len(pts)} common stars)\n")
    print("| | fwhm | × best | × median | common | × best | × median |")
    print("|---|---|---|---|---|---|---|")
    for name, f, c in summary:
        print(f"| {name} | {_fmt(f)} | {_fmt(f / best_f)} | {_fmt(f / med_f)} | {_fmt(c)} | "
              f"{_fmt(c / best_c)} | {_fmt(c / med_c)} |")
    print(f"\nnoise gain of the stack {group['noise_gain']:.2f} (√N = "
          f"{np.sqrt(group['frames']):.2f}); bright-star registration RMS median "
          f"{_fmt(float(np.nanmedian([t['rms_bright'] for t in used])))} px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
