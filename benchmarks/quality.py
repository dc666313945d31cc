"""Quality of an integrated master against the simulator's truth — one measuring stick for all.

Every tool's master is measured the same way, with skystack's own star detector
(:func:`skystack.stars.detect_and_measure`) and the truth of :func:`skystack.simulate.load_truth`:

grid
    The master lies on the pixel grid of the tool's registration reference. We find which light
    that is by projecting the truth catalogue through each light's H and keeping the one whose
    projected stars fall on the detected stars (most matches within 2 px).
photometric scale s
    Median of (measured flux / truth flux) over bright matched stars: master units per e⁻/s.
    Noise, dust and trail levels are compared after dividing by s, so units and normalization
    choices (ADU, [0, 1], pedestal) cancel.
noise gain
    (σ/s of one light) / (σ/s of the master), σ = background noise (MAD-σ of the image minus
    s × the truth's stars and objects and minus its mesh background, detected stars masked:
    faint stars below the detection limit would otherwise count as noise that does not average
    down). The light is the clearest one (highest transparency) as the
    tool registered it: resampling spreads pixel noise over neighbours and lowers the per-pixel
    σ by an amount that depends on the kernel, so the light and the master must share it.
    Ideal ≈ √N for N equal frames (less with hazy frames in an unweighted stack). JSON also has
    ``noise_gain_blocks``: the same with the calibrated (unregistered) light and σ of 4×4 block
    means ×4 (kernel-neutral, but faint unresolved stars in the deep master pull it down).
position RMS
    RMS distance between detected stars (SNR ≥ 20, unsaturated) and the truth positions on the
    master's grid; the mean offset is reported too (a shift of the whole master).
FWHM ratio
    Median FWHM of the master's stars / that of the sharpest raw light (same detector).
dust residual
    Every dust mote of the truth flat, carried into the master grid (H_ref · H_j⁻¹ for each
    light j, averaged per pier side): |median inside 0.9 R − median of the 1.3–1.8 R annulus|
    as % of the sky level (s · sky rate / transparency of the reference); worst mote. The
    floor is the same measure at four dust-free offsets (what noise and the mismatch of the
    truth's extended-object model alone give).
trail residual
    Mean excess over the local background on the satellite-trail pixels (truth masks carried
    into the master grid), in units of the master's per-pixel noise.
background flatness
    RMS of the master's mesh background after removing a plane and the truth's extended
    objects (scaled by s), as % of the sky level.
photometric ratio / scatter
    s(master) / s(the tool's calibrated clearest light): the master's flux scale in units of a
    clear frame's (below 1 when the stack was normalized to a hazier reference, or when stars
    lost flux); and the robust scatter of measured/truth flux over bright stars (%).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: pixels ignored at each edge (registration borders differ between tools)
BORDER = 64


@dataclass
class Quality:
    """Quality figures of one master (NaN when a figure could not be measured)."""

    reference: str = ""
    frames: int = 0
    stars_matched: int = 0
    noise_gain: float = math.nan
    noise_gain_ideal: float = math.nan
    noise_gain_blocks: float = math.nan
    position_rms_px: float = math.nan
    position_offset_px: float = math.nan
    fwhm_ratio: float = math.nan
    dust_residual_pct: float = math.nan
    dust_floor_pct: float = math.nan
    trail_residual_sigma: float = math.nan
    flatness_pct: float = math.nan
    photometric_ratio: float = math.nan
    photometric_scatter_pct: float = math.nan
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """Plain dict (NaN → None)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}


# --- small helpers ---------------------------------------------------------------------------

def load(path: str | Path) -> NDArray[np.float32]:
    """A mono image as float32 in [0, 1]-like units (ADU data divided by 65535, NaN → 0)."""
    from skystack.io import read_image

    data = np.asarray(read_image(path).data, np.float32)
    if data.ndim == 3:
        data = data.mean(axis=0)
    data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    if float(np.percentile(data, 99.9)) > 4.0:  # ADU-valued float files (ccdproc writes these)
        data = data / np.float32(65535.0)
    return data


def project(H: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray, NDArray]:
    """Apply a 3×3 homography to points."""
    w = H[2, 0] * x + H[2, 1] * y + H[2, 2]
    return (H[0, 0] * x + H[0, 1] * y + H[0, 2]) / w, (H[1, 0] * x + H[1, 1] * y + H[1, 2]) / w


