"""``skystack calibrate``: calibrate lights (or flats) with given masters."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", type=Path, help="frames to calibrate")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--bias", type=Path, help="master bias")
    p.add_argument("--dark", type=Path, help="master dark (includes the bias)")
    p.add_argument("--flat", type=Path, help="master flat")
    p.add_argument("--dark-scale", type=float, default=None,
                   help="k in L − B − k·D (default: light exposure / dark exposure from headers)")
    p.add_argument("--optimize-dark", action="store_true",
                   help="find the dark scale that minimizes noise (needs --bias)")
    p.add_argument("--pedestal", default="auto",
                   help="output pedestal in DN, 'auto' (default) or 'none'")
    p.add_argument("--cosmetic", action=argparse.BooleanOptionalAction, default=True,
                   help="repair hot/cold pixels from the master dark and found in each frame "
                        "(default on)")
    p.add_argument("--hot-sigma", type=float, default=10.0,
                   help="hot-pixel threshold in the master dark")
    p.add_argument("--json", action="store_true", help="per-file results as JSON on stdout")


def _pedestal(value: str) -> str | float | None:
    from skystack.errors import ConfigError

    ped = str(value).strip().lower()
    if ped == "auto":
        return "auto"
    if ped == "none":
        return None
    try:
        dn = float(ped)
    except ValueError:
        dn = -1.0
    if not 0 <= dn < 65535:
        msg = f"--pedestal takes 'auto', 'none' or a number of DN in [0, 65535), not {value!r}"
        raise ConfigError(msg)
    return dn


def run(args: argparse.Namespace) -> int:
    from skystack.calibrate import CalibrationConfig, calibrate_files

    cfg = CalibrationConfig(pedestal=_pedestal(args.pedestal),  # type: ignore[arg-type]
                            optimize_dark=args.optimize_dark, cosmetic=args.cosmetic,
                            hot_sigma=args.hot_sigma)
    results = calibrate_files(list(args.files), args.output, bias=args.bias, dark=args.dark,
                              flat=args.flat, dark_scale=args.dark_scale, config=cfg)
    report = []
    for src, (path, res) in zip(args.files, results, strict=True):
        if isinstance(res, str):
            print(f"skipped {res}", file=sys.stderr)
            report.append({"path": str(src), "error": res})
            continue
        k = "" if res.dark_scale is None else f"  k={res.dark_scale:.4f}"
        print(f"{path}  pedestal={res.pedestal_dn:g} DN  repaired={res.repaired}{k}",
              file=sys.stderr)
        for note in res.notes:
            print(f"  note: {note}", file=sys.stderr)
        report.append({"path": str(src), "output": str(path), "pedestal_dn": res.pedestal_dn,
                       "dark_scale": res.dark_scale, "bad_flat_pixels": res.bad_flat_pixels,
                       "hot_pixels_from_dark": res.hot_pixels_from_dark,
                       "cold_pixels_from_dark": res.cold_pixels_from_dark,
                       "defects_in_frame": res.defects_in_frame, "notes": res.notes})
    if args.json:
        json.dump({"version": 1, "frames": report}, sys.stdout, indent=2)
        print()
    failed = sum(1 for r in report if "error" in r)
    return 1 if failed and failed == len(report) else 0
