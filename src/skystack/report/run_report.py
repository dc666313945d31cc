"""The run report: one self-contained HTML page (inline SVG and PNG, no network).

It renders only from ``run.json`` (and the link plan for the diagram): the link diagram, doctor
warnings, then per group a table of frames with measurements, weights and why any frame was
rejected, plots of FWHM, noise, background and weight over time, and stretched previews of the
master and its rejection maps.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_report", "stretch", "render_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{font-size:22px} h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;font-size:12px;margin:8px 0} td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left} tr.rej td{background:#fdecea}
.err{color:#b00020} .warn{color:#a15c00} .note{color:#555} .ok{color:#2e7d32} .small{font-size:12px;color:#555}
.previews img{max-width:460px;margin:4px;border:1px solid #ccc} .plots img{max-width:720px}
"""


def stretch(image: np.ndarray, *, target: float = 0.25, shadows: float = -2.8) -> np.ndarray:
    """Auto stretch for display (midtones transfer, like PixInsight's STF): float in [0, 1]."""
    img = np.asarray(image, np.float64)
    if img.ndim == 3:
        # unlinked: each channel on its own median, so the sky comes out neutral (raw OSC data
        # is green-heavy until it is colour-calibrated)
        return np.stack([stretch(c, target=target, shadows=shadows) for c in img], axis=-1)
    finite = img[np.isfinite(img) & (img > 0)]
    if finite.size == 0:
        return np.zeros(img.shape, np.float64)
    med = float(np.median(finite))
    mad = 1.4826 * float(np.median(np.abs(finite - med)))
    c0 = min(max(med + shadows * mad, 0.0), 1.0)
    x = np.clip((img - c0) / max(1 - c0, 1e-12), 0, 1)
    m = np.clip((med - c0) / max(1 - c0, 1e-12), 1e-6, 1 - 1e-6)
    # midtones transfer function chosen so that the median lands at `target`
    mtf = lambda v, mm: ((mm - 1) * v) / ((2 * mm - 1) * v - mm)  # noqa: E731
    mid = mtf(m, target)  # the balance that sends the median to `target`
    return np.nan_to_num(mtf(x, mid), nan=0.0)


