"""Per-frame tasks of the pipeline: top-level functions over small dicts, run by any executor.

Each task computes its product's name from the hash of its inputs and parameters, returns at
once when the product exists (resume), and writes atomically otherwise.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from skystack.pipeline.cache import atomic_write, atomic_write_text, file_digest, json_default, step_key

#: A transform whose matched stars disagree by more than this (px RMS) is not a registration.
MAX_REGISTRATION_RMS = 2.0

__all__ = ["build_master_task", "calibrate_task", "register_task", "ln_task",
           "integrate_band_task"]


def build_master_task(t: dict[str, Any]) -> dict[str, Any]:
    """Build one master (bias, dark, dark-flat, flat) unless the product exists."""
    from skystack.masters import build_master
    from skystack.metadata import FrameInfo

    out = Path(t["output"])
    if out.exists():
        return {"path": str(out), "cached": True}
    infos = [FrameInfo(**i) for i in t["infos"]]

    def write(tmp: Path) -> None:
        build_master(t["kind"], t["files"], infos=infos, bias=t.get("bias"), dark=t.get("dark"),
                     cfa_pattern=t.get("cfa"), memory=t.get("memory"), output=tmp)

    atomic_write(out, write)
    return {"path": str(out), "cached": False}


def calibrate_task(t: dict[str, Any]) -> dict[str, Any]:
    """Calibrate (and debayer) one light, then measure it. Products: image, measurement JSON."""
    from skystack.calibrate import CalibrationConfig, calibrate_prepared
    from skystack.cfa import debayer
    from skystack.io import Image, read_image, write_image

    inputs = [file_digest(t["path"])] + [file_digest(t[k]) for k in ("bias", "dark", "flat") if t.get(k)]
    params = {k: t[k] for k in ("dark_scale", "cfa", "calibration", "debayer", "weighting")}
    key = step_key("calibrate", params, inputs)
    work = Path(t["work"])
    img_path = work / "calibrated" / f"{Path(t['path']).name.split('.')[0]}_{key}.fits"
    meas_path = work / "measure" / f"{key}.json"
    if img_path.exists() and meas_path.exists():
        return json.loads(meas_path.read_text())

    img = read_image(t["path"])
    cal = t["calibration"]
    cfg = CalibrationConfig(pedestal=cal["pedestal"], cosmetic=cal["cosmetic"],
                            optimize_dark=cal["optimize_dark"])
    raw = img.data if img.data.ndim == 2 else None
    if raw is None:
        msg = f"{t['path']}: colour (3-D) raw lights are not calibrated; give CFA mosaics or mono"
        raise ValueError(msg)
    prep = _prepared_masters(t.get("bias"), t.get("dark"), t.get("flat"), raw.shape, t["cfa"], cfg)
    res = calibrate_prepared(raw, prep, dark_scale=t["dark_scale"], cfa_pattern=t["cfa"], cfg=cfg)
    data = res.data
    if t["cfa"]:
        data = debayer(data, t["cfa"], method=t["debayer"])
    out = Image.from_array(data, keywords=list(img.keywords))
    out.set("PEDESTAL", res.pedestal_dn, "[DN] output pedestal (removed at integration)")
    out.set("COSMCORR", res.repaired, "pixels repaired by cosmetic correction")
    if t["cfa"]:
        out.set("BAYERPAT", None)
    atomic_write(img_path, lambda p: write_image(p, out, sample_format="float32"))

    meas = _measure(data, t)  # measure_frame takes colour as its luminance
    record = {
        "path": t["path"], "calibrated": str(img_path), "key": key, "sha256": inputs[0],
        "pedestal_dn": res.pedestal_dn, "dark_scale": res.dark_scale,
        "repaired": res.repaired, "bad_flat_pixels": res.bad_flat_pixels,
        "notes": res.notes, **meas,
    }
    atomic_write_text(meas_path, json.dumps(record, default=json_default, sort_keys=True))
    return record


@functools.lru_cache(maxsize=4)
def _prepared_masters(bias: str | None, dark: str | None, flat: str | None,
                      shape: tuple[int, ...], cfa: str | None, cfg: Any) -> Any:
    """Masters read and prepared once per worker process, not once per light.

    Master paths are content-addressed products of this run (or masters on disk that a run only
    reads), so a path names one content for the life of the process.
    """
    from skystack.calibrate import prepare_masters
    from skystack.io import read_image

    arrays = [None if p is None else read_image(p).data for p in (bias, dark, flat)]
    return prepare_masters(shape, *arrays, cfa, cfg)


def _measure(data: np.ndarray, t: dict[str, Any]) -> dict[str, Any]:
    """Measurements and the star list (x, y, flux of the brightest stars) for registration."""
    from skystack.weights import measure_frame

    m = measure_frame(data, pixel_scale=t.get("pixel_scale"))
    cat = m.catalog
    fwhm = np.asarray(cat.fwhm, dtype=float)
    ok = np.isfinite(fwhm) & ~np.asarray(cat.saturated, bool)
    psf = float(m.fwhm) if m.fwhm == m.fwhm else 0.0
    if ok.sum() >= 20 and psf > 0:
        # Star-like only: nebula knots and galaxy cores are detections too, broader than the PSF;
        # in narrowband frames they outnumber the stars and would wreck star matching. The
        # frame's PSF FWHM (from the fitted stars) sets the window.
        ok &= (fwhm > 0.6 * psf) & (fwhm < 1.5 * psf)
    idx = np.flatnonzero(ok) if ok.sum() >= 20 else np.arange(len(cat))
    # by peak significance, not flux: an extended knot has a large flux and a low peak
    order = idx[np.argsort(-np.asarray(cat.snr)[idx], kind="stable")][:400]
    stars = {"x": np.asarray(cat.x)[order].tolist(), "y": np.asarray(cat.y)[order].tolist(),
             "flux": np.asarray(cat.flux)[order].tolist(),
             "snr": np.asarray(cat.snr)[order].tolist()}
    d = m.to_dict()
    d["path"] = t["path"]
    return {"measurement": d, "stars": stars}


def register_task(t: dict[str, Any]) -> dict[str, Any]:
    """Find the transform to the reference and resample the frame onto the reference grid."""
    from skystack.io import Image, read_image, write_image
    from skystack.register import FailedRegistration, find_transform, warp

    src = Path(t["calibrated"])
    params = {k: t[k] for k in ("model", "interpolation", "ref_key", "shape")}
    key = step_key("register", params, [t["key"]])
    out_path = Path(t["work"]) / "registered" / f"{src.stem}_r{key[:8]}.fits"
    info_path = out_path.with_suffix(".json")
    if out_path.exists() and info_path.exists():
        return json.loads(info_path.read_text())
    if t["is_reference"]:
        tr_h = np.eye(3)
        info: dict[str, Any] = {"H": tr_h.tolist(), "stars_matched": len(t["stars"]["x"]),
                                "rms_px": 0.0}
    else:
        fxy = np.column_stack([t["stars"]["x"], t["stars"]["y"]])
        rxy = np.column_stack([t["ref_stars"]["x"], t["ref_stars"]["y"]])
        # ordered and weighted by significance (centroid precision), not by flux
        tr = find_transform(fxy, rxy, frame_flux=np.asarray(t["stars"]["snr"]),
                            ref_flux=np.asarray(t["ref_stars"]["snr"]), model=t["model"], rng=0)
        if tr and tr.rms_px > MAX_REGISTRATION_RMS:
            tr = FailedRegistration(
                f"{tr.stars_matched} stars matched but they disagree by {tr.rms_px:.1f} px RMS "
                "(a false match, or a frame too poor to register)")
        if not tr:
            rec = {"path": t["path"], "registered": None, "H": None, "reason": tr.reason}
            atomic_write_text(info_path, json.dumps(rec))
            return rec
        info = {"H": np.asarray(tr.H).tolist(), "stars_matched": int(tr.stars_matched),
                "rms_px": float(tr.rms_px)}
    img = read_image(src)
    h = np.asarray(info["H"], float)
    shape = tuple(t["shape"])
    if img.data.ndim == 3:
        data = np.stack([warp(c, h, shape=shape, method=t["interpolation"]) for c in img.data])
    else:
        data = warp(img.data, h, shape=shape, method=t["interpolation"])
    out = Image.from_array(data, keywords=list(img.keywords))
    atomic_write(out_path, lambda p: write_image(p, out, sample_format="float32"))
    rec = {"path": t["path"], "registered": str(out_path), "key": key, **info}
    atomic_write_text(info_path, json.dumps(rec))
    return rec


def ln_task(t: dict[str, Any]) -> dict[str, Any]:
    """Local normalization functions of one registered frame against its group's reference."""
    from skystack.io import read_image
    from skystack.normalize import (
        ChannelNormalization,
        LNConfig,
        LNError,
        check_coverage,
        compute_local_normalization,
    )

    stars = t.get("stars")
    xy = None if not stars else np.column_stack([stars["x"], stars["y"]])
    key = step_key("ln", {"scale": t["scale"], "stars": None if xy is None else xy.tolist()},
                   [t["key"], t["ref_key"]])
    out = Path(t["work"]) / "ln" / f"{key}.npz"
    if out.exists():
        return {"path": t["path"], "ln": str(out), "ok": True}
    frame = read_image(t["registered"]).data
    ref = read_image(t["reference"]).data
    planes = frame if frame.ndim == 3 else frame[None]
    refs = ref if ref.ndim == 3 else ref[None]
    fns = []
    try:
        for c in range(planes.shape[0]):
            # a reference that does not cover the frame belongs to another panel: refuse
            check_coverage(planes[c], refs[c], path=Path(t["path"]).name)
            fns.append(compute_local_normalization(planes[c], refs[c],
                                                   config=LNConfig(scale=t["scale"]), stars_xy=xy))
    except LNError as err:
        return {"path": t["path"], "ln": None, "ok": False, "reason": str(err)}
    arrays = ChannelNormalization(fns).to_arrays()
    atomic_write(out, lambda p: np.savez(p, **arrays))
    return {"path": t["path"], "ln": str(out), "ok": True,
            "channels": [ln.to_json() for ln in fns]}


def integrate_band_task(t: dict[str, Any]) -> Any:
    """Integrate one row band of a group (the Dask path of integration)."""
    from skystack.integrate import integrate_rows
    from skystack.normalize import ChannelNormalization

    lns = None
    if t.get("ln"):
        lns = [ChannelNormalization.load(p, tuple(t["shape"])) for p in t["ln"]]
    return integrate_rows(t["paths"], t["plan"], t["r0"], t["r1"], local_normalization=lns)
