"""``skystack run``: scan → link → masters → calibrate/debayer → measure & select → register →
normalize → integrate → report, resumable and deterministic.

Output folder (``design.md``)::

    OUT/masters/            master bias/dark/dark-flat/flat
    OUT/lights/<group>.fits integrated masters with REJ_LOW / REJ_HIGH / COVERAGE extensions
    OUT/report.html         the report (link diagram, tables, plots, previews, doctor warnings)
    OUT/run.json            every product with its inputs, hashes, parameters and every decision
    OUT/work/               intermediate products, named by the hash of their inputs
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from skystack import __version__
from skystack.errors import SkystackError
from skystack.pipeline.cache import atomic_write_text, file_digest, json_default, step_key
from skystack.pipeline.config import RunConfig
from skystack.pipeline.executors import make_executor
from skystack.pipeline.tasks import build_master_task, calibrate_task, ln_task, register_task
from skystack.stars import luminance

__all__ = ["run_pipeline", "RunError", "RunResult", "Progress"]


class RunError(SkystackError, RuntimeError):
    """The run cannot go on (output folder exists, doctor errors, nothing to do)."""


Progress = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


@dataclass
class RunResult:
    """What a run produced (also written as ``OUT/run.json``)."""

    output: Path
    products: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    doctor: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None


def _slug(*parts: Any) -> str:
    s = "_".join(str(p) for p in parts if p not in (None, ""))
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", s).strip("-") or "group"


def _prepare_output(out: Path, *, resume: bool, force: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if force:
            shutil.rmtree(out)
        elif not resume:
            msg = (f"{out} exists already — pass --resume to finish or reuse that run, or --force "
                   "to start again from nothing")
            raise RunError(msg)
    out.mkdir(parents=True, exist_ok=True)


def _frame_dict(f: Any) -> dict[str, Any]:
    """FrameInfo fields as plain values (to rebuild it in a worker)."""
    import dataclasses

    return {k.name: getattr(f, k.name) for k in dataclasses.fields(f)}


def _cfa_of(f: Any) -> str | None:
    from skystack.cfa import effective_pattern

    if not getattr(f, "bayer", None):
        return None
    return effective_pattern(f.bayer, row_order=f.row_order, height=f.height)


def run_pipeline(
    paths: Sequence[str | Path],
    output: str | Path,
    *,
    config: RunConfig | None = None,
    resume: bool = False,
    force: bool = False,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> RunResult:
    """Run the whole pipeline over ``paths`` into ``output``.

    Raises
    ------
    RunError
        The output folder exists (without ``resume``/``force``), the doctor found errors
        (without ``config.ignore_doctor``), or there are no usable lights.
    """
    cfg = config or RunConfig()
    out = Path(output)
    prog = progress or _no_progress
    say = log or (lambda msg: print(msg, file=sys.stderr))
    _prepare_output(out, resume=resume, force=force)
    work = out / "work"
    result = RunResult(out)
    t_start = time.time()

    # --- scan, link, doctor -----------------------------------------------------------------
    from skystack.doctor import diagnose
    from skystack.library import scan
    from skystack.linking import LinkConfig, link

    inv = scan(list(paths))
    link_cfg = LinkConfig.from_mapping(cfg.link) if cfg.link else None
    plan = link(inv.frames, config=link_cfg, root=inv.root, rejected=inv.rejected)
    report = diagnose(paths, inventory=inv, plan=plan, reference=cfg.ln_reference,
                      local_normalization=cfg.local_normalization, rejection=cfg.rejection,
                      pedestal=cfg.pedestal, link_config=link_cfg)
    result.doctor = [f.to_json() for f in report.findings]
    for f in report.findings:
        say(f"doctor {f.severity}: [{f.check}] {f.message}")
    if report.exit_code == 2 and not cfg.ignore_doctor:
        msg = ("the doctor found errors (listed above) — fix them, or pass --ignore-doctor to "
               "process the lights that can be processed")
        raise RunError(msg)

    executor = make_executor(cfg.executor, jobs=cfg.jobs)
    try:
        masters = _build_masters(plan, cfg, out, executor, prog, result)
        records = _calibrate_all(plan, masters, cfg, work, executor, prog, result, say)
        groups = _group_lights(records, plan, cfg)
        _select(groups, cfg, result)
        _register_all(groups, cfg, work, executor, prog, result, say)
        _normalize_all(groups, cfg, work, executor, prog, result, say)
        _integrate_all(groups, cfg, out, prog, result, say, executor)
    finally:
        executor.close()

    result.decisions.sort(key=lambda d: json.dumps(d, sort_keys=True, default=json_default))
    used = sorted({p for prod in result.products
                   for p in ([prod.get("input")] + list(prod.get("inputs") or [])) if p})
    # lights were hashed by the workers that calibrated them; hash only what they did not
    known = {r["path"]: r["sha256"] for r in records if r.get("sha256")}
    run_json = {
        "version": 1,
        "input_hashes": {p: "sha256:" + (known.get(p) or file_digest(p)) for p in used
                         if Path(p).is_file()},
        "software": {"skystack": __version__, "python": platform.python_version(),
                     "numpy": np.__version__},
        "inputs": [str(p) for p in paths],
        "parameters": cfg.product_params(),
        "link_plan": plan.to_json(),
        "doctor": result.doctor,
        "products": result.products,
        "groups": result.groups,
        "decisions": result.decisions,
    }
    atomic_write_text(out / "run.json", json.dumps(run_json, indent=2, sort_keys=True,
                                                    default=json_default))
    from skystack.report.run_report import write_report

    result.report = write_report(out, run_json, plan)
    say(f"done in {time.time() - t_start:.0f} s — report: {result.report}")
    return result


# --- masters ------------------------------------------------------------------------------------

def _build_masters(plan: Any, cfg: RunConfig, out: Path, executor: Any, prog: Progress,
                   result: RunResult) -> dict[str, str]:
    """Build every master some link uses; existing masters on disk are used as they are."""
    used = plan.used_groups()
    by_id = {g.id: g for g in plan.groups}
    # flats need their dark-flat/bias master first: collect flat links' calibration
    flat_cal: dict[str, tuple[str | None, str | None]] = {}
    for ll in plan.light_links:
        lk = ll.flat
        if lk is not None and lk.group is not None:
            df = lk.dark_flat.group.id if lk.dark_flat and lk.dark_flat.group else None
            bi = lk.bias.group.id if lk.bias and lk.bias.group else None
            flat_cal[lk.group.id] = (df, bi)
    paths: dict[str, str] = {}
    suffix = "." + cfg.master_format

    def task_for(g: Any, extra: dict[str, Any]) -> dict[str, Any]:
        files = g.paths()
        # paths of other masters live in this run's folder: key on their content, not their path
        key = step_key("master", {"kind": g.kind, "calibrated_by": sorted(k for k, v in extra.items() if v)},
                       [file_digest(p) for p in files] + [file_digest(v) for v in extra.values()
                                                           if isinstance(v, str) and Path(v).exists()])
        name = f"master_{_slug(g.id)}_{key[:8]}{suffix}"
        cfa = _cfa_of(g.frames[0])
        return {"kind": g.kind, "files": files, "infos": [_frame_dict(f) for f in g.frames],
                "output": str(out / "masters" / name), "cfa": cfa if g.kind == "flat" else None,
                "memory": cfg.memory, **extra}

    first = []
    for gid in sorted(used):
        g = by_id[gid]
        if g.kind == "flat":
            continue
        if g.master:
            paths[gid] = g.frames[0].path
            continue
        first.append((gid, task_for(g, {})))
    n_masters = len(first) + sum(1 for gid in used if by_id[gid].kind == "flat" and not by_id[gid].master)
    done = executor.map(build_master_task, [t for _, t in first],
                        done=lambda k: prog("masters", k, n_masters)) if first else []
    for (gid, t), r in zip(first, done, strict=True):
        paths[gid] = r["path"]
        result.products.append({"kind": "master", "type": by_id[gid].kind, "id": gid,
                                "path": r["path"], "inputs": t["files"]})
    second = []
    for gid in sorted(used):
        g = by_id[gid]
        if g.kind != "flat":
            continue
        if g.master:
            paths[gid] = g.frames[0].path
            continue
        df, bi = flat_cal.get(gid, (None, None))
        extra = {"dark": paths.get(df) if df else None, "bias": paths.get(bi) if bi else None}
        second.append((gid, task_for(g, extra)))
    done = executor.map(build_master_task, [t for _, t in second],
                        done=lambda k: prog("masters", len(first) + k, n_masters)) if second else []
    for (gid, t), r in zip(second, done, strict=True):
        paths[gid] = r["path"]
        result.products.append({"kind": "master", "type": "flat", "id": gid, "path": r["path"],
                                "inputs": t["files"], "calibrated_with": {
                                    "dark_flat": t.get("dark"), "bias": t.get("bias")}})
    return paths


# --- calibration and measurement ----------------------------------------------------------------

def _calibrate_all(plan: Any, masters: dict[str, str], cfg: RunConfig, work: Path, executor: Any,
                   prog: Progress, result: RunResult, say: Callable[[str], None]) -> list[dict[str, Any]]:
    tasks = []
    for ll in plan.light_links:
        for f in ll.group.frames:
            bias = masters.get(ll.bias.group.id) if ll.bias and ll.bias.group else None
            dark = masters.get(ll.dark.group.id) if ll.dark and ll.dark.group else None
            flat = masters.get(ll.flat.group.id) if ll.flat and ll.flat.group else None
            scale = float(ll.dark.scale) if ll.dark and ll.dark.group else 1.0
            if dark is not None and scale != 1.0 and bias is None:
                say(f"{f.path}: dark scaled ×{scale:.3f} without a bias master — the bias is scaled "
                    "too; link a master bias")
            tasks.append({
                "path": f.path, "bias": bias, "dark": dark, "flat": flat, "dark_scale": scale,
                "cfa": _cfa_of(f), "debayer": cfg.debayer, "weighting": cfg.weighting,
                "calibration": {"pedestal": cfg.pedestal, "cosmetic": cfg.cosmetic,
                                "optimize_dark": cfg.optimize_dark},
                "work": str(work), "pixel_scale": _pixel_scale(f),
                "_info": f,
            })
    clean = [{k: v for k, v in t.items() if k != "_info"} for t in tasks]
    records = executor.map(calibrate_task, clean, done=lambda k: prog("calibrate", k, len(clean)))
    for t, r in zip(tasks, records, strict=True):
        r["info"] = t["_info"]
        result.products.append({"kind": "calibrated", "path": r["calibrated"], "input": t["path"],
                                "masters": {k: t[k] for k in ("bias", "dark", "flat")},
                                "dark_scale": t["dark_scale"], "pedestal_dn": r["pedestal_dn"]})
    return records


def _pixel_scale(f: Any) -> float | None:
    if f.pixel_size and f.focal_length:
        b = f.binning[0] if f.binning else 1
        return 206.265 * f.pixel_size * b / f.focal_length
    return None


# --- grouping and selection ---------------------------------------------------------------------

@dataclass
class Group:
    """Lights integrated together (after calibration): target × filter × panel by default."""

    name: str
    target: str
    records: list[dict[str, Any]]
    accepted: list[dict[str, Any]] = field(default_factory=list)
    reference: dict[str, Any] | None = None
    ln_reference: str | None = None


def _group_lights(records: list[dict[str, Any]], plan: Any, cfg: RunConfig) -> list[Group]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        f = r["info"]
        key = tuple(getattr(f, k, None) for k in cfg.group_by)
        groups[key].append(r)
    out = []
    for key, recs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        named = dict(zip(cfg.group_by, key, strict=True))
        target = _slug(named.get("object") or "target", named.get("panel"))
        recs.sort(key=lambda r: r["path"])
        out.append(Group(_slug(*key) if any(k is not None for k in key) else "lights", target, recs))
    return out


def _select(groups: list[Group], cfg: RunConfig, result: RunResult) -> None:
    import math

    from skystack.stars import StarCatalog
    from skystack.weights import FrameMeasurement, select_frames

    def rebuild(d: dict[str, Any]) -> FrameMeasurement:
        vals = {k: (math.nan if v is None and k not in ("path", "fwhm_arcsec", "pixel_scale")
                    else v) for k, v in d.items()}
        return FrameMeasurement(**vals, catalog=StarCatalog.empty())

    for g in groups:
        meas = [rebuild(r["measurement"]) for r in g.records]
        sel = select_frames(meas, min_weight=cfg.min_weight, expression=cfg.select,
                            method=cfg.weighting)  # type: ignore[arg-type]
        for r, s in zip(g.records, sel, strict=True):
            r["weight"] = float(s.weight)
            r["accepted"] = bool(s.accepted)
            r["reason"] = "; ".join(s.reasons) if s.reasons else None
            if not s.accepted and not cfg.reject_trails and set(s.flags) == {"trail"}:
                # a satellite or aircraft crosses a few pixels: pixel rejection removes them,
                # the rest of the frame is good data (WBPP keeps such frames too)
                r["accepted"] = True
                r["note"] = f"{r['reason']} — kept: pixel rejection removes the trail"
                result.decisions.append({"stage": "select", "frame": r["path"], "group": g.name,
                                         "decision": "kept", "reason": r["note"]})
                r["reason"] = None
            if not r["accepted"]:
                result.decisions.append({"stage": "select", "frame": r["path"], "group": g.name,
                                         "decision": "rejected", "reason": s.reason})
        g.accepted = [r for r in g.records if r["accepted"]]


# --- registration -------------------------------------------------------------------------------

def _choose_reference(records: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """The registration reference of a target and why (lowest binning, sharp, most stars)."""
    from skystack.register import choose_reference

    recs = sorted(records, key=lambda r: r["path"])
    choice = choose_reference(
        [int(r["measurement"].get("stars") or len(r["stars"]["x"])) for r in recs],
        binning=[r["info"].binning[0] if r["info"].binning else None for r in recs],
        fwhm=[r["measurement"].get("fwhm") for r in recs])
    return recs[choice.index], choice.reason


def _register_all(groups: list[Group], cfg: RunConfig, work: Path, executor: Any, prog: Progress,
                  result: RunResult, say: Callable[[str], None]) -> None:
    by_target: dict[str, list[Group]] = defaultdict(list)
    for g in groups:
        by_target[g.target].append(g)
    tasks, owners = [], []
    for target, gs in sorted(by_target.items()):
        cands = [r for g in gs for r in g.accepted]
        if not cands:
            continue
        hits = [r for r in cands if cfg.reference
                and Path(r["path"]).resolve() == Path(cfg.reference).resolve()]
        if hits:
            ref, why = hits[0], "given by the user"
        else:
            ref, why = _choose_reference(cands)
            if cfg.reference:
                why = f"{cfg.reference} is not an accepted light of this target; chose: {why}"
        result.decisions.append({"stage": "register", "target": target, "decision": "reference",
                                 "frame": ref["path"], "reason": why})
        from skystack.io import read_header

        shape = read_header(ref["calibrated"]).shape[-2:]
        for g in gs:
            g.reference = ref
            for r in g.accepted:
                tasks.append({"path": r["path"], "calibrated": r["calibrated"], "key": r["key"],
                              "stars": r["stars"], "ref_stars": ref["stars"], "ref_key": ref["key"],
                              "is_reference": r is ref, "model": cfg.model,
                              "interpolation": cfg.interpolation, "shape": list(shape),
                              "work": str(work)})
                owners.append(r)
    done = executor.map(register_task, tasks, done=lambda k: prog("register", k, len(tasks)))
    for r, d in zip(owners, done, strict=True):
        r["registered"] = d.get("registered")
        r["H"] = d.get("H")
        r["stars_matched"] = d.get("stars_matched")
        r["rms_px"] = d.get("rms_px")
        if d.get("registered") is None:
            r["accepted"] = False
            r["reason"] = f"registration failed: {d.get('reason')}"
            say(f"{r['path']}: {r['reason']}")
            result.decisions.append({"stage": "register", "frame": r["path"],
                                     "decision": "rejected", "reason": r["reason"]})
        else:
            r["registered_key"] = d["key"]
    for g in groups:
        g.accepted = [r for r in g.accepted if r.get("registered")]


# --- normalization ------------------------------------------------------------------------------

def _normalize_all(groups: list[Group], cfg: RunConfig, work: Path, executor: Any, prog: Progress,
                   result: RunResult, say: Callable[[str], None]) -> None:
    from skystack.io import Image, read_image, write_image
    from skystack.normalize import LNError, build_reference_from_files, validate_reference
    from skystack.pipeline.cache import atomic_write

    tasks, owners = [], []
    for g in groups:
        n = len(g.accepted)
        if not cfg.local_normalization or n < 3:
            if cfg.local_normalization:
                result.decisions.append({"stage": "normalize", "group": g.name,
                                         "decision": "global",
                                         "reason": f"{n} frame(s): LN needs at least 3"})
            continue
        ranked = sorted(g.accepted, key=lambda r: (-r["weight"], r["path"]))
        if cfg.ln_reference:
            ref_path = Path(cfg.ln_reference)
            data = read_image(ref_path).data
            fixed = np.stack([validate_reference(c)[0] for c in data]) if data.ndim == 3 else \
                validate_reference(data)[0]
            key = step_key("ln-reference-user", {}, [file_digest(ref_path)])
            target = work / "ln_reference" / f"{g.name}_{key[:8]}.fits"
            if not target.exists():
                atomic_write(target, lambda p, d=fixed: write_image(p, Image.from_array(d)))
            reason = f"given by the user ({ref_path.name}), validated"
        else:
            key = step_key("ln-reference", {"n": None, "method": "LN to the best, integration, auto rejection"},
                           [r["registered_key"] for r in ranked])
            target = work / "ln_reference" / f"{g.name}_{key[:8]}.fits"
            if not target.exists():
                try:
                    ref = build_reference_from_files([r["registered"] for r in ranked],
                                                     [r["weight"] for r in ranked],
                                                     memory=cfg.memory).data
                except (LNError, SkystackError) as err:
                    say(f"{g.name}: LN reference failed ({err}); global normalization instead")
                    continue
                atomic_write(target, lambda p, d=ref: write_image(p, Image.from_array(d)))
            from skystack.normalize import reference_frame_count

            reason = (f"the best {reference_frame_count(n)} of {n} frames by weight, each "
                      "locally normalized to the best one, integrated with auto rejection (as "
                      "WBPP); zero/NaN pixels repaired")
        g.ln_reference = str(target)
        result.decisions.append({"stage": "normalize", "group": g.name, "decision": "ln-reference",
                                 "path": str(target), "reason": reason})
        result.products.append({"kind": "ln_reference", "group": g.name, "path": str(target)})
        ref_key = file_digest(target)
        # the registration reference's stars lie on the registered grid: photometry positions
        ref_stars = g.reference["stars"] if g.reference else None
        for r in g.accepted:
            tasks.append({"path": r["path"], "registered": r["registered"],
                          "key": r["registered_key"], "reference": str(target),
                          "ref_key": ref_key, "scale": cfg.ln_scale, "work": str(work),
                          "stars": ref_stars})
            owners.append(r)
    done = executor.map(ln_task, tasks, done=lambda k: prog("normalize", k, len(tasks)))
    for r, d in zip(owners, done, strict=True):
        r["ln"] = d.get("ln")
        r["ln_info"] = d.get("channels")
        r["ln_failure"] = None if d["ok"] else d.get("reason")
    for g in groups:
        failed = [r for r in g.accepted if r.get("ln_failure")]
        if failed:
            # LN is all or nothing per group (as ImageIntegration): mixing LN and global
            # normalization in one stack would fight; keep every frame, normalize globally.
            reason = (f"local normalization failed for {len(failed)} of {len(g.accepted)} frames "
                      f"(first: {Path(failed[0]['path']).name}: {failed[0]['ln_failure']}) — the "
                      "group is integrated with global normalization instead")
            say(f"{g.name}: {reason}")
            result.decisions.append({"stage": "normalize", "group": g.name, "decision": "global",
                                     "reason": reason})
            for r in g.accepted:
                r["ln"] = None


# --- integration --------------------------------------------------------------------------------

def _integrate_all(groups: list[Group], cfg: RunConfig, out: Path, prog: Progress,
                   result: RunResult, say: Callable[[str], None], executor: Any = None) -> None:
    from skystack.calibrate import mrs_noise
    from skystack.integrate import IntegrationConfig, integrate
    from skystack.io import read_header
    from skystack.normalize import ChannelNormalization
    from skystack.pipeline.cache import atomic_write

    for i, g in enumerate(groups):
        frames = g.accepted
        if not frames:
            say(f"{g.name}: no accepted frames — nothing integrated")
            result.groups.append({"name": g.name, "frames": 0, "output": None,
                                  "reason": "no accepted frames", "frame_rows": _rows(g)})
            continue
        paths = [r["registered"] for r in frames]
        weights = np.array([r["weight"] for r in frames], float)
        use_ln = all(r.get("ln") for r in frames) and len(frames) >= 3
        shape = tuple(read_header(paths[0]).shape[-2:])
        lns = [ChannelNormalization.load(r["ln"], shape) for r in frames] if use_ln else None
        if cfg.integration_weights == "noise":
            # inverse variance on the master's scale: with LN each frame is multiplied by its
            # a1 (a hazy frame by more), so its noise is too; without LN the engine's own
            # dispersion-based weights do the same for global normalization
            weights = _ln_noise_weights(frames) if use_ln else None
        icfg = IntegrationConfig(combine=cfg.combine, rejection=cfg.rejection,
                                 normalization="additive-scaling",
                                 rejection_normalization="scale", weights="noise",
                                 subtract_pedestal=not use_ln, range_low=0.0)
        key = step_key("integrate", {"cfg": repr(icfg), "ln": use_ln},
                       [r["registered_key"] for r in frames]
                       + ([] if weights is None else [str(w) for w in weights])
                       + [file_digest(r["ln"]) for r in frames if use_ln])
        target = out / "lights" / f"{g.name}.{cfg.output_format}"
        stamp = out / "work" / "integrate" / f"{g.name}_{key[:16]}.json"
        if not (target.exists() and stamp.exists()):
            if executor is not None and executor.name == "dask":
                res = _integrate_on_cluster(paths, frames, icfg, weights, use_ln, shape, cfg,
                                            executor)
            else:
                res = integrate(paths, config=icfg, weights=weights, local_normalization=lns,
                                memory=cfg.memory)
            kws = [("IMAGETYP", "Master Light"), ("NCOMBINE", len(frames)),
                   ("OBJECT", getattr(frames[0]["info"], "object", None)),
                   ("FILTER", getattr(frames[0]["info"], "filter", None)),
                   ("LOCALNRM", use_ln)]
            atomic_write(target, lambda p, res=res, kws=kws: res.write(p, keywords=_kw(kws),
                                                                       maps=True))
            half_cfg = replace(icfg, rejection=res.config.rejection)  # same method as the full stack

            def halves(idx: np.ndarray, paths: list[str] = paths, weights: Any = weights,
                       lns: Any = lns, half_cfg: Any = half_cfg) -> Any:
                return integrate([paths[i] for i in idx], config=half_cfg,
                                 weights=None if weights is None else weights[idx],
                                 local_normalization=None if lns is None else [lns[i] for i in idx],
                                 memory=cfg.memory)

            summary = _quality(res, frames, mrs_noise, halves=halves)
            atomic_write_text(stamp, json.dumps(summary, default=json_default))
        summary = json.loads(stamp.read_text())
        prog("integrate", i + 1, len(groups))
        n = len(frames)
        rec = {"name": g.name, "output": str(target), "frames": n,
               "inputs": [r["path"] for r in frames], "registered": paths,
               "weights": summary.get("weights"), "weighting": cfg.integration_weights,
               "local_normalization": use_ln,
               "ln_reference": g.ln_reference,
               "registration_reference": g.reference["path"] if g.reference else None,
               "rejected_frames": [{"path": r["path"], "reason": r.get("reason")}
                                   for r in g.records if not r.get("accepted")],
               "frame_rows": _rows(g), **summary}
        result.groups.append(rec)
        result.products.append({"kind": "master_light", "group": g.name, "path": str(target),
                                "inputs": rec["inputs"]})
        say(f"{g.name}: {n} frames → {target.name}  noise gain {summary['noise_gain']:.2f} "
            f"(√N = {np.sqrt(n):.2f}, ratio {summary['noise_gain_vs_sqrt_n']:.2f})")


def _ln_a1(path: str) -> float:
    """A frame's LN scale a1 (mean over channels) from its saved functions."""
    z = np.load(path)
    return float(np.mean([z[k] for k in z.files if k.startswith("a1_")]))


