"""Side-by-side benchmark: skystack vs Siril vs ccdproc + astroalign on identical simulated data.

For each dataset (``small``: 20 lights of 2048×1536 + 15 each bias/dark/flat/dark-flat;
``large``: 40 lights of 4096×3072 + 15 each) every tool runs the same stages — master bias, dark,
dark-flat, flat; calibrate lights; register; stack (winsorized σ 3/3, additive + scaling) — each
stage a separate child process, timed for wall time and peak RSS, with 2 threads and the stage's
input files read once beforehand (same warm page cache for everyone). skystack then also runs
``skystack run`` end to end. The final masters are measured against the truth
(``benchmarks/quality.py``) and the tables go to ``benchmarks/results/<date>-<dataset>.md/.json``.

Usage::

    python benchmarks/bench_suite.py [--dataset small|large ...] [--tools skystack siril ccdproc]
                                     [--no-run] [--regenerate] [--timeout 600]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peers import STAGES, Dataset, Step  # noqa: E402

DATA = HERE / "data"
OUT = HERE / "out"
RESULTS = HERE / "results"

#: simulator settings of each dataset (``simulate(out, preset="night", **SPEC)``)
DATASETS: dict[str, dict[str, Any]] = {
    "small": dict(width=2048, height=1536, frames=20, filters=(("L", 120.0, 1.0),), nights=1,
                  bias=15, darks=15, flats=15, dark_flats=15, workers=2),
    "large": dict(width=4096, height=3072, frames=40, filters=(("L", 120.0, 1.0),), nights=1,
                  bias=15, darks=15, flats=15, dark_flats=15, workers=2, star_density=1500.0),
}
SEED = 13
#: share of the machine used by other processes above which a timing is flagged
BUSY = 0.10
TOOLS = ("skystack", "siril", "ccdproc")


# --- data ------------------------------------------------------------------------------------

def dataset(name: str, *, regenerate: bool = False) -> Dataset:
    """The simulated dataset ``name`` under ``benchmarks/data/`` (generated once)."""
    from skystack.simulate import load_truth, simulate

    root = DATA / name
    spec = DATASETS[name]
    truth_file = root / "truth" / "truth.json"
    fresh = regenerate or not truth_file.is_file()
    if not fresh:
        saved = json.loads(truth_file.read_text())
        opts = saved.get("options", {})
        fresh = saved.get("seed") != SEED or any(
            opts.get(k) != json.loads(json.dumps(v)) for k, v in spec.items() if k != "workers")
    if fresh:
        if root.exists():
            shutil.rmtree(root)
        t = time.perf_counter()
        print(f"simulating {name} into {root} ...", file=sys.stderr, flush=True)
        simulate(root, preset="night", seed=SEED, **spec)
        print(f"  done in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    truth = load_truth(root)

    def of(kind: str) -> tuple[Path, ...]:
        return tuple(sorted(root / f.path for f in truth.of_type(kind) if f.path))

    return Dataset(name, root, of("light"), of("bias"), of("dark"), of("flat"), of("dark_flat"))


# --- timing ----------------------------------------------------------------------------------

def warm(files: list[Path] | tuple[Path, ...]) -> None:
    """Read every file once (the page cache then holds them, for every tool alike)."""
    buf = bytearray(1 << 24)
    for p in files:
        with open(p, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


def _tree_rss(pid: int) -> int:
    """Bytes resident in a process and all its descendants (0 when gone)."""
    try:
        import psutil
    except ImportError:
        return 0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (from /proc/stat)."""
    try:
        with open("/proc/stat") as fh:
            f = [int(v) for v in fh.readline().split()[1:]]
    except OSError:
        return math.nan
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_idle(*, share: float = 0.25, patience: float = 20.0) -> float:
    """Wait (at most ``patience`` s) until other processes use < ``share`` of the machine.

    Returns the share measured over the last second. The machine may be shared (CI, other
    jobs); starting each stage on a quiet machine keeps the comparison fair between tools.
    """
    deadline = time.monotonic() + patience
    ncpu = os.cpu_count() or 1
    while True:
        b0 = _busy_seconds()
        time.sleep(1.0)
        busy = (_busy_seconds() - b0) / ncpu
        if not busy >= share or time.monotonic() > deadline:  # NaN (no /proc): do not wait
            return busy


