"""numba kernel vs the plain reference, on random stacks and edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from skystack.integrate import _kernels as K
from skystack.integrate._reference import (
    COMBINE_CODES,
    METHOD_CODES,
    KernelParams,
    esd_critical_values,
    integrate_reference,
    linfit_spread_table,
)
from skystack.integrate.engine import _run_kernel

METHODS = ["none", "minmax", "percentile", "sigma", "winsorized", "averaged-sigma",
           "linear-fit", "esd"]
LIMITS = {"percentile": (0.2, 0.1), "sigma": (3.0, 2.5), "winsorized": (3.0, 2.5),
          "averaged-sigma": (3.0, 2.5), "linear-fit": (3.0, 2.0)}


def test_codes_match() -> None:
    for name, code in METHOD_CODES.items():
        assert getattr(K, name.upper().replace("-", "_").replace("AVERAGED_SIGMA", "AVSIGMA")
                       .replace("LINEAR_FIT", "LINFIT").replace("WINSORIZED", "WINSORIZED")) == code
    for name, code in COMBINE_CODES.items():
        assert getattr(K, name.upper()) == code
    from skystack.integrate import _reference as R

    for const in ("WINSOR_CUT", "WINSOR_FACTOR", "WINSOR_TOL", "WINSOR_JUMPS", "MAX_ITER"):
        assert getattr(K, const) == getattr(R, const), const


def _coeffs(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"ra": rng.uniform(0.8, 1.2, n), "rb": rng.uniform(-0.01, 0.01, n),
            "oa": rng.uniform(0.9, 1.1, n), "ob": rng.uniform(-0.01, 0.01, n),
            "w": rng.uniform(0.5, 1.0, n), "rl": np.full(n, 0.02), "rh": np.full(n, 0.9)}


def _stack(n: int, npix: int, rng: np.random.Generator) -> np.ndarray:
    x = (0.1 + 0.01 * rng.standard_normal((n, npix))).astype(np.float32)
    hits = rng.random((n, npix)) < 0.03
    x[hits] += rng.uniform(0.02, 0.5, hits.sum()).astype(np.float32)       # cosmics, trails
    lows = rng.random((n, npix)) < 0.01
    x[lows] -= rng.uniform(0.03, 0.09, lows.sum()).astype(np.float32)
    x[rng.random((n, npix)) < 0.02] = 0.0                                   # no data
    x[rng.random((n, npix)) < 0.01] = np.nan
    x[:, :7] = 0.1                                                          # all equal
    x[:, 7:11] = np.round(x[:, 7:11], 2)                                    # ties
    x[:, 11] = 0.0                                                          # nothing valid
    return x


def _compare(x: np.ndarray, params: KernelParams, co: dict[str, np.ndarray],
             exclude: np.ndarray | None = None) -> None:
    n, npix = x.shape
    lam = np.array([esd_critical_values(n, 0.05), linfit_spread_table(n)])
    ref = integrate_reference(x, params=params, rej_scale=co["ra"], rej_offset=co["rb"],
                              out_scale=co["oa"], out_offset=co["ob"], weights=co["w"],
                              range_lo=co["rl"], range_hi=co["rh"], exclude=exclude,
                              esd_lambda=lam[0], spread=lam[1])
    img = np.empty(npix, np.float32)
    lo = np.empty(npix, np.uint16)
    hi = np.empty(npix, np.uint16)
    cov = np.empty(npix, np.uint16)
    mask = np.empty((n, npix), np.uint8)
    counts = _run_kernel(x, co, params, lam, img, lo, hi, cov, exclude=exclude, mask=mask)
    np.testing.assert_array_equal(cov, ref[3])
    # float64 sums in a different order may flip a sample sitting exactly on a threshold
    same = (lo == ref[1]) & (hi == ref[2])
    assert same.mean() >= 0.999, f"{params.method}: {np.flatnonzero(~same)[:5]}"
    np.testing.assert_allclose(img[same], ref[0][same], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(mask[:, same], ref[4][:, same])
    assert counts[:, 0].tolist() == np.count_nonzero((x == x) & (x != 0), axis=1).tolist()
    assert counts[:, 1].sum() == lo.sum() and counts[:, 2].sum() == hi.sum()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 24, 40])
def test_kernel_matches_reference(method: str, n: int) -> None:
    rng = np.random.default_rng(100 + n)
    low, high = LIMITS.get(method, (1.0, 1.0))
    params = KernelParams(method=method, combine="average", low=low, high=high,
                          poisson_gain=0.001)
    _compare(_stack(n, 1500, rng), params, _coeffs(n, rng))


@pytest.mark.parametrize("method", ["none", "minmax", "sigma", "winsorized", "linear-fit"])
@pytest.mark.parametrize("n", [3, 20, 50])
def test_kernel_matches_reference_without_range_rejection(method: str, n: int) -> None:
    """The kernel's path for frames without range rejection (every valid sample a candidate)."""
    rng = np.random.default_rng(200 + n)
    low, high = LIMITS.get(method, (1.0, 1.0))
    co = _coeffs(n, rng)
    co["rl"], co["rh"] = np.full(n, -np.inf), np.full(n, np.inf)
    x = _stack(n, 2000, rng)
    x[:, 1500:] = np.round(x[:, 1500:] * 65535) / 65535          # 16-bit data: ties
    _compare(x, KernelParams(method=method, low=low, high=high), co)