def _ln_noise_weights(frames: list[dict[str, Any]]) -> np.ndarray | None:
    """1 / (noise · a1)² per frame, best = 1; None when a frame's noise is unknown."""
    out = []
    for r in frames:
        noise = r.get("measurement", {}).get("noise")
        if not noise or not r.get("ln"):
            return None
        out.append(1.0 / (noise * _ln_a1(r["ln"])) ** 2)
    w = np.asarray(out)
    return w / w.max()


def _integrate_on_cluster(paths: list[str], frames: list[dict[str, Any]], icfg: Any, weights: Any,
                          use_ln: bool, shape: tuple[int, ...], cfg: RunConfig,
                          executor: Any) -> Any:
    """Integration as row-band tasks: pass 1 here, each band on a worker, assembled here.

    Every band uses the same plan (statistics, weights, coefficients), so the result is
    bit-identical to a local run.
    """
    from skystack.integrate import assemble_bands, prepare_integration
    from skystack.pipeline.tasks import integrate_band_task

    plan = prepare_integration(paths, config=icfg, weights=weights, local_normalization=use_ln,
                               memory=cfg.memory)
    ln_paths = [r["ln"] for r in frames] if use_ln else None
    tasks = [{"paths": paths, "plan": plan, "r0": r0, "r1": r1, "ln": ln_paths,
              "shape": list(shape)} for r0, r1 in plan.bands()]
    return assemble_bands(plan, executor.map(integrate_band_task, tasks))


