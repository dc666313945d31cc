"""``skystack doctor``: check frames for the known failure modes before processing.

Exit status: 0 clean (notes only), 1 warnings, 2 errors. Findings grouped by severity go to
stderr; ``--json`` writes the report to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

_MARK = {"error": "✘", "warning": "⚠", "info": "•"}
_TITLE = {"error": "ERRORS", "warning": "WARNINGS", "info": "NOTES"}
_REJECTIONS = ("auto", "none", "minmax", "percentile", "sigma", "winsorized", "averaged-sigma",
               "linear-fit", "esd")


def _pedestal(text: str) -> str | float | None:
    low = text.lower()
    if low == "auto":
        return "auto"
    if low in ("none", "off", "0"):
        return None
    try:
        value = float(text)
    except ValueError:
        msg = f"expected auto, none or a number of DN, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if value < 0:
        raise argparse.ArgumentTypeError("the pedestal cannot be negative")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", type=Path, help="folders or files")
    p.add_argument("--reference", type=Path, help="the LN reference you intend to use")
    p.add_argument("--no-ln", action="store_true", help="local normalization will not be used")
    p.add_argument("--rejection", default="auto", choices=_REJECTIONS,
                   help="rejection you intend to use (default auto)")
    p.add_argument("--pedestal", default="auto", type=_pedestal, metavar="auto|none|DN",
                   help="output pedestal calibration will use (default auto)")
    p.add_argument("--no-pixels", action="store_true", help="skip checks that read pixels")
    p.add_argument("--no-cache", action="store_true", help="do not use the header cache")
    p.add_argument("--json", action="store_true", help="findings as JSON on stdout")


def print_report(report: Any, stream: TextIO | None = None) -> None:
    """Findings grouped by severity, one or two sentences each, then the files concerned."""
    out = stream if stream is not None else sys.stderr
    if not report.findings:
        print("✔ no problems found", file=out)
        return
    for sev in ("error", "warning", "info"):
        items = report.by_severity(sev)
        if not items:
            continue
        print(f"{_TITLE[sev]} ({len(items)})", file=out)
        for f in items:
            print(f"  {_MARK[sev]} [{f.check}] {f.message}", file=out)
            for p in f.paths[:5]:
                print(f"      {p}", file=out)
            if len(f.paths) > 5:
                print(f"      … and {len(f.paths) - 5} more", file=out)
    n = {s: len(report.by_severity(s)) for s in ("error", "warning", "info")}
    verdict = ("fix the errors before processing" if n["error"] else
               "processing can go on; the warnings cost quality" if n["warning"] else
               "nothing to fix")
    print(f"{n['error']} error(s), {n['warning']} warning(s), {n['info']} note(s) — {verdict}",
          file=out)


def run(args: argparse.Namespace) -> int:
    from skystack.doctor import diagnose

    report = diagnose(args.paths, reference=args.reference, local_normalization=not args.no_ln,
                      rejection=args.rejection, pedestal=args.pedestal,
                      use_cache=not args.no_cache, pixel_checks=not args.no_pixels)
    print_report(report)
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        print()
    return report.exit_code
