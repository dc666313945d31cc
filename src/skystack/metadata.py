"""Frame metadata in every capture program's dialect → :class:`FrameInfo`.

(The parsers are being built; the :class:`FrameInfo` fields below are the contract the linking,
scan and report code rely on. Add fields freely; do not rename or remove them.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = ["FrameInfo", "FrameType", "FRAME_TYPES"]

FrameType = Literal["light", "dark", "flat", "bias", "dark_flat"]
FRAME_TYPES: tuple[str, ...] = ("light", "dark", "flat", "bias", "dark_flat")


@dataclass
class FrameInfo:
    """Normalized metadata of one frame, with where each value came from.

    ``sources`` maps a field name to where its value was read, e.g.
    ``{"exposure": "header EXPTIME", "filter": "path FILTER_Ha", "type": "folder 'Darks'"}``.
    ``warnings`` holds one sentence per disagreement found (header vs path vs pixels).
    """

    path: str
    type: FrameType | None = None
    master: bool = False
    exposure: float | None = None
    filter: str | None = None
    filter_raw: str | None = None
    binning: tuple[int, int] | None = None
    width: int | None = None
    height: int | None = None
    channels: int = 1
    temperature: float | None = None
    set_temperature: float | None = None
    gain: float | None = None
    offset: float | None = None
    readout_mode: str | None = None
    camera: str | None = None
    telescope: str | None = None
    focal_length: float | None = None
    pixel_size: float | None = None
    object: str | None = None
    panel: str | None = None
    date_obs: datetime | None = None
    session: str | None = None
    bayer: str | None = None
    row_order: str | None = None
    rotator: float | None = None
    ra: float | None = None
    dec: float | None = None
    format: str | None = None
    sample_format: str | None = None
    size_bytes: int | None = None
    mtime: float | None = None
    sources: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def binning_str(self) -> str | None:
        """Binning as ``"1x1"`` (None when unknown)."""
        return None if self.binning is None else f"{self.binning[0]}x{self.binning[1]}"

    def to_json(self, rel_path: str | None = None) -> dict[str, Any]:
        """The ``frames[]`` entry of the ``link --json`` schema (version 1) plus extra fields."""
        return {
            "path": rel_path if rel_path is not None else self.path,
            "type": self.type,
            "master": self.master,
            "exposure": self.exposure,
            "filter": self.filter,
            "binning": self.binning_str,
            "width": self.width,
            "height": self.height,
            "temperature": self.temperature,
            "gain": self.gain,
            "offset": self.offset,
            "camera": self.camera,
            "object": self.object,
            "session": self.session,
            "bayer": self.bayer,
            # extensions beyond version 1 (additive only)
            "set_temperature": self.set_temperature,
            "readout_mode": self.readout_mode,
            "panel": self.panel,
            "date_obs": self.date_obs.isoformat() if self.date_obs else None,
            "sources": dict(self.sources),
            "warnings": list(self.warnings),
        }
