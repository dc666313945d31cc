"""Ground truth: per-frame :class:`FrameTruth`, the whole :class:`Truth`, and ``truth.json`` I/O.

The file format is described in the ``skystack.simulate`` module docstring. Paths inside
``truth.json`` are relative to the simulation's output folder; :class:`Truth` resolves them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from skystack.errors import SkystackError

__all__ = ["FrameTruth", "Truth", "Simulation", "load_truth", "TruthError", "TRUTH_VERSION"]

TRUTH_VERSION = 1


class TruthError(SkystackError, ValueError):
    """``truth.json`` is missing or not a simulation truth file this version understands."""


@dataclass
class FrameTruth:
    """What is known about one simulated frame.

    Attributes
    ----------
    path : str or None
        File path relative to the output folder (None for frames rendered in memory).
    type : str
        ``light``, ``dark``, ``flat``, ``bias`` or ``dark_flat``.
    filter : str or None
        Filter name as simulated (``L``, ``Ha``…); None for colour cameras and darks/bias.
    exposure : float
        Seconds.
    temperature, set_temperature : float
        Sensor temperature during the exposure and the cooler set point (°C).
    camera : str
        Key into :attr:`Truth.cameras`.
    night, panel : str or None
        Night (local date of the evening, ``YYYY-MM-DD``) and mosaic panel (``"1"``, ``"2"``).
    date_obs : str or None
        UTC start, ISO 8601.
    dialect : str or None
        Capture program whose file conventions were used.
    H : list of list of float or None
        3×3 transform, reference pixel → frame pixel (lights only).
    rotation_deg : float or None
        Rotation part of H (degrees, counter-clockwise in (x, y)); 180 after a meridian flip.
    dither : list of float or None
        Dither offset (pixels, frame axes) included in H.
    pier_side : str or None
        ``"East"`` or ``"West"``.
    fwhm, beta, ellipticity, eccentricity, psf_angle : float or None
        PSF at the frame centre: mean FWHM (pixels), Moffat β, 1 − b/a, √(1 − (b/a)²),
        major-axis angle (degrees, counter-clockwise from +x).
    field_curvature : float
        FWHM grows by this fraction at the frame corners.
    sky : dict or None
        Band → [a, b, c]: background a + b·(x − x_c) + c·(y − y_c) in e⁻/s/pixel on the frame
        (x_c, y_c = frame centre), before flat field and exposure time.
    transparency : float or None
        Fraction of starlight (and object light) that reaches the telescope (1 = clear).
    trails : list of dict
        :class:`~skystack.simulate.events.Trail` parameters.
    trail_mask : str or None
        Path of the trail mask (FITS, 1 on the trail) when the frame has trails.
    cosmic_rays : int
        Number of cosmic-ray hits.
    saturated_pixels : int
        Pixels at the camera's saturation value.
    flat : str or None
        Truth flat field (relative response) that applies to this frame.
    dark_current : str or None
        Truth dark-current map (e⁻/s) at this frame's set temperature.
    flat_level_e : float or None
        Flats only: electrons at response 1.
    master : bool
        A planted pre-made master (``messy`` preset).
    """

    path: str | None
    type: str
    filter: str | None = None
    exposure: float = 0.0
    temperature: float = 0.0
    set_temperature: float | None = None
    camera: str = "main"
    night: str | None = None
    panel: str | None = None
    date_obs: str | None = None
    dialect: str | None = None
    H: list[list[float]] | None = None
    rotation_deg: float | None = None
    dither: list[float] | None = None
    pier_side: str | None = None
    fwhm: float | None = None
    beta: float | None = None
    ellipticity: float | None = None
    eccentricity: float | None = None
    psf_angle: float | None = None
    field_curvature: float = 0.0
    sky: dict[str, list[float]] | None = None
    transparency: float | None = None
    trails: list[dict[str, Any]] = field(default_factory=list)
    trail_mask: str | None = None
    cosmic_rays: int = 0
    saturated_pixels: int = 0
    flat: str | None = None
    dark_current: str | None = None
    flat_level_e: float | None = None
    master: bool = False

    @property
    def transform(self) -> NDArray[np.float64] | None:
        """H as a 3×3 array (None for calibration frames)."""
        return None if self.H is None else np.asarray(self.H, np.float64)

    def to_json(self) -> dict[str, Any]:
        """Plain dict for ``truth.json``."""
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FrameTruth:
        """Inverse of :meth:`to_json` (unknown keys are ignored, for forward compatibility)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Truth:
    """Everything ``truth/truth.json`` says, with paths resolved against :attr:`root`.

    Attributes
    ----------
    root : Path
        The simulation output folder.
    data : dict
        The parsed JSON (see the ``skystack.simulate`` docstring for its keys).
    frames : list of FrameTruth
        One entry per written frame (lights and calibration frames).
    """

    root: Path
    data: dict[str, Any]
    frames: list[FrameTruth]

    # --- convenient views -------------------------------------------------------------------
    @property
    def preset(self) -> str:
        """Name of the preset that made the simulation."""
        return str(self.data["preset"])

    @property
    def seed(self) -> int:
        """Seed of the simulation."""
        return int(self.data["seed"])

    @property
    def cameras(self) -> dict[str, dict[str, Any]]:
        """Camera key → parameters (gain, read noise, bias level, …) and truth file paths."""
        return dict(self.data["cameras"])

    @property
    def planted_problems(self) -> list[dict[str, Any]]:
        """Problems deliberately planted (``messy`` preset): kind, paths, detail."""
        return list(self.data.get("planted_problems", []))

    def lights(self, *, filter: str | None = None, night: str | None = None,
               panel: str | None = None) -> list[FrameTruth]:
        """Light frames, optionally of one filter / night / panel."""
        out = []
        for f in self.frames:
            if f.type != "light" or f.master:
                continue
            if filter is not None and f.filter != filter:
                continue
            if night is not None and f.night != night:
                continue
            if panel is not None and f.panel != panel:
                continue
            out.append(f)
        return out

    def of_type(self, kind: str) -> list[FrameTruth]:
        """Frames of one type (``"dark"``, ``"flat"``…), planted masters excluded."""
        return [f for f in self.frames if f.type == kind and not f.master]

    def frame(self, path: str | Path) -> FrameTruth:
        """The truth of the frame at ``path`` (absolute or relative to :attr:`root`)."""
        p = Path(path)
        rel = p.relative_to(self.root).as_posix() if p.is_absolute() else p.as_posix()
        for f in self.frames:
            if f.path == rel:
                return f
        msg = f"{path}: not a frame of the simulation in {self.root}"
        raise KeyError(msg)

    def path(self, rel: str) -> Path:
        """Absolute path of a path stored in ``truth.json``."""
        return self.root / rel

    def image(self, rel: str) -> NDArray[np.float32]:
        """Read a truth image (FITS float32, physical units) given its stored relative path."""
        from skystack.io import read_image

        return read_image(self.root / rel).data

    def sky(self, band: str) -> NDArray[np.float32]:
        """Noiseless sky through ``band`` in the reference frame (e⁻/s/pixel)."""
        return self.image(self.data["sky"][band])

    def stars(self) -> dict[str, NDArray[np.float64]]:
        """The star catalogue: ``x``, ``y`` (reference pixels) and ``flux_<band>`` (e⁻/s)."""
        path = self.root / self.data["stars"]
        with open(path, encoding="ascii") as fh:
            names = fh.readline().strip().split(",")
        table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
        return {name: table[:, i] for i, name in enumerate(names)}

    def to_json(self) -> dict[str, Any]:
        """The JSON document (frames re-serialized from :attr:`frames`)."""
        out = dict(self.data)
        out["frames"] = [f.to_json() for f in self.frames]
        return out


