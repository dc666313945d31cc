"""Global and local normalization against a synthetic truth with gradients and transparency."""

from __future__ import annotations

import numpy as np
import pytest

from skystack import normalize as _ln
from skystack.normalize import (
    LNConfig,
    LNError,
    LNReferenceError,
    build_reference,
    check_coverage,
    check_reference_type,
    compute_local_normalization,
    find_bright_stars,
    global_normalization,
    reference_frame_count,
    validate_reference,
)

H, W = 384, 512
SKY = 0.05


def truth_sky(seed: int = 0) -> np.ndarray:
    """Stars (Gaussian, sigma 1.3 px) and a galaxy on a zero background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.zeros((H, W), np.float32)
    n = 250
    xs, ys = rng.uniform(10, W - 10, n), rng.uniform(10, H - 10, n)
    fluxes = 0.06 * rng.pareto(1.3, n) + 0.02  # power-law counts: many faint, a few bright
    fluxes = np.minimum(fluxes, 5.0)  # peak < 0.85 even at 130 % transparency
    s = 1.3
    for x, y, f in zip(xs, ys, fluxes, strict=True):
        x0, y0 = int(x), int(y)
        sl = (slice(max(0, y0 - 8), y0 + 9), slice(max(0, x0 - 8), x0 + 9))
        img[sl] += f / (2 * np.pi * s * s) * np.exp(-((xx[sl] - x) ** 2 + (yy[sl] - y) ** 2) / (2 * s * s))
    r = np.hypot((xx - 300) / 60, (yy - 180) / 35)
    img += 0.03 * np.exp(-r**1.2)
    return img


def gradient(angle: float, amp: float, quad: float = 0.0) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    u = ((xx - W / 2) * np.cos(angle) + (yy - H / 2) * np.sin(angle)) / (W / 2)
    return (amp * u + quad * u**2).astype(np.float32)


def frame(sky: np.ndarray, t: float, bg: np.ndarray, rng, noise: float = 5e-4) -> np.ndarray:
    img = t * sky + SKY * (1 + bg)
    return (img + rng.normal(0, noise, img.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def sky() -> np.ndarray:
    return truth_sky()


def test_global_normalization_matches_location_and_scale() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(0.1, 0.01, (200, 200)).astype(np.float32)
    f = (ref - 0.1) * 0.5 + 0.3
    g = global_normalization(f, ref)
    out = g.apply(f)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    z = f.copy()
    z[:10] = 0
    assert np.all(g.apply(z)[:10] == 0)  # no data stays no data


@pytest.mark.parametrize(("t", "angle", "amp", "quad"), [
    (0.7, 0.3, 0.05, 0.02), (1.3, 2.5, -0.05, 0.03), (1.0, 4.0, 0.04, -0.05), (0.85, 1.2, 0.0, 0.0),
])
def test_ln_background_and_scale_accuracy(sky, t, angle, amp, quad) -> None:
    rng = np.random.default_rng(int(t * 100))
    ref_bg = np.zeros((H, W), np.float32)
    reference = frame(sky, 1.0, ref_bg, rng, noise=2e-4)
    bg = gradient(angle, amp, quad)
    target = frame(sky, t, bg, rng)
    ln = compute_local_normalization(target, reference)
    assert ln.method == "stars"
    assert abs(ln.a1 * t - 1) <= 0.005  # photometric scale error ≤ 0.5 %
    # background of the normalized frame vs the reference's, on the noiseless backgrounds
    a0 = ln.a0()
    err = a0 + ln.a1 * SKY * (1 + bg) - SKY * (1 + ref_bg)
    rms = float(np.sqrt(np.mean(err**2)))
    assert rms <= 0.002 * SKY


def test_ln_apply_by_bands_equals_whole_and_keeps_zeros(sky) -> None:
    rng = np.random.default_rng(3)
    reference = frame(sky, 1.0, np.zeros((H, W), np.float32), rng)
    target = frame(sky, 0.8, gradient(1.0, 0.05), rng)
    target[:, :40] = 0  # registration border
    ln = compute_local_normalization(target, reference)
    whole = ln.apply(target)
    bands = np.concatenate([ln.apply(target[r : r + 50], r) for r in range(0, H, 50)])
    np.testing.assert_allclose(bands, whole, atol=1e-6)
    assert np.all(whole[:, :40] == 0)


def test_ln_falls_back_to_pixel_ratios_without_stars() -> None:
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    neb = 0.05 * np.exp(-(((xx - 250) / 90) ** 2 + ((yy - 200) / 70) ** 2))
    reference = (neb + SKY + rng.normal(0, 2e-4, (H, W))).astype(np.float32)
    target = (0.8 * neb + SKY * (1 + gradient(0.5, 0.03)) + rng.normal(0, 2e-4, (H, W))).astype(np.float32)
    ln = compute_local_normalization(target, reference, config=LNConfig(min_stars=10))
    assert ln.method == "pixels"
    assert ln.a1 * 0.8 == pytest.approx(1.0, abs=0.03)


def test_ln_stack_flatter_than_global(sky) -> None:
    """Frames whose gradients change direction (moon, light pollution): an LN stack against a
    reference of the best, flattest frames has a flatter background than a globally normalized one."""
    rng = np.random.default_rng(11)
    n = 9
    ts = rng.uniform(0.75, 1.25, n)
    amps = np.r_[[0.005, 0.01, 0.005], rng.uniform(0.04, 0.05, n - 3)]  # three nearly flat frames
    frames = [frame(sky, t, gradient(0.4 * k + (2.9 if k % 2 else 0), a), rng)
              for k, (t, a) in enumerate(zip(ts, amps, strict=True))]
    weights = np.r_[[3.0, 2.9, 2.8], np.ones(n - 3)]
    ref = build_reference(frames, weights, n=3)
    assert sorted(ref.frames) == [0, 1, 2]
    ln_stack = np.mean([compute_local_normalization(f, ref.data).apply(f) for f in frames], axis=0)
    gl_stack = np.mean([global_normalization(f, ref.data).apply(f) for f in frames], axis=0)

    def flatness(stack: np.ndarray) -> float:
        # background residual after removing the (scaled) truth sky, smoothed to kill noise
        from scipy import ndimage

        # fit scale and constant level to the truth; what is left is the background's shape
        a = np.column_stack([sky.ravel(), np.ones(sky.size)])
        (k, c), *_ = np.linalg.lstsq(a, stack.ravel().astype(np.float64), rcond=None)
        resid = ndimage.uniform_filter(stack - k * sky - c, 31)[32:-32, 32:-32]
        return float(resid.std())

    assert flatness(ln_stack) < 0.5 * flatness(gl_stack)


def test_reference_count_rule() -> None:
    assert reference_frame_count(2) == 2
    assert reference_frame_count(5) == 3
    assert reference_frame_count(30) == 10
    assert reference_frame_count(200) == 20


def test_dark_as_reference_is_refused() -> None:
    with pytest.raises(LNReferenceError, match="division by near-zero"):
        check_reference_type("dark", path="master_dark.xisf")
    for t in ("bias", "flat", "dark_flat"):
        with pytest.raises(LNReferenceError):
            check_reference_type(t)
    check_reference_type("light")


def test_reference_with_dead_pixels_and_bad_column_is_repaired(sky) -> None:
    rng = np.random.default_rng(5)
    ref = frame(sky, 1.0, np.zeros((H, W), np.float32), rng)
    ref[:, :30] = 0  # registration border: not a defect
    bad = ref.copy()
    bad[:, 200] = 0  # a bad column running edge to edge
    bad[100, 100] = 0
    bad[101, 300] = np.nan
    fixed, n, notes = validate_reference(bad)
    assert n == H + 2
    assert np.all(np.isfinite(fixed))
    assert np.all(fixed[:, 30:] != 0)
    assert np.all(fixed[:, :30] == 0)
    assert np.abs(fixed[:, 200] - ref[:, 200]).mean() < 3e-3  # filled with the local background
    with pytest.raises(LNReferenceError, match="dead pixels or bad columns"):
        validate_reference(bad, fill=False)
    # and LN against the repaired reference yields finite functions
    target = frame(sky, 0.9, gradient(0.2, 0.04), rng)
    ln = compute_local_normalization(target, fixed)
    assert np.all(np.isfinite(ln.a0_grid))


def test_other_panel_reference_is_refused(sky) -> None:
    rng = np.random.default_rng(6)
    panel_a = frame(sky, 1.0, np.zeros((H, W), np.float32), rng)
    panel_a[:, W // 2 + 40 :] = 0
    panel_b = frame(sky, 1.0, np.zeros((H, W), np.float32), rng)
    panel_b[:, : W // 2 - 40] = 0
    with pytest.raises(LNReferenceError, match="another mosaic panel"):
        check_coverage(panel_b, panel_a, path="panel B light")
    assert check_coverage(panel_a, panel_a) == 1.0


def test_ln_needs_overlap() -> None:
    a = np.zeros((100, 100), np.float32)
    a[:, :50] = 0.1
    b = np.zeros((100, 100), np.float32)
    b[:, 60:] = 0.1
    with pytest.raises(LNError):
        compute_local_normalization(a, b)


# --- kernels against their NumPy references ------------------------------------------------------


def _cells_ref(diff: np.ndarray, valid: np.ndarray, cell: int, step: int, k: float):
    """Per-cell reference of the numba statistics: the NumPy _cell_stats on each cell's sample."""
    ny, nx = _ln._cell_grid(diff.shape, cell)
    med = np.full((ny, nx), np.nan)
    for i in range(ny):
        for j in range(nx):
            sl = (slice(i * cell, (i + 1) * cell, step), slice(j * cell, (j + 1) * cell, step))
            d, v = diff[sl], valid[sl]
            m, _ = _ln._cell_stats(d, v, max(d.shape), k)
            # _cell_stats' "enough" rule counts the full cell; the kernel uses the sampled size
            if v.sum() >= max(8, ((cell + step - 1) // step) ** 2 // 8):
                med[i, j] = m[0, 0]
    return med


@pytest.mark.parametrize(("cell", "step"), [(12, 1), (16, 2), (64, 2)])
def test_cell_stats_kernel_matches_numpy(sky, cell, step) -> None:
    rng = np.random.default_rng(8)
    ref = frame(sky, 1.0, np.zeros((H, W), np.float32), rng)
    tgt = frame(sky, 0.8, gradient(0.7, 0.05), rng)
    tgt[:, :50] = 0  # no data
    ref[200:230, 100:300] = 0.9  # saturated block: invalid
    tgt[7, 9] = np.nan
    a1 = 1.25
    med, _, count = _ln._cell_stats_fast(ref, tgt, a1, cell, low=4.5e-5, high=0.85, k=3.0,
                                         step=step)
    diff = (ref - np.float32(a1) * tgt).astype(np.float32)
    cfg = LNConfig()
    valid = _ln._valid(ref, cfg) & _ln._valid(tgt, cfg)
    if step == 1:
        want, want_count = _ln._cell_stats(diff, valid, cell, 3.0)
        np.testing.assert_array_equal(np.isfinite(med), np.isfinite(want))
        np.testing.assert_allclose(med, want, rtol=1e-6, atol=1e-9, equal_nan=True)
        np.testing.assert_array_equal(count[np.isfinite(med)], want_count[np.isfinite(want)])
    want = _cells_ref(diff, valid, cell, step, 3.0)
    np.testing.assert_allclose(med, want, rtol=1e-6, atol=1e-9, equal_nan=True)


def test_apply_kernel_matches_map_coordinates(sky) -> None:
    rng = np.random.default_rng(9)
    grid = rng.normal(0.01, 0.002, (7, 9))
    fn = _ln.LocalNormalization(grid, 1.23, 48, (H - 5, W - 7))  # cells not dividing the frame
    data = frame(sky, 1.0, gradient(0.3, 0.05), rng)[: H - 5, : W - 7]
    data[:, :20] = 0
    data[3, 300] = np.nan
    np.testing.assert_allclose(fn.apply(data), fn._apply_ref(data), rtol=2e-6, atol=2e-8)
    np.testing.assert_allclose(fn.a0(40, 100), _ln._upsample(
        grid, 48, np.arange(40, 140, dtype=float), np.arange(W - 7, dtype=float)), rtol=1e-6)
    assert fn.apply(data)[3, 300] == 0 and np.all(fn.apply(data)[:, :20] == 0)


def test_aperture_photometry_kernel_matches_numpy(sky) -> None:
    rng = np.random.default_rng(10)
    img = frame(sky, 1.0, np.zeros((H, W), np.float32), rng)
    img[:, :30] = 0
    xy = np.column_stack([rng.uniform(-5, W + 5, 200), rng.uniform(-5, H + 5, 200)])
    got = _ln.aperture_photometry(img, xy)
    want = _ln._aperture_photometry_ref(img, xy)
    np.testing.assert_array_equal(got[2], want[2])
    ok = want[2]
    assert ok.sum() > 100 and (~ok).sum() > 10  # edges and the no-data border are refused
    np.testing.assert_allclose(got[0][ok], want[0][ok], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1][ok], want[1][ok], rtol=1e-5)


def test_find_bright_stars_skips_hot_pixels_saturation_and_borders() -> None:
    rng = np.random.default_rng(12)
    img = rng.normal(0.05, 5e-4, (H, W)).astype(np.float32)
    yy, xx = np.mgrid[0:H, 0:W]
    stars = [(100.3, 80.6, 0.02), (300.7, 200.2, 0.05), (420.1, 300.9, 0.01), (250.5, 120.5, 2.0)]
    for x, y, amp in stars:
        img += (amp * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.4**2))).astype(np.float32)
    img = np.minimum(img, 1.0)  # the 2.0 star saturates
    img[50, 400] += 0.3  # a hot pixel
    img[:, :40] = 0  # registration border: no false peaks along its edge
    xy = find_bright_stars(img)
    assert len(xy) == 3
    np.testing.assert_array_equal(xy, [[301, 200], [100, 81], [420, 301]])  # brightest first