def _match(x1: NDArray, y1: NDArray, x2: NDArray, y2: NDArray,
           radius: float) -> tuple[NDArray, NDArray]:
    """Nearest-neighbour pairs (i in set 1, j in set 2) closer than ``radius``."""
    from scipy.spatial import cKDTree

    if len(x1) == 0 or len(x2) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    d, j = cKDTree(np.c_[x2, y2]).query(np.c_[x1, y1], distance_upper_bound=radius)
    ok = np.isfinite(d)
    return np.nonzero(ok)[0], j[ok]


def _inside(x: NDArray, y: NDArray, shape: tuple[int, int], border: int = BORDER) -> NDArray:
    h, w = shape
    return (x >= border) & (x < w - border) & (y >= border) & (y < h - border)


@dataclass
class _Measured:
    """One image measured against the truth on one light's grid."""

    index: int
    matched: int
    s: float
    scatter: float
    rms: float
    offset: float
    fwhm: float
    sigma: float          # noise of 4×4 block means (immune to interpolation smoothing)
    sigma_px: float       # per-pixel noise
    resid: NDArray[np.float32]
    star_mask: NDArray[np.bool_]


class Stick:
    """The measuring stick of one simulated dataset (truth loaded once)."""

    def __init__(self, root: str | Path) -> None:
        from skystack.simulate import load_truth

        self.truth = load_truth(root)
        self.lights = self.truth.lights()
        self.band = self.lights[0].filter or "L"
        cat = self.truth.stars()
        self.sx, self.sy = cat["x"], cat["y"]
        self.sflux = cat.get(f"flux_{self.band}", next(v for k, v in cat.items()
                                                      if k.startswith("flux_")))
        self.H = [np.asarray(f.H, float) for f in self.lights]
        self._astro: NDArray[np.float32] | None = None
        self._best_fwhm: float | None = None

    # -- pieces ----------------------------------------------------------------------------
    def astro(self) -> NDArray[np.float32]:
        """Noiseless stars + extended objects on the reference canvas (e⁻/s)."""
        if self._astro is None:
            self._astro = np.asarray(self.truth.sky(self.band), np.float32)
        return self._astro

    def light_index(self, path: str | Path) -> int | None:
        """Index of the light a (calibrated) file comes from, by its DATE-OBS."""
        from skystack.io import read_header

        try:
            hdr = read_header(path)
            date = str(hdr.get("DATE-OBS", "") if hasattr(hdr, "get") else "")
        except Exception:  # noqa: BLE001 - an unreadable header just means "unknown"
            return None
        date = date.strip()[:19]
        for i, f in enumerate(self.lights):
            if f.date_obs and f.date_obs[:19] == date:
                return i
        return None

    def clearest(self) -> int:
        """The light used as "a single calibrated frame": highest transparency, then sharpest."""
        return int(min(range(len(self.lights)),
                       key=lambda i: (-(self.lights[i].transparency or 1.0),
                                      self.lights[i].fwhm or 0.0)))

    def best_single_fwhm(self) -> float:
        """Median FWHM of the sharpest raw light (lowest truth FWHM), same detector."""
        if self._best_fwhm is None:
            i = int(np.argmin([f.fwhm or np.inf for f in self.lights]))
            img = load(self.truth.path(self.lights[i].path or ""))
            self._best_fwhm = _median_fwhm(_detect(img)[0])
        return self._best_fwhm

    def find_grid(self, cat: Any, shape: tuple[int, int]) -> tuple[int, int]:
        """(light index, matches) whose truth grid the detected stars sit on."""
        order = np.argsort(-cat.flux)[:400]
        best = (-1, 0)
        for i, H in enumerate(self.H):
            px, py = project(H, self.sx, self.sy)
            ok = _inside(px, py, shape, 8)
            a, _ = _match(cat.x[order], cat.y[order], px[ok], py[ok], 2.0)
            if len(a) > best[1]:
                best = (i, len(a))
        return best

    def measure(self, img: NDArray[np.float32], index: int | None = None) -> _Measured:
        """Stars, flux scale, noise and residual image of ``img`` on light ``index``'s grid."""
        cat, bkg, resid = _detect(img)
        shape = img.shape
        matched = 0
        if index is None:
            index, matched = self.find_grid(cat, shape)
        H = self.H[index]
        px, py = project(H, self.sx, self.sy)
        keep = _inside(px, py, shape)
        good = (cat.snr >= 20) & ~cat.saturated & _inside(cat.x, cat.y, shape)
        gi = np.nonzero(good)[0]
        ki = np.nonzero(keep)[0]
        a, b = _match(cat.x[gi], cat.y[gi], px[ki], py[ki], 1.5)
        a, b = gi[a], ki[b]
        dx, dy = cat.x[a] - px[b], cat.y[a] - py[b]
        ratio = cat.flux[a] / np.maximum(self.sflux[b], 1e-9)
        bright = cat.snr[a] >= 50
        r = ratio[bright] if bright.sum() >= 20 else ratio
        s = float(np.median(r)) if len(r) else math.nan
        scatter = float(1.4826 * np.median(np.abs(r - s)) / s) if len(r) else math.nan
        mask = _star_mask(resid, cat, bkg.median_rms)
        core = np.zeros(shape, bool)
        core[BORDER:-BORDER, BORDER:-BORDER] = True
        v = resid[core & ~mask]
        sigma_px = float(1.4826 * np.median(np.abs(v - np.median(v))))
        sigma = _binned_sigma(resid, core & ~mask)
        fw = cat.fwhm[a][cat.fitted[a]] if cat.fitted[a].sum() >= 20 else cat.fwhm[a]
        return _Measured(index, max(matched, len(a)), s, scatter,
                         float(np.sqrt(np.mean(dx**2 + dy**2))) if len(a) else math.nan,
                         float(np.hypot(np.mean(dx), np.mean(dy))) if len(a) else math.nan,
                         float(np.median(fw)) if len(fw) else math.nan, sigma, sigma_px, resid,
                         mask)

    def model_on_grid(self, index: int, shape: tuple[int, int]) -> NDArray[np.float32]:
        """Truth stars + objects (e⁻/s) resampled onto light ``index``'s grid."""
        from scipy.ndimage import map_coordinates

        Hinv = np.linalg.inv(self.H[index])
        yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
        cx, cy = project(Hinv, xx.ravel(), yy.ravel())
        out = map_coordinates(self.astro(), [cy, cx], order=1, mode="constant", cval=0.0)
        return out.reshape(shape).astype(np.float32)

    def sky_level(self, index: int, s: float) -> float:
        """Sky level of the reference light in master units (s · rate / transparency)."""
        f = self.lights[index]
        a = (f.sky or {}).get(self.band, [math.nan])[0]
        return float(s * a / (f.transparency or 1.0))

    # -- the whole measurement ---------------------------------------------------------------
    def evaluate(self, master: str | Path, *, calibrated: list[Path] | None = None,
                 registered: list[Path] | None = None, frames: int | None = None) -> Quality:
        """Measure one master against the tool's own calibrated and registered lights."""
        q = Quality(frames=frames or len(self.lights))
        q.noise_gain_ideal = math.sqrt(q.frames)
        img = load(master)
        m = self.measure(img)
        q.reference = Path(self.lights[m.index].path or "").name
        q.stars_matched = m.matched
        q.position_rms_px, q.position_offset_px = m.rms, m.offset
        q.photometric_scatter_pct = 100 * m.scatter
        q.fwhm_ratio = m.fwhm / self.best_single_fwhm()
        if m.matched < 20 or not math.isfinite(m.s):
            q.note = "master does not match the truth grid of any light"
            return q
        k = self.clearest()
        single = next((p for p in calibrated or [] if self.light_index(p) == k), None)
        if single is not None:
            ms = self.measure(load(single), k)
            q.noise_gain_blocks = (ms.sigma / ms.s) / (m.sigma / m.s)
            q.photometric_ratio = m.s / ms.s
        else:
            q.note = "the tool's calibrated clearest light was not found"
        if k == m.index:  # the reference is not resampled: its calibrated file is the one
            reg = single
        else:
            reg = next((p for p in registered or [] if self.light_index(p) == k), None)
        model = self.model_on_grid(m.index, img.shape)
        if reg is not None:
            rimg = load(reg)
            mr = self.measure(rimg, m.index)
            if mr.matched < m.matched // 4:  # not on the master's grid: no fair comparison
                q.note = f"{Path(reg).name} is not on the master's grid: no noise gain"
                return self._rest(q, img, m, model)
            # faint stars below the detection limit add "noise" that does not average down;
            # the truth model removes them (and the galaxy) before σ is taken
            mask = m.star_mask | mr.star_mask
            q.noise_gain = (_model_sigma(rimg, model, mr.s, mask) / mr.s) / \
                (_model_sigma(img, model, m.s, mask) / m.s)
        return self._rest(q, img, m, model)

    def _rest(self, q: Quality, img: NDArray[np.float32], m: _Measured,
              model: NDArray[np.float32]) -> Quality:
        """Dust, trail and flatness figures (need the truth model on the master's grid)."""
        resid = img - m.s * model
        sky = self.sky_level(m.index, m.s)
        q.dust_residual_pct = 100 * self._dust(resid, m, sky)
        # the same measure where there is no dust: what model mismatch and noise alone give
        q.dust_floor_pct = 100 * float(np.median([self._dust(resid, m, sky, d) for d in
                                                  ((300, 200), (-250, 150), (200, -300),
                                                   (-300, -250))]))
        q.trail_residual_sigma = self._trails(resid, m)
        q.flatness_pct = 100 * _flatness(resid, m.star_mask) / sky
        return q

    def _dust(self, resid: NDArray[np.float32], m: _Measured, sky: float,
              shift: tuple[float, float] = (0.0, 0.0)) -> float:
        flats = [f for f in self.truth.data.get("flats", [])
                 if f.get("filter") == self.lights[m.index].filter]
        if not flats:
            return math.nan
        Href = self.H[m.index]
        h, w = resid.shape
        yy, xx = np.mgrid[0:h, 0:w]
        worst = 0.0
        for mote in flats[0].get("dust", []):
            sides: dict[str, list[tuple[float, float]]] = {}
            for f, H in zip(self.lights, self.H):
                M = Href @ np.linalg.inv(H)
                qx, qy = project(M, np.array([mote["x"] + shift[0]]),
                                 np.array([mote["y"] + shift[1]]))
                sides.setdefault(f.pier_side or "", []).append((float(qx[0]), float(qy[0])))
            R = float(mote["radius"])
            for pts in sides.values():
                cx, cy = np.mean(pts, axis=0)
                if not (BORDER + 1.8 * R <= cx < w - BORDER - 1.8 * R
                        and BORDER + 1.8 * R <= cy < h - BORDER - 1.8 * R):
                    continue
                y0, y1 = int(cy - 1.9 * R), int(cy + 1.9 * R) + 1
                x0, x1 = int(cx - 1.9 * R), int(cx + 1.9 * R) + 1
                d = np.hypot(xx[y0:y1, x0:x1] - cx, yy[y0:y1, x0:x1] - cy)
                sub, msk = resid[y0:y1, x0:x1], ~m.star_mask[y0:y1, x0:x1]
                inner = sub[(d <= 0.9 * R) & msk]
                ring = sub[(d >= 1.3 * R) & (d <= 1.8 * R) & msk]
                if inner.size > 50 and ring.size > 50:
                    worst = max(worst, abs(float(np.median(inner) - np.median(ring))) / sky)
        return worst

    def _trails(self, resid: NDArray[np.float32], m: _Measured) -> float:
        from scipy.ndimage import binary_dilation, map_coordinates

        h, w = resid.shape
        on = np.zeros((h, w), bool)
        Hinv_ref = np.linalg.inv(self.H[m.index])
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        for f, H in zip(self.lights, self.H):
            if not f.trail_mask:
                continue
            tm = self.truth.image(f.trail_mask)
            fx, fy = project(H @ Hinv_ref, xx.ravel(), yy.ravel())
            on |= map_coordinates(tm, [fy, fx], order=0, mode="constant",
                                  cval=0.0).reshape(h, w) > 0.5
        if not on.any():
            return math.nan
        near = binary_dilation(on, iterations=12) & ~binary_dilation(on, iterations=4)
        core = np.zeros((h, w), bool)
        core[BORDER:-BORDER, BORDER:-BORDER] = True
        use = core & ~m.star_mask
        a, b = resid[on & use], resid[near & use]
        if a.size < 50 or b.size < 50:
            return math.nan
        return float((np.mean(_clip(a)) - np.median(b)) / m.sigma_px)