def _png(array: np.ndarray, *, cmap: str | None = None, max_side: int = 900) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = np.asarray(array)
    step = max(1, int(np.ceil(max(a.shape[:2]) / max_side)))
    a = a[::step, ::step]
    buf = io.BytesIO()
    if a.ndim == 2:
        top = max(float(np.nanmax(a)), 1e-12)
        plt.imsave(buf, a, cmap=cmap or "gray", origin="upper", vmin=0, vmax=1 if cmap is None else top,
                   format="png")
    else:
        plt.imsave(buf, np.clip(a, 0, 1), origin="upper", format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _plot(records: list[dict[str, Any]], keys: list[tuple[str, str]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(keys), 1, figsize=(7.2, 1.6 * len(keys)), sharex=True)
    axes = np.atleast_1d(axes)
    idx = np.arange(len(records))
    acc = np.array([r.get("accepted", True) for r in records])
    for ax, (key, label) in zip(axes, keys, strict=True):
        vals = np.array([_num(r.get(key)) for r in records], float)
        ax.plot(idx, vals, "-", color="#999", lw=0.8)
        ax.plot(idx[acc], vals[acc], "o", ms=3, color="#1565c0")
        ax.plot(idx[~acc], vals[~acc], "x", ms=5, color="#b00020")
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("frame (in time order)", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return html.escape(str(v))


def render_report(run: dict[str, Any], *, link_fragment: str = "",
                  frames: dict[str, list[dict[str, Any]]] | None = None,
                  previews: dict[str, dict[str, str]] | None = None) -> str:
    """The HTML page from ``run.json`` content, the link-diagram fragment and group frame rows."""
    e = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>skystack report</title>",
             f"<style>{_CSS}</style></head><body>", "<h1>skystack run report</h1>"]
    sw = run.get("software", {})
    parts.append(f"<p class='small'>skystack {e(str(sw.get('skystack')))} · Python "
                 f"{e(str(sw.get('python')))} · inputs: {e(', '.join(run.get('inputs', [])))}</p>")
    # summary
    parts.append("<h2>Masters</h2><table><tr><th class='l'>group</th><th>frames</th>"
                 "<th>noise gain</th><th>√N</th><th>gain / √N</th><th>LN</th>"
                 "<th>rejected low</th><th>rejected high</th><th class='l'>file</th></tr>")
    for g in run.get("groups", []):
        n = g.get("frames", 0)
        parts.append(
            f"<tr><td class='l'>{e(g['name'])}</td><td>{n}</td><td>{_fmt(g.get('noise_gain'))}</td>"
            f"<td>{_fmt(float(np.sqrt(n)) if n else None)}</td>"
            f"<td>{_fmt(g.get('noise_gain_vs_sqrt_n'))}</td><td>{'yes' if g.get('local_normalization') else 'no'}</td>"
            f"<td>{_fmt(g.get('rejected_low_fraction'))}</td><td>{_fmt(g.get('rejected_high_fraction'))}</td>"
            f"<td class='l'>{e(Path(g['output']).name) if g.get('output') else '–'}</td></tr>")
    parts.append("</table>")
    # doctor
    doc = run.get("doctor", [])
    parts.append("<h2>Doctor</h2>")
    if not doc:
        parts.append("<p class='ok'>✔ no problems found before processing</p>")
    else:
        parts.append("<ul>")
        for f in doc:
            cls = {"error": "err", "warning": "warn"}.get(f["severity"], "note")
            parts.append(f"<li class='{cls}'>[{e(f['check'])}] {e(f['message'])}</li>")
        parts.append("</ul>")
    # link diagram
    parts.append("<h2>Calibration links</h2>")
    parts.append(link_fragment or "<p class='small'>(no link diagram)</p>")
    # per group
    previews = previews or {}
    for g in run.get("groups", []):
        parts.append(f"<h2>{e(g['name'])}</h2>")
        rows = (frames or {}).get(g["name"], [])
        if rows:
            parts.append("<table><tr><th class='l'>frame</th><th>weight</th><th>stars</th>"
                         "<th>FWHM</th><th>ecc.</th><th>background</th><th>noise</th><th>SNR</th>"
                         "<th>matched</th><th>RMS px</th><th class='l'>decision</th></tr>")
            for r in rows:
                cls = "" if r.get("accepted") else " class='rej'"
                parts.append(
                    f"<tr{cls}><td class='l'>{e(Path(r['path']).name)}</td><td>{_fmt(r.get('weight'))}</td>"
                    f"<td>{_fmt(r.get('stars'))}</td><td>{_fmt(r.get('fwhm'))}</td>"
                    f"<td>{_fmt(r.get('eccentricity'))}</td><td>{_fmt(r.get('background'))}</td>"
                    f"<td>{_fmt(r.get('noise'))}</td><td>{_fmt(r.get('snr'))}</td>"
                    f"<td>{_fmt(r.get('stars_matched'))}</td><td>{_fmt(r.get('rms_px'))}</td>"
                    f"<td class='l'>{'accepted' if r.get('accepted') else e(str(r.get('reason')))}</td></tr>")
            parts.append("</table>")
            plot = _plot(rows, [("fwhm", "FWHM px"), ("noise", "noise"),
                                ("background", "background"), ("weight", "weight")])
            parts.append(f"<div class='plots'><img alt='measurements over time' src='{plot}'></div>")
        pv = previews.get(g["name"], {})
        if pv:
            parts.append("<div class='previews'>")
            for label, src in pv.items():
                parts.append(f"<figure style='display:inline-block'><img alt='{e(label)}' src='{src}'>"
                             f"<figcaption class='small'>{e(label)}</figcaption></figure>")
            parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out: Path, run: dict[str, Any], plan: Any) -> Path:
    """Write ``OUT/report.html`` for a finished run."""
    from skystack.io import read_image
    from skystack.report import render_link_fragment

    try:
        fragment = render_link_fragment(plan)
    except Exception as err:  # noqa: BLE001 - a broken diagram must not lose the report
        fragment = f"<p class='err'>link diagram failed: {html.escape(str(err))}</p>"
    frames: dict[str, list[dict[str, Any]]] = {}
    previews: dict[str, dict[str, str]] = {}
    for g in run.get("groups", []):
        frames[g["name"]] = g.get("frame_rows", [])
        if g.get("output") and Path(g["output"]).exists():
            try:
                img = read_image(g["output"]).data
                previews[g["name"]] = {"master (auto-stretched)": _png(stretch(img))}
                maps = _maps(Path(g["output"]))
                for name, m in maps.items():
                    previews[g["name"]][name] = _png(m, cmap="magma")
            except Exception as err:  # noqa: BLE001
                previews[g["name"]] = {f"preview failed: {err}": ""}
    page = render_report(run, link_fragment=fragment, frames=frames, previews=previews)
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _maps(path: Path) -> dict[str, np.ndarray]:
    """Rejection maps stored as FITS extensions (or sibling files) of a master."""
    out: dict[str, np.ndarray] = {}
    if path.suffix.lower() in (".fits", ".fit", ".fts"):
        from astropy.io import fits

        with fits.open(path) as hdul:
            for hdu in hdul[1:]:
                name = (hdu.name or "").upper()
                if name in ("REJ_LOW", "REJ_HIGH") and hdu.data is not None:
                    d = np.asarray(hdu.data, float)
                    out[f"rejection map {name[4:].lower()}"] = d if d.ndim == 2 else d.sum(axis=0)
    return out
