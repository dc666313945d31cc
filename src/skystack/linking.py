"""Calibration linking: which bias, dark, flat and dark-flat calibrate each light — and why.

Pure logic over :class:`~skystack.metadata.FrameInfo` lists (no file I/O):

1. calibration frames are grouped into prospective masters (:class:`CalibrationGroup`); masters
   already on disk form a group of their own and are never rebuilt;
2. lights are grouped by everything the matching looks at (:class:`LightGroup`), so a group of
   lights shares one set of links;
3. each light group gets a dark, a bias, a flat (with its dark-flat or bias) by the rules below,
   each link with a one-line reason, and every doubt becomes a :class:`Problem` (a sentence with
   the cause and the fix).

Rules (every tolerance lives in :class:`LinkConfig`):

- dark → light: same camera, binning, size, gain, offset, readout mode (unknown on either side is
  compatible, noted in the reason); temperature within ±2 °C (unknown allowed with a warning);
  the exact exposure preferred, else the nearest dark scaled by the exposure ratio (needs a
  bias) with a warning; none → an error. Ties: closest temperature, an existing master, closest
  date.
- bias: for dark scaling and for lights without a dark (a master dark already holds the bias).
- flat → light: same camera, binning, size, filter (aliases folded), CFA; same session
  preferred, else the nearest session with a warning (an error with ``strict_flats``).
- dark-flat → flat: a dark-flat of the same exposure (±0.5 s), else a dark of that exposure,
  else a bias, else the nearest dark with a warning.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from skystack.errors import ConfigError
from skystack.metadata import FrameInfo, normalize_filter

__all__ = [
    "LINK_KINDS",
    "CalibrationGroup",
    "LightGroup",
    "LightLinks",
    "Link",
    "LinkConfig",
    "LinkOverride",
    "LinkPlan",
    "Problem",
    "link",
    "normalize_filter",
]

LinkKind = Literal["bias", "dark", "flat", "dark_flat"]
LINK_KINDS: tuple[str, ...] = ("bias", "dark", "flat", "dark_flat")
Severity = Literal["warning", "error"]
#: Override value meaning "keep the automatic link".
AUTO = "auto"

# ---------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class LinkOverride:
    """A manual link: lights matching ``lights`` (a glob) get forced calibration.

    Each of ``bias``/``dark``/``flat``/``dark_flat`` is ``"auto"`` (keep the automatic choice),
    ``None`` (switch that link off) or a tuple of globs / group ids naming the frames or the
    master to use. Globs match a frame's path relative to the root, its absolute path or its
    file name.
    """

    lights: str
    bias: tuple[str, ...] | None | str = AUTO
    dark: tuple[str, ...] | None | str = AUTO
    flat: tuple[str, ...] | None | str = AUTO
    dark_flat: tuple[str, ...] | None | str = AUTO

    def value(self, kind: str) -> tuple[str, ...] | None | str:
        """The override for one link kind (``"auto"`` when untouched)."""
        return getattr(self, kind)


@dataclass(frozen=True)
class LinkConfig:
    """Every tolerance and switch of the linking rules.

    Two exposures are "the same" when they differ by at most ``exposure_tolerance`` seconds or
    ``exposure_tolerance_rel`` of the longer one, whichever is larger.
    """

    exposure_tolerance: float = 0.5
    exposure_tolerance_rel: float = 0.01
    temperature_tolerance: float = 2.0
    dark_flat_exposure_tolerance: float = 0.5
    strict_flats: bool = False
    allow_dark_scaling: bool = True
    overrides: tuple[LinkOverride, ...] = ()

    def exposure_tol(self, exposure: float) -> float:
        """Largest exposure difference still counted as the same exposure."""
        return max(self.exposure_tolerance, self.exposure_tolerance_rel * abs(exposure))

    def same_exposure(self, a: float | None, b: float | None) -> bool:
        """Whether two known exposures are the same within tolerance."""
        if a is None or b is None:
            return False
        return abs(a - b) <= self.exposure_tol(max(a, b))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> LinkConfig:
        """Build a config from the ``[link]`` table of a TOML file.

        Overrides come as ``[[link.override]]`` tables: ``lights = "Lights/M31/**"`` plus any of
        ``bias``/``dark``/``flat``/``dark_flat`` set to a path/glob/group id, a list of them,
        ``"none"`` or ``false`` (switch off) or ``"auto"``.
        """
        data = dict(data or {})
        names = {"exposure_tolerance", "exposure_tolerance_rel", "temperature_tolerance",
                 "dark_flat_exposure_tolerance", "strict_flats", "allow_dark_scaling"}
        raw_overrides = data.pop("override", data.pop("overrides", []))
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"[link]: unknown key(s) {', '.join(unknown)} — valid keys: "
                              f"{', '.join(sorted(names | {'override'}))}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("strict_flats", "allow_dark_scaling"):
                if not isinstance(value, bool):
                    raise ConfigError(f"[link] {key} must be true or false, not {value!r}")
                kwargs[key] = value
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ConfigError(f"[link] {key} must be a number ≥ 0, not {value!r}")
                kwargs[key] = float(value)
        if isinstance(raw_overrides, Mapping):
            raw_overrides = [raw_overrides]
        kwargs["overrides"] = tuple(_override_from_mapping(o, i)
                                    for i, o in enumerate(raw_overrides, 1))
        return cls(**kwargs)


def _override_from_mapping(data: Any, index: int) -> LinkOverride:
    if not isinstance(data, Mapping) or not isinstance(data.get("lights"), str):
        raise ConfigError(f"[[link.override]] #{index} needs lights = \"<glob of light paths>\"")
    unknown = sorted(set(data) - {"lights", *LINK_KINDS})
    if unknown:
        raise ConfigError(f"[[link.override]] #{index}: unknown key(s) {', '.join(unknown)} — "
                          f"valid keys: lights, {', '.join(LINK_KINDS)}")
    values: dict[str, Any] = {}
    for kind in LINK_KINDS:
        if kind not in data:
            continue
        v = data[kind]
        if v is None or v is False or (isinstance(v, str) and v.lower() in ("none", "off")):
            values[kind] = None
        elif isinstance(v, str) and v.lower() == AUTO:
            values[kind] = AUTO
        elif isinstance(v, str):
            values[kind] = (v,)
        elif isinstance(v, (list, tuple)) and v and all(isinstance(s, str) for s in v):
            values[kind] = tuple(v)
        else:
            raise ConfigError(f"[[link.override]] #{index} {kind} must be a path, a list of "
                              f"paths, \"none\" or \"auto\", not {v!r}")
    return LinkOverride(lights=data["lights"], **values)


# ---------------------------------------------------------------------------------------------
# filter names (one alias table: skystack.metadata.normalize_filter)


def _filter_key(name: str | None) -> str | None:
    n = normalize_filter(name)
    return None if n is None or n == "" else n.casefold()


# ---------------------------------------------------------------------------------------------
# plan data


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a link: ``link`` kind, ``severity`` and a sentence with the fix."""

    link: str
    severity: Severity
    message: str

    def to_json(self) -> dict[str, str]:
        """The ``problems[]`` entry of the link schema."""
        return {"link": self.link, "severity": self.severity, "message": self.message}


