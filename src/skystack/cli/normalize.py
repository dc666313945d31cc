"""``skystack normalize``: global or local normalization of registered frames to a reference."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", type=Path, help="registered frames")
    p.add_argument("--reference", type=Path, help="LN reference (default: built from the best frames)")
    p.add_argument("--local", action="store_true", help="local normalization (default: global)")
    p.add_argument("--scale", type=int, default=None, help="LN background scale in px (default min(W,H)/4)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--json", action="store_true", help="per-frame functions as JSON on stdout")


def _luminance(data):  # noqa: ANN001, ANN202
    return data if data.ndim == 2 else data.mean(axis=0)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from skystack.calibrate import output_stem
    from skystack.errors import ImageReadError
    from skystack.io import Image, read_header, read_image, write_image
    from skystack.metadata import frame_info
    from skystack.normalize import (
        LNConfig,
        LNError,
        build_reference,
        check_coverage,
        check_reference_type,
        compute_local_normalization,
        global_normalization,
    )

    paths = list(args.files)
    args.output.mkdir(parents=True, exist_ok=True)
    if args.reference is not None:
        check_reference_type(frame_info(read_header(args.reference)).type, path=str(args.reference))
        ref_img = read_image(args.reference)
        reference = ref_img.data
    else:
        def loader(p: Path):  # noqa: ANN202
            return lambda: _luminance(read_image(p).data)

        # weights: inverse noise (the measure stage supplies better ones in `run`)
        from skystack.calibrate import mrs_noise

        weights = [1.0 / max(mrs_noise(_luminance(read_image(p).data)), 1e-9) ** 2 for p in paths]
        ref = build_reference([loader(p) for p in paths], weights)
        reference = ref.data
        for note in ref.notes:
            print(f"reference: {note}", file=sys.stderr)
        write_image(args.output / "ln_reference.fits", Image.from_array(reference))
    report = []
    cfg = LNConfig(scale=args.scale)
    for p in paths:
        try:
            img = read_image(p)
            out = np.empty_like(img.data)
            entry: dict[str, object] = {"path": str(p)}
            planes = img.data if img.data.ndim == 3 else img.data[None]
            refs = reference if reference.ndim == 3 else np.broadcast_to(reference, planes.shape)
            for c in range(planes.shape[0]):
                check_coverage(planes[c], refs[c], path=str(p))
                if args.local:
                    ln = compute_local_normalization(planes[c], refs[c], config=cfg)
                    res = ln.apply(planes[c])
                    entry.setdefault("channels", []).append(ln.to_json())  # type: ignore[union-attr]
                else:
                    g = global_normalization(planes[c], refs[c])
                    res = g.apply(planes[c])
                    entry.setdefault("channels", []).append(  # type: ignore[union-attr]
                        {"location": g.location, "factor": g.factor, "ref_location": g.ref_location})
                (out if img.data.ndim == 3 else out[None])[c] = res
        except (ImageReadError, LNError) as err:
            print(f"skipped {p}: {err}", file=sys.stderr)
            report.append({"path": str(p), "error": str(err)})
            continue
        img.data = np.clip(out, 0, 1).astype(np.float32)
        img.sample_format = "float32"
        target = args.output / (output_stem(p) + "_n.fits")
        write_image(target, img)
        entry["output"] = str(target)
        report.append(entry)
        print(f"{p.name} → {target.name}", file=sys.stderr)
    if args.json:
        json.dump({"frames": report}, sys.stdout, indent=2)
        print()
    return 0
