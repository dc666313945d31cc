"""Star matching and transform fitting: triangle descriptors, hypothesis voting, refit.

The core works on star lists only (``(N, 2)`` arrays of x, y pixel positions, brightest first),
so it is independent of the detector. Steps:

1. Triangles from each of the brightest stars and pairs of its nearest neighbours. Each triangle
   is described by its side ratios ``(L1/L0, L2/L0)`` (sides sorted longest first) — invariant to
   shift, rotation, scale and mirroring.
2. Triangles of the frame and the reference with close descriptors are paired through a KD-tree.
   Every pair proposes a similarity transform (with a reflection when the two triangles have
   opposite orientation). Hypotheses are scored by how many reference stars land on a frame
   star; when there are too many, a seeded random subset is scored (RANSAC).
3. The best hypotheses are grown: match every star within a tolerance, refit, repeat; then clip
   outliers and refit the requested model (shift, similarity, affine or projective) on all
   matched stars.

The result ``H`` maps reference pixels to frame pixels (``design.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

from skystack.errors import ConfigError

__all__ = [
    "MODELS",
    "Model",
    "MatchConfig",
    "Transform",
    "FailedRegistration",
    "find_transform",
    "fit_model",
    "apply_h",
]

Model = Literal["shift", "similarity", "affine", "projective"]
MODELS: tuple[str, ...] = ("shift", "similarity", "affine", "projective")
#: Fewest point pairs that determine each model.
_MIN_POINTS = {"shift": 1, "similarity": 2, "affine": 3, "projective": 4}


@dataclass(frozen=True)
class MatchConfig:
    """Options of :func:`find_transform`.

    Attributes
    ----------
    max_stars : int
        Brightest stars of each list used to build triangles.
    neighbours : int
        Nearest neighbours per star that form its triangles.
    descriptor_tol : float
        Radius in descriptor space (side ratios) for pairing triangles.
    max_hypotheses : int
        More triangle pairs than this are sub-sampled with the seeded rng.
    hypothesis_tol_px : float
        Distance (frame pixels) within which a predicted star counts as matched while growing.
    min_tol_px : float
        Floor of the final matching tolerance.
    clip_sigma : float
        Final outlier clip, in robust standard deviations of the residuals.
    min_matches : int
        Fewest matched stars accepted (raised to the model's minimum when lower).
    refine_candidates : int
        Best-scoring hypotheses that are grown and compared.
    fit_stars : int
        Brightest stars of each list used for the final refit.
    scale_range : tuple of float
        Accepted frame/reference scale (binning differences are factors of 2, 3, 4).
    max_chance : float
        Largest accepted probability that the matches are chance coincidences (a Poisson model
        of star density × matching area, times the number of hypotheses tried).
    """

    max_stars: int = 80
    neighbours: int = 6
    descriptor_tol: float = 0.012
    max_hypotheses: int = 3000
    hypothesis_tol_px: float = 3.0
    min_tol_px: float = 0.75
    clip_sigma: float = 4.0
    min_matches: int = 6
    refine_candidates: int = 6
    fit_stars: int = 2000
    scale_range: tuple[float, float] = (0.2, 5.0)
    max_chance: float = 1e-3


@dataclass(frozen=True)
class Transform:
    """A successful registration: ``H`` maps reference pixels to frame pixels.

    Attributes
    ----------
    H : ndarray, shape (3, 3)
        ``[x_frame, y_frame, 1]ᵀ ∝ H · [x_ref, y_ref, 1]ᵀ``, normalized so ``H[2, 2] == 1``.
    model : str
        The fitted model: the one requested, or a simpler one when too few stars matched to
        constrain it (affine needs 10 pairs, projective 16).
    stars_matched : int
        Star pairs used in the final fit.
    rms_px : float
        RMS residual of those pairs, in reference pixels.
    inliers : ndarray of int, shape (n, 2)
        ``(reference index, frame index)`` of every matched pair, indices into the lists given.
    """

    H: NDArray[np.float64]
    model: str
    stars_matched: int
    rms_px: float
    inliers: NDArray[np.intp] = field(repr=False)

    def __bool__(self) -> bool:
        return True

    def apply(self, ref_xy: ArrayLike) -> NDArray[np.float64]:
        """Map reference pixel positions to frame pixel positions."""
        return apply_h(self.H, ref_xy)


@dataclass(frozen=True)
class FailedRegistration:
    """A registration that did not succeed; falsy, with the reason in plain words."""

    reason: str
    stars_matched: int = 0

    def __bool__(self) -> bool:
        return False


def apply_h(H: ArrayLike, xy: ArrayLike) -> NDArray[np.float64]:
    """Apply a 3×3 projective transform to ``(N, 2)`` points."""
    h = np.asarray(H, dtype=np.float64)
    p = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    w = p[:, 0] * h[2, 0] + p[:, 1] * h[2, 1] + h[2, 2]
    x = (p[:, 0] * h[0, 0] + p[:, 1] * h[0, 1] + h[0, 2]) / w
    y = (p[:, 0] * h[1, 0] + p[:, 1] * h[1, 1] + h[1, 2]) / w
    return np.column_stack([x, y])


# ----------------------------------------------------------------------------- model fitting


def _normalizer(p: NDArray[np.float64]) -> NDArray[np.float64]:
    """Similarity that moves points to their centroid with mean distance √2 (conditioning)."""
    c = p.mean(axis=0)
    s = np.sqrt(2.0) / max(float(np.mean(np.hypot(*(p - c).T))), 1e-12)
    return np.array([[s, 0.0, -s * c[0]], [0.0, s, -s * c[1]], [0.0, 0.0, 1.0]])


def _fit_similarity(src: NDArray[np.float64], dst: NDArray[np.float64],
                    weights: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    # Least squares in complex numbers: dst = a·src + b (proper) or a·conj(src) + b (mirrored);
    # keep whichever fits better, so a flipped frame needs no special case.
    zs = src[:, 0] + 1j * src[:, 1]
    zd = dst[:, 0] + 1j * dst[:, 1]
    wt = np.ones(len(zs)) if weights is None else weights
    best = None
    for mirror in (False, True):
        z = np.conj(zs) if mirror else zs
        zm, dm = np.average(z, weights=wt), np.average(zd, weights=wt)
        zc, dc = z - zm, zd - dm
        den = float(np.sum(wt * np.abs(zc) ** 2))
        a = complex(np.sum(wt * np.conj(zc) * dc) / den) if den > 0 else 1.0 + 0j
        b = dm - a * zm
        cost = float(np.sum(wt * np.abs(a * z + b - zd) ** 2))
        if best is None or cost < best[0] - 1e-12:
            best = (cost, mirror, a, b)
    assert best is not None
    _, mirror, a, b = best
    sign = -1.0 if mirror else 1.0
    return np.array(
        [[a.real, -a.imag * sign, b.real], [a.imag, a.real * sign, b.imag], [0.0, 0.0, 1.0]]
    )


def _fit_affine(src: NDArray[np.float64], dst: NDArray[np.float64],
                weights: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    ts, td = _normalizer(src), _normalizer(dst)
    s = apply_h(ts, src)
    d = apply_h(td, dst)
    a = np.column_stack([s, np.ones(len(s))])
    sw = np.ones(len(s)) if weights is None else np.sqrt(weights)
    coef = np.linalg.solve((a * sw[:, None]).T @ (a * sw[:, None]), (a * sw[:, None]).T @ (d * sw[:, None]))
    hn = np.eye(3)
    hn[:2, :] = coef.T
    return np.linalg.solve(td, hn @ ts)


def _fit_projective(src: NDArray[np.float64], dst: NDArray[np.float64],
                    weights: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    # Normalized DLT for a start, then Gauss-Newton on the geometric (frame-pixel) error, which
    # is what the residuals and the registration accuracy are measured in.
    ts, td = _normalizer(src), _normalizer(dst)
    s = apply_h(ts, src)
    d = apply_h(td, dst)
    n = len(s)
    x, y, u, v = s[:, 0], s[:, 1], d[:, 0], d[:, 1]
    z, o = np.zeros(n), np.ones(n)
    a = np.empty((2 * n, 9))
    a[0::2] = np.column_stack([x, y, o, z, z, z, -u * x, -u * y, -u])
    a[1::2] = np.column_stack([z, z, z, x, y, o, -v * x, -v * y, -v])
    # smallest eigenvector of AᵀA (9×9) = last right singular vector of A; far cheaper than an
    # SVD of the 2N×9 matrix, and well conditioned after the normalization above
    sw = np.ones(n) if weights is None else np.sqrt(weights)
    sw2 = np.repeat(sw, 2)
    _, vecs = np.linalg.eigh((a * sw2[:, None]).T @ (a * sw2[:, None]))
    hn = vecs[:, 0].reshape(3, 3)
    if abs(hn[2, 2]) < 1e-12:
        return _fit_affine(src, dst, weights)
    hn = hn / hn[2, 2]
    p = hn.ravel()[:8].copy()
    for _ in range(8):
        w = p[6] * x + p[7] * y + 1.0
        pu = (p[0] * x + p[1] * y + p[2]) / w
        pv = (p[3] * x + p[4] * y + p[5]) / w
        swc = np.concatenate([sw, sw])
        r = np.concatenate([pu - u, pv - v]) * swc
        j = np.zeros((2 * n, 8))
        j[:n, 0], j[:n, 1], j[:n, 2] = x / w, y / w, 1.0 / w
        j[:n, 6], j[:n, 7] = -pu * x / w, -pu * y / w
        j[n:, 3], j[n:, 4], j[n:, 5] = x / w, y / w, 1.0 / w
        j[n:, 6], j[n:, 7] = -pv * x / w, -pv * y / w
        j *= swc[:, None]
        try:
            step = np.linalg.solve(j.T @ j, -(j.T @ r))
        except np.linalg.LinAlgError:
            break
        p += step
        if np.max(np.abs(step)) < 1e-13:
            break
    hn = np.append(p, 1.0).reshape(3, 3)
    return np.linalg.solve(td, hn @ ts)


def fit_model(src: ArrayLike, dst: ArrayLike, model: str = "projective", *,
              weights: ArrayLike | None = None) -> NDArray[np.float64]:
    """Least-squares transform of ``model`` mapping ``src`` points onto ``dst`` points.

    Parameters
    ----------
    src, dst : array_like, shape (N, 2)
        Corresponding positions (reference and frame pixels for a registration ``H``).
    model : {"shift", "similarity", "affine", "projective"}
        Similarity allows a reflection (mirror flip) when it fits better.
    weights : array_like, shape (N,), optional
        Relative weights of the pairs (e.g. from star brightness: bright stars have precise
        centroids); equal weights when omitted.

    Returns
    -------
    ndarray, shape (3, 3)
        ``H`` with ``H[2, 2] == 1``.
    """
    s = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    d = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if model not in _MIN_POINTS:
        raise ConfigError(_unknown_model(model))
    if len(s) < _MIN_POINTS[model] or len(s) != len(d):
        raise ValueError(f"{model} needs at least {_MIN_POINTS[model]} point pairs, got {len(s)}")
    w = None if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if model == "shift":
        h = np.eye(3)
        h[:2, 2] = np.average(d - s, axis=0, weights=w)
    elif model == "similarity":
        h = _fit_similarity(s, d, w)
    elif model == "affine":
        h = _fit_affine(s, d, w)
    else:
        h = _fit_projective(s, d, w)
    return h / h[2, 2]


# ----------------------------------------------------------------------------- descriptors


def _triangles(
    xy: NDArray[np.float64], neighbours: int
) -> tuple[NDArray[np.float64], NDArray[np.intp], NDArray[np.float64]]:
    """Triangles of each star with pairs of its nearest neighbours.

    Returns descriptors ``(T, 2)``, vertex indices ``(T, 3)`` ordered as the vertices opposite the
    longest, middle and shortest side, and the signed orientation (+1/-1) of that vertex order.
    """
    n = len(xy)
    if n < 3:
        return np.empty((0, 2)), np.empty((0, 3), dtype=np.intp), np.empty(0)
    k = min(neighbours + 1, n)
    _, nn = cKDTree(xy).query(xy, k=k)
    a_idx, b_idx = np.triu_indices(k - 1, k=1)
    tri = np.column_stack(
        [np.repeat(np.arange(n), len(a_idx)), nn[:, 1:][:, a_idx].ravel(),
         nn[:, 1:][:, b_idx].ravel()]
    )
    tri = np.unique(np.sort(tri, axis=1), axis=0)
    p = xy[tri]  # (T, 3, 2)
    # side i is opposite vertex i
    sides = np.stack(
        [
            np.hypot(*(p[:, 1] - p[:, 2]).T),
            np.hypot(*(p[:, 2] - p[:, 0]).T),
            np.hypot(*(p[:, 0] - p[:, 1]).T),
        ],
        axis=1,
    )
    order = np.argsort(-sides, axis=1)
    ls = np.take_along_axis(sides, order, axis=1)
    verts = np.take_along_axis(tri, order, axis=1)
    # Drop near-degenerate and tiny triangles: their vertex order or shape is noise.
    good = (ls[:, 2] > 2.0) & (ls[:, 2] / ls[:, 0] > 0.08) & (ls[:, 0] - ls[:, 1] > 1e-3 * ls[:, 0])
    ls, verts = ls[good], verts[good]
    desc = np.column_stack([ls[:, 1] / ls[:, 0], ls[:, 2] / ls[:, 0]])
    q = xy[verts]
    cross = (q[:, 1, 0] - q[:, 0, 0]) * (q[:, 2, 1] - q[:, 0, 1]) - (
        q[:, 1, 1] - q[:, 0, 1]
    ) * (q[:, 2, 0] - q[:, 0, 0])
    return desc, verts, np.sign(cross)


def _similarity_batch(
    src: NDArray[np.float64], dst: NDArray[np.float64], mirror: NDArray[np.bool_]
) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
    """Similarity ``dst ≈ a·s + b`` for many 3-point sets; ``s = conj(src)`` where mirrored."""
    zs = src[..., 0] + 1j * src[..., 1]
    zs = np.where(mirror[:, None], np.conj(zs), zs)
    zd = dst[..., 0] + 1j * dst[..., 1]
    zc = zs - zs.mean(axis=1, keepdims=True)
    dc = zd - zd.mean(axis=1, keepdims=True)
    a = np.sum(np.conj(zc) * dc, axis=1) / np.maximum(np.sum(np.abs(zc) ** 2, axis=1), 1e-12)
    b = zd.mean(axis=1) - a * zs.mean(axis=1)
    return a, b


# ----------------------------------------------------------------------------- matching


def _pairs_within(
    h: NDArray[np.float64], ref: NDArray[np.float64], tree: cKDTree, tol: float
) -> NDArray[np.intp]:
    """One-to-one (ref, frame) pairs whose predicted position lies within ``tol`` frame px."""
    pred = apply_h(h, ref)
    finite = np.all(np.isfinite(pred), axis=1)
    d = np.full(len(ref), np.inf)
    j = np.full(len(ref), -1, dtype=np.intp)
    if finite.any():
        d[finite], j[finite] = tree.query(pred[finite], distance_upper_bound=tol)
    ok = np.isfinite(d)
    i = np.flatnonzero(ok)
    j, d = j[ok], d[ok]
    # keep the closest reference star for each frame star
    order = np.lexsort((d, j))
    i, j = i[order], j[order]
    first = np.ones(len(j), dtype=bool)
    first[1:] = j[1:] != j[:-1]
    return np.column_stack([i[first], j[first]])


def _rms(
    h: NDArray[np.float64], ref: NDArray[np.float64], frm: NDArray[np.float64]
) -> NDArray[np.float64]:
    return np.hypot(*(apply_h(h, ref) - frm).T)


def _tolerance(resid: NDArray[np.float64], cfg: MatchConfig) -> float:
    """Matching radius from residual distances: ``clip_sigma`` σ within the configured bounds."""
    sigma = float(np.median(resid)) / 1.1774  # median of a 2-D Gaussian's radius ≈ 1.177σ
    return min(cfg.hypothesis_tol_px, max(cfg.min_tol_px, cfg.clip_sigma * sigma))


def _chance_probability(
    h: NDArray[np.float64], ref: NDArray[np.float64], frm: NDArray[np.float64], n: int,
    tol: float, trials: int,
) -> tuple[float, float]:
    """Probability that ``n`` matches arise by chance, and the expected chance matches.

    Beyond the 3 stars of its seed triangle, a wrong hypothesis collects a Poisson number of
    coincidences: (reference stars landing in the frame) × (frame star density) × π tol².
    ``trials`` hypotheses were tried, so the probability is multiplied by it.
    """
    # Poisson P(X >= k) = P(k, lam), the regularized incomplete gamma (scipy.stats imports slowly)
    from scipy.special import gammainc

    lo, hi = frm.min(axis=0), frm.max(axis=0)
    area = float(np.prod(np.maximum(hi - lo, 1.0)))
    pred = apply_h(h, ref)
    landing = int(np.sum(np.all((pred >= lo) & (pred <= hi), axis=1)))
    lam = landing * len(frm) / area * np.pi * tol * tol
    k = n - 3  # coincidences needed beyond the seed triangle
    p = (float(gammainc(k, lam)) if k > 0 and lam > 0 else float(k <= 0)) * max(trials, 1)
    return min(p, 1.0), lam


def _grow(
    h0: NDArray[np.float64],
    ref: NDArray[np.float64],
    frm: NDArray[np.float64],
    tree: cKDTree,
    model: str,
    cfg: MatchConfig,
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Grow a hypothesis into a fit on every star it explains, then clip and refit."""
    h = h0
    pairs = np.empty((0, 2), dtype=np.intp)
    prev: set[tuple[int, int]] = set()
    # Phase 1: generous tolerance; the model gets richer as matches accumulate, which lets a
    # similarity guess from one small triangle extend across a sheared or projective field.
    for _ in range(8):
        pairs = _pairs_within(h, ref, tree, cfg.hypothesis_tol_px)
        if len(pairs) < 2:
            return h, pairs
        step_model = _model_for(len(pairs), model)
        h = fit_model(ref[pairs[:, 0]], frm[pairs[:, 1]], step_model)
        cur = set(map(tuple, pairs.tolist()))
        if cur == prev:
            break
        prev = cur
    # Phase 2: tighten to the residual scatter and drop outliers.
    for _ in range(3):
        if len(pairs) < _MIN_POINTS[model]:
            break
        tol = _tolerance(_rms(h, ref[pairs[:, 0]], frm[pairs[:, 1]]), cfg)
        new = _pairs_within(h, ref, tree, tol)
        if len(new) < _MIN_POINTS[_model_for(len(new), model)]:
            break
        pairs = new
        h = fit_model(ref[pairs[:, 0]], frm[pairs[:, 1]], _model_for(len(pairs), model))
    return h, pairs


#: Pairs needed before a model may steer the matching or be fitted: well above the bare minimum,
#: because a projective fit to 8 pairs can bend onto chance coincidences and "grow" a false match.
_ENOUGH = {"shift": 1, "similarity": 3, "affine": 10, "projective": 16}


def _model_for(n: int, model: str) -> str:
    """The requested model, or the richest simpler one that ``n`` pairs constrain well."""
    ladder = ["shift", "similarity", "affine", "projective"]
    for m in reversed(ladder[: ladder.index(model) + 1]):
        if n >= _ENOUGH[m]:
            return m
    return "shift"


def _unknown_model(model: str) -> str:
    return f"unknown registration model {model!r}; choose one of {', '.join(MODELS)}"


def _brightest_first(flux: ArrayLike | None, n: int) -> NDArray[np.intp]:
    if flux is None:
        return np.arange(n)
    f = np.asarray(flux, dtype=float)
    if f.shape != (n,):
        raise ValueError(f"flux must have one value per star ({n}), got shape {f.shape}")
    return np.argsort(-np.nan_to_num(f, nan=-np.inf), kind="stable")


def _as_xy(xy: ArrayLike, name: str) -> NDArray[np.float64]:
    a = np.asarray(xy, dtype=np.float64)
    if a.size == 0:
        return np.empty((0, 2))
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2), got {a.shape}")
    return a


