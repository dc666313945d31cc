"""Star detection and PSF measurement against synthetic frames with exact ground truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial import cKDTree

from skystack import _star_kernels as K
from skystack.stars import DetectionConfig, StarCatalog, detect_stars, estimate_background

GAIN = 1.0  # electrons per ADU in the renderer
ADU = 65535.0


# ---------------------------------------------------------------------------------------------
# A tiny exact renderer: each pixel is the PSF integrated over its area (7×7 sub-samples)
# ---------------------------------------------------------------------------------------------


def _profile(dx, dy, fwhm, ecc, theta, psf, beta):
    fa = fwhm / (1.0 - ecc**2) ** 0.25  # major axis; geometric mean of the axes = fwhm
    fb = fa * math.sqrt(1.0 - ecc**2)
    t = math.radians(theta)
    u = dx * math.cos(t) + dy * math.sin(t)
    v = -dx * math.sin(t) + dy * math.cos(t)
    if psf == "gaussian":
        sa, sb = fa / 2.3548200450309493, fb / 2.3548200450309493
        return np.exp(-0.5 * ((u / sa) ** 2 + (v / sb) ** 2)) / (2 * math.pi * sa * sb)
    k = 2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0)
    aa, ab = fa / k, fb / k
    return (beta - 1) / (math.pi * aa * ab) * (1 + (u / aa) ** 2 + (v / ab) ** 2) ** (-beta)


def render_stars(shape, xs, ys, flux, fwhm, ecc=0.0, theta=0.0, psf="moffat", beta=3.0, os=7):
    """Electrons from stars at (xs, ys) with total ``flux`` each (pixel-integrated PSF)."""
    h, w = shape
    img = np.zeros(shape)
    rad = int(math.ceil(5 * fwhm)) + 2
    sub = (np.arange(os) + 0.5) / os - 0.5
    for x, y, f in zip(xs, ys, flux, strict=True):
        x0, y0 = int(round(x)), int(round(y))
        ylo, yhi = max(0, y0 - rad), min(h, y0 + rad + 1)
        xlo, xhi = max(0, x0 - rad), min(w, x0 + rad + 1)
        gy = np.arange(ylo, yhi)[:, None, None, None] + sub[None, None, :, None]
        gx = np.arange(xlo, xhi)[None, :, None, None] + sub[None, None, None, :]
        img[ylo:yhi, xlo:xhi] += f * _profile(gx - x, gy - y, fwhm, ecc, theta, psf, beta).mean(
            axis=(2, 3))
    return img


def make_frame(seed, shape=(320, 384), n=140, fwhm=3.5, ecc=0.0, theta=0.0, psf="moffat",
               beta=3.0, sky=400.0, gradient=0.3, read_noise=5.0, fmin=2e3, fmax=4e5):
    """A noisy frame (float32, [0, 1]) plus its truth: positions, fluxes (ADU), true SNRs."""
    rng = np.random.default_rng(seed)
    h, w = shape
    xs = rng.uniform(8, w - 8, n)
    ys = rng.uniform(8, h - 8, n)
    flux = 10 ** rng.uniform(math.log10(fmin), math.log10(fmax), n)
    e = render_stars(shape, xs, ys, flux, fwhm, ecc, theta, psf, beta)
    yy, xx = np.mgrid[0:h, 0:w]
    sky_map = sky * (1.0 + gradient * (xx / w + 0.5 * yy / h))
    img = rng.poisson(e + sky_map) + rng.normal(0.0, read_noise, shape)
    area = math.pi * fwhm**2  # ~ optimal aperture
    snr = flux / np.sqrt(flux + area * (sky * (1 + gradient) + read_noise**2))
    truth = {"x": xs, "y": ys, "flux": flux / ADU, "snr": snr, "sky": sky_map / ADU,
             "sigma": np.sqrt(sky_map + read_noise**2) / ADU}
    return (img / ADU).astype(np.float32), truth


def match(cat: StarCatalog, truth, radius=1.5):
    """Index into the truth for each catalogue star, and whether it matched."""
    d, i = cKDTree(np.column_stack([truth["x"], truth["y"]])).query(
        np.column_stack([cat.x, cat.y]))
    return i, d < radius


def isolated(truth, min_sep, brighter_only=False):
    """Stars with no neighbour (or no brighter one) within ``min_sep`` pixels."""
    pts = np.column_stack([truth["x"], truth["y"]])
    out = np.ones(len(pts), bool)
    for i, j in cKDTree(pts).query_pairs(min_sep):
        if brighter_only:
            out[i if truth["flux"][i] < truth["flux"][j] else j] = False
        else:
            out[i] = out[j] = False
    return out


# ---------------------------------------------------------------------------------------------
# Kernels against their NumPy references
# ---------------------------------------------------------------------------------------------


def test_mesh_stats_matches_reference():
    rng = np.random.default_rng(0)
    img = rng.normal(0.1, 0.01, (150, 200)).astype(np.float32)
    img[40:44, 50:54] = 0.9  # a "star" that clipping must remove
    b, r = K.mesh_stats(img, 48, 2)
    b_ref, r_ref = K.mesh_stats_ref(img, 48, 2)
    assert b.shape == (3, 4)
    np.testing.assert_allclose(b, b_ref, rtol=0, atol=1e-7)
    np.testing.assert_allclose(r, r_ref, rtol=1e-5)
    assert abs(float(np.median(r)) - 0.01) < 0.001


def test_background_subtraction_matches_reference():
    rng = np.random.default_rng(1)
    img = rng.random((100, 130)).astype(np.float32)
    grid = rng.random((3, 4)).astype(np.float32)
    np.testing.assert_allclose(K.subtract_background(img, grid, 32),
                               K.subtract_background_ref(img, grid, 32), atol=2e-6)
    xs, ys = np.array([0.0, 50.5, 129.0]), np.array([0.0, 33.3, 99.0])
    full = img - K.subtract_background_ref(img, grid, 32)
    at = K.interp_mesh_at(grid, 32, img.shape, np.round(xs), np.round(ys))
    np.testing.assert_allclose(at, full[np.round(ys).astype(int), np.round(xs).astype(int)],
                               atol=2e-6)


def test_smoothing_matches_reference():
    rng = np.random.default_rng(2)
    img = rng.random((64, 90)).astype(np.float32)
    k = K.gaussian_kernel(1.3)
    assert k.size == 9 and abs(float(k.sum()) - 1) < 1e-6
    np.testing.assert_allclose(K.smooth_separable(img, k), K.smooth_separable_ref(img, k),
                               atol=2e-6)


def test_peaks_match_reference():
    rng = np.random.default_rng(3)
    s = K.smooth_separable(rng.random((80, 100)).astype(np.float32), K.gaussian_kernel(1.5))
    thr = np.full((2, 3), 0.5, np.float32)
    got = set(zip(*K.find_peaks(s, thr, 40, 3)))
    ref = set(zip(*K.find_peaks_ref(s, thr, 40, 3)))
    assert got == ref and len(got) > 5


def test_atrous_matches_reference():
    rng = np.random.default_rng(4)
    img = rng.random((40, 57)).astype(np.float32)
    for d in (1, 2, 4, 8):
        np.testing.assert_allclose(K.atrous_smooth(img, d), K.atrous_smooth_ref(img, d),
                                   atol=2e-6)


def test_psf_fit_matches_scipy_least_squares():
    """The numba LM fit of a noiseless Moffat reaches the same optimum as SciPy's."""
    from scipy.optimize import least_squares

    yy, xx = np.mgrid[0:25, 0:25].astype(np.float64)
    truth = dict(A=0.3, x=12.3, y=11.8, a=0.5, b=0.1, c=0.3, B=0.01, g=0.3)

    def model(p):
        u = p[3] * (xx - p[1]) ** 2 + 2 * p[4] * (xx - p[1]) * (yy - p[2]) + p[5] * (yy - p[2]) ** 2
        return p[6] + p[0] * (1 + 0.5 * p[7] * u) ** (-1 / p[7])

    p_true = np.array(list(truth.values()))
    img = model(p_true).astype(np.float32)
    p0 = np.array([0.25, 12.0, 12.0, 0.4, 0.0, 0.4, 0.0, 0.25])
    ls = least_squares(lambda p: (model(p) - img).ravel(), p0, xtol=1e-12, ftol=1e-12)
    one = np.zeros(1, np.int64)
    inv = np.linalg.inv([[0.4, 0.0], [0.0, 0.4]])
    res = K.fit_psf(img, np.array([12.0]), np.array([12.0]), np.array([inv[0, 0]]),
                    np.array([0.0]), np.array([inv[1, 1]]), np.array([0.25]),
                    np.zeros(2, np.int64), np.zeros(0, np.int64), one, model=K.MOFFAT,
                    sigma0=1.5, rmin=12, rmax=12, tol=1e-12)
    got = np.array([res[0, 5], res[0, 0], res[0, 1], res[0, 2], res[0, 3], res[0, 4], res[0, 6],
                    res[0, 7]])
    np.testing.assert_allclose(got, ls.x, rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(got, p_true, rtol=2e-3, atol=2e-4)


# ---------------------------------------------------------------------------------------------
# Accuracy on synthetic frames
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("psf", "fwhm", "ecc", "theta", "model"),
    [("moffat", 3.5, 0.0, 0.0, "moffat"), ("moffat", 4.2, 0.6, 35.0, "moffat"),
     ("gaussian", 2.8, 0.7, 120.0, "gaussian"), ("gaussian", 3.0, 0.3, 60.0, "moffat")],
)
def test_shape_and_centroid_accuracy(psf, fwhm, ecc, theta, model):
    img, truth = make_frame(11, fwhm=fwhm, ecc=ecc, theta=theta, psf=psf, beta=3.0)
    cat = detect_stars(img, config=DetectionConfig(psf=model))
    i, ok = match(cat, truth)
    iso = isolated(truth, 4 * fwhm)[i]
    bright = ok & iso & (truth["snr"][i] >= 100) & ~cat.saturated
    assert bright.sum() >= 20
    # every bright star was fitted and its size and shape are right
    assert cat.fitted[bright].all()
    assert abs(np.median(cat.fwhm[bright]) / fwhm - 1) < 0.03
    assert np.percentile(np.abs(cat.fwhm[bright] / fwhm - 1), 90) < 0.05
    if ecc > 0:
        assert abs(np.median(cat.eccentricity[bright]) - ecc) < 0.05
        dth = (cat.theta[bright] - theta + 90) % 180 - 90
        assert abs(np.median(dth)) < 3
    dx = cat.x[bright] - truth["x"][i[bright]]
    dy = cat.y[bright] - truth["y"][i[bright]]
    assert math.sqrt(np.mean(dx**2 + dy**2)) <= 0.05
    assert abs(np.median(dx)) < 0.01 and abs(np.median(dy)) < 0.01  # no convention offset
    assert abs(np.median(cat.flux[bright] / truth["flux"][i[bright]]) - 1) < 0.03


