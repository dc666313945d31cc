"""Synthetic observing runs with ground truth, written the way capture programs write them.

Every test, the demo and every benchmark use these frames: the truth says how far a result is
from the sky. Everything is deterministic by seed (same seed → byte-identical files).

High level
----------
>>> from skystack.simulate import simulate, load_truth          # doctest: +SKIP
>>> sim = simulate("out", preset="tiny", seed=1)                 # doctest: +SKIP
>>> sim.lights[0], sim.truth.lights()[0].H                       # doctest: +SKIP

Presets (:data:`PRESETS`, every :class:`Preset` field overridable, e.g. ``frames=20``):
``tiny`` (6 lights 256×192 + a few calibration frames, < 1 s), ``night`` (LRGB + Ha, two nights,
60 lights of 1024×768, 15 bias, 10 darks per exposure, 7 flats per filter per night, 7
dark-flats per flat exposure — about 20–30 s), ``osc`` (Bayer RGGB), ``mosaic`` (2×1 panels),
``messy`` (mixed dialects, a master dark, missing flats, a 180 s light without darks, junk
files) and ``large`` (40 × 4096×3072, two worker processes).

Low level, no file I/O (for other stages' unit tests)
-----------------------------------------------------
``make_scene(w, h, seed=…)`` → :class:`Scene` (a :class:`StarField` + extended objects);
``render_light(LightSpec(scene=…, H=…, fwhm=…), seed=…)`` → (float32 frame in [0, 1],
:class:`FrameTruth`); ``render_dark``, ``render_bias``, ``render_flat``; ``pointing_matrix``;
:class:`Camera` (bias pattern, read noise, gain, full well, dark current doubling every 6 °C,
amp glow, hot/warm/cold pixels); ``moffat_psf`` and ``render_stars(shape, xy, flux, fwhm=…,
beta=…, ellipticity=…, angle=…)``; ``vignetting`` and ``dust_attenuation``; dialects:
:data:`DIALECTS`, ``header_for(dialect, FrameSpec(…))``, ``path_for(dialect, FrameSpec(…))``.

The physics (per frame pixel p)
-------------------------------
``e(p) = t·F(p)·[T·(stars + objects)(H⁻¹p) + sky(p) + trails(p)] + t·D(T_ccd, p) + cosmics(p)``,
then Poisson noise (a Gaussian of equal variance above 1000 e⁻), full-well clip, ÷ gain, + bias
map, + read noise, rounding, 16-bit clip. F = optics (vignetting × dust) × pixel response
(PRNU, cold pixels, CFA response for colour sensors); T = transparency; D = dark current.
A calibrated light ((light − dark) / (flat / mean)) therefore equals t·(T·astro + sky)/gain up
to the flat's normalization.

Coordinates: pixel (x, y) = (column, row), (0, 0) the centre of the first pixel in memory;
rows are written top-down (ROWORDER = 'TOP-DOWN'). The *reference frame* is a canvas of
``truth["reference"]`` size (one frame for single-panel presets, the whole mosaic otherwise);
each light's H maps reference pixels to frame pixels: [x_f, y_f, 1]ᵀ ∝ H·[x_r, y_r, 1]ᵀ.

Truth files (in ``OUT/truth/``; paths in ``truth.json`` are relative to OUT)
----------------------------------------------------------------------------
``truth.json``
    The index, read back by :func:`load_truth`. Keys:

    - ``version`` (1), ``generator``, ``preset``, ``seed``, ``options`` (every preset field),
      ``units``.
    - ``cameras.main``: ``gain_e_per_adu``, ``read_noise_e``, ``read_noise_adu``, ``bias_adu``,
      ``full_well_e``, ``saturation_adu``, ``adc_bits``, ``dark_current_e_s`` at
      ``dark_ref_temp_c``, ``dark_doubling_c``, ``amp_glow_e_s`` + ``amp_glow_corner``,
      ``bad_column``, ``bayer``, ``cfa_response``, ``gain_setting``, ``offset_setting``,
      ``prnu_sigma``; file paths ``bias_map``, ``dark_current`` (set temperature "−10.0" →
      path) and ``hot_pixels``.
    - ``flats``: per filter and night, ``path`` of the truth flat and its ``dust`` motes
      (x, y, radius, depth, hole).
    - ``sky``: band → path of the noiseless sky image; ``stars``: path of the catalogue;
      ``extended``: the galaxy/nebula parameters; ``bands``; ``reference`` (canvas width,
      height, ``panel_centres``, ``ref_fwhm``).
    - ``frames``: one :class:`FrameTruth` per written frame (lights and calibration): path,
      type, filter, exposure, temperature (actual) and set_temperature, night, panel,
      date_obs, dialect, and for lights ``H``, ``rotation_deg``, ``dither``, ``pier_side``,
      ``fwhm``/``beta``/``ellipticity``/``eccentricity``/``psf_angle``/``field_curvature``,
      ``sky`` (band → [a, b, c]: a + b·(x − x_c) + c·(y − y_c) e⁻/s/pixel, frame centre
      (x_c, y_c)), ``transparency``, ``trails``, ``trail_mask``, ``cosmic_rays`` (hit count),
      ``saturated_pixels``, ``flat`` and ``dark_current`` (truth files that apply);
      ``flat_level_e`` for flats; ``master`` for planted masters.
    - ``planted_problems``: ``[{"kind", "paths", "detail"}]`` (``messy``: ``existing_master``,
      ``missing_flats``, ``no_matching_dark``, ``not_an_image``, ``empty_file``,
      ``truncated_file``); empty otherwise.
``bias_main.fits``
    Noiseless bias frame in ADU (level + fixed column/row pattern + bad column).
``dark_current_main_<T>C.fits``
    Dark current in e⁻/s per pixel at set temperature T (hot/warm pixels and amp glow included).
``hot_pixels_main.csv``
    ``x,y,kind,dark_scale,response``: every hot, warm and cold pixel (dark_scale = dark current
    relative to the mean; response = relative sensitivity, < 1 for cold pixels).
``flat_<filter>_<night>.fits``
    Relative response (vignetting × dust × pixel response [× CFA response]); 1 = on-axis,
    dust-free, average pixel. A perfect master flat is this up to a constant.
``sky_<band>.fits``
    Noiseless sky through a band on the reference canvas (e⁻/s/pixel): stars (round Moffat,
    FWHM ``reference.ref_fwhm``, β 3.5) + extended objects; no background, vignetting or noise.
``stars.csv``
    ``x,y,flux_<band>…``: star positions on the reference canvas (including a margin outside
    it) and total fluxes in e⁻/s through each band.
``trails/<frame>.fits``
    Trail mask of a light (1 where a satellite/airplane trail adds ≥ 1 % of its peak).

All truth images are FITS float32 in the physical units above (BUNIT), not normalized.
"""

