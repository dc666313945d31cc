"""Frame measurements, weights and selection on synthetic nights with known truth."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from skystack.errors import ConfigError
from skystack.weights import (
    FrameMeasurement,
    WBPPCoefficients,
    compute_weights,
    evaluate_expression,
    measure_frame,
    mrs_noise,
    select_frames,
)

ADU = 65535.0
SHAPE = (224, 256)


def _profile(dx, dy, fwhm, ecc, theta, beta=3.0):
    fa = fwhm / (1.0 - ecc**2) ** 0.25
    fb = fa * math.sqrt(1.0 - ecc**2)
    t = math.radians(theta)
    u = dx * math.cos(t) + dy * math.sin(t)
    v = -dx * math.sin(t) + dy * math.cos(t)
    k = 2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0)
    aa, ab = fa / k, fb / k
    return (beta - 1) / (math.pi * aa * ab) * (1 + (u / aa) ** 2 + (v / ab) ** 2) ** (-beta)


def render(xs, ys, flux, fwhm, ecc=0.0, theta=0.0, os=3):
    """Pixel-integrated Moffat stars (electrons)."""
    h, w = SHAPE
    img = np.zeros(SHAPE)
    rad = int(math.ceil(4 * fwhm)) + 2
    sub = (np.arange(os) + 0.5) / os - 0.5
    for x, y, f in zip(xs, ys, flux, strict=True):
        x0, y0 = int(round(x)), int(round(y))
        ylo, yhi = max(0, y0 - rad), min(h, y0 + rad + 1)
        xlo, xhi = max(0, x0 - rad), min(w, x0 + rad + 1)
        gy = np.arange(ylo, yhi)[:, None, None, None] + sub[None, None, :, None]
        gx = np.arange(xlo, xhi)[None, :, None, None] + sub[None, None, None, :]
        img[ylo:yhi, xlo:xhi] += f * _profile(gx - x, gy - y, fwhm, ecc, theta).mean(axis=(2, 3))
    return img


# one star field for the whole night (as a real sequence: same stars, changing conditions)
_FIELD = np.random.default_rng(2024)
FIELD_X = _FIELD.uniform(8, SHAPE[1] - 8, 90)
FIELD_Y = _FIELD.uniform(8, SHAPE[0] - 8, 90)
FIELD_F = 10 ** _FIELD.uniform(3.3, 5.5, 90)


def night_frame(seed, *, sky=500.0, transparency=1.0, fwhm=3.5, ecc=0.1, theta=20.0,
                read_noise=5.0, trail=None, blob=0.0, shift=(0.0, 0.0)):
    """A frame of the field in electrons → [0, 1] float32; truth SNR of a reference star."""
    rng = np.random.default_rng(seed)
    e = render(FIELD_X + shift[0], FIELD_Y + shift[1], FIELD_F * transparency, fwhm, ecc, theta)
    h, w = SHAPE
    yy, xx = np.mgrid[0:h, 0:w]
    e += sky * (1 + 0.2 * xx / w)
    if trail is not None:  # (peak electrons, angle degrees): a straight streak through the field
        peak, ang = trail
        t = math.radians(ang)
        d = -(xx - w / 2) * math.sin(t) + (yy - h / 2) * math.cos(t)
        e += peak * np.exp(-0.5 * d**2)
    if blob:
        e += blob * np.exp(-0.5 * ((xx - 90) ** 2 + (yy - 120) ** 2) / 25.0**2)
    img = rng.poisson(e) + rng.normal(0, read_noise, SHAPE)
    f_ref = 5000.0 * transparency  # a typical faint star
    true_snr = f_ref / math.sqrt(f_ref + math.pi * fwhm**2 * (sky * 1.1 + read_noise**2))
    return (img / ADU).astype(np.float32), true_snr


# ---------------------------------------------------------------------------------------------


def test_mrs_noise_on_pure_noise_and_on_a_star_field():
    rng = np.random.default_rng(1)
    z = rng.normal(0.2, 0.003, (256, 256)).astype(np.float32)
    assert mrs_noise(z) == pytest.approx(0.003, rel=0.02)
    img, _ = night_frame(3, sky=900.0)
    truth = math.sqrt(900 * 1.1 + 25) / ADU
    assert mrs_noise(img) == pytest.approx(truth, rel=0.04)


def test_mrs_noise_on_tiles_of_a_big_frame_matches_the_whole():
    rng = np.random.default_rng(2)
    z = rng.normal(0.1, 0.002, (700, 900)).astype(np.float32)
    assert mrs_noise(z, max_pixels=200_000) == pytest.approx(mrs_noise(z), rel=0.02)


def test_measure_frame_reports_the_truth():
    img, _ = night_frame(4, fwhm=3.2, ecc=0.0)
    m = measure_frame(img, pixel_scale=1.5, path="a.fits")
    assert m.stars >= 60
    assert m.fwhm == pytest.approx(3.2, rel=0.03)
    assert m.fwhm_arcsec == pytest.approx(1.5 * m.fwhm)
    assert m.eccentricity < 0.1  # round stars read round (shape tensors averaged, not ecc)
    assert m.background * ADU == pytest.approx(550, rel=0.02)
    assert m.noise * ADU == pytest.approx(math.sqrt(550 + 25), rel=0.05)
    assert m.psf_signal_weight > 0 and m.psf_snr > 0 and m.m_star > 0 and m.n_star > 0
    assert not m.trail
    d = m.to_dict()
    assert "catalog" not in d and d["path"] == "a.fits" and json.dumps(d)
    # a measurement rebuilt from JSON (no catalogue) still carries what selection needs
    back = FrameMeasurement(**json.loads(json.dumps(d)), catalog=_empty_catalog())
    assert back.bright_fluxes == m.bright_fluxes and len(back.bright_fluxes) == 50
    assert select_frames([back, m])[0].transparency == pytest.approx(1.0)


def test_weights_rank_frames_by_true_snr():
    rng = np.random.default_rng(7)
    ms, truth = [], []
    for k in range(10):
        img, snr = night_frame(100 + k, sky=rng.uniform(250, 2500),
                               transparency=rng.uniform(0.55, 1.0), fwhm=rng.uniform(2.6, 5.0))
        ms.append(measure_frame(img))
        truth.append(snr)
    w = compute_weights(ms)  # PSF Signal Weight
    assert w.max() == 1.0
    assert spearmanr(w, truth).statistic >= 0.9
    # inverse variance knows only the noise: it ranks by sky level
    noise_w = compute_weights(ms, "noise")
    assert spearmanr(noise_w, [-m.noise for m in ms]).statistic == pytest.approx(1.0)


def _fake(**kw) -> FrameMeasurement:
    base = dict(path=None, width=10, height=10, stars=100, fwhm=3.0, fwhm_arcsec=None,
                eccentricity=0.3, eccentricity_median=0.3, theta=0.0, beta=3.0, background=0.1,
                median=0.1, mad=0.01, noise=0.01, snr=10.0, psf_flux=1.0, psf_mean_flux=1.0,
                m_star=0.01, n_star=0.01, psf_signal_weight=1.0, psf_snr=1.0, trail=False,
                trail_length=0.0, trail_angle=0.0, pixel_scale=None, catalog=None)
    base.update(kw)
    return FrameMeasurement(**base)


def test_wbpp_formula_with_default_coefficients():
    ms = [_fake(fwhm=2.0, eccentricity=0.4, snr=10.0),
          _fake(fwhm=4.0, eccentricity=0.2, snr=30.0),
          _fake(fwhm=3.0, eccentricity=0.3, snr=20.0)]
    # scores: 65 + 5a + 10b + 20c
    s = np.array([65 + 5 * 1 + 10 * 0 + 20 * 0, 65 + 0 + 10 * 1 + 20 * 1,
                  65 + 5 * 0.5 + 10 * 0.5 + 20 * 0.5])
    np.testing.assert_allclose(compute_weights(ms, "wbpp"), s / s.max())
    # a zero range contributes nothing; the star term is off by default
    same = [_fake(stars=10), _fake(stars=500)]
    np.testing.assert_allclose(compute_weights(same, "wbpp"), [1.0, 1.0])
    c = WBPPCoefficients(stars=10.0)
    np.testing.assert_allclose(compute_weights(same, "wbpp", coefficients=c), [65 / 75, 1.0])


def test_expressions_are_evaluated_safely():
    v = {"fwhm": 4.0, "eccentricity": 0.5, "stars": 120}
    assert evaluate_expression("fwhm < 4.5 and ecc < 0.6", {**v, "ecc": 0.5})
    assert not evaluate_expression("fwhm < 4.5 and not stars > 100", v)
    assert evaluate_expression("2 * fwhm - 1 >= 7 or stars / 2 == 1", v)
    assert evaluate_expression("3 < fwhm <= 4", v)
    assert not evaluate_expression("fwhm_arcsec < 2", v)  # unknown value: comparison is false
    for bad in ("__import__('os').system('true')", "fwhm.real", "fwhm if 1 else 2",
                "open('x')", "[fwhm]", "'a' < 'b'", "lambda: 1", "fwhm ** 2 < 3", "foo < 1",
                "fwhm <"):
        with pytest.raises(ConfigError):
            evaluate_expression(bad, v)


def test_selection_flags_bad_frames_in_plain_words():
    cases = {
        "clean0": dict(), "clean1": dict(sky=700.0, fwhm=3.2), "clean2": dict(transparency=0.9),
        "clean3": dict(fwhm=3.9, sky=400.0), "clean4": dict(ecc=0.25, theta=70.0),
        "clean5": dict(transparency=0.85, fwhm=3.0), "nebula": dict(blob=400.0),
        "cloud": dict(transparency=0.35, sky=900.0),
        "trail": dict(trail=(120.0, 28.0)),
        "tracking": dict(ecc=0.75, theta=10.0),
    }
    ms = []
    for k, (name, kw) in enumerate(cases.items()):
        img, _ = night_frame(300 + k, shift=(0.3 * k, -0.2 * k), **kw)
        ms.append(measure_frame(img, path=name))
    sel = select_frames(ms, min_weight=0.05)
    by = {s.path: s for s in sel}
    for name in ("clean0", "clean1", "clean2", "clean3", "clean4", "clean5", "nebula"):
        assert by[name].accepted, (name, by[name].reason)
        assert by[name].flags == []
    assert "cloud" in by["cloud"].flags and "cloud:" in by["cloud"].reason
    assert by["cloud"].transparency == pytest.approx(0.35, abs=0.07)
    assert by["trail"].flags == ["trail"] and "streak" in by["trail"].reason
    assert abs(ms[list(cases).index("trail")].trail_angle - 28.0) < 3
    assert by["tracking"].flags == ["tracking"] and "elongated" in by["tracking"].reason
    assert not any(by[n].accepted for n in ("cloud", "trail", "tracking"))


def test_min_weight_expression_and_few_stars():
    ms = [_fake(path="a", psf_signal_weight=1.0), _fake(path="b", psf_signal_weight=0.04),
          _fake(path="c", psf_signal_weight=0.5, fwhm=5.0), _fake(path="d", stars=3)]
    # _fake frames have no catalogue: no transparency test
    for m in ms:
        m.catalog = _empty_catalog()
    sel = select_frames(ms, expression="fwhm < 4.5")
    assert [s.accepted for s in sel] == [True, False, False, False]
    assert sel[1].flags == ["min_weight"] and "0.040 is below the minimum 0.05" in sel[1].reason
    assert sel[2].flags == ["expression"] and "'fwhm < 4.5'" in sel[2].reason
    assert sel[3].flags == ["few_stars"] and "too few stars: 3" in sel[3].reason
    assert [s.accepted for s in select_frames(ms, min_weight=0.0, auto_flags=False)] == [True] * 4
    with pytest.raises(ConfigError):
        select_frames(ms, expression="fwhm < ")
    with pytest.raises(ConfigError):
        compute_weights(ms, "median")  # type: ignore[arg-type]


def _empty_catalog():
    from skystack.stars import StarCatalog

    return StarCatalog.empty()


def test_measure_command_json_and_bad_files(tmp_path, capsys):
    from skystack.cli import main
    from skystack.io import Image, write_image

    paths = []
    for k, kw in enumerate([dict(), dict(sky=800.0), dict(transparency=0.3)]):
        img, _ = night_frame(500 + k, **kw)
        p = tmp_path / f"light_{k}.fits"
        im = Image.from_array(img)
        im.set("XPIXSZ", 3.76)
        im.set("FOCALLEN", 400.0)
        write_image(p, im)
        paths.append(str(p))
    bad = tmp_path / "notes.fits"
    bad.write_text("not an image")
    rc = main(["measure", *paths, str(bad), "--json", "--select", "fwhm < 6"])
    out, err = capsys.readouterr()
    assert rc == 0
    doc = json.loads(out)
    frames = {f["path"]: f for f in doc["frames"]}
    assert len(frames) == 4 and doc["version"] == 1
    assert frames[paths[0]]["accepted"] and frames[paths[0]]["weight"] == 1.0
    assert frames[paths[0]]["fwhm_arcsec"] == pytest.approx(
        frames[paths[0]]["fwhm"] * 206.264806 * 3.76 / 400.0)
    assert not frames[paths[2]]["accepted"] and "cloud" in frames[paths[2]]["flags"]
    assert not frames[str(bad)]["accepted"] and frames[str(bad)]["flags"] == ["failed"]
    assert "notes.fits" in err and "REJECTED" in err and "2 of 4 frames accepted" in err


def test_frames_from_the_simulator_are_flagged():
    """The simulator's own clouds, satellite and airplane trails and tracking errors."""
    sim = pytest.importorskip("skystack.simulate")
    events = pytest.importorskip("skystack.simulate.events")
    scene = sim.make_scene(512, 384, seed=3)
    rng = np.random.default_rng(1)
    specs = {f"clean{k}": dict(fwhm=rng.uniform(2.6, 4.0), transparency=rng.uniform(0.85, 1.0))
             for k in range(5)}
    specs["cloud"] = dict(fwhm=3.0, transparency=0.4)
    specs["satellite"] = dict(fwhm=3.0, trails=(events.Trail("satellite", 200.0, 150.0, 33.0,
                                                             1.0, 600.0),))
    specs["airplane"] = dict(fwhm=3.0, trails=(events.Trail("airplane", 300.0, 200.0, 120.0,
                                                            1.2, 4000.0),))
    specs["tracking"] = dict(fwhm=3.0, ellipticity=0.35, psf_angle=20.0)
    ms = []
    for k, (name, kw) in enumerate(specs.items()):
        H = np.array([[1.0, 0.0, 0.5 * k], [0.0, 1.0, -0.3 * k], [0.0, 0.0, 1.0]])
        img, _ = sim.render_light(sim.LightSpec(scene=scene, dark=False, H=H, **kw), seed=k)
        ms.append(measure_frame(img, path=name))
    by = {s.path: s for s in select_frames(ms)}
    for k in range(5):
        assert by[f"clean{k}"].accepted, by[f"clean{k}"].reason
        assert ms[k].fwhm == pytest.approx(specs[f"clean{k}"]["fwhm"], rel=0.03)
    assert by["cloud"].flags == ["cloud"]
    assert by["satellite"].flags == ["trail"] and by["airplane"].flags == ["trail"]
    assert by["tracking"].flags == ["tracking"]
    sat = ms[list(specs).index("satellite")]
    assert abs(sat.trail_angle - 33.0) < 2 and sat.stars < 1.1 * ms[0].stars


