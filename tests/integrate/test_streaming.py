"""Streaming from files by row bands equals the in-memory result; memory stays bounded."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from skystack.integrate import IntegrationConfig, integrate, parse_memory
from skystack.errors import ImageReadError
from skystack.io import read_image


def _write_frames(tmp: Path, n: int, h: int, w: int, kind: str, seed: int = 3) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        f = 0.2 + 0.02 * rng.standard_normal((h, w))
        f[rng.random((h, w)) < 0.003] += 0.5
        f[:, : 3 + i] = 0.0                         # no-data border that differs per frame
        p = tmp / f"f{i:02d}.fits"
        if kind == "uint16":
            data = np.rint(np.clip(f, 0, 1) * 65535).astype(np.uint16)
            hdu = fits.PrimaryHDU(data)
            hdu.header["PEDESTAL"] = 100
        else:
            hdu = fits.PrimaryHDU(f.astype(np.float32))
        hdu.writeto(p)
        paths.append(p)
    return paths


@pytest.mark.parametrize("kind", ["float32", "uint16"])
@pytest.mark.parametrize("large_scale", [False, True])
def test_streaming_equals_in_memory(tmp_path: Path, kind: str, large_scale: bool) -> None:
    paths = _write_frames(tmp_path, 9, 96, 80, kind)
    cfg = IntegrationConfig(rejection="winsorized", large_scale=large_scale)
    streamed = integrate(paths, config=cfg, memory=40_000)    # a few rows per band
    assert streamed.bands > 10
    arrays = [read_image(p).data for p in paths]
    if kind == "uint16":
        # in memory there is no header: hand the pedestal over as the frames minus it
        arrays = [np.where(a != 0, a - np.float32(100 / 65535), a) for a in arrays]
    whole = integrate(arrays, config=cfg)
    assert whole.bands == 1
    np.testing.assert_allclose(streamed.image, whole.image, atol=1e-6)
    np.testing.assert_array_equal(streamed.coverage, whole.coverage)
    np.testing.assert_array_equal(streamed.low_rejected, whole.low_rejected)
    np.testing.assert_array_equal(streamed.high_rejected, whole.high_rejected)
    assert [s.rejected_high for s in streamed.stats] == pytest.approx(
        [s.rejected_high for s in whole.stats])


@pytest.mark.parametrize("shape", [(64, 72), (3, 40, 56)])
def test_raw_uint16_bands_equal_decoded_arrays(tmp_path: Path, shape: tuple[int, ...]) -> None:
    """16-bit FITS bands are decoded inside the kernel: bit-identical to decoding first."""
    rng = np.random.default_rng(9)
    paths = []
    for i in range(7):
        f = np.clip(0.3 + 0.03 * rng.standard_normal(shape), 0, 1)
        f[..., : 2 + i] = 0.0
        f.reshape(-1)[rng.integers(0, f.size, 20)] = 1.0          # saturated samples
        p = tmp_path / f"u{i}.fits"
        fits.PrimaryHDU(np.rint(f * 65535).astype(np.uint16)).writeto(p)
        paths.append(p)
    cfg = IntegrationConfig(rejection="winsorized", range_high=0.98)
    streamed = integrate(paths, config=cfg, memory=60_000)
    whole = integrate([read_image(p).data for p in paths], config=cfg)
    assert streamed.bands > 2
    np.testing.assert_array_equal(streamed.image, whole.image)
    np.testing.assert_array_equal(streamed.high_rejected, whole.high_rejected)
    np.testing.assert_array_equal(streamed.coverage, whole.coverage)


def test_cached_path_for_compressed_fits(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    plain, packed = [], []
    for i in range(5):
        f = (0.3 + 0.01 * rng.standard_normal((40, 48))).astype(np.float32)
        plain.append(f)
        p = tmp_path / f"c{i}.fits"
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(f, compression_type="GZIP_1",
                                                           quantize_level=0.0)]).writeto(p)
        packed.append(p)
    cfg = IntegrationConfig(rejection="sigma")
    a = integrate(packed, config=cfg, memory=20_000)
    b = integrate(plain, config=cfg)
    np.testing.assert_allclose(a.image, b.image, atol=1e-6)


def test_band_buffers_bounded(tmp_path: Path) -> None:
    """tracemalloc peak grows with the budget, not with the stack."""
    paths = _write_frames(tmp_path, 12, 192, 256, "float32")
    h, w, n = 192, 256, 12
    outputs = h * w * 10
    # room for eight rows of two bands (one read while the other is integrated) + read temps
    budget = outputs + 8 * (2 * (n * w * 4 + w * 4) + w * 16)
    tracemalloc.start()
    res = integrate(paths, config=IntegrationConfig(rejection="winsorized"), memory=budget)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert res.band_rows == 8
    whole_stack = n * h * w * 4
    # outputs + band + per-frame statistics sample (one frame's rows) + small change
    assert peak < outputs + 2 * 8 * n * w * 4 + n * h * w * 4 // 4 + 2_000_000
    assert peak < whole_stack


def test_parse_memory() -> None:
    assert parse_memory("4G") == 4 << 30
    assert parse_memory("512M") == 512 << 20
    assert parse_memory("1.5GB") == int(1.5 * (1 << 30))
    assert parse_memory(1000) == 1000
    assert parse_memory(None) > 0


def test_write_fits_with_maps(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    frames = list((0.1 + 0.01 * rng.standard_normal((6, 20, 24))).astype(np.float32))
    frames[2][5, 5] = 0.9
    res = integrate(frames, config=IntegrationConfig(rejection="percentile"))
    out = res.write(tmp_path / "master.fits")
    with fits.open(out) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "REJ_LOW", "REJ_HIGH", "COVERAGE"]
        np.testing.assert_array_equal(hdul[0].data, res.image)
        np.testing.assert_array_equal(hdul["REJ_HIGH"].data, res.high_rejected)
        assert hdul["REJ_HIGH"].data[5, 5] >= 1
        assert hdul["COVERAGE"].data.dtype.kind == "u" and int(hdul["COVERAGE"].data.min()) == 6
        assert hdul[0].header["NCOMBINE"] == 6 and hdul[0].header["INTREJ"] == "percentile"


def test_local_normalization_protocol() -> None:
    """A BandNormalizer that undoes a per-frame gradient gets the right rows."""
    from skystack.integrate import BandNormalizer

    rng = np.random.default_rng(5)
    h, w = 64, 48
    ramp = np.linspace(0, 0.05, h, dtype=np.float32)[:, None]

    class Undo:
        def __init__(self, k: float) -> None:
            self.k = k

        def apply(self, band: np.ndarray, row0: int) -> np.ndarray:
            rows = band.shape[-2]
            return band - self.k * ramp[row0:row0 + rows]

    frames = []
    for i in range(6):
        frames.append((0.2 + i * ramp + 0.005 * rng.standard_normal((h, w))).astype(np.float32))
    norms = [Undo(i) for i in range(6)]
    assert all(isinstance(nm, BandNormalizer) for nm in norms)
    res = integrate(frames, config=IntegrationConfig(rejection="sigma"), local_normalization=norms,
                    memory=30_000)
    assert res.bands > 1
    assert abs(float(res.image.mean()) - 0.2) < 1e-3
    assert np.abs(res.image.mean(axis=1) - 0.2).max() < 0.003


def test_primary_header_matches_astropy(tmp_path: Path) -> None:
    """The astropy-free header reader the band reader uses finds the same keywords and offset."""
    from skystack.io.fits import NotPlainFits, read_primary_header

    cases = {
        "u16": fits.PrimaryHDU(np.zeros((5, 7), np.uint16)),
        "f32": fits.PrimaryHDU(np.zeros((3, 5, 7), np.float32)),
    }
    cases["u16"].header["PEDESTAL"] = (100, "ADU added")
    for k in range(60):                          # a header longer than one 2880-byte block
        cases["f32"].header["HISTORY"] = f"step {k} / with a slash"
    cases["f32"].header["PEDESTAL"] = 12.5
    for name, hdu in cases.items():
        p = tmp_path / f"{name}.fits"
        hdu.writeto(p)
        got = read_primary_header(p)
        with fits.open(p) as hdul:
            assert got.data_offset == hdul[0].fileinfo()["datLoc"]
            head = hdul[0].header
            for key in ("BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PEDESTAL"):
                assert got.cards[key] == head[key]
    ext = tmp_path / "ext.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((4, 4), np.float32))]).writeto(ext)
    assert read_primary_header(ext).cards["NAXIS"] == 0     # image in an extension: astropy
    packed = tmp_path / "x.fits.fz"
    packed.write_bytes(ext.read_bytes())
    with pytest.raises(NotPlainFits):
        read_primary_header(packed)


@pytest.mark.parametrize("shape", [(64, 72), (3, 40, 56)])
def test_mapped_bands_equal_gathered_bands(tmp_path: Path, shape: tuple[int, ...],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel reading memory-mapped files gives exactly what it gives on copied bands."""
    from skystack.integrate import engine
    from skystack.integrate import io as integrate_io

    monkeypatch.setattr(engine, "BAND_CAP", 20_000)          # several bands of a few rows
    mapped_calls = []
    real = engine._map_band
    monkeypatch.setattr(engine, "_map_band",
                        lambda *a, **k: mapped_calls.append(1) or real(*a, **k))
    rng = np.random.default_rng(12)
    paths = []
    for i in range(9):
        f = np.clip(0.2 + 0.02 * rng.standard_normal(shape), 0, 1)
        f.reshape(-1)[rng.integers(0, f.size, 30)] = 0.9              # cosmics
        p = tmp_path / f"m{i}.fits"
        fits.PrimaryHDU(np.rint(f * 65535).astype(np.uint16)).writeto(p)
        paths.append(p)
    for method in ("winsorized", "linear-fit"):
        cfg = IntegrationConfig(rejection=method)
        mapped = integrate(paths, config=cfg, memory="1G")
        with monkeypatch.context() as m:
            m.delattr(integrate_io.FitsBandSource, "raw_rows_address")
            gathered = integrate(paths, config=cfg, memory="1G")
        assert mapped.bands > 2 and len(mapped_calls) == mapped.bands     # every band mapped
        mapped_calls.clear()
        np.testing.assert_array_equal(mapped.image, gathered.image)
        np.testing.assert_array_equal(mapped.low_rejected, gathered.low_rejected)
        np.testing.assert_array_equal(mapped.high_rejected, gathered.high_rejected)
        np.testing.assert_array_equal(mapped.coverage, gathered.coverage)
        assert [s.rejected_low for s in mapped.stats] == [s.rejected_low for s in gathered.stats]