# --- on simulator frames -------------------------------------------------------------------------


def test_ln_targets_hold_on_simulated_lights() -> None:
    """Simulator lights (Moffat stars with a power-law luminosity function, galaxy, nebula, Poisson
    and read noise, "calibrated": bias removed, +100 DN pedestal) with per-frame linear + quadratic
    gradients of ±5 % of the sky and transparency 0.7–1.3, against a 4-frame average reference:
    background error ≤ 0.2 % of the sky (RMS over the field, against the noiseless truth), scale
    error ≤ 0.5 %, and the LN stack is flatter than the globally normalized one."""
    from skystack.simulate import Camera, LightSpec, make_scene, render_bias, render_light

    w, h, exposure, sky = 512, 384, 120.0, 2.0
    scene = make_scene(w, h, seed=3)
    cam = Camera(width=w, height=h, prnu_sigma=0.0, cold_fraction=0.0)  # flat-fielded frames
    bias, _ = render_bias(cam, seed=0, noise=False)
    sky_unit = sky * exposure / cam.gain_e_per_adu / 65535
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def light(t: float, coeffs: tuple[float, float, float], quad: np.ndarray | float, seed: int,
              noise: bool = True) -> np.ndarray:
        spec = LightSpec(scene=scene, camera=cam, dark=False, transparency=t, exposure=exposure,
                         sky={"L": coeffs}, noise=noise)
        return render_light(spec, seed=seed)[0] - bias + np.float32(100 / 65535) + quad

    reference = np.mean([light(1.0, (sky, 0, 0), 0.0, 100 + i) for i in range(4)], axis=0)
    ref_bg = light(0.0, (sky, 0, 0), 0.0, 0, noise=False)  # transparency 0: background only
    rng = np.random.default_rng(0)
    ln_bgs, gl_bgs = [], []
    for k, t in enumerate((0.7, 0.85, 1.15, 1.3)):
        ang = rng.uniform(0, 2 * np.pi)
        g = 0.05 * sky / (w / 2)  # ±5 % of the sky from the centre to the edge
        coeffs = (sky * rng.uniform(0.8, 1.2), g * np.cos(ang), g * np.sin(ang))
        u = ((xx - w / 2) * np.cos(ang + 1) + (yy - h / 2) * np.sin(ang + 1)) / (w / 2)
        quad = (rng.uniform(-0.05, 0.05) * u**2 * sky_unit).astype(np.float32)
        data = light(t, coeffs, quad, 10 + k)
        bg = light(0.0, coeffs, quad, 0, noise=False)
        fn = compute_local_normalization(data, reference)
        assert fn.method == "stars"
        assert abs(fn.a1 * t - 1) <= 0.005
        err = fn.a0() + fn.a1 * bg - ref_bg
        assert np.sqrt(np.mean(err**2)) <= 0.002 * sky_unit
        ln_bgs.append(fn.a0() + fn.a1 * bg)
        gl_bgs.append(global_normalization(data, reference).apply(bg))
    ln_err = np.mean(ln_bgs, axis=0) - ref_bg
    gl_err = np.mean(gl_bgs, axis=0) - ref_bg
    # flatness: the error's spread over the field (a constant offset is not a gradient)
    assert ln_err.std() < 0.25 * gl_err.std()


