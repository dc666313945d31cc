"""Calibration linking rules, ties, problems, overrides and the JSON schema (version 1)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from skystack.errors import ConfigError
from skystack.linking import LinkConfig, LinkOverride, link
from skystack.metadata import FrameInfo

ROOT = Path("/data/night")
T0 = datetime(2026, 10, 12, 22, 0, 0)
_count = {"n": 0}


def fr(type_: str, n: int = 1, *, master: bool = False, folder: str | None = None,
       **kw) -> list[FrameInfo]:
    """n frames of one type with a common camera set-up (overridable)."""
    base = dict(binning=(1, 1), width=256, height=192, gain=100.0, offset=50.0,
                camera="ZWO ASI2600MM Pro")
    if type_ == "light":
        base.update(exposure=300.0, filter="Ha", temperature=-10.0, session="2026-10-12",
                    object="M31", date_obs=T0)
    elif type_ in ("dark", "dark_flat"):
        base.update(temperature=-10.0, exposure=300.0 if type_ == "dark" else 2.0)
    elif type_ == "flat":
        base.update(exposure=2.0, filter="Ha", session="2026-10-12")
    elif type_ == "bias":
        base.update(exposure=0.0)
    base.update(kw)
    out = []
    for _ in range(n):
        _count["n"] += 1
        name = f"{'master_' if master else ''}{type_}_{_count['n']:05d}.fits"
        out.append(FrameInfo(path=str(ROOT / (folder or type_) / name), type=type_,
                             master=master, **base))
    return out


def only(plan):
    assert len(plan.light_links) == 1
    return plan.light_links[0]


def msgs(ll, link=None, severity=None):
    return [p.message for p in ll.problems
            if (link is None or p.link == link) and (severity is None or p.severity == severity)]


# --- grouping ---------------------------------------------------------------------------------

def test_grouping_bias_darks_flats_and_ids():
    frames = (fr("bias", 3) + fr("bias", 2, gain=0.0)
              + fr("dark", 2, exposure=300.0) + fr("dark", 1, exposure=300.4)  # within 0.5 s
              + fr("dark", 2, exposure=295.0)                               # beyond 1 % of 300
              + fr("dark", 2, exposure=300.0, temperature=-20.0)
              + fr("flat", 3, filter="Ha") + fr("flat", 2, filter="H-alpha")  # alias → one group
              + fr("flat", 2, filter="OIII") + fr("flat", 2, filter="Ha", session="2026-10-13")
              + fr("dark", 1, exposure=300.0, master=True))
    plan = link(frames)
    sizes = {g.id: len(g.frames) for g in plan.groups}
    assert sizes == {
        "bias-g0-o50-bin1x1": 2,
        "bias-g100-o50-bin1x1": 3,
        "dark-300s-g100-o50-m10C-bin1x1-master": 1,
        "dark-295s-g100-o50-m10C-bin1x1": 2,
        "dark-300s-g100-o50-m10C-bin1x1": 3,
        "dark-300s-g100-o50-m20C-bin1x1": 2,
        "flat-Ha-2026-10-12-bin1x1": 5,
        "flat-OIII-2026-10-12-bin1x1": 2,
        "flat-Ha-2026-10-13-bin1x1": 2,
    }
    master = next(g for g in plan.groups if g.master)
    assert master.kind == "dark" and master.frames[0].master


def test_dark_grouping_by_set_point_then_measured_temperature():
    frames = (fr("dark", 2, exposure=60.0, set_temperature=-10.0, temperature=-7.0)
              + fr("dark", 2, exposure=60.0, set_temperature=-10.0, temperature=-10.0)
              + fr("dark", 3, exposure=60.0, temperature=-5.0)
              + fr("dark", 1, exposure=60.0, temperature=-6.5)   # within 2 °C of −5
              + fr("dark", 1, exposure=60.0, temperature=-1.0))
    sizes = sorted(len(g.frames) for g in link(frames).groups)
    assert sizes == [1, 4, 4]


def test_exposure_relative_tolerance():
    cfg = LinkConfig()
    assert cfg.same_exposure(600.0, 605.0)      # 1 % of 605 s = 6.05 s
    assert not cfg.same_exposure(600.0, 607.0)
    assert cfg.same_exposure(10.0, 10.5)        # 0.5 s floor
    assert not cfg.same_exposure(10.0, 10.6)
    assert not cfg.same_exposure(None, 10.0)


# --- dark → light -------------------------------------------------------------------------------

def test_exact_dark_with_reason_and_no_bias():
    frames = fr("light", 4, temperature=-10.0) + fr("dark", 5, temperature=-8.8) + fr("bias", 5)
    ll = only(link(frames))
    assert ll.dark.group.id == "dark-300s-g100-o50-m9C-bin1x1"
    assert ll.dark.scale == 1.0
    assert ll.dark.reason.startswith("exact exposure 300 s, 1.2 °C apart")
    assert "same gain 100" in ll.dark.reason and "same offset 50" in ll.dark.reason
    assert ll.bias is None                     # the master dark already holds the bias
    assert msgs(ll, "dark") == [] and msgs(ll, "bias") == []


def test_dark_temperature_out_of_tolerance_is_an_error():
    frames = fr("light", 2, temperature=-10.0) + fr("dark", 3, temperature=-20.0)
    ll = only(link(frames))
    assert ll.dark is None
    assert msgs(ll, "dark", "error") == [
        "the 300 s dark is at −20 °C, these lights at −10 °C (tolerance 2 °C) — shoot darks "
        "at −10 °C, or raise link.temperature_tolerance"]
    # a wider tolerance accepts it
    ll = only(link(frames, config=LinkConfig(temperature_tolerance=10.0)))
    assert ll.dark is not None and msgs(ll, "dark") == []


def test_unknown_temperature_is_a_warning():
    frames = fr("light", 2) + fr("dark", 2, temperature=None)
    ll = only(link(frames))
    assert ll.dark is not None
    assert [p.severity for p in ll.problems if p.link == "dark"] == ["warning"]
    assert msgs(ll, "dark")[0].startswith("the dark's temperature is unknown")


def test_scaled_dark_needs_bias():
    lights = fr("light", 2, exposure=300.0)
    darks = fr("dark", 3, exposure=120.0) + fr("dark", 3, exposure=30.0)
    ll = only(link(lights + darks + fr("bias", 4)))
    assert ll.dark.group.exposure == 120.0        # nearest exposure
    assert ll.dark.scale == pytest.approx(2.5)
    assert ll.bias is not None and ll.bias.group.kind == "bias"
    assert msgs(ll, "dark", "warning") == [
        "no matching 300 s dark; the nearest 120 s dark is scaled ×2.5, which scales amp glow "
        "and hot pixels imperfectly — shoot 300 s darks"]
    # without a bias the scaling is impossible: an error and no dark
    ll = only(link(lights + darks))
    assert ll.dark is None and ll.bias is None
    assert [p.severity for p in ll.problems if p.link == "dark"] == ["error"]
    assert "needs a matching bias" in msgs(ll, "dark")[0]
    # scaling switched off
    ll = only(link(lights + darks + fr("bias", 2),
                   config=LinkConfig(allow_dark_scaling=False)))
    assert ll.dark is None
    assert msgs(ll, "dark", "error") == [
        "no 300 s dark (nearest 120 s) and dark scaling is off — shoot 300 s darks, or set "
        "link.allow_dark_scaling = true"]


def test_no_dark_uses_bias_and_reports_error():
    ll = only(link(fr("light", 2) + fr("bias", 3)))
    assert ll.dark is None
    assert ll.bias.reason.startswith("bias for lights without a dark")
    assert msgs(ll, "dark", "error")[0].startswith("no darks at all for these 300 s lights")


def test_dark_camera_settings_must_match_unknown_is_compatible():
    ll = only(link(fr("light", 1) + fr("dark", 2, gain=200.0)))
    assert ll.dark is None
    assert "gain 200 vs 100" in msgs(ll, "dark", "error")[0]
    # unknown gain on the dark: compatible, noted in the reason, known-equal preferred
    ll = only(link(fr("light", 1) + fr("dark", 2, gain=None)))
    assert ll.dark is not None and "gain unknown on one side" in ll.dark.reason
    assert msgs(ll, "dark") == []
    frames = fr("light", 1) + fr("dark", 2, gain=None) + fr("dark", 2, gain=100.0,
                                                              folder="known")
    assert only(link(frames)).dark.group.key["gain"] == 100.0
    # binning and size mismatches exclude too
    ll = only(link(fr("light", 1) + fr("dark", 2, binning=(2, 2))))
    assert ll.dark is None and "binning 2x2 vs 1x1" in msgs(ll, "dark")[0]
    ll = only(link(fr("light", 1) + fr("dark", 2, width=512)))
    assert ll.dark is None and "size 512×192 vs 256×192" in msgs(ll, "dark")[0]


def test_dark_ties_temperature_then_date_then_master():
    lights = fr("light", 2, temperature=-10.0)
    near = fr("dark", 2, temperature=-9.0, folder="near")
    far = fr("dark", 2, temperature=-12.0, folder="far")
    assert only(link(lights + far + near)).dark.group.frames[0].path == near[0].path
    # same temperature distance (set-points −9 and −11 around −10): closest date wins
    old = fr("dark", 2, set_temperature=-9.0, date_obs=T0 - timedelta(days=3), folder="old")
    new = fr("dark", 2, set_temperature=-11.0, date_obs=T0 - timedelta(days=1), folder="new")
    lights_sp = fr("light", 2, set_temperature=-10.0, temperature=-10.0)
    assert only(link(lights_sp + old + new)).dark.group.frames[0].path == new[0].path
    old = fr("dark", 2, set_temperature=-9.0, date_obs=T0 + timedelta(hours=2), folder="old")
    assert only(link(lights_sp + old + new)).dark.group.frames[0].path == old[0].path
    # an existing master beats raw frames when equally good (even when the raw are newer)
    m = fr("dark", 1, master=True, temperature=-10.0, date_obs=T0 - timedelta(days=300))
    raw = fr("dark", 5, temperature=-10.0, date_obs=T0)
    ll = only(link(lights + raw + m))
    assert ll.dark.group.master and "existing master" in ll.dark.reason
    assert ll.dark.group.paths() == [m[0].path]


def test_passed_over_exact_dark_is_explained():
    frames = (fr("light", 2, readout_mode="High Gain Mode") + fr("bias", 2)
              + fr("dark", 2, exposure=300.0, readout_mode="Monochrome")
              + fr("dark", 2, exposure=120.0, readout_mode="High Gain Mode", folder="d120"))
    ll = only(link(frames))
    assert ll.dark.group.exposure == 120.0
    assert msgs(ll, "dark", "warning") == [
        "no matching 300 s dark (the 300 s dark dark-300s-g100-o50-m10C-bin1x1 differs in "
        "readout mode Monochrome vs High Gain Mode (dark vs lights)); the nearest 120 s dark is "
        "scaled ×2.5, which scales amp glow and hot pixels imperfectly — shoot 300 s darks"]


def test_exact_exposure_beats_closer_temperature():
    lights = fr("light", 1, exposure=300.0, temperature=-10.0)
    frames = lights + fr("dark", 2, exposure=300.0, temperature=-11.9) \
        + fr("dark", 2, exposure=240.0, temperature=-10.0) + fr("bias", 2)
    ll = only(link(frames))
    assert ll.dark.group.exposure == 300.0 and ll.dark.scale == 1.0


def test_unknown_light_exposure_uses_longest_dark():
    frames = fr("light", 1, exposure=None) + fr("dark", 2, exposure=60.0) \
        + fr("dark", 2, exposure=300.0)
    ll = only(link(frames))
    assert ll.dark.group.exposure == 300.0 and ll.dark.scale == 1.0
    assert msgs(ll, "dark", "warning")[0].startswith("these lights' exposure is unknown")


# --- flat → light -------------------------------------------------------------------------------

def test_flat_alias_case_and_same_session_preferred():
    lights = fr("light", 3, filter="Ha")
    same = fr("flat", 3, filter="h-alpha", session="2026-10-12")
    other = fr("flat", 3, filter="Ha", session="2026-10-11", folder="other")
    ll = only(link(lights + other + same + fr("bias", 2)))
    assert ll.flat.group.paths() == sorted(f.path for f in same)
    assert ll.flat.reason.startswith("filter Ha, same session 2026-10-12")
    assert msgs(ll, "flat") == [] and msgs(ll, "dark_flat") == []


def test_flat_nearest_session_warning_or_strict_error():
    lights = fr("light", 3, filter="OIII", session="2026-10-14")
    f11 = fr("flat", 2, filter="OIII", session="2026-10-11", folder="f11")
    f13 = fr("flat", 2, filter="OIII", session="2026-10-13", folder="f13")
    f20 = fr("flat", 2, filter="OIII", session="2026-10-20", folder="f20")
    frames = lights + f11 + f13 + f20 + fr("bias", 2)
    ll = only(link(frames))
    assert ll.flat.group.key["session"] == "2026-10-13"
    assert msgs(ll, "flat") == [
        "no OIII flats from this session (2026-10-14); the nearest are from 2026-10-13 "
        "(1 night earlier) and dust may have moved since — shoot OIII flats each session"]
    assert ll.status("flat") == "warning"
    ll = only(link(frames, config=LinkConfig(strict_flats=True)))
    assert ll.flat is None and ll.status("flat") == "error"
    assert msgs(ll, "flat")[0].endswith("or turn off link.strict_flats")


def test_no_flat_for_filter():
    ll = only(link(fr("light", 2, filter="B") + fr("flat", 2, filter="R")))
    assert ll.flat is None
    assert msgs(ll, "flat", "error") == [
        "no flat for filter B in any session — shoot B flats, or set flat = none for this group"]


def test_flat_cfa_mismatch():
    ll = only(link(fr("light", 2, bayer="RGGB", filter=None) + fr("flat", 2, filter=None)))
    assert ll.flat is None
    assert msgs(ll, "flat", "error")[0].startswith("lights are CFA (RGGB), the flat is mono")
    ll = only(link(fr("light", 2, filter=None) + fr("flat", 2, filter=None, bayer="RGGB")))
    assert msgs(ll, "flat", "error")[0].startswith("lights are mono, the flat is CFA (RGGB)")
    ll = only(link(fr("light", 2, bayer="RGGB", filter=None)
                   + fr("flat", 2, filter=None, bayer="rggb")))
    assert ll.flat is not None and not msgs(ll, "flat")


def test_flat_binning_mismatch():
    ll = only(link(fr("light", 2) + fr("flat", 2, binning=(2, 2))))
    assert ll.flat is None and "binning 2x2 vs 1x1" in msgs(ll, "flat", "error")[0]


# --- dark-flat → flat ---------------------------------------------------------------------------

def _flat_cal(frames):
    ll = only(link(frames))
    assert ll.flat is not None
    return ll, ll.flat.dark_flat, ll.flat.bias


def test_dark_flat_preference_chain():
    base = fr("light", 2) + fr("flat", 3, exposure=2.0)
    df = fr("dark_flat", 3, exposure=2.2)             # within 0.5 s
    dark2 = fr("dark", 3, exposure=2.0, folder="d2")
    bias = fr("bias", 3)
    dark300 = fr("dark", 3, exposure=300.0)
    ll, d, b = _flat_cal(base + df + dark2 + bias + dark300)
    assert d.group.kind == "dark_flat" and b is None
    ll, d, b = _flat_cal(base + dark2 + bias + dark300)
    assert d.group.kind == "dark" and d.group.exposure == 2.0 and b is None
    assert d.reason.startswith("dark used as dark-flat, same exposure 2 s")
    ll, d, b = _flat_cal(base + bias + dark300)
    assert d is None and b.group.kind == "bias"
    ll, d, b = _flat_cal(base + dark300 + fr("dark", 2, exposure=60.0))
    assert d.group.exposure == 60.0 and ll.status("dark_flat") == "warning"
    assert "the 60 s dark stands in" in msgs(ll, "dark_flat")[0]
    ll, d, b = _flat_cal(fr("light", 2) + fr("flat", 3, exposure=2.0))
    assert d is None and b is None
    assert "integrated uncalibrated" in msgs(ll, "dark_flat", "warning")[0]


def test_dark_flat_gain_must_match_and_master_flat_not_calibrated():
    ll, d, b = _flat_cal(fr("light", 2) + fr("flat", 3) + fr("dark_flat", 3, exposure=2.0,
                                                               gain=0.0) + fr("bias", 2))
    assert d is None and b is not None
    ll, d, b = _flat_cal(fr("light", 2) + fr("flat", 1, master=True, session=None)
                         + fr("dark_flat", 3, exposure=2.0))
    assert ll.flat.group.master and d is None and b is None


# --- existing masters ---------------------------------------------------------------------------

def test_existing_masters_used_as_they_are():
    m_dark = fr("dark", 1, master=True, exposure=300.0)
    m_flat = fr("flat", 1, master=True, filter="Ha", session=None)
    ll = only(link(fr("light", 3) + m_dark + m_flat))
    assert ll.dark.group.paths() == [m_dark[0].path] and ll.dark.group.master
    assert ll.flat.group.paths() == [m_flat[0].path]
    # the flat master has no session: warned (unknown night)
    assert msgs(ll, "flat", "warning") == [
        "no Ha flats from this session (2026-10-12); the Ha flats found have no session date "
        "and may be from another night — shoot Ha flats each session, or set their session "
        "in an overrides file"]
    assert ll.problems[0].link == "flat" and len(ll.problems) == 1


# --- overrides ----------------------------------------------------------------------------------

def test_overrides_switch_off_and_force():
    lights_a = fr("light", 2, folder="Lights/A")
    lights_b = fr("light", 2, folder="Lights/B")
    dark = fr("dark", 3, folder="Darks")
    special = fr("dark", 1, master=True, folder="masters", temperature=-30.0)
    cfg = LinkConfig.from_mapping({"override": [
        {"lights": "Lights/A/*", "flat": "none", "dark": "masters/*.fits"},
        {"lights": "Lights/B/*", "dark": False},
    ]})
    assert cfg.overrides[0] == LinkOverride(lights="Lights/A/*", flat=None,
                                            dark=("masters/*.fits",))
    plan = link(lights_a + lights_b + dark + special + fr("bias", 2), config=cfg, root=ROOT)
    a = plan.links_for(lights_a[0].path)
    b = plan.links_for(lights_b[0].path)
    assert a.group is not b.group
    assert a.dark.manual and a.dark.group.paths() == [special[0].path]   # forced despite −30 °C
    assert a.flat is None and "flat" in a.off and a.problems == []
    assert b.dark is None and "dark" in b.off
    assert b.bias is not None                      # no dark → the bias
    assert not msgs(b, "dark") and b.status("flat") == "error"    # still no flat for B's group
    js = plan.to_json()
    la = next(x for x in js["lights"] if x["path"] == "Lights/A/" + Path(lights_a[0].path).name)
    assert la["flat"] is None and la["dark"]["files"] == ["masters/" + Path(special[0].path).name]
    assert la["dark"]["manual"] is True


def test_override_by_group_id_and_unmatched_pattern():
    lights = fr("light", 2, folder="Lights")
    d1 = fr("dark", 2, exposure=300.0)
    d2 = fr("dark", 2, exposure=120.0)
    forced = LinkOverride(lights="*", dark=("dark-120s-g100-o50-m10C-bin1x1",))
    cfg = LinkConfig(overrides=(forced,))
    ll = only(link(lights + d1 + d2 + fr("bias", 2), config=cfg, root=ROOT))
    assert ll.dark.group.exposure == 120.0 and ll.dark.scale == pytest.approx(2.5)
    assert ll.bias is not None and ll.status("dark") == "warning"
    cfg = LinkConfig(overrides=(LinkOverride(lights="*", flat=("nowhere/*.fits",)),))
    ll = only(link(lights + d1 + fr("flat", 2), config=cfg, root=ROOT))
    assert ll.flat is None
    assert msgs(ll, "flat", "error")[0].startswith(
        "the override flat = ['nowhere/*.fits'] matches no scanned calibration file")


def test_override_dark_flat_and_bias():
    lights = fr("light", 2, folder="Lights")
    frames = (lights + fr("flat", 3) + fr("dark_flat", 2, exposure=2.0)
              + fr("dark_flat", 2, exposure=2.0, gain=0.0, folder="g0")
              + fr("bias", 2) + fr("bias", 2, offset=10.0, folder="o10"))
    cfg = LinkConfig.from_mapping({"override": {
        "lights": "Lights/*", "dark_flat": "darkflat-2s-g0-o50-m10C-bin1x1",
        "bias": ["o10/*.fits"], "dark": "none"}})
    ll = only(link(frames, config=cfg, root=ROOT))
    assert ll.flat.dark_flat.manual and ll.flat.dark_flat.group.key["gain"] == 0.0
    assert ll.bias.manual and ll.bias.group.key["offset"] == 10.0
    assert ll.dark is None and "dark" in ll.off and ll.problems == []


def test_config_from_mapping_validation():
    cfg = LinkConfig.from_mapping({"temperature_tolerance": 3, "strict_flats": True,
                                   "exposure_tolerance": 1.0})
    assert cfg.temperature_tolerance == 3.0 and cfg.strict_flats and cfg.exposure_tolerance == 1.0
    with pytest.raises(ConfigError, match="unknown key"):
        LinkConfig.from_mapping({"temp_tol": 3})
    with pytest.raises(ConfigError, match="true or false"):
        LinkConfig.from_mapping({"strict_flats": "yes"})
    with pytest.raises(ConfigError, match="needs lights"):
        LinkConfig.from_mapping({"override": [{"dark": "x"}]})
    with pytest.raises(ConfigError, match="must be a path"):
        LinkConfig.from_mapping({"override": [{"lights": "*", "dark": 3}]})


# --- JSON ---------------------------------------------------------------------------------------

def _night():
    return (fr("light", 3, folder="Lights/Ha") + fr("light", 2, filter="B", exposure=120.0,
                                                     folder="Lights/B")
            + fr("dark", 3, folder="Darks") + fr("bias", 3, folder="Bias")
            + fr("flat", 3, folder="Flats") + fr("dark_flat", 2, exposure=2.0, folder="DF"))


def test_json_schema_exact():
    frames = _night()
    rejected = [(str(ROOT / "notes.txt"), "not an image (suffix .txt)")]
    plan = link(frames, root=ROOT, rejected=rejected)
    js = json.loads(json.dumps(plan.to_json()))
    assert js["version"] == 1 and js["root"] == str(ROOT)
    assert {"version", "root", "frames", "rejected", "lights"} <= set(js)
    assert len(js["frames"]) == len(frames)
    f0 = js["frames"][0]
    required = {"path": str, "type": str, "master": bool, "exposure": float, "filter": str,
                "binning": str, "width": int, "height": int, "temperature": float,
                "gain": float, "offset": float, "camera": str, "object": str, "session": str}
    for k, t in required.items():
        assert isinstance(f0[k], t), k
    assert "bayer" in f0 and f0["bayer"] is None
    assert f0["path"].startswith("Lights/Ha/") and f0["binning"] == "1x1"
    assert js["rejected"] == [{"path": "notes.txt", "reason": "not an image (suffix .txt)"}]
    assert len(js["lights"]) == 5
    for entry in js["lights"]:
        assert {"path", "bias", "dark", "flat", "problems"} <= set(entry)
        for p in entry["problems"]:
            assert set(p) >= {"link", "severity", "message"}
            assert p["link"] in ("dark", "flat", "bias", "dark_flat")
            assert p["severity"] in ("warning", "error")
    ha = js["lights"][0]
    assert ha["bias"] is None and ha["problems"] == []
    assert isinstance(ha["dark"]["scale"], float) and ha["dark"]["scale"] == 1.0
    assert ha["dark"]["files"] == sorted(p for p in ha["dark"]["files"])
    assert all(p.startswith("Darks/") for p in ha["dark"]["files"])
    assert len(ha["dark"]["files"]) == 3
    assert set(ha["flat"]) >= {"files", "dark_flat", "bias"}
    assert [p.split("/")[0] for p in ha["flat"]["dark_flat"]["files"]] == ["DF", "DF"]
    assert ha["flat"]["bias"] is None
    b = js["lights"][3]
    assert b["flat"] is None and b["dark"]["scale"] == pytest.approx(0.4)
    assert b["bias"]["files"][0].startswith("Bias/")
    assert [(p["link"], p["severity"]) for p in b["problems"]] == [("dark", "warning"),
                                                                  ("flat", "error")]
    # lights keep the input order
    assert [e["path"] for e in js["lights"]] == [f["path"] for f in js["frames"]
                                                 if f["type"] == "light"]


def test_rejected_accepts_objects_and_mappings():
    class Rej:
        def __init__(self, path, reason):
            self.path, self.reason = path, reason

    plan = link([], root=ROOT, rejected=[Rej(str(ROOT / "a.fits"), "empty file"),
                                         {"path": "/elsewhere/b.txt", "reason": "not an image"}])
    assert plan.to_json()["rejected"] == [{"path": "a.fits", "reason": "empty file"},
                                          {"path": "/elsewhere/b.txt", "reason": "not an image"}]
    assert plan.to_json()["lights"] == []


def test_light_groups_split_by_session_filter_exposure_temperature():
    frames = (fr("light", 2) + fr("light", 2, session="2026-10-13")
              + fr("light", 2, filter="OIII") + fr("light", 2, exposure=120.0)
              + fr("light", 2, temperature=-5.0) + fr("light", 2, temperature=-10.4))
    plan = link(frames)
    sizes = sorted(len(ll.group.frames) for ll in plan.light_links)
    assert sizes == [2, 2, 2, 2, 4]
    assert len({ll.group.id for ll in plan.light_links}) == 5


def test_cli_link_with_fake_scanner(tmp_path, monkeypatch, capsys):
    import sys
    import types

    from skystack.cli import main

    frames = _night()

    class Inventory:
        def __init__(self):
            self.frames, self.rejected, self.root = frames, [], ROOT

    fake = types.ModuleType("skystack.library")
    calls = {}

    def scan(paths, *, use_cache=True, **kw):
        calls["args"] = (list(paths), use_cache)
        return Inventory()

    fake.scan = scan
    monkeypatch.setitem(sys.modules, "skystack.library", fake)
    cfg = tmp_path / "sky.toml"
    cfg.write_text('[link]\nstrict_flats = true\n[[link.override]]\nlights = "Lights/B/*"\n'
                   'flat = "none"\n')
    html_out = tmp_path / "links.html"
    rc = main(["link", str(ROOT), "--json", "--no-cache", "--config", str(cfg),
               "--html", str(html_out)])
    assert rc == 0 and calls["args"] == ([str(ROOT)], False)
    out = capsys.readouterr()
    js = json.loads(out.out)
    assert js["version"] == 1 and len(js["lights"]) == 5
    assert [p["link"] for p in js["lights"][3]["problems"]] == ["dark"]   # flat switched off
    assert "✔ dark" in out.err and "filter B" in out.err
    assert html_out.read_text().startswith("<!DOCTYPE html>")
    # a bad config is one clear line and exit 2
    cfg.write_text("[link]\ntemp = 3\n")
    assert main(["link", str(ROOT), "--config", str(cfg)]) == 2
    assert "unknown key(s) temp" in capsys.readouterr().err


# --- the simulator's messy library (when skystack.simulate provides it) ----------------------

def test_messy_preset_planted_problems_are_found(tmp_path, monkeypatch):
    sim_mod = pytest.importorskip("skystack.simulate")
    if not hasattr(sim_mod, "simulate"):
        pytest.skip("skystack.simulate.simulate() has not landed yet")
    from skystack.library import scan

    monkeypatch.setenv("SKYSTACK_CACHE_DIR", str(tmp_path / "cache"))
    sim = sim_mod.simulate(tmp_path / "messy", preset="messy", seed=1)
    # the capture folders only: truth/ holds ground-truth images, not frames
    folders = sorted(p for p in (tmp_path / "messy").iterdir() if p.is_dir() and p.name != "truth")
    inv = scan(folders, use_cache=False)
    plan = link(inv.frames, root=inv.root, rejected=inv.rejected)
    js = plan.to_json()
    by_path = {e["path"]: e for e in js["lights"]}
    rejected = {r["path"] for r in js["rejected"]}
    planted = sim.truth.planted_problems
    assert planted
    for prob in planted:
        kind = prob["kind"].lower()
        paths = [str(Path(p).as_posix()) for p in prob["paths"]]
        rel = [plan.rel(str(tmp_path / "messy" / p)) if not Path(p).is_absolute()
               else plan.rel(p) for p in paths]
        if any(w in kind for w in ("junk", "empty", "truncated", "not_image", "txt")):
            assert set(rel) <= rejected, prob
        elif "master" in kind:
            used = {f for e in js["lights"] if e["dark"] for f in e["dark"]["files"]}
            assert set(rel) & used, prob
        elif "flat" in kind:
            for r in rel:
                if r in by_path:
                    assert by_path[r]["flat"] is None
                    assert any(p["link"] == "flat" and p["severity"] == "error"
                               for p in by_path[r]["problems"]), prob
        elif "dark" in kind:
            for r in rel:
                if r in by_path:
                    e = by_path[r]
                    assert any(p["link"] == "dark" for p in e["problems"]), prob
                    assert e["dark"] is None or e["dark"]["scale"] != 1.0
