"""Pre-flight checks for the failure modes that ruin a night's processing.

Each check takes what the scan and the link plan know (plus a few sampled pixels) and returns
:class:`Finding` objects: a severity, the cause and the fix in one or two sentences, and the
files concerned. ``skystack doctor`` prints them; ``skystack run`` stops on errors unless told
to ignore them.

The checks (numbers as in the doctor issue):

1. ``links`` — broken calibration links from the link plan (no dark/flat, wrong exposure,
   temperature, gain, binning, filter or night).
2. ``ln-reference-pixels`` — zero or non-finite pixels inside the LN reference's data area
   ("LN vectors contain NaN values").
3. ``ln-reference-type`` — a dark, bias or flat given as the LN reference.
4. ``mosaic-reference`` — several mosaic panels sharing one LN reference (seams).
5. ``clipping`` — lights that clip at zero after dark subtraction; flats saturated or too dark.
6. ``cfa`` / ``mixed-geometry`` — lights and flats disagreeing on CFA; mixed binning, sizes or
   CFA inside one integration group.
7. ``too-few-frames`` — LN or rejection with fewer than 3 frames, or a forced rejection the
   frame count does not support.
8. ``duplicates`` / ``redundant-master`` / ``type-conflict`` — byte-identical files; an
   existing master used while raw frames of the same settings lie unused beside it; frames
   whose header type contradicts their folder or their pixels.

Besides these, ``unreadable`` reports paths and files the scan could not read (info for files
that are not images at all), ``no-lights`` a scan without lights, and ``metadata`` (info) other
header-versus-path disagreements the scan resolved.

Severities: ``error`` — processing would give a wrong or no result; ``warning`` — a result,
but a worse one than the data allow; ``info`` — handled automatically, shown for the record.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "Finding",
    "DoctorReport",
    "Severity",
    "check_links",
    "check_flat_cfa",
    "check_reference",
    "check_mosaic_reference",
    "check_clipping",
    "check_groups",
    "check_duplicates",
    "check_redundant_masters",
    "check_type_conflicts",
    "pixel_type_conflict",
    "rejection_for_count",
    "diagnose",
]

Severity = Literal["error", "warning", "info"]
_ORDER = {"error": 0, "warning": 1, "info": 2}
_DN = 65535.0


@dataclass
class Finding:
    """One problem: which check, how bad, the cause and fix, and the files concerned."""

    check: str
    severity: Severity
    message: str
    paths: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON form (``doctor --json``)."""
        return {"check": self.check, "severity": self.severity, "message": self.message,
                "paths": list(self.paths)}


@dataclass
class DoctorReport:
    """All findings, most severe first."""

    findings: list[Finding]

    @property
    def exit_code(self) -> int:
        """0 clean (info only), 1 warnings, 2 errors."""
        sev = {f.severity for f in self.findings}
        return 2 if "error" in sev else 1 if "warning" in sev else 0

    def by_severity(self, severity: Severity) -> list[Finding]:
        """Findings of one severity."""
        return [f for f in self.findings if f.severity == severity]

    def by_check(self, check: str) -> list[Finding]:
        """Findings of one check."""
        return [f for f in self.findings if f.check == check]

    def to_json(self) -> dict[str, Any]:
        """``{"version": 1, "exit_code": .., "counts": {...}, "findings": [...]}``."""
        sevs: tuple[Severity, ...] = ("error", "warning", "info")
        counts = {s: len(self.by_severity(s)) for s in sevs}
        return {"version": 1, "exit_code": self.exit_code, "counts": counts,
                "findings": [f.to_json() for f in self.findings]}


def _frame_get(frame: Any, key: str) -> Any:
    return frame.get(key) if isinstance(frame, dict) else getattr(frame, key, None)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# --- 1, 6: from the link plan -------------------------------------------------------------------

