"""Thin runners that turn one benchmark dataset into per-stage commands for each tool.

Every runner module exposes ``NAME``, ``available() -> str | None`` (None when usable, else the
reason it is skipped) and ``plan(ds, work, threads) -> list[Step]``; the suite times each step in
its own child process (see ``benchmarks/bench_suite.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Dataset:
    """The frames of one simulated benchmark set (absolute paths, sorted)."""

    name: str
    root: Path
    lights: tuple[Path, ...]
    bias: tuple[Path, ...]
    darks: tuple[Path, ...]
    flats: tuple[Path, ...]
    dark_flats: tuple[Path, ...]

    def folder(self, kind: str) -> Path:
        """The folder holding all frames of one kind (the simulator writes one per type)."""
        files = {"light": self.lights, "bias": self.bias, "dark": self.darks,
                 "flat": self.flats, "dark_flat": self.dark_flats}[kind]
        parents = {p.parent for p in files}
        if len(parents) != 1:
            msg = f"{kind} frames of {self.root} are spread over {len(parents)} folders"
            raise ValueError(msg)
        return parents.pop()


@dataclass(frozen=True)
class Step:
    """One timed stage: a command run in its own process.

    Attributes
    ----------
    stage : str
        Stage key (``bias``, ``dark``, ``dark_flat``, ``flat``, ``calibrate``, ``register``,
        ``stack``, ``run``).
    argv : list of str
        The command.
    inputs : tuple of Path
        Files read by the step; the suite reads them once beforehand (same warm page cache for
        every tool).
    cwd : Path or None
        Working directory.
    product : Path or None
        The main file the step writes (checked to exist afterwards).
    """

    stage: str
    argv: list[str]
    inputs: tuple[Path, ...] = ()
    cwd: Path | None = None
    product: Path | None = None
    env: dict[str, str] = field(default_factory=dict)


#: stage key → row label in the tables, in pipeline order
STAGES: dict[str, str] = {
    "bias": "master bias",
    "dark": "master dark",
    "dark_flat": "master dark-flat",
    "flat": "master flat (calibrate + stack flats)",
    "calibrate": "calibrate lights",
    "register": "register",
    "stack": "stack (winsorized σ, additive+scaling)",
    "run": "`skystack run` end to end (+ measure, weights, LN)",
}
