"""Registering files: detect stars, pick the reference, match, resample, write, report.

The thin I/O shell around :mod:`.match` and :mod:`.resample`. Only star lists stay in memory
between the passes; each frame is read again when it is resampled, so memory is bounded by one
frame whatever the number of files.

CFA (Bayer) frames are debayered before resampling (``skystack.cfa.debayer``); their stars are
detected on a bilinear-debayered luminance passed through a 3×3 median, which removes the hot
pixels of uncalibrated one-shot-colour subs that the debayer would otherwise spread into
star-like blobs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from skystack.errors import ConfigError, SkystackError
from skystack.io import Image, read_image, write_image
from skystack.register.match import FailedRegistration, MatchConfig, find_transform
from skystack.register.reference import choose_reference
from skystack.register.resample import warp

__all__ = ["FrameRegistration", "RegistrationResult", "FrameStars", "frame_stars",
           "register_frames"]

Detector = Callable[[NDArray[np.float32]], Any]
_FITS_SUFFIXES = {".fits", ".fit", ".fts"}


@dataclass
class FrameRegistration:
    """One frame's outcome; ``H`` is None when it failed (then ``reason`` says why)."""

    path: str
    H: NDArray[np.float64] | None
    stars_matched: int = 0
    rms_px: float | None = None
    model: str | None = None
    reason: str | None = None
    output: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``transforms.json`` entry (``design.md``)."""
        out: dict[str, Any] = {
            "path": self.path,
            "H": None if self.H is None else [[float(v) for v in row] for row in self.H],
            "stars_matched": int(self.stars_matched),
            "rms_px": None if self.rms_px is None else round(float(self.rms_px), 4),
        }
        if self.H is None:
            out["reason"] = self.reason or "registration failed"
        return out


@dataclass
class RegistrationResult:
    """All frames of one :func:`register_frames` call."""

    reference: str
    reference_reason: str
    frames: list[FrameRegistration] = field(default_factory=list)
    transforms_path: str | None = None

    @property
    def failed(self) -> list[FrameRegistration]:
        """Frames without a transform."""
        return [f for f in self.frames if f.H is None]

    def to_json(self) -> dict[str, Any]:
        """``{"reference": path, "frames": [...]}`` exactly as ``design.md`` defines."""
        return {"reference": self.reference, "frames": [f.to_json() for f in self.frames]}


@dataclass(frozen=True)
class FrameStars:
    """Stars of one frame for matching, in that frame's full-resolution pixel coordinates.

    ``xy`` and ``flux`` hold the (at most ``max_stars``) stars kept for matching, highest
    SNR first; ``n_detected`` counts the clear detections (for the reference choice)."""

    xy: NDArray[np.float64]
    flux: NDArray[np.float64]
    fwhm: float
    shape: tuple[int, int]
    binning: int
    n_detected: int


def _pattern(img: Image) -> str | None:
    if img.data.ndim != 2 or not img.bayer_pattern:
        return None
    from skystack.cfa import effective_pattern

    return effective_pattern(img.bayer_pattern, row_order=img.row_order,
                             height=img.data.shape[0],
                             x_offset=int(img.get("XBAYROFF", 0) or 0),
                             y_offset=int(img.get("YBAYROFF", 0) or 0))


def _luminance(img: Image) -> NDArray[np.float32]:
    pattern = _pattern(img)
    if pattern is None:
        data = img.data
        return data.mean(axis=0, dtype=np.float32) if data.ndim == 3 else data
    from scipy import ndimage

    from skystack.cfa import debayer

    lum = debayer(img.data, pattern, method="bilinear").mean(axis=0, dtype=np.float32)
    return ndimage.median_filter(lum, size=3)


def _default_detector() -> Detector:
    try:
        from skystack.stars import DetectionConfig, detect_stars
    except ImportError as err:  # pragma: no cover - the module ships with skystack
        raise SkystackError(f"star detection is unavailable: {err}") from err
    # Matching needs centroids only: adaptive moments, no PSF fits (faster, and the SNR scale
    # that the reference choice relies on stays that of the moments).
    config = DetectionConfig(psf="none")
    return lambda image: detect_stars(image, config=config)


def frame_stars(
    img: Image, *, detector: Detector | None = None, max_stars: int = 200
) -> FrameStars:
    """Detect the stars of a frame and keep those fit for matching.

    Parameters
    ----------
    img : Image
        Mono, colour or CFA frame (CFA is debayered for detection, see the module notes).
    detector : callable, optional
        ``image -> catalog`` with arrays ``x``, ``y``, ``flux`` (and optionally ``fwhm``,
        ``snr``); defaults to :func:`skystack.stars.detect_stars` without PSF fits.
    max_stars : int
        Keep the stars with the highest SNR (or flux): faint detections on noisy subs are
        mostly noise and only add chance coincidences.

    Returns
    -------
    FrameStars
    """
    lum = _luminance(img)
    cat = (detector or _default_detector())(lum)
    x, y = np.asarray(cat.x, dtype=float), np.asarray(cat.y, dtype=float)
    flux = np.asarray(cat.flux, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(flux)
    fwhm_all = np.asarray(getattr(cat, "fwhm", np.full(len(x), np.nan)), dtype=float)
    med = float(np.nanmedian(fwhm_all[ok])) if np.isfinite(fwhm_all[ok]).any() else float("nan")
    if np.isfinite(med):
        # galaxy knots and blends (wide) and residual hot pixels (narrow) make poor anchors
        ok &= (fwhm_all > 0.5 * med) & (fwhm_all < 2.0 * med)
    rank = np.asarray(getattr(cat, "snr", flux), dtype=float)
    # Stars that count for the reference choice: clear detections only. The median filter
    # applied to CFA luminance lowers the noise the detector measures, inflating its SNRs, so
    # the cut is higher there (measured on Seestar subs: ~150 real stars above 40, thousands
    # of noise peaks above 10).
    snr_floor = 40.0 if _pattern(img) is not None else 10.0
    n_clear = int(np.sum(ok & (rank >= snr_floor))) if hasattr(cat, "snr") else int(ok.sum())
    idx = np.flatnonzero(ok)
    idx = idx[np.argsort(-rank[idx], kind="stable")][:max_stars]
    binning = int(img.get("XBINNING", 1) or 1)
    return FrameStars(np.column_stack([x[idx], y[idx]]), flux[idx], med,
                      tuple(lum.shape), binning, n_clear)  # type: ignore[arg-type]


def _output_data(img: Image) -> NDArray[np.float32]:
    pattern = _pattern(img)
    if pattern is None:
        return img.data
    from skystack.cfa import debayer

    return debayer(img.data, pattern)


def _output_name(path: Path) -> str:
    return path.name if path.suffix.lower() in _FITS_SUFFIXES else path.stem + ".fits"


def register_frames(
    paths: Sequence[str | Path],
    *,
    reference: str | Path | None = None,
    model: str = "projective",
    out_dir: str | Path | None,
    interpolation: str = "lanczos3",
    clamp: bool = True,
    detector: Detector | None = None,
    config: MatchConfig | None = None,
    rng: int = 0,
    on_frame: Callable[[FrameRegistration], None] | None = None,
) -> RegistrationResult:
    """Register frames on a reference and write them resampled, with ``transforms.json``.

    Parameters
    ----------
    paths : sequence of path
        Frames to register (any format :func:`skystack.io.read_image` reads).
    reference : path, optional
        The reference frame; by default chosen automatically (lowest binning, sharp, most stars).
    model : {"projective", "affine", "similarity", "shift"}
        Transform model.
    out_dir : path or None
        Where registered frames (FITS float32, same names) and ``transforms.json`` go; None
        computes transforms only.
    interpolation : {"lanczos3", "bicubic", "bilinear"}
        Resampling kernel; ``clamp`` removes ringing (see :func:`skystack.register.warp`).
    detector : callable, optional
        Star detector (``image -> catalog``); defaults to :func:`skystack.stars.detect_stars`.
    config : MatchConfig, optional
        Matching options.
    rng : int
        Seed for the matching's random sampling.
    on_frame : callable, optional
        Called with each frame's result as soon as it is known (progress display).

    Returns
    -------
    RegistrationResult
        Unreadable or unmatched frames are listed with ``H = None`` and a reason; the rest carry on.
    """
    if not paths:
        raise ConfigError("no frames to register")
    files = [Path(p) for p in paths]
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        names = [_output_name(p) for p in files]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            msg = (f"several input frames are named {dup[0]!r}; registered frames are written "
                   "under their own names — rename them or register them separately")
            raise ConfigError(msg)
    detect = detector or _default_detector()

    stars: dict[int, FrameStars] = {}
    problems: dict[int, str] = {}
    for i, p in enumerate(files):
        try:
            stars[i] = frame_stars(read_image(p), detector=detect)
        except SkystackError as err:
            problems[i] = f"cannot read or measure it: {err}"

    if reference is not None:
        ref_path = Path(reference)
        same = [i for i, p in enumerate(files) if p.resolve() == ref_path.resolve()]
        ref_stars = stars[same[0]] if same and same[0] in stars else frame_stars(
            read_image(ref_path), detector=detect)
        ref_reason = "given"
    else:
        good = sorted(stars)
        if not good:
            raise SkystackError("no frame could be read to choose a reference from")
        choice = choose_reference([stars[i].n_detected for i in good],
                                  binning=[stars[i].binning for i in good],
                                  fwhm=[stars[i].fwhm * stars[i].binning for i in good])
        ref_path = files[good[choice.index]]
        ref_stars = stars[good[choice.index]]
        ref_reason = choice.reason
    ref_shape = ref_stars.shape

    result = RegistrationResult(reference=str(ref_path), reference_reason=ref_reason)
    for i, p in enumerate(files):
        if i in problems:
            fr = FrameRegistration(str(p), None, reason=problems[i])
        else:
            s = stars[i]
            if p.resolve() == ref_path.resolve():
                fr = FrameRegistration(str(p), np.eye(3), len(s.xy), 0.0, model)
            else:
                t = find_transform(s.xy, ref_stars.xy, frame_flux=s.flux, ref_flux=ref_stars.flux,
                                   model=model, rng=rng, config=config)
                if isinstance(t, FailedRegistration):
                    fr = FrameRegistration(str(p), None, t.stars_matched, reason=t.reason)
                else:
                    fr = FrameRegistration(str(p), t.H, t.stars_matched, t.rms_px, t.model)
            if out is not None and fr.H is not None:
                img = read_image(p)
                data = warp(_output_data(img), fr.H, shape=ref_shape, method=interpolation,
                            clamp=clamp)
                kw = [k for k in img.keywords if k.name.upper() not in ("BAYERPAT", "XBAYROFF",
                                                                        "YBAYROFF")]
                reg = Image.from_array(data, keywords=kw, row_order=img.row_order)
                reg.set("REGREF", ref_path.name, "registration reference frame")
                reg.set("REGSTARS", int(fr.stars_matched), "stars matched to the reference")
                reg.set("REGRMS", round(float(fr.rms_px or 0.0), 4), "[px] registration RMS")
                fr.output = str(write_image(out / _output_name(p), reg, sample_format="float32"))
        result.frames.append(fr)
        if on_frame is not None:
            on_frame(fr)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        tp = out / "transforms.json"
        tp.write_text(json.dumps(result.to_json(), indent=2) + "\n")
        result.transforms_path = str(tp)
    return result