def check_links(plan_json: dict[str, Any]) -> list[Finding]:
    """Every problem the link plan recorded, grouped so that one cause is one finding.

    The linker words each problem as cause + fix; the lights sharing it are the files concerned.
    Problems about CFA (colour lights with mono flats or the reverse) are reported as ``cfa``.
    """
    grouped: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    # A library with no frames of a calibration type at all (a Seestar session has no darks or
    # flats) is processed without that calibration, as WBPP does: a warning, not a stop.
    present = {f.get("type") for f in plan_json.get("frames", [])}
    for light in plan_json.get("lights", []):
        for prob in light.get("problems", []):
            link = prob.get("link", "?")
            check = "cfa" if "CFA" in prob.get("message", "") else "links"
            sev = prob.get("severity", "warning")
            if sev == "error" and link in ("dark", "flat") and light.get(link) is None \
                    and link not in present:
                sev = "warning"
                prob = {**prob, "message": prob["message"] + f" (no {link} frames anywhere in the "
                        f"input: the lights are processed without {link} calibration)"}
            grouped[(check, sev, f"{link}: {prob['message']}")].append(light["path"])
    out = []
    for (check, sev, msg), paths in grouped.items():
        out.append(Finding(check, "error" if sev == "error" else "warning",
                           f"{msg} ({_plural(len(paths), 'light')})", sorted(paths)))
    return out


def check_flat_cfa(plan_json: dict[str, Any]) -> list[Finding]:
    """Colour lights linked to flats of another Bayer pattern (a flipped or cropped flat).

    The linker only checks that both are CFA; the pattern itself must match too, or each CFA
    channel is divided by another channel's response.
    """
    bayer = {f["path"]: f.get("bayer") for f in plan_json.get("frames", [])}
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    flats_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    for light in plan_json.get("lights", []):
        flat = light.get("flat")
        lb = bayer.get(light["path"])
        if not flat or not lb:
            continue
        odd = {fp: bayer.get(fp) for fp in flat.get("files", [])
               if bayer.get(fp) and bayer.get(fp) != lb}
        for fb in set(odd.values()):
            grouped[(lb, fb)].append(light["path"])
            flats_of[(lb, fb)].update(fp for fp, b in odd.items() if b == fb)
    return [Finding("cfa", "error",
                    f"lights are CFA {lb} but their flats are CFA {fb} — the flat would divide "
                    "each colour by another colour's response; use flats written with the same "
                    "orientation and crop as the lights (check ROWORDER/flip settings) "
                    f"({_plural(len(paths), 'light')})",
                    sorted(paths) + sorted(flats_of[(lb, fb)]))
            for (lb, fb), paths in grouped.items()]


# --- 2, 3, 4: the LN reference ------------------------------------------------------------------

def check_reference(path: str | Path, *, frame_type: str | None,
                    data: np.ndarray | None) -> list[Finding]:
    """A user-given LN reference: must be a light, with no zero/non-finite pixels inside.

    Zero pixels in the empty border of a registered frame are fine (LN treats them as missing);
    dead pixels and bad columns *inside* the data area are what makes PixInsight fail with "LN
    vectors contain NaN values".
    """
    from skystack.normalize import LNReferenceError, check_reference_type, validate_reference

    out: list[Finding] = []
    try:
        check_reference_type(frame_type, path=str(path))
    except LNReferenceError as err:
        out.append(Finding("ln-reference-type", "error",
                           f"{err} (darks have no astronomical signal).", [str(path)]))
        return out
    if data is None:
        return out
    planes = data if data.ndim == 3 else data[None]
    for c, plane in enumerate(planes):
        try:
            validate_reference(plane, fill=False, path=str(path))
        except LNReferenceError as err:
            chan = f" (channel {c})" if data.ndim == 3 else ""
            out.append(Finding(
                "ln-reference-pixels", "error",
                f"{err}{chan}. This is PixInsight's 'LN vectors contain NaN values' failure; fix: "
                "add an output pedestal (e.g. 100 DN) to reference and lights, or let skystack "
                "build the reference (it masks and fills such pixels).", [str(path)]))
    return out


_PANEL_IN_NAME = re.compile(r"[\s_-]*(?:panel|tile|mosaic)[\s_-]*\d+\s*$", re.I)


def _panel_of(frame: Any) -> str | None:
    """The mosaic panel: the panel field, else a 'Panel N' suffix of the object name."""
    panel = _frame_get(frame, "panel")
    if panel is not None:
        return str(panel)
    obj = _frame_get(frame, "object") or ""
    m = _PANEL_IN_NAME.search(obj)
    return m.group(0).strip(" _-") if m else None


