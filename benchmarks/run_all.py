"""What ``make bench`` runs: the quick per-stage benchmarks, then the side-by-side suite.

Each ``benchmarks/bench_*.py`` (except the suite) runs in its own process with light arguments
and a time budget; a script that overruns is stopped and reported, the rest carry on. Then
``bench_suite.py`` compares skystack with Siril and ccdproc + astroalign on the ``small``
dataset (``--large`` adds the 40 × 4096×3072 set). Peers that are missing are installed when
possible (``pip install ccdproc astroalign`` into this interpreter's environment; Siril with
``apt-get`` when running as root), otherwise skipped with a note in the tables.

    .venv/bin/python benchmarks/run_all.py [--large] [--skip-quick] [--no-install]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable

#: light arguments for the quick benchmarks (the full-size runs are for the stage owners)
QUICK_ARGS: dict[str, list[str]] = {
    "bench_scan.py": ["2000"],
    "bench_integrate.py": ["--frames", "20", "--size", "2048x1536"],
}
#: seconds each quick benchmark may take
BUDGET = 240.0


def install_peers() -> None:
    """Install the Python baseline and Siril if they are missing (best effort, never fatal)."""
    missing = [m for m in ("ccdproc", "astroalign") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"installing {' '.join(missing)} for the baseline ...", file=sys.stderr)
        subprocess.run([PY, "-m", "pip", "install", "-q", *missing], check=False)
    if shutil.which("siril-cli") is None and shutil.which("apt-get") and os.geteuid() == 0:
        print("installing siril (apt-get) ...", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "siril"], check=False, env=env)


def quick() -> list[tuple[str, str, float]]:
    """Run the quick benchmarks; (script, status, seconds) per script."""
    rows = []
    for script in sorted(HERE.glob("bench_*.py")):
        if script.name == "bench_suite.py":
            continue
        print(f"\n## {script.name}\n", flush=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([PY, str(script), *QUICK_ARGS.get(script.name, [])],
                                  timeout=BUDGET, check=False)
            status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        except subprocess.TimeoutExpired:
            status = f"stopped after {BUDGET:.0f} s"
        rows.append((script.name, status, time.perf_counter() - t0))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Quick benchmarks, then the suite; exit 1 when the suite itself failed."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--large", action="store_true", help="also the 40 × 4096×3072 dataset")
    ap.add_argument("--skip-quick", action="store_true", help="only the side-by-side suite")
    ap.add_argument("--no-install", action="store_true", help="do not install missing peers")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if not args.no_install:
        install_peers()
    rows = [] if args.skip_quick else quick()
    print("\n## side-by-side suite\n", flush=True)
    datasets = ["small", "large"] if args.large else ["small"]
    suite = subprocess.run([PY, str(HERE / "bench_suite.py"), "--dataset", *datasets],
                           check=False)
    if rows:
        print("\n| quick benchmark | status | s |\n|---|---|---:|")
        for name, status, secs in rows:
            print(f"| {name} | {status} | {secs:.0f} |")
    print(f"\nmake bench: {time.perf_counter() - t0:.0f} s; tables in {HERE / 'results'}")
    return 0 if suite.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
