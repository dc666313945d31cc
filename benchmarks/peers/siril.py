"""Siril 1.0.x through ``siril-cli -s script.ssf``, one script (one process) per stage.

1.0.x syntax: calibration is ``preprocess`` (renamed ``calibrate`` in 1.2); rejection ``w`` =
winsorized sigma clipping; ``convert`` makes a sequence of the files in the current folder
(symbolic links for FITS input).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from peers import Dataset, Step

NAME = "Siril"
EXE = "siril-cli"


def version() -> str:
    """``siril 1.0.6`` or ''."""
    exe = shutil.which(EXE)
    if not exe:
        return ""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def available() -> str | None:
    """None when siril-cli runs, else why not (with the fix)."""
    if not shutil.which(EXE):
        return "siril-cli not found (apt-get install -y siril)"
    return None


def _script(work: Path, name: str, lines: list[str], threads: int) -> Path:
    path = work / "scripts" / f"{name}.ssf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(["requires 1.0.0", f"setcpu {threads}", "setext fits", *lines]) + "\n")
    return path


def plan(ds: Dataset, work: Path, threads: int) -> list[Step]:
    """Per-stage scripts: masters, preprocess lights, register, stack (winsorized, addscale)."""
    proc, masters = work / "process", work / "masters"
    proc.mkdir(parents=True, exist_ok=True)
    masters.mkdir(parents=True, exist_ok=True)
    rej = "rej w 3 3"

    def convert(kind: str, seq: str) -> list[str]:
        return [f"cd {ds.folder(kind)}", f"convert {seq} -out={proc}", f"cd {proc}"]

    scripts = {
        "bias": convert("bias", "bias")
        + [f"stack bias {rej} -nonorm -out={masters}/bias_stacked"],
        "dark": convert("dark", "dark")
        + [f"stack dark {rej} -nonorm -out={masters}/dark_stacked"],
        "dark_flat": convert("dark_flat", "darkflat")
        + [f"stack darkflat {rej} -nonorm -out={masters}/darkflat_stacked"],
        "flat": convert("flat", "flat")
        + [f"preprocess flat -dark={masters}/darkflat_stacked",
           f"stack pp_flat {rej} -norm=mul -out={masters}/pp_flat_stacked"],
        "calibrate": convert("light", "light")
        + [f"preprocess light -dark={masters}/dark_stacked -flat={masters}/pp_flat_stacked "
           "-cc=dark"],
        "register": [f"cd {proc}", "register pp_light"],
        "stack": [f"cd {proc}", f"stack r_pp_light {rej} -norm=addscale -out={work}/result"],
    }
    inputs = {
        "bias": ds.bias, "dark": ds.darks, "dark_flat": ds.dark_flats,
        "flat": ds.flats, "calibrate": ds.lights, "register": (), "stack": (),
    }
    products = {
        "bias": masters / "bias_stacked.fits", "dark": masters / "dark_stacked.fits",
        "dark_flat": masters / "darkflat_stacked.fits", "flat": masters / "pp_flat_stacked.fits",
        # the .seq files are written lazily: check the last frame instead
        "calibrate": proc / f"pp_light_{len(ds.lights):05d}.fits",
        "register": proc / f"r_pp_light_{len(ds.lights):05d}.fits",
        "stack": work / "result.fits",
    }
    steps = []
    for stage, lines in scripts.items():
        path = _script(work, stage, lines, threads)
        steps.append(Step(stage, [EXE, "-s", str(path)], tuple(inputs[stage]), work,
                          products[stage]))
    return steps


def stage_inputs(stage: str, work: Path) -> list[Path]:
    """Intermediate files a stage reads (known only once earlier stages ran)."""
    proc = work / "process"
    if stage == "register":
        return sorted(proc.glob("pp_light_*.fits"))
    if stage == "stack":
        return sorted(proc.glob("r_pp_light_*.fits"))
    return []


def master(work: Path) -> Path:
    """The final integrated master."""
    return work / "result.fits"


def calibrated(work: Path) -> list[Path]:
    """Calibrated (not registered) lights, in input order."""
    return sorted((work / "process").glob("pp_light_*.fits"))


def registered(work: Path) -> list[Path]:
    """Registered lights."""
    return sorted((work / "process").glob("r_pp_light_*.fits"))