from __future__ import annotations

from skystack.simulate.build import simulate
from skystack.simulate.dialects import DIALECTS, FRAME_KINDS, IMAGETYP, FrameSpec, header_for, path_for
from skystack.simulate.events import CosmicRays, Trail, cosmic_rays, random_trail, render_trail
from skystack.simulate.optics import (
    DustMote,
    dust_attenuation,
    eccentricity,
    moffat_alpha,
    moffat_psf,
    render_stars,
    vignetting,
)
from skystack.simulate.presets import PRESETS, Preset, get_preset
from skystack.simulate.render import (
    LightSpec,
    Scene,
    apply_transform,
    make_scene,
    pointing_matrix,
    render_bias,
    render_dark,
    render_flat,
    render_light,
    to_unit,
)
from skystack.simulate.sensor import Camera, SensorMaps, dark_current_map, read_out, sensor_maps
from skystack.simulate.sky import BANDS, Galaxy, Nebula, StarField, make_star_field, sky_plane
from skystack.simulate.truth import FrameTruth, Simulation, Truth, TruthError, load_truth

__all__ = [
    "simulate", "load_truth", "Simulation", "Truth", "FrameTruth", "TruthError",
    "PRESETS", "Preset", "get_preset",
    "Camera", "SensorMaps", "sensor_maps", "dark_current_map", "read_out",
    "Scene", "make_scene", "LightSpec", "render_light", "render_dark", "render_bias",
    "render_flat", "pointing_matrix", "apply_transform", "to_unit",
    "StarField", "make_star_field", "Galaxy", "Nebula", "BANDS", "sky_plane",
    "moffat_psf", "moffat_alpha", "render_stars", "eccentricity", "vignetting", "DustMote",
    "dust_attenuation",
    "Trail", "random_trail", "render_trail", "CosmicRays", "cosmic_rays",
    "DIALECTS", "FRAME_KINDS", "IMAGETYP", "FrameSpec", "header_for", "path_for",
]
