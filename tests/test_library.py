"""Scanning folders: walk, junk rejected with reasons, header cache, overrides, JSON, CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from skystack import library
from skystack.cli import main
from skystack.errors import ConfigError
from skystack.io import Image, Keyword, read_header, write_image
from skystack.library import load_overrides, read_header_fast, scan


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYSTACK_CACHE_DIR", str(tmp_path / "cache"))


def write_frame(path: Path, shape: tuple[int, int] = (24, 32), **cards: object) -> Path:
    data = np.full(shape, 0.25, dtype=np.float32)
    kws = [Keyword(k.replace("__", "-"), v) for k, v in cards.items()]
    return write_image(path, Image.from_array(data, keywords=kws), sample_format="uint16")


@pytest.fixture
def night(tmp_path: Path) -> Path:
    """A small capture folder in several dialects, plus junk."""
    root = tmp_path / "M31"
    for i in range(3):
        write_frame(root / "Lights" / f"L_{i:03d}.fits", IMAGETYP="LIGHT", EXPTIME=300.0,
                    FILTER="H-alpha", GAIN=100, OFFSET=50, CCD__TEMP=-10.1, SET__TEMP=-10.0,
                    DATE__OBS=f"2026-10-12T2{i}:00:00", SITELONG=7.25, OBJECT="M 31")
    for i in range(2):
        write_frame(root / "Flats" / f"F_{i:03d}.fits", IMAGETYP="Flat Field", EXPTIME=2.0,
                    FILTER="Ha", DATE__OBS="2026-10-12T18:00:00", SITELONG=7.25)
        write_frame(root / "Darks" / f"D_{i:03d}.fits", IMAGETYP="Dark Frame", EXPTIME=300.0,
                    CCD__TEMP=-10.0)
        write_frame(root / "DarkFlats" / f"DF_{i:03d}.fits", IMAGETYP="Dark Frame",
                    EXPTIME=2.0)
    write_frame(root / "bias" / "Bias_0.0001s_Bin1_gain100_20261012-180000_-10.0C_0001.fit",
                IMAGETYP="Bias")
    (root / "notes.txt").write_text("seeing 2 arcsec\n")
    (root / "Lights" / "empty.fits").write_bytes(b"")
    (root / "Lights" / "garbage.fits").write_bytes(b"this is not a FITS file at all")
    full = write_frame(root / "Lights" / "cut.fits").read_bytes()
    (root / "Lights" / "cut.fits").write_bytes(full[:2880 + 100])
    (root / "Lights" / "cut_header.fits").write_bytes(full[:1000])
    (root / ".hidden.fits").write_bytes(b"ignored")
    (root / ".skystack-cache").mkdir()
    (root / ".skystack-cache" / "x.fits").write_bytes(b"ignored")
    return root


def by_name(inv: library.Inventory) -> dict[str, library.FrameInfo]:
    return {Path(f.path).name: f for f in inv.frames}


def test_scan_finds_frames_and_rejects_junk(night: Path) -> None:
    inv = scan([night])
    assert inv.root == night
    names = [inv.relpath(f.path) for f in inv.frames]
    assert names == sorted(names, key=lambda s: s.split("/"))  # deterministic walk order
    assert len(inv.frames) == 10
    reasons = {inv.relpath(r.path): r.reason for r in inv.rejected}
    assert reasons == {
        "notes.txt": "not an image (suffix .txt)",
        "Lights/empty.fits": "file is empty (0 bytes) — re-copy it from the capture computer",
        "Lights/garbage.fits": reasons["Lights/garbage.fits"],
        "Lights/cut.fits": reasons["Lights/cut.fits"],
        "Lights/cut_header.fits": "truncated: the FITS header ends before its END card — "
                                  "re-copy the file",
    }
    assert reasons["Lights/garbage.fits"].startswith("not a FITS, XISF, TIFF or camera raw")
    assert reasons["Lights/cut.fits"].startswith("truncated: the header promises 4416 bytes "
                                                 "but the file has 2980")
    f = by_name(inv)
    assert (f["L_000.fits"].type, f["L_000.fits"].filter, f["L_000.fits"].exposure) == \
        ("light", "Ha", 300.0)
    assert [f[f"L_00{i}.fits"].session for i in range(3)] == ["2026-10-12"] * 3
    assert (f["F_000.fits"].type, f["D_000.fits"].type, f["DF_000.fits"].type) == \
        ("flat", "dark", "dark_flat")
    b = f["Bias_0.0001s_Bin1_gain100_20261012-180000_-10.0C_0001.fit"]
    assert (b.type, b.gain, b.temperature, b.session) == ("bias", 100, -10.0, "2026-10-12")
    assert f["L_000.fits"].size_bytes == (night / "Lights" / "L_000.fits").stat().st_size


def test_inventory_json(night: Path) -> None:
    doc = scan([night]).to_json()
    assert doc["version"] == 1 and doc["root"] == str(night)
    light = next(x for x in doc["frames"] if x["path"] == "Lights/L_001.fits")
    assert {k: light[k] for k in ("type", "master", "exposure", "filter", "binning", "width",
                                  "height", "temperature", "gain", "offset", "object",
                                  "session", "bayer")} == {
        "type": "light", "master": False, "exposure": 300.0, "filter": "Ha", "binning": None,
        "width": 32, "height": 24, "temperature": -10.1, "gain": 100, "offset": 50,
        "object": "M 31", "session": "2026-10-12", "bayer": None}
    assert {"path": "notes.txt", "reason": "not an image (suffix .txt)"} in doc["rejected"]
    json.dumps(doc)  # serializable as is


def test_cache_hit_reads_no_header(night: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cold = scan([night])
    assert (cold.stats.headers_read, cold.stats.cache_hits) == (14, 0)
    assert (Path(os.environ["SKYSTACK_CACHE_DIR"]) / "headers-v2.sqlite").is_file()

    def boom(path: str) -> None:
        raise AssertionError(f"read {path} despite the cache")

    with monkeypatch.context() as m:
        m.setattr(library, "_parse_fits", boom)
        m.setattr(library, "read_header", boom)
        warm = scan([night])
    assert (warm.stats.headers_read, warm.stats.cache_hits) == (0, 14)
    assert [f.to_json() for f in warm.frames] == [f.to_json() for f in cold.frames]
    assert warm.rejected == cold.rejected

    # a changed file is read again, and only that one
    target = night / "Lights" / "L_002.fits"
    write_frame(target, IMAGETYP="LIGHT", EXPTIME=120.0, FILTER="OIII")
    os.utime(target, ns=(1, 1))
    again = scan([night])
    assert (again.stats.headers_read, again.stats.cache_hits) == (1, 13)
    assert by_name(again)["L_002.fits"].filter == "OIII"
    off = scan([night], use_cache=False)
    assert (off.stats.headers_read, off.stats.cache_hits) == (14, 0)


def test_cached_headers_serve_a_new_context(night: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another longitude or overrides reuse the cached headers but recompute FrameInfo."""
    write_frame(night / "Lights" / "nosite.fits", IMAGETYP="LIGHT",
                DATE__OBS="2026-10-13T03:00:00")
    assert by_name(scan([night]))["nosite.fits"].session == "2026-10-12"  # UTC noon split
    with monkeypatch.context() as m:
        m.setattr(library, "_parse_fits", None)  # any file read would fail loudly
        m.setattr(library, "read_header", None)
        east = scan([night], longitude=150.0)
        (night / "skystack-overrides.toml").write_text(
            '[[override]]\nglob = "Darks/*.fits"\nexposure = 600\n')
        over = scan([night])
    assert east.stats.headers_read == over.stats.headers_read == 0
    assert by_name(over)["D_000.fits"].exposure == 600.0
    assert by_name(east)["nosite.fits"].session == "2026-10-13"  # 13:00 local at 150° E
    assert by_name(east)["F_000.fits"].session == "2026-10-12"  # its own SITELONG wins
    assert by_name(east)["L_000.fits"].sources["session"].startswith("night of DATE-OBS + SITELONG")