@pytest.mark.parametrize("method", ["sigma", "winsorized", "linear-fit", "esd"])
def test_kernel_matches_reference_when_few_pixels_reject(method: str) -> None:
    """Blocks where few pixels reject are flagged pixel by pixel (``_rank_flags_col``), ties
    at the thresholds included: same flags and counts as the reference."""
    rng = np.random.default_rng(300)
    n, npix = 20, 4 * K.CHUNK
    x = (0.1 + 0.004 * rng.standard_normal((n, npix))).astype(np.float32)
    x = (np.round(x * 2000) / 2000).astype(np.float32)       # coarse steps: many ties
    cols = rng.choice(npix, 12, replace=False)
    x[rng.integers(0, n, 12), cols] += 0.3                     # a few outliers
    x[3:6, cols[0]] = x[3:6, cols[0]].max() + 0.2               # tied outliers in one pixel
    co = _coeffs(n, rng)
    co["rl"], co["rh"] = np.full(n, -np.inf), np.full(n, np.inf)
    low, high = LIMITS.get(method, (1.0, 1.0))
    params = KernelParams(method=method, low=low, high=high)
    _compare(x, params, co)
    # the sparse path was the one taken: in every block at most 1 in RANK_SPARSE pixels reject
    lam = np.array([esd_critical_values(n, 0.05), linfit_spread_table(n)])
    maps = [np.empty(npix, np.uint16) for _ in range(3)]
    _run_kernel(x, co, params, lam, np.empty(npix, np.float32), *maps)
    rejecting = ((maps[0] + maps[1]) > 0).reshape(-1, K.CHUNK).sum(axis=1)
    assert rejecting.max() * K.RANK_SPARSE <= K.CHUNK and rejecting.min() > 0


@pytest.mark.parametrize("rejecting", [3, 200])
def test_rank_flags_follow_the_stable_order_at_tied_thresholds(rejecting: int) -> None:
    """Rank rejections split runs of equal values in frame order, as a stable sort does: the
    pixel-by-pixel path (few rejecting pixels) and the block path (many) alike."""
    rng = np.random.default_rng(7)
    n, k = 12, K.CHUNK
    key = rng.integers(0, 4, (n, k)).astype(np.float32)      # 4 values in 12 frames: ties
    s = np.sort(key, axis=0)
    m = np.full(k, n, np.int64)
    lo, hi = np.zeros(k, np.int64), np.full(k, n - 1, np.int64)
    cols = rng.choice(k, rejecting, replace=False)
    lo[cols], hi[cols] = rng.integers(1, 5, rejecting), rng.integers(6, n - 1, rejecting)
    fl = np.zeros((n, k), np.uint8)
    fc = np.zeros((n, 3), np.int64)
    K._rank_flags(key, s, fl, m, lo, hi, k, fc, np.empty((2, k), np.float32),
                  np.empty((4, k), np.int32))
    want = np.zeros((n, k), np.uint8)
    for q in range(k):
        order = np.argsort(key[:, q], kind="stable")
        want[order[:lo[q]], q] = 1
        want[order[hi[q] + 1:], q] = 2
    np.testing.assert_array_equal(fl, want)
    assert fc[:, 1].tolist() == (want == 1).sum(axis=1).tolist()
    assert fc[:, 2].tolist() == (want == 2).sum(axis=1).tolist()


