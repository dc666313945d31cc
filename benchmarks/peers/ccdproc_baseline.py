"""The Python baseline: ccdproc (calibration, combination) + astroalign (registration).

Run as a script, one stage per process: ``python ccdproc_baseline.py STAGE MANIFEST.json``.
What a careful user of these libraries would write, with the peers' settings where the libraries
have them:

- masters: ``ccdproc.combine`` average with σ-clipping 3/3 around the median with MAD
  (ccdproc has no winsorized clipping; it clips once, ``maxiters=1``);
- flats: each flat minus the master dark-flat, combined with 1/median scaling;
- lights: ``subtract_dark`` (exact-exposure dark, which holds the bias) and ``flat_correct``;
- registration: ``astroalign.register`` on the first light as reference (similarity transform,
  scikit-image bicubic warp), the footprint kept as the CCDData mask;
- stack: additive + scaling normalization to the reference (median, MAD), then the same
  clipped average (masked border pixels excluded).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the sibling package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from peers import Dataset, Step  # noqa: E402

NAME = "ccdproc + astroalign"
THIS = Path(__file__).resolve()


def version() -> str:
    """Versions of the two libraries or ''."""
    try:
        import astroalign
        import ccdproc
    except ImportError:
        return ""
    return f"ccdproc {ccdproc.__version__} + astroalign {astroalign.__version__}"


def available() -> str | None:
    """None when both libraries import, else the fix."""
    try:
        import astroalign  # noqa: F401
        import ccdproc  # noqa: F401
    except ImportError as err:
        return f"{err.name} missing (pip install ccdproc astroalign)"
    return None


def plan(ds: Dataset, work: Path, threads: int) -> list[Step]:
    """One step per stage, each this file run on a manifest describing the dataset."""
    work.mkdir(parents=True, exist_ok=True)
    manifest = work / "manifest.json"
    manifest.write_text(json.dumps({
        "work": str(work),
        "lights": [str(p) for p in ds.lights], "bias": [str(p) for p in ds.bias],
        "darks": [str(p) for p in ds.darks], "flats": [str(p) for p in ds.flats],
        "dark_flats": [str(p) for p in ds.dark_flats],
    }, indent=1))
    m = work / "masters"
    inputs = {"bias": ds.bias, "dark": ds.darks, "dark_flat": ds.dark_flats, "flat": ds.flats,
              "calibrate": ds.lights, "register": (), "stack": ()}
    products = {"bias": m / "bias.fits", "dark": m / "dark.fits",
                "dark_flat": m / "dark_flat.fits", "flat": m / "flat.fits",
                "calibrate": work / "calibrated" / f"{ds.lights[-1].stem}.fits",
                "register": work / "registered" / f"{ds.lights[-1].stem}.fits",
                "stack": work / "result.fits"}
    return [Step(stage, [sys.executable, str(THIS), stage, str(manifest)], tuple(files), work,
                 products[stage]) for stage, files in inputs.items()]


def stage_inputs(stage: str, work: Path) -> list[Path]:
    """Intermediate files a stage reads."""
    if stage == "register":
        return sorted((work / "calibrated").glob("*.fits"))
    if stage == "stack":
        return sorted((work / "registered").glob("*.fits"))
    return []


def master(work: Path) -> Path:
    """The final master."""
    return work / "result.fits"


def calibrated(work: Path) -> list[Path]:
    """Calibrated lights in input order."""
    return sorted((work / "calibrated").glob("*.fits"))


def registered(work: Path) -> list[Path]:
    """Registered lights."""
    return sorted((work / "registered").glob("*.fits"))


# --- the stages (run in the child process) ----------------------------------------------------

def _combine(items: list, out: Path, *, scale=None) -> None:  # type: ignore[no-untyped-def]
    import ccdproc
    import numpy as np
    from astropy.stats import mad_std

    res = ccdproc.combine(items, method="average", scale=scale, sigma_clip=True,
                          sigma_clip_low_thresh=3, sigma_clip_high_thresh=3,
                          sigma_clip_func=np.ma.median, sigma_clip_dev_func=mad_std,
                          mem_limit=4e9, dtype=np.float32, unit="adu")
    out.parent.mkdir(parents=True, exist_ok=True)
    res.data = res.data.astype(np.float32)
    res.uncertainty = None
    res.mask = None
    res.write(out, overwrite=True)


def _stage(stage: str, man: dict) -> None:  # type: ignore[type-arg]
    import astropy.units as u
    import ccdproc
    import numpy as np
    from astropy.nddata import CCDData

    work = Path(man["work"])
    m = work / "masters"
    if stage in ("bias", "dark", "dark_flat"):
        key = {"bias": "bias", "dark": "darks", "dark_flat": "dark_flats"}[stage]
        _combine(man[key], m / f"{stage}.fits")
    elif stage == "flat":
        dflat = CCDData.read(m / "dark_flat.fits", unit="adu")
        flats = []
        for p in man["flats"]:
            ccd = CCDData.read(p, unit="adu")
            flats.append(ccdproc.subtract_dark(ccd, dflat, exposure_time="EXPTIME",
                                               exposure_unit=u.s))
        _combine(flats, m / "flat.fits", scale=lambda a: 1.0 / np.ma.median(a))
    elif stage == "calibrate":
        dark = CCDData.read(m / "dark.fits", unit="adu")
        flat = CCDData.read(m / "flat.fits", unit="adu")
        out = work / "calibrated"
        out.mkdir(parents=True, exist_ok=True)
        for p in man["lights"]:
            ccd = CCDData.read(p, unit="adu")
            ccd = ccdproc.subtract_dark(ccd, dark, exposure_time="EXPTIME", exposure_unit=u.s)
            ccd = ccdproc.flat_correct(ccd, flat)
            ccd.data = ccd.data.astype(np.float32)
            ccd.write(out / f"{Path(p).stem}.fits", overwrite=True)
    elif stage == "register":
        import astroalign

        out = work / "registered"
        out.mkdir(parents=True, exist_ok=True)
        cal = [work / "calibrated" / f"{Path(p).stem}.fits" for p in man["lights"]]
        # FITS data are big-endian; sep (inside astroalign) wants native byte order
        ref = CCDData.read(cal[0], unit="adu").data.astype(np.float32)
        log = []
        for p in cal:
            ccd = CCDData.read(p, unit="adu")
            src = ccd.data.astype(np.float32)
            if p == cal[0]:
                data, foot = src, np.zeros(ccd.shape, bool)
            else:
                try:
                    data, foot = astroalign.register(src, ref, fill_value=0.0)
                except Exception as err:  # noqa: BLE001 - a failed frame is skipped, as users do
                    log.append(f"{p.name}: {type(err).__name__}: {err}")
                    continue
            CCDData(data.astype(np.float32), unit="adu", mask=foot, meta=ccd.meta).write(
                out / p.name, overwrite=True)
        (out / "failed.txt").write_text("\n".join(log) + "\n")
    elif stage == "stack":
        reg = sorted((work / "registered").glob("*.fits"))
        frames = [CCDData.read(p, unit="adu") for p in reg]
        first = work / "registered" / f"{Path(man['lights'][0]).stem}.fits"
        ref_i = reg.index(first) if first in reg else 0

        def loc_scale(c: CCDData) -> tuple[float, float]:
            v = c.data[~c.mask] if c.mask is not None else c.data.ravel()
            med = float(np.median(v))
            return med, float(np.median(np.abs(v - med)))

        stats = [loc_scale(c) for c in frames]
        loc_r, sc_r = stats[ref_i]
        for c, (loc, sc) in zip(frames, stats):
            c.data = ((c.data - loc) * (sc_r / sc) + loc_r).astype(np.float32)
        _combine(frames, work / "result.fits")
    else:
        msg = f"unknown stage {stage!r}"
        raise SystemExit(msg)


def main(argv: list[str] | None = None) -> int:
    """``ccdproc_baseline.py STAGE MANIFEST``."""
    import warnings

    args = sys.argv[1:] if argv is None else argv
    stage, manifest = args
    warnings.simplefilter("ignore")  # astropy's FITS-keyword chatter, not results
    _stage(stage, json.loads(Path(manifest).read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
