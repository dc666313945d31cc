"""``skystack integrate FILES... -o OUT``: stack frames with pixel rejection."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from skystack.errors import ConfigError

COMBINES = ("average", "median", "min", "max", "sum")
REJECTIONS = ("none", "minmax", "percentile", "sigma", "winsorized", "averaged-sigma",
              "linear-fit", "esd", "auto")
NORMALIZATIONS = ("none", "additive", "multiplicative", "additive-scaling",
                  "multiplicative-scaling")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``skystack integrate``."""
    parser.add_argument("files", nargs="+", metavar="FILES", help="frames to integrate")
    parser.add_argument("-o", "--output", required=True, help="output master (.fits or .xisf)")
    parser.add_argument("--combine", choices=COMBINES, default="average")
    parser.add_argument("--rejection", choices=REJECTIONS, default="auto",
                        help="pixel rejection (auto: by frame count, as WBPP)")
    parser.add_argument("--low", type=float, default=None, help="low rejection threshold")
    parser.add_argument("--high", type=float, default=None, help="high rejection threshold")
    parser.add_argument("--range-high", type=float, default=None,
                        help="reject samples >= this value (e.g. 0.98 for saturation)")
    parser.add_argument("--large-scale", action="store_true",
                        help="also reject clustered outliers (trails) with growth")
    parser.add_argument("--normalize", choices=NORMALIZATIONS, default="additive-scaling",
                        help="output normalization")
    parser.add_argument("--rejection-normalize", choices=("none", "scale", "equalize"),
                        default="scale")
    parser.add_argument("--weights", default="noise",
                        help="none, noise, or a file with one weight per line (in FILES order)")
    parser.add_argument("--memory", default=None, help="memory budget, e.g. 4G (default RAM/4)")
    parser.add_argument("--maps", action="store_true",
                        help="write rejection and coverage maps (extra HDUs) with the master")
    parser.add_argument("--no-pedestal", action="store_true",
                        help="do not subtract PEDESTAL keywords")
    parser.add_argument("--json", action="store_true", help="per-frame statistics as JSON")


def _weights(arg: str, n: int) -> tuple[str, list[float] | None]:
    if arg in ("none", "noise"):
        return arg, None
    path = Path(arg)
    if not path.is_file():
        msg = f"--weights {arg}: not none, noise, or an existing file of weights"
        raise ConfigError(msg)
    values = [float(tok.split(",")[-1]) for tok in path.read_text().split("\n") if tok.strip()]
    if len(values) != n:
        msg = f"{path}: {len(values)} weights for {n} frames — give one weight per line"
        raise ConfigError(msg)
    return "none", values


def _usable(files: list[str]) -> list[str]:
    """Frames whose header reads; one line per bad file, then carry on."""
    from skystack.errors import ImageReadError
    from skystack.io import read_header

    good = []
    for f in files:
        try:
            read_header(f)
            good.append(f)
        except ImageReadError as err:
            print(f"skipping {err} — fix or remove the file", file=sys.stderr)
    return good


def run(args: argparse.Namespace) -> int:
    """Integrate, write the master, print the per-frame table."""
    from skystack.integrate import IntegrationConfig, integrate

    files = _usable(list(args.files))
    if not files:
        raise ConfigError("no readable frames to integrate")
    mode, explicit = _weights(args.weights, len(files))
    cfg = IntegrationConfig(combine=args.combine, rejection=args.rejection, low=args.low,
                            high=args.high, range_high=args.range_high,
                            large_scale=args.large_scale, normalization=args.normalize,
                            rejection_normalization=args.rejection_normalize,
                            weights=mode, subtract_pedestal=not args.no_pedestal)
    result = integrate(files, config=cfg, weights=explicit, memory=args.memory)
    out = result.write(args.output, maps=args.maps)
    c = result.config
    print(f"integrated {len(files)} frames → {out}  ({c.combine}, {c.rejection} "
          f"{c.low:g}/{c.high:g}, {result.bands} bands of {result.band_rows} rows)",
          file=sys.stderr)
    print(f"{'frame':40s} {'location':>9s} {'scale':>9s} {'noise':>9s} {'weight':>7s} "
          f"{'rej low%':>8s} {'rej high%':>9s}", file=sys.stderr)
    for s in result.stats:
        name = Path(s.name).name[-40:]
        print(f"{name:40s} {s.location[0]:9.5f} {s.scale[0]:9.5f} {s.noise[0]:9.6f} "
              f"{s.weight[0]:7.3f} {100 * s.rejected_low:8.3f} {100 * s.rejected_high:9.3f}",
              file=sys.stderr)
    if args.json:
        json.dump({"output": str(out), "rejection": c.rejection, "low": c.low, "high": c.high,
                   "frames": [s.as_dict() for s in result.stats]}, sys.stdout, indent=1)
        print()
    return 0