def _rows(g: Group) -> list[dict[str, Any]]:
    """One row per frame of a group, in time order, for run.json and the report."""
    def when(r: dict[str, Any]) -> str:
        d = getattr(r["info"], "date_obs", None)
        return d.isoformat() if d is not None else r["path"]

    rows = []
    for r in sorted(g.records, key=lambda r: (when(r), r["path"])):
        m = r.get("measurement", {})
        rows.append({"path": r["path"], "date_obs": when(r), "weight": r.get("weight"),
                     "accepted": bool(r.get("accepted")), "reason": r.get("reason"),
                     "stars": m.get("stars"), "fwhm": m.get("fwhm"),
                     "eccentricity": m.get("eccentricity"), "background": m.get("background"),
                     "noise": m.get("noise"), "snr": m.get("snr"),
                     "psf_signal_weight": m.get("psf_signal_weight"),
                     "stars_matched": r.get("stars_matched"), "rms_px": r.get("rms_px"),
                     "H": r.get("H"), "pedestal_dn": r.get("pedestal_dn"),
                     "calibrated": r.get("calibrated"), "registered": r.get("registered"),
                     "ln": r.get("ln"), "note": r.get("note")})
    return rows


def _kw(items: list[tuple[str, Any]]) -> list[Any]:
    from skystack.io import Keyword

    return [Keyword(k, v) for k, v in items if v is not None]