@pytest.mark.parametrize("combine", ["average", "median", "min", "max", "sum"])
def test_combines_match_reference(combine: str) -> None:
    rng = np.random.default_rng(7)
    params = KernelParams(method="winsorized", combine=combine, low=3.0, high=2.5)
    _compare(_stack(9, 1500, rng), params, _coeffs(9, rng))


def test_exclude_mask_matches_reference() -> None:
    rng = np.random.default_rng(8)
    x = _stack(10, 1000, rng)
    exclude = rng.choice(np.array([0, 1, 2], np.uint8), size=x.shape, p=[0.9, 0.05, 0.05])
    _compare(x, KernelParams(method="sigma", low=3.0, high=3.0), _coeffs(10, rng), exclude)


def test_exact_values_small_stacks() -> None:
    """Hand-computed results: weighted mean, min/max clipping, all-rejected fallback."""
    co = {"ra": np.ones(3), "rb": np.zeros(3), "oa": np.ones(3), "ob": np.zeros(3),
          "w": np.array([1.0, 1.0, 2.0]), "rl": np.full(3, -np.inf), "rh": np.full(3, np.inf)}
    x = np.array([[0.1, 0.2, np.nan], [0.3, 0.2, 0.0], [0.5, 0.2, 0.7]], np.float32)
    img = np.empty(3, np.float32)
    lo, hi, cov = (np.empty(3, np.uint16) for _ in range(3))
    _run_kernel(x, co, KernelParams(method="none"), np.zeros((2, 4)), img, lo, hi, cov)
    np.testing.assert_allclose(img, [(0.1 + 0.3 + 1.0) / 4, 0.2, 0.7], atol=1e-7)
    assert cov.tolist() == [3, 3, 1]
    _run_kernel(x, co, KernelParams(method="minmax", min_count=1, max_count=1), np.zeros((2, 4)),
                img, lo, hi, cov)
    np.testing.assert_allclose(img, [0.3, 0.2, 0.7], atol=1e-7)
    assert lo.tolist() == [1, 1, 0] and hi.tolist() == [1, 1, 0]
    # range rejection of everything leaves 0 (no data) and counts it
    co["rh"] = np.full(3, 0.05)
    _run_kernel(x, co, KernelParams(method="none"), np.zeros((2, 4)), img, lo, hi, cov)
    assert img.tolist() == [0.0, 0.0, 0.0] and hi.tolist() == [3, 3, 1]


