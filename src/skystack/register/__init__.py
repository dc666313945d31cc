"""Registration: star matching at any rotation, projective fits, Lanczos-3 resampling.

``H`` is a 3×3 matrix mapping reference pixels to frame pixels (``design.md``):
``[x_frame, y_frame, 1]ᵀ ∝ H · [x_ref, y_ref, 1]ᵀ``, the direction resampling needs.

- :func:`find_transform` — match two star lists (triangles invariant to shift, rotation, scale
  and mirroring; seeded hypothesis sampling; refit on all matched stars).
- :func:`warp` — resample a frame onto the reference grid (Lanczos-3 with clamping, bicubic,
  bilinear); pixels without data are 0.
- :func:`register_frames` — the file-level stage: detect, choose the reference, match, resample,
  write ``transforms.json``.
- :func:`choose_reference` — lowest binning, sharp, most stars.

Examples
--------
>>> import numpy as np
>>> from skystack.register import find_transform, warp
>>> ref = np.random.default_rng(0).uniform(0, 400, (60, 2))
>>> frame = ref @ np.array([[0.0, 1.0], [-1.0, 0.0]]) + [500.0, 20.0]  # rotated 90°, shifted
>>> t = find_transform(frame, ref)
>>> bool(t), t.stars_matched, round(t.rms_px, 6)
(True, 60, 0.0)
"""

from __future__ import annotations

from skystack.register.frames import (
    FrameRegistration,
    FrameStars,
    RegistrationResult,
    frame_stars,
    register_frames,
)
from skystack.register.match import (
    MODELS,
    FailedRegistration,
    MatchConfig,
    Transform,
    apply_h,
    find_transform,
    fit_model,
)
from skystack.register.reference import ReferenceChoice, choose_reference
from skystack.register.resample import METHODS, warp, warp_reference

__all__ = [
    "MODELS",
    "METHODS",
    "MatchConfig",
    "Transform",
    "FailedRegistration",
    "find_transform",
    "fit_model",
    "apply_h",
    "warp",
    "warp_reference",
    "ReferenceChoice",
    "choose_reference",
    "FrameRegistration",
    "FrameStars",
    "RegistrationResult",
    "frame_stars",
    "register_frames",
]
