"""Transient events in a single frame: satellite and airplane trails, cosmic-ray hits.

Both are in *frame* pixel coordinates (they happen on the sensor, not on the sky) and in
electrons over the whole exposure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Trail", "random_trail", "render_trail", "CosmicRays", "cosmic_rays"]


@dataclass(frozen=True)
class Trail:
    """A straight trail across the frame.

    Attributes
    ----------
    kind : {"satellite", "airplane"}
        Satellites are one smooth line; airplanes are two parallel lines of blinking lights.
    x, y : float
        A point on the trail (frame pixels).
    angle : float
        Direction, degrees counter-clockwise from +x.
    width : float
        Gaussian sigma of the cross-section (pixels).
    peak_e : float
        Peak electrons on the trail's axis.
    """

    kind: str
    x: float
    y: float
    angle: float
    width: float
    peak_e: float

    def to_json(self) -> dict[str, Any]:
        """Plain dict for ``truth.json``."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def random_trail(shape: tuple[int, int], rng: np.random.Generator, *,
                 kind: str | None = None) -> Trail:
    """A trail through a random point of the frame in a random direction."""
    h, w = shape
    if kind is None:
        kind = "satellite" if rng.random() < 0.75 else "airplane"
    peak = rng.uniform(300, 3000) if kind == "satellite" else rng.uniform(2000, 10000)
    return Trail(kind=kind, x=float(rng.uniform(0.2, 0.8) * w), y=float(rng.uniform(0.2, 0.8) * h),
                 angle=float(rng.uniform(0, 180)), width=float(rng.uniform(0.8, 1.6)),
                 peak_e=float(peak))


def render_trail(shape: tuple[int, int], trail: Trail) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Electrons a trail deposits and its mask (pixels where it adds ≥ 1 % of its peak).

    Returns
    -------
    image : ndarray of float32
        Electrons per pixel.
    mask : ndarray of bool
        True where the trail is significant.
    """
    h, w = shape
    th = np.deg2rad(trail.angle)
    yy, xx = np.ogrid[:h, :w]
    dx, dy = (xx - trail.x).astype(np.float32), (yy - trail.y).astype(np.float32)
    across = dx * np.float32(np.sin(th)) - dy * np.float32(np.cos(th))
    g = np.float32(-0.5 / trail.width**2)
    if trail.kind == "airplane":
        along = dx * np.float32(np.cos(th)) + dy * np.float32(np.sin(th))
        lines = np.exp((across - 3.0) ** 2 * g) + np.exp((across + 3.0) ** 2 * g)
        # Strobes: lit for 30 % of every 40 px of travel.
        lit = np.mod(along, np.float32(40.0)) < 12.0
        img = lines * lit
    else:
        img = np.exp(across * across * g)
    img = (img * np.float32(trail.peak_e)).astype(np.float32)
    return img, img >= 0.01 * trail.peak_e


@dataclass(frozen=True)
class CosmicRays:
    """Cosmic-ray hits of one frame: pixel rows/columns and deposited electrons (one entry per
    pixel, several pixels per hit), and the number of hits."""

    count: int
    ys: NDArray[np.int64]
    xs: NDArray[np.int64]
    electrons: NDArray[np.float32]

    def add_to(self, img: NDArray[np.float32]) -> None:
        """Add the deposited electrons to ``img`` in place."""
        np.add.at(img, (self.ys, self.xs), self.electrons)


def cosmic_rays(shape: tuple[int, int], exposure: float, rate_per_mpx_s: float,
                rng: np.random.Generator) -> CosmicRays:
    """Draw cosmic-ray hits: Poisson count ∝ exposure × area, short tracks of 1–6 pixels with
    500–20000 e⁻ per pixel (log-uniform)."""
    h, w = shape
    count = int(rng.poisson(max(rate_per_mpx_s, 0.0) * exposure * h * w / 1e6))
    ys, xs, es = [], [], []
    for _ in range(count):
        length = int(rng.integers(1, 7))
        ang = rng.uniform(0, np.pi)
        y0, x0 = rng.uniform(0, h), rng.uniform(0, w)
        t = np.arange(length)
        py = np.clip(np.rint(y0 + t * np.sin(ang)).astype(np.int64), 0, h - 1)
        px = np.clip(np.rint(x0 + t * np.cos(ang)).astype(np.int64), 0, w - 1)
        ys.append(py)
        xs.append(px)
        es.append(np.exp(rng.uniform(np.log(500), np.log(20000), length)).astype(np.float32))
    if not count:
        empty = np.zeros(0, np.int64)
        return CosmicRays(0, empty, empty, np.zeros(0, np.float32))
    return CosmicRays(count, np.concatenate(ys), np.concatenate(xs), np.concatenate(es))