@dataclass(frozen=True, eq=False)
class _Group:
    """Frames sharing the keys that matter, with representative values."""

    id: str
    kind: str
    frames: tuple[FrameInfo, ...]
    key: Mapping[str, Any]

    @property
    def exposure(self) -> float | None:
        return self.key.get("exposure")

    @property
    def temperature(self) -> float | None:
        return self.key.get("temperature")

    @property
    def set_temperature(self) -> float | None:
        return self.key.get("set_temperature")

    @property
    def date(self) -> datetime | None:
        return self.key.get("date")

    def paths(self) -> list[str]:
        """Absolute/original paths of the frames."""
        return [f.path for f in self.frames]


@dataclass(frozen=True, eq=False)
class CalibrationGroup(_Group):
    """A prospective master (``frames`` to stack) or an existing master (``master=True``)."""

    master: bool = False

    def describe(self) -> str:
        """Short label, e.g. ``"master dark 300 s, −10 °C"`` or ``"20 darks 300 s, −10 °C"``."""
        kind = self.kind.replace("_", "-")
        bits = []
        if self.kind == "flat" and self.key.get("filter"):
            bits.append(f"filter {self.key['filter']}")
        if self.kind in ("dark", "dark_flat") and self.exposure is not None:
            bits.append(_s(self.exposure))
        t = _group_temp(self)
        if self.kind in ("dark", "dark_flat") and t is not None:
            bits.append(_t(t))
        if self.kind == "flat" and self.key.get("session"):
            bits.append(str(self.key["session"]))
        plural = "bias frames" if self.kind == "bias" else f"{kind}s"
        head = f"master {kind}" if self.master else f"{len(self.frames)} {plural}"
        return head + (" " + ", ".join(bits) if bits else "")


@dataclass(frozen=True, eq=False)
class LightGroup(_Group):
    """Lights calibrated the same way (same session, target, filter, exposure, camera …)."""

    override_ids: tuple[int, ...] = ()

    def describe(self) -> str:
        """Short label, e.g. ``"12 × 300 s Ha, bin 1x1, −10 °C"``."""
        bits = [f"{len(self.frames)} ×"]
        if self.exposure is not None:
            bits.append(_s(self.exposure))
        if self.key.get("filter"):
            bits.append(str(self.key["filter"]))
        out = " ".join(bits)
        if self.key.get("binning"):
            out += f", bin {_bin(self.key['binning'])}"
        t = _group_temp(self)
        if t is not None:
            out += f", {_t(t)}"
        return out


@dataclass(frozen=True, eq=False)
class Link:
    """A calibration link: the group used (None when missing/off), why, and the dark scale.

    A flat link also carries its own calibration: ``dark_flat`` or ``bias`` (a dark-flat link
    may point to a dark group when a dark stands in for the dark-flat).
    """

    kind: str
    group: CalibrationGroup | None
    reason: str
    scale: float = 1.0
    manual: bool = False
    dark_flat: Link | None = None
    bias: Link | None = None
    #: why a better candidate was passed over (e.g. an exact-exposure dark of another mode)
    note: str = ""


@dataclass(eq=False)
class LightLinks:
    """The links and problems of one light group."""

    group: LightGroup
    bias: Link | None = None
    dark: Link | None = None
    flat: Link | None = None
    problems: list[Problem] = field(default_factory=list)
    #: link kinds switched off by an override (no problem reported for them)
    off: set[str] = field(default_factory=set)

    def status(self, kind: str) -> str:
        """``"ok"``, ``"warning"`` or ``"error"`` for one link kind (worst problem wins)."""
        sev = {p.severity for p in self.problems if p.link == kind}
        return "error" if "error" in sev else "warning" if "warning" in sev else "ok"

    @property
    def worst(self) -> str:
        """Worst status over all links."""
        sev = {p.severity for p in self.problems}
        return "error" if "error" in sev else "warning" if "warning" in sev else "ok"