def _model_sigma(img: NDArray[np.float32], model: NDArray[np.float32], s: float,
                 mask: NDArray[np.bool_]) -> float:
    """Per-pixel background noise of ``img − s·model`` minus its mesh background (core, unmasked)."""
    from skystack.stars import estimate_background

    r = (img - np.float32(s) * model).astype(np.float32)
    r -= estimate_background(r).level_map()
    core = np.zeros(r.shape, bool)
    core[BORDER:-BORDER, BORDER:-BORDER] = True
    v = r[core & ~mask]
    return float(1.4826 * np.median(np.abs(v - np.median(v))))


def _binned_sigma(resid: NDArray[np.float32], use: NDArray[np.bool_], b: int = 4) -> float:
    """Noise of b×b block means scaled back to one pixel (σ_block · b).

    Resampling spreads each pixel's noise over its neighbours, which lowers the per-pixel σ of
    every registered stack by an amount that depends on the kernel; block means of clean blocks
    keep the noise power, so ratios of this σ compare tools fairly.
    """
    h, w = (resid.shape[0] // b) * b, (resid.shape[1] // b) * b
    blk = resid[:h, :w].reshape(h // b, b, w // b, b).mean(axis=(1, 3))
    clean = use[:h, :w].reshape(h // b, b, w // b, b).all(axis=(1, 3))
    v = blk[clean]
    if v.size < 100:
        return math.nan
    return float(1.4826 * np.median(np.abs(v - np.median(v))) * b)


def _clip(v: NDArray, k: float = 5.0) -> NDArray:
    """Drop the few pixels beyond k robust σ (stars the mask missed), keep faint residue."""
    med = np.median(v)
    sig = 1.4826 * np.median(np.abs(v - med)) + 1e-12
    return v[np.abs(v - med) < k * sig]


def _detect(img: NDArray[np.float32]) -> tuple[Any, Any, NDArray[np.float32]]:
    from skystack.stars import DetectionConfig, detect_and_measure

    return detect_and_measure(np.ascontiguousarray(img, np.float32),
                              config=DetectionConfig(max_fit=600))


def _median_fwhm(cat: Any) -> float:
    good = (cat.snr >= 20) & ~cat.saturated & cat.fitted
    return float(np.median(cat.fwhm[good])) if good.any() else float(np.median(cat.fwhm))


def _star_mask(resid: NDArray[np.float32], cat: Any, rms: float) -> NDArray[np.bool_]:
    """Pixels above 3σ and around every detected star (radius ∝ √flux)."""
    from scipy.ndimage import binary_dilation

    mask = binary_dilation(resid > 3 * rms, iterations=2)
    h, w = resid.shape
    r = np.clip(2.5 * np.nan_to_num(cat.fwhm, nan=3.0), 4, 25).astype(int)
    for x, y, rr in zip(np.rint(cat.x).astype(int), np.rint(cat.y).astype(int), r):
        mask[max(0, y - rr):y + rr + 1, max(0, x - rr):x + rr + 1] = True
    return mask


def _flatness(resid: NDArray[np.float32], star_mask: NDArray[np.bool_], mesh: int = 64) -> float:
    """RMS of block medians (stars masked) around their best-fitting plane."""
    h, w = resid.shape
    vals, xs, ys = [], [], []
    for y0 in range(BORDER, h - BORDER - mesh + 1, mesh):
        for x0 in range(BORDER, w - BORDER - mesh + 1, mesh):
            blk = resid[y0:y0 + mesh, x0:x0 + mesh][~star_mask[y0:y0 + mesh, x0:x0 + mesh]]
            if blk.size > mesh * mesh // 4:
                vals.append(float(np.median(blk)))
                xs.append(x0 + mesh / 2)
                ys.append(y0 + mesh / 2)
    if len(vals) < 6:
        return math.nan
    A = np.c_[np.ones(len(xs)), xs, ys]
    v = np.asarray(vals)
    coef, *_ = np.linalg.lstsq(A, v, rcond=None)
    return float(np.sqrt(np.mean((v - A @ coef) ** 2)))