def test_small_budgets_read_16bit_bands_into_buffers(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Files are read in place only when the budget would hold all of them (see _can_map)."""
    from skystack.integrate import engine

    paths = []
    for i in range(4):
        p = tmp_path / f"b{i}.fits"
        fits.PrimaryHDU(np.full((32, 40), 1000 + i, np.uint16)).writeto(p)
        paths.append(p)
    taken = []
    real = engine._map_band
    monkeypatch.setattr(engine, "_map_band",
                        lambda *a, **k: taken.append(1) or real(*a, **k))
    small = integrate(paths, config=IntegrationConfig(rejection="none"), memory=200_000)
    assert taken == []
    big = integrate(paths, config=IntegrationConfig(rejection="none"), memory="1G")
    assert len(taken) == big.bands
    np.testing.assert_array_equal(small.image, big.image)
    # normalized to the first frame, whose level is 1000 ADU
    np.testing.assert_allclose(small.image, np.float32(1000 / 65535), rtol=1e-6)


def test_truncated_16bit_file_is_refused_before_mapping(tmp_path: Path) -> None:
    """A file shorter than its header says is an error naming it, never a crash in the kernel."""
    from skystack.integrate.io import open_sources

    p = tmp_path / "short.fits"
    fits.PrimaryHDU(np.full((64, 64), 1000, np.uint16)).writeto(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 2880])              # the last data block is gone
    (src,) = open_sources([p], cache_dir=None, subtract_pedestal=False)
    try:
        with pytest.raises(ImageReadError, match="short.fits"):
            src.raw_rows_address(0, 0)
    finally:
        src.close()