@dataclass
class Simulation:
    """What :func:`skystack.simulate.simulate` wrote.

    Attributes
    ----------
    out_dir : Path
        The output folder.
    truth : Truth
        The ground truth (also in ``out_dir/truth/truth.json``).
    lights, darks, flats, bias, dark_flats : list of Path
        Absolute paths of the frames written, by type (planted masters and junk excluded).
    """

    out_dir: Path
    truth: Truth
    lights: list[Path] = field(default_factory=list)
    darks: list[Path] = field(default_factory=list)
    flats: list[Path] = field(default_factory=list)
    bias: list[Path] = field(default_factory=list)
    dark_flats: list[Path] = field(default_factory=list)

    @property
    def all_frames(self) -> list[Path]:
        """Every frame path (lights first)."""
        return [*self.lights, *self.darks, *self.flats, *self.bias, *self.dark_flats]


def write_truth(truth: Truth) -> Path:
    """Write ``truth.json`` (sorted keys, stable float formatting) under ``root/truth``."""
    path = truth.root / "truth" / "truth.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(truth.to_json(), indent=1, sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")
    # the truth is not a frame: `skystack scan` skips folders holding this marker
    (path.parent / ".skystackignore").write_text("simulator ground truth, not frames\n")
    return path


def load_truth(out_dir: str | Path) -> Truth:
    """Read ``out_dir/truth/truth.json`` back into a :class:`Truth`.

    Raises
    ------
    TruthError
        The file is missing, is not JSON, or has an unknown version.
    """
    root = Path(out_dir)
    path = root / "truth" / "truth.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        msg = f"{path}: no truth file — is {root} the output folder of `skystack simulate`?"
        raise TruthError(msg) from err
    except json.JSONDecodeError as err:
        msg = f"{path}: not valid JSON ({err}); re-run `skystack simulate`"
        raise TruthError(msg) from err
    if data.get("version") != TRUTH_VERSION:
        msg = f"{path}: truth version {data.get('version')!r}, this skystack reads {TRUTH_VERSION}"
        raise TruthError(msg)
    frames = [FrameTruth.from_json(d) for d in data.get("frames", [])]
    return Truth(root=root, data=data, frames=frames)
