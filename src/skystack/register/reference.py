"""Automatic choice of the registration reference frame.

As WBPP does (``wbpp.md`` §4.4): only frames of the lowest binning qualify (a binned reference
would throw resolution away for every frame), and among them the one with the most stars wins.
We add a seeing guard: frames whose median FWHM is more than ``fwhm_tolerance`` times the best
are passed over, because a soft reference puts its blur into every transform's star matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ReferenceChoice", "choose_reference"]


@dataclass(frozen=True)
class ReferenceChoice:
    """The chosen reference: its index in the candidates and why, in plain words."""

    index: int
    reason: str


def _bin_factor(b: object) -> float:
    if b is None:
        return 1.0
    if isinstance(b, str):
        parts = [p for p in b.lower().replace(" ", "").split("x") if p]
        try:
            return float(np.prod([float(p) for p in parts])) if parts else 1.0
        except ValueError:
            return 1.0
    return float(b)  # type: ignore[arg-type]


def choose_reference(
    n_stars: Sequence[int],
    *,
    binning: Sequence[int | str | None] | None = None,
    fwhm: Sequence[float | None] | None = None,
    fwhm_tolerance: float = 1.25,
) -> ReferenceChoice:
    """Pick the registration reference among candidate frames.

    Parameters
    ----------
    n_stars : sequence of int
        Stars detected in each frame.
    binning : sequence, optional
        Binning of each frame: an int (1, 2) or a string such as ``"2x2"``; None counts as 1.
    fwhm : sequence of float, optional
        Median star FWHM of each frame, in that frame's pixels (NaN/None = unknown).
    fwhm_tolerance : float
        Frames with an FWHM above this factor times the best FWHM of their binning are skipped.

    Returns
    -------
    ReferenceChoice

    Examples
    --------
    >>> choose_reference([120, 300, 280], binning=[1, 2, 1], fwhm=[2.5, 2.0, 2.6]).index
    2
    """
    n = len(n_stars)
    if n == 0:
        raise ValueError("no candidate frames to choose a reference from")
    stars = np.asarray(n_stars, dtype=float)
    bins = np.array([_bin_factor(b) for b in (binning or [None] * n)])
    cand = np.flatnonzero(bins == bins.min())
    why = [f"lowest binning ({bins.min():g})"] if len(set(bins.tolist())) > 1 else []
    if fwhm is not None:
        f = np.array([np.nan if v is None else float(v) for v in fwhm])
        known = cand[np.isfinite(f[cand]) & (f[cand] > 0)]
        if len(known):
            best = float(f[known].min())
            sharp = known[f[known] <= fwhm_tolerance * best]
            if len(sharp) < len(cand):
                why.append(f"FWHM within {fwhm_tolerance:g}× of the best ({best:.2f} px)")
            cand = sharp
    # most stars; ties go to the sharper frame, then the earlier one
    f_key = np.zeros(n) if fwhm is None else np.nan_to_num(
        np.array([np.nan if v is None else float(v) for v in fwhm]), nan=np.inf)
    pick = int(min(cand, key=lambda i: (-stars[i], f_key[i], i)))
    why.append(f"most stars ({int(stars[pick])})")
    return ReferenceChoice(pick, "; ".join(why))