def _trail(shape: tuple[int, int], width: int = 3) -> np.ndarray:
    """A diagonal satellite trail across the whole frame."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return np.abs(yy - 0.6 * xx - 40) <= width / 2


def test_ln_reference_from_files_rejects_a_trail(sky, tmp_path) -> None:
    """The reference is an integration with rejection (WBPP): a trail in one frame stays out."""
    from skystack.io import Image, write_image
    from skystack.normalize import build_reference, build_reference_from_files

    rng = np.random.default_rng(22)
    trail = _trail((H, W))
    paths, frames = [], []
    for i, t in enumerate([1.0, 0.97, 0.95, 1.02, 0.9]):
        f = frame(sky, t, np.zeros((H, W), np.float32), rng)
        if i == 1:
            f[trail] += 0.05
        p = tmp_path / f"r{i}.fits"
        write_image(p, Image.from_array(f))
        paths.append(p)
        frames.append(f)
    weights = [1.0, 0.9, 0.8, 0.7, 0.1]           # the trailed frame is among the best three
    ref = build_reference_from_files(paths, weights)
    assert sorted(ref.frames) == [0, 1, 2]
    truth = 1.0 * sky + SKY                         # on the best frame's scale
    excess = float(np.median((ref.data - truth)[trail]))
    assert abs(excess) < 3 * 5e-4                   # within the noise of the average
    plain = build_reference(frames, weights)        # the plain average keeps a third of it
    assert float(np.median((plain.data - truth)[trail])) > 0.01
