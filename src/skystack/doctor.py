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
6. ``cfa`` / ``mixed-geometry`` — lights and flats disagreeing on CFA; mixed binning or sizes in
   one integration group.
7. ``too-few-frames`` — LN or rejection with fewer than 3 frames.
8. ``duplicates`` / ``type-conflict`` — duplicate files; frames whose header type contradicts
   their folder or their pixels.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "Finding",
    "DoctorReport",
    "Severity",
    "check_links",
    "check_reference",
    "check_mosaic_reference",
    "check_clipping",
    "check_groups",
    "check_duplicates",
    "check_type_conflicts",
    "rejection_for_count",
    "diagnose",
]

Severity = Literal["error", "warning", "info"]
_ORDER = {"error": 0, "warning": 1, "info": 2}


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
        """0 clean, 1 warnings, 2 errors."""
        sev = {f.severity for f in self.findings}
        return 2 if "error" in sev else 1 if "warning" in sev else 0

    def by_severity(self, severity: Severity) -> list[Finding]:
        """Findings of one severity."""
        return [f for f in self.findings if f.severity == severity]

    def to_json(self) -> dict[str, Any]:
        """``{"version": 1, "exit_code": .., "findings": [...]}``."""
        return {"version": 1, "exit_code": self.exit_code,
                "findings": [f.to_json() for f in self.findings]}


def _frame_get(frame: Any, key: str) -> Any:
    return frame.get(key) if isinstance(frame, dict) else getattr(frame, key, None)


# --- 1, 6: from the link plan -------------------------------------------------------------------

def check_links(plan_json: dict[str, Any]) -> list[Finding]:
    """Every problem the link plan recorded, grouped so one cause is one finding."""
    grouped: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for light in plan_json.get("lights", []):
        for prob in light.get("problems", []):
            link = prob.get("link", "?")
            check = "cfa" if "CFA" in prob.get("message", "") else "links"
            grouped[(check, prob.get("severity", "warning"), f"{link}: {prob['message']}")].append(
                light["path"])
    out = []
    for (check, sev, msg), paths in grouped.items():
        n = len(paths)
        out.append(Finding(check, "error" if sev == "error" else "warning",
                           f"{msg} ({n} light{'s' if n != 1 else ''})", sorted(paths)))
    return out


# --- 2, 3, 4: the LN reference ------------------------------------------------------------------

def check_reference(path: str | Path, *, frame_type: str | None, data: np.ndarray | None) -> list[Finding]:
    """A user-given LN reference: must be a light, with no zero/non-finite pixels inside."""
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


def check_mosaic_reference(lights: Sequence[Any], *, reference: str | Path | None) -> list[Finding]:
    """One LN reference given for lights of several mosaic panels of the same target."""
    if reference is None:
        return []
    panels: dict[tuple[Any, Any], set[Any]] = defaultdict(set)
    for f in lights:
        panels[(_frame_get(f, "object"), _frame_get(f, "filter"))].add(_frame_get(f, "panel"))
    out = []
    for (obj, filt), ps in panels.items():
        real = {p for p in ps if p is not None}
        if len(real) > 1:
            out.append(Finding(
                "mosaic-reference", "error",
                f"{obj} {filt}: panels {', '.join(sorted(map(str, real)))} would share one LN "
                f"reference ({Path(str(reference)).name}) — the background differs per panel and "
                "the result has seams; give each panel its own reference (skystack run does this "
                "by default).", [str(reference)]))
    return out


# --- 5: clipping --------------------------------------------------------------------------------

def check_clipping(
    lights: dict[str, np.ndarray], darks: dict[str, np.ndarray], flats: dict[str, np.ndarray],
    *, limit: float = 1e-4,
) -> list[Finding]:
    """Lights that go ≤ 0 after dark subtraction; flats saturated or too dark to divide by.

    ``lights`` maps a light path to its pixels and ``darks`` the same path to the (master or
    median) dark it will be calibrated with; ``flats`` maps flat paths to their pixels.
    """
    from skystack.calibrate import auto_pedestal

    out = []
    clipped = []
    need = 0.0
    for p, light in lights.items():
        dark = darks.get(p)
        if dark is None or dark.shape != light.shape:
            continue
        diff = (light - dark)[::2, ::2]
        frac = float(np.mean(diff <= 0))
        if frac > limit:
            clipped.append(p)
            need = max(need, auto_pedestal(diff, limit=limit))
    if clipped:
        out.append(Finding(
            "clipping", "warning",
            f"{len(clipped)} light(s) have more than {limit:.2%} of pixels at or below zero after "
            f"dark subtraction (faint sky, short exposures) — those pixels would be lost and break "
            f"local normalization; keep the automatic output pedestal on (it would add about "
            f"{need:.0f} DN) or set --pedestal ≥ {need:.0f}.", sorted(clipped)))
    hot, dim = [], []
    for p, flat in flats.items():
        f = flat if flat.ndim == 2 else flat.mean(axis=0)
        sat = float(np.mean(f >= 0.98))
        med = float(np.median(f))
        if sat > 0.001 or med > 0.9:
            hot.append(p)
        elif med < 0.03:
            dim.append(p)
    if hot:
        out.append(Finding("clipping", "error",
                           f"{len(hot)} flat(s) are saturated (median or >0.1 % of pixels at full "
                           "scale) — they cannot correct vignetting; reshoot with shorter exposure "
                           "(aim for 30–60 % of full scale).", sorted(hot)))
    if dim:
        out.append(Finding("clipping", "warning",
                           f"{len(dim)} flat(s) are too dark (median below 3 % of full scale) — "
                           "their noise will be added to every light; aim for 30–60 % of full "
                           "scale.", sorted(dim)))
    return out