def check_mosaic_reference(lights: Sequence[Any], *, reference: str | Path | None) -> list[Finding]:
    """One LN reference given for lights of several mosaic panels.

    The reference is used for every integration group, so lights of two panels would be
    normalized to one panel's background: seams. Capture programs often write the panel into
    the object name (``"M31 Panel 2"``), so that counts as a panel too.
    """
    if reference is None:
        return []
    panels: dict[str, list[str]] = defaultdict(list)
    for f in lights:
        p = _panel_of(f)
        if p is not None:
            panels[p].append(str(_frame_get(f, "path")))
    if len(panels) < 2:
        return []
    names = sorted(panels, key=lambda s: (len(s), s))
    counts = ", ".join(f"{p} ({len(panels[p])})" for p in names)
    paths = [str(reference)] + sorted(p for ps in panels.values() for p in ps)
    return [Finding(
        "mosaic-reference", "error",
        f"lights of {len(names)} mosaic panels — {counts} — would share one LN reference "
        f"({Path(str(reference)).name}); the background differs per panel and the result has "
        "seams. Give each panel its own reference: run each panel separately, or leave the "
        "reference out and skystack builds one per panel.", paths)]


# --- 5: clipping --------------------------------------------------------------------------------

def _saturated_fraction(plane: np.ndarray) -> float:
    """Fraction of pixels piled up at the frame's maximum (the sensor's or ADC's full scale).

    Full scale is often below 65535 (full well ÷ gain + offset), so a fixed threshold misses it;
    a real exposure has a handful of pixels at its maximum, a saturated one thousands.
    """
    top = float(np.max(plane))
    if top < 0.25:
        return 0.0
    return float(np.mean(plane >= top - 2.0 / _DN))


def check_clipping(
    lights: dict[str, np.ndarray], darks: dict[str, np.ndarray], flats: dict[str, np.ndarray],
    *, limit: float = 1e-4, pedestal: Literal["auto"] | float | None = "auto",
    flat_darks: dict[str, float] | None = None, stride: int = 2,
) -> list[Finding]:
    """Lights that go ≤ 0 after dark subtraction; flats saturated or too dark.

    Parameters
    ----------
    lights
        Light path → pixels (a sample per light group).
    darks
        The same light path → what calibration subtracts from it (master dark, or bias + scaled
        dark, or bias alone).
    flats
        Flat path → pixels (raw flats; masters are not checked).
    limit
        Fraction of pixels allowed at or below zero (PixInsight's automatic pedestal limit).
    pedestal
        The output pedestal calibration will use: ``"auto"`` (clipping is then only noted),
        a value in DN, or None (no pedestal).
    flat_darks
        Flat path → the level (0..1) its dark-flat or bias will subtract; 0 when unknown.
    stride
        Use every ``stride``-th row and column (1 when the arrays are subsampled already).
    """
    from skystack.calibrate import auto_pedestal

    out = []
    clipped: list[str] = []
    need = 0.0
    worst = 0.0
    for p, light in lights.items():
        dark = darks.get(p)
        if dark is None or np.shape(dark) != light.shape:
            continue
        diff = (light - dark)[..., ::stride, ::stride]
        frac = float(np.mean(diff <= 0))
        if frac > limit:
            clipped.append(p)
            worst = max(worst, frac)
            need = max(need, auto_pedestal(diff, limit=limit))
    if clipped:
        n = len(clipped)
        what = (f"{_plural(n, 'light')} (one sampled per group) would have up to {worst:.2%} of "
                "their pixels at or below zero after dark subtraction (faint sky, short exposures)")
        fixed = pedestal is not None and pedestal != "auto" and float(pedestal) >= need
        if pedestal == "auto" or fixed:
            how = "the automatic output pedestal" if pedestal == "auto" else "the pedestal set"
            out.append(Finding("clipping", "info",
                               f"{what}; {how} (about {need:.0f} DN) keeps them.", sorted(clipped)))
        else:
            have = "no output pedestal is set" if not pedestal else \
                f"the output pedestal of {float(pedestal):.0f} DN is too small"
            out.append(Finding(
                "clipping", "warning",
                f"{what}, and {have} — those pixels are lost (biasing faint signal up) and break "
                f"local normalization; use --pedestal auto, or at least {need:.0f} DN.",
                sorted(clipped)))
    hot, dim, black = [], [], []
    levels = flat_darks or {}
    for p, flat in flats.items():
        f = flat if flat.ndim == 2 else flat.mean(axis=0)
        sample = f[::stride, ::stride]
        med = float(np.median(sample))
        signal = med - float(levels.get(p, 0.0))
        if _saturated_fraction(sample) > 0.001 or med > 0.9:
            hot.append(p)
        elif signal < 0.005:
            black.append(p)
        elif signal < 0.05:
            dim.append(p)
    if hot:
        out.append(Finding("clipping", "error",
                           f"{_plural(len(hot), 'flat')} saturated (over 0.1 % of pixels piled up "
                           "at full scale) — a clipped flat cannot correct vignetting or dust; "
                           "reshoot with a shorter exposure (aim for 30–60 % of full scale).",
                           sorted(hot)))
    if black:
        out.append(Finding("clipping", "error",
                           f"{_plural(len(black), 'flat')} with almost no light (under 0.5 % of "
                           "full scale above their dark) — dividing by them would amplify noise "
                           "wildly; reshoot them (aim for 30–60 % of full scale) or drop them.",
                           sorted(black)))
    if dim:
        out.append(Finding("clipping", "warning",
                           f"{_plural(len(dim), 'flat')} too dark (under 5 % of full scale above "
                           "their dark) — their noise is added to every light; aim for 30–60 % "
                           "of full scale.", sorted(dim)))
    return out


