"""Content-addressed products: a step's output is named by the hash of its inputs and parameters.

A rerun with ``--resume`` finds finished products by name and skips their work; products are
written to a temporary name and renamed, so a run killed at any moment never leaves a partial
product that a resumed run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["file_digest", "step_key", "atomic_write", "atomic_write_text", "json_default"]

_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's content (memoized per path, size and mtime within the process)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def json_default(obj: Any) -> Any:
    """JSON encoder fallback for paths, numpy scalars, dates and dataclasses."""
    import dataclasses
    import datetime

    import numpy as np

    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, datetime.datetime | datetime.date):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, set | frozenset | tuple):
        return sorted(obj, key=str) if isinstance(obj, set | frozenset) else list(obj)
    msg = f"not JSON serializable: {type(obj).__name__}"
    raise TypeError(msg)


def step_key(step: str, params: dict[str, Any], inputs: list[str]) -> str:
    """16 hex digits identifying a step's product from its name, parameters and input digests."""
    blob = json.dumps({"step": step, "params": params, "inputs": inputs}, sort_keys=True,
                      default=json_default)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def atomic_write(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` then rename ``tmp`` to ``path`` (same folder, so the rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """Write a text file atomically."""
    return atomic_write(path, lambda t: t.write_text(text))