@dataclass(eq=False)
class LinkPlan:
    """Who calibrates whom, why, and what is wrong — the result of :func:`link`."""

    frames: list[FrameInfo]
    rejected: list[tuple[str, str]]
    root: Path | None
    groups: list[CalibrationGroup]
    light_links: list[LightLinks]
    config: LinkConfig

    _rel_cache: dict[str, str] = field(default_factory=dict, repr=False)
    _files_cache: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def rel(self, path: str) -> str:
        """A path relative to the root (POSIX separators) when it lies under it."""
        out = self._rel_cache.get(path)
        if out is None:
            out = self._rel_cache[path] = _rel(path, self.root)
        return out

    @property
    def problems(self) -> list[Problem]:
        """Every problem of every light group (repeated per group, not per light)."""
        return [p for ll in self.light_links for p in ll.problems]

    def links_for(self, path: str) -> LightLinks:
        """The links of the light at ``path`` (original or root-relative)."""
        for ll in self.light_links:
            for f in ll.group.frames:
                if f.path == path or self.rel(f.path) == path:
                    return ll
        raise KeyError(path)

    def used_groups(self) -> set[str]:
        """Ids of calibration groups some link uses."""
        used: set[str] = set()
        for ll in self.light_links:
            for lk in (ll.bias, ll.dark, ll.flat):
                for sub in (lk, lk and lk.dark_flat, lk and lk.bias):
                    if sub is not None and sub.group is not None:
                        used.add(sub.group.id)
        return used

    def to_json(self) -> dict[str, Any]:
        """The ``link --json`` document (schema version 1, plus additive extra keys)."""
        lights_by_path: dict[int, LightLinks] = {}
        for ll in self.light_links:
            for f in ll.group.frames:
                lights_by_path[id(f)] = ll
        lights = []
        for f in self.frames:
            ll = lights_by_path.get(id(f))
            if ll is None:
                continue
            lights.append({
                "path": self.rel(f.path),
                "bias": self._link_json(ll.bias),
                "dark": self._link_json(ll.dark, scale=True),
                "flat": self._flat_json(ll.flat),
                "problems": [p.to_json() for p in ll.problems],
                "group": ll.group.id,
            })
        return {
            "version": 1,
            "root": None if self.root is None else str(self.root),
            "frames": [f.to_json(self.rel(f.path)) for f in self.frames],
            "rejected": [{"path": self.rel(p), "reason": r} for p, r in self.rejected],
            "lights": lights,
            # extensions beyond version 1 (additive only)
            "groups": [self._group_json(g) for g in self.groups],
        }

    def _link_json(self, lk: Link | None, *, scale: bool = False) -> dict[str, Any] | None:
        if lk is None or lk.group is None:
            return None
        out: dict[str, Any] = {"files": self._files(lk.group)}
        if scale:
            out["scale"] = float(lk.scale)
        out.update(group=lk.group.id, master=lk.group.master, reason=lk.reason, manual=lk.manual)
        return out

    def _files(self, g: CalibrationGroup) -> list[str]:
        files = self._files_cache.get(g.id)
        if files is None:
            files = self._files_cache[g.id] = [self.rel(p) for p in g.paths()]
        return list(files)

    def _flat_json(self, lk: Link | None) -> dict[str, Any] | None:
        out = self._link_json(lk)
        if out is None or lk is None:
            return None
        out["dark_flat"] = self._link_json(lk.dark_flat)
        out["bias"] = self._link_json(lk.bias)
        return out

    def _group_json(self, g: CalibrationGroup) -> dict[str, Any]:
        key = {k: (v.isoformat() if isinstance(v, datetime) else _bin(v) if k == "binning" else v)
               for k, v in g.key.items()}
        return {"id": g.id, "kind": g.kind, "master": g.master,
                "files": [self.rel(p) for p in g.paths()], "key": key}


# ---------------------------------------------------------------------------------------------
# formatting helpers


def _num(v: float) -> str:
    return f"{round(float(v), 2):g}"


def _s(v: float | None) -> str:
    return "unknown exposure" if v is None else f"{_num(v)} s"


def _t(v: float | None) -> str:
    return "unknown temperature" if v is None else f"{round(float(v), 1):g} °C".replace("-", "−")


def _bin(b: Any) -> str:
    return f"{b[0]}x{b[1]}" if isinstance(b, tuple) else str(b)


def _rel(path: str, root: Path | None) -> str:
    # like Inventory.relpath (os.path.relpath), but a path outside the root stays as it is
    if root is not None:
        rel = os.path.relpath(path, root)
        if rel != ".." and not rel.startswith(".." + os.sep):
            return rel.replace(os.sep, "/")
    return path.replace(os.sep, "/")


