"""``skystack calibrate``: calibrate lights (or flats) with given masters."""

from __future__ import annotations

import argparse
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
    p.add_argument("--no-cosmetic", action="store_true", help="do not repair hot/cold pixels")
    p.add_argument("--hot-sigma", type=float, default=10.0, help="hot-pixel threshold in the master dark")


def run(args: argparse.Namespace) -> int:
    from skystack.calibrate import CalibrationConfig, calibrate_files
    from skystack.errors import ConfigError

    ped = str(args.pedestal).lower()
    if ped == "auto":
        pedestal: str | float | None = "auto"
    elif ped == "none":
        pedestal = None
    else:
        try:
            pedestal = float(ped)
        except ValueError as err:
            msg = f"--pedestal takes 'auto', 'none' or a number of DN, not {args.pedestal!r}"
            raise ConfigError(msg) from err
    cfg = CalibrationConfig(pedestal=pedestal, optimize_dark=args.optimize_dark,  # type: ignore[arg-type]
                            cosmetic=not args.no_cosmetic, hot_sigma=args.hot_sigma)
    results = calibrate_files(list(args.files), args.output, bias=args.bias, dark=args.dark,
                              flat=args.flat, dark_scale=args.dark_scale, config=cfg)
    failed = 0
    for path, res in results:
        if isinstance(res, str):
            failed += 1
            print(f"skipped: {res}", file=sys.stderr)
        else:
            k = "" if res.dark_scale is None else f"  k={res.dark_scale:.4f}"
            print(f"{path}  pedestal={res.pedestal_dn:g} DN  repaired={res.repaired}{k}",
                  file=sys.stderr)
            for note in res.notes:
                print(f"  note: {note}", file=sys.stderr)
    return 1 if failed and failed == len(results) else 0
