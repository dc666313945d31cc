"""Whole runs: files, truth.json, determinism, planted problems, dialects, the CLI."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from skystack.errors import ConfigError
from skystack.io import read_header, read_image
from skystack.simulate import (
    DIALECTS,
    FRAME_KINDS,
    FrameSpec,
    apply_transform,
    header_for,
    load_truth,
    path_for,
    simulate,
)
from skystack.simulate.truth import TruthError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    return simulate(tmp_path_factory.mktemp("tiny"), preset="tiny", seed=11)


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory):
    return simulate(tmp_path_factory.mktemp("messy"), preset="messy", seed=2, frames=8,
                    width=128, height=96)


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_tiny_counts_and_formats(tiny) -> None:
    assert (len(tiny.lights), len(tiny.darks), len(tiny.flats), len(tiny.bias),
            len(tiny.dark_flats)) == (6, 3, 6, 3, 6)
    h = read_header(tiny.lights[0])
    assert h.shape == (192, 256) and h.sample_format == "uint16"
    assert h.get("IMAGETYP") == "LIGHT" and h.get("EXPOSURE") == 60.0
    assert h.get("ROWORDER") == "TOP-DOWN" and h.get("FILTER") in ("L", "R")
    assert read_header(tiny.dark_flats[0]).get("IMAGETYP") == "DARKFLAT"


def test_same_seed_gives_identical_bytes(tiny, tmp_path: Path) -> None:
    again = simulate(tmp_path / "a", preset="tiny", seed=11)
    assert _digests(again.out_dir) == _digests(tiny.out_dir)
    other = simulate(tmp_path / "b", preset="tiny", seed=12, frames=2)
    assert hashlib.sha256(other.bias[0].read_bytes()).hexdigest() != \
        hashlib.sha256(tiny.bias[0].read_bytes()).hexdigest()


def test_truth_json_round_trip(tiny) -> None:
    truth = load_truth(tiny.out_dir)
    raw = json.loads((tiny.out_dir / "truth" / "truth.json").read_text())
    assert truth.to_json() == raw
    assert [f.path for f in truth.frames] == [f.path for f in tiny.truth.frames]
    assert len(truth.lights()) == 6 and len(truth.lights(filter="L")) == 3
    cam = truth.cameras["main"]
    assert cam["gain_e_per_adu"] == 0.5 and cam["read_noise_e"] == 1.8
    for rel in [cam["bias_map"], *cam["dark_current"].values(), *truth.data["sky"].values(),
                *(f["path"] for f in truth.data["flats"])]:
        assert truth.image(rel).shape == (192, 256)
    stars = truth.stars()
    assert set(stars) == {"x", "y", "flux_L", "flux_R"} and len(stars["x"]) > 100
    for f in truth.lights():
        assert (tiny.out_dir / f.path).is_file()
        assert f.flat and (tiny.out_dir / f.flat).is_file()
        assert f.dark_current and (tiny.out_dir / f.dark_current).is_file()


def test_load_truth_errors(tmp_path: Path) -> None:
    with pytest.raises(TruthError, match="no truth file"):
        load_truth(tmp_path)


def test_unknown_option_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown simulation option"):
        simulate(tmp_path, preset="tiny", framez=3)
    with pytest.raises(ConfigError, match="unknown preset"):
        simulate(tmp_path, preset="huge")


def test_written_light_has_stars_where_truth_says(tiny) -> None:
    """End to end through the file: the brightest unsaturated catalogue star lands at H·xy."""
    truth = tiny.truth
    stars = truth.stars()
    cam = truth.cameras["main"]
    bias = truth.image(cam["bias_map"]).astype(np.float64)
    for f in truth.lights():
        img = read_image(truth.path(f.path)).data.astype(np.float64) * 65535 - bias
        xy = apply_transform(f.H, np.column_stack([stars["x"], stars["y"]]))
        flux = stars[f"flux_{f.filter}"]
        inside = (xy[:, 0] > 15) & (xy[:, 0] < 240) & (xy[:, 1] > 15) & (xy[:, 1] < 176)
        # Isolated and bright but not saturated.
        cand = [i for i in np.argsort(-flux) if inside[i] and flux[i] * f.exposure < 2e5]
        i = next(i for i in cand if np.sort(np.hypot(*(xy - xy[i]).T))[1] > 12)
        px, py = xy[i]
        ix, iy = int(round(px)), int(round(py))
        win = img[iy - 5: iy + 6, ix - 5: ix + 6]
        win = (win - np.median(img[iy - 12: iy + 13, ix - 12: ix + 13])).clip(0)
        yy, xx = np.mgrid[iy - 5: iy + 6, ix - 5: ix + 6]
        cx, cy = (win * xx).sum() / win.sum(), (win * yy).sum() / win.sum()
        assert np.hypot(cx - px, cy - py) < 0.3, f.path


def test_messy_plants_and_lists_problems(messy) -> None:
    planted = messy.truth.planted_problems
    kinds = {p["kind"] for p in planted}
    assert kinds == {"existing_master", "missing_flats", "no_matching_dark", "not_an_image",
                     "empty_file", "truncated_file"}
    by = {p["kind"]: p for p in planted}
    root = messy.out_dir
    master = root / by["existing_master"]["paths"][0]
    assert read_header(master).get("IMAGETYP") == "Master Dark" and "master" in master.name.lower()
    assert (root / by["empty_file"]["paths"][0]).stat().st_size == 0
    assert (root / by["not_an_image"]["paths"][0]).suffix == ".txt"
    with pytest.raises(Exception):
        read_image(root / by["truncated_file"]["paths"][0])
    light180 = read_header(root / by["no_matching_dark"]["paths"][0])
    assert light180.get("EXPOSURE") == 180.0
    dark_exps = {f.exposure for f in messy.truth.of_type("dark")}
    assert 180.0 not in dark_exps
    oiii = by["missing_flats"]["paths"]
    assert oiii and all(messy.truth.frame(p).filter == "OIII" for p in oiii)
    assert not [f for f in messy.truth.of_type("flat") if f.filter == "OIII"]
    # Several dialects really are mixed.
    assert {f.dialect for f in messy.truth.frames} >= {"nina", "asiair", "sgp", "maxim", "ekos"}


def test_dialect_headers_and_paths() -> None:
    spec = FrameSpec(type="light", exposure=60.0, filter="L", object="M31", index=0,
                     temperature=-10.0)
    assert re.fullmatch(r"Autorun/Light/M31/Light_M31_60\.0s_Bin1_L_gain100_\d{8}-\d{6}_-10\.0C_0001\.fit",
                        path_for("asiair", spec))
    types = {d: {k: dict((c.name, c.value) for c in header_for(d, FrameSpec(type=k, exposure=1.0)))
                 ["IMAGETYP"] for k in FRAME_KINDS} for d in DIALECTS}
    assert types["nina"]["dark_flat"] == "DARKFLAT"
    assert types["maxim"]["flat"] == "Flat Field"
    assert types["sgp"]["light"] == "Light Frame"
    maxim = {c.name for c in header_for("maxim", spec)}
    assert "EGAIN" in maxim and "GAIN" not in maxim
    ekos = {c.name: c.value for c in header_for("ekos", FrameSpec(type="dark_flat", exposure=2.0))}
    assert ekos["FRAME"] == "Dark Flat"
    osc = {c.name: c.value for c in header_for("nina", FrameSpec(type="light", exposure=1.0,
                                                                bayer="GRBG"))}
    assert osc["BAYERPAT"] == "GRBG" and osc["ROWORDER"] == "TOP-DOWN"


def test_cli_writes_and_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from skystack.cli import main

    rc = main(["simulate", str(tmp_path / "o"), "--preset", "tiny", "--frames", "2",
               "--width", "96", "--height", "64", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"]["lights"] == 2
    assert read_header(next((tmp_path / "o").rglob("*LIGHT*/*.fits"))).shape == (64, 96)
