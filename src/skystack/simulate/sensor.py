"""The camera: bias pattern, read noise, gain, full well, dark current, defective pixels.

Everything fixed per camera (bias pattern, hot/warm/cold pixels, pixel response, amp glow shape)
comes from :attr:`Camera.seed` alone, so two simulations with the same camera share them — as two
nights with one real camera do. Per-frame noise comes from the frame's own generator.

Units: electrons (e⁻) inside, ADU (0…65535) at the output of :func:`read_out`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

__all__ = ["Camera", "SensorMaps", "sensor_maps", "dark_current_map", "read_out", "HOT", "WARM", "COLD"]

#: Defect kinds in :attr:`SensorMaps.defects` (``kind`` column).
HOT, WARM, COLD = 1, 2, 3
_KIND_NAMES = {HOT: "hot", WARM: "warm", COLD: "cold"}


@dataclass(frozen=True)
class Camera:
    """A camera's sensor, as a data sheet (and a bad day at the factory) would describe it.

    Attributes
    ----------
    width, height : int
        Sensor size in pixels.
    name : str
        Written as INSTRUME.
    bias_adu : float
        Mean bias (offset) level in ADU.
    bias_column_sigma_adu, bias_row_sigma_adu : float
        Spread of the fixed per-column / per-row bias offsets (ADU).
    read_noise_e : float
        Read noise, electrons RMS.
    gain_e_per_adu : float
        Conversion gain (e⁻/ADU; FITS EGAIN). ``gain_setting`` is the driver's unitless GAIN.
    full_well_e : float
        Electrons a pixel holds; more are lost (saturation before the ADC's 65535).
    adc_bits : int
        ADC resolution; values are multiples of 2**(16 - adc_bits) as cameras scale them.
    dark_current_e_s : float
        Mean dark current at ``dark_ref_temp_c`` (e⁻/s/pixel).
    dark_doubling_c : float
        Temperature rise that doubles dark current (°C).
    amp_glow_e_s : float
        Amp-glow rate at the glowing corner at ``dark_ref_temp_c`` (e⁻/s); 0 disables it.
    amp_glow_corner : tuple of int
        (x, y) corner as (0|1, 0|1): 1 = last column / last row.
    amp_glow_scale : float
        e-folding distance of the glow as a fraction of the sensor width.
    hot_fraction, warm_fraction, cold_fraction : float
        Fractions of defective pixels. Hot pixels have 50–1000×, warm 5–30× the mean dark
        current; cold pixels respond at 20–60 % to light and have no dark current.
    prnu_sigma : float
        Pixel response non-uniformity (relative RMS of the per-pixel sensitivity).
    bad_column : int or None
        A column with +``bad_column_adu`` bias offset and 50× dark current, or None.
    bayer : str or None
        CFA pattern of the top-left 2×2 block in memory order (``"RGGB"``…), None for mono.
    cfa_response : tuple of float
        Relative R, G, B sensitivity of the CFA sites (colour cameras only; shows in flats).
    gain_setting, offset_setting : int
        The driver's GAIN and OFFSET values written to headers.
    pixel_size_um : float
        Pixel pitch (XPIXSZ).
    seed : int
        Seed of everything fixed per camera.
    """

    width: int = 1024
    height: int = 768
    name: str = "ZWO ASI2600MM Pro"
    bias_adu: float = 500.0
    bias_column_sigma_adu: float = 1.5
    bias_row_sigma_adu: float = 0.6
    read_noise_e: float = 1.8
    gain_e_per_adu: float = 0.5
    full_well_e: float = 30000.0
    adc_bits: int = 16
    dark_current_e_s: float = 0.01
    dark_ref_temp_c: float = -10.0
    dark_doubling_c: float = 6.0
    amp_glow_e_s: float = 0.4
    amp_glow_corner: tuple[int, int] = (1, 0)
    amp_glow_scale: float = 0.08
    hot_fraction: float = 2e-4
    warm_fraction: float = 1e-3
    cold_fraction: float = 1e-4
    prnu_sigma: float = 0.005
    bad_column: int | None = None
    bad_column_adu: float = 40.0
    bayer: str | None = None
    cfa_response: tuple[float, float, float] = (0.85, 1.0, 0.7)
    gain_setting: int = 100
    offset_setting: int = 50
    pixel_size_um: float = 3.76
    seed: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of a frame."""
        return (self.height, self.width)

    @property
    def saturation_adu(self) -> float:
        """The largest value a pixel can read, in ADU (full well or ADC, whichever comes first)."""
        step = 2 ** (16 - self.adc_bits)
        top = min(self.full_well_e / self.gain_e_per_adu + self.bias_adu, 65535.0)
        return float(np.floor(top / step) * step)

    def dark_factor(self, temperature: float) -> float:
        """Dark current at ``temperature`` relative to ``dark_ref_temp_c`` (doubles every
        ``dark_doubling_c`` °C)."""
        return float(2.0 ** ((temperature - self.dark_ref_temp_c) / self.dark_doubling_c))


@dataclass(frozen=True)
class SensorMaps:
    """Per-pixel maps fixed for one camera (all float32, shape (H, W)).

    Attributes
    ----------
    bias : ndarray
        Noiseless bias frame in ADU (level + column/row pattern + bad column).
    dark_scale : ndarray
        Dark current of each pixel relative to the camera's mean (hot/warm pixels ≫ 1, cold 0).
    amp_glow : ndarray
        Amp-glow rate at the reference temperature (e⁻/s).
    response : ndarray
        Relative sensitivity to light: PRNU × cold pixels (× CFA response for colour sensors).
    cfa_index : ndarray of int8 or None
        Colour of each pixel (0 = R, 1 = G, 2 = B) for Bayer sensors, else None.
    defects : ndarray
        Structured rows (x, y, kind, dark_scale, response), kind as in HOT/WARM/COLD.
    """

    bias: NDArray[np.float32]
    dark_scale: NDArray[np.float32]
    amp_glow: NDArray[np.float32]
    response: NDArray[np.float32]
    cfa_index: NDArray[np.int8] | None
    defects: NDArray[np.void]


def cfa_index_map(pattern: str, shape: tuple[int, int]) -> NDArray[np.int8]:
    """Channel index (0 R, 1 G, 2 B) of every pixel for a 2×2 Bayer ``pattern`` like ``"RGGB"``."""
    code = {"R": 0, "G": 1, "B": 2}
    tile = np.array([[code[pattern[0]], code[pattern[1]]], [code[pattern[2]], code[pattern[3]]]],
                    dtype=np.int8)
    h, w = shape
    return np.tile(tile, ((h + 1) // 2, (w + 1) // 2))[:h, :w].copy()


@lru_cache(maxsize=8)
def sensor_maps(camera: Camera) -> SensorMaps:
    """Build (and cache) the fixed per-pixel maps of ``camera``."""
    rng = np.random.default_rng((camera.seed, 0x5E75))
    h, w = camera.shape
    cols = rng.normal(0.0, camera.bias_column_sigma_adu, w)
    rows = rng.normal(0.0, camera.bias_row_sigma_adu, h)
    bias = (camera.bias_adu + rows[:, None] + cols[None, :]).astype(np.float32)

    dark_scale = np.ones((h, w), np.float32)
    response = (1.0 + rng.normal(0.0, camera.prnu_sigma, (h, w))).astype(np.float32)

    n = h * w
    counts = [int(round(f * n)) for f in (camera.hot_fraction, camera.warm_fraction,
                                          camera.cold_fraction)]
    flat_idx = rng.choice(n, size=sum(counts), replace=False)
    kinds = np.repeat(np.array([HOT, WARM, COLD], np.int8), counts)
    scale = np.ones(len(kinds), np.float32)
    resp = np.ones(len(kinds), np.float32)
    scale[kinds == HOT] = np.exp(rng.uniform(np.log(50), np.log(1000), counts[0]))
    scale[kinds == WARM] = rng.uniform(5, 30, counts[1])
    scale[kinds == COLD] = 0.0
    resp[kinds == COLD] = rng.uniform(0.2, 0.6, counts[2])
    ys, xs = np.divmod(flat_idx, w)
    dark_scale[ys, xs] = scale
    response[ys[kinds == COLD], xs[kinds == COLD]] *= resp[kinds == COLD]

    if camera.bad_column is not None:
        bias[:, camera.bad_column] += camera.bad_column_adu
        dark_scale[:, camera.bad_column] *= 50.0

    cfa = None
    if camera.bayer:
        cfa = cfa_index_map(camera.bayer, (h, w))
        response *= np.asarray(camera.cfa_response, np.float32)[cfa]

    glow = np.zeros((h, w), np.float32)
    if camera.amp_glow_e_s > 0:
        cx = (w - 1) * camera.amp_glow_corner[0]
        cy = (h - 1) * camera.amp_glow_corner[1]
        yy, xx = np.ogrid[:h, :w]
        dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2, dtype=np.float32)
        glow = (camera.amp_glow_e_s * np.exp(-dist / (camera.amp_glow_scale * w))).astype(np.float32)

    defects = np.zeros(len(kinds), dtype=[("x", "i4"), ("y", "i4"), ("kind", "i1"),
                                          ("dark_scale", "f4"), ("response", "f4")])
    defects["x"], defects["y"], defects["kind"] = xs, ys, kinds
    defects["dark_scale"], defects["response"] = scale, resp
    order = np.lexsort((defects["x"], defects["y"]))
    for arr in (bias, dark_scale, glow, response):
        arr.flags.writeable = False
    return SensorMaps(bias=bias, dark_scale=dark_scale, amp_glow=glow, response=response,
                      cfa_index=cfa, defects=defects[order])


def defect_kind_name(kind: int) -> str:
    """``"hot"``, ``"warm"`` or ``"cold"`` for a defect kind code."""
    return _KIND_NAMES[int(kind)]


def dark_current_map(camera: Camera, temperature: float) -> NDArray[np.float32]:
    """Dark current of every pixel at ``temperature`` (e⁻/s), amp glow and hot pixels included."""
    maps = sensor_maps(camera)
    rate = camera.dark_current_e_s * maps.dark_scale + maps.amp_glow
    return (rate * np.float32(camera.dark_factor(temperature))).astype(np.float32)


#: Above this many expected electrons a Gaussian of the same mean and variance replaces the
#: Poisson draw (skewness 1/√λ < 0.03; 5× faster on flats).
GAUSS_ABOVE_E = 1000.0


def _photon_noise(lam: NDArray[np.float32], rng: np.random.Generator) -> NDArray[np.float32]:
    """Poisson(λ) per pixel; Gaussian N(λ, λ) where λ > :data:`GAUSS_ABOVE_E`."""
    big = lam > GAUSS_ABOVE_E
    n_big = int(np.count_nonzero(big))
    if n_big == 0:
        return rng.poisson(lam).astype(np.float32)
    if n_big == lam.size:
        out = rng.standard_normal(lam.shape, dtype=np.float32)
        out *= np.sqrt(lam)
        out += lam
        return np.rint(out)
    out = rng.poisson(np.where(big, 0.0, lam)).astype(np.float32)
    lb = lam[big]
    out[big] = np.rint(lb + np.sqrt(lb) * rng.standard_normal(n_big, dtype=np.float32))
    return out


def read_out(
    electrons: NDArray[np.floating] | None,
    camera: Camera,
    rng: np.random.Generator,
    *,
    extra_electrons: NDArray[np.floating] | None = None,
    noise: bool = True,
) -> NDArray[np.float32]:
    """Turn expected electrons into the ADU a camera writes.

    Parameters
    ----------
    electrons : ndarray or None
        Expected electrons per pixel (light + dark current), shape (H, W); None for a bias.
    camera : Camera
        The camera (bias map, gain, read noise, full well, ADC).
    rng : numpy.random.Generator
        Source of the photon and read noise.
    extra_electrons : ndarray, optional
        Electrons deposited without shot noise of their own (cosmic rays), added after sampling.
    noise : bool
        False gives the expected value (no Poisson or read noise), still clipped and quantized.

    Returns
    -------
    ndarray of float32
        Integer-valued ADU in [0, 65535].
    """
    maps = sensor_maps(camera)
    if electrons is None:
        e = np.zeros(camera.shape, np.float32)
    elif noise:
        e = _photon_noise(np.maximum(np.asarray(electrons, np.float32), 0.0), rng)
    else:
        e = np.asarray(electrons, np.float32).copy()
    if extra_electrons is not None:
        e += extra_electrons
    full = e >= np.float32(camera.full_well_e)
    np.minimum(e, np.float32(camera.full_well_e), out=e)
    adu = e * np.float32(1.0 / camera.gain_e_per_adu)
    adu += maps.bias
    if noise:
        sigma = np.float32(camera.read_noise_e / camera.gain_e_per_adu)
        adu += sigma * rng.standard_normal(camera.shape, dtype=np.float32)
    step = np.float32(2 ** (16 - camera.adc_bits))
    if step > 1:
        np.floor(adu / step, out=adu)
        adu *= step
    else:
        np.rint(adu, out=adu)
    # A full pixel reads the camera's white level, as cameras clip digitally.
    top = np.float32(camera.saturation_adu)
    adu[full] = top
    np.clip(adu, 0.0, top, out=adu)
    return adu
