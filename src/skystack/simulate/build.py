"""Plan a simulated observing run, render it (optionally in parallel) and write frames + truth."""

from __future__ import annotations

import csv
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from skystack.errors import ConfigError
from skystack.io import Image, Keyword, write_image
from skystack.simulate.dialects import FrameSpec, header_for, path_for
from skystack.simulate.events import random_trail
from skystack.simulate.optics import DustMote, dust_attenuation, vignetting
from skystack.simulate.presets import Preset, get_preset
from skystack.simulate.render import (
    LightSpec,
    Scene,
    make_scene,
    pointing_matrix,
    render_bias,
    render_dark,
    render_flat,
    render_light,
    to_unit,
)
from skystack.simulate.sensor import (
    Camera,
    dark_current_map,
    defect_kind_name,
    read_out,
    sensor_maps,
)
from skystack.simulate.sky import BANDS
from skystack.simulate.truth import TRUTH_VERSION, FrameTruth, Simulation, Truth, write_truth

__all__ = ["simulate"]

_START_UTC = datetime(2026, 10, 12, 19, 30, 0)
_NIGHT_GAP_DAYS = 2


@dataclass
class _Job:
    """One file to render and write (picklable; big arrays live in the shared context)."""

    kind: str                         # light | dark | dark_flat | bias | flat | master_dark
    rel: str
    cards: list[Keyword]
    seed: tuple[int, ...]
    truth: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Context:
    camera: Camera
    scene: Scene
    optics: dict[tuple[str, str], np.ndarray]
    out: Path
    dust: dict[tuple[str, str], list[DustMote]] = field(default_factory=dict)
    cosmic_ray_rate: float = 0.0


_CTX: _Context | None = None


def _night_name(i: int) -> str:
    return (date(2026, 10, 12) + timedelta(days=_NIGHT_GAP_DAYS * i)).isoformat()


def _flat_key(filt: str | None) -> str:
    return filt if filt is not None else "OSC"


def _allocate(total: int, weights: list[float]) -> list[int]:
    """Split ``total`` by ``weights`` (largest remainder), at least 1 each."""
    w = np.asarray(weights, float)
    raw = total * w / w.sum()
    counts = np.maximum(np.floor(raw).astype(int), 1)
    rest = total - counts.sum()
    order = np.argsort(-(raw - np.floor(raw)), kind="stable")
    for i in order[: max(rest, 0)]:
        counts[i] += 1
    return counts.tolist()


def _camera(p: Preset, seed: int) -> Camera:
    return Camera(
        width=p.width, height=p.height,
        name="ZWO ASI2600MC Pro" if p.bayer else "ZWO ASI2600MM Pro",
        bayer=p.bayer,
        amp_glow_e_s=0.4 if p.amp_glow else 0.0,
        hot_fraction=2e-4 if p.hot_pixels else 0.0,
        warm_fraction=1e-3 if p.hot_pixels else 0.0,
        cold_fraction=1e-4 if p.hot_pixels else 0.0,
        bad_column=p.width // 3 if p.bad_column else None,
        seed=seed,
    )


def _dust_motes(p: Preset, rng: np.random.Generator, filters: list[str | None],
                nights: int) -> dict[tuple[str, str], list[DustMote]]:
    """2–4 motes per filter; each night moves them by up to ~3 px (real dust creeps)."""
    out: dict[tuple[str, str], list[DustMote]] = {}
    size = min(p.width, p.height)
    for f in filters:
        base = []
        for _ in range(int(rng.integers(2, 5))):
            base.append(DustMote(x=float(rng.uniform(0.1, 0.9) * p.width),
                                 y=float(rng.uniform(0.1, 0.9) * p.height),
                                 radius=float(size * rng.uniform(0.025, 0.06)),
                                 depth=float(rng.uniform(0.03, 0.12))))
        for n in range(nights):
            shift = rng.normal(0.0, 1.5, (len(base), 2)) if n else np.zeros((len(base), 2))
            out[(_flat_key(f), _night_name(n))] = [
                replace(m, x=m.x + float(d[0]), y=m.y + float(d[1])) for m, d in zip(base, shift)
            ] if p.dust else []
    return out


