"""``skystack normalize``: global or local normalization of registered frames to a reference."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", type=Path, help="registered frames")
    p.add_argument("--reference", type=Path,
                   help="LN reference, e.g. a stack of your best lights (default: built from the "
                        "best frames and written to OUT/ln_reference.fits)")
    p.add_argument("--local", action="store_true", help="local normalization (default: global)")
    p.add_argument("--scale", type=int, default=None,
                   help="LN background scale in px (default min(W,H)/4)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--json", action="store_true", help="per-frame functions as JSON on stdout")


def _luminance(data: Any) -> Any:
    return data if data.ndim == 2 else data.mean(axis=0)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from skystack.calibrate import mrs_noise, output_stem
    from skystack.errors import ConfigError, ImageReadError
    from skystack.io import Image, read_header, read_image, write_image
    from skystack.metadata import frame_info
    from skystack.normalize import (
        LNConfig,
        LNError,
        build_reference_from_files,
        check_coverage,
        check_reference_type,
        compute_local_normalization,
        global_normalization,
        validate_reference,
    )

    args.output.mkdir(parents=True, exist_ok=True)
    report: list[dict[str, Any]] = []
    paths: list[Path] = []
    weights: list[float] = []
    for p in args.files:  # read each frame once up front: bad files are skipped with one line
        try:
            lum = _luminance(read_image(p).data)
        except ImageReadError as err:
            _say(f"skipped {err}")
            report.append({"path": str(p), "error": str(err)})
            continue
        paths.append(p)
        # inverse noise variance; the `run` pipeline supplies better weights from `measure`
        weights.append(1.0 / max(mrs_noise(lum), 1e-9) ** 2)
    if not paths:
        msg = "no readable frames to normalize"
        raise ConfigError(msg)

    if args.reference is not None:
        # refuse a dark, bias or flat as reference: they have no sky to normalize to
        check_reference_type(frame_info(read_header(args.reference)).type,
                             path=str(args.reference))
        given = read_image(args.reference).data
        planes = given if given.ndim == 3 else given[None]
        fixed = []
        for plane in planes:
            data, repaired, notes = validate_reference(plane, path=str(args.reference))
            fixed.append(data)
            for note in notes:
                _say(f"{args.reference}: {note}")
        reference = np.stack(fixed) if given.ndim == 3 else fixed[0]
    else:
        ref = build_reference_from_files(paths, weights)
        for note in ref.notes:
            _say(f"reference: {note}")
        reference = ref.data
        target = args.output / "ln_reference.fits"
        write_image(target, Image.from_array(reference))
        _say(f"reference: the {len(ref.frames)} best frames, locally normalized to the best "
             f"one and integrated with rejection → {target}")

    cfg = LNConfig(scale=args.scale)
    for p in paths:
        entry: dict[str, Any] = {"path": str(p)}
        try:
            img = read_image(p)
            planes = img.data if img.data.ndim == 3 else img.data[None]
            refs = reference if reference.ndim == 3 else reference[None]
            if refs.shape != planes.shape:
                msg = (f"{p}: shape {img.data.shape} differs from the reference's "
                       f"{reference.shape} — register the frames onto the reference first")
                raise LNError(msg)
            out = np.empty_like(planes)
            channels_json = []
            for c in range(planes.shape[0]):
                check_coverage(planes[c], refs[c], path=str(p))
                if args.local:
                    ln = compute_local_normalization(planes[c], refs[c], config=cfg)
                    out[c] = ln.apply(planes[c])
                    channels_json.append(ln.to_json())
                else:
                    g = global_normalization(planes[c], refs[c])
                    out[c] = g.apply(planes[c])
                    channels_json.append({"location": g.location, "factor": g.factor,
                                          "ref_location": g.ref_location})
        except (ImageReadError, LNError) as err:
            msg = str(err) if str(p) in str(err) else f"{p}: {err}"
            _say(f"skipped {msg}")
            report.append({"path": str(p), "error": msg})
            continue
        img.data = np.clip(out if img.data.ndim == 3 else out[0], 0, 1).astype(np.float32)
        img.sample_format = "float32"
        img.set("NORMALIZ", "local" if args.local else "global", "skystack normalize")
        target = args.output / (output_stem(p) + "_n.fits")
        write_image(target, img)
        entry.update(channels=channels_json, output=str(target))
        report.append(entry)
        _say(f"{p.name} → {target.name}")
    if args.json:
        json.dump({"version": 1, "local": bool(args.local), "frames": report}, sys.stdout,
                  indent=2)
        print()
    ok = sum(1 for r in report if "output" in r)
    return 0 if ok else 1