# --- 6, 7: integration groups -------------------------------------------------------------------

#: Frames each forced rejection needs to work as intended (WBPP's ``rejectionIsGood``).
_MIN_FRAMES = {"percentile": 3, "minmax": 3, "sigma": 6, "winsorized": 6, "averaged-sigma": 6,
               "linear-fit": 8, "esd": 8}


def rejection_for_count(n: int) -> str:
    """What a frame count supports: WBPP 3's automatic rule, none below 3 frames."""
    from skystack.integrate.config import choose_rejection

    if n < 3:
        return "no rejection (fewer than 3 frames)"
    names = {"percentile": "percentile clipping", "winsorized": "winsorized sigma clipping",
             "linear-fit": "linear fit clipping"}
    method = choose_rejection(n)
    return names.get(method, method)


def check_groups(lights: Sequence[Any], *, local_normalization: bool = True,
                 rejection: str = "auto") -> list[Finding]:
    """Per integration group (target × filter × panel): mixed geometry, too few frames."""
    groups: dict[tuple[Any, Any, Any], list[Any]] = defaultdict(list)
    for f in lights:
        groups[(_frame_get(f, "object"), _frame_get(f, "filter"), _frame_get(f, "panel"))].append(f)
    out = []
    for (obj, filt, panel), members in sorted(groups.items(), key=lambda kv: str(kv[0])):
        name = "/".join(str(x) for x in (obj, filt, panel) if x is not None) or "(unnamed)"
        paths = sorted(str(_frame_get(f, "path")) for f in members)
        bins = {_bin_text(_frame_get(f, "binning")) for f in members}
        sizes = {(_frame_get(f, "width"), _frame_get(f, "height")) for f in members}
        cfas = {_frame_get(f, "bayer") or "mono" for f in members}
        mixed = []
        if len(bins) > 1:
            mixed.append(f"binnings {', '.join(sorted(bins))}")
        if len(sizes) > 1:
            mixed.append(f"sizes {', '.join(f'{w}×{h}' for w, h in sorted(sizes, key=str))}")
        if len(cfas) > 1:
            mixed.append(f"CFA {', '.join(sorted(cfas))}")
        if mixed:
            sev: Severity = "error" if len(cfas) > 1 else "warning"
            out.append(Finding("mixed-geometry", sev,
                               f"{name}: mixed {' and '.join(mixed)} in one integration group — "
                               "frames would be resampled onto the reference's grid, losing "
                               "resolution; integrate each binning/size (and colour/mono) "
                               "separately, e.g. by moving the odd frames to their own folder.",
                               paths))
        n = len(members)
        rej = rejection.lower()
        if n < 3 and (local_normalization or rej != "none"):
            asks = " and ".join(x for x in ("local normalization" if local_normalization else "",
                                             f"{rej} rejection" if rej != "none" else "")
                                if x)
            out.append(Finding("too-few-frames", "warning",
                               f"{name}: {_plural(n, 'frame')} — {asks} need at least 3; this "
                               f"count supports {rejection_for_count(n)}, and LN is skipped "
                               "(global normalization only). Add frames, or merge this group "
                               "with another.", paths))
        elif rej in _MIN_FRAMES and n < _MIN_FRAMES[rej]:
            out.append(Finding("too-few-frames", "warning",
                               f"{name}: {_plural(n, 'frame')} are too few for {rej} rejection "
                               f"(it needs at least {_MIN_FRAMES[rej]}); this count supports "
                               f"{rejection_for_count(n)} — use --rejection auto.", paths))
    return out