def _robust_sigma(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return 1.4826 * float(np.median(np.abs(x - np.median(x)))) if x.size else float("nan")


def _quality(res: Any, frames: list[dict[str, Any]], mrs_noise: Callable[..., float],
             halves: Callable[[np.ndarray], Any] | None = None) -> dict[str, Any]:
    """Noise of the master against a single registered frame on the master's scale.

    Single frames: the robust spread of the difference of consecutive frames, /√2, each frame
    normalized as the engine does (LN a0 + a1·x, or the global scale) — the true per-pixel noise.
    (A wavelet estimate would read resampled frames ~10 % low: resampling correlates neighbouring
    pixels' noise.) The master: from the difference of two half stacks (even and odd frames, same
    settings), which holds noise only — no stars, nebula or residual structure that a
    single-image estimate mistakes for noise; the à-trous estimate when a group is too small to
    split. Both are measured on the pixels every frame covers.
    """
    from skystack.io import read_image
    from skystack.normalize import ChannelNormalization

    master = luminance(res.image)
    cov = res.coverage if res.coverage.ndim == 2 else res.coverage.min(axis=0)
    full = cov == cov.max()
    rows = np.flatnonzero(full.any(axis=1))
    cols = np.flatnonzero(full.any(axis=0))
    crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)) if rows.size else (slice(None),) * 2
    # Only pixels that every frame covers: the gain of N frames is where N frames overlap. The
    # bounding box of that area also holds corners that rotated or dithered frames miss (18 % of
    # it on the simulated night); there the halves stack fewer frames and read the gain ~5 % low.
    inside = full[crop]
    n = len(frames)
    m_noise = mrs_noise(master[crop])
    if halves is not None and n >= 4:
        even, odd = np.arange(0, n, 2), np.arange(1, n, 2)
        a, b = (luminance(halves(idx).image)[crop].astype(np.float64) for idx in (even, odd))
        w = np.array([float(np.mean(st.weight)) for st in res.stats])
        # inverse-variance weights: var(half) ∝ 1/Σw over its frames, var(full) ∝ 1/Σw
        k = (1 / w.sum()) / (1 / w[even].sum() + 1 / w[odd].sum())
        m_noise = _robust_sigma(np.where(inside & (a > 0) & (b > 0), a - b, np.nan)) * np.sqrt(k)
    ref_scale = float(np.mean(res.stats[0].scale)) if res.stats else 1.0

    def on_master_scale(i: int) -> np.ndarray:
        r, st = frames[i], res.stats[i]
        data = read_image(r["registered"]).data
        nodata = luminance(data)[crop] <= 0
        if r.get("ln"):
            # the frame as the engine stacks it, offset surface a0 included: with a1 alone the
            # pair difference also holds the two frames' different sky gradients (the moon
            # rises), which reads the single-frame noise up to 4 % high
            data = ChannelNormalization.load(r["ln"], data.shape).apply(data, 0)
        else:
            # the engine's factor: reference dispersion / frame dispersion (offsets: medians)
            data = data * np.float32(ref_scale / max(float(np.mean(st.scale)), 1e-12))
        d = luminance(data)[crop].astype(np.float64)
        return np.where(inside & ~nodata, d, np.nan)

    singles = []
    step = 2 if n > 20 else 1
    nxt = None
    for i in range(0, n - 1, step):
        cur = nxt if step == 1 and nxt is not None else on_master_scale(i)
        nxt = on_master_scale(i + 1)
        diff = (cur - np.nanmedian(cur)) - (nxt - np.nanmedian(nxt))
        singles.append(_robust_sigma(diff) / np.sqrt(2))
    single = float(np.median(singles)) if singles else float("nan")
    gain = single / m_noise if m_noise > 0 else float("nan")
    total = float(np.prod(res.image.shape)) * n
    return {"weights": [float(np.mean(st.weight)) for st in res.stats],
            "noise_single": single, "noise_master": m_noise, "noise_gain": gain,
            "noise_gain_vs_sqrt_n": gain / np.sqrt(n),
            "rejected_low_fraction": float(res.low_rejected.sum()) / total,
            "rejected_high_fraction": float(res.high_rejected.sum()) / total}
