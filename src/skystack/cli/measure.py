"""``skystack measure FILES...`` — stars, FWHM, noise and weights per frame, and which to keep.

A table goes to stderr; with ``--json`` one object per file goes to stdout (version 1):
``{"version": 1, "method": ..., "min_weight": ..., "frames": [{"path", every measurement,
"weight", "accepted", "reason", "flags", "transparency"}]}``. A file that cannot be read or
measured gets ``"accepted": false`` and the reason, and the others carry on.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

__all__ = ["add_arguments", "run", "pixel_scale_from_header"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``skystack measure``."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="frames to measure (one group)")
    parser.add_argument("--json", action="store_true", help="write the results as JSON to stdout")
    parser.add_argument("--min-weight", type=float, default=0.05, metavar="W",
                        help="reject frames whose relative weight is below W (default 0.05)")
    parser.add_argument("--select", metavar="EXPR", default=None,
                        help="keep frames for which EXPR is true, e.g. 'fwhm < 4.5 and ecc < 0.6'")
    parser.add_argument("--method", default="psf_signal",
                        choices=["psf_signal", "psf_snr", "noise", "snr", "wbpp"],
                        help="weighting method (default: psf_signal, as WBPP)")
    parser.add_argument("--no-auto-flags", action="store_true",
                        help="do not flag clouds, trails, tracking errors and too few stars")
    parser.add_argument("--pixel-scale", type=float, default=None, metavar="ARCSEC",
                        help="arcseconds per pixel (default: from XPIXSZ and FOCALLEN)")
    parser.add_argument("--fwhm-guess", type=float, default=3.0, metavar="PX",
                        help="expected FWHM in pixels for the detection filter (default 3)")
    parser.add_argument("--threshold", type=float, default=5.0, metavar="SIGMA",
                        help="detection threshold in sigmas (default 5)")


def pixel_scale_from_header(get: Any) -> float | None:
    """Arcseconds per pixel: ``SCALE``/``PIXSCALE``, or ``XPIXSZ`` (µm) and ``FOCALLEN`` (mm)."""
    for key in ("SCALE", "PIXSCALE"):
        v = get(key)
        if isinstance(v, (int, float)) and v > 0:
            return float(v)
    pix, focal = get("XPIXSZ"), get("FOCALLEN")
    if isinstance(pix, (int, float)) and isinstance(focal, (int, float)) and pix > 0 and focal > 0:
        return 206.264806 * float(pix) / float(focal)
    return None


def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, spec)


def run(args: argparse.Namespace) -> int:
    """Measure every file, weight and select them, print the table (and JSON)."""
    from skystack.errors import SkystackError
    from skystack.io import read_image
    from skystack.stars import DetectionConfig
    from skystack.weights import MeasureConfig, evaluate_expression, measure_frame, select_frames

    if args.select:
        evaluate_expression(args.select, {})  # a bad expression fails before any work
    cfg = MeasureConfig(detection=DetectionConfig(fwhm_guess=args.fwhm_guess,
                                                  threshold=args.threshold))
    measured = []
    failed: dict[str, str] = {}
    order: list[str] = []
    for path in args.files:
        order.append(path)
        try:
            img = read_image(path)
            scale = args.pixel_scale or pixel_scale_from_header(img.get)
            if img.data.ndim == 2 and img.bayer_pattern:
                print(f"{path}: CFA (Bayer {img.bayer_pattern}) data measured as mono — "
                      "debayer first for reliable FWHM and noise", file=sys.stderr)
            measured.append(measure_frame(img.data, config=cfg, pixel_scale=scale, path=path))
        except (SkystackError, OSError, ValueError) as err:
            failed[path] = str(err)
            print(f"skystack measure: {path}: skipped — {err}", file=sys.stderr)
    selections = select_frames(measured, min_weight=args.min_weight, expression=args.select,
                               auto_flags=not args.no_auto_flags, method=args.method)
    by_path = {m.path: (m, s) for m, s in zip(measured, selections, strict=True)}

    rows = []
    for path in order:
        if path in failed:
            rows.append({"path": path, "accepted": False, "weight": 0.0,
                         "reason": f"could not be measured: {failed[path]}", "flags": ["failed"]})
            continue
        m, s = by_path[path]
        row = m.to_dict()
        row.update(weight=s.weight, accepted=s.accepted, reason=s.reason, flags=s.flags,
                   transparency=None if not math.isfinite(s.transparency) else s.transparency)
        rows.append(row)

    _table(rows, sys.stderr)
    if args.json:
        doc = {"version": 1, "method": args.method, "min_weight": args.min_weight,
               "expression": args.select, "frames": rows}
        json.dump(doc, sys.stdout, indent=2, allow_nan=False, default=_json_default)
        sys.stdout.write("\n")
    return 0 if measured else 2


def _json_default(v: Any) -> Any:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f if math.isfinite(f) else None


def _table(rows: list[dict[str, Any]], out: Any) -> None:
    head = f"{'file':<32} {'stars':>6} {'FWHM':>6} {'ecc':>5} {'noise':>9} {'SNR':>7} " \
           f"{'PSFSW':>9} {'weight':>6}  status"
    print(head, file=out)
    for r in rows:
        name = r["path"] if len(r["path"]) <= 32 else "…" + r["path"][-31:]
        status = "ok" if r["accepted"] else f"REJECTED: {r['reason']}"
        print(f"{name:<32} {_fmt(r.get('stars'), '6d'):>6} {_fmt(r.get('fwhm'), '6.2f'):>6} "
              f"{_fmt(r.get('eccentricity'), '5.2f'):>5} {_fmt(r.get('noise'), '9.2e'):>9} "
              f"{_fmt(r.get('snr'), '7.2f'):>7} {_fmt(r.get('psf_signal_weight'), '9.3g'):>9} "
              f"{_fmt(r.get('weight'), '6.3f'):>6}  {status}", file=out)
    n_ok = sum(1 for r in rows if r["accepted"])
    print(f"{n_ok} of {len(rows)} frames accepted", file=out)
