"""skystack through its command line, one command per stage, then ``skystack run`` end to end.

The stage commands use the settings the peers use (winsorized σ 3/3, additive + scaling
normalization, no weights) so the rows compare like with like; ``run`` uses skystack's defaults
(auto rejection, measured weights, local normalization) and is reported on its own row.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from peers import Dataset, Step

NAME = "skystack"


def version() -> str:
    """skystack's version string."""
    try:
        import skystack
    except ImportError:
        return ""
    return f"skystack {skystack.__version__}"


def available() -> str | None:
    """None when skystack imports."""
    try:
        import skystack  # noqa: F401
    except ImportError as err:
        return f"skystack not importable ({err}); run `make install`"
    return None


def _cmd(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "skystack", *map(str, args)]


def _shell(argv: list[str]) -> list[str]:
    """``sh -c 'exec …'`` so that globs expand (exec: the timed process is skystack itself)."""
    return ["sh", "-c", "exec " + " ".join(shlex.quote(a) if "*" not in a else a for a in argv)]


def plan(ds: Dataset, work: Path, threads: int, *, end_to_end: bool = True) -> list[Step]:
    """Stage commands writing under ``work``; the last step is ``skystack run``."""
    m = work / "masters"
    m.mkdir(parents=True, exist_ok=True)
    cal, reg = work / "calibrated", work / "registered"
    steps = [
        Step("bias", _cmd("master", "bias", *ds.bias, "--rejection", "winsorized",
                          "-o", m / "bias.fits"), ds.bias, work, m / "bias.fits"),
        Step("dark", _cmd("master", "dark", *ds.darks, "--rejection", "winsorized",
                          "-o", m / "dark.fits"), ds.darks, work, m / "dark.fits"),
        Step("dark_flat", _cmd("master", "dark_flat", *ds.dark_flats, "--rejection", "winsorized",
                               "-o", m / "dark_flat.fits"), ds.dark_flats, work,
             m / "dark_flat.fits"),
        Step("flat", _cmd("master", "flat", *ds.flats, "--dark-flat", m / "dark_flat.fits",
                          "--rejection", "winsorized", "-o", m / "flat.fits"),
             ds.flats, work, m / "flat.fits"),
        Step("calibrate", _cmd("calibrate", *ds.lights, "--dark", m / "dark.fits",
                               "--flat", m / "flat.fits", "-o", cal), ds.lights, work, cal),
        # the names skystack gives calibrated/registered files are its own business: glob them
        Step("register", _shell(_cmd("register") + ["calibrated/*.fits", "-o", "registered"]),
             (), work, reg / "transforms.json"),
        Step("stack", _shell(_cmd("integrate") + [
            "registered/*.fits", "--rejection", "winsorized", "--low", "3", "--high", "3",
            "--normalize", "additive-scaling", "--weights", "none", "-o", "result.fits"]),
            (), work, work / "result.fits"),
    ]
    if end_to_end:
        steps.append(Step("run", _cmd("run", ds.root, "-o", work / "run", "--force",
                                      "--jobs", str(threads)),
                          tuple(ds.lights + ds.bias + ds.darks + ds.flats + ds.dark_flats),
                          work, work / "run" / "run.json"))
    return steps


def stage_inputs(stage: str, work: Path) -> list[Path]:
    """Intermediate files a stage reads (warmed before it like the raw inputs)."""
    if stage == "register":
        return sorted((work / "calibrated").glob("*.fits"))
    if stage == "stack":
        return sorted((work / "registered").glob("*.fits"))
    return []


def master(work: Path) -> Path:
    """The stage-by-stage master."""
    return work / "result.fits"


def run_master(work: Path) -> Path | None:
    """The integrated master written by ``skystack run`` (one group), if any."""
    found = sorted((work / "run" / "lights").glob("*.fits")) + \
        sorted((work / "run" / "lights").glob("*.xisf"))
    return found[0] if found else None


def calibrated(work: Path) -> list[Path]:
    """Calibrated lights in input order."""
    return sorted((work / "calibrated").glob("*.fits"))


def registered(work: Path) -> list[Path]:
    """Registered lights."""
    return sorted((work / "registered").glob("*.fits"))


def run_calibrated(work: Path) -> list[Path]:
    """Calibrated lights of ``skystack run`` (its work folder)."""
    return sorted((work / "run" / "work" / "calibrated").glob("*.fits"))


def run_registered(work: Path) -> list[Path]:
    """Registered lights of ``skystack run`` (its work folder)."""
    return sorted((work / "run" / "work" / "registered").glob("*.fits"))