def _pair_weights(ref_flux: ArrayLike | None, frame_flux: ArrayLike | None,
                  ri: NDArray[np.intp], fi: NDArray[np.intp]) -> NDArray[np.float64] | None:
    """Fit weights ∝ the fainter star's flux of each pair, capped at 20× the median.

    A centroid's error falls with the star's brightness (∝ 1/flux on the sky background, ∝
    1/√flux when the star's own photons dominate); flux is between the two, and the cap keeps
    a few bright stars from deciding the fit alone.
    """
    if ref_flux is None or frame_flux is None:
        return None
    rf = np.asarray(ref_flux, dtype=np.float64)[ri]
    ff = np.asarray(frame_flux, dtype=np.float64)[fi]
    f = np.minimum(rf / max(np.median(rf), 1e-30), ff / max(np.median(ff), 1e-30))
    if not np.all(np.isfinite(f)) or np.any(f <= 0):
        return None
    return np.minimum(f, 20.0)


def find_transform(
    frame_xy: ArrayLike,
    ref_xy: ArrayLike,
    *,
    frame_flux: ArrayLike | None = None,
    ref_flux: ArrayLike | None = None,
    model: str = "projective",
    rng: int | np.random.Generator | None = 0,
    config: MatchConfig | None = None,
) -> Transform | FailedRegistration:
    """Find the transform from reference pixels to frame pixels by matching star lists.

    Parameters
    ----------
    frame_xy, ref_xy : array_like, shape (N, 2)
        Star positions (x = column, y = row) in the frame and in the reference. Brightest first,
        unless fluxes are given.
    frame_flux, ref_flux : array_like, optional
        Star fluxes; the lists are sorted by them (descending) before matching.
    model : {"projective", "affine", "similarity", "shift"}
        Transform fitted to all matched stars.
    rng : int or Generator
        Seed of the random hypothesis subset (results are reproducible for a given seed).
    config : MatchConfig, optional
        Tuning options.

    Returns
    -------
    Transform or FailedRegistration
        A :class:`Transform` (truthy) or a falsy :class:`FailedRegistration` with a reason.

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.random.default_rng(1).uniform(0, 500, (40, 2))
    >>> t = find_transform(ref + [3.5, -2.0], ref, model="shift")
    >>> np.round(t.H[:2, 2], 6).tolist(), t.stars_matched
    ([3.5, -2.0], 40)
    """
    if model not in _MIN_POINTS:
        raise ConfigError(_unknown_model(model))
    cfg = config or MatchConfig()
    frm = _as_xy(frame_xy, "frame_xy")
    ref = _as_xy(ref_xy, "ref_xy")
    f_order = _brightest_first(frame_flux, len(frm))
    r_order = _brightest_first(ref_flux, len(ref))
    f_order = f_order[np.all(np.isfinite(frm[f_order]), axis=1)][: cfg.fit_stars]
    r_order = r_order[np.all(np.isfinite(ref[r_order]), axis=1)][: cfg.fit_stars]
    frm, ref = frm[f_order], ref[r_order]
    need = max(cfg.min_matches, _MIN_POINTS[model])
    for what, pts in (("frame", frm), ("reference", ref)):
        if len(pts) < max(3, need):
            return FailedRegistration(
                f"only {len(pts)} stars detected in the {what} (need at least {max(3, need)}); "
                "check focus, clouds and exposure, or lower the detection threshold"
            )
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    k = cfg.max_stars
    d_r, v_r, o_r = _triangles(ref[:k], cfg.neighbours)
    d_f, v_f, o_f = _triangles(frm[:k], cfg.neighbours)
    if len(d_r) == 0 or len(d_f) == 0:
        return FailedRegistration("stars too few or too clustered to form matching triangles")
    near = cKDTree(d_f).query_ball_point(d_r, r=cfg.descriptor_tol)
    counts = np.fromiter((len(x) for x in near), dtype=np.intp, count=len(near))
    if counts.sum() == 0:
        return FailedRegistration(
            "no star pattern of the frame matches the reference (no similar triangles); "
            "is it the same field?"
        )
    ti = np.repeat(np.arange(len(near)), counts)
    tj = np.fromiter((j for x in near for j in x), dtype=np.intp, count=int(counts.sum()))
    if len(ti) > cfg.max_hypotheses:
        pick = np.sort(gen.choice(len(ti), cfg.max_hypotheses, replace=False))
        ti, tj = ti[pick], tj[pick]
    mirror = o_r[ti] != o_f[tj]
    a, b = _similarity_batch(ref[v_r[ti]], frm[v_f[tj]], mirror)
    scale = np.abs(a)
    ok = (scale > cfg.scale_range[0]) & (scale < cfg.scale_range[1])
    a, b, mirror = a[ok], b[ok], mirror[ok]
    if len(a) == 0:
        return FailedRegistration("matched triangles imply an implausible scale between frames")

    # Score: reference stars (of the triangle set) predicted onto a frame star.
    tree = cKDTree(frm)
    zr = ref[:k, 0] + 1j * ref[:k, 1]
    zz = np.where(mirror[:, None], np.conj(zr)[None, :], zr[None, :])
    pred = a[:, None] * zz + b[:, None]
    dist, _ = tree.query(np.column_stack([pred.real.ravel(), pred.imag.ravel()]),
                         distance_upper_bound=cfg.hypothesis_tol_px)
    score = np.isfinite(dist).reshape(pred.shape).sum(axis=1)
    best = np.argsort(-score, kind="stable")

    chosen: list[tuple[int, float, NDArray[np.float64], NDArray[np.intp]]] = []
    tried: list[NDArray[np.float64]] = []
    for idx in best:
        if len(tried) >= cfg.refine_candidates or score[idx] < 3:
            break
        s = -1.0 if mirror[idx] else 1.0
        h0 = np.array([[a[idx].real, -a[idx].imag * s, b[idx].real],
                       [a[idx].imag, a[idx].real * s, b[idx].imag], [0.0, 0.0, 1.0]])
        # skip hypotheses that repeat one already grown (same transform within a pixel)
        if any(np.max(np.abs(apply_h(h0, ref[:4]) - apply_h(t, ref[:4]))) < 1.0 for t in tried):
            continue
        tried.append(h0)
        h, pairs = _grow(h0, ref, frm, tree, model, cfg)
        if len(pairs) >= _MIN_POINTS[model]:
            r = _rms(h, ref[pairs[:, 0]], frm[pairs[:, 1]])
            chosen.append((len(pairs), float(np.sqrt(np.mean(r**2))), h, pairs))
            # a match this far beyond chance is the transform; other guesses only cost time
            if len(pairs) >= max(need, 20) and len(pairs) >= 0.5 * min(len(ref), len(frm)):
                break
    if not chosen:
        return FailedRegistration(
            "no consistent star matches found (fewer than 3 stars agree on any transform)"
        )
    n, _, h, pairs = max(chosen, key=lambda c: (c[0], -c[1]))
    p_chance, lam = _chance_probability(
        h, ref, frm, n, _tolerance(_rms(h, ref[pairs[:, 0]], frm[pairs[:, 1]]), cfg), len(a))
    if p_chance > cfg.max_chance:
        return FailedRegistration(
            f"only {n} stars agree on a transform, which chance coincidences explain "
            f"(~{lam:.2f} expected per guess over {len(a)} guesses); the frames may not overlap",
            stars_matched=n,
        )
    if n < need:
        return FailedRegistration(
            f"only {n} stars matched (need {need}); the overlap with the reference may be too "
            "small or the frame too poor (clouds, trails)",
            stars_matched=n,
        )
    fitted = _model_for(n, model)
    h = fit_model(ref[pairs[:, 0]], frm[pairs[:, 1]], fitted,
                  weights=_pair_weights(ref_flux, frame_flux, r_order[pairs[:, 0]],
                                        f_order[pairs[:, 1]]))
    resid = _rms(h, ref[pairs[:, 0]], frm[pairs[:, 1]])
    # report the residual in reference pixels: divide by the local frame/reference scale
    jac = h[:2, :2] - np.outer(h[:2, 2], h[2, :2])
    scale = float(np.sqrt(abs(np.linalg.det(jac)))) or 1.0
    rms = float(np.sqrt(np.mean(resid**2))) / scale
    inliers = np.column_stack([r_order[pairs[:, 0]], f_order[pairs[:, 1]]]).astype(np.intp)
    return Transform(H=h, model=fitted, stars_matched=int(n), rms_px=rms, inliers=inliers)