def _base_spec(p: Preset, cam: Camera, **kw: Any) -> FrameSpec:
    return FrameSpec(gain=cam.gain_setting, offset=cam.offset_setting, egain=cam.gain_e_per_adu,
                     camera=cam.name, pixel_size=cam.pixel_size_um, bayer=cam.bayer, **kw)


class _Planner:
    """Builds the list of jobs for a preset (all randomness from the simulation seed)."""

    def __init__(self, p: Preset, seed: int, cam: Camera, ref_shape: tuple[int, int],
                 panel_centres: list[tuple[float, float]]) -> None:
        self.p, self.seed, self.cam = p, seed, cam
        self.ref_shape, self.panel_centres = ref_shape, panel_centres
        self.rng = np.random.default_rng((seed, 0x91A7))
        self.jobs: list[_Job] = []
        self.counter = 0
        self.paths: set[str] = set()

    def dialect_for(self, kind: str, night: int) -> str:
        if not self.p.messy:
            return self.p.dialect
        # messy: night 1 by N.I.N.A., night 2 by the ASIAIR; calibration from other programs.
        if kind == "light":
            return "nina" if night == 0 else "asiair"
        return {"bias": "sgp", "dark": "maxim", "dark_flat": "ekos", "flat": "nina"}[kind] \
            if night == 0 else "asiair"

    def add(self, kind: str, spec: FrameSpec, dialect: str, truth: dict[str, Any],
            params: dict[str, Any], prefix: str = "") -> _Job:
        rel = path_for(dialect, spec)
        if prefix:
            rel = f"{prefix}/{rel}"
        if rel in self.paths:
            msg = f"simulation plan error: two frames would be written to {rel}"
            raise ConfigError(msg)
        self.paths.add(rel)
        self.counter += 1
        truth = {"path": rel, "type": spec.type, "filter": spec.filter, "exposure": spec.exposure,
                 "temperature": spec.temperature, "set_temperature": spec.set_temperature,
                 "night": spec.night, "panel": spec.panel, "dialect": dialect,
                 "date_obs": spec.date_obs.isoformat(timespec="milliseconds"),
                 "master": spec.master, **truth}
        job = _Job(kind=kind, rel=rel, cards=header_for(dialect, spec),
                   seed=(self.seed, 0xF4A3, self.counter), truth=truth, params=params)
        self.jobs.append(job)
        return job

    def prefix(self, dialect: str) -> str:
        return dialect if self.p.messy else ""