def test_completeness_and_false_detections():
    img, truth = make_frame(12, n=160)
    cat = detect_stars(img)
    i, ok = match(cat, truth)
    found = np.zeros(len(truth["x"]), bool)
    found[i[ok]] = True
    # a faint star on a bright one's wing has no peak of its own: judge isolated stars
    iso = isolated(truth, 10.0, brighter_only=True)
    strong = (truth["snr"] >= 15) & iso
    assert found[strong].mean() >= 0.98
    assert (~ok).sum() <= 0.02 * len(cat) + 1
    # sorted by flux, brightest first; brightest(n) keeps the order
    assert np.all(np.diff(cat.flux) <= 0)
    top = cat.brightest(10)
    assert len(top) == 10 and np.array_equal(top.x, cat.x[:10])


def test_background_and_noise_maps_follow_the_gradient():
    img, truth = make_frame(13, n=60)
    bkg = estimate_background(img, mesh=64)
    model = bkg.level_map()
    err = (model - truth["sky"]) / truth["sigma"]
    # a fraction of the per-pixel noise; the outer half-mesh is extrapolated, hence looser
    assert math.sqrt(np.mean(err**2)) < 0.12 and abs(err.mean()) < 0.08
    assert np.abs(err[32:-32, 32:-32]).max() < 0.3 and np.abs(err).max() < 0.5
    yc = (np.arange(bkg.level.shape[0]) + 0.5) * 64
    xc = (np.arange(bkg.level.shape[1]) + 0.5) * 64
    true_rms = truth["sigma"][yc.astype(int)][:, xc.astype(int)]
    ratio = bkg.rms / true_rms
    assert abs(np.median(ratio) - 1) < 0.04 and np.abs(ratio - 1).max() < 0.16


