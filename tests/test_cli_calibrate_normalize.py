"""``skystack calibrate`` and ``skystack normalize`` end to end on small FITS files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from skystack.cli import main
from skystack.io import read_image

DN = 65535.0
H, W = 96, 128


def write_fits(path: Path, data: np.ndarray, **cards: object) -> Path:
    """Unsigned 16-bit FITS (as cameras write them) or float32 for float data."""
    hdr = fits.Header()
    for k, v in cards.items():
        hdr[k] = v
    if data.dtype.kind == "f":
        fits.PrimaryHDU(data.astype(np.float32), header=hdr).writeto(path)
    else:
        fits.PrimaryHDU(data, header=hdr, uint=True).writeto(path)  # BZERO 32768
    return path


def to_adu(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 65535).astype(np.uint16)


@pytest.fixture
def night(tmp_path: Path) -> dict[str, object]:
    """Masters and two 60 s lights whose calibrated value is known exactly (no noise)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    bias = 1000 + 3 * np.sin(xx / 5)
    rate = np.full((H, W), 2.0)  # ADU/s
    rate += 3 * np.exp(-np.hypot(xx, yy) / 40)  # amp glow corner (smooth: not hot pixels)
    flat = 1 - 0.2 * (((xx - W / 2) ** 2 + (yy - H / 2) ** 2) / (W / 2) ** 2)
    sky = 3000 + 5 * xx
    # a master dark keeps some noise (≈ 3 ADU): hot-pixel thresholds are relative to it
    dark = bias + 120 * rate + np.random.default_rng(0).normal(0, 3, (H, W))
    files = {
        "bias": write_fits(tmp_path / "master_bias.fits", bias.astype(np.float32) / DN,
                           IMAGETYP="Master Bias"),
        "dark": write_fits(tmp_path / "master_dark_120s.fits", dark.astype(np.float32) / DN,
                           IMAGETYP="Master Dark", EXPTIME=120.0),
        "flat": write_fits(tmp_path / "master_flat.fits", (0.5 * flat).astype(np.float32),
                           IMAGETYP="Master Flat"),
    }
    raw = [bias + 60 * rate + sky * flat * t for t in (1.0, 0.9)]
    lights = [write_fits(tmp_path / f"light_{i}.0s.fits", to_adu(r), IMAGETYP="Light Frame",
                         EXPTIME=60.0) for i, r in enumerate(raw)]
    # what calibration must give (before the pedestal), from the same rounded ADU
    expected = [(np.rint(r) - bias - 0.5 * (dark - bias)) / (flat / flat.mean()) / DN for r in raw]
    return {"files": files, "lights": lights, "expected": expected, "dir": tmp_path}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


# --- calibrate -----------------------------------------------------------------------------------


def test_calibrate_with_masters_auto_pedestal_and_bad_file(night, capsys) -> None:
    f = night["files"]
    out = night["dir"] / "cal"
    bad = night["dir"] / "broken.fits"
    bad.write_bytes(b"")
    rc, stdout, err = run_cli(["calibrate", *map(str, night["lights"]), str(bad),
                               "--bias", str(f["bias"]), "--dark", str(f["dark"]),
                               "--flat", str(f["flat"]), "-o", str(out), "--json"], capsys)
    assert rc == 0
    report = json.loads(stdout)
    assert [r.get("error") is None for r in report["frames"]] == [True, True, False]
    # the bad file: one line naming it and the fix, the rest carried on
    lines = [ln for ln in err.splitlines() if "broken.fits" in ln]
    assert len(lines) == 1 and lines[0].startswith("skipped") and "re-copy" in lines[0]
    for light, want in zip(night["lights"], night["expected"], strict=True):
        target = out / (light.name.removesuffix(".fits") + "_c.fits")  # dots in names are kept
        img = read_image(target)
        assert img.get("DARKSCAL") == pytest.approx(0.5)  # 60 s light, 120 s dark
        assert img.get("CALSTAT") == "BDF"
        ped = img.get("PEDESTAL")
        assert ped == 0  # a bright sky needs no pedestal
        np.testing.assert_allclose(img.data, want + ped / DN, atol=2e-6)


