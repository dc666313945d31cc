"""Frames in memory: a :class:`Scene` seen through a :class:`LightSpec`, and calibration frames.

No file I/O here — other stages' unit tests build frames with these functions directly::

    scene = make_scene(256, 192, seed=1)
    H = pointing_matrix(scene.shape, (192, 256), rotation_deg=0.3, offset=(4.0, -2.5))
    img, truth = render_light(LightSpec(scene=scene, H=H, fwhm=2.8), seed=7)

The electron model of a light (frame pixel p, reference pixel H⁻¹p)::

    e(p) = t · F(p) · [ T · (stars + objects)(H⁻¹p) + sky(p) + trails(p) ] + t · D_T(p) + cosmics(p)

with t the exposure, F the flat (vignetting × dust × pixel response), T the transparency and D_T
the dark current at the sensor temperature; then Poisson noise, full well, gain, bias pattern,
read noise, rounding and 16-bit saturation (:func:`~skystack.simulate.sensor.read_out`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from skystack.simulate.events import Trail, cosmic_rays, render_trail
from skystack.simulate.optics import eccentricity, render_stars
from skystack.simulate.sensor import Camera, dark_current_map, read_out, sensor_maps
from skystack.simulate.sky import (
    BANDS,
    Galaxy,
    Nebula,
    StarField,
    make_galaxy,
    make_nebula,
    make_star_field,
    render_extended,
    sky_plane,
)
from skystack.simulate.truth import FrameTruth

__all__ = [
    "Scene",
    "make_scene",
    "LightSpec",
    "pointing_matrix",
    "apply_transform",
    "render_light",
    "render_dark",
    "render_bias",
    "render_flat",
    "to_unit",
]

_SIGMA_PER_FWHM = 1.0 / 2.3548


def to_unit(adu: NDArray[np.float32]) -> NDArray[np.float32]:
    """ADU (0…65535) → float32 in [0, 1], as :mod:`skystack.io` holds 16-bit data."""
    return (adu * np.float32(1.0 / 65535.0)).astype(np.float32)


def pointing_matrix(
    ref_shape: tuple[int, int],
    frame_shape: tuple[int, int],
    *,
    rotation_deg: float = 0.0,
    offset: tuple[float, float] = (0.0, 0.0),
    ref_center: tuple[float, float] | None = None,
    scale: float = 1.0,
) -> NDArray[np.float64]:
    """The 3×3 H (reference pixel → frame pixel) of a pointing.

    The frame's centre looks at ``ref_center`` (default the reference canvas centre) shifted by
    ``offset`` (frame pixels: the frame content moves by ``offset``), rotated by
    ``rotation_deg`` counter-clockwise in (x, y)::

        p_frame = scale · R(θ) · (p_ref − ref_center) + frame_center + offset
    """
    rh, rw = ref_shape
    fh, fw = frame_shape
    cx, cy = ((rw - 1) / 2, (rh - 1) / 2) if ref_center is None else ref_center
    th = np.deg2rad(rotation_deg)
    c, s = np.cos(th) * scale, np.sin(th) * scale
    tx = (fw - 1) / 2 + offset[0] - (c * cx - s * cy)
    ty = (fh - 1) / 2 + offset[1] - (s * cx + c * cy)
    return np.array([[c, -s, tx], [s, c, ty], [0.0, 0.0, 1.0]])


def apply_transform(H: ArrayLike, xy: ArrayLike) -> NDArray[np.float64]:
    """Map (N, 2) points through a 3×3 homography H."""
    m = np.asarray(H, np.float64)
    p = np.atleast_2d(np.asarray(xy, np.float64))
    q = p @ m[:2, :2].T + m[:2, 2]
    wq = p @ m[2, :2] + m[2, 2]
    return q / wq[:, None]


@dataclass(eq=False)
class Scene:
    """One target: a star field and extended objects on a reference canvas.

    Attributes
    ----------
    shape : (int, int)
        Reference canvas (H, W).
    stars : StarField
        Stars in reference pixels (fluxes in e⁻/s).
    objects : list of Galaxy or Nebula
        Extended objects in reference pixels.
    ref_fwhm : float
        Seeing used to blur the extended objects and to draw the truth sky image.
    """

    shape: tuple[int, int]
    stars: StarField
    objects: list[Galaxy | Nebula] = field(default_factory=list)
    ref_fwhm: float = 3.0
    _extended: dict[str, NDArray[np.float32]] = field(default_factory=dict, repr=False)

    def extended(self, band: str) -> NDArray[np.float32]:
        """Extended objects through ``band`` on the reference canvas (e⁻/s/pixel, cached)."""
        if band not in self._extended:
            self._extended[band] = render_extended(self.shape, self.objects, band,
                                                   psf_sigma=self.ref_fwhm * _SIGMA_PER_FWHM)
        return self._extended[band]

    def truth_sky(self, band: str, *, beta: float = 3.5) -> NDArray[np.float32]:
        """The noiseless sky through ``band`` on the reference canvas (e⁻/s/pixel): stars drawn
        with a round Moffat of FWHM :attr:`ref_fwhm`, plus the extended objects."""
        img = self.extended(band).copy()
        return render_stars(self.shape, self.stars.xy, self.stars.flux(band), fwhm=self.ref_fwhm,
                            beta=beta, floor=1e-4, out=img)


def make_scene(
    width: int,
    height: int,
    *,
    seed: int = 0,
    density_per_mpx: float = 2500.0,
    galaxy: bool = True,
    nebula: bool = True,
    ref_fwhm: float = 3.0,
    margin: float = 0.25,
) -> Scene:
    """A random target: stars with a power-law luminosity function, a galaxy and a nebula."""
    rng = np.random.default_rng((seed, 0x5C3E))
    stars = make_star_field(width, height, rng, density_per_mpx=density_per_mpx, margin=margin)
    objects: list[Galaxy | Nebula] = []
    if galaxy:
        objects.append(make_galaxy(width, height, rng))
    if nebula:
        objects.append(make_nebula(width, height, rng))
    return Scene(shape=(height, width), stars=stars, objects=objects, ref_fwhm=ref_fwhm)


@dataclass(frozen=True, eq=False)
class LightSpec:
    """Everything that makes one light frame.

    Attributes
    ----------
    scene : Scene
        What is in the sky.
    camera : Camera or None
        The camera; None → a default mono camera of the scene's size.
    filter : str or None
        Band for mono cameras (``L``, ``Ha``…); ignored for Bayer cameras (R, G, B sites).
    exposure : float
        Seconds.
    temperature : float
        Sensor temperature (°C).
    H : array_like or None
        3×3 reference → frame transform; None → identity.
    fwhm, beta, ellipticity, psf_angle : float
        PSF at the frame centre (see :mod:`~skystack.simulate.optics`).
    field_curvature : float
        Fractional FWHM growth at the frame corners (∝ r²).
    sky : dict of band → (a, b, c) or None
        Background plane per band (e⁻/s/pixel, see :func:`~skystack.simulate.sky.sky_plane`);
        None → the band's mean sky with no gradient.
    transparency : float
        Fraction of object light transmitted.
    flat : ndarray or None
        Optical transmission (vignetting × dust) in frame pixels; None → 1. The camera's pixel
        response is applied on top.
    trails : tuple of Trail
        Satellite/airplane trails.
    cosmic_ray_rate : float
        Hits per megapixel per second.
    dark : bool
        Add dark current (and amp glow, hot pixels).
    noise : bool
        Photon and read noise (False gives the expected value, for exact tests).
    """

    scene: Scene
    camera: Camera | None = None
    filter: str | None = "L"
    exposure: float = 60.0
    temperature: float = -10.0
    H: ArrayLike | None = None
    fwhm: float = 3.0
    beta: float = 3.5
    ellipticity: float = 0.0
    psf_angle: float = 0.0
    field_curvature: float = 0.0
    sky: dict[str, tuple[float, float, float]] | None = None
    transparency: float = 1.0
    flat: NDArray[np.float32] | None = None
    trails: tuple[Trail, ...] = ()
    cosmic_ray_rate: float = 0.0
    dark: bool = True
    noise: bool = True

    def resolved_camera(self) -> Camera:
        """The camera (a default mono camera of the scene's size when None)."""
        if self.camera is not None:
            return self.camera
        return Camera(width=self.scene.shape[1], height=self.scene.shape[0])

    def bands(self) -> tuple[str, ...]:
        """Bands the sensor records: (filter,) for mono, ("R", "G", "B") for Bayer."""
        cam = self.resolved_camera()
        if cam.bayer:
            return ("R", "G", "B")
        return (self.filter or "L",)

    def sky_coeffs(self) -> dict[str, tuple[float, float, float]]:
        """Sky plane per band, defaulting to the band's mean sky."""
        if self.sky is not None:
            return {b: tuple(self.sky[b]) for b in self.bands()}  # type: ignore[misc]
        return {b: (BANDS[b].sky_e_s, 0.0, 0.0) for b in self.bands()}


def _resample(canvas: NDArray[np.float32], Hinv: NDArray[np.float64],
              shape: tuple[int, int]) -> NDArray[np.float32]:
    """Sample ``canvas`` at H⁻¹ of every frame pixel (bilinear; 0 outside)."""
    from scipy.ndimage import affine_transform, map_coordinates

    if not canvas.any():
        return np.zeros(shape, np.float32)
    if np.allclose(Hinv[2], (0.0, 0.0, 1.0)):
        # Affine: scipy works in (row, col) order, so swap the axes of the 2×2 part.
        m = np.array([[Hinv[1, 1], Hinv[1, 0]], [Hinv[0, 1], Hinv[0, 0]]])
        off = np.array([Hinv[1, 2], Hinv[0, 2]])
        return affine_transform(canvas, m, offset=off, output_shape=shape, output=np.float32,
                                order=1, mode="constant", cval=0.0, prefilter=False)
    h, w = shape
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    wq = Hinv[2, 0] * xx + Hinv[2, 1] * yy + Hinv[2, 2]
    rx = (Hinv[0, 0] * xx + Hinv[0, 1] * yy + Hinv[0, 2]) / wq
    ry = (Hinv[1, 0] * xx + Hinv[1, 1] * yy + Hinv[1, 2]) / wq
    out = map_coordinates(canvas, [ry, rx], order=1, mode="constant", cval=0.0, prefilter=False)
    return out.astype(np.float32)


def _pick(planes: list[NDArray[np.float32]], cfa: NDArray[np.int8] | None) -> NDArray[np.float32]:
    if cfa is None:
        return planes[0]
    return np.choose(cfa, planes).astype(np.float32)


def render_light(spec: LightSpec, *, seed: int | tuple[int, ...]) -> tuple[NDArray[np.float32], FrameTruth]:
    """Render one light frame.

    Parameters
    ----------
    spec : LightSpec
        The frame's scene, camera, pointing, PSF, sky and events.
    seed : int or tuple of int
        Seed of this frame's noise and cosmic rays.

    Returns
    -------
    data : ndarray of float32
        (H, W) in [0, 1] (ADU / 65535), as :func:`skystack.io.read_image` returns a camera file.
    truth : FrameTruth
        Transform, PSF, sky, transparency, events; ``truth.trail_mask_array`` holds the trail
        mask (or None).
    """
    rng = np.random.default_rng(seed)
    cam = spec.resolved_camera()
    maps = sensor_maps(cam)
    shape = cam.shape
    h, w = shape
    H = np.eye(3) if spec.H is None else np.asarray(spec.H, np.float64)
    Hinv = np.linalg.inv(H)
    bands = spec.bands()
    cfa = maps.cfa_index if cam.bayer else None
    t, T = spec.exposure, spec.transparency

    # Astronomical signal (e⁻ over the exposure, before the flat): extended objects + stars.
    astro = _pick([_resample(spec.scene.extended(b), Hinv, shape) for b in bands], cfa)
    stars = spec.scene.stars
    xy = apply_transform(H, stars.xy)
    fluxes = np.column_stack([stars.flux(b) for b in bands]) * (t * T)
    fwhm: float | NDArray[np.float64] = spec.fwhm
    if spec.field_curvature:
        r2 = ((xy[:, 0] - (w - 1) / 2) ** 2 + (xy[:, 1] - (h - 1) / 2) ** 2) / (
            ((w - 1) / 2) ** 2 + ((h - 1) / 2) ** 2)
        fwhm = spec.fwhm * (1.0 + spec.field_curvature * r2)
    astro *= np.float32(t * T)
    render_stars(shape, xy, fluxes, fwhm=fwhm, beta=spec.beta, ellipticity=spec.ellipticity,
                 angle=spec.psf_angle, floor=0.05, cfa_index=cfa, out=astro)

    coeffs = spec.sky_coeffs()
    light = astro
    light += _pick([sky_plane(shape, coeffs[b]) for b in bands], cfa) * np.float32(t)
    mask = None
    for trail in spec.trails:
        img, m = render_trail(shape, trail)
        light += img
        mask = m if mask is None else (mask | m)
    response = maps.response if spec.flat is None else maps.response * spec.flat
    electrons = light * response
    if spec.dark:
        electrons += dark_current_map(cam, spec.temperature) * np.float32(t)
    cosmic = None
    if spec.cosmic_ray_rate > 0:
        cr = cosmic_rays(shape, t, spec.cosmic_ray_rate, rng)
        if cr.count:
            cosmic = np.zeros(shape, np.float32)
            cr.add_to(cosmic)
        n_cr = cr.count
    else:
        n_cr = 0
    adu = read_out(electrons, cam, rng, extra_electrons=cosmic, noise=spec.noise)
    rot = float(np.degrees(np.arctan2(H[1, 0], H[0, 0])))
    truth = FrameTruth(
        path=None, type="light", filter=None if cam.bayer else spec.filter, exposure=t,
        temperature=spec.temperature, H=H.tolist(), rotation_deg=rot,
        fwhm=spec.fwhm, beta=spec.beta, ellipticity=spec.ellipticity,
        eccentricity=eccentricity(spec.ellipticity), psf_angle=spec.psf_angle,
        field_curvature=spec.field_curvature,
        sky={b: [float(v) for v in coeffs[b]] for b in bands}, transparency=T,
        trails=[tr.to_json() for tr in spec.trails], cosmic_rays=n_cr,
        saturated_pixels=int(np.count_nonzero(adu >= cam.saturation_adu)),
    )
    truth.trail_mask_array = mask  # type: ignore[attr-defined]
    return to_unit(adu), truth


def render_dark(camera: Camera, *, exposure: float, temperature: float,
                seed: int | tuple[int, ...], cosmic_ray_rate: float = 0.0,
                noise: bool = True, kind: str = "dark") -> tuple[NDArray[np.float32], FrameTruth]:
    """Render a dark (or dark-flat, ``kind="dark_flat"``) frame: bias + dark current + noise."""
    rng = np.random.default_rng(seed)
    electrons = dark_current_map(camera, temperature) * np.float32(exposure)
    cosmic, n_cr = None, 0
    if cosmic_ray_rate > 0:
        cr = cosmic_rays(camera.shape, exposure, cosmic_ray_rate, rng)
        n_cr = cr.count
        if cr.count:
            cosmic = np.zeros(camera.shape, np.float32)
            cr.add_to(cosmic)
    adu = read_out(electrons, camera, rng, extra_electrons=cosmic, noise=noise)
    return to_unit(adu), FrameTruth(path=None, type=kind, exposure=exposure,
                                    temperature=temperature, cosmic_rays=n_cr)


def render_bias(camera: Camera, *, seed: int | tuple[int, ...], temperature: float = -10.0,
                noise: bool = True) -> tuple[NDArray[np.float32], FrameTruth]:
    """Render a bias frame (zero exposure: bias pattern + read noise)."""
    rng = np.random.default_rng(seed)
    adu = read_out(None, camera, rng, noise=noise)
    return to_unit(adu), FrameTruth(path=None, type="bias", exposure=0.0, temperature=temperature)


def render_flat(camera: Camera, flat: NDArray[np.float32] | None, *, exposure: float,
                level_e: float, temperature: float, seed: int | tuple[int, ...],
                noise: bool = True) -> tuple[NDArray[np.float32], FrameTruth]:
    """Render a flat: a uniform panel of ``level_e`` electrons (at response 1) through the optics
    ``flat`` (vignetting × dust; None → 1) and the pixel response, plus dark current."""
    rng = np.random.default_rng(seed)
    maps = sensor_maps(camera)
    response = maps.response if flat is None else maps.response * flat
    electrons = response * np.float32(level_e)
    electrons += dark_current_map(camera, temperature) * np.float32(exposure)
    adu = read_out(electrons, camera, rng, noise=noise)
    return to_unit(adu), FrameTruth(path=None, type="flat", exposure=exposure,
                                    temperature=temperature, flat_level_e=level_e)
