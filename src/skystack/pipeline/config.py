"""Settings of ``skystack run``: one frozen dataclass, from the command line or a TOML file."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from skystack.errors import ConfigError

__all__ = ["RunConfig"]


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides what ``skystack run`` produces.

    Attributes that change products (all but ``jobs``, ``executor``, ``memory``, ``progress``)
    are part of every step's cache key, so changing one recomputes exactly what depends on it.
    """

    # calibration
    pedestal: Literal["auto"] | float | None = "auto"
    cosmetic: bool = True
    optimize_dark: bool = False
    debayer: Literal["rcd", "gradient", "bilinear", "superpixel"] = "rcd"
    # measurement and selection
    weighting: str = "psf_signal"
    #: weights of the integration: "noise" (inverse variance — the best SNR, the default) or the
    #: measurement weights of ``weighting`` (PSF Signal Weight: favours sharp frames, as WBPP)
    integration_weights: Literal["noise", "measure"] = "noise"
    min_weight: float = 0.05
    select: str | None = None
    #: frames with a satellite/aircraft trail are kept by default (pixel rejection removes it)
    reject_trails: bool = False
    # registration
    reference: str | None = None
    model: str = "projective"
    interpolation: str = "lanczos3"
    # normalization
    local_normalization: bool = True
    ln_reference: str | None = None
    ln_scale: int | None = None
    # integration
    rejection: str = "auto"
    combine: str = "average"
    group_by: tuple[str, ...] = ("object", "filter", "panel")
    output_format: Literal["fits", "xisf"] = "fits"
    master_format: Literal["fits", "xisf"] = "xisf"
    # linking (the [link] table of the config file)
    link: dict[str, Any] = field(default_factory=dict)
    # execution (not part of products)
    jobs: int = 2
    executor: str = "local"
    memory: str | None = None
    ignore_doctor: bool = False

    def product_params(self) -> dict[str, Any]:
        """The settings that shape products (for cache keys and run.json)."""
        d = dataclasses.asdict(self)
        for k in ("jobs", "executor", "memory", "ignore_doctor"):
            d.pop(k)
        return d

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> RunConfig:
        """Read ``[run]`` (and ``[link]``) from a TOML file; ``overrides`` win."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except (OSError, tomllib.TOMLDecodeError) as err:
            msg = f"{p}: cannot read the config ({err})"
            raise ConfigError(msg) from err
        run = dict(data.get("run", {}))
        if "link" in data:
            run["link"] = data["link"]
        if "group_by" in run:
            run["group_by"] = tuple(run["group_by"])
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(run) - names
        if unknown:
            msg = f"{p}: unknown settings {', '.join(sorted(unknown))} in [run]"
            raise ConfigError(msg)
        run.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**run)
