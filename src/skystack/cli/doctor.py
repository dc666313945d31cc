"""``skystack doctor``: check frames for the known failure modes before processing."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

_MARK = {"error": "✘", "warning": "⚠", "info": "•"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", type=Path, help="folders or files")
    p.add_argument("--reference", type=Path, help="the LN reference you intend to use")
    p.add_argument("--no-ln", action="store_true", help="local normalization will not be used")
    p.add_argument("--rejection", default="auto", help="rejection you intend to use")
    p.add_argument("--no-pixels", action="store_true", help="skip checks that read pixels")
    p.add_argument("--no-cache", action="store_true", help="do not use the header cache")
    p.add_argument("--json", action="store_true", help="findings as JSON on stdout")


def print_report(report, stream=sys.stderr) -> None:  # noqa: ANN001
    """Findings grouped by severity, one or two sentences each, then the files concerned."""
    if not report.findings:
        print("✔ no problems found", file=stream)
        return
    for sev in ("error", "warning", "info"):
        items = report.by_severity(sev)
        if not items:
            continue
        print(f"{sev.upper()}S ({len(items)})", file=stream)
        for f in items:
            print(f"  {_MARK[sev]} [{f.check}] {f.message}", file=stream)
            for p in f.paths[:5]:
                print(f"      {p}", file=stream)
            if len(f.paths) > 5:
                print(f"      … and {len(f.paths) - 5} more", file=stream)


def run(args: argparse.Namespace) -> int:
    from skystack.doctor import diagnose

    report = diagnose(args.paths, reference=args.reference, local_normalization=not args.no_ln,
                      rejection=args.rejection, use_cache=not args.no_cache,
                      pixel_checks=not args.no_pixels)
    print_report(report)
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        print()
    return report.exit_code