def _slug(v: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", str(v)).strip("_") or "x"


def _sort_key(v: Any) -> tuple:
    """Total order over mixed None / numbers / strings / tuples (deterministic grouping)."""
    if isinstance(v, tuple):
        return (3, tuple(_sort_key(x) for x in v))
    if v is None:
        return (0, 0.0, "")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (1, float(v), "")
    if isinstance(v, datetime):
        return (2, 0.0, v.isoformat())
    return (2, 0.0, str(v))


# ---------------------------------------------------------------------------------------------
# grouping

_HARDWARE = ("camera", "binning", "width", "height", "gain", "offset", "readout_mode")
_GROUP_KEYS: dict[str, tuple[str, ...]] = {
    "bias": _HARDWARE,
    "dark": _HARDWARE + ("set_temperature",),
    "dark_flat": _HARDWARE + ("set_temperature",),
    "flat": ("camera", "binning", "width", "height", "gain", "offset", "filter", "cfa",
             "session"),
}
_LIGHT_KEYS = ("session", "object", "panel", "filter") + _HARDWARE + ("cfa", "set_temperature")


def _attr(f: FrameInfo, name: str) -> Any:
    if name == "filter":
        return normalize_filter(f.filter)
    if name == "cfa":
        return f.bayer.upper() if f.bayer else None
    if name in ("gain", "offset", "set_temperature"):
        v = getattr(f, name)
        return None if v is None else round(float(v), 2)
    if name == "camera":
        return f.camera.strip() if f.camera else None
    return getattr(f, name)


def _cluster(frames: list[FrameInfo], value: Callable[[FrameInfo], float | None],
             tol: Callable[[float], float]) -> list[list[FrameInfo]]:
    """Split frames into runs of values within ``tol`` of the run's first (smallest) value."""
    known = sorted((f for f in frames if value(f) is not None), key=value)  # type: ignore[arg-type]
    out: list[list[FrameInfo]] = []
    start = 0.0
    for f in known:
        v = value(f)
        assert v is not None
        if not out or v - start > tol(start):
            out.append([])
            start = v
        out[-1].append(f)
    unknown = [f for f in frames if value(f) is None]
    if unknown:
        out.append(unknown)
    return out


def _median(values: Iterable[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return statistics.median(vals) if vals else None


def _median_date(frames: Sequence[FrameInfo]) -> datetime | None:
    dates = sorted(f.date_obs for f in frames if f.date_obs is not None)
    return dates[len(dates) // 2] if dates else None


def _summary(frames: Sequence[FrameInfo], names: Sequence[str]) -> dict[str, Any]:
    first = frames[0]
    key = {n: _attr(first, n) for n in names}
    key["exposure"] = _median(f.exposure for f in frames)
    key["temperature"] = _median(f.temperature for f in frames)
    sets = {_attr(f, "set_temperature") for f in frames}
    key["set_temperature"] = sets.pop() if len(sets) == 1 else None
    key["date"] = _median_date(frames)
    if "session" not in key:
        sessions = {f.session for f in frames}
        key["session"] = sessions.pop() if len(sessions) == 1 else None
    return key


def _temp_value(f: FrameInfo) -> float | None:
    return f.set_temperature if f.set_temperature is not None else f.temperature


def _split(frames: list[FrameInfo], names: Sequence[str], cfg: LinkConfig, *,
           exposure: bool, temperature: bool,
           extra: Callable[[FrameInfo], Any] | None = None) -> list[list[FrameInfo]]:
    buckets: dict[tuple, list[FrameInfo]] = defaultdict(list)
    for f in frames:
        k = tuple(_attr(f, n) for n in names)
        if extra is not None:
            k += (extra(f),)
        buckets[k].append(f)
    out = []
    for k in sorted(buckets, key=_sort_key):
        parts = [buckets[k]]
        if exposure:
            parts = [c for p in parts
                     for c in _cluster(p, lambda f: f.exposure, cfg.exposure_tol)]
        if temperature:
            tol = cfg.temperature_tolerance
            parts = [c for p in parts for c in _cluster(p, _temp_value, lambda _: tol)]
        out.extend(parts)
    return out


def _base_id(kind: str, key: Mapping[str, Any], master: bool) -> str:
    bits = [kind.replace("_", "")]
    if kind == "flat":
        if key.get("filter"):
            bits.append(_slug(key["filter"]))
        if key.get("session"):
            bits.append(_slug(key["session"]))
    if kind in ("dark", "dark_flat", "lights") and key.get("exposure") is not None:
        bits.append(f"{_num(key['exposure'])}s")
    if kind != "flat":
        if key.get("gain") is not None:
            bits.append(f"g{_num(key['gain'])}")
        if key.get("offset") is not None:
            bits.append(f"o{_num(key['offset'])}")
    if kind in ("dark", "dark_flat", "lights"):
        t = key.get("set_temperature")
        t = key.get("temperature") if t is None else t
        if t is not None:
            r = round(float(t))
            bits.append(f"m{-r}C" if r < 0 else f"{r}C")
    if key.get("binning"):
        bits.append(f"bin{_bin(key['binning'])}")
    if master:
        bits.append("master")
    return "-".join(bits)


def _unique_ids(base_ids: list[str]) -> list[str]:
    seen: dict[str, int] = defaultdict(int)
    out = []
    for b in base_ids:
        seen[b] += 1
        out.append(b if seen[b] == 1 else f"{b}-{seen[b]}")
    return out


def _calibration_groups(frames: Sequence[FrameInfo], cfg: LinkConfig) -> list[CalibrationGroup]:
    specs: list[tuple[str, list[FrameInfo], bool]] = []
    for kind in ("bias", "dark", "dark_flat", "flat"):
        of_kind = [f for f in frames if f.type == kind]
        names = _GROUP_KEYS[kind]
        # masters on disk are used as they are: one group each, never merged or rebuilt
        for m in sorted((f for f in of_kind if f.master), key=lambda f: f.path):
            specs.append((kind, [m], True))
        raw = [f for f in of_kind if not f.master]
        darkish = kind in ("dark", "dark_flat")
        for part in _split(raw, names, cfg, exposure=darkish, temperature=darkish):
            specs.append((kind, part, False))
    keys = [_summary(fr, _GROUP_KEYS[k]) for k, fr, _ in specs]
    ids = _unique_ids([_base_id(k, key, m) for (k, _, m), key in zip(specs, keys)])
    return [CalibrationGroup(id=i, kind=k, frames=tuple(sorted(fr, key=lambda f: f.path)),
                             key=key, master=m)
            for i, (k, fr, m), key in zip(ids, specs, keys)]


def _light_groups(lights: Sequence[FrameInfo], cfg: LinkConfig,
                  override_ids: Callable[[FrameInfo], tuple[int, ...]]) -> list[LightGroup]:
    parts = _split(list(lights), _LIGHT_KEYS, cfg, exposure=True, temperature=True,
                   extra=override_ids)
    keys = [_summary(p, _LIGHT_KEYS) for p in parts]
    bases = []
    for key in keys:
        b = ["lights"]
        for n in ("session", "object", "panel", "filter"):
            if key.get(n):
                b.append(_slug(key[n]))
        bases.append("-".join(b) + _base_id("lights", key, False)[len("lights"):])
    ids = _unique_ids(bases)
    return [LightGroup(id=i, kind="lights", frames=tuple(p), key=k,
                       override_ids=override_ids(p[0]))
            for i, p, k in zip(ids, parts, keys)]


# ---------------------------------------------------------------------------------------------
# matching helpers

_LABELS = {"camera": "camera", "binning": "binning", "size": "size", "gain": "gain",
           "offset": "offset", "readout_mode": "readout mode"}


def _fmt_field(name: str, key: Mapping[str, Any]) -> str:
    if name == "size":
        w, h = key.get("width"), key.get("height")
        return f"{w}×{h}"
    if name == "binning":
        return _bin(key.get("binning"))
    v = key.get(name)
    return _num(v) if isinstance(v, float) else str(v)


@dataclass
class _Compat:
    mismatch: list[str]
    unknown: list[str]
    same: list[str]


def _compare(a: Mapping[str, Any], b: Mapping[str, Any], names: Sequence[str]) -> _Compat:
    c = _Compat([], [], [])
    for n in names:
        if n == "size":
            av = (a.get("width"), a.get("height"))
            bv = (b.get("width"), b.get("height"))
            av = None if None in av else av  # type: ignore[assignment]
            bv = None if None in bv else bv  # type: ignore[assignment]
        else:
            av, bv = a.get(n), b.get(n)
        if av is None and bv is None:
            continue  # unknown on both sides tells nothing either way
        if av is None or bv is None:
            c.unknown.append(n)
        elif av == bv or (isinstance(av, str) and isinstance(bv, str)
                          and av.casefold() == bv.casefold()):
            c.same.append(n)
        else:
            c.mismatch.append(n)
    return c


def _group_temp(g: _Group) -> float | None:
    return g.set_temperature if g.set_temperature is not None else g.temperature


def _temp_delta(a: _Group, b: _Group) -> float | None:
    # compare set-points when both sides have one (measured values drift around them)
    if a.set_temperature is not None and b.set_temperature is not None:
        return abs(a.set_temperature - b.set_temperature)
    ta, tb = _group_temp(a), _group_temp(b)
    return None if ta is None or tb is None else abs(ta - tb)


def _date_delta(a: _Group, b: _Group) -> float:
    if a.date is None or b.date is None:
        return math.inf
    da, db = a.date, b.date
    if (da.tzinfo is None) != (db.tzinfo is None):
        da, db = da.replace(tzinfo=None), db.replace(tzinfo=None)
    return abs((da - db).total_seconds())


def _session_date(s: Any) -> date | None:
    if not s:
        return None
    try:
        return date.fromisoformat(str(s)[:10])
    except ValueError:
        return None


def _note_unknown(c: _Compat) -> str:
    if not c.unknown:
        return ""
    return f"; {', '.join(_LABELS.get(n, n) for n in c.unknown)} unknown on one side"


def _same_text(c: _Compat, key: Mapping[str, Any]) -> str:
    shown = [n for n in c.same if n in ("gain", "offset", "binning")]
    return "".join(f", same {_LABELS[n]} {_fmt_field(n, key)}" for n in shown)


def _mismatch_text(c: _Compat, light: Mapping[str, Any], cal: Mapping[str, Any]) -> str:
    return ", ".join(f"{_LABELS.get(n, n)} {_fmt_field(n, cal)} vs {_fmt_field(n, light)}"
                     for n in c.mismatch)


# ---------------------------------------------------------------------------------------------
# the matcher


class _Matcher:
    """Links light groups to calibration groups by the rules in the module docstring."""

    def __init__(self, groups: list[CalibrationGroup], cfg: LinkConfig) -> None:
        self.cfg = cfg
        self.by_kind: dict[str, list[CalibrationGroup]] = defaultdict(list)
        for g in groups:
            self.by_kind[g.kind].append(g)
        self._flat_cal: dict[str, tuple[Link | None, Link | None, list[Problem]]] = {}

    # -- bias ------------------------------------------------------------------------------
    def bias(self, target: _Group, why: str) -> Link | None:
        best = None
        for g in self.by_kind["bias"]:
            c = _compare(target.key, g.key, ("camera", "binning", "size", "gain", "offset",
                                             "readout_mode"))
            if c.mismatch:
                continue
            rank = (len(c.unknown), _round_delta(_temp_delta(target, g)), not g.master,
                    _date_delta(target, g), g.id)
            if best is None or rank < best[0]:
                best = (rank, g, c)
        if best is None:
            return None
        _, g, c = best
        return Link("bias", g, f"{why}{_same_text(c, g.key)}{_note_unknown(c)}")

    # -- dark ------------------------------------------------------------------------------
    def dark(self, lg: LightGroup, problems: list[Problem]) -> tuple[Link | None, bool]:
        """The dark for a light group, and whether a bias is needed (scaled or no dark)."""
        cfg = self.cfg
        darks = self.by_kind["dark"]
        names = ("camera", "binning", "size", "gain", "offset", "readout_mode")
        exp = lg.exposure
        if not darks:
            problems.append(Problem("dark", "error", f"no darks at all for these {_s(exp)} "
                                    "lights — shoot darks at the lights' exposure and "
                                    "temperature, or set dark = none for this group"))
            return None, True
        compat = []
        closest_mismatch = None
        passed_over = ""
        for g in darks:
            c = _compare(lg.key, g.key, names)
            if c.mismatch:
                if closest_mismatch is None or len(c.mismatch) < len(closest_mismatch[1].mismatch):
                    closest_mismatch = (g, c)
                if not passed_over and cfg.same_exposure(exp, g.exposure):
                    passed_over = (f"the {_s(g.exposure)} dark {g.id} differs in "
                                   f"{_mismatch_text(c, lg.key, g.key)} (dark vs lights)")
                continue
            compat.append((g, c))
        if not compat:
            assert closest_mismatch is not None
            g, c = closest_mismatch
            problems.append(Problem(
                "dark", "error",
                f"no dark matches these lights' camera settings (closest: the {_s(g.exposure)} "
                f"dark differs in {_mismatch_text(c, lg.key, g.key)}, dark vs lights) "
                "— shoot darks with the lights' settings, or set dark = none for this group"))
            return None, True
        tol = cfg.temperature_tolerance
        in_temp = []
        for g, c in compat:
            dt = _temp_delta(lg, g)
            if dt is None or dt <= tol:
                in_temp.append((g, c, dt))
            elif not passed_over and cfg.same_exposure(exp, g.exposure):
                passed_over = (f"the {_s(g.exposure)} dark {g.id} is at {_t(_group_temp(g))}, "
                               f"{_num(dt)} °C from the lights")
        if not in_temp:
            g, c = min(compat, key=lambda gc: (not cfg.same_exposure(exp, gc[0].exposure),
                                               _temp_delta(lg, gc[0]) or 0.0))
            problems.append(Problem(
                "dark", "error",
                f"the {_s(g.exposure)} dark is at {_t(_group_temp(g))}, these lights at "
                f"{_t(_group_temp(lg))} (tolerance {_num(tol)} °C) — shoot darks at "
                f"{_t(_group_temp(lg))}, or raise link.temperature_tolerance"))
            return None, True

        def tie(item: tuple[CalibrationGroup, _Compat, float | None]) -> tuple:
            g, c, dt = item
            return (len(c.unknown), _round_delta(dt), not g.master, _date_delta(lg, g), g.id)

        exact = [it for it in in_temp if cfg.same_exposure(exp, it[0].exposure)]
        scale = 1.0
        needs_bias = False
        if exact:
            g, c, dt = min(exact, key=tie)
            reason = f"exact exposure {_s(g.exposure)}"
        elif exp is None:
            # unknown light exposure: the longest dark, unscaled (WBPP does the same)
            g, c, dt = min(in_temp, key=lambda it: (-(it[0].exposure or 0.0),) + tie(it))
            reason = f"longest dark {_s(g.exposure)} (light exposure unknown)"
            problems.append(Problem("dark", "warning", f"these lights' exposure is unknown, so "
                                    f"the longest dark ({_s(g.exposure)}) is used unscaled — "
                                    "set EXPTIME in the headers or with an override file"))
        else:
            known = [it for it in in_temp if it[0].exposure]
            nearest = min(known, key=lambda it: (abs(math.log(exp / it[0].exposure))
                                                 if exp > 0 else abs(exp - it[0].exposure),)
                          + tie(it)) if known else None
            if nearest is None:
                g, c, dt = min(in_temp, key=tie)
                reason = "dark exposure unknown"
                problems.append(Problem("dark", "warning", f"the dark's exposure is unknown, "
                                        f"so it cannot be checked against these {_s(exp)} "
                                        "lights — set EXPTIME in the darks' headers"))
            elif not cfg.allow_dark_scaling:
                problems.append(Problem(
                    "dark", "error",
                    f"no {_s(exp)} dark (nearest {_s(nearest[0].exposure)}) and dark scaling "
                    f"is off — shoot {_s(exp)} darks, or set link.allow_dark_scaling = true"))
                return None, True
            else:
                g, c, dt = nearest
                assert g.exposure
                # the caller adds the warning, or an error when no bias allows the scaling
                scale = exp / g.exposure
                needs_bias = True
                reason = (f"nearest exposure {_s(g.exposure)}, scaled ×{_num(scale)} to "
                          f"{_s(exp)}")
        if dt is None:
            side = "the dark's" if _group_temp(g) is None else "these lights'"
            problems.append(Problem("dark", "warning", f"{side} temperature is unknown, so the "
                                    "dark cannot be checked for a temperature match — set "
                                    "CCD-TEMP/SET-TEMP in the headers or with an override file"))
            reason += ", temperature unknown"
        else:
            reason += f", {_num(dt)} °C apart"
        reason += _same_text(c, g.key) + _note_unknown(c)
        if g.master:
            reason += ", existing master"
        if passed_over and not exact:
            reason += f" ({passed_over})"
        return Link("dark", g, reason, scale=scale, note="" if exact else passed_over), needs_bias

    # -- flat ------------------------------------------------------------------------------
    def flat(self, lg: LightGroup, problems: list[Problem]) -> Link | None:
        cfg = self.cfg
        fkey = _filter_key(lg.key.get("filter"))
        fname = lg.key.get("filter") or "(none)"
        flats = [g for g in self.by_kind["flat"] if _filter_key(g.key.get("filter")) == fkey]
        if not flats:
            problems.append(Problem("flat", "error", f"no flat for filter {fname} in any "
                                    f"session — shoot {fname} flats, or set flat = none for "
                                    "this group"))
            return None
        compat = []
        mismatch = None
        for g in flats:
            c = _compare(lg.key, g.key, ("camera", "binning", "size"))
            if c.mismatch:
                mismatch = mismatch or (g, c)
            else:
                compat.append((g, c))
        if not compat:
            assert mismatch is not None
            g, c = mismatch
            problems.append(Problem(
                "flat", "error",
                f"no {fname} flat matches these lights ({_mismatch_text(c, lg.key, g.key)}"
                f", flat vs lights) — shoot {fname} flats with the lights' camera and binning"))
            return None
        lcfa = lg.key.get("cfa")
        same_cfa = [(g, c) for g, c in compat if bool(g.key.get("cfa")) == bool(lcfa)]
        if not same_cfa:
            g = compat[0][0]
            if lcfa:
                msg = (f"lights are CFA ({lcfa}), the flat is mono — use {fname} flats shot "
                       "with the same colour camera, undebayered")
            else:
                msg = (f"lights are mono, the flat is CFA ({g.key.get('cfa')}) — use {fname} "
                       "flats shot with the same mono camera")
            problems.append(Problem("flat", "error", msg))
            return None
        lsession = lg.key.get("session")
        lday = _session_date(lsession)

        def rank(gc: tuple[CalibrationGroup, _Compat]) -> tuple:
            g, c = gc
            same = lsession is not None and g.key.get("session") == lsession
            fday = _session_date(g.key.get("session"))
            days = abs((fday - lday).days) if fday and lday else math.inf
            return (not same, days, len(c.unknown), not g.master, _date_delta(lg, g), g.id)

        g, c = min(same_cfa, key=rank)
        fsession = g.key.get("session")
        if lsession is not None and fsession == lsession:
            reason = f"filter {fname}, same session {lsession}"
        else:
            fday = _session_date(fsession)
            if fday and lday:
                n = abs((fday - lday).days)
                when = f"{n} night{'s' if n != 1 else ''} {'earlier' if fday < lday else 'later'}"
            else:
                when = "session unknown"
            reason = f"filter {fname}, nearest session {fsession or '?'} ({when})"
            if fsession is None:
                msg = (f"no {fname} flats from this session ({lsession or 'unknown'}); the "
                       f"{fname} flats found have no session date and may be from another "
                       f"night — shoot {fname} flats each session, or set their session in "
                       "an overrides file")
            else:
                msg = (f"no {fname} flats from this session ({lsession or 'unknown'}); the "
                       f"nearest are from {fsession} ({when}) and dust may have moved since "
                       f"— shoot {fname} flats each session")
            if cfg.strict_flats:
                problems.append(Problem("flat", "error", msg + ", or turn off "
                                        "link.strict_flats"))
                return None
            problems.append(Problem("flat", "warning", msg))
        reason += _same_text(c, g.key) + _note_unknown(c)
        if g.master:
            reason += ", existing master"
        return Link("flat", g, reason)

    # -- flat calibration ------------------------------------------------------------------
    def flat_calibration(self, flat: CalibrationGroup
                         ) -> tuple[Link | None, Link | None, list[Problem]]:
        """(dark_flat link, bias link, problems) for a flat group; cached per group."""
        if flat.id not in self._flat_cal:
            self._flat_cal[flat.id] = self._flat_calibration(flat)
        return self._flat_cal[flat.id]

    def _flat_calibration(self, flat: CalibrationGroup
                          ) -> tuple[Link | None, Link | None, list[Problem]]:
        if flat.master:
            return None, None, []  # masters are never calibrated again
        tol = self.cfg.dark_flat_exposure_tolerance
        names = ("camera", "binning", "size", "gain", "offset")
        fexp = flat.exposure

        def candidates(kind: str) -> list[tuple[CalibrationGroup, _Compat]]:
            out = []
            for g in self.by_kind[kind]:
                c = _compare(flat.key, g.key, names)
                if not c.mismatch:
                    out.append((g, c))
            return out

        def tie(gc: tuple[CalibrationGroup, _Compat]) -> tuple:
            g, c = gc
            return (len(c.unknown), _round_delta(_temp_delta(flat, g)), not g.master,
                    _date_delta(flat, g), g.id)

        def same_exp(g: CalibrationGroup) -> bool:
            return fexp is not None and g.exposure is not None and abs(fexp - g.exposure) <= tol

        label = f"the {flat.key.get('filter') or ''} flats ({flat.id})".replace("the  ", "the ")
        for kind, word in (("dark_flat", "dark-flat"), ("dark", "dark used as dark-flat")):
            exact = [gc for gc in candidates(kind) if same_exp(gc[0])]
            if exact:
                g, c = min(exact, key=tie)
                return Link("dark_flat", g, f"{word}, same exposure {_s(g.exposure)}"
                            f"{_same_text(c, g.key)}{_note_unknown(c)}"), None, []
        b = self.bias(flat, "bias for the flats (no dark-flat of their exposure)")
        if b is not None:
            return None, b, []
        darks = [gc for gc in candidates("dark") if gc[0].exposure is not None]
        if darks and fexp is not None:
            g, c = min(darks, key=lambda gc: (abs(fexp - gc[0].exposure),) + tie(gc))
            return (Link("dark_flat", g, f"nearest dark {_s(g.exposure)} for "
                         f"{_s(fexp)} flats"), None,
                    [Problem("dark_flat", "warning",
                             f"no {_s(fexp)} dark-flat or bias for {label}; the "
                             f"{_s(g.exposure)} dark stands in, which over- or under-subtracts "
                             f"— shoot {_s(fexp)} dark-flats or bias frames")])
        return None, None, [Problem(
            "dark_flat", "warning",
            f"no dark-flat, bias or dark for {label}, so they will be integrated uncalibrated "
            f"and keep their offset — shoot {_s(fexp)} dark-flats or bias frames")]


def _round_delta(d: float | None) -> float:
    # ties within 0.1 °C count as equal so an existing master can win over raw frames
    return math.inf if d is None else round(d, 1)


# ---------------------------------------------------------------------------------------------
# overrides


def _matches(pattern: str, f: FrameInfo, root: Path | None) -> bool:
    rel = _rel(f.path, root)
    return (fnmatch.fnmatchcase(rel, pattern) or fnmatch.fnmatchcase(f.path, pattern)
            or fnmatch.fnmatchcase(Path(f.path).name, pattern))


class _Overrides:
    def __init__(self, cfg: LinkConfig, groups: list[CalibrationGroup],
                 frames: Sequence[FrameInfo], root: Path | None) -> None:
        self.cfg = cfg
        self.root = root
        self.groups = groups
        self.by_id = {g.id: g for g in groups}
        self.cal_frames = [f for f in frames if f.type in LINK_KINDS]
        self._adhoc: dict[tuple[str, tuple[str, ...]], CalibrationGroup | str] = {}
        self._ids: dict[int, tuple[int, ...]] = {}

    def ids_for(self, light: FrameInfo) -> tuple[int, ...]:
        key = id(light)
        if key not in self._ids:
            self._ids[key] = tuple(i for i, o in enumerate(self.cfg.overrides)
                                   if _matches(o.lights, light, self.root))
        return self._ids[key]

    def effective(self, ids: tuple[int, ...], kind: str) -> tuple[int, Any] | None:
        """(override number, value) of the last matching override that sets ``kind``."""
        hit = None
        for i in ids:
            v = self.cfg.overrides[i].value(kind)
            if v != AUTO:
                hit = (i, v)
        return hit

    def resolve(self, kind: str, patterns: tuple[str, ...]) -> CalibrationGroup | str:
        """The group named by ``patterns``, or an error sentence."""
        cache_key = (kind, patterns)
        if cache_key in self._adhoc:
            return self._adhoc[cache_key]
        out: CalibrationGroup | str
        if len(patterns) == 1 and patterns[0] in self.by_id:
            out = self.by_id[patterns[0]]
        else:
            hits = [f for f in self.cal_frames if any(_matches(p, f, self.root) for p in patterns)]
            if not hits:
                out = (f"the override {kind} = {list(patterns)} matches no scanned calibration "
                       "file — check the path (relative to the scanned folder) or the group id")
            else:
                paths = sorted(f.path for f in hits)
                same = [g for g in self.groups if sorted(g.paths()) == paths]
                if same:
                    out = same[0]
                else:
                    names = _GROUP_KEYS.get(hits[0].type or kind, _HARDWARE)
                    key = _summary(hits, names)
                    master = len(hits) == 1 and hits[0].master
                    gid = f"override-{kind.replace('_', '')}-{len(self._adhoc) + 1}"
                    out = CalibrationGroup(id=gid, kind=hits[0].type or kind,
                                           frames=tuple(sorted(hits, key=lambda f: f.path)),
                                           key=key, master=master)
                    self.groups.append(out)
        self._adhoc[cache_key] = out
        return out


# ---------------------------------------------------------------------------------------------
# entry point


def _rejected_pairs(rejected: Iterable[Any]) -> list[tuple[str, str]]:
    out = []
    for r in rejected:
        if isinstance(r, Mapping):
            out.append((str(r["path"]), str(r["reason"])))
        elif hasattr(r, "path"):
            out.append((str(r.path), str(r.reason)))
        else:
            p, reason = r
            out.append((str(p), str(reason)))
    return out


def link(frames: Sequence[FrameInfo], *, config: LinkConfig | None = None,
         root: Path | str | None = None, rejected: Iterable[Any] = ()) -> LinkPlan:
    """Link calibration frames to lights.

    Parameters
    ----------
    frames
        Every scanned frame (lights and calibration frames; other types are listed but unused).
    config
        Tolerances, switches and manual overrides (defaults: :class:`LinkConfig`).
    root
        The scanned folder; paths in the JSON are made relative to it.
    rejected
        Files the scan rejected: ``RejectedFile`` objects, ``{"path", "reason"}`` mappings or
        ``(path, reason)`` pairs. They are only carried into the plan's JSON.

    Returns
    -------
    LinkPlan
        Calibration groups, per-light-group links with reasons, and problems.
    """
    cfg = config or LinkConfig()
    root_p = None if root is None else Path(root)
    frames = list(frames)
    groups = _calibration_groups(frames, cfg)
    overrides = _Overrides(cfg, groups, frames, root_p)
    lights = [f for f in frames if f.type == "light" and not f.master]
    light_groups = _light_groups(lights, cfg, overrides.ids_for)
    matcher = _Matcher(groups, cfg)
    plan_links = [_link_group(lg, matcher, overrides) for lg in light_groups]
    # overrides may have added ad-hoc groups; keep masters/groups in a stable order
    return LinkPlan(frames=frames, rejected=_rejected_pairs(rejected), root=root_p,
                    groups=list(overrides.groups), light_links=plan_links, config=cfg)


def _forced(kind: str, lg: LightGroup, ov: _Overrides, ll: LightLinks) -> tuple[bool, Link | None]:
    """(handled, link) for an overridden link kind; handled=False means automatic."""
    hit = ov.effective(lg.override_ids, kind)
    if hit is None:
        return False, None
    i, value = hit
    pattern = ov.cfg.overrides[i].lights
    if value is None:
        ll.off.add(kind)
        return True, None
    g = ov.resolve(kind, value)
    if isinstance(g, str):
        ll.problems.append(Problem(kind, "error", g))
        return True, None
    return True, Link(kind, g, f"manually linked by override #{i + 1} (lights = {pattern!r})",
                      manual=True)


def _link_group(lg: LightGroup, m: _Matcher, ov: _Overrides) -> LightLinks:
    ll = LightLinks(group=lg)
    cfg = m.cfg
    lexp = lg.exposure
    # dark
    handled, dark = _forced("dark", lg, ov, ll)
    needs_bias = dark is None
    if handled and dark is not None and dark.group is not None:
        dexp = dark.group.exposure
        if dexp and lexp and not cfg.same_exposure(dexp, lexp):
            scale = lexp / dexp
            dark = Link("dark", dark.group, dark.reason + f", scaled ×{_num(scale)}",
                        scale=scale, manual=True)
    elif not handled:
        dark, needs_bias = m.dark(lg, ll.problems)
    scaled = dark is not None and dark.scale != 1.0
    needs_bias = needs_bias or scaled
    # bias: for dark scaling and for lights without a dark
    handled, bias = _forced("bias", lg, ov, ll)
    if not handled and needs_bias:
        bias = m.bias(lg, "bias for dark scaling" if scaled else "bias for lights without a dark")
    if scaled and dark is not None and dark.group is not None:
        dexp = dark.group.exposure
        if bias is None:
            # scaling a dark that still holds the bias would scale the bias pedestal too
            ll.problems.append(Problem(
                "dark", "error", f"no matching {_s(lexp)} dark, and scaling the {_s(dexp)} dark "
                f"needs a matching bias to take out of it first — shoot {_s(lexp)} darks, or bias "
                "frames with the lights' gain and offset"))
            dark = None
        else:
            what = "forced" if dark.manual else "nearest"
            why = f" ({dark.note})" if dark.note else ""
            ll.problems.append(Problem(
                "dark", "warning", f"no matching {_s(lexp)} dark{why}; the {what} {_s(dexp)} "
                f"dark is scaled ×{_num(dark.scale)}, which scales amp glow and hot pixels "
                f"imperfectly — shoot {_s(lexp)} darks"))
    elif bias is None and "dark" in ll.off and "bias" not in ll.off:
        ll.problems.append(Problem(
            "bias", "warning", "the dark is switched off and no bias matches, so the lights "
            "keep their offset — shoot bias frames with the lights' gain and offset"))
    ll.dark, ll.bias = dark, bias
    # flat (+ its own calibration)
    handled, flat = _forced("flat", lg, ov, ll)
    if not handled:
        flat = m.flat(lg, ll.problems)
    if flat is not None and flat.group is not None:
        dark_flat, fbias, probs = m.flat_calibration(flat.group)
        handled, forced_df = _forced("dark_flat", lg, ov, ll)
        if handled:
            dark_flat, fbias, probs = forced_df, None, []
        ll.problems.extend(probs)
        flat = Link("flat", flat.group, flat.reason, manual=flat.manual,
                    dark_flat=dark_flat, bias=fbias)
    ll.flat = flat
    return ll
