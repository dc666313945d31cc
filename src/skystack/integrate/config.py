"""Integration options: one frozen dataclass, WBPP's defaults, and the ``auto`` rejection table.

Threshold defaults follow WBPP / ImageIntegration (``reference/wbpp.md`` §3.2, §7.1): percentile
0.2 / 0.1 (fractions of the median), sigma-type methods 4 / 3 (sigma units), linear fit 5 / 3.5,
min/max one of each, ESD 30 % outliers at α = 0.05 with low relaxation 1.5.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from skystack.errors import ConfigError

__all__ = [
    "IntegrationConfig",
    "COMBINES",
    "REJECTIONS",
    "NORMALIZATIONS",
    "REJECTION_NORMALIZATIONS",
    "choose_rejection",
    "DEFAULT_THRESHOLDS",
]

Combine = Literal["average", "median", "min", "max", "sum"]
Rejection = Literal["none", "minmax", "percentile", "sigma", "winsorized", "averaged-sigma",
                    "linear-fit", "esd", "auto"]
Normalization = Literal["none", "additive", "multiplicative", "additive-scaling",
                        "multiplicative-scaling"]
RejectionNormalization = Literal["none", "scale", "equalize"]

COMBINES: tuple[str, ...] = ("average", "median", "min", "max", "sum")
REJECTIONS: tuple[str, ...] = ("none", "minmax", "percentile", "sigma", "winsorized",
                               "averaged-sigma", "linear-fit", "esd", "auto")
NORMALIZATIONS: tuple[str, ...] = ("none", "additive", "multiplicative", "additive-scaling",
                                   "multiplicative-scaling")
REJECTION_NORMALIZATIONS: tuple[str, ...] = ("none", "scale", "equalize")

#: (low, high) per method when the config leaves them None.
DEFAULT_THRESHOLDS: dict[str, tuple[float, float]] = {
    "none": (0.0, 0.0),
    "minmax": (1.0, 1.0),
    "percentile": (0.2, 0.1),
    "sigma": (4.0, 3.0),
    "winsorized": (4.0, 3.0),
    "averaged-sigma": (4.0, 3.0),
    "linear-fit": (5.0, 3.5),
    "esd": (0.0, 0.0),
}


def choose_rejection(n_frames: int, *, frame_type: str = "light") -> str:
    """The rejection WBPP 3.0.1 picks for ``auto`` (``wbpp.md`` §3.2).

    n < 6 → percentile; n ≤ 15 or a bias/dark stack → winsorized sigma; otherwise linear fit.
    """
    if n_frames < 6:
        return "percentile"
    if n_frames <= 15 or frame_type in ("bias", "dark"):
        return "winsorized"
    return "linear-fit"


@dataclass(frozen=True)
class IntegrationConfig:
    """How to combine a stack.

    Attributes
    ----------
    combine : {"average", "median", "min", "max", "sum"}
        Pixel combination of the samples that survive rejection. ``sum`` is the weighted mean of
        the kept samples times the coverage, so rejected samples do not leave holes.
    rejection : str
        One of :data:`REJECTIONS`; ``auto`` resolves by frame count with :func:`choose_rejection`.
    low, high : float or None
        Rejection thresholds (sigma units, or fractions of the median for percentile); None takes
        :data:`DEFAULT_THRESHOLDS`.
    min_count, max_count : int
        Samples dropped at each end by ``minmax``.
    esd_outliers, esd_alpha, esd_low_relaxation : float
        Generalized ESD: maximum fraction of outliers, significance, and the factor that makes the
        test more tolerant of low values (> 1).
    range_low, range_high : float or None
        Range rejection on the pedestal-free frame values in [0, 1]: samples ``<= range_low`` or
        ``>= range_high`` are rejected (e.g. ``range_high=0.98`` for saturation). None: off.
    large_scale : bool
        Reject clustered outliers (trails, cloud edges): in each frame, rejected pixels that form a
        structure of at least ``2**large_scale_layers + 1`` pixels inside a window that wide are
        grown by ``large_scale_growth`` pixels and the grown area is rejected too.
    rejection_normalization : {"none", "scale", "equalize"}
        How frames are matched before rejection (scale = location + dispersion, equalize = ratio
        of locations, for flats).
    normalization : str
        Output normalization, one of :data:`NORMALIZATIONS`.
    weights : {"none", "noise"}
        Frame weights: none, or inverse variance of a robust noise estimate (after normalization).
    subtract_pedestal : bool
        Remove a ``PEDESTAL`` keyword (DN, /65535) when reading frames from paths.
    reference : int
        Index of the normalization reference frame.
    frame_type : str
        Only used by ``auto`` (bias/dark stacks use winsorized at any count).
    """

    combine: Combine = "average"
    rejection: Rejection = "auto"
    low: float | None = None
    high: float | None = None
    min_count: int = 1
    max_count: int = 1
    esd_outliers: float = 0.3
    esd_alpha: float = 0.05
    esd_low_relaxation: float = 1.5
    range_low: float | None = None
    range_high: float | None = None
    large_scale: bool = False
    large_scale_layers: int = 2
    large_scale_growth: int = 2
    rejection_normalization: RejectionNormalization = "scale"
    normalization: Normalization = "additive-scaling"
    weights: Literal["none", "noise"] = "noise"
    subtract_pedestal: bool = True
    reference: int = 0
    frame_type: str = "light"

    def __post_init__(self) -> None:
        checks = (("combine", self.combine, COMBINES), ("rejection", self.rejection, REJECTIONS),
                  ("normalization", self.normalization, NORMALIZATIONS),
                  ("rejection_normalization", self.rejection_normalization,
                   REJECTION_NORMALIZATIONS), ("weights", self.weights, ("none", "noise")))
        for name, value, allowed in checks:
            if value not in allowed:
                msg = f"{name}={value!r} is not one of {', '.join(allowed)}"
                raise ConfigError(msg)
        for name in ("low", "high"):
            v = getattr(self, name)
            if v is not None and not v >= 0:
                msg = f"{name}={v!r}: rejection thresholds must be >= 0"
                raise ConfigError(msg)
        if self.min_count < 0 or self.max_count < 0:
            raise ConfigError("min_count and max_count must be >= 0")
        if not 0.0 <= self.esd_outliers < 1.0 or not 0.0 < self.esd_alpha < 1.0:
            raise ConfigError("esd_outliers must be in [0, 1) and esd_alpha in (0, 1)")
        if self.esd_low_relaxation <= 0:
            raise ConfigError("esd_low_relaxation must be > 0")
        if self.large_scale_layers < 1 or self.large_scale_growth < 0:
            raise ConfigError("large_scale_layers must be >= 1 and large_scale_growth >= 0")

    @classmethod
    def for_frame_type(cls, frame_type: str, **overrides: object) -> IntegrationConfig:
        """WBPP's per-type settings (``wbpp.md`` §3.1): masters bias/dark/flat and lights.

        Bias and dark: no normalization, no weights, no pedestal; flats: multiplicative output
        normalization with equalized fluxes for rejection; lights: additive + scaling, scale.
        """
        presets: dict[str, dict[str, object]] = {
            "bias": {"normalization": "none", "rejection_normalization": "none",
                     "weights": "none", "subtract_pedestal": False},
            "dark": {"normalization": "none", "rejection_normalization": "none",
                     "weights": "none", "subtract_pedestal": False},
            "flat": {"normalization": "multiplicative", "rejection_normalization": "equalize",
                     "weights": "none", "subtract_pedestal": False},
            "dark_flat": {"normalization": "none", "rejection_normalization": "none",
                          "weights": "none", "subtract_pedestal": False},
            "light": {},
        }
        if frame_type not in presets:
            msg = f"frame_type={frame_type!r} is not one of {', '.join(presets)}"
            raise ConfigError(msg)
        kind = "dark" if frame_type == "dark_flat" else frame_type
        fields = {"frame_type": kind, **presets[frame_type], **overrides}
        return cls(**fields)  # type: ignore[arg-type]

    def resolved(self, n_frames: int) -> IntegrationConfig:
        """A copy with ``auto`` replaced by a method and None thresholds by their defaults."""
        method = self.rejection
        if method == "auto":
            method = choose_rejection(n_frames, frame_type=self.frame_type)  # type: ignore[assignment]
        lo, hi = DEFAULT_THRESHOLDS[method]
        return replace(self, rejection=method,
                       low=lo if self.low is None else self.low,
                       high=hi if self.high is None else self.high)