def _bin_text(b: Any) -> str:
    if isinstance(b, (tuple, list)) and len(b) == 2:
        return f"{b[0]}x{b[1]}"
    return str(b)


# --- 8: files -----------------------------------------------------------------------------------

def _digest(path: Path, *, quick: bool = False) -> str:
    """SHA-1 of the file; ``quick``: of its first and last 64 KiB only (a cheap pre-filter:
    frames of one camera have equal sizes, but their headers differ in the first block)."""
    h = hashlib.sha1()  # noqa: S324 - identity, not security
    with open(path, "rb") as fh:
        if quick:
            h.update(fh.read(1 << 16))
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(size - (1 << 16), 0))
            h.update(fh.read(1 << 16))
            return h.hexdigest()
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_duplicates(paths: Iterable[str | Path]) -> list[Finding]:
    """Byte-identical files (same size, then same first/last 64 KiB, then a full hash)."""
    by_size: dict[int, list[Path]] = defaultdict(list)
    for p in paths:
        pp = Path(p)
        try:
            by_size[pp.stat().st_size].append(pp)
        except OSError:
            continue
    out = []
    for size, group in by_size.items():
        if len(group) < 2 or size == 0:
            continue
        by_quick: dict[str, list[Path]] = defaultdict(list)
        for p in group:
            by_quick[_digest(p, quick=True)].append(p)
        for cand in by_quick.values():
            if len(cand) < 2:
                continue
            by_hash: dict[str, list[Path]] = defaultdict(list)
            for p in cand:
                by_hash[_digest(p)].append(p)
            for same in by_hash.values():
                if len(same) > 1:
                    names = sorted(str(p) for p in same)
                    out.append(Finding(
                        "duplicates", "warning",
                        f"{len(same)} identical files ({Path(names[0]).name} …) — a duplicate "
                        "counts twice in the stack and defeats rejection; keep one copy.", names))
    return out


_MATCH_KEYS = ("camera", "binning", "width", "height", "gain", "offset", "readout_mode")


def check_redundant_masters(plan_json: dict[str, Any], *, temperature_tolerance: float = 2.0,
                            exposure_tolerance: float = 0.5) -> list[Finding]:
    """An existing master in use while raw frames of the same settings are left unused.

    Two versions of the same calibration: the linker prefers the master (it is complete), so
    the raw frames are silently ignored — often the raw frames are the fresher ones.
    """
    groups = plan_json.get("groups", [])
    used: set[str] = set()
    users: dict[str, int] = defaultdict(int)
    for light in plan_json.get("lights", []):
        links = [light.get("bias"), light.get("dark"), light.get("flat")]
        flat = light.get("flat") or {}
        links += [flat.get("dark_flat"), flat.get("bias")]
        for lk in links:
            if lk and lk.get("group"):
                used.add(lk["group"])
                users[lk["group"]] += 1
    out = []
    for m in groups:
        if not m.get("master") or m["id"] not in used:
            continue
        mk = m.get("key", {})
        twins = []
        for g in groups:
            if g.get("master") or g["kind"] != m["kind"] or g["id"] in used:
                continue
            if _same_settings(mk, g.get("key", {}), m["kind"], temperature_tolerance,
                              exposure_tolerance):
                twins.append(g)
        if not twins:
            continue
        raw = sorted(p for g in twins for p in g["files"])
        kind = m["kind"].replace("_", "-")
        sessions = sorted({str(g["key"].get("session")) for g in twins if g["key"].get("session")})
        when = f" from {', '.join(sessions)}" if sessions else ""
        msession = mk.get("session")
        out.append(Finding(
            "redundant-master", "warning",
            f"the existing master {kind} {Path(m['files'][0]).name}"
            f"{f' ({msession})' if msession else ''} is used for "
            f"{_plural(users[m['id']], 'light')}, while {_plural(len(raw), f'raw {kind}')}"
            f"{when} with the same settings are left unused — two versions of one calibration; "
            "keep the one you trust (move the other out of the folder), or link it with an "
            "override.", [m["files"][0], *raw]))
    return out


