"""The run's noise-gain measure (``_quality``) against stacks whose noise is known exactly.

Synthetic registered frames on the master's scale are ``sky + n_i`` with Gaussian ``n_i`` of known
σ_i; each frame is stored as the input its LN function maps back there (``a0_i(x, y) + a1_i · x``),
so the expected single-frame noise, master noise and gain follow from σ_i and the weights alone.
The two ways the measure used to miss on the simulated night are built in separately: frames that
do not cover the whole grid (rotation, dithering) and frames with different sky gradients.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from skystack.calibrate import mrs_noise
from skystack.integrate import IntegrationConfig, integrate
from skystack.io import Image, write_image
from skystack.normalize import ChannelNormalization, LocalNormalization
from skystack.pipeline.run import _quality

H, W, CELL = 256, 384, 32
SKY = 0.02
#: σ per frame on the master's scale: two hazy frames (LN scales them up, and their noise)
SIGMAS = np.array([1.0, 1.02, 1.6, 0.98, 1.0, 1.01, 0.99, 1.35]) * 1e-3
CFG = IntegrationConfig(rejection="none", normalization="additive-scaling",
                        rejection_normalization="scale", weights="noise", subtract_pedestal=False,
                        range_low=0.0)


def _corner_mask(corner: int, size: float) -> np.ndarray:
    """True in a triangle of one image corner (what a rotated frame misses)."""
    y, x = np.mgrid[0:H, 0:W]
    u = x / (W - 1) if corner in (0, 2) else 1 - x / (W - 1)
    v = y / (H - 1) if corner in (0, 1) else 1 - y / (H - 1)
    return u + v < size


def _frames(tmp: Path, *, corners: bool, gradients: bool, seed: int = 5) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    gh, gw = int(np.ceil(H / CELL)), int(np.ceil(W / CELL))
    gy, gx = np.mgrid[0:gh, 0:gw]
    out = []
    for i, sigma in enumerate(SIGMAS):
        a1 = 1.0 + 0.08 * i
        grid = np.zeros((gh, gw))
        if gradients:
            # a sky gradient that turns during the night (the moon rises): 8 σ across the frame
            ang = 0.7 * i
            grid = 8e-3 * (np.cos(ang) * (gx / gw - 0.5) + np.sin(ang) * (gy / gh - 0.5))
        a0 = LocalNormalization(grid, a1, CELL, (H, W)).a0().astype(np.float64)
        on_master = SKY + rng.normal(0.0, sigma, (H, W))
        data = (on_master - a0) / a1  # the input that LN maps to ``on_master``
        if corners:
            # each frame misses one corner; frames i and i + 4 miss the same one
            data[_corner_mask(i % 4, 0.7)] = 0.0
        reg = tmp / f"reg_{i}.fits"
        write_image(reg, Image.from_array(data.astype(np.float32)))
        ln = tmp / f"ln_{i}.npz"
        np.savez(ln, a0_0=grid, a1_0=np.array(a1), cell_0=np.array(CELL))
        out.append({"path": str(reg), "registered": str(reg), "ln": str(ln)})
    return out


def _measure(frames: list[dict[str, Any]], weights: np.ndarray) -> dict[str, Any]:
    paths = [r["registered"] for r in frames]
    lns = [ChannelNormalization.load(r["ln"], (H, W)) for r in frames]

    def stack(idx: np.ndarray) -> Any:
        return integrate([paths[i] for i in idx], config=CFG, weights=weights[idx],
                         local_normalization=[lns[i] for i in idx])

    res = stack(np.arange(len(paths)))
    return _quality(res, frames, mrs_noise, halves=stack)


def _expected_gain(weights: np.ndarray) -> float:
    s2 = SIGMAS**2
    single = np.median(np.sqrt((s2[:-1] + s2[1:]) / 2))  # median over consecutive pairs
    master = np.sqrt(np.sum(weights**2 * s2)) / np.sum(weights)
    return float(single / master)


WEIGHTS = {"equal": np.ones(len(SIGMAS)), "inverse-variance": (SIGMAS.min() / SIGMAS) ** 2}


@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_gain_where_frames_do_not_cover_the_grid(tmp_path: Path, name: str) -> None:
    # partly covered corners hold fewer frames: measured there, the gain used to read ~10 % low
    q = _measure(_frames(tmp_path, corners=True, gradients=False), WEIGHTS[name])
    assert q["noise_gain"] == pytest.approx(_expected_gain(WEIGHTS[name]), rel=0.03)


def test_gain_with_turning_sky_gradients(tmp_path: Path) -> None:
    # the single-frame noise is that of frames normalized with LN's a0 too: with a1 alone the
    # pair differences hold the gradients and the gain used to read high
    w = WEIGHTS["inverse-variance"]
    q = _measure(_frames(tmp_path, corners=False, gradients=True), w)
    s2 = SIGMAS**2
    assert q["noise_single"] == pytest.approx(np.median(np.sqrt((s2[:-1] + s2[1:]) / 2)), rel=0.02)
    assert q["noise_gain"] == pytest.approx(_expected_gain(w), rel=0.03)


def test_inverse_variance_weights_beat_equal_weights(tmp_path: Path) -> None:
    frames = _frames(tmp_path, corners=True, gradients=True)
    gains = {name: _measure(frames, w)["noise_gain"] for name, w in WEIGHTS.items()}
    # the optimum is 6 % better here; the measure must see it
    ideal = _expected_gain(WEIGHTS["inverse-variance"]) / _expected_gain(WEIGHTS["equal"])
    assert ideal > 1.03
    assert gains["inverse-variance"] / gains["equal"] == pytest.approx(ideal, abs=0.015)
