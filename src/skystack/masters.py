"""Master bias, dark, flat and dark-flat frames.

* Bias, dark, dark-flat: average with ``auto`` rejection, no normalization (WBPP's settings:
  winsorized sigma for ≥ 6 frames, percentile below).
* Flat: each flat calibrated by its master dark-flat (or master bias), then integrated with
  multiplicative normalization and flux equalization for rejection; the result is scaled to mean 1
  — per CFA position for one-shot colour, so the flat never changes the colour balance.

Masters are written (XISF by default) with the keywords that make them re-link as masters next
time: IMAGETYP ``Master Dark`` etc., exposure, temperature, set-point, gain, offset, binning,
filter, NCOMBINE, and SRCHASH, a hash of the sorted source list.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from skystack.errors import SkystackError

__all__ = [
    "MasterKind",
    "MasterError",
    "MasterResult",
    "IMAGETYP",
    "build_master",
    "master_keywords",
    "source_hash",
    "normalize_flat",
]

MasterKind = Literal["bias", "dark", "flat", "dark_flat"]
IMAGETYP: dict[str, str] = {
    "bias": "Master Bias",
    "dark": "Master Dark",
    "flat": "Master Flat",
    "dark_flat": "Master Dark Flat",
}


class MasterError(SkystackError, ValueError):
    """A master cannot be built from the frames given."""


@dataclass
class MasterResult:
    """A master frame, its keywords, and how it was made."""

    kind: str
    data: NDArray[np.float32]
    sources: list[str]
    keywords: dict[str, object]
    rejected_low: float = 0.0
    rejected_high: float = 0.0
    path: Path | None = None
    notes: list[str] = field(default_factory=list)


def source_hash(paths: Sequence[str | Path]) -> str:
    """Stable hash (16 hex digits) of the sorted source file names and sizes."""
    h = hashlib.sha256()
    for p in sorted(str(x) for x in paths):
        pp = Path(p)
        size = pp.stat().st_size if pp.exists() else -1
        h.update(f"{pp.name}:{size}\n".encode())
    return h.hexdigest()[:16]


def _mean_of(values: Sequence[float | None]) -> float | None:
    v = [float(x) for x in values if x is not None]
    return float(np.mean(v)) if v else None


def master_keywords(kind: MasterKind, infos: Sequence[object], sources: Sequence[str | Path]) -> dict[str, object]:
    """Header keywords of a master built from frames described by ``infos`` (FrameInfo-like)."""
    def first(attr: str) -> object:
        for i in infos:
            v = getattr(i, attr, None)
            if v is not None:
                return v
        return None

    kw: dict[str, object] = {"IMAGETYP": IMAGETYP[kind], "NCOMBINE": len(sources),
                             "SRCHASH": source_hash(sources)}
    exp = _mean_of([getattr(i, "exposure", None) for i in infos])
    if exp is not None:
        kw["EXPTIME"] = round(exp, 4)
    temp = _mean_of([getattr(i, "temperature", None) for i in infos])
    if temp is not None:
        kw["CCD-TEMP"] = round(temp, 2)
    for key, attr in (("SET-TEMP", "set_temperature"), ("GAIN", "gain"), ("OFFSET", "offset"),
                      ("INSTRUME", "camera"), ("READOUTM", "readout_mode"),
                      ("BAYERPAT", "bayer"), ("ROWORDER", "row_order")):
        v = first(attr)
        if v is not None:
            kw[key] = v
    b = first("binning")
    if b is not None:
        kw["XBINNING"], kw["YBINNING"] = int(b[0]), int(b[1])  # type: ignore[index]
    if kind == "flat":
        f = first("filter")
        if f is not None:
            kw["FILTER"] = f
        s = first("session")
        if s is not None:
            kw["SESSION"] = s
    d = first("date_obs")
    if d is not None:
        kw["DATE-OBS"] = d.isoformat() if hasattr(d, "isoformat") else str(d)
    return kw


def normalize_flat(data: NDArray[np.float32], *, cfa_pattern: str | None = None) -> NDArray[np.float32]:
    """Scale a flat to mean 1 (per CFA position when ``cfa_pattern`` is given)."""
    from skystack.calibrate import flat_scale

    s = flat_scale(data, cfa_pattern=cfa_pattern)
    return (data / s).astype(np.float32)


def build_master(
    kind: MasterKind,
    frames: Sequence[str | Path],
    *,
    infos: Sequence[object] = (),
    bias: str | Path | NDArray[np.float32] | None = None,
    dark: str | Path | NDArray[np.float32] | None = None,
    cfa_pattern: str | None = None,
    rejection: str = "auto",
    memory: int | str | None = None,
    output: str | Path | None = None,
) -> MasterResult:
    """Integrate calibration frames into a master.

    Parameters
    ----------
    kind : {"bias", "dark", "flat", "dark_flat"}
    frames : sequence of paths
        The source frames (at least 3 recommended; 1 or 2 work with no rejection).
    infos : sequence of FrameInfo, optional
        Their metadata, for the master's keywords.
    bias, dark : path or array, optional
        For flats: the master dark-flat (``dark``) or master bias used to calibrate each flat.
    cfa_pattern : str, optional
        Bayer pattern in memory order: the flat is normalized per CFA position.
    rejection : str
        Rejection method (``auto`` chooses by count).
    memory : int or str, optional
        Memory budget for the stack engine.
    output : path, optional
        Write the master there (``.xisf`` or ``.fits``).

    Returns
    -------
    MasterResult
    """
    from skystack.integrate import IntegrationConfig, integrate
    from skystack.io import Image, read_image, write_image

    paths = [Path(p) for p in frames]
    if not paths:
        raise MasterError(f"no frames to build a master {kind} from")
    n = len(paths)
    rej = rejection if n >= 3 else "none"
    notes = [] if n >= 3 else [f"only {n} frame(s): integrated without rejection (3 or more recommended)"]

    def load(x: str | Path | NDArray[np.float32] | None) -> NDArray[np.float32] | None:
        if x is None or isinstance(x, np.ndarray):
            return x
        return read_image(x).data

    if kind == "flat":
        b = load(bias)
        d = load(dark)
        with tempfile.TemporaryDirectory(prefix="skystack-flat-") as tmp:
            calibrated = []
            for i, p in enumerate(paths):
                img = read_image(p)
                data = img.data
                if d is not None:
                    data = data - d
                elif b is not None:
                    data = data - b
                else:
                    notes.append(f"{p.name}: no dark-flat or bias — flat not calibrated")
                t = Path(tmp) / f"flat_{i:04d}.fits"
                write_image(t, Image.from_array(np.clip(data, 1e-6, None)))
                calibrated.append(t)
            cfg = IntegrationConfig(combine="average", rejection=rej,
                                    normalization="multiplicative",
                                    rejection_normalization="equalize", weights="none",
                                    subtract_pedestal=False, frame_type="flat")
            result = integrate(calibrated, config=cfg, memory=memory)
        data = normalize_flat(result.image, cfa_pattern=cfa_pattern)
    else:
        cfg = IntegrationConfig(combine="average", rejection=rej, normalization="none",
                                rejection_normalization="none", weights="none",
                                subtract_pedestal=False,
                                frame_type="dark" if kind == "dark_flat" else kind)
        result = integrate(paths, config=cfg, memory=memory)
        data = result.image
    total = float(np.prod(result.image.shape)) * n
    low = float(np.sum(result.low_rejected)) / total if result.low_rejected is not None else 0.0
    high = float(np.sum(result.high_rejected)) / total if result.high_rejected is not None else 0.0
    kw = master_keywords(kind, infos, paths)
    if cfa_pattern and "BAYERPAT" not in kw:
        kw["BAYERPAT"] = cfa_pattern
    master = MasterResult(kind, data.astype(np.float32), [str(p) for p in paths], kw, low, high,
                          notes=notes)
    if output is not None:
        out = Path(output)
        img = Image.from_array(master.data)
        for k, v in kw.items():
            img.set(k, v)  # type: ignore[arg-type]
        dates = [getattr(i, "date_obs", None) for i in infos]
        dates = [d for d in dates if d is not None]
        if dates:
            # deterministic products: the master is "created" at its newest source frame
            img.properties["XISF:CreationTime"] = max(dates).strftime("%Y-%m-%dT%H:%M:%SZ")
        img.set("REJLOW", round(low, 6), "fraction of samples rejected low")
        img.set("REJHIGH", round(high, 6), "fraction of samples rejected high")
        write_image(out, img, sample_format="float32")
        master.path = out
    return master