def _same_settings(a: dict[str, Any], b: dict[str, Any], kind: str, ttol: float,
                   etol: float) -> bool:
    for k in _MATCH_KEYS:
        if a.get(k) is not None and b.get(k) is not None and a[k] != b[k]:
            return False
    if kind in ("dark", "dark_flat"):
        ea, eb = a.get("exposure"), b.get("exposure")
        if ea is not None and eb is not None and abs(ea - eb) > etol:
            return False
    if kind == "flat" and a.get("filter") != b.get("filter"):
        return False
    ta, tb = a.get("temperature"), b.get("temperature")
    return not (kind != "flat" and ta is not None and tb is not None and abs(ta - tb) > ttol)


def check_type_conflicts(frames: Sequence[Any]) -> list[Finding]:
    """Frames whose header type contradicts their folder name (from the scan's warnings).

    Other header-versus-path disagreements the scan resolved are listed as ``metadata`` info.
    """
    out = []
    unknown: list[str] = []
    for f in frames:
        path = str(_frame_get(f, "path"))
        for w in _frame_get(f, "warnings") or []:
            text = str(w)
            if text.startswith("type: neither"):
                unknown.append(path)
            elif text.startswith("type:"):
                out.append(Finding("type-conflict", "warning",
                                   f"{Path(path).name}: {text[5:].strip()}", [path]))
            else:
                out.append(Finding("metadata", "info", f"{Path(path).name}: {text}", [path]))
    if unknown:
        # one finding, not one per file: a folder of untyped frames is one cause
        out.append(Finding("type-conflict", "warning",
                           f"{_plural(len(unknown), 'frame')} of unknown type: neither the header "
                           "(IMAGETYP) nor the path says what kind of frame each is, so they are "
                           "not used; put them in Lights/, Darks/, Flats/ or Bias/ folders or add "
                           "an override.", sorted(unknown)))
    return out


def pixel_type_conflict(path: str, frame_type: str | None, data: np.ndarray) -> Finding | None:
    """A frame whose pixels clearly say another type than its header (flat vs dark/bias/light)."""
    sample = data[..., ::4, ::4]
    med = float(np.median(sample))
    looks_flat = med > 0.15 and float(np.percentile(sample, 99.9)) < 1.5 * med + 0.05
    looks_dark = med < 0.03 and float(np.std(sample)) < 0.01
    if frame_type in ("dark", "bias", "dark_flat") and med > 0.15:
        return Finding("type-conflict", "warning",
                       f"{Path(path).name}: labelled {frame_type.replace('_', '-')} but its median "
                       f"is {med:.0%} of full scale — it looks like a flat or a light; fix its "
                       "IMAGETYP or move it out of the calibration frames.", [path])
    if frame_type == "flat" and looks_dark:
        return Finding("type-conflict", "warning",
                       f"{Path(path).name}: labelled flat but its pixels look like a dark or bias "
                       f"(median {med:.1%} of full scale, no illumination); check the file.",
                       [path])
    if frame_type == "light" and looks_flat and med > 0.3:
        return Finding("type-conflict", "warning",
                       f"{Path(path).name}: labelled light but it is evenly bright at {med:.0%} of "
                       "full scale with no stars — it looks like a flat; fix its IMAGETYP or "
                       "move it.", [path])
    return None


# --- all together -------------------------------------------------------------------------------

