"""PSF, star rendering, transforms, sky planes, flats and the Bayer layout, in memory."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import curve_fit

from skystack.simulate import (
    Camera,
    DustMote,
    LightSpec,
    Scene,
    StarField,
    apply_transform,
    dust_attenuation,
    moffat_alpha,
    pointing_matrix,
    render_flat,
    render_light,
    render_stars,
    sensor_maps,
    vignetting,
)


def _moffat(coords, amp, x0, y0, alpha, beta):  # noqa: ANN001, ANN202 — curve_fit signature
    x, y = coords
    return amp * (1 + ((x - x0) ** 2 + (y - y0) ** 2) / alpha**2) ** (-beta)


def _fit_fwhm(img: np.ndarray) -> float:
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    c = (img.shape[1] - 1) / 2
    p, _ = curve_fit(_moffat, (xx.ravel(), yy.ravel()), img.ravel(),
                     p0=(img.max(), c, c, 3.0, 3.0))
    return float(2 * p[3] * np.sqrt(2 ** (1 / p[4]) - 1))


def test_point_sampled_star_has_exact_fwhm_and_flux() -> None:
    img = render_stars((61, 61), [[30.2, 29.7]], [1e5], fwhm=4.0, beta=3.0, oversample=1, floor=0)
    assert _fit_fwhm(img) == pytest.approx(4.0, rel=1e-3)
    # Flux beyond the 30 px stamp of a β = 3 Moffat: (1 + (30/α)²)^(1−β) ≈ 0.01 %.
    assert img.sum() == pytest.approx(1e5, rel=2e-3)


@pytest.mark.parametrize(("fwhm", "rel"), [(5.0, 0.015), (3.0, 0.045)])
def test_pixel_integrated_star_fwhm(fwhm: float, rel: float) -> None:
    # Integrating over the pixel widens the star a little (a box of variance 1/12 px²), so a
    # point-sampled fit reads ~3 % high at FWHM 3 and ~1 % at FWHM 5; the truth is the PSF.
    img = render_stars((61, 61), [[30.0, 30.0]], [1e5], fwhm=fwhm, beta=3.5, oversample=3, floor=0)
    measured = _fit_fwhm(img)
    assert fwhm <= measured <= fwhm * (1 + rel)


def test_ellipticity_and_angle() -> None:
    img = render_stars((81, 81), [[40.0, 40.0]], [1e5], fwhm=6.0, beta=4.0, ellipticity=0.3,
                       angle=30.0, oversample=1, floor=0)
    yy, xx = np.mgrid[:81, :81]
    w = img / img.sum()
    mxx = (w * (xx - 40) ** 2).sum()
    myy = (w * (yy - 40) ** 2).sum()
    mxy = (w * (xx - 40) * (yy - 40)).sum()
    lam = np.linalg.eigvalsh([[mxx, mxy], [mxy, myy]])
    assert np.sqrt(lam[0] / lam[1]) == pytest.approx(0.7, rel=0.02)
    assert np.degrees(0.5 * np.arctan2(2 * mxy, mxx - myy)) == pytest.approx(30.0, abs=0.5)


def test_moffat_alpha_definition() -> None:
    a = moffat_alpha(3.0, 3.5)
    assert (1 + (1.5 / a) ** 2) ** -3.5 == pytest.approx(0.5)


def _scene(stars: list[tuple[float, float, float]], shape=(192, 256)) -> Scene:
    arr = np.asarray(stars, float)
    field = StarField(x=arr[:, 0], y=arr[:, 1], colour=np.zeros(len(arr)), flux_l=arr[:, 2])
    return Scene(shape=shape, stars=field, objects=[])


def test_transform_maps_reference_star_to_frame_centroid() -> None:
    scene = _scene([(60.3, 70.8, 4e4), (200.0, 150.0, 3e4), (140.0, 40.0, 2e4)])
    H = pointing_matrix(scene.shape, (192, 256), rotation_deg=23.0, offset=(6.4, -3.1))
    spec = LightSpec(scene=scene, H=H, exposure=1.0, fwhm=3.0, sky={"L": (0.0, 0.0, 0.0)},
                     dark=False, noise=False,
                     camera=Camera(width=256, height=192, prnu_sigma=0.0, hot_fraction=0,
                                   warm_fraction=0, cold_fraction=0, amp_glow_e_s=0))
    img, truth = render_light(spec, seed=0)
    assert np.allclose(truth.H, H)
    assert truth.rotation_deg == pytest.approx(23.0)
    signal = img.astype(np.float64) * 65535 - sensor_maps(spec.camera).bias
    for (x, y, _), (px, py) in zip([(60.3, 70.8, 0), (200.0, 150.0, 0), (140.0, 40.0, 0)],
                                   apply_transform(H, [[60.3, 70.8], [200.0, 150.0], [140.0, 40.0]])):
        ix, iy = int(round(px)), int(round(py))
        win = signal[iy - 8: iy + 9, ix - 8: ix + 9].clip(0)
        yy, xx = np.mgrid[iy - 8: iy + 9, ix - 8: ix + 9]
        cx, cy = (win * xx).sum() / win.sum(), (win * yy).sum() / win.sum()
        assert cx == pytest.approx(px, abs=0.05)
        assert cy == pytest.approx(py, abs=0.05)


def test_sky_plane_is_the_background_exactly() -> None:
    scene = _scene([(-500.0, -500.0, 1.0)])
    cam = Camera(width=256, height=192, prnu_sigma=0.0, hot_fraction=0, warm_fraction=0,
                 cold_fraction=0, amp_glow_e_s=0)
    coeffs = (2.0, 0.004, -0.003)
    img, truth = render_light(LightSpec(scene=scene, camera=cam, exposure=100.0,
                                        sky={"L": coeffs}, dark=False, noise=False), seed=0)
    e = (img.astype(np.float64) * 65535 - sensor_maps(cam).bias) * cam.gain_e_per_adu / 100.0
    yy, xx = np.mgrid[:192, :256]
    plane = coeffs[0] + coeffs[1] * (xx - 127.5) + coeffs[2] * (yy - 95.5)
    assert np.abs(e - plane).max() < 0.5 * cam.gain_e_per_adu / 100.0 + 1e-3
    assert truth.sky == {"L": list(coeffs)}


def test_flat_frames_average_to_truth_shape() -> None:
    cam = Camera(width=256, height=192, seed=5)
    optics = vignetting(cam.shape, corner_loss=0.3) * dust_attenuation(
        cam.shape, [DustMote(80, 60, 15, 0.1), DustMote(190, 130, 10, 0.06)])
    maps = sensor_maps(cam)
    level = 13500.0
    frames = [render_flat(cam, optics, exposure=1.0, level_e=level, temperature=-10.0, seed=s)[0]
              for s in range(7)]
    master = np.mean([f.astype(np.float64) * 65535 for f in frames], axis=0) - maps.bias
    truth = optics * maps.response
    ratio = (master / np.median(master)) / (truth / np.median(truth))
    normal = maps.dark_scale == 1.0
    # Per-pixel noise of a 7-frame mean at 13 500 e⁻ is 0.33 %.
    assert np.std(ratio[normal]) < 0.005
    assert abs(np.median(ratio) - 1) < 1e-3
    # The dust donut really is in the flat: ~10 % deep at its ring.
    assert master[60, 80 + 11] / master[60, 80 + 40] < 0.95


def test_bayer_sites_follow_cfa_response() -> None:
    cam = Camera(width=64, height=48, bayer="GRBG", prnu_sigma=0.0, hot_fraction=0,
                 warm_fraction=0, cold_fraction=0, amp_glow_e_s=0, seed=1)
    f, _ = render_flat(cam, None, exposure=1.0, level_e=10000.0, temperature=-10.0, seed=1,
                       noise=False)
    e = f.astype(np.float64) * 65535 - sensor_maps(cam).bias
    # GRBG: (0,0) G, (0,1) R, (1,0) B.
    assert e[0::2, 1::2].mean() / e[0::2, 0::2].mean() == pytest.approx(0.85, rel=1e-3)
    assert e[1::2, 0::2].mean() / e[0::2, 0::2].mean() == pytest.approx(0.70, rel=1e-3)