def test_expressions_use_group_statistics_as_subframe_selector_does():
    # FWHM 2.0, 2.2, 2.4, 3.0 and a frame that could not be measured (its NaN and 0 stars must
    # not enter the group statistics)
    ms = [_fake(path=str(i), fwhm=f, noise=n, catalog=_empty_catalog())
          for i, (f, n) in enumerate([(2.0, 0.010), (2.2, 0.011), (2.4, 0.009), (3.0, 0.012)])]
    ms.append(_fake(path="blank", fwhm=float("nan"), stars=0, catalog=_empty_catalog()))
    sel = select_frames(ms, expression="fwhm <= fwhm_median", auto_flags=False, min_weight=0)
    assert [s.accepted for s in sel] == [True, True, False, False, False]  # median 2.3
    sel = select_frames(ms, expression="fwhm <= 1.15 * fwhm_min", auto_flags=False, min_weight=0)
    assert [s.accepted for s in sel][:4] == [True, True, False, False]  # limit 2.3
    # robust sigma: MAD of (2.0, 2.2, 2.4, 3.0) about 2.3 is 0.2 → 0.29652
    sel = select_frames(ms, expression="fwhm < fwhm_median + 2 * fwhm_sigma", auto_flags=False,
                        min_weight=0)
    assert [s.accepted for s in sel][:4] == [True, True, True, False]  # limit 2.893
    sel = select_frames(ms, expression="noise < noise_max and fwhm > fwhm_min",
                        auto_flags=False, min_weight=0)
    assert [s.accepted for s in sel][:4] == [False, True, True, False]
    assert evaluate_expression("fwhm < fwhm_median", {"fwhm": 2.0}) is False  # unknown: false
    for bad in ("fwhm_mean < 1", "foo_median < 1", "fwhm_median_min < 1"):
        with pytest.raises(ConfigError, match="group statistics"):
            evaluate_expression(bad, {})