def test_hot_pixels_and_cosmic_rays_are_not_stars():
    img, truth = make_frame(14, n=50)
    rng = np.random.default_rng(99)
    hy = rng.integers(5, img.shape[0] - 5, 300)
    hx = rng.integers(5, img.shape[1] - 5, 300)
    img[hy, hx] += 0.2
    cat = detect_stars(img)
    d, _ = cKDTree(np.column_stack([hx, hy])).query(np.column_stack([cat.x, cat.y]))
    _, ok = match(cat, truth)
    assert np.count_nonzero((d < 1.0) & ~ok) == 0


def test_saturated_stars_are_flagged():
    img, truth = make_frame(15, n=60, fmax=3e6)
    img = np.minimum(img, np.float32(0.5))  # a sensor that clips at half range
    cat = detect_stars(img)
    i, ok = match(cat, truth)
    assert cat.meta["saturation_level"] == pytest.approx(0.475)
    peak = truth["flux"][i] * ADU / (2 * math.pi * (3.5 / 2.355) ** 2)  # rough peak electrons
    clipped = ok & (peak / ADU > 0.9)
    faint = ok & (peak / ADU < 0.2)
    assert clipped.sum() >= 2
    assert cat.saturated[clipped].all() and not cat.saturated[faint].any()
    assert not cat.fitted[cat.saturated].any()


