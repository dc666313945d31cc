"""TIFF backend: 8/16-bit and float reads, mono and RGB, writes and round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skystack.errors import ImageReadError, ImageWriteError
from skystack.io import Image, Keyword, read_header, read_image, write_image


@pytest.mark.parametrize(
    ("dtype", "top"), [(np.uint8, 255), (np.uint16, 65535)]
)
def test_integer_mono(tmp_path: Path, dtype: type, top: int) -> None:
    values = np.array([[0, 1, top // 2], [top - 1, top, 7]], dtype=dtype)
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, values)
    img = read_image(path)
    assert img.format == "tiff" and img.sample_format == np.dtype(dtype).name
    assert img.data_range == (0.0, float(top)) and img.row_order == "TOP-DOWN"
    np.testing.assert_array_equal(img.data, values.astype(np.float32) / np.float32(top))


def test_float32_kept_as_is(tmp_path: Path) -> None:
    values = np.array([[-0.5, 0.0, 0.25], [1.0, 3.5, 1e-7]], dtype=np.float32)
    path = tmp_path / "f.tiff"
    tifffile.imwrite(path, values)
    img = read_image(path)
    assert img.sample_format == "float32"
    np.testing.assert_array_equal(img.data, values)


def test_rgb_interleaved_becomes_planar(tmp_path: Path) -> None:
    rgb = (np.arange(4 * 5 * 3, dtype=np.uint16).reshape(4, 5, 3) * 1000)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    img = read_image(path)
    assert img.data.shape == (3, 4, 5) and img.data.flags.c_contiguous
    np.testing.assert_array_equal(img.data[0], rgb[:, :, 0] / np.float32(65535))
    np.testing.assert_array_equal(img.data[2], rgb[:, :, 2] / np.float32(65535))
    assert read_header(path).shape == (3, 4, 5)


def test_rgba_drops_alpha_and_planar_rgb(tmp_path: Path) -> None:
    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    rgba[..., 1] = 51
    rgba[..., 3] = 255
    path = tmp_path / "rgba.tif"
    tifffile.imwrite(path, rgba, photometric="rgb", extrasamples=["unassalpha"])
    img = read_image(path)
    assert img.data.shape == (3, 4, 5)
    assert float(img.data[1, 0, 0]) == pytest.approx(0.2) and float(img.data[2].max()) == 0.0
    planar = np.stack([np.full((4, 5), v, dtype=np.float32) for v in (0.1, 0.2, 0.3)])
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, planar, photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(read_image(path).data, planar)


def test_write_keywords_cfa_travel_in_description(tmp_path: Path) -> None:
    img = Image.from_array(
        np.full((4, 6), 0.5, dtype=np.float32),
        keywords=[Keyword("EXPTIME", 120.0, "[s]"), Keyword("FILTER", "Ha", "")],
        bayer_pattern="RGGB",
        row_order="BOTTOM-UP",
    )
    path = tmp_path / "k.tif"
    write_image(path, img, sample_format="uint16")
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.dtype == np.uint16
    back = read_image(path)
    assert back.get("EXPTIME") == 120.0 and back.get("FILTER") == "Ha"
    assert back.bayer_pattern == "RGGB" and back.row_order == "BOTTOM-UP"
    assert float(back.data[0, 0]) == np.float32(32768 / 65535)
    assert read_header(path).get("EXPTIME") == 120.0


def test_write_errors(tmp_path: Path) -> None:
    img = Image.from_array(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ImageWriteError, match="compression"):
        write_image(tmp_path / "a.tif", img, compression="jpeg")
    with pytest.raises(ImageWriteError, match="int16"):
        write_image(tmp_path / "a.tif", img, sample_format="int16")


def test_truncated_tiff_names_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, np.ones((64, 64), dtype=np.uint16))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ImageReadError, match="cut.tif"):
        read_image(path)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sample_format=st.sampled_from(["uint8", "uint16", "float32"]),
    channels=st.sampled_from([1, 3]),
    compression=st.sampled_from([None, "zlib"]),
    seed=st.integers(0, 2**16),
    height=st.integers(1, 13),
    width=st.integers(1, 15),
)
def test_round_trip(tmp_path: Path, sample_format: str, channels: int, compression: str | None,
                    seed: int, height: int, width: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (channels, height, width)
    if sample_format == "float32":
        data = rng.normal(0.5, 2.0, size=shape).astype(np.float32)
    else:
        top = 255 if sample_format == "uint8" else 65535
        data = (rng.integers(0, top, size=shape, endpoint=True) / top).astype(np.float32)
    path = tmp_path / f"rt_{sample_format}_{channels}_{compression}.tif"
    write_image(path, Image.from_array(data, keywords=[Keyword("SEED", seed)]),
                sample_format=sample_format, compression=compression)
    back = read_image(path)
    assert back.sample_format == sample_format and back.data.shape == shape
    assert back.get("SEED") == seed
    np.testing.assert_array_equal(back.data, data)