def _plan(p: Preset, seed: int, cam: Camera, ref_shape: tuple[int, int],
          panel_centres: list[tuple[float, float]]) -> tuple[_Planner, dict[str, Any]]:
    pl = _Planner(p, seed, cam, ref_shape, panel_centres)
    rng = pl.rng
    filters = [f for f, _, _ in p.filters]
    light_groups = [(n, panel, f, exp, w) for n in range(p.nights)
                    for panel in range(p.panels) for (f, exp, w) in p.filters]
    counts = _allocate(p.frames, [g[4] for g in light_groups])
    planted: list[dict[str, Any]] = []

    temp_of = lambda set_t: float(set_t + rng.normal(0.0, 0.05))  # noqa: E731 — cooler jitter
    night_end: list[datetime] = []
    for n in range(p.nights):
        night = _night_name(n)
        t = _START_UTC + timedelta(days=_NIGHT_GAP_DAYS * n)
        rot0 = n * p.night_rotation_deg
        off0 = rng.normal(0.0, 12.0, 2) if n else np.zeros(2)
        seeing = float(rng.uniform(*p.fwhm))
        groups = [(g, c) for g, c in zip(light_groups, counts) if g[0] == n]
        n_night = sum(c for _, c in groups)
        k = 0
        for (_, panel, filt, exp, _), count in groups:
            for i in range(count):
                flipped = p.meridian_flip and k >= n_night // 2
                rot = rot0 + p.rotation_drift_deg * k + (180.0 if flipped else 0.0)
                dither = rng.uniform(-p.dither_px, p.dither_px, 2) + off0
                H = pointing_matrix(ref_shape, cam.shape, rotation_deg=rot,
                                    offset=(float(dither[0]), float(dither[1])),
                                    ref_center=panel_centres[panel])
                fwhm = float(np.clip(seeing * np.exp(rng.normal(0, 0.08)), 1.6, 8.0))
                ell = float(rng.uniform(0.0, 0.12) if rng.random() > 0.1 else rng.uniform(0.2, 0.35))
                cloudy = rng.random() < p.cloudy_fraction
                transparency = float(rng.uniform(0.5, 0.85) if cloudy else rng.uniform(0.97, 1.0))
                bands = ("R", "G", "B") if cam.bayer else (filt or "L",)
                phase = k / max(n_night - 1, 1)
                level = (1.0 + 0.4 * phase) * (1.1 if cloudy else 1.0)   # the moon rises
                ang = np.deg2rad(30.0 + 80.0 * phase + 20.0 * n)
                amp = 0.25 * (0.5 + 0.5 * phase)
                sky = {}
                for b in bands:
                    a = BANDS[b].sky_e_s * level
                    sky[b] = (a, a * amp * np.cos(ang) / (cam.width / 2),
                              a * amp * np.sin(ang) / (cam.height / 2))
                trails = ()
                if rng.random() < p.trail_fraction:
                    trails = (random_trail(cam.shape, rng),)
                pier = "East" if flipped else "West"
                fs = _base_spec(p, cam, type="light", exposure=exp, filter=filt,
                                temperature=temp_of(p.set_temp), set_temperature=p.set_temp,
                                date_obs=t, index=i, object=p.target,
                                panel=str(panel + 1) if p.panels > 1 else None, night=night,
                                pier_side=pier)
                d = pl.dialect_for("light", n)
                params = dict(filter=filt, exposure=exp, temperature=fs.temperature, H=H,
                              fwhm=fwhm, beta=3.5, ellipticity=ell,
                              psf_angle=float(rng.uniform(0, 180)),
                              field_curvature=p.field_curvature, sky=sky,
                              transparency=transparency, trails=trails,
                              cosmic_ray_rate=p.cosmic_ray_rate, optics=(_flat_key(filt), night))
                pl.add("light", fs, d, {"dither": [float(dither[0]), float(dither[1])],
                                        "pier_side": pier}, params, pl.prefix(d))
                t += timedelta(seconds=exp + 12.0)
                k += 1
        # Flats at dawn of every night, per filter.
        t_flat = t + timedelta(minutes=30)
        for filt in filters:
            fexp = p.flat_exposure(filt)
            key = (_flat_key(filt), night)
            if p.messy and filt == "OIII":
                affected = [j.rel for j in pl.jobs if j.kind == "light"
                            and j.truth["filter"] == "OIII" and j.truth["night"] == night]
                planted.append({"kind": "missing_flats", "paths": affected,
                                "detail": f"no flats for filter OIII on {night}; OIII lights "
                                          "have no flat to link to"})
                continue
            for i in range(p.flats):
                fs = _base_spec(p, cam, type="flat", exposure=fexp, filter=filt,
                                temperature=temp_of(p.set_temp), set_temperature=p.set_temp,
                                date_obs=t_flat, index=i, object=p.target, night=night)
                d = pl.dialect_for("flat", n)
                pl.add("flat", fs, d, {}, {"optics": key, "exposure": fexp,
                                           "temperature": fs.temperature}, pl.prefix(d))
                t_flat += timedelta(seconds=fexp + 2.0)
        night_end.append(t_flat)

    # Calibration library (taken on the first night, after the flats).
    t = night_end[0] + timedelta(minutes=20)
    light_exps = sorted({exp for _, exp, _ in p.filters})
    for i in range(p.bias):
        fs = _base_spec(p, cam, type="bias", exposure=0.0, temperature=temp_of(p.set_temp),
                        set_temperature=p.set_temp, date_obs=t, index=i, night=_night_name(0))
        d = pl.dialect_for("bias", 0)
        pl.add("bias", fs, d, {}, {"temperature": fs.temperature}, pl.prefix(d))
        t += timedelta(seconds=1.0)
    for temp in p.dark_temps:
        for exp in light_exps:
            for i in range(p.darks):
                fs = _base_spec(p, cam, type="dark", exposure=exp, temperature=temp_of(temp),
                                set_temperature=temp, date_obs=t, index=i, night=_night_name(0))
                d = pl.dialect_for("dark", 0)
                pl.add("dark", fs, d, {}, {"exposure": exp, "temperature": fs.temperature},
                       pl.prefix(d))
                t += timedelta(seconds=exp + 1.0)
    for fexp in sorted({p.flat_exposure(f) for f in filters}):
        for i in range(p.dark_flats):
            fs = _base_spec(p, cam, type="dark_flat", exposure=fexp, temperature=temp_of(p.set_temp),
                            set_temperature=p.set_temp, date_obs=t, index=i, night=_night_name(0))
            d = pl.dialect_for("dark_flat", 0)
            pl.add("dark_flat", fs, d, {}, {"exposure": fexp, "temperature": fs.temperature},
                   pl.prefix(d))
            t += timedelta(seconds=fexp + 1.0)

    if p.messy:
        planted += _plan_messy(pl, p, cam, rng, light_exps)
    return pl, {"planted_problems": planted}


