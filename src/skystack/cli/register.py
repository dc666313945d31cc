"""``skystack register FILES... [--reference F] [--model M] [--interpolation I] -o DIR``.

Writes the registered frames (FITS float32, same names) and ``DIR/transforms.json`` (``design.md``).
A frame that cannot be registered is reported with its reason and the rest carry on.
The JSON document goes to stdout with ``--json``; the per-frame table goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    parser.add_argument("files", nargs="+", metavar="FILES", help="frames to register")
    parser.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="folder for registered frames and transforms.json")
    parser.add_argument("--reference", metavar="F",
                        help="reference frame (default: automatic — lowest binning, sharp, "
                             "most stars)")
    parser.add_argument("--model", default="projective",
                        choices=["projective", "affine", "similarity", "shift"],
                        help="transform model (default: projective)")
    parser.add_argument("--interpolation", default="lanczos3",
                        choices=["lanczos3", "bicubic", "bilinear"],
                        help="resampling kernel (default: lanczos3)")
    parser.add_argument("--no-clamp", action="store_true",
                        help="disable deringing (clamping) of Lanczos/bicubic resampling")
    parser.add_argument("--json", action="store_true", help="print transforms.json to stdout")


def run(args: argparse.Namespace) -> int:
    """Register the files; exit status 1 when any frame failed, 0 otherwise."""
    from skystack.register import FrameRegistration, register_frames

    err = sys.stderr

    def show(fr: FrameRegistration) -> None:
        name = fr.path.rsplit("/", 1)[-1]
        if fr.H is None:
            print(f"  FAILED {name}: {fr.reason}", file=err)
        else:
            print(f"  ok     {name}: {fr.stars_matched} stars, RMS {fr.rms_px:.3f} px "
                  f"({fr.model})", file=err)

    print(f"registering {len(args.files)} frames ...", file=err)
    result = register_frames(args.files, reference=args.reference, model=args.model,
                             out_dir=args.output, interpolation=args.interpolation,
                             clamp=not args.no_clamp, on_frame=show)
    print(f"reference: {result.reference} ({result.reference_reason})", file=err)
    n_bad = len(result.failed)
    print(f"{len(result.frames) - n_bad} registered, {n_bad} failed; transforms: "
          f"{result.transforms_path}", file=err)
    if args.json:
        doc: dict[str, Any] = result.to_json()
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 1 if n_bad else 0
