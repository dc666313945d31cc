"""``make demo``: simulate a night, run the whole pipeline on it, and say where the report is."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from skystack.cli import main as cli


def main(argv: list[str]) -> int:
    """Simulate the ``night`` preset into DEMO/night (once) and run it into DEMO/result."""
    root = Path(argv[0] if argv else "demo")
    night = root / "night"
    result = root / "result"
    start = time.time()
    if not (night / "truth" / "truth.json").exists():
        print(f"simulating a night into {night} …", file=sys.stderr)
        code = cli(["simulate", str(night), "--preset", "night", "--seed", "1"])
        if code:
            return code
    print(f"running the pipeline into {result} …", file=sys.stderr)
    code = cli(["run", str(night), "-o", str(result), "--force"])
    if code:
        return code
    print(f"\nskystack demo finished in {time.time() - start:.0f} s", file=sys.stderr)
    print(f"report:  {(result / 'report.html').resolve()}")
    print(f"masters: {(result / 'lights').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