def _plan_messy(pl: _Planner, p: Preset, cam: Camera, rng: np.random.Generator,
                light_exps: list[float]) -> list[dict[str, Any]]:
    """Extra frames of the ``messy`` preset (the junk files are written later)."""
    planted = []
    night = _night_name(0)
    # A pre-made master dark from an older library (float32, IMAGETYP 'Master Dark').
    exp = light_exps[0]
    fs = _base_spec(p, cam, type="dark", exposure=exp, temperature=p.set_temp,
                    set_temperature=p.set_temp, date_obs=datetime(2026, 9, 1, 21, 0, 0),
                    index=0, night="2026-09-01", master=True)
    job = pl.add("master_dark", fs, "nina", {}, {"exposure": exp, "temperature": p.set_temp,
                                                 "n": 30}, "library")
    planted.append({"kind": "existing_master", "paths": [job.rel],
                    "detail": f"a master dark ({exp:g} s, {p.set_temp:g} °C, IMAGETYP 'Master "
                              "Dark', 'master' in the file name) beside raw darks of the same "
                              "exposure"})
    # A 180 s light with no 180 s darks anywhere.
    filt = p.filters[0][0]
    H = pointing_matrix(pl.ref_shape, cam.shape, ref_center=pl.panel_centres[0])
    fs = _base_spec(p, cam, type="light", exposure=180.0, filter=filt, temperature=p.set_temp,
                    set_temperature=p.set_temp, date_obs=_START_UTC + timedelta(hours=9),
                    index=0, object=p.target, night=night, pier_side="East")
    params = dict(filter=filt, exposure=180.0, temperature=p.set_temp, H=H, fwhm=3.0, beta=3.5,
                  ellipticity=0.05, psf_angle=0.0, field_curvature=0.0, sky=None,
                  transparency=1.0, trails=(), cosmic_ray_rate=p.cosmic_ray_rate,
                  optics=(_flat_key(filt), night))
    job = pl.add("light", fs, "nina", {"dither": [0.0, 0.0], "pier_side": "East"}, params, "nina")
    planted.append({"kind": "no_matching_dark", "paths": [job.rel],
                    "detail": f"a 180 s light; darks exist only for {', '.join(f'{e:g} s' for e in light_exps)}"})
    return planted


def _write_junk(out: Path) -> list[dict[str, Any]]:
    """The ``messy`` preset's junk files."""
    from astropy.io import fits

    junk = out / "nina" / _night_name(0) / "LIGHT"
    junk.mkdir(parents=True, exist_ok=True)
    notes = junk / "notes.txt"
    notes.write_text("seeing poor after 23:00, clouds from the west\n", encoding="ascii")
    empty = junk / "empty_0000.fits"
    empty.write_bytes(b"")
    trunc = junk / "truncated_0001.fits"
    hdu = fits.PrimaryHDU(np.zeros((64, 64), np.uint16))
    hdu.header["IMAGETYP"] = "LIGHT"
    hdu.header["EXPOSURE"] = 120.0
    raw = fits.HDUList([hdu])
    tmp = trunc.with_suffix(".tmp")
    raw.writeto(tmp, overwrite=True)
    data = tmp.read_bytes()
    tmp.unlink()
    trunc.write_bytes(data[: 2880 + 1000])      # header intact, data cut short
    rel = lambda q: q.relative_to(out).as_posix()  # noqa: E731
    return [
        {"kind": "not_an_image", "paths": [rel(notes)], "detail": "a text file among the lights"},
        {"kind": "empty_file", "paths": [rel(empty)], "detail": "0 bytes"},
        {"kind": "truncated_file", "paths": [rel(trunc)],
         "detail": "valid FITS header, data unit cut short (copy interrupted)"},
    ]