@pytest.mark.parametrize(("arg", "expected"), [("auto", None), ("100", 100.0), ("none", 0.0)])
def test_calibrate_pedestal_options(tmp_path: Path, capsys, arg: str, expected) -> None:
    rng = np.random.default_rng(0)
    bias = np.full((H, W), 1000.0)
    # a dark sky: after bias subtraction half the pixels fall below zero
    light = write_fits(tmp_path / "dark_sky.fits", to_adu(bias + rng.normal(0, 20, (H, W))),
                       IMAGETYP="Light Frame", EXPTIME=10.0)
    b = write_fits(tmp_path / "bias.fits", (bias / DN).astype(np.float32), IMAGETYP="Master Bias")
    rc, _, _ = run_cli(["calibrate", str(light), "--bias", str(b), "--pedestal", arg,
                        "--no-cosmetic", "-o", str(tmp_path / "out")], capsys)
    assert rc == 0
    img = read_image(tmp_path / "out" / "dark_sky_c.fits")
    ped = img.get("PEDESTAL")
    if expected is None:  # auto: the smallest that leaves ≤ 0.01 % at or below 0
        assert 40 < ped < 120
        assert np.mean(img.data <= 0) <= 1e-4
    else:
        assert ped == expected
        np.testing.assert_allclose(np.median(img.data), expected / DN, atol=2 / DN)


def test_calibrate_rejects_a_bad_pedestal(tmp_path: Path, capsys) -> None:
    light = write_fits(tmp_path / "l.fits", np.full((8, 8), 1000, np.uint16))
    rc, _, err = run_cli(["calibrate", str(light), "--pedestal", "lots", "-o", str(tmp_path)],
                         capsys)
    assert rc == 2 and "--pedestal takes" in err


def test_calibrate_cfa_stays_cfa_and_keeps_colour(tmp_path: Path, capsys) -> None:
    # RGGB light of a grey sky through an OSC flat that is brighter in G
    tile = np.array([[0.6, 1.0], [1.0, 0.5]])
    flat = np.tile(tile, (H // 2, W // 2))
    light = write_fits(tmp_path / "osc.fits", to_adu(500 + 4000 * flat), IMAGETYP="Light Frame",
                       BAYERPAT="RGGB", EXPTIME=30.0)
    fl = write_fits(tmp_path / "flat.fits", (0.4 * flat).astype(np.float32),
                    IMAGETYP="Master Flat", BAYERPAT="RGGB")
    b = write_fits(tmp_path / "bias.fits", np.full((H, W), 500 / DN, np.float32))
    rc, _, _ = run_cli(["calibrate", str(light), "--bias", str(b), "--flat", str(fl),
                        "--pedestal", "none", "-o", str(tmp_path / "out")], capsys)
    assert rc == 0
    img = read_image(tmp_path / "out" / "osc_c.fits")
    assert img.data.shape == (H, W) and img.bayer_pattern == "RGGB"  # still a mosaic
    # per-CFA-position flat scaling: each position divided by its own mean → colours kept
    for dy in (0, 1):
        for dx in (0, 1):
            np.testing.assert_allclose(img.data[dy::2, dx::2], 4000 * tile[dy, dx] / DN,
                                       rtol=1e-4)


def test_calibrate_wrong_size_master_names_the_file(night, tmp_path: Path, capsys) -> None:
    small = write_fits(tmp_path / "small_dark.fits", np.zeros((10, 10), np.float32))
    rc, _, err = run_cli(["calibrate", str(night["lights"][0]), "--dark", str(small),
                          "-o", str(tmp_path / "o")], capsys)
    assert rc == 1  # every file failed
    line = next(ln for ln in err.splitlines() if ln.startswith("skipped"))
    assert str(night["lights"][0]) in line and "wrong binning or size" in line


# --- normalize -----------------------------------------------------------------------------------

NH, NW = 192, 256
SKY = 0.05


def sky_scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:NH, 0:NW].astype(np.float32)
    img = np.zeros((NH, NW), np.float32)
    for _ in range(120):
        x, y = rng.uniform(10, NW - 10), rng.uniform(10, NH - 10)
        f = min(0.06 * rng.pareto(1.3) + 0.03, 4.0)
        img += (f / (2 * np.pi * 1.69) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 3.38)).astype(
            np.float32)
    return img


def gradient(angle: float, amp: float) -> np.ndarray:
    yy, xx = np.mgrid[0:NH, 0:NW].astype(np.float32)
    return (amp * ((xx - NW / 2) * np.cos(angle) + (yy - NH / 2) * np.sin(angle)) / (NW / 2)
            ).astype(np.float32)


@pytest.fixture
def registered(tmp_path: Path) -> dict[str, object]:
    stars = sky_scene()
    rng = np.random.default_rng(1)
    cases = [(1.0, 0.0, 0.0), (0.8, 0.5, 0.05), (1.2, 2.5, -0.04)]
    paths, bgs = [], []
    for i, (t, ang, amp) in enumerate(cases):
        bg = SKY * (1 + gradient(ang, amp))
        data = (t * stars + bg + rng.normal(0, 3e-4, (NH, NW))).astype(np.float32)
        paths.append(write_fits(tmp_path / f"r_{i}.fits", data, IMAGETYP="Light Frame"))
        bgs.append(bg)
    ref = (stars + SKY + rng.normal(0, 1e-4, (NH, NW))).astype(np.float32)
    ref_path = write_fits(tmp_path / "reference.fits", ref, IMAGETYP="Master Light")
    return {"paths": paths, "bgs": bgs, "t": [c[0] for c in cases], "ref": ref_path,
            "dir": tmp_path}


