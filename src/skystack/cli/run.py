"""``skystack run``: folders of raw frames → integrated masters per target × filter × panel."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", type=Path, help="folders or files of raw frames")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--config", type=Path, help="skystack.toml with [run] and [link] tables")
    p.add_argument("--resume", action="store_true", help="reuse finished work in OUT")
    p.add_argument("--force", action="store_true", help="delete OUT and start again")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default 2)")
    p.add_argument("--executor", default=None,
                   help="local (default), serial, dask-local or dask://host:8786")
    p.add_argument("--memory", default=None, help="memory budget of integration, e.g. 4G")
    p.add_argument("--reference", default=None, help="registration reference frame")
    p.add_argument("--ln-reference", default=None, help="LN reference (a stack of your best lights)")
    p.add_argument("--no-ln", action="store_true", help="global normalization only")
    p.add_argument("--rejection", default=None, help="pixel rejection (default auto)")
    p.add_argument("--pedestal", default=None, help="output pedestal: auto (default), none or DN")
    p.add_argument("--format", dest="output_format", choices=["fits", "xisf"], default=None,
                   help="format of the integrated masters")
    p.add_argument("--ignore-doctor", action="store_true", help="go on despite doctor errors")
    p.add_argument("--json-progress", action="store_true",
                   help="progress as JSON lines on stdout (for other programs)")


def run(args: argparse.Namespace) -> int:
    from skystack.pipeline import RunConfig, run_pipeline

    over: dict[str, object] = {
        "jobs": args.jobs, "executor": args.executor, "memory": args.memory,
        "reference": args.reference, "ln_reference": args.ln_reference,
        "rejection": args.rejection, "output_format": args.output_format,
    }
    if args.no_ln:
        over["local_normalization"] = False
    if args.ignore_doctor:
        over["ignore_doctor"] = True
    if args.pedestal is not None:
        ped = args.pedestal.lower()
        over["pedestal"] = None if ped == "none" else "auto" if ped == "auto" else float(ped)
    if args.config:
        cfg = RunConfig.from_toml(args.config, **over)
    else:
        cfg = RunConfig(**{k: v for k, v in over.items() if v is not None})  # type: ignore[arg-type]

    start = time.time()
    if args.json_progress:
        def progress(stage: str, done: int, total: int) -> None:
            print(json.dumps({"stage": stage, "done": done, "total": total,
                              "elapsed": round(time.time() - start, 2)}), flush=True)

        result = run_pipeline(args.paths, args.output, config=cfg, resume=args.resume,
                              force=args.force, progress=progress)
    else:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
            TimeElapsedColumn, TimeRemainingColumn

        console = Console(stderr=True)
        bars = Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                        console=console, transient=False)
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=max(total, 1))
            bars.update(tasks[stage], completed=done, total=max(total, 1))

        with bars:
            result = run_pipeline(args.paths, args.output, config=cfg, resume=args.resume,
                                  force=args.force, progress=progress,
                                  log=lambda m: bars.console.print(m, markup=False, highlight=False))
    print(f"report: {result.report}", file=sys.stderr)
    return 0