def timed(step: Step, *, env: dict[str, str], log: Path, timeout: float) -> dict[str, Any]:
    """Run one step in a child process: wall seconds, peak RSS (MB), exit status.

    Peak RSS is the larger of the kernel's figure for the biggest process of the child's tree
    (``wait4``) and the sampled sum over the tree (for commands that start worker processes).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        busy0 = _busy_seconds()
        t0 = time.perf_counter()
        proc = subprocess.Popen(step.argv, cwd=step.cwd, env={**env, **step.env},
                                stdout=out, stderr=subprocess.STDOUT)
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                peak[0] = max(peak[0], _tree_rss(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        timer.cancel()
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    rss_mb = max(usage.ru_maxrss / 1024, peak[0] / 2**20)
    # CPU that other processes used meanwhile, as a share of the machine: timings taken with a
    # busy neighbour are flagged in the tables
    own = usage.ru_utime + usage.ru_stime
    foreign = (_busy_seconds() - busy0 - own) / (wall * (os.cpu_count() or 1))
    ok = proc.returncode == 0 and (step.product is None or step.product.exists())
    why = "" if ok else (f"timed out after {timeout:.0f} s" if wall >= timeout else
                         f"exit {proc.returncode}" + ("" if step.product is None or
                                                      step.product.exists()
                                                      else f", no {step.product.name}"))
    return {"wall_s": round(wall, 2), "rss_mb": round(rss_mb, 1), "ok": ok, "error": why,
            "cpu_s": round(own, 2), "foreign_cpu": round(max(foreign, 0.0), 3),
            "log": str(log.relative_to(HERE)) if log.is_relative_to(HERE) else str(log)}


def child_env(threads: int) -> dict[str, str]:
    """The environment every tool runs in: the same thread count everywhere."""
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS"):
        env[key] = str(threads)
    env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# --- the suite -------------------------------------------------------------------------------

def _peer(key: str) -> Any:
    if key == "siril":
        from peers import siril as mod
    elif key == "ccdproc":
        from peers import ccdproc_baseline as mod
    else:
        from peers import skystack_cli as mod
    return mod


def run_tool(key: str, ds: Dataset, *, threads: int, timeout: float,
             end_to_end: bool) -> dict[str, Any]:
    """Run every stage of one tool; stop at the first failure."""
    mod = _peer(key)
    rec: dict[str, Any] = {"name": mod.NAME, "version": mod.version(), "stages": {}}
    why = mod.available()
    if why:
        rec["skipped"] = why
        print(f"{mod.NAME}: skipped — {why}", file=sys.stderr)
        return rec
    work = OUT / ds.name / key
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    steps = mod.plan(ds, work, threads, end_to_end=end_to_end) if key == "skystack" \
        else mod.plan(ds, work, threads)
    env = child_env(threads)
    for step in steps:
        warm([*step.inputs, *mod.stage_inputs(step.stage, work)])
        wait_idle()
        res = timed(step, env=env, log=work / "logs" / f"{step.stage}.log", timeout=timeout)
        rec["stages"][step.stage] = res
        print(f"{mod.NAME:22s} {step.stage:10s} {res['wall_s']:8.1f} s {res['rss_mb']:8.0f} MB"
              f"  others {res['foreign_cpu']:4.0%}  {'ok' if res['ok'] else 'FAILED: ' + res['error']}", file=sys.stderr,
              flush=True)
        if not res["ok"] and step.stage != "run":
            rec["failed"] = f"{step.stage}: {res['error']} (see {res['log']})"
            break
    rec["work"] = str(work)
    return rec


def assess(key: str, rec: dict[str, Any], ds: Dataset, stick: Any) -> None:
    """Quality of the tool's master(s), stored in ``rec``."""
    if rec.get("skipped") or rec.get("failed"):
        return
    mod = _peer(key)
    work = Path(rec["work"])
    cal = mod.calibrated(work)
    try:
        rec["quality"] = stick.evaluate(mod.master(work), calibrated=cal,
                                        registered=mod.registered(work),
                                        frames=len(ds.lights)).to_json()
    except Exception as err:  # noqa: BLE001 - one failed measurement must not lose the timings
        rec["quality"] = {"note": f"quality not measured: {type(err).__name__}: {err}"}
    if key == "skystack" and rec["stages"].get("run", {}).get("ok"):
        run_master = mod.run_master(work)
        if run_master is not None:
            try:
                rec["quality_run"] = stick.evaluate(run_master, calibrated=mod.run_calibrated(work),
                                                    registered=mod.run_registered(work),
                                                    frames=len(ds.lights)).to_json()
            except Exception as err:  # noqa: BLE001
                rec["quality_run"] = {"note": f"not measured: {type(err).__name__}: {err}"}


# --- report ----------------------------------------------------------------------------------