def test_unusable_cache_dir_does_not_fail(night: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = night.parent / "not_a_dir"
    blocker.write_text("x")
    monkeypatch.setenv("SKYSTACK_CACHE_DIR", str(blocker / "sub"))
    inv = scan([night])
    assert len(inv.frames) == 10 and inv.stats.cache_error is not None


def test_threads_give_the_same_result(night: Path) -> None:
    one = scan([night], use_cache=False, workers=1)
    four = scan([night], use_cache=False, workers=4)
    assert [f.to_json() for f in one.frames] == [f.to_json() for f in four.frames]


def test_several_paths_and_missing_ones(night: Path) -> None:
    inv = scan([night / "Darks", night / "Flats" / "F_000.fits", night / "nope"])
    assert inv.root is None
    assert sorted(Path(f.path).name for f in inv.frames) == ["D_000.fits", "D_001.fits",
                                                             "F_000.fits"]
    assert [(Path(r.path).name, r.reason) for r in inv.rejected] == \
        [("nope", "no such file or folder")]
    # the scanned folder's own name counts as a path hint
    assert all(f.sources["type"].startswith("header") for f in inv.frames)
    assert inv.to_json()["frames"][0]["path"].startswith("/")


def test_fast_parser_matches_astropy(night: Path) -> None:
    for f in sorted((night / "Lights").glob("L_*.fits")) + sorted(night.glob("bias/*.fit")):
        assert read_header_fast(f) == read_header(f)


@pytest.mark.realdata
def test_fast_parser_matches_astropy_on_real_files(realdata: Path) -> None:
    files = sorted((realdata / "headers" / "msumastro").glob("*.fit"))
    files += sorted((realdata / "seestar" / "M94_session1").glob("*.fit"))[:2]
    files += [realdata / "fits" / "astropy_testdata" / "fixed-1890.fits"]
    for f in files:
        fast = library._parse_fits(str(f))
        assert fast == read_header(f), f.name


# ------------------------------------------------------------------------------------ overrides
def test_overrides_file_auto_and_explicit(night: Path, tmp_path: Path) -> None:
    (night / "skystack-overrides.toml").write_text(
        '[[override]]\nglob = "Flats/**/*.fits"\nfilter = "OIII"\ngain = 120\n\n'
        '[[override]]\nglob = "L_000.fits"\ntype = "flat"\n'
    )
    inv = scan([night])
    f = by_name(inv)
    assert (f["F_000.fits"].filter, f["F_000.fits"].gain) == ("OIII", 120)
    assert f["F_000.fits"].sources["filter"] == "override skystack-overrides.toml"
    assert f["L_000.fits"].type == "flat" and f["L_001.fits"].type == "light"
    assert "skystack-overrides.toml" not in {Path(r.path).name for r in inv.rejected}

    other = tmp_path / "mine.toml"
    other.write_text('prefer = "path"\n[[override]]\nglob = "Darks/*"\nexposure = 600\n')
    inv2 = scan([night], overrides=other)
    g = by_name(inv2)
    assert g["D_000.fits"].exposure == 600.0 and g["F_000.fits"].filter == "Ha"
    assert g["D_000.fits"].sources["exposure"] == "override mine.toml"


@pytest.mark.parametrize(("text", "match"), [
    ("[[override]\n", "not valid TOML"),
    ('[[override]]\ntype = "flat"\n', "needs glob"),
    ('[[override]]\nglob = "*"\ncolour = "red"\n', "unknown field"),
    ('[[override]]\nglob = "*"\nexposure = "long"\n', "a number"),
    ('prefer = "folder"\n', "prefer"),
])
def test_bad_overrides_file(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "o.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_overrides(p)


def test_glob_rules() -> None:
    rx = library._glob_regex("Flats/**/*.fits")
    assert rx.match("Flats/a.fits") and rx.match("Flats/Ha/2026/a.fits")
    assert rx.match("flats/A.FITS")  # case-insensitive
    assert not rx.match("Lights/a.fits") and not rx.match("Flats/a.fit")
    assert library._glob_regex("Darks/*").match("Darks/x.fits")
    assert not library._glob_regex("Darks/*").match("Darks/sub/x.fits")


# ------------------------------------------------------------------------------------------ CLI
def test_cli_scan(night: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(night), "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert len(doc["frames"]) == 10 and len(doc["rejected"]) == 5
    lines = err.splitlines()
    assert lines[0] == f"10 frames, 5 rejected in {night}"
    assert lines[1].split() == ["type", "filter", "exposure", "bin", "session", "temp",
                                "frames"]
    assert lines[2].split() == ["light", "Ha", "300s", "-", "2026-10-12", "-10C", "3"]
    assert "rejected: notes.txt: not an image (suffix .txt)" in lines
    assert main(["scan", str(night / "nothing-here")]) == 1


# ------------------------------------------------------------------------------------ real data
@pytest.mark.realdata
def test_scan_seestar_session(realdata: Path) -> None:
    inv = scan([realdata / "seestar"])
    assert len(inv.frames) == 20
    assert {(f.type, f.exposure, f.filter, f.gain, f.bayer, f.session, f.object)
            for f in inv.frames} == {("light", 10.0, "IRCUT", 80, "GRBG", "2025-03-26", "M 94")}
    assert [(Path(r.path).name, r.reason) for r in inv.rejected] == \
        [("LICENSE", "not an image (no file suffix)")]
    assert all(f.warnings == [] for f in inv.frames)


@pytest.mark.realdata
def test_scan_msumastro(realdata: Path) -> None:
    inv = scan([realdata / "headers" / "msumastro"])
    kinds: dict[str | None, int] = {}
    for f in inv.frames:
        kinds[f.type] = kinds.get(f.type, 0) + 1
    assert kinds == {"light": 10, "flat": 1, "bias": 6, "dark": 5, None: 1}
    assert [r.reason for r in inv.rejected] == ["not an image (suffix .rst)"]


def test_scan_simulated_messy_night(tmp_path: Path) -> None:
    simulate = pytest.importorskip("skystack.simulate")
    if not hasattr(simulate, "simulate"):
        pytest.skip("skystack.simulate has no night writer yet")
    out = tmp_path / "sim"
    simulate.simulate(out, preset="messy")
    truth = json.loads((out / "truth" / "truth.json").read_text())
    inv = scan([out])
    got = {inv.relpath(f.path): f for f in inv.frames}
    assert truth["frames"]
    for t in truth["frames"]:
        f = got[t["path"]]
        if t["type"] == "dark_flat":
            assert f.type in ("dark", "dark_flat"), t["path"]  # ASIAIR/SGP/MaxIm say "Dark"
        else:
            assert f.type == t["type"], t["path"]
        assert f.master == t["master"], t["path"]
        assert f.exposure == pytest.approx(t["exposure"]), t["path"]
        if t["type"] in ("light", "flat") and t["filter"]:
            assert f.filter == t["filter"], t["path"]
        if not t["master"]:
            assert f.session == t["night"], t["path"]
        assert f.temperature == pytest.approx(t["temperature"], abs=0.06), t["path"]
        assert not [w for w in f.warnings if not w.startswith("exposure")], (t["path"],
                                                                             f.warnings)
    planted = {p["paths"][0]: p["kind"] for p in truth["planted_problems"]
               if p["kind"] in ("not_an_image", "empty_file", "truncated_file")}
    rejected = {inv.relpath(r.path): r.reason for r in inv.rejected
                if not r.path.endswith((".csv", ".json"))}
    assert set(rejected) == set(planted)
    for path, kind in planted.items():
        assert rejected[path].startswith({"not_an_image": "not an image (suffix .txt)",
                                          "empty_file": "file is empty (0 bytes)",
                                          "truncated_file": "truncated: "}[kind]), path


def test_folders_with_ignore_marker_are_not_scanned(tmp_path, monkeypatch) -> None:
    import numpy as np

    from skystack.io import Image, write_image
    from skystack.library import IGNORE_MARKER, scan

    monkeypatch.setenv("SKYSTACK_CACHE_DIR", str(tmp_path / "cache"))
    light = Image.from_array(np.full((8, 8), 0.1, np.float32))
    light.set("IMAGETYP", "LIGHT")
    write_image(tmp_path / "night" / "Lights" / "a.fits", light)
    write_image(tmp_path / "night" / "truth" / "sky.fits", light)
    (tmp_path / "night" / "truth" / "notes.txt").write_text("x")
    (tmp_path / "night" / "truth" / IGNORE_MARKER).write_text("")
    inv = scan([tmp_path / "night"])
    assert [inv.relpath(f.path) for f in inv.frames] == ["Lights/a.fits"]
    assert inv.rejected == []
