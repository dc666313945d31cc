"""The ``skystack`` command line: a table of commands, one module each.

Each command lives in ``skystack/cli/<name>.py`` and defines ``add_arguments(parser)`` and
``run(args) -> int``. Command modules import heavy libraries inside ``run`` so that ``--help``
stays fast. JSON goes to stdout, human output (tables, progress) to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

from skystack import __version__
from skystack.errors import SkystackError

#: name → (module, one-line summary). Order is the order of ``skystack --help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "scan": ("skystack.cli.scan", "inventory of frames with normalized metadata"),
    "link": ("skystack.cli.link", "calibration link plan: which master calibrates which light"),
    "run": ("skystack.cli.run", "the whole pipeline"),
    "master": ("skystack.cli.master", "build one master bias, dark or flat"),
    "calibrate": ("skystack.cli.calibrate", "calibrate lights or flats"),
    "measure": ("skystack.cli.measure", "stars, FWHM, noise and weights per frame"),
    "register": ("skystack.cli.register", "align frames on a reference"),
    "normalize": ("skystack.cli.normalize", "global or local normalization"),
    "integrate": ("skystack.cli.integrate", "stack frames with pixel rejection"),
    "simulate": ("skystack.cli.simulate", "a synthetic night with ground truth"),
    "doctor": ("skystack.cli.doctor", "check for the known failure modes"),
}


def _available() -> dict[str, tuple[str, str]]:
    out = {}
    for name, (module, summary) in COMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            out[name] = (module, summary)
    return out


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available command."""
    parser = argparse.ArgumentParser(
        prog="skystack",
        description="Batch preprocessing for astrophotography, explained.",
    )
    parser.add_argument("--version", action="version", version=f"skystack {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, summary) in _available().items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=summary, description=summary)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``skystack`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args._run(args) or 0)
    except SkystackError as err:
        print(f"skystack {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