def _init_worker(ctx: _Context) -> None:
    global _CTX
    _CTX = ctx


def _render(job: _Job) -> dict[str, Any]:
    """Render and write one job; returns its truth dict (runs in a worker or in-process)."""
    ctx = _CTX
    assert ctx is not None
    cam, pr = ctx.camera, job.params
    truth = dict(job.truth)
    sample = "uint16"
    if job.kind == "light":
        spec = LightSpec(scene=ctx.scene, camera=cam, filter=pr["filter"], exposure=pr["exposure"],
                         temperature=pr["temperature"], H=pr["H"], fwhm=pr["fwhm"],
                         beta=pr["beta"], ellipticity=pr["ellipticity"], psf_angle=pr["psf_angle"],
                         field_curvature=pr["field_curvature"], sky=pr["sky"],
                         transparency=pr["transparency"], flat=ctx.optics.get(pr["optics"]),
                         trails=pr["trails"], cosmic_ray_rate=pr["cosmic_ray_rate"])
        data, ft = render_light(spec, seed=job.seed)
        mask = getattr(ft, "trail_mask_array", None)
        if mask is not None:
            mrel = f"truth/trails/{job.rel.replace('/', '__').rsplit('.', 1)[0]}.fits"
            write_image(ctx.out / mrel, Image.from_array(mask.astype(np.float32)),
                        sample_format="uint8")
            truth["trail_mask"] = mrel
        for k in ("H", "rotation_deg", "fwhm", "beta", "ellipticity", "eccentricity", "psf_angle",
                  "field_curvature", "sky", "transparency", "trails", "cosmic_rays",
                  "saturated_pixels"):
            truth[k] = getattr(ft, k)
    elif job.kind in ("dark", "dark_flat"):
        data, ft = render_dark(cam, exposure=pr["exposure"], temperature=pr["temperature"],
                               seed=job.seed, cosmic_ray_rate=0.0 if job.kind == "dark_flat"
                               else ctx.cosmic_ray_rate, kind=job.kind)
        truth["cosmic_rays"] = ft.cosmic_rays
    elif job.kind == "bias":
        data, ft = render_bias(cam, seed=job.seed, temperature=pr["temperature"])
    elif job.kind == "flat":
        level = 0.45 * cam.full_well_e
        data, ft = render_flat(cam, ctx.optics.get(pr["optics"]), exposure=pr["exposure"],
                               level_e=level, temperature=pr["temperature"], seed=job.seed)
        truth["flat_level_e"] = level
    elif job.kind == "master_dark":
        # Mean of n darks: expected value plus noise reduced by √n.
        rng = np.random.default_rng(job.seed)
        e = dark_current_map(cam, pr["temperature"]) * np.float32(pr["exposure"])
        adu = read_out(e, cam, rng, noise=False)
        sigma = np.sqrt(e / cam.gain_e_per_adu**2 + (cam.read_noise_e / cam.gain_e_per_adu) ** 2)
        adu = adu + (sigma / np.sqrt(pr["n"])) * rng.standard_normal(cam.shape).astype(np.float32)
        data, sample = to_unit(adu.astype(np.float32)), "float32"
        truth["type"] = "dark"
    else:  # pragma: no cover - planner and renderer are in the same file
        raise AssertionError(job.kind)
    img = Image.from_array(data, keywords=list(job.cards), sample_format=sample,
                           bayer_pattern=cam.bayer, row_order="TOP-DOWN")
    write_image(ctx.out / job.rel, img, sample_format=sample)
    return truth


