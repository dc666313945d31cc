"""``skystack master``: build one master bias, dark, dark-flat or flat."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=["bias", "dark", "dark_flat", "flat"], help="master type")
    p.add_argument("files", nargs="+", type=Path, help="source frames")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="master file (.xisf or .fits; XISF recommended)")
    p.add_argument("--bias", type=Path, help="flats: master bias to calibrate each flat")
    p.add_argument("--dark-flat", type=Path, help="flats: master dark-flat to calibrate each flat")
    p.add_argument("--rejection", default="auto", help="rejection method (default: auto by count)")
    p.add_argument("--memory", default=None, help="memory budget, e.g. 4G")


def run(args: argparse.Namespace) -> int:
    from skystack.cfa import effective_pattern
    from skystack.io import read_header
    from skystack.masters import build_master
    from skystack.metadata import frame_info

    infos = []
    for f in args.files:
        try:
            infos.append(frame_info(read_header(f)))
        except Exception as err:  # noqa: BLE001 - metadata is optional for a master
            print(f"{f}: metadata not read ({err})", file=sys.stderr)
    pattern = None
    if infos and infos[0].bayer:
        pattern = effective_pattern(infos[0].bayer, row_order=infos[0].row_order,
                                    height=infos[0].height)
    res = build_master(args.kind, args.files, infos=infos, bias=args.bias, dark=args.dark_flat,
                       cfa_pattern=pattern, rejection=args.rejection, memory=args.memory,
                       output=args.output)
    print(f"master {args.kind}: {len(res.sources)} frames → {res.path}  "
          f"(rejected {res.rejected_low:.3%} low, {res.rejected_high:.3%} high)", file=sys.stderr)
    for note in res.notes:
        print(f"  note: {note}", file=sys.stderr)
    return 0