# --- 6, 7: integration groups -------------------------------------------------------------------

def rejection_for_count(n: int) -> str:
    """What each frame count supports (WBPP's auto rule)."""
    if n < 3:
        return "no rejection (fewer than 3 frames)"
    if n < 6:
        return "percentile clipping"
    if n <= 15:
        return "winsorized sigma clipping"
    return "linear fit clipping"


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
        bins = {str(_frame_get(f, "binning")) for f in members}
        sizes = {(_frame_get(f, "width"), _frame_get(f, "height")) for f in members}
        if len(bins) > 1 or len(sizes) > 1:
            what = (f"binnings {', '.join(sorted(bins))}" if len(bins) > 1 else
                    f"sizes {', '.join(f'{w}×{h}' for w, h in sorted(sizes, key=str))}")
            out.append(Finding("mixed-geometry", "warning",
                               f"{name}: mixed {what} in one integration group — frames are "
                               "resampled onto the reference's grid; for best results integrate "
                               "each binning separately.", paths))
        n = len(members)
        if n < 3 and (local_normalization or rejection != "none"):
            asks = " and ".join(x for x in ("local normalization" if local_normalization else "",
                                             f"{rejection} rejection" if rejection != "none" else "")
                                if x)
            out.append(Finding("too-few-frames", "warning",
                               f"{name}: {n} frame(s) — {asks} need at least 3; this count "
                               f"supports {rejection_for_count(n)}, and LN is skipped "
                               "(global normalization only).", paths))
    return out


# --- 8: files -----------------------------------------------------------------------------------

def _digest(path: Path) -> str:
    h = hashlib.sha1()  # noqa: S324 - identity, not security
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_duplicates(paths: Iterable[str | Path]) -> list[Finding]:
    """Byte-identical files (same size first, then a full hash)."""
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
        by_hash: dict[str, list[Path]] = defaultdict(list)
        for p in group:
            by_hash[_digest(p)].append(p)
        for same in by_hash.values():
            if len(same) > 1:
                names = sorted(str(p) for p in same)
                out.append(Finding("duplicates", "warning",
                                   f"{len(same)} identical files ({Path(names[0]).name} …) — a "
                                   "duplicate counts twice in the stack and in rejection; keep "
                                   "one copy.", names))
    return out


def check_type_conflicts(frames: Sequence[Any]) -> list[Finding]:
    """Frames whose header type contradicts their folder name or their pixels (scan warnings)."""
    out = []
    for f in frames:
        for w in _frame_get(f, "warnings") or []:
            out.append(Finding("type-conflict", "warning", str(w), [str(_frame_get(f, "path"))]))
    return out


def pixel_type_conflict(path: str, frame_type: str | None, data: np.ndarray) -> Finding | None:
    """A frame whose pixels clearly say another type than its header (flat vs dark/bias/light)."""
    sample = data[..., ::4, ::4]
    med = float(np.median(sample))
    looks_flat = med > 0.15 and float(np.percentile(sample, 99.9)) < 1.5 * med + 0.05
    looks_dark = med < 0.03 and float(np.std(sample)) < 0.01
    if frame_type in ("dark", "bias", "dark_flat") and med > 0.15:
        return Finding("type-conflict", "warning",
                       f"{Path(path).name}: labelled {frame_type} but its median is {med:.0%} of "
                       "full scale — it looks like a flat or a light; fix its IMAGETYP or move it.",
                       [path])
    if frame_type == "flat" and looks_dark:
        return Finding("type-conflict", "warning",
                       f"{Path(path).name}: labelled flat but its pixels look like a dark or bias "
                       f"(median {med:.1%} of full scale, no illumination); check the file.", [path])
    if frame_type == "light" and looks_flat and med > 0.3:
        return Finding("type-conflict", "warning",
                       f"{Path(path).name}: labelled light but it is evenly bright at {med:.0%} of "
                       "full scale with no stars — it looks like a flat.", [path])
    return None


