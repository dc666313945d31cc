"""``skystack simulate OUT``: write a synthetic observing run with its ground truth."""

from __future__ import annotations

import argparse
import json
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``skystack simulate``."""
    parser.add_argument("out", metavar="OUT", help="output folder (frames + truth/)")
    parser.add_argument("--preset", default="night",
                        help="tiny, night, osc, mosaic, messy or large (default: night)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--frames", type=int, help="number of lights (all groups together)")
    parser.add_argument("--width", type=int, help="frame width in pixels")
    parser.add_argument("--height", type=int, help="frame height in pixels")
    parser.add_argument("--dialect", help="capture program: nina, sgp, maxim, ekos, asiair")
    parser.add_argument("--workers", type=int, help="processes rendering frames")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def run(args: argparse.Namespace) -> int:
    """Run the simulation and report what was written."""
    from skystack.simulate import simulate

    t0 = time.perf_counter()
    sim = simulate(args.out, preset=args.preset, seed=args.seed, frames=args.frames,
                   width=args.width, height=args.height, dialect=args.dialect,
                   workers=args.workers)
    dt = time.perf_counter() - t0
    counts = {"lights": len(sim.lights), "darks": len(sim.darks), "flats": len(sim.flats),
              "bias": len(sim.bias), "dark_flats": len(sim.dark_flats)}
    print(f"skystack simulate: preset {args.preset!r} seed {args.seed}: "
          + ", ".join(f"{v} {k}" for k, v in counts.items())
          + f" in {dt:.1f} s → {sim.out_dir} (truth: {sim.out_dir / 'truth' / 'truth.json'})",
          file=sys.stderr)
    if args.json:
        summary = {"out": str(sim.out_dir), "preset": args.preset, "seed": args.seed,
                   "truth": str(sim.out_dir / "truth" / "truth.json"), "counts": counts,
                   "planted_problems": sim.truth.planted_problems, "seconds": round(dt, 2)}
        print(json.dumps(summary, indent=1))
    return 0
