"""The sensor model against the physics it claims: read noise, dark current, photon noise."""

from __future__ import annotations

import numpy as np
import pytest

from skystack.simulate import Camera, read_out, render_bias, render_dark, render_flat, sensor_maps
from skystack.simulate.sensor import COLD, HOT

CAM = Camera(width=256, height=192, amp_glow_e_s=0.0, seed=3)


def _adu(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) * 65535.0


def test_read_noise_from_bias_pairs() -> None:
    b1, _ = render_bias(CAM, seed=1)
    b2, _ = render_bias(CAM, seed=2)
    measured = np.std(_adu(b1) - _adu(b2)) / np.sqrt(2)
    expected = CAM.read_noise_e / CAM.gain_e_per_adu  # 3.6 ADU
    assert measured == pytest.approx(expected, rel=0.02)


def test_bias_mean_matches_truth_map() -> None:
    frames = [_adu(render_bias(CAM, seed=s)[0]) for s in range(8)]
    truth = sensor_maps(CAM).bias
    resid = np.mean(frames, axis=0) - truth
    assert abs(resid.mean()) < 0.05
    # The fixed column pattern is really there: columns differ by ~1.5 ADU RMS.
    assert np.std(truth.mean(axis=0)) == pytest.approx(CAM.bias_column_sigma_adu, rel=0.2)


def _dark_e(exposure: float, temperature: float, seed: int) -> float:
    """Mean dark signal (e⁻) of normal pixels, bias map subtracted."""
    d, _ = render_dark(CAM, exposure=exposure, temperature=temperature, seed=seed)
    maps = sensor_maps(CAM)
    normal = maps.dark_scale == 1.0
    return float(np.mean((_adu(d) - maps.bias)[normal]) * CAM.gain_e_per_adu)


def test_dark_current_doubles_every_6_degrees() -> None:
    cold = _dark_e(600.0, -10.0, 1)
    assert cold == pytest.approx(0.01 * 600, rel=0.03)
    assert _dark_e(600.0, -4.0, 2) / cold == pytest.approx(2.0, rel=0.03)
    assert _dark_e(600.0, 2.0, 3) / cold == pytest.approx(4.0, rel=0.03)


def test_dark_current_is_linear_in_exposure() -> None:
    e300 = _dark_e(300.0, 8.0, 4)
    e900 = _dark_e(900.0, 8.0, 5)
    rate = 0.01 * 2 ** (18 / 6)
    assert e300 == pytest.approx(rate * 300, rel=0.03)
    assert e900 / e300 == pytest.approx(3.0, rel=0.03)


def test_hot_pixels_in_list_are_hot_in_darks() -> None:
    d, _ = render_dark(CAM, exposure=300.0, temperature=0.0, seed=9)
    maps = sensor_maps(CAM)
    signal = _adu(d) - maps.bias
    hot = maps.defects[maps.defects["kind"] == HOT]
    assert len(hot) == round(CAM.hot_fraction * 256 * 192)
    assert np.all(signal[hot["y"], hot["x"]] > 10 * np.median(signal) + 20)
    cold = maps.defects[maps.defects["kind"] == COLD]
    assert np.all(maps.response[cold["y"], cold["x"]] < 0.7)


@pytest.mark.parametrize("level", [30.0, 300.0, 3000.0, 20000.0])
def test_noise_follows_poisson_plus_read_noise(level: float) -> None:
    f1, _ = render_flat(CAM, None, exposure=0.001, level_e=level, temperature=-10.0, seed=1)
    f2, _ = render_flat(CAM, None, exposure=0.001, level_e=level, temperature=-10.0, seed=2)
    maps = sensor_maps(CAM)
    normal = (maps.dark_scale == 1.0) & (maps.response > 0.9)
    var_e = np.var((_adu(f1) - _adu(f2))[normal]) / 2 * CAM.gain_e_per_adu**2
    # Quantization adds 1/12 ADU² per frame.
    expected = level * maps.response[normal].mean() + CAM.read_noise_e**2 + CAM.gain_e_per_adu**2 / 12
    assert var_e == pytest.approx(expected, rel=0.03)


def test_full_well_saturates() -> None:
    rng = np.random.default_rng(0)
    adu = read_out(np.full(CAM.shape, 1e6, np.float32), CAM, rng)
    assert np.all(adu == CAM.saturation_adu)
    assert CAM.saturation_adu <= 65535


def test_adc_bits_scale_values() -> None:
    cam = Camera(width=64, height=48, adc_bits=12, seed=1)
    adu = read_out(np.full(cam.shape, 100.0, np.float32), cam, np.random.default_rng(1))
    assert np.all(adu % 16 == 0)