def diagnose(
    paths: Sequence[str | Path],
    *,
    reference: str | Path | None = None,
    link_config: Any = None,
    local_normalization: bool = True,
    rejection: str = "auto",
    pedestal: Literal["auto"] | float | None = "auto",
    use_cache: bool = True,
    pixel_checks: bool = True,
    max_pixel_frames: int = 3,
    inventory: Any = None,
    plan: Any = None,
) -> DoctorReport:
    """Scan, link and run every check; findings most severe first.

    Parameters
    ----------
    paths
        Folders or files, as for ``skystack scan``.
    reference
        The LN reference the user intends to give (None: skystack builds one per group).
    link_config
        A :class:`~skystack.linking.LinkConfig` (tolerances, overrides).
    local_normalization, rejection, pedestal
        The processing the user intends (as in :class:`~skystack.pipeline.config.RunConfig`).
    use_cache
        Use the scan's header cache.
    pixel_checks
        Read a few frames' pixels (clipping, saturated flats, types contradicting pixels).
    max_pixel_frames
        Frames read per calibration group or light group for the pixel checks.
    inventory, plan
        The scan and link plan when the caller (``skystack run``) has them already.

    Returns
    -------
    DoctorReport
        Paths are relative to the scanned folder when one folder was given.
    """
    from skystack.io import read_header, read_image
    from skystack.library import scan
    from skystack.linking import LinkConfig, link
    from skystack.metadata import frame_info

    inv = inventory if inventory is not None else scan(list(paths), use_cache=use_cache)
    if plan is None:
        plan = link(inv.frames, config=link_config, root=inv.root, rejected=inv.rejected)
    cfg = getattr(plan, "config", None) or link_config or LinkConfig()
    pj = plan.to_json()
    root = Path(pj["root"]) if pj.get("root") else None

    def abspath(p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() or root is None else root / q

    findings: list[Finding] = []
    findings += check_links(pj)
    findings += check_flat_cfa(pj)
    findings += _unreadable(pj.get("rejected", []))
    lights = [f for f in inv.frames if f.type == "light" and not f.master]
    if not lights:
        findings.append(Finding(
            "no-lights", "warning" if inv.frames else "error",
            (f"no light frames among the {_plural(len(inv.frames), 'frame')} found"
             if inv.frames else "no frames found") + " — nothing to process; give the folder "
            "holding the lights (a Lights/ folder, or IMAGETYP LIGHT in the headers).",
            [str(p) for p in paths]))
    findings += check_groups(lights, local_normalization=local_normalization, rejection=rejection)
    findings += check_duplicates(f.path for f in inv.frames)
    findings += check_redundant_masters(
        pj, temperature_tolerance=getattr(cfg, "temperature_tolerance", 2.0),
        exposure_tolerance=getattr(cfg, "dark_flat_exposure_tolerance", 0.5))
    findings += check_type_conflicts(inv.frames)
    if local_normalization:
        findings += check_mosaic_reference(lights, reference=reference)
    if reference is not None:
        try:
            ref_type = frame_info(read_header(reference)).type
            ref_data = read_image(reference).data
        except Exception as err:  # noqa: BLE001 - report, never crash the doctor
            findings.append(Finding("ln-reference-pixels", "error",
                                    f"{reference}: cannot be read ({err}); give a readable "
                                    "FITS/XISF reference, or leave it out.", [str(reference)]))
        else:
            findings += check_reference(reference, frame_type=ref_type, data=ref_data)
    if pixel_checks:
        # "full scale" is only known for ≤16-bit integers and normalized floats; a 32-bit
        # integer frame's levels say nothing about saturation or illumination
        wide = {_relativizer(root)(f.path) for f in inv.frames
                if f.sample_format in ("uint32", "int32", "uint64", "int64")}
        findings += _pixel_checks(pj, abspath, max_frames=max_pixel_frames, pedestal=pedestal,
                                  skip_levels=wide)
    rel = _relativizer(root)
    for f in findings:
        f.paths = [rel(p) for p in f.paths]
    findings.sort(key=lambda f: (_ORDER[f.severity], f.check, f.message))
    return DoctorReport(findings)


def _unreadable(rejected: Iterable[dict[str, str]]) -> list[Finding]:
    """Files the scan rejected: a missing path is an error, a broken image a warning (the
    frame is left out), a file that is no image at all (notes, scripts) only a note."""
    out = []
    for r in rejected:
        reason = r["reason"]
        if reason.startswith("no such file"):
            out.append(Finding("unreadable", "error",
                               f"{r['path']}: {reason} — check the path.", [r["path"]]))
        elif reason.startswith("not an image"):
            out.append(Finding("unreadable", "info", f"{r['path']}: {reason} — ignored.",
                               [r["path"]]))
        else:
            out.append(Finding("unreadable", "warning",
                               f"{r['path']}: {reason} (the frame is left out).",
                               [r["path"]]))
    return out


def _relativizer(root: Path | None) -> Callable[[str], str]:
    def rel(p: str) -> str:
        if root is None or not Path(p).is_absolute():
            return p
        try:
            return Path(p).relative_to(root).as_posix()
        except ValueError:
            return p
    return rel


def _spread(items: Sequence[str], k: int) -> list[str]:
    """Up to ``k`` items spread over the sequence (first, …, last)."""
    if len(items) <= k:
        return list(items)
    idx = np.unique(np.linspace(0, len(items) - 1, k).round().astype(int))
    return [items[i] for i in idx]


def _pixel_checks(pj: dict[str, Any], abspath: Callable[[str], Path], *, max_frames: int,
                  pedestal: Literal["auto"] | float | None,
                  skip_levels: set[str] = frozenset()) -> list[Finding]:  # type: ignore[assignment]
    """Clipping, flat levels and types contradicting pixels, from a few frames per group.

    Only every other row and column is kept (a quarter of the memory: real frames are 100 MB
    each as float32), and no full frame outlives the statistic taken from it.
    """
    from skystack.io import read_image

    def pixels(p: str) -> np.ndarray | None:
        try:
            return read_image(abspath(p)).data
        except Exception:  # noqa: BLE001 - unreadable files are reported by the scan
            return None

    def half(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a[..., ::2, ::2])

    levels: dict[tuple[str, ...], np.ndarray | None] = {}

    def level(files: list[str]) -> np.ndarray | None:
        """Median of a few frames of a calibration group (a master is one file), subsampled;
        the median keeps a cosmic ray in one dark from passing for a clipped light pixel."""
        key = tuple(files)
        if key not in levels:
            read = (pixels(f) for f in _spread(files, max(max_frames, 1)))
            halves = [half(a) for a in read if a is not None]
            if not halves or any(a.shape != halves[0].shape for a in halves):
                levels[key] = None
            else:
                levels[key] = halves[0] if len(halves) == 1 else \
                    np.median(np.stack(halves), axis=0).astype(np.float32)
        return levels[key]

    frames = {f["path"]: f for f in pj.get("frames", [])}
    # clipping: one light per light group against what calibration will subtract from it
    lights_px: dict[str, np.ndarray] = {}
    subtract: dict[str, np.ndarray] = {}
    seen_groups: set[Any] = set()
    for light in pj.get("lights", []):
        gid = light.get("group") or light["path"]
        if gid in seen_groups:
            continue
        seen_groups.add(gid)
        d, b = light.get("dark"), light.get("bias")
        ref = None
        if d and d.get("files"):
            dark = level(d["files"])
            scale = float(d.get("scale", 1.0) or 1.0)
            if dark is not None and scale == 1.0:
                ref = dark
            elif dark is not None and b and b.get("files"):
                bias = level(b["files"])
                if bias is not None and bias.shape == dark.shape:
                    ref = bias + scale * (dark - bias)
        elif b and b.get("files"):
            ref = level(b["files"])
        lp = pixels(light["path"]) if ref is not None else None
        if lp is not None and ref is not None:
            lights_px[light["path"]] = half(lp)
            subtract[light["path"]] = ref
    # flats actually used, a few per flat group, with the level of their own dark-flat/bias
    flats_px: dict[str, np.ndarray] = {}
    flat_levels: dict[str, float] = {}
    seen_flats: set[str] = set()
    for light in pj.get("lights", []):
        flat = light.get("flat")
        if not flat or flat.get("master") or flat.get("group") in seen_flats:
            continue
        seen_flats.add(flat.get("group"))
        cal = flat.get("dark_flat") or flat.get("bias")
        lev = level(cal["files"]) if cal and cal.get("files") else None
        for fp in _spread(flat.get("files", []), max_frames):
            px = None if fp in skip_levels else pixels(fp)
            if px is not None:
                flats_px[fp] = half(px)
                flat_levels[fp] = float(np.median(lev[..., ::2, ::2])) if lev is not None else 0.0
    out = check_clipping(lights_px, subtract, flats_px, pedestal=pedestal,
                         flat_darks=flat_levels, stride=1)
    # pixels contradicting the header type: a few per calibration group and per light group
    sample: list[str] = []
    for g in pj.get("groups", []):
        if not g.get("master"):
            sample += _spread(g.get("files", []), max_frames)
    by_group: dict[Any, list[str]] = defaultdict(list)
    for light in pj.get("lights", []):
        by_group[light.get("group") or light["path"]].append(light["path"])
    for members in by_group.values():
        sample += _spread(members, max_frames)
    for p in dict.fromkeys(sample):
        info = frames.get(p)
        if info is None or info.get("master") or p in skip_levels:
            continue
        px = pixels(p)
        hit = None if px is None else pixel_type_conflict(p, info.get("type"), px)
        if hit:
            out.append(hit)
    return out
