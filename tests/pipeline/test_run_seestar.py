"""`skystack run` on real Seestar S50 subs (Bayer GRBG, no darks or flats): cosmetic correction,
debayering, registration of drifting frames, LN and integration — skipped without ../shared."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from skystack.io import read_image
from skystack.pipeline import RunConfig, run_pipeline


def test_seestar_session_end_to_end(realdata: Path, tmp_path: Path) -> None:
    subs = sorted((realdata / "seestar" / "M94_session1").glob("*.fit"))[:8]
    out = tmp_path / "out"
    run_pipeline(subs, out, config=RunConfig(jobs=1, executor="serial"), log=lambda m: None)
    run = json.loads((out / "run.json").read_text())
    (group,) = run["groups"]
    assert group["frames"] >= 7  # at most one frame flagged (tracking) of eight
    rows = [r for r in group["frame_rows"] if r["accepted"]]
    assert all(r["stars_matched"] >= 30 and r["rms_px"] < 1.0 for r in rows)
    master = read_image(group["output"]).data
    assert master.shape == (3, 1920, 1080)  # debayered colour on the reference grid
    # the missing calibration is reported as a warning, not a stop
    assert {d["severity"] for d in run["doctor"] if d["check"] == "links"} == {"warning"}
    assert group["noise_gain"] >= 0.9 * np.sqrt(group["frames"])
