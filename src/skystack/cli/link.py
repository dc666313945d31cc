"""``skystack link PATH... [--json] [--html FILE] [--config FILE] [--no-cache]``.

Scans the folders, links calibration frames to lights, prints the link tree on stderr, the
plan as JSON on stdout (``--json``) and writes the diagram page (``--html``). Problems in the
plan are data, not failures: the exit status is 0 unless the command itself failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from skystack.errors import ConfigError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``link`` options."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="folders or frames to scan")
    parser.add_argument("--json", action="store_true", help="print the link plan as JSON")
    parser.add_argument("--html", metavar="FILE", help="write the link diagram page to FILE")
    parser.add_argument("--config", metavar="FILE",
                        help="TOML file whose [link] table sets tolerances and overrides")
    parser.add_argument("--no-cache", action="store_true", help="re-read every header")


def load_config(path: str | Path | None):  # -> LinkConfig (import kept lazy)
    """The ``[link]`` table of a TOML file as a :class:`~skystack.linking.LinkConfig`."""
    import tomllib

    from skystack.linking import LinkConfig

    if path is None:
        return LinkConfig()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file ({err.strerror})") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err}) — fix the syntax") from err
    return LinkConfig.from_mapping(data.get("link", {}))


def run(args: argparse.Namespace) -> int:
    """Scan, link, report."""
    from skystack.linking import link
    from skystack.report import render_link_html, render_link_tree

    try:
        from skystack.library import scan
    except ImportError as err:  # pragma: no cover - library lands with the scan helper
        raise ConfigError(f"the scanner is not available ({err})") from err

    config = load_config(args.config)
    inventory = scan(args.paths, use_cache=not args.no_cache)
    plan = link(inventory.frames, config=config, root=inventory.root,
                rejected=inventory.rejected)
    print(render_link_tree(plan, color=sys.stderr.isatty()), end="", file=sys.stderr)
    if args.html:
        out = Path(args.html)
        out.write_text(render_link_html(plan), encoding="utf-8")
        print(f"link diagram written to {out}", file=sys.stderr)
    if args.json:
        json.dump(plan.to_json(), sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
    return 0
