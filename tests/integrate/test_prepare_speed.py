"""Pass 1 made cheaper gives the same numbers; the numba kernel is loaded behind it."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from numpy.typing import NDArray

from skystack.integrate import IntegrationConfig, engine, integrate
from skystack.integrate.io import open_sources

_MAD = 1.482602218505602


# --- pass 1 as it was before the speed-up (kept verbatim as the ground truth) -------------------

def _old_median(v: NDArray[np.float32]) -> float:
    k = v.size
    if k % 2:
        return float(np.partition(v, k // 2)[k // 2])
    part = np.partition(v, [k // 2 - 1, k // 2])
    return 0.5 * (float(part[k // 2 - 1]) + float(part[k // 2]))


def _old_robust_stats(x: NDArray[np.float32]) -> tuple[float, float, float]:
    valid = (x == x) & (x != 0)
    v = x[valid]
    if v.size == 0:
        return 0.0, 0.0, 0.0
    loc = _old_median(v)
    scale = _MAD * _old_median(np.abs(v - np.float32(loc)))
    if scale == 0:
        scale = float(v.astype(np.float64).std())
    both = valid[:, 1:] & valid[:, :-1]
    d = (x[:, 1:] - x[:, :-1])[both]
    noise = _MAD * _old_median(np.abs(d - np.float32(_old_median(d)))) / np.sqrt(2.0) if d.size else 0.0
    if noise == 0 and d.size:
        noise = float(d.astype(np.float64).std()) / np.sqrt(2.0)
    return loc, scale, noise


def _old_frame_statistics(sources: list, *, keep_sample: bool) -> tuple[NDArray[np.float64], ...]:
    c, h, w = sources[0].shape
    n_rows = int(np.clip(engine.SAMPLE_PIXELS // max(w, 1), 1, h))
    rows = np.unique(np.linspace(0, h - 1, n_rows).round().astype(np.intp))
    n = len(sources)
    loc, scale, noise = np.zeros((n, c)), np.zeros((n, c)), np.zeros((n, c))
    sample = np.zeros((n, c, len(rows) * w if keep_sample else 0), np.float32)
    for i, src in enumerate(sources):
        x = np.empty((c, len(rows), w), np.float32)
        for j, r in enumerate(rows):           # the old reader: one row at a time
            src.read_rows(int(r), int(r) + 1, x[:, j:j + 1])
        if src.pedestal:
            x = np.where((x == x) & (x != 0), x - np.float32(src.pedestal), x)
        for ch in range(c):
            loc[i, ch], scale[i, ch], noise[i, ch] = _old_robust_stats(x[ch])
            if keep_sample:
                sample[i, ch] = x[ch].reshape(-1)
    return loc, scale, noise, sample


def _frames(tmp: Path, kind: str, shape: tuple[int, ...], n: int = 5) -> list[Path]:
    rng = np.random.default_rng(11)
    paths = []
    for i in range(n):
        f = 0.1 + 0.01 * i + 0.004 * rng.standard_normal(shape)
        f[..., : 2 + i] = 0.0                                  # no-data border
        f[..., 5:9, 20:40] = 0.7                               # a saturated patch
        if kind == "float32":
            f = f.astype(np.float32)
            f[..., 30 + i, :] = np.nan                         # a NaN row
            hdu = fits.PrimaryHDU(f)
        else:
            hdu = fits.PrimaryHDU(np.rint(np.clip(f, 0, 1) * 65535).astype(np.uint16))
            hdu.header["PEDESTAL"] = 150 + i
        p = tmp / f"f{i}.fits"
        hdu.writeto(p)
        paths.append(p)
    return paths


@pytest.mark.parametrize("kind", ["uint16", "float32"])
@pytest.mark.parametrize("shape", [(192, 256), (3, 64, 96), (2000, 131)])
def test_frame_statistics_bit_identical_to_before(tmp_path: Path, kind: str,
                                                  shape: tuple[int, ...]) -> None:
    # (2000, 131): 2001 sample rows of 131 px, scattered (one read per row), odd widths
    paths = _frames(tmp_path, kind, shape)
    sources = open_sources(paths, cache_dir=tmp_path, subtract_pedestal=True)
    try:
        if kind == "uint16":
            assert all(s.raw_u16 and s.pedestal > 0 for s in sources)
        new = engine.frame_statistics(sources, keep_sample=True)
        old = _old_frame_statistics(sources, keep_sample=True)
    finally:
        for s in sources:
            s.close()
    for a, b in zip(new, old, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert np.all(new[2] > 0)


def test_robust_stats_edge_cases_bit_identical() -> None:
    rng = np.random.default_rng(5)
    cases = [np.zeros((4, 9), np.float32),                          # no data at all
             np.full((3, 7), np.float32(0.25)),                     # zero MAD: std fallbacks
             np.array([[0.5, 0, 0.25, 0, 0.75]], np.float32),       # no valid neighbours
             np.array([[0.1, 0.3]], np.float32)]                    # two samples
    for k in (1, 2, 3, 64, 65, 1000, 1001):
        x = rng.normal(0.2, 0.01, (1, k)).astype(np.float32)
        x[0, rng.random(k) < 0.2] = np.nan
        cases.append(x)
    x = rng.normal(0, 0.01, (8, 33)).astype(np.float32)             # negative values
    x[2:4] = 0.05
    cases.append(x)
    for x in cases:
        assert engine._robust_stats(x.copy()) == _old_robust_stats(x.copy()), x


def test_median_even_and_odd_match_sorting() -> None:
    rng = np.random.default_rng(1)
    for k in (1, 2, 5, 6, 257, 1 << 12):
        v = rng.integers(0, 40, k).astype(np.float32)               # many ties
        s = np.sort(v.astype(np.float64))
        want = s[k // 2] if k % 2 else 0.5 * (s[k // 2 - 1] + s[k // 2])
        assert engine._median(v) == want


def test_truncated_file_names_the_file(tmp_path: Path) -> None:
    p = _frames(tmp_path, "uint16", (64, 80), n=1)[0]
    sources = open_sources([p], cache_dir=None, subtract_pedestal=False)
    with open(p, "r+b") as fh:          # cut the data after row 40
        fh.truncate(2880 + 40 * 80 * 2)
    try:
        with pytest.raises(Exception, match="truncated"):
            sources[0].sample_rows(np.arange(0, 64, 3))
    finally:
        sources[0].close()


# --- the kernel loader ---------------------------------------------------------------------------

def _arrays(n: int = 5, shape: tuple[int, int] = (40, 48)) -> list[NDArray[np.float32]]:
    return [np.random.default_rng(i).normal(0.2, 0.01, shape).astype(np.float32)
            for i in range(n)]


def test_warm_up_loads_the_one_signature_every_call_uses(tmp_path: Path) -> None:
    from skystack.integrate._kernels import integrate_kernel

    engine._warm_kernel(5)
    before = set(integrate_kernel.signatures)
    assert len(before) >= 1
    integrate(_arrays(), config=IntegrationConfig(rejection="winsorized"))          # float32
    integrate(_arrays(), config=IntegrationConfig(rejection="sigma", large_scale=True))
    paths = _frames(tmp_path, "uint16", (48, 64), n=5)
    cfg = IntegrationConfig(rejection="winsorized")
    sources = open_sources(paths, cache_dir=None, subtract_pedestal=True)
    try:
        assert engine._prepare(sources, cfg, None, False, 1 << 30).raw      # raw uint16 bands
    finally:
        for s in sources:
            s.close()
    integrate(paths, config=cfg)
    assert set(integrate_kernel.signatures) == before


def test_kernel_runs_only_after_the_loader_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = threading.Event()
    calls: list[bool] = []
    real_warm, real_run = engine._warm_kernel, engine._run_kernel

    def slow_warm(n: int) -> None:
        threading.Event().wait(0.3)         # longer than pass 1 of this tiny stack
        real_warm(n)
        loaded.set()

    def run(*args: object, **kw: object) -> object:
        if threading.current_thread().name != "skystack-kernel-load":    # not the warm-up call
            calls.append(loaded.is_set())
        return real_run(*args, **kw)

    monkeypatch.setattr(engine._KernelLoader, "_ready", False)
    monkeypatch.setattr(engine, "_warm_kernel", slow_warm)
    monkeypatch.setattr(engine, "_run_kernel", run)
    frames = _arrays()
    got = integrate(frames, config=IntegrationConfig(rejection="none", normalization="none",
                                                     weights="none"))
    assert calls and all(calls)
    np.testing.assert_allclose(got.image, np.mean(frames, axis=0), rtol=1e-6)


def test_loader_error_surfaces(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(n: int) -> None:
        raise RuntimeError("kernel failed to load")

    monkeypatch.setattr(engine._KernelLoader, "_ready", False)
    monkeypatch.setattr(engine, "_warm_kernel", broken)
    with pytest.raises(RuntimeError, match="kernel failed to load"):
        integrate(_arrays())
    # an error of the integration itself wins over the loader's (and no thread is left running)
    frames = [*_arrays(3), np.zeros((10, 10), np.float32)]
    with pytest.raises(engine.IntegrationError, match="shape"):
        integrate(frames)
    assert not [t for t in threading.enumerate() if t.name == "skystack-kernel-load"]