def _write_truth_images(ctx: _Context, p: Preset, seed: int, panel_centres: list[tuple[float, float]],
                        temps: list[float], flat_keys: list[tuple[str, str]]) -> dict[str, Any]:
    out, cam, scene = ctx.out, ctx.camera, ctx.scene
    tdir = out / "truth"
    tdir.mkdir(parents=True, exist_ok=True)

    def put(rel: str, arr: np.ndarray, unit: str, what: str) -> str:
        img = Image.from_array(arr.astype(np.float32),
                               keywords=[Keyword("BUNIT", unit, "physical unit"),
                                         Keyword("CONTENT", what, "skystack.simulate truth")])
        write_image(out / rel, img, sample_format="float32")
        return rel

    maps = sensor_maps(cam)
    cam_info: dict[str, Any] = {
        "name": cam.name, "width": cam.width, "height": cam.height,
        "gain_e_per_adu": cam.gain_e_per_adu, "read_noise_e": cam.read_noise_e,
        "read_noise_adu": cam.read_noise_e / cam.gain_e_per_adu, "bias_adu": cam.bias_adu,
        "full_well_e": cam.full_well_e, "saturation_adu": cam.saturation_adu,
        "adc_bits": cam.adc_bits, "dark_current_e_s": cam.dark_current_e_s,
        "dark_ref_temp_c": cam.dark_ref_temp_c, "dark_doubling_c": cam.dark_doubling_c,
        "amp_glow_e_s": cam.amp_glow_e_s, "amp_glow_corner": list(cam.amp_glow_corner),
        "bad_column": cam.bad_column, "bayer": cam.bayer,
        "cfa_response": list(cam.cfa_response) if cam.bayer else None,
        "gain_setting": cam.gain_setting, "offset_setting": cam.offset_setting,
        "prnu_sigma": cam.prnu_sigma,
        "bias_map": put("truth/bias_main.fits", maps.bias, "adu", "noiseless bias frame"),
        "dark_current": {}, "hot_pixels": "truth/hot_pixels_main.csv",
    }
    for temp in temps:
        rel = f"truth/dark_current_main_{temp:+.1f}C.fits"
        cam_info["dark_current"][f"{temp:.1f}"] = put(rel, dark_current_map(cam, temp), "e-/s",
                                                      f"dark current at {temp:.1f} C")
    with open(out / cam_info["hot_pixels"], "w", newline="", encoding="ascii") as fh:
        wr = csv.writer(fh)
        wr.writerow(["x", "y", "kind", "dark_scale", "response"])
        for row in maps.defects:
            wr.writerow([int(row["x"]), int(row["y"]), defect_kind_name(row["kind"]),
                         f"{float(row['dark_scale']):.4g}", f"{float(row['response']):.4g}"])

    flats = []
    for key in flat_keys:
        optics = ctx.optics[key]
        rel = put(f"truth/flat_{key[0]}_{key[1]}.fits", optics * maps.response, "relative",
                  f"flat field {key[0]} {key[1]}")
        flats.append({"filter": None if key[0] == "OSC" else key[0], "night": key[1],
                      "path": rel, "dust": [asdict(m) for m in ctx.dust.get(key, [])]})

    bands = ["R", "G", "B"] if cam.bayer else sorted({f for f, _, _ in p.filters if f},
                                                      key=list(BANDS).index)
    sky = {b: put(f"truth/sky_{b}.fits", scene.truth_sky(b), "e-/s",
                  f"noiseless sky {b}, reference frame") for b in bands}
    stars_rel = "truth/stars.csv"
    st = scene.stars
    with open(out / stars_rel, "w", newline="", encoding="ascii") as fh:
        wr = csv.writer(fh)
        wr.writerow(["x", "y", *[f"flux_{b}" for b in bands]])
        cols = [st.flux(b) for b in bands]
        for i in range(len(st)):
            wr.writerow([f"{st.x[i]:.4f}", f"{st.y[i]:.4f}", *[f"{c[i]:.6g}" for c in cols]])
    return {
        "cameras": {"main": cam_info},
        "flats": flats,
        "sky": sky,
        "stars": stars_rel,
        "extended": [{"type": type(o).__name__, **asdict(o)} for o in scene.objects],
        "reference": {"width": scene.shape[1], "height": scene.shape[0],
                      "panel_centres": [list(c) for c in panel_centres], "ref_fwhm": scene.ref_fwhm,
                      "description": "reference canvas: H maps its pixels to frame pixels; "
                                     "the truth sky images and star positions are on it"},
        "bands": bands,
    }


