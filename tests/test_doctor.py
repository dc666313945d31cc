"""``skystack doctor``: every check against the failing situation built with the simulator, and
the same situation fixed (no finding). Small frames (the ``tiny`` preset, 256×192)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from skystack.calibrate import auto_pedestal
from skystack.cli import main
from skystack.doctor import (
    DoctorReport,
    Finding,
    check_mosaic_reference,
    check_type_conflicts,
    diagnose,
    rejection_for_count,
)
from skystack.io import Image, read_image, write_image
from skystack.simulate import simulate

DAY = "2026-10-12"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYSTACK_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny night: 3 L + 3 R lights of 60 s, 3 bias, 3 darks, 3 flats per filter, dark-flats."""
    return simulate(tmp_path_factory.mktemp("base"), preset="tiny", seed=5).out_dir


@pytest.fixture
def sim(base: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny night to break."""
    return Path(shutil.copytree(base, tmp_path / "sim"))


def files(root: Path, kind: str, token: str = "") -> list[Path]:
    """Frames of one folder (LIGHT, DARK, FLAT, BIAS, DARKFLAT) whose name holds ``token``."""
    return sorted(p for p in (root / DAY / kind).glob("*.fits") if token in p.name)


def rel(root: Path, paths: list[Path]) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in paths)


def rewrite(src: Path, dest: Path | None = None, *, data: np.ndarray | None = None,
            bayer: str | None = None, sample_format: str | None = None, **cards: object) -> Path:
    """Rewrite a frame with other pixels / header cards (``DATE_OBS`` → ``DATE-OBS``)."""
    img = read_image(src)
    for name, value in cards.items():
        img.set(name.replace("_", "-"), value)  # type: ignore[arg-type]
    out = Image.from_array(img.data if data is None else data, keywords=img.keywords,
                           sample_format=sample_format or img.sample_format,
                           bayer_pattern=bayer or img.bayer_pattern, row_order=img.row_order)
    target = dest or src
    target.parent.mkdir(parents=True, exist_ok=True)
    write_image(target, out, sample_format=sample_format or img.sample_format)
    return target


def doctor(root: Path, **kw: object) -> DoctorReport:
    return diagnose([root], use_cache=False, **kw)  # type: ignore[arg-type]


def only(report: DoctorReport, check: str) -> Finding:
    found = report.by_check(check)
    assert len(found) == 1, [f.to_json() for f in report.findings]
    return found[0]


# --- the clean baseline -------------------------------------------------------------------------

def test_clean_tiny_night_has_no_findings(base: Path) -> None:
    report = doctor(base, pedestal=None)
    assert report.findings == []
    assert report.exit_code == 0
    assert report.to_json() == {"version": 1, "exit_code": 0,
                                "counts": {"error": 0, "warning": 0, "info": 0}, "findings": []}


# --- 1. broken calibration links ----------------------------------------------------------------

def test_links_darks_at_another_temperature(tmp_path: Path) -> None:
    root = simulate(tmp_path / "warm", preset="tiny", seed=5, dark_temps=(5.0,)).out_dir
    f = only(doctor(root), "links")
    assert f.severity == "error"
    assert f.paths == rel(root, files(root, "LIGHT"))
    assert f.message == ("dark: the 60 s dark is at 5 °C, these lights at −10 °C (tolerance 2 °C) "
                         "— shoot darks at −10 °C, or raise link.temperature_tolerance (6 lights)")


@pytest.mark.parametrize(("card", "value", "words"), [("GAIN", 200, "gain 200 vs 100"),
                                                       ("XBINNING", 2, "binning 2x1 vs 1x1")])
def test_links_darks_of_other_camera_settings(sim: Path, card: str, value: int,
                                              words: str) -> None:
    for p in files(sim, "DARK"):
        rewrite(p, **{card: value})
    f = only(doctor(sim), "links")
    assert f.severity == "error" and f.paths == rel(sim, files(sim, "LIGHT"))
    assert "no dark matches these lights' camera settings" in f.message
    assert words in f.message and "shoot darks with the lights' settings" in f.message


def test_links_darks_of_another_exposure(sim: Path) -> None:
    for p in files(sim, "DARK"):
        rewrite(p, p.with_name(p.name.replace("60.00s", "30.00s")), EXPOSURE=30.0, EXPTIME=30.0)
        p.unlink()
    f = only(doctor(sim), "links")
    assert f.severity == "warning" and f.paths == rel(sim, files(sim, "LIGHT"))
    assert "no matching 60 s dark; the nearest 30 s dark is scaled ×2" in f.message
    for p in files(sim, "BIAS"):      # without a bias the scaling is impossible
        p.unlink()
    f = only(doctor(sim), "links")
    assert f.severity == "error" and "needs a matching bias" in f.message


def test_links_flats_from_another_night(tmp_path: Path) -> None:
    root = simulate(tmp_path / "two", preset="tiny", seed=5, nights=2, frames=12).out_dir
    for p in (root / "2026-10-14" / "FLAT").glob("*_L_*.fits"):
        p.unlink()
    f = only(doctor(root), "links")
    assert f.severity == "warning"
    assert f.paths == rel(root, sorted((root / "2026-10-14" / "LIGHT").glob("*_L_*.fits")))
    assert "no L flats from this session (2026-10-14)" in f.message
    assert "2026-10-12 (2 nights earlier)" in f.message and "dust may have moved" in f.message


def test_links_without_flats_for_a_filter(sim: Path) -> None:
    for p in files(sim, "FLAT", "_R_"):
        p.unlink()
    f = only(doctor(sim), "links")
    assert f.severity == "error" and f.paths == rel(sim, files(sim, "LIGHT", "_R_"))
    assert "no flat for filter R" in f.message and "shoot R flats" in f.message


# --- 2. LN reference with zero / non-finite pixels ----------------------------------------------

def _reference(sim: Path, tmp_path: Path, name: str, *, dead: bool, border: int = 0) -> Path:
    data = read_image(files(sim, "LIGHT", "_L_")[0]).data.copy()
    if border:  # an empty registration border is not a defect
        data[:border] = 0
        data[:, :border] = 0
    if dead:
        data[:, 100] = 0          # a bad column: 192 pixels
        data[50, 30] = 0          # dead pixels
        data[60, 200] = np.nan
        data[70, 150] = np.inf
    write_image(tmp_path / name, Image.from_array(data, keywords=read_image(
        files(sim, "LIGHT", "_L_")[0]).keywords), sample_format="float32")
    return tmp_path / name


def test_ln_reference_with_dead_pixels_and_a_bad_column(sim: Path, tmp_path: Path) -> None:
    ref = _reference(sim, tmp_path, "ref_bad.fits", dead=True)
    f = only(doctor(sim, reference=ref), "ln-reference-pixels")
    assert f.severity == "error" and f.paths == [str(ref)]
    assert "195 zero or non-finite pixels inside its data area" in f.message
    assert "LN vectors contain NaN values" in f.message and "pedestal" in f.message
    # the same defects inside a registered frame's empty border are still found
    framed = _reference(sim, tmp_path, "ref_bad_framed.fits", dead=True, border=12)
    assert only(doctor(sim, reference=framed), "ln-reference-pixels").severity == "error"


def test_ln_reference_without_defects_passes(sim: Path, tmp_path: Path) -> None:
    ref = _reference(sim, tmp_path, "ref_ok.fits", dead=False, border=12)
    report = doctor(sim, reference=ref)
    assert report.by_check("ln-reference-pixels") == [] and report.exit_code == 0


# --- 3. a calibration frame as LN reference ----------------------------------------------------

@pytest.mark.parametrize(("kind", "words"), [("DARK", "a dark has no sky"),
                                             ("FLAT", "a flat is not a sky image"),
                                             ("BIAS", "a bias has no sky")])
def test_calibration_frame_as_ln_reference(sim: Path, kind: str, words: str) -> None:
    ref = files(sim, kind)[0]
    f = only(doctor(sim, reference=ref), "ln-reference-type")
    assert f.severity == "error" and f.paths == [ref.relative_to(sim).as_posix()]
    assert words in f.message and "use a stack of your best lights" in f.message


def test_light_as_ln_reference_passes(sim: Path) -> None:
    report = doctor(sim, reference=files(sim, "LIGHT")[0])
    assert report.by_check("ln-reference-type") == [] and report.exit_code == 0


# --- 4. mosaic panels sharing one LN reference --------------------------------------------------

@pytest.fixture(scope="module")
def mosaic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate(tmp_path_factory.mktemp("mosaic"), preset="mosaic", seed=5, width=256,
                    height=192, frames=6, bias=3, darks=3, flats=3, dark_flats=3).out_dir


def test_mosaic_panels_sharing_one_reference(mosaic: Path) -> None:
    lights = sorted((mosaic / DAY / "LIGHT").rglob("*.fits"))
    assert len(lights) == 6
    ref = lights[0]
    f = only(doctor(mosaic, reference=ref), "mosaic-reference")
    assert f.severity == "error"
    assert f.paths[0] == ref.relative_to(mosaic).as_posix()
    assert sorted(f.paths[1:]) == rel(mosaic, lights)
    assert "lights of 2 mosaic panels — 1 (3), 2 (3) — would share one LN reference" in f.message
    assert "seams" in f.message and "each panel its own reference" in f.message


def test_mosaic_without_shared_reference_passes(mosaic: Path, sim: Path) -> None:
    assert doctor(mosaic).by_check("mosaic-reference") == []                       # per-panel refs
    ref = files(sim, "LIGHT")[0]
    no_ln = doctor(mosaic, reference=ref, local_normalization=False)
    assert no_ln.by_check("mosaic-reference") == []
    assert doctor(sim, reference=ref).by_check("mosaic-reference") == []           # one panel


def test_mosaic_panels_named_in_the_object() -> None:
    lights = [{"path": f"p{i}.fits", "object": f"M31 Panel {1 + i % 2}", "panel": None}
              for i in range(4)]
    f = check_mosaic_reference(lights, reference="ref.fits")[0]
    assert f.paths == ["ref.fits", "p0.fits", "p1.fits", "p2.fits", "p3.fits"]
    assert "Panel 1 (2), Panel 2 (2)" in f.message
    same = [{"path": "a.fits", "object": "M31", "panel": None}] * 3
    assert check_mosaic_reference(same, reference="ref.fits") == []


# --- 5. clipping: lights at zero after calibration, saturated or dark flats ---------------------

@pytest.fixture(scope="module")
def faint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 s Ha lights: faint sky, most of the signal within the read noise."""
    return simulate(tmp_path_factory.mktemp("faint"), preset="tiny", seed=5, frames=3,
                    filters=(("Ha", 5.0, 1.0),)).out_dir


def _need(root: Path) -> tuple[float, float]:
    """(fraction ≤ 0, automatic pedestal in DN) of the first light minus the median dark."""
    light = read_image(files(root, "LIGHT")[0]).data
    dark = np.median(np.stack([read_image(p).data for p in files(root, "DARK")]), axis=0)
    diff = (light - dark)[::2, ::2]
    return float(np.mean(diff <= 0)), auto_pedestal(diff, limit=1e-4)


def test_clipping_lights_without_pedestal(faint: Path) -> None:
    frac, need = _need(faint)
    assert frac > 0.01 and need >= 1
    f = only(doctor(faint, pedestal=None), "clipping")
    assert f.severity == "warning" and f.paths == rel(faint, files(faint, "LIGHT")[:1])
    assert f"up to {frac:.2%} of their pixels at or below zero" in f.message
    assert "no output pedestal is set" in f.message and f"at least {need:.0f} DN" in f.message
    small = only(doctor(faint, pedestal=1.0), "clipping")
    assert small.severity == "warning" and "pedestal of 1 DN is too small" in small.message


def test_clipping_lights_with_a_pedestal_are_only_noted(faint: Path, base: Path) -> None:
    _, need = _need(faint)
    auto = only(doctor(faint), "clipping")
    assert auto.severity == "info"
    assert f"automatic output pedestal (about {need:.0f} DN)" in auto.message
    assert only(doctor(faint, pedestal=need), "clipping").severity == "info"
    assert doctor(faint).exit_code == 0
    assert doctor(base, pedestal=None).by_check("clipping") == []   # 60 s of sky: no clipping


def test_saturated_flats(sim: Path) -> None:
    top = 60500 / 65535                                       # the camera's full scale
    flats = files(sim, "FLAT", "_L_")
    for p in flats:
        d = read_image(p).data
        rewrite(p, data=np.minimum(d * 2.2, top))
    f = only(doctor(sim), "clipping")
    assert f.severity == "error" and f.paths == rel(sim, flats)
    assert "3 flats saturated" in f.message and "shorter exposure" in f.message


def test_too_dark_flats(sim: Path) -> None:
    flats = files(sim, "FLAT", "_R_")
    level = float(np.median(read_image(files(sim, "DARKFLAT", "2.00s")[0]).data))
    for p in flats:
        d = read_image(p).data
        rewrite(p, data=level + (d - level) * 0.08)
    report = doctor(sim)
    f = only(report, "clipping")
    assert f.severity == "warning" and f.paths == rel(sim, flats)
    assert "3 flats too dark (under 5 % of full scale above their dark)" in f.message
    assert report.by_check("type-conflict") == []          # still clearly lit, not a dark


# --- 6. CFA disagreements, mixed geometry --------------------------------------------------------

def test_colour_lights_with_mono_flats(sim: Path) -> None:
    for p in files(sim, "LIGHT"):
        rewrite(p, bayer="RGGB")
    report = doctor(sim)
    found = report.by_check("cfa")
    assert len(found) == 2 and {f.severity for f in found} == {"error"}
    assert sorted(p for f in found for p in f.paths) == rel(sim, files(sim, "LIGHT"))
    assert all("lights are CFA (RGGB), the flat is mono" in f.message for f in found)


def test_flats_of_another_bayer_pattern(sim: Path) -> None:
    for p in files(sim, "LIGHT", "_L_"):
        rewrite(p, bayer="RGGB")
    for p in files(sim, "FLAT", "_L_"):
        rewrite(p, bayer="GRBG")
    f = only(doctor(sim), "cfa")
    assert f.severity == "error"
    assert f.paths == rel(sim, files(sim, "LIGHT", "_L_")) + rel(sim, files(sim, "FLAT", "_L_"))
    assert "lights are CFA RGGB but their flats are CFA GRBG" in f.message


def test_same_cfa_passes(sim: Path) -> None:
    for p in files(sim, "LIGHT", "_L_") + files(sim, "FLAT", "_L_"):
        rewrite(p, bayer="RGGB")
    assert doctor(sim).by_check("cfa") == []


def test_mixed_binning_in_one_group(sim: Path) -> None:
    lights = files(sim, "LIGHT", "_L_")
    d = read_image(lights[0]).data
    binned = d.reshape(96, 2, 128, 2).mean(axis=(1, 3))
    rewrite(lights[0], data=binned, XBINNING=2, YBINNING=2)
    f = only(doctor(sim), "mixed-geometry")
    assert f.severity == "warning" and f.paths == rel(sim, lights)
    assert "M31/L: mixed binnings 1x1, 2x2 and sizes 128×96, 256×192 in one integration group" \
        in f.message
    assert "integrate each binning/size" in f.message
    assert doctor(sim).exit_code == 2          # and the linker finds no 2x2 darks for it


# --- 7. too few frames for LN / rejection -------------------------------------------------------

def test_too_few_frames_for_ln_and_rejection(sim: Path) -> None:
    for kind in ("_L_", "_R_"):
        files(sim, "LIGHT", kind)[-1].unlink()
    report = doctor(sim)
    found = report.by_check("too-few-frames")
    assert [f.message.split(":")[0] for f in found] == ["M31/L", "M31/R"]
    assert {f.severity for f in found} == {"warning"}
    assert found[0].paths == rel(sim, files(sim, "LIGHT", "_L_"))
    assert "2 frames — local normalization and auto rejection need at least 3" in found[0].message
    assert "supports no rejection (fewer than 3 frames)" in found[0].message
    assert doctor(sim, local_normalization=False, rejection="none").by_check("too-few-frames") == []


def test_forced_rejection_needs_more_frames(base: Path) -> None:
    found = doctor(base, rejection="winsorized").by_check("too-few-frames")
    assert len(found) == 2
    assert "3 frames are too few for winsorized rejection (it needs at least 6)" in found[0].message
    assert "supports percentile clipping" in found[0].message
    assert doctor(base, rejection="percentile").by_check("too-few-frames") == []


def test_rejection_for_count() -> None:
    assert [rejection_for_count(n) for n in (1, 2, 3, 5, 6, 15, 16)] == [
        "no rejection (fewer than 3 frames)"] * 2 + ["percentile clipping"] * 2 + [
        "winsorized sigma clipping"] * 2 + ["linear fit clipping"]


# --- 8. duplicates, redundant masters, types contradicting folders or pixels -------------------

def test_duplicate_file(sim: Path) -> None:
    src = files(sim, "LIGHT", "_L_")[0]
    copy = src.with_name("copy_" + src.name)
    shutil.copyfile(src, copy)
    f = only(doctor(sim), "duplicates")
    assert f.severity == "warning" and f.paths == rel(sim, [src, copy])
    assert "2 identical files" in f.message and "keep one copy" in f.message


def test_master_beside_raw_frames(sim: Path) -> None:
    darks = files(sim, "DARK")
    master = np.median(np.stack([read_image(p).data for p in darks]), axis=0)
    dest = sim / "library" / "MASTER" / "master_dark_60s.fits"
    rewrite(darks[0], dest, data=master, sample_format="float32", IMAGETYP="Master Dark",
            DATE_OBS="2026-09-01T21:00:00.000", DATE_LOC="2026-09-01T23:00:00.000")
    f = only(doctor(sim), "redundant-master")
    assert f.severity == "warning"
    assert f.paths == ["library/MASTER/master_dark_60s.fits", *rel(sim, darks)]
    assert "master dark master_dark_60s.fits (2026-09-01) is used for 6 lights" in f.message
    assert f"3 raw darks from {DAY} with the same settings are left unused" in f.message


def test_header_type_contradicts_folder(sim: Path) -> None:
    flat = files(sim, "FLAT", "_L_")[0]
    moved = sim / DAY / "DARK" / flat.name
    shutil.move(flat, moved)
    f = only(doctor(sim), "type-conflict")
    assert f.severity == "warning" and f.paths == [moved.relative_to(sim).as_posix()]
    assert "says flat but folder" in f.message and "says dark" in f.message


def test_pixels_contradict_header_type(sim: Path) -> None:
    flat = files(sim, "FLAT", "_L_")[0]
    dest = sim / DAY / "DARK" / ("x" + flat.name)
    rewrite(flat, dest, IMAGETYP="DARK")
    flat.unlink()
    f = only(doctor(sim), "type-conflict")
    assert f.severity == "warning" and f.paths == [dest.relative_to(sim).as_posix()]
    assert "labelled dark but its median is" in f.message and "looks like a flat" in f.message


def test_no_type_conflicts_when_consistent(base: Path) -> None:
    report = doctor(base)
    assert report.by_check("type-conflict") == [] and report.by_check("duplicates") == []
    assert report.by_check("redundant-master") == []


# --- whole presets ------------------------------------------------------------------------------

def test_reduced_night_is_clean(tmp_path: Path) -> None:
    root = simulate(tmp_path / "night", preset="night", seed=3, width=256, height=192,
                    frames=30, bias=5, darks=5, flats=5, dark_flats=5).out_dir
    report = doctor(root)
    assert report.exit_code == 0, [f.to_json() for f in report.findings]
    assert {f.check for f in report.findings} <= {"clipping"}   # notes only (auto pedestal)


def test_messy_reports_exactly_the_planted_problems(tmp_path: Path) -> None:
    sim = simulate(tmp_path / "messy", preset="messy", seed=4, width=256, height=192)
    planted = sim.truth.data["planted_problems"]
    report = doctor(sim.out_dir)
    assert report.exit_code == 2
    where = {"missing_flats": ("links", "error", "no flat for filter OIII"),
             "existing_master": ("redundant-master", "warning", "the existing master dark"),
             "no_matching_dark": ("links", "warning", "no matching 180 s dark"),
             "not_an_image": ("unreadable", "info", "not an image"),
             "empty_file": ("unreadable", "warning", "file is empty"),
             "truncated_file": ("unreadable", "warning", "truncated")}
    assert {p["kind"] for p in planted} == set(where)
    for prob in planted:
        check, sev, words = where[prob["kind"]]
        hits = [f for f in report.by_check(check) if set(prob["paths"]) <= set(f.paths)]
        assert len(hits) == 1, prob
        assert hits[0].severity == sev and words in hits[0].message
    planted_paths = {p for prob in planted for p in prob["paths"]}
    for f in report.findings:
        if f.severity == "error":
            assert set(f.paths) <= planted_paths, f.to_json()
        if f.severity in ("error", "warning"):
            assert set(f.paths) & planted_paths, f.to_json()
    assert {f.check for f in report.by_severity("info")} <= {"clipping", "unreadable"}


# --- the pipeline's call and the CLI ------------------------------------------------------------

def test_diagnose_with_the_pipelines_inventory_and_plan(sim: Path) -> None:
    from skystack.library import scan
    from skystack.linking import link

    ref = files(sim, "DARK")[0]
    inv = scan([sim], use_cache=False)
    plan = link(inv.frames, root=inv.root, rejected=inv.rejected)
    report = diagnose([sim], inventory=inv, plan=plan, reference=str(ref),
                      local_normalization=True, rejection="auto")
    assert [f.check for f in report.findings] == ["ln-reference-type"]
    assert report.findings[0].to_json()["paths"] == [ref.relative_to(sim).as_posix()]


def test_cli_exit_codes_json_and_grouping(sim: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", str(sim), "--no-cache"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "no problems found" in err

    src = files(sim, "LIGHT", "_L_")[0]
    shutil.copyfile(src, src.with_name("copy_" + src.name))
    assert main(["doctor", str(sim), "--no-cache", "--json"]) == 1
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["exit_code"] == 1 and doc["counts"] == {"error": 0, "warning": 1, "info": 0}
    assert [f["check"] for f in doc["findings"]] == ["duplicates"]
    assert err.startswith("WARNINGS (1)\n  ⚠ [duplicates] 2 identical files")

    dark = files(sim, "DARK")[0]
    assert main(["doctor", str(sim), "--no-cache", "--json", "--reference", str(dark)]) == 2
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert [(f["check"], f["severity"]) for f in doc["findings"]] == [
        ("ln-reference-type", "error"), ("duplicates", "warning")]
    assert err.index("ERRORS (1)") < err.index("[ln-reference-type]") < err.index("WARNINGS (1)")
    assert err.rstrip().endswith("1 error(s), 1 warning(s), 0 note(s) — fix the errors before "
                                 "processing")


def test_cli_pedestal_option(faint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", str(faint), "--no-cache", "--pedestal", "none"]) == 1
    assert "[clipping]" in capsys.readouterr().err
    assert main(["doctor", str(faint), "--no-cache", "--pedestal", "auto", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(f["check"], f["severity"]) for f in doc["findings"]] == [("clipping", "info")]
    with pytest.raises(SystemExit) as exc:
        main(["doctor", str(faint), "--pedestal", "lots"])
    assert exc.value.code == 2


def test_missing_path_and_no_lights(tmp_path: Path, sim: Path) -> None:
    missing = tmp_path / "nowhere"
    report = doctor(missing)
    assert [(f.check, f.severity) for f in report.findings] == [("no-lights", "error"),
                                                                ("unreadable", "error")]
    assert report.by_check("unreadable")[0].message == \
        f"{missing}: no such file or folder — check the path."
    calib = doctor(sim / DAY / "DARK")
    assert [(f.check, f.severity) for f in calib.findings] == [("no-lights", "warning")]
    assert calib.findings[0].message.startswith("no light frames among the 3 frames found")


def test_unknown_types_are_one_finding_and_other_disagreements_notes() -> None:
    untyped = "type: neither the header nor the path says what kind of frame this is; ..."
    frames = [{"path": f"/d/f{i}.fits", "warnings": [untyped]} for i in range(3)]
    frames.append({"path": "/d/g.fits", "warnings": ["filter: the header FILTER says L but "
                                                      "path token says R; using L"]})
    found = check_type_conflicts(frames)
    assert [(f.check, f.severity, len(f.paths)) for f in found] == [
        ("metadata", "info", 1), ("type-conflict", "warning", 3)]
    assert found[1].message.startswith("3 frames of unknown type")


def test_real_seestar_session_only_lacks_calibration(realdata: Path) -> None:
    """20 raw Seestar subs (GRBG, no darks or flats): the missing links and nothing else — as
    warnings, since the input holds no darks or flats at all (the run goes on without them)."""
    report = doctor(realdata / "seestar")
    subs = sorted(p.relative_to(realdata / "seestar").as_posix()
                  for p in (realdata / "seestar").rglob("*.fit"))
    assert len(subs) == 20
    assert [(f.check, f.severity) for f in report.findings] == [
        ("links", "warning"), ("links", "warning"), ("unreadable", "info")]
    assert all(f.paths == subs for f in report.findings[:2])
    assert "no darks at all for these 10 s lights" in report.findings[0].message
    assert "no flat for filter IRCUT" in report.findings[1].message
    assert all("processed without" in f.message for f in report.findings[:2])
    assert report.exit_code == 1