def test_close_pairs_are_deblended():
    shape = (160, 160)
    xs = np.array([50.3, 59.1, 110.0, 117.7])  # separations 2.5 and 2.2 FWHM
    ys = np.array([60.2, 61.4, 100.5, 104.6])
    flux = np.array([2e5, 1e5, 1.5e5, 1.5e5])
    e = render_stars(shape, xs, ys, flux, 3.5, psf="moffat")
    rng = np.random.default_rng(16)
    img = ((rng.poisson(e + 300) + rng.normal(0, 5, shape)) / ADU).astype(np.float32)
    cat = detect_stars(img)
    d, _ = cKDTree(np.column_stack([cat.x, cat.y])).query(np.column_stack([xs, ys]))
    assert len(cat) == 4
    assert d.max() < 0.25


def test_colour_images_use_the_luminance():
    img, truth = make_frame(17, n=40)
    rgb = np.stack([img * 0.9, img, img * 1.1])
    mono = detect_stars(img)
    col = detect_stars(rgb)
    assert len(col) == len(mono)
    np.testing.assert_allclose(col.x, mono.x, atol=1e-3)


def test_blank_frame_gives_an_empty_catalogue():
    rng = np.random.default_rng(18)
    img = rng.normal(0.05, 0.001, (128, 128)).astype(np.float32)
    cat = detect_stars(img, config=DetectionConfig(threshold=6.0))
    assert len(cat) <= 1
    assert len(StarCatalog.empty()) == 0


def test_moments_match_reference():
    shape = (41, 41)
    e = render_stars(shape, [20.3], [19.6], [5e4], 3.2, ecc=0.5, theta=40.0, psf="gaussian")
    r = (e / ADU).astype(np.float32)
    got = K.measure_moments(r, np.array([20]), np.array([20]), np.array([1.0]),
                            np.zeros(2, np.int64), np.zeros(0, np.int64), 1.3)
    ref = K.measure_moments_ref(r, 20, 20, 1.3)
    assert got[0, 7] == 1.0 and ref is not None
    np.testing.assert_allclose(got[0, :6], ref, rtol=1e-6, atol=1e-9)
    # and it is right: centroid, covariance of the Gaussian + 1/12 px² of the pixel, flux
    assert got[0, 0] == pytest.approx(20.3, abs=1e-3) and got[0, 1] == pytest.approx(19.6, abs=1e-3)
    assert got[0, 5] == pytest.approx(5e4 / ADU, rel=2e-3)


def test_hough_matches_reference():
    rng = np.random.default_rng(5)
    xs, ys = rng.uniform(0, 60, 200), rng.uniform(0, 40, 200)
    np.testing.assert_array_equal(K.hough_lines(xs, ys, 90, 75), K.hough_lines_ref(xs, ys, 90, 75))