def simulate(out_dir: str | os.PathLike[str], *, preset: str = "night", seed: int = 0,
             **overrides: Any) -> Simulation:
    """Simulate an observing run and write its frames and ground truth.

    Parameters
    ----------
    out_dir : path
        Output folder (created; existing files with the same names are replaced).
    preset : str
        ``tiny``, ``night``, ``osc``, ``mosaic``, ``messy`` or ``large``
        (:data:`~skystack.simulate.presets.PRESETS`).
    seed : int
        Everything random derives from it: same seed → identical files.
    **overrides
        Any :class:`~skystack.simulate.presets.Preset` field (``frames``, ``width``,
        ``height``, ``dialect``, ``workers``…); None values are ignored.

    Returns
    -------
    Simulation
        Paths of the frames by type and the :class:`~skystack.simulate.truth.Truth`.
    """
    p = get_preset(preset, **overrides)
    if p.frames < 1 or p.width < 32 or p.height < 32:
        msg = "simulate needs at least 1 frame and frames of at least 32×32 pixels"
        raise ConfigError(msg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cam = _camera(p, seed)
    ref_w = int(round(p.width * (p.panels - p.overlap * (p.panels - 1))))
    ref_shape = (p.height, ref_w)
    step = p.width * (1.0 - p.overlap)
    panel_centres = [((p.width - 1) / 2 + i * step, (p.height - 1) / 2) for i in range(p.panels)]
    scene = make_scene(ref_w, p.height, seed=seed, density_per_mpx=p.star_density,
                       galaxy=p.galaxy, nebula=p.nebula, ref_fwhm=float(np.mean(p.fwhm)),
                       margin=0.4)
    rng = np.random.default_rng((seed, 0x0F71))
    filters = [f for f, _, _ in p.filters]
    dust = _dust_motes(p, rng, filters, p.nights)
    vig_centre = ((p.width - 1) / 2 + 0.03 * p.width, (p.height - 1) / 2 - 0.02 * p.height)
    vig = vignetting(cam.shape, corner_loss=p.vignetting, center=vig_centre) \
        if p.vignetting > 0 else np.ones(cam.shape, np.float32)
    optics = {key: (vig * dust_attenuation(cam.shape, motes)).astype(np.float32)
              for key, motes in dust.items()}
    ctx = _Context(camera=cam, scene=scene, optics=optics, out=out, dust=dust,
                   cosmic_ray_rate=p.cosmic_ray_rate)

    planner, extra = _plan(p, seed, cam, ref_shape, panel_centres)
    jobs = planner.jobs
    _init_worker(ctx)
    if p.workers > 1 and len(jobs) > 1:
        # fork: workers inherit the context (scene, optics) without pickling it.
        mp = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=p.workers, mp_context=mp,
                                 initializer=_init_worker, initargs=(ctx,)) as pool:
            truths = list(pool.map(_render, jobs, chunksize=1))
    else:
        truths = [_render(j) for j in jobs]

    planted = extra["planted_problems"]
    if p.messy:
        planted += _write_junk(out)
    frames = [FrameTruth.from_json(t) for t in truths]
    temps = sorted({*p.dark_temps, p.set_temp})
    for f in frames:
        if f.type in ("light", "dark", "dark_flat") and f.set_temperature is not None:
            f.dark_current = f"truth/dark_current_main_{f.set_temperature:+.1f}C.fits"
        if f.type in ("light", "flat") and f.night:
            key = (_flat_key(f.filter), f.night)
            if key in optics:
                f.flat = f"truth/flat_{key[0]}_{key[1]}.fits"
        f.camera = "main"
    info = _write_truth_images(ctx, p, seed, panel_centres, temps, sorted(optics))
    data = {
        "version": TRUTH_VERSION,
        "generator": "skystack.simulate",
        "preset": p.name,
        "seed": seed,
        "options": asdict(p),
        "units": {"sky": "e-/s/pixel", "flux": "e-/s", "bias_map": "ADU",
                  "dark_current": "e-/s/pixel", "frames": "uint16 ADU (0..65535)"},
        **info,
        "planted_problems": planted,
    }
    truth = Truth(root=out, data=data, frames=frames)
    write_truth(truth)
    sim = Simulation(out_dir=out, truth=truth)
    buckets = {"light": sim.lights, "dark": sim.darks, "flat": sim.flats, "bias": sim.bias,
               "dark_flat": sim.dark_flats}
    for f in frames:
        if not f.master and f.path:
            buckets[f.type].append(out / f.path)
    return sim
