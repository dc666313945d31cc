"""Metadata in every dialect: frame types, filters, keywords, XISF properties, paths, sessions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from skystack.errors import ConfigError
from skystack.io import Header, Keyword, read_header
from skystack.metadata import (
    frame_info,
    hints_from_path,
    normalize_filter,
    observing_night,
    parse_frame_type,
)


def hdr(path: str = "frame.fits", shape: tuple[int, ...] = (192, 256), props=None,
        **cards) -> Header:
    """A Header with keywords given as NAME=value (``_`` in names stands for ``-``)."""
    kws = [Keyword(k.replace("__", "-"), v) for k, v in cards.items()]
    return Header(path=path, format="fits", shape=shape, sample_format="uint16", keywords=kws,
                  properties=props or {})


# ---------------------------------------------------------------------------------- frame types
@pytest.mark.parametrize(("value", "expected"), [
    # N.I.N.A.
    ("LIGHT", ("light", False)), ("DARK", ("dark", False)), ("FLAT", ("flat", False)),
    ("BIAS", ("bias", False)), ("DARKFLAT", ("dark_flat", False)),
    ("FLATDARK", ("dark_flat", False)),
    # SGP, MaxIm, APT, CCDSoft
    ("Light Frame", ("light", False)), ("Dark Frame", ("dark", False)),
    ("Flat Field", ("flat", False)), ("Flat Frame", ("flat", False)),
    ("Bias Frame", ("bias", False)), ("Tricolor Image", ("light", False)),
    ("Offset", ("bias", False)), ("Zero", ("bias", False)),
    # Ekos / INDI, ASIAIR, Seestar
    ("Light", ("light", False)), ("Dark Flat", ("dark_flat", False)), ("Flat", ("flat", False)),
    # XISF PCL:Image:Type and masters
    ("MasterBias", ("bias", True)), ("MasterDark", ("dark", True)),
    ("MasterFlat", ("flat", True)), ("Master Dark", ("dark", True)),
    ("Master Flat", ("flat", True)), ("master_dark_flat", ("dark_flat", True)),
    ("MasterLight", ("light", True)),
    # IRAF-style and junk
    ("object", ("light", False)), ("Focus", (None, False)), ("", (None, False)),
])
def test_parse_frame_type(value: str, expected: tuple[str | None, bool]) -> None:
    assert parse_frame_type(value) == expected


# -------------------------------------------------------------------------------------- filters
@pytest.mark.parametrize(("name", "expected"), [
    ("Ha", "Ha"), ("H-alpha", "Ha"), ("Halpha", "Ha"), ("H_Alpha", "Ha"), ("H alpha", "Ha"),
    ("HA", "Ha"), ("H\u03b1", "Ha"), ("OIII", "OIII"), ("O3", "OIII"), ("O-III", "OIII"),
    ("Oiii", "OIII"), ("SII", "SII"), ("S2", "SII"), ("S-II", "SII"), ("L", "L"), ("Lum", "L"),
    ("Luminance", "L"), ("lum ", "L"), ("R", "R"), ("Red", "R"), ("red", "R"), ("G", "G"),
    ("Green", "G"), ("B", "B"), ("Blue", "B"), ("IRCUT", "IRCUT"), ("UV/IR Cut", "IRCUT"),
    ("H-alpha 3nm", "Ha 3nm"), ("Ha7nm", "Ha 7nm"), ("OIII_6.5nm", "OIII 6.5nm"),
    ("None", None), ("NoFilter", None), ("Open", None), ("", None), (None, None),
    ("L-eXtreme", "L-eXtreme"), ("  Dual Band ", "Dual Band"),
])
def test_normalize_filter(name: str | None, expected: str | None) -> None:
    assert normalize_filter(name) == expected


# ------------------------------------------------------------------------------------- keywords
def test_nina_keywords() -> None:
    h = hdr(IMAGETYP="LIGHT", EXPOSURE=300.0, EXPTIME=300.0, DATE__LOC="2026-10-12T22:00:00.000",
            DATE__OBS="2026-10-12T20:00:00.000", XBINNING=2, YBINNING=2, GAIN=100, OFFSET=50,
            EGAIN=0.25, XPIXSZ=7.52, INSTRUME="ZWO ASI2600MM Pro", SET__TEMP=-10.0,
            CCD__TEMP=-9.9, READOUTM="High Gain Mode", TELESCOP="Esprit 100ED",
            FOCALLEN=550.0, RA=10.684708, DEC=41.26875, SITELONG=7.25, FILTER="H-alpha",
            OBJECT="M 31", ROWORDER="TOP-DOWN", ROTATOR=123.5, PANEL="2")
    f = frame_info(h, path_hints=False)
    assert (f.type, f.master, f.exposure, f.filter, f.filter_raw) == \
        ("light", False, 300.0, "Ha", "H-alpha")
    assert (f.binning, f.gain, f.offset, f.temperature, f.set_temperature) == \
        ((2, 2), 100, 50, -9.9, -10.0)
    assert (f.readout_mode, f.camera, f.telescope, f.focal_length, f.pixel_size) == \
        ("High Gain Mode", "ZWO ASI2600MM Pro", "Esprit 100ED", 550.0, 7.52)
    assert (f.object, f.panel, f.row_order, f.rotator, f.ra, f.dec) == \
        ("M 31", "2", "TOP-DOWN", 123.5, 10.684708, 41.26875)
    assert f.date_obs == datetime(2026, 10, 12, 20, 0, tzinfo=UTC)
    assert f.session == "2026-10-12"
    assert f.sources["exposure"] == "header EXPTIME"
    assert f.sources["type"] == "header IMAGETYP 'LIGHT'"
    assert f.sources["gain"] == "header GAIN"
    assert f.warnings == []
    assert (f.width, f.height) == (256, 192)


def test_gain_is_never_egain() -> None:
    f = frame_info(hdr(IMAGETYP="Light Frame", EGAIN=1.74), path_hints=False)
    assert f.gain is None
    p = frame_info(hdr(props={"Instrument:Camera:Gain": 0.8}), path_hints=False)
    assert p.gain is None  # XISF Instrument:Camera:Gain is e-/ADU too


def test_maxim_sgp_ccdsoft_keywords() -> None:
    f = frame_info(hdr(IMAGETYP="Flat Field", EXPOSURE=2.5, CCD_TEMP=-15.2, BLKLEVEL=12,
                       CCDXBIN=3, CCDYBIN=3, INSFLNAM="O3", COLORTYP="RGGB",
                       OBJCTRA="00 42 44.3", OBJCTDEC="-41 16 09", SITELONG="-97 12 12"),
                   path_hints=False)
    assert (f.type, f.exposure, f.temperature, f.offset, f.binning, f.filter, f.bayer) == \
        ("flat", 2.5, -15.2, 12, (3, 3), "OIII", "RGGB")
    assert f.ra == pytest.approx((42 / 60 + 44.3 / 3600) * 15)
    assert f.dec == pytest.approx(-(41 + 16 / 60 + 9 / 3600))
    assert f.longitude == pytest.approx(-(97 + 12 / 60 + 12 / 3600))
    assert f.sources["filter"] == "header INSFLNAM 'O3'"
    assert f.sources["temperature"] == "header CCD_TEMP"


def test_binning_keyword_forms() -> None:
    assert frame_info(hdr(BINNING="2x2"), path_hints=False).binning == (2, 2)
    assert frame_info(hdr(BINNING=4), path_hints=False).binning == (4, 4)
    assert frame_info(hdr(XBINNING=1, YBINNING=2), path_hints=False).binning == (1, 2)


def test_ekos_frame_keyword_and_bayer_offsets() -> None:
    f = frame_info(hdr(FRAME="Dark Flat", EXPTIME=1.5, BAYERPAT="GRBG", XBAYROFF=1,
                       YBAYROFF=0), path_hints=False)
    assert (f.type, f.bayer, f.bayer_offset) == ("dark_flat", "GRBG", (1, 0))


def test_master_from_imagetyp() -> None:
    f = frame_info(hdr(IMAGETYP="Master Dark", EXPTIME=300.0), path_hints=False)
    assert (f.type, f.master, f.sources["master"]) == ("dark", True, "header IMAGETYP 'Master Dark'")


def test_xisf_properties_win_over_keywords() -> None:
    props = {
        "PCL:Image:Type": "MasterFlat", "Instrument:ExposureTime": 4.0,
        "Instrument:Filter:Name": "Luminance", "Instrument:Sensor:Temperature": -20.1,
        "Instrument:Sensor:TargetTemperature": -20.0, "Instrument:Camera:Name": "QHY268M",
        "Instrument:Telescope:FocalLength": 0.53, "Instrument:Telescope:Name": "RC8",
        "Instrument:Sensor:XPixelSize": 3.76, "Instrument:Camera:XBinning": 2,
        "Instrument:Camera:YBinning": 2, "Observation:Object:Name": "NGC 7000",
        "Observation:Time:Start": "2026-10-12T21:30:00Z",
        "Observation:Location:Longitude": 7.25, "Observation:Center:RA": 314.7,
        "Observation:Center:Dec": 44.3, "PCL:CFASourcePattern": "RGGB",
    }
    f = frame_info(hdr(props=props, IMAGETYP="Light", EXPTIME=999.0), path_hints=False)
    assert (f.type, f.master, f.exposure, f.filter, f.temperature, f.set_temperature) == \
        ("flat", True, 4.0, "L", -20.1, -20.0)
    assert (f.camera, f.focal_length, f.telescope, f.pixel_size, f.binning) == \
        ("QHY268M", 530.0, "RC8", 3.76, (2, 2))
    assert (f.object, f.ra, f.dec, f.bayer, f.session) == \
        ("NGC 7000", 314.7, 44.3, "RGGB", "2026-10-12")
    assert f.sources["exposure"] == "property Instrument:ExposureTime"
    assert f.sources["type"] == "property PCL:Image:Type 'MasterFlat'"


def test_date_obs_without_time_uses_time_obs() -> None:
    f = frame_info(hdr(DATE__OBS="2012-02-06", TIME__OBS="11:45:25"), path_hints=False)
    assert f.date_obs == datetime(2012, 2, 6, 11, 45, 25, tzinfo=UTC)


def test_no_filter_header_lets_path_speak() -> None:
    f = frame_info(hdr("/d/FILTER_Ha/x.fits", IMAGETYP="LIGHT", FILTER="None"), root="/d")
    assert f.filter == "Ha" and f.sources["filter"] == "path token FILTER_Ha"
    assert f.warnings == []


# ---------------------------------------------------------------------------------------- paths
def test_asiair_file_name() -> None:
    h = hints_from_path("Light_M31_60.0s_Bin2_G_gain100_20261014-220000_-10.0C_0001.fit")
    assert h["type"][0] == "light" and h["exposure"][0] == 60.0
    assert h["binning"][0] == (2, 2) and h["filter"][0] == "G" and h["gain"][0] == 100
    assert h["temperature"][0] == -10.0 and h["object"][0] == "M31"
    assert h["date_loc"][0] == datetime(2026, 10, 14, 22, 0, 0)
    assert h["exposure"][1] == "file name token '60.0s'"


def test_asiair_flat_in_milliseconds_and_dark() -> None:
    h = hints_from_path("Flat_12.5ms_Bin1_Ha_gain100_20261014-180000_-10.0C_0001.fit")
    assert (h["type"][0], h["exposure"][0], h["filter"][0]) == ("flat", 0.0125, "Ha")
    d = hints_from_path("Dark_300.0s_Bin1_gain100_20261014-230000_-10.1C_0007.fit")
    assert (d["type"][0], d["exposure"][0], d["temperature"][0]) == ("dark", 300.0, -10.1)
    assert "filter" not in d and "object" not in d


def test_seestar_file_name() -> None:
    h = hints_from_path("Light_M_94_10.0s_IRCUT_20250326-212232.fit")
    assert (h["type"][0], h["object"][0], h["exposure"][0], h["filter"][0]) == \
        ("light", "M 94", 10.0, "IRCUT")
    f = frame_info(hdr("Light_M_94_10.0s_IRCUT_20250326-212232.fit"))
    assert f.session == "2025-03-26"  # local 21:22 → that evening's night


def test_nina_folder_template() -> None:
    root = "/x/M31"
    h = hints_from_path(
        "/x/M31/2026-10-12/LIGHT/2026-10-13_01-30-00_Ha_-10.00_300.00s_0001.fits", root=root)
    assert h["session"] == ("2026-10-12", "folder '2026-10-12'")
    assert h["type"] == ("light", "folder 'LIGHT'")
    assert (h["filter"][0], h["exposure"][0]) == ("Ha", 300.0)
    assert h["date_loc"][0] == datetime(2026, 10, 13, 1, 30)
    g = hints_from_path("/x/M31/Ha/FLAT/f_0001.fits", root=root)
    assert g["filter"] == ("Ha", "folder 'Ha'") and g["type"] == ("flat", "folder 'FLAT'")


def test_wbpp_key_value_tokens() -> None:
    h = hints_from_path("/p/NIGHT_2026-10-12/FILTER_Ha/EXPTIME_300/PANEL_2/BIN_2/GAIN_100/"
                        "OFFSET_30/a.fits", root="/p")
    assert h["session"] == ("2026-10-12", "path token NIGHT_2026-10-12")
    assert h["filter"] == ("Ha", "path token FILTER_Ha")
    assert h["exposure"] == (300.0, "path token EXPTIME_300")
    assert h["panel"] == ("2", "path token PANEL_2")
    assert h["binning"] == ((2, 2), "path token BIN_2")
    assert h["gain"] == (100, "path token GAIN_100")
    assert h["offset"] == (30, "path token OFFSET_30")
    # tokens inside a file name too, and the deepest wins
    k = hints_from_path("/p/FILTER_R/light_FILTER_G_EXPTIME_30.fits", root="/p")
    assert (k["filter"][0], k["exposure"][0]) == ("G", 30.0)


@pytest.mark.parametrize(("path", "expected"), [
    ("Darks/d1.fits", "dark"), ("FLAT/f1.fits", "flat"), ("bias/b1.fits", "bias"),
    ("DarkFlats/df.fits", "dark_flat"), ("Dark Flats/df.fits", "dark_flat"),
    ("flat_darks/df.fits", "dark_flat"), ("Lights/l.fits", "light"),
    ("Biases/b.fits", "bias"), ("Flats/Ha/f.fits", "flat"), ("M31-Lights/x.fits", "light"),
])
def test_type_words_in_folders(path: str, expected: str) -> None:
    got = hints_from_path("/root/" + path, root="/root")
    assert got["type"][0] == expected


def test_type_words_not_glued() -> None:
    assert "type" not in hints_from_path("/r/flattest.fits", root="/r")
    assert "type" not in hints_from_path("/r/darktest1.fits", root="/r")


def test_path_above_root_is_ignored() -> None:
    h = hints_from_path("/home/darks/project/Lights/x.fits", root="/home/darks/project")
    assert h["type"] == ("light", "folder 'Lights'")
    assert "type" not in hints_from_path("/home/darks/project/x.fits",
                                         root="/home/darks/project")


def test_master_in_path() -> None:
    f = frame_info(hdr("/lib/Masters/dark_300s.xisf", IMAGETYP="Dark", EXPTIME=300.0),
                   root="/lib")
    assert (f.type, f.master, f.sources["master"]) == ("dark", True, "folder 'Masters'")
    g = frame_info(hdr("/lib/MasterFlat_Ha.xisf"), root="/lib")
    assert (g.type, g.master) == ("flat", True)
    light = frame_info(hdr("/lib/masters_of_m31/Lights/l.fits", IMAGETYP="LIGHT"), root="/lib")
    assert light.master is False  # never for lights


# ------------------------------------------------------------------------------------ conflicts
def test_header_wins_and_conflict_becomes_a_warning() -> None:
    f = frame_info(hdr("/d/flats/x.fits", IMAGETYP="Light Frame", EXPTIME=60.0), root="/d")
    assert f.type == "light"
    assert f.sources["type"] == "header IMAGETYP 'Light Frame'"
    assert len(f.warnings) == 1
    w = f.warnings[0]
    assert "Light Frame" in w and "light" in w and "folder 'flats'" in w and "flat" in w


def test_numeric_conflicts_and_agreement() -> None:
    name = "/d/Light_M31_60.0s_Bin1_L_gain100_20261014-220000_-10.0C_0001.fit"
    agree = frame_info(hdr(name, IMAGETYP="Light", EXPTIME=60.0, GAIN=100, CCD__TEMP=-10.3,
                           FILTER="Lum"), root="/d")
    assert agree.warnings == []
    clash = frame_info(hdr(name, IMAGETYP="Light", EXPTIME=120.0, GAIN=200, FILTER="Ha"),
                       root="/d")
    text = " | ".join(clash.warnings)
    assert "exposure: the header EXPTIME says 120 but file name token '60.0s' says 60" in text
    assert "gain: the header GAIN says 200 but file name token 'gain100' says 100" in text
    assert "filter:" in text and "'Ha'" in text and "'L'" in text
    assert (clash.exposure, clash.gain, clash.filter) == (120.0, 200, "Ha")


def test_dark_in_darkflats_folder_is_a_dark_flat() -> None:
    f = frame_info(hdr("/d/DarkFlats/x.fits", IMAGETYP="Dark Frame", EXPTIME=2.0), root="/d")
    assert f.type == "dark_flat" and f.warnings == []
    assert f.sources["type"] == "header IMAGETYP 'Dark Frame' + folder 'DarkFlats'"


def test_prefer_path() -> None:
    f = frame_info(hdr("/d/flats/x.fits", IMAGETYP="Light Frame"), root="/d", prefer_path=True)
    assert f.type == "flat" and f.sources["type"] == "folder 'flats'"
    assert "as configured" in f.warnings[0]


def test_unknown_type_everywhere_is_reported() -> None:
    f = frame_info(hdr("/d/x.fits", IMAGETYP="Focus"), root="/d")
    assert f.type is None
    assert any("IMAGETYP 'Focus'" in w for w in f.warnings)
    assert any("neither the header nor the path" in w for w in f.warnings)


# ------------------------------------------------------------------------------------ overrides
def test_overrides_are_applied_last() -> None:
    f = frame_info(hdr("/d/Lights/x.fits", IMAGETYP="LIGHT", FILTER="R", EXPTIME=60.0),
                   root="/d", overrides={"type": "flat", "filter": "H-alpha", "binning": "2x2",
                                         "gain": 120, "session": "2026-10-01"},
                   override_source="override skystack-overrides.toml")
    assert (f.type, f.filter, f.filter_raw, f.binning, f.gain, f.session) == \
        ("flat", "Ha", "H-alpha", (2, 2), 120, "2026-10-01")
    for k in ("type", "filter", "binning", "gain", "session"):
        assert f.sources[k] == "override skystack-overrides.toml"


def test_override_longitude_changes_the_night() -> None:
    h = hdr(DATE__OBS="2026-10-13T03:00:00")  # 03:00 UTC
    assert frame_info(h, path_hints=False).session == "2026-10-12"
    east = frame_info(h, path_hints=False, overrides={"longitude": 150.0})  # 13:00 local
    assert east.session == "2026-10-13"


def test_bad_overrides_raise() -> None:
    with pytest.raises(ConfigError, match="unknown field"):
        frame_info(hdr(), overrides={"colour": "red"})
    with pytest.raises(ConfigError, match="frame type"):
        frame_info(hdr(), overrides={"type": "sky"})
    with pytest.raises(ConfigError, match="a number"):
        frame_info(hdr(), overrides={"exposure": "long"})


# ------------------------------------------------------------------------------------- sessions
@pytest.mark.parametrize(("utc", "lon", "night"), [
    ("2026-10-13T10:00:00", -120.0, "2026-10-12"),  # 02:00 local
    ("2026-10-13T19:59:00", -120.0, "2026-10-12"),  # 11:59 local
    ("2026-10-13T20:01:00", -120.0, "2026-10-13"),  # 12:01 local
    ("2026-10-13T01:00:00", 150.0, "2026-10-12"),   # 11:00 local
    ("2026-10-13T03:00:00", 150.0, "2026-10-13"),   # 13:00 local
    ("2026-10-12T23:30:00", 7.25, "2026-10-12"),    # 00:59 local next day
    ("2026-10-13T11:00:00", 7.25, "2026-10-12"),    # 11:29 local: still that night
    ("2026-10-13T11:40:00", 7.25, "2026-10-13"),    # 12:09 local: the next evening's night
])
def test_session_split_at_local_noon_with_sitelong(utc: str, lon: float, night: str) -> None:
    f = frame_info(hdr(DATE__OBS=utc, SITELONG=lon), path_hints=False)
    assert f.session == night
    assert f.sources["session"] == "night of DATE-OBS + SITELONG, split at local noon"


def test_session_fallbacks() -> None:
    utc = "2026-10-13T03:00:00"
    cfg = frame_info(hdr(DATE__OBS=utc), path_hints=False, longitude=150.0)
    assert cfg.session == "2026-10-13"
    assert cfg.sources["session"] == \
        "night of DATE-OBS + configured longitude, split at local noon"
    # SITELONG in the file beats the configured longitude
    assert frame_info(hdr(DATE__OBS=utc, SITELONG=-120.0), path_hints=False,
                      longitude=150.0).session == "2026-10-12"
    loc = frame_info(hdr(DATE__OBS=utc, DATE__LOC="2026-10-13T13:00:00"), path_hints=False)
    assert loc.session == "2026-10-13"
    plain = frame_info(hdr(DATE__OBS=utc), path_hints=False)
    assert plain.session == "2026-10-12"
    assert "no site longitude" in plain.sources["session"]
    assert observing_night(None) is None


def test_explicit_night_folder_wins_with_warning() -> None:
    f = frame_info(hdr("/d/NIGHT_2026-10-11/x.fits", DATE__OBS="2026-10-12T22:00:00",
                       SITELONG=0.0), root="/d")
    assert f.session == "2026-10-11"
    assert f.sources["session"] == "path token NIGHT_2026-10-11"
    assert any("2026-10-12" in w and "2026-10-11" in w for w in f.warnings)


# ------------------------------------------------------------------------------------ real data
MSU = "headers/msumastro"


@pytest.mark.realdata
@pytest.mark.parametrize(("name", "expected"), [
    ("biastest1.fit", ("bias", 0.0, None, -35.0279865, -35.0, "2012-02-05")),
    ("darktest3.fit", ("dark", 30.0, None, -35.15616, -35.0, "2012-02-05")),
    ("flattest.fit", ("bias", 0.0, None, -35.0279865, -35.0, "2012-02-05")),  # says BIAS
    ("aspen_trimmed.fit", ("flat", 1.0, "R", -7.9147035, -40.0, "2017-04-11")),
    ("maximdl_5_23_header.fit", ("light", 90.0, "B", -40.007286, -40.0, "2013-10-15")),
    ("maximdl_6_18_header.fit", ("light", 90.0, "R", -19.9847835, -20.0, "2018-08-22")),
    ("uint16_missing_filter.fit", ("light", 90.0, None, -19.90656525, -19.9, "2012-06-04")),
    ("celestron_nightscape_10100_astro_fx_v106.fit",
     ("light", 60.0, None, -5.94, -6.0, "2016-06-28")),
    ("neon-on-dome-10-sec-high-res-though-scope.fit",
     (None, 10.0, None, 4.4558916, None, "2013-01-27")),
])
def test_msumastro_headers(realdata: Path, name: str, expected: tuple) -> None:
    path = realdata / MSU / name
    f = frame_info(read_header(path), root=path.parent)
    typ, exposure, filt, temp, setp, session = expected
    assert (f.type, f.exposure, f.filter, f.session) == (typ, exposure, filt, session)
    assert f.temperature == pytest.approx(temp, abs=1e-6)
    if setp is None:
        assert f.set_temperature is None
    else:
        assert f.set_temperature == pytest.approx(setp, abs=1e-6)
    assert f.gain is None  # MaxIm/CCDOPS write EGAIN only


@pytest.mark.realdata
def test_msumastro_details(realdata: Path) -> None:
    f = frame_info(read_header(realdata / MSU / "maximdl_6_18_header.fit"))
    # RA is written as an hms string here; it must become degrees
    assert f.ra == pytest.approx((20 + 57 / 60 + 4.40 / 3600) * 15)
    assert f.dec == pytest.approx(31 + 39 / 60 + 39.6 / 3600)
    assert (f.camera, f.object, f.focal_length, f.readout_mode) == \
        ("AspenCG16", "kelt-16-b", 3292.9, None)  # MaxIm colour setting, not a mode
    assert f.longitude == pytest.approx(-(96 + 27 / 60 + 12 / 3600))
    c = frame_info(read_header(realdata / MSU / "celestron_nightscape_10100_astro_fx_v106.fit"))
    assert (c.object, c.camera, c.readout_mode, c.bayer) == \
        ("Mette", "Celestron Nightscape 10100", None, None)  # COLORTYP=2 is no pattern
    a = frame_info(read_header(realdata / MSU / "aspen_trimmed.fit"))
    assert a.focal_length is None  # FOCALLEN = 0 means unknown


@pytest.mark.realdata
def test_seestar_headers(realdata: Path) -> None:
    folder = realdata / "seestar" / "M94_session1"
    path = folder / "Light_M_94_10.0s_IRCUT_20250326-212046.fit"
    f = frame_info(read_header(path), root=folder)
    assert (f.type, f.exposure, f.filter, f.gain, f.bayer, f.binning) == \
        ("light", 10.0, "IRCUT", 80, "GRBG", (1, 1))
    assert (f.temperature, f.camera, f.object, f.focal_length) == \
        (25.125, "Seestar S50", "M 94", 250.0)
    assert (f.width, f.height, f.session) == (1080, 1920, "2025-03-26")
    assert f.date_obs == datetime(2025, 3, 27, 1, 20, 32, 955368, tzinfo=UTC)
    assert f.ra == pytest.approx(193.04166) and f.dec == pytest.approx(40.970556)
    assert f.warnings == []  # file name and header agree


# ---------------------------------------------------------------------- the simulator's dialects
def test_simulator_dialects() -> None:
    dialects = pytest.importorskip("skystack.simulate.dialects")
    kinds = [("light", 300.0, "Ha"), ("flat", 2.0, "OIII"), ("dark", 300.0, None),
             ("bias", 0.0, None), ("dark_flat", 2.0, None)]
    checked = 0
    for name in dialects.DIALECTS:
        for kind, exposure, filt in kinds:
            for master in (False, True):
                if master and kind == "light":
                    continue
                spec = dialects.FrameSpec(type=kind, exposure=exposure, filter=filt,
                                          object="M 31" if kind == "light" else None,
                                          master=master)
                rel = dialects.path_for(name, spec)
                h = Header(path="/cap/" + rel, format="fits", shape=(192, 256),
                           sample_format="uint16", keywords=dialects.header_for(name, spec))
                f = frame_info(h, root="/cap")
                where = f"{name} {kind} master={master}: {rel}"
                if kind == "dark_flat":
                    assert f.type in ("dark", "dark_flat"), where
                else:
                    assert f.type == kind, where
                assert f.master == master, where
                assert f.exposure == pytest.approx(exposure), where
                if filt is not None and kind in ("light", "flat"):
                    assert f.filter == normalize_filter(filt), where
                assert f.temperature == pytest.approx(spec.temperature, abs=0.05), where
                assert f.binning == (1, 1), where
                if not master:
                    assert f.session == spec.night, where
                assert not [w for w in f.warnings if not w.startswith("exposure")], \
                    (where, f.warnings)
                checked += 1
    assert checked == len(dialects.DIALECTS) * 9


def test_maxim_colour_setting_is_not_a_readout_mode() -> None:
    from skystack.io import Header, Keyword
    from skystack.metadata import frame_info

    for value, expected in (("Monochrome", None), ("Raw", None), ("High Gain Mode", "High Gain Mode")):
        h = Header(path="/x/a.fits", format="fits", shape=(4, 4), sample_format="uint16",
                   keywords=[Keyword("IMAGETYP", "Dark Frame"), Keyword("READOUTM", value)])
        assert frame_info(h).readout_mode == expected