def test_normalize_local_against_given_reference(registered, capsys) -> None:
    out = registered["dir"] / "ln"
    bad = registered["dir"] / "junk.fits"
    bad.write_text("not a fits file")
    rc, stdout, err = run_cli(["normalize", *map(str, registered["paths"]), str(bad),
                               "--reference", str(registered["ref"]), "--local", "--scale", "64",
                               "-o", str(out), "--json"], capsys)
    assert rc == 0
    report = json.loads(stdout)
    assert report["local"] is True
    frames = {Path(r["path"]).name: r for r in report["frames"]}
    assert "error" in frames["junk.fits"]
    assert sum("junk.fits" in ln for ln in err.splitlines()) == 1
    for p, bg, t in zip(registered["paths"], registered["bgs"], registered["t"], strict=True):
        ch = frames[p.name]["channels"][0]
        assert ch["a1"] * t == pytest.approx(1.0, abs=0.01)
        assert ch["cell"] == 8  # scale 64 → cell 8
        img = read_image(out / (p.stem + "_n.fits"))
        assert img.get("NORMALIZ") == "local"
        # background after LN matches the reference's (flat SKY): compare medians in blocks
        resid = img.data - ch["a1"] * t * sky_scene() - SKY
        blocks = resid.reshape(NH // 32, 32, NW // 32, 32)
        assert np.abs(np.median(blocks, axis=(1, 3))).max() < 0.01 * SKY


def test_normalize_global_builds_and_writes_the_reference(registered, capsys) -> None:
    out = registered["dir"] / "gl"
    rc, stdout, err = run_cli(["normalize", *map(str, registered["paths"]), "-o", str(out),
                               "--json"], capsys)
    assert rc == 0
    assert (out / "ln_reference.fits").exists() and "reference:" in err
    ref = read_image(out / "ln_reference.fits").data
    report = json.loads(stdout)
    assert report["local"] is False
    for p in registered["paths"]:
        img = read_image(out / (p.stem + "_n.fits"))
        assert img.get("NORMALIZ") == "global"
        # location and scale (median, MAD) now match the reference's
        for a, b in ((img.data, ref),):
            ma, mb = np.median(a), np.median(b)
            assert ma == pytest.approx(mb, rel=1e-3)
            assert np.median(np.abs(a - ma)) == pytest.approx(np.median(np.abs(b - mb)), rel=0.02)


def test_normalize_refuses_a_dark_as_reference(registered, capsys) -> None:
    dark = write_fits(registered["dir"] / "master_dark.fits", np.full((NH, NW), 0.01, np.float32),
                      IMAGETYP="Master Dark")
    rc, _, err = run_cli(["normalize", *map(str, registered["paths"]), "--reference", str(dark),
                          "--local", "-o", str(registered["dir"] / "x")], capsys)
    assert rc == 2
    assert "master_dark.fits" in err and "division by near-zero" in err
    assert not list((registered["dir"] / "x").glob("*_n.fits"))


def test_normalize_repairs_dead_pixels_in_a_given_reference(registered, capsys) -> None:
    ref = read_image(registered["ref"]).data.copy()
    ref[:, 100] = 0  # a bad column
    ref[50, 50] = 0
    path = write_fits(registered["dir"] / "ref_bad.fits", ref, IMAGETYP="Light Frame")
    out = registered["dir"] / "rep"
    rc, stdout, err = run_cli(["normalize", str(registered["paths"][1]), "--reference", str(path),
                               "--local", "-o", str(out), "--json"], capsys)
    assert rc == 0
    assert f"{NH + 1} zero/non-finite pixels" in err
    img = read_image(out / "r_1_n.fits")
    assert np.all(np.isfinite(img.data)) and img.data[:, 100].min() > 0


def test_normalize_refuses_another_panel(registered, capsys) -> None:
    ref = read_image(registered["ref"]).data.copy()
    ref[:, : NW // 2 + 40] = 0  # the reference covers only the right part
    path = write_fits(registered["dir"] / "panel_b.fits", ref, IMAGETYP="Light Frame")
    rc, stdout, err = run_cli(["normalize", str(registered["paths"][0]), "--reference", str(path),
                               "--local", "-o", str(registered["dir"] / "pb"), "--json"], capsys)
    assert rc == 1  # nothing normalized
    assert "another mosaic panel" in err
    assert "error" in json.loads(stdout)["frames"][0]