# --- all together -------------------------------------------------------------------------------

def diagnose(
    paths: Sequence[str | Path],
    *,
    reference: str | Path | None = None,
    link_config: Any = None,
    local_normalization: bool = True,
    rejection: str = "auto",
    use_cache: bool = True,
    pixel_checks: bool = True,
    max_pixel_frames: int = 3,
    inventory: Any = None,
    plan: Any = None,
) -> DoctorReport:
    """Scan, link and run every check; findings most severe first.

    ``inventory`` and ``plan`` may be given when the caller (``skystack run``) has them already.
    """
    from skystack.io import read_header, read_image
    from skystack.library import scan
    from skystack.linking import link
    from skystack.metadata import frame_info

    inv = inventory if inventory is not None else scan(list(paths), use_cache=use_cache)
    if plan is None:
        plan = link(inv.frames, config=link_config, root=inv.root, rejected=inv.rejected)
    pj = plan.to_json()
    root = Path(pj["root"]) if pj.get("root") else None

    def abspath(p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() or root is None else root / q

    findings: list[Finding] = []
    findings += check_links(pj)
    for r in pj.get("rejected", []):
        findings.append(Finding("unreadable", "warning", f"{r['path']}: {r['reason']}", [r["path"]]))
    lights = [f for f in inv.frames if f.type == "light" and not f.master]
    findings += check_groups(lights, local_normalization=local_normalization, rejection=rejection)
    findings += check_duplicates(f.path for f in inv.frames)
    findings += check_type_conflicts(inv.frames)
    findings += check_mosaic_reference(lights, reference=reference)
    if reference is not None:
        try:
            ref_type = frame_info(read_header(reference)).type
            ref_data = read_image(reference).data
        except Exception as err:  # noqa: BLE001 - report, never crash the doctor
            findings.append(Finding("ln-reference-pixels", "error",
                                    f"{reference}: cannot be read ({err})", [str(reference)]))
        else:
            findings += check_reference(reference, frame_type=ref_type, data=ref_data)
    if pixel_checks:
        findings += _pixel_checks(inv.frames, pj, abspath, max_frames=max_pixel_frames)
    findings.sort(key=lambda f: (_ORDER[f.severity], f.check, f.message))
    return DoctorReport(findings)


def _pixel_checks(frames: Sequence[Any], pj: dict[str, Any], abspath: Any, *, max_frames: int) -> list[Finding]:
    from skystack.io import read_image

    out: list[Finding] = []
    cache: dict[str, np.ndarray] = {}

    def pixels(p: str) -> np.ndarray | None:
        if p not in cache:
            try:
                cache[p] = read_image(abspath(p)).data
            except Exception:  # noqa: BLE001 - unreadable files are reported by the scan
                return None
        return cache[p]

    # one light per dark group: is the dark-subtracted light clipped at zero?
    lights_px: dict[str, np.ndarray] = {}
    darks_px: dict[str, np.ndarray] = {}
    seen: set[tuple[str, ...]] = set()
    for light in pj.get("lights", []):
        d = light.get("dark")
        if not d or not d.get("files"):
            continue
        key = tuple(d["files"])
        if key in seen:
            continue
        seen.add(key)
        lp = pixels(light["path"])
        dk = [pixels(f) for f in d["files"][:3]]
        dk = [x for x in dk if x is not None]
        if lp is None or not dk or lp.ndim != 2:
            continue
        if float(d.get("scale", 1.0) or 1.0) != 1.0:
            continue  # scaled darks need the bias too; calibration reports those itself
        lights_px[light["path"]] = lp
        darks_px[light["path"]] = np.median(np.stack(dk), axis=0)
    flats_px: dict[str, np.ndarray] = {}
    by_group: dict[tuple[Any, Any], int] = defaultdict(int)
    for f in frames:
        if f.type == "flat" and not f.master:
            key = (f.filter, f.session)
            if by_group[key] < max_frames:
                px = pixels(_rel(f.path, pj))
                if px is not None:
                    flats_px[_rel(f.path, pj)] = px
                    by_group[key] += 1
    out += check_clipping(lights_px, darks_px, flats_px)
    # pixels contradicting the header type (sampled: a few per type)
    per_type: dict[str | None, int] = defaultdict(int)
    for f in frames:
        if f.master or per_type[f.type] >= max_frames:
            continue
        px = pixels(_rel(f.path, pj))
        if px is None:
            continue
        per_type[f.type] += 1
        hit = pixel_type_conflict(_rel(f.path, pj), f.type, px)
        if hit:
            out.append(hit)
    return out


def _rel(path: str, pj: dict[str, Any]) -> str:
    root = pj.get("root")
    if root:
        try:
            return str(Path(path).relative_to(root))
        except ValueError:
            return path
    return path
