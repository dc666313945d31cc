"""``skystack scan PATH... [--json]``: inventory of frames with normalized metadata.

A compact table (frames counted by type × filter × exposure × binning × session × temperature)
goes to stderr, with one line per rejected file and per metadata disagreement; ``--json`` prints
the ``frames`` and ``rejected`` arrays of the ``link --json`` schema on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from skystack.library import Inventory
    from skystack.metadata import FrameInfo

_TYPE_ORDER = {"light": 0, "flat": 1, "dark_flat": 2, "dark": 3, "bias": 4, None: 5}
_MAX_WARNINGS = 40


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``skystack scan``."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="folders and/or frames")
    parser.add_argument("--json", action="store_true",
                        help="print the inventory as JSON on stdout")
    parser.add_argument("--no-cache", action="store_true",
                        help="read every header again (and do not update the cache)")
    parser.add_argument("--overrides", metavar="FILE",
                        help="TOML file of [[override]] rules (default: "
                             "skystack-overrides.toml in the scanned folder)")
    parser.add_argument("--longitude", type=float, metavar="DEG",
                        help="site longitude (degrees east) for frames without SITELONG")


def _temperature(f: FrameInfo) -> str:
    t = f.set_temperature if f.set_temperature is not None else f.temperature
    return "-" if t is None else f"{round(t):d}C"


def _row(f: FrameInfo) -> tuple[str, ...]:
    kind = (f.type or "unknown") + (" (master)" if f.master else "")
    exposure = "-" if f.exposure is None else f"{f.exposure:g}s"
    return (kind, f.filter or "-", exposure, f.binning_str or "-", f.session or "-",
            _temperature(f))


def _sort_key(item: tuple[tuple[str, ...], int]) -> tuple[Any, ...]:
    row = item[0]
    base = row[0].split(" ")[0]
    typ = None if base == "unknown" else base
    exp = float(row[2][:-1]) if row[2] != "-" else -1.0
    return (_TYPE_ORDER.get(typ, 5), row[0], row[1], exp, row[3], row[4], row[5])


def render_table(inv: Inventory) -> str:
    """The human inventory: counts per group, then rejected files and warnings."""
    lines = []
    where = f" in {inv.root}" if inv.root is not None else ""
    lines.append(f"{len(inv.frames)} frames, {len(inv.rejected)} rejected{where}")
    counts = Counter(_row(f) for f in inv.frames)
    if counts:
        header = ("type", "filter", "exposure", "bin", "session", "temp", "frames")
        rows = [(*k, str(n)) for k, n in sorted(counts.items(), key=_sort_key)]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for r in [header, *rows]:
            cells = [c.ljust(w) for c, w in zip(r[:-1], widths[:-1], strict=True)]
            lines.append("  ".join(cells) + "  " + r[-1].rjust(widths[-1]))
    for r in inv.rejected:
        lines.append(f"rejected: {inv.relpath(r.path)}: {r.reason}")
    shown = 0
    total = sum(len(f.warnings) for f in inv.frames)
    for f in inv.frames:
        for w in f.warnings:
            if shown == _MAX_WARNINGS:
                break
            lines.append(f"warning: {inv.relpath(f.path)}: {w}")
            shown += 1
    if total > shown:
        lines.append(f"... and {total - shown} more warnings (see --json)")
    if inv.stats.cache_error:
        lines.append(f"note: {inv.stats.cache_error}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """Scan, print the table on stderr and (with --json) the inventory on stdout."""
    from skystack.library import scan

    inv = scan(args.paths, use_cache=not args.no_cache, overrides=args.overrides,
               longitude=args.longitude)
    sys.stderr.write(render_table(inv))
    if args.json:
        json.dump(inv.to_json(), sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
    return 0 if inv.frames else 1