@pytest.mark.parametrize("n", [*range(1, 34), 47, 64, 100])
def test_sorting_network_sorts_stably(n: int) -> None:
    """The comparator network, applied to many columns at once, equals a stable sort."""
    rng = np.random.default_rng(n)
    vals = rng.integers(0, 4, (n, 3000)).astype(np.float64)     # many ties
    vals[:, :5] = rng.random((n, 5))
    vals[n // 2:, 5] = np.inf                                   # no-data padding at the end
    keys = np.broadcast_to(np.arange(n)[:, None], vals.shape).copy()
    s, t = vals.copy(), keys.copy()
    for a, b in K.sorting_network(n):
        swap = (s[b] < s[a]) | ((s[b] == s[a]) & (t[b] < t[a]))
        s[a], s[b] = np.where(swap, s[b], s[a]), np.where(swap, s[a], s[b])
        t[a], t[b] = np.where(swap, t[b], t[a]), np.where(swap, t[a], t[b])
    order = np.argsort(vals, axis=0, kind="stable")
    np.testing.assert_array_equal(t, order)
    np.testing.assert_array_equal(s, np.take_along_axis(vals, order, axis=0))


def test_winsorized_sigma_is_the_limit_of_the_iteration() -> None:
    """The exact solution equals σ ← 1.134·std(clamp(run, m ± 1.5σ)) iterated to convergence."""
    from skystack.integrate._reference import winsorized_sigma

    rng = np.random.default_rng(11)
    errors = []
    for trial in range(300):
        k = int(rng.integers(3, 40))
        run = 0.1 + 0.01 * rng.standard_normal(k)
        if trial % 3 == 0:
            run[: max(1, k // 8)] += rng.uniform(0.05, 0.5)        # outliers on one side
        run = np.sort(run)
        m = float(np.median(run))
        sigma = float(run.std(ddof=1))
        for _ in range(10_000):
            new = 1.134 * float(np.clip(run, m - 1.5 * sigma, m + 1.5 * sigma).std(ddof=1))
            if abs(new - sigma) <= 1e-13 * sigma:
                break
            sigma = new
        errors.append(abs(winsorized_sigma(run, m) / sigma - 1))
    errors_a = np.array(errors)
    # exact except when the limit sits on a kink of F (a sample exactly at m ± 1.5σ): there the
    # plain iteration (PixInsight's and Siril's rule, 0.05 % tolerance) is the fallback
    assert (errors_a <= 1e-9).mean() >= 0.97
    assert errors_a.max() <= 2e-3


def test_raw_fits_decoding_is_exact_for_every_value() -> None:
    """The kernel's uint16 decoding equals to_unit_range's float32 division for all 65536."""
    from numba import njit

    from skystack.io.image import to_unit_range

    u = np.arange(65536, dtype=np.uint16)
    stored = (u ^ np.uint16(0x8000)).byteswap()       # big-endian int16 bytes, read natively

    @njit
    def decode_all(raw: np.ndarray) -> np.ndarray:
        out = np.empty(raw.size, np.float32)
        for i in range(raw.size):
            out[i] = K._decode_u16(raw[i])
        return out

    expected = to_unit_range(u)[0]
    np.testing.assert_array_equal(decode_all(stored), expected)


def test_float32_counting_thresholds_equal_float64_comparisons() -> None:
    """_count_outside compares float32 samples against float32 thresholds; it must count exactly
    what the float64 comparisons x < a and x > b count, for thresholds on, between and beside
    float32 values (the one-ulp steps include signs and zero)."""
    rng = np.random.default_rng(5)
    n, k = 40, 256
    s = np.sort(np.concatenate([rng.normal(0, 1, (n // 2, k)),
                                rng.normal(0, 1e-30, (n // 2, k))]).astype(np.float32), axis=0)
    pick = s[rng.integers(0, n, k), np.arange(k)].astype(np.float64)
    ulp = np.spacing(np.abs(pick).astype(np.float32)).astype(np.float64)
    shift = rng.choice([-0.5, -0.25, 0.0, 0.25, 0.5], k) * ulp
    a = pick + shift
    b = pick - shift[::-1]
    a[:8] = [0.0, -0.0, 1e-50, -1e-50, 1.0, -1.0, 1 + 1e-12, -1 - 1e-12]
    b[:8] = a[:8]
    lo = rng.integers(0, n // 3, k)
    hi = rng.integers(2 * n // 3, n, k)
    act = rng.random(k) < 0.9
    cl = np.zeros(k, np.int64)
    ch = np.zeros(k, np.int64)
    K._count_outside(s, lo, hi, act, a, b, k, cl, ch, np.empty((2, k), np.float32),
                     np.empty((4, k), np.int32))
    j = np.arange(n)[:, None]
    inr = (j >= lo) & (j <= hi) & act
    x = s.astype(np.float64)
    np.testing.assert_array_equal(cl, (inr & (x < a)).sum(axis=0))
    np.testing.assert_array_equal(ch, (inr & (x > b)).sum(axis=0))


def test_zero_weights_fall_back_to_the_plain_mean_of_kept_samples() -> None:
    """Where every kept sample has weight 0 the pixel is their unweighted mean (as the reference)."""
    rng = np.random.default_rng(9)
    n = 6
    co = _coeffs(n, rng)
    co["w"] = np.array([0.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    x = _stack(n, 600, rng)
    x[3, :300] = np.nan                      # frame 3 (the only weighted one) missing here
    _compare(x, KernelParams(method="sigma", low=3.0, high=2.5), co)