def _fmt(v: Any, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


QUALITY_ROWS = [
    ("noise_gain", "noise gain vs one registered light (ideal ≈ √N)", 2),
    ("position_rms_px", "star position RMS vs truth (px)", 3),
    ("position_offset_px", "mean star offset (px)", 3),
    ("fwhm_ratio", "FWHM master / sharpest light", 3),
    ("dust_residual_pct", "dust-donut residual (% of sky, worst mote)", 2),
    ("dust_floor_pct", "… same measure where there is no dust (floor)", 2),
    ("trail_residual_sigma", "satellite-trail residual (σ per pixel, signed)", 2),
    ("flatness_pct", "background flatness RMS (% of sky)", 3),
    ("photometric_ratio", "photometric ratio (flux scale / clearest light)", 3),
    ("photometric_scatter_pct", "photometric scatter vs truth (%)", 2),
    ("stars_matched", "stars matched to truth", 0),
]


def markdown(result: dict[str, Any]) -> str:
    """The result tables as markdown."""
    tools = result["tools"]
    keys = [k for k in TOOLS if k in tools]
    names = [tools[k]["name"] for k in keys]
    ds = result["dataset"]
    lines = [f"# skystack side-by-side benchmark — `{ds['name']}` ({result['date']})", "",
             f"{ds['lights']} lights of {ds['width']}×{ds['height']} (mono 16-bit FITS) + "
             f"{ds['bias']} bias, {ds['darks']} darks, {ds['flats']} flats, "
             f"{ds['dark_flats']} dark-flats, simulated by `skystack.simulate` (seed {SEED}). "
             f"Machine: {result['machine']}. Threads: {result['threads']} for every tool; each "
             "stage in its own process; its input files read once beforehand.", ""]
    for k in keys:
        t = tools[k]
        state = t.get("skipped") or t.get("failed") or ""
        lines.append(f"- **{t['name']}**: {t.get('version') or 'version unknown'}"
                     + (f" — **{state}**" if state else ""))
    lines += ["", "## Time and peak memory per stage", "",
              "| stage | " + " | ".join(f"{n} s" for n in names) + " | "
              + " | ".join(f"{n} MB" for n in names) + " | skystack / Siril time |",
              "|---|" + "---:|" * (2 * len(keys) + 1)]
    totals = {k: 0.0 for k in keys}
    for stage, label in STAGES.items():
        if not any(stage in tools[k]["stages"] for k in keys):
            continue
        cells_t, cells_m = [], []
        for k in keys:
            r = tools[k]["stages"].get(stage)
            if r is None:
                cells_t.append("–")
                cells_m.append("–")
                continue
            busy = r.get("foreign_cpu", 0.0) > BUSY
            cells_t.append(_fmt(r["wall_s"], 1) + ("" if r["ok"] else " ✗") + (" ⚠" if busy else ""))
            cells_m.append(_fmt(r["rss_mb"], 0))
            if stage != "run" and r["ok"]:
                totals[k] += r["wall_s"]
        ratio = _ratio(tools, stage)
        lines.append(f"| {label} | " + " | ".join(cells_t) + " | " + " | ".join(cells_m)
                     + f" | {ratio} |")
    tot_ratio = "–"
    if "skystack" in totals and "siril" in totals and totals["siril"] > 0 \
            and not tools["siril"].get("failed") and not tools["skystack"].get("failed"):
        tot_ratio = f"{totals['skystack'] / totals['siril']:.2f}"
    lines.append("| **total of the stages** | " + " | ".join(
        f"**{totals[k]:.1f}**" if tools[k]["stages"] else "–" for k in keys)
        + " | " + " | ".join("" for _ in keys) + f" | **{tot_ratio}** |")
    lines += ["", "Ratio < 1: skystack faster. ✗ = the stage failed (see the JSON for the log). "
              f"⚠ = other processes used more than {BUSY:.0%} of the machine during the stage "
              "(the time is pessimistic; the JSON has the share).",
              "", "## Quality of the final master against the truth", ""]
    qcols = [(k, "quality", tools[k]["name"]) for k in keys]
    if "quality_run" in tools.get("skystack", {}):
        qcols.append(("skystack", "quality_run", "`skystack run`"))
    lines += ["| measure | " + " | ".join(c[2] for c in qcols) + " |",
              "|---|" + "---:|" * len(qcols)]
    for key, label, nd in QUALITY_ROWS:
        cells = [_fmt(tools[k].get(q, {}).get(key), nd) for k, q, _ in qcols]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    refs = [f"{name}: {tools[k].get(q, {}).get('reference', '–')}" for k, q, name in qcols]
    lines += ["", "Reference light (the master's grid): " + "; ".join(refs) + ".",
              f"Ideal noise gain √N = {math.sqrt(ds['lights']):.2f} for equal frames (some "
              "lights are hazy, so a little less is expected). Definitions: "
              "`benchmarks/quality.py`.", ""]
    notes = [f"{tools[k]['name']}: {tools[k].get(q, {}).get('note')}" for k, q, _ in qcols
             if tools[k].get(q, {}).get("note")]
    if notes:
        lines += ["Notes: " + "; ".join(notes) + ".", ""]
    lines += ["## Commands", ""]
    for k in keys:
        scripts = tools[k].get("scripts", {})
        for stage, cmd in tools[k].get("commands", {}).items():
            if stage in scripts:  # Siril: show the script's commands, paths shortened
                body = [ln for ln in scripts[stage].splitlines()
                        if ln and not ln.startswith(("requires", "setcpu", "setext"))]
                cmd = "; ".join(" ".join(Path(w).name if w.startswith("/") else
                                         w.split("=")[0] + "=" + Path(w.split("=", 1)[1]).name
                                         if "=/" in w else w for w in ln.split())
                                for ln in body)
            lines.append(f"- {tools[k]['name']} / {stage}: `{cmd}`")
    return "\n".join(lines) + "\n"


def _ratio(tools: dict[str, Any], stage: str) -> str:
    a = tools.get("skystack", {}).get("stages", {}).get(stage)
    b = tools.get("siril", {}).get("stages", {}).get(stage)
    if stage == "run" and a and a["ok"]:
        tot = [r["wall_s"] for s, r in tools.get("siril", {}).get("stages", {}).items()
               if r["ok"]]
        return f"{a['wall_s'] / sum(tot):.2f} (vs all Siril stages)" if tot else "–"
    if not a or not b or not a["ok"] or not b["ok"] or b["wall_s"] <= 0:
        return "–"
    return f"{a['wall_s'] / b['wall_s']:.2f}"


def _short(argv: list[str]) -> str:
    """A command line with paths shortened to names and long file lists elided."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        out.extend(run if len(run) <= 3 else [run[0], f"… ({len(run)} files)"])
        run.clear()

    for a in argv:
        name = Path(a).name if os.sep in a and not a.startswith("-") else a
        if name.endswith((".fits", ".fit")) and not (out and out[-1].startswith("-")):
            run.append(name)
            continue
        flush()
        out.append(name)
    flush()
    return " ".join(out)


def suite(name: str, *, tools: tuple[str, ...], threads: int, timeout: float,
          end_to_end: bool, regenerate: bool) -> dict[str, Any]:
    """Run the whole comparison on one dataset and write its result files."""
    import quality

    ds = dataset(name, regenerate=regenerate)
    spec = DATASETS[name]
    result: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"{_ram_gb():.0f} GB RAM, Python {platform.python_version()}",
        "threads": threads,
        "dataset": {"name": name, "lights": len(ds.lights), "width": spec["width"],
                    "height": spec["height"], "bias": len(ds.bias), "darks": len(ds.darks),
                    "flats": len(ds.flats), "dark_flats": len(ds.dark_flats), "seed": SEED},
        "tools": {},
    }
    for key in tools:
        rec = run_tool(key, ds, threads=threads, timeout=timeout, end_to_end=end_to_end)
        mod = _peer(key)
        if not rec.get("skipped"):
            work = OUT / name / key
            steps = mod.plan(ds, work, threads, end_to_end=end_to_end) if key == "skystack" \
                else mod.plan(ds, work, threads)
            rec["commands"] = {s.stage: _short(s.argv) for s in steps}
            if key == "siril":
                rec["scripts"] = {s.stage: Path(s.argv[-1]).read_text() for s in steps}
        result["tools"][key] = rec
    print("measuring quality ...", file=sys.stderr, flush=True)
    stick = quality.Stick(ds.root)
    for key, rec in result["tools"].items():
        assess(key, rec, ds, stick)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"{result['date']}-{name}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    md = markdown(result)
    stem.with_suffix(".md").write_text(md)
    print(md)
    return result


def _ram_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return math.nan


def remeasure(name: str) -> dict[str, Any]:
    """Measure the quality again from the products of the last run (no tool is re-run)."""
    import quality

    found = sorted(RESULTS.glob(f"*-{name}.json"))
    if not found:
        msg = f"no results/*-{name}.json: run the suite first"
        raise SystemExit(msg)
    result = json.loads(found[-1].read_text())
    ds = dataset(name)
    stick = quality.Stick(ds.root)
    for key, rec in result["tools"].items():
        rec.pop("quality", None)
        rec.pop("quality_run", None)
        assess(key, rec, ds, stick)
    found[-1].write_text(json.dumps(result, indent=1) + "\n")
    md = markdown(result)
    found[-1].with_suffix(".md").write_text(md)
    print(md)
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line of the suite."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", nargs="+", default=["small"], choices=list(DATASETS))
    ap.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=600.0, help="per stage, seconds")
    ap.add_argument("--no-run", action="store_true", help="skip `skystack run` end to end")
    ap.add_argument("--regenerate", action="store_true", help="simulate the data again")
    ap.add_argument("--remeasure", action="store_true",
                    help="only measure the quality of the last run's masters again")
    args = ap.parse_args(argv)
    for name in args.dataset:
        if args.remeasure:
            remeasure(name)
            continue
        suite(name, tools=tuple(args.tools), threads=args.threads, timeout=args.timeout,
              end_to_end=not args.no_run, regenerate=args.regenerate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
