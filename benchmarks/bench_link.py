"""Benchmark: link 10,000 synthetic frames (8,000 lights, 2,000 calibration frames).

Target: under 5 s on this machine for ``link()``; JSON, tree and HTML are timed alongside.
There is no peer tool that links calibration frames from the command line, so the table shows
absolute times and each step's share of the total.

    .venv/bin/python benchmarks/bench_link.py
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path

from skystack.linking import link
from skystack.metadata import FrameInfo
from skystack.report import render_link_html, render_link_tree

ROOT = Path("/library")


def synthetic_library(n_lights: int = 8000, n_cal: int = 2000, *, seed: int = 0
                      ) -> list[FrameInfo]:
    """A multi-season library: 20 nights × 5 filters × 2 exposures × 2 gains, with calibration."""
    import numpy as np

    rng = np.random.default_rng(seed)
    filters = ["L", "R", "G", "B", "Ha"]
    nights = [datetime(2026, 9, 1, 21) + timedelta(days=3 * i) for i in range(20)]
    base = dict(binning=(1, 1), width=6248, height=4176, offset=50.0, camera="ZWO ASI6200MM Pro")
    frames: list[FrameInfo] = []
    for i in range(n_lights):
        night = nights[i % len(nights)]
        filt = filters[(i // 7) % len(filters)]
        exp = 300.0 if filt == "Ha" else (60.0 if i % 2 else 120.0)
        frames.append(FrameInfo(
            path=str(ROOT / f"lights/{night:%Y-%m-%d}/{filt}/light_{i:05d}.fits"), type="light",
            exposure=exp, filter=filt, gain=100.0 if i % 3 else 0.0,
            temperature=-10.0 + float(rng.normal(0, 0.3)), set_temperature=-10.0,
            session=f"{night:%Y-%m-%d}", object=f"NGC{7000 + (i % 4)}",
            date_obs=night + timedelta(seconds=i), **base))
    kinds = ["bias", "dark", "flat", "dark_flat"]
    for j in range(n_cal):
        kind = kinds[j % 4]
        night = nights[(j // 4) % len(nights)]
        gain = 100.0 if j % 3 else 0.0
        kw: dict = dict(gain=gain, set_temperature=-10.0, temperature=-10.0, date_obs=night)
        if kind == "bias":
            kw.update(exposure=0.001)
        elif kind == "dark":
            kw.update(exposure=[60.0, 120.0, 300.0][(j // 4) % 3])
        elif kind == "flat":
            kw.update(exposure=2.0, filter=filters[(j // 4) % 5], session=f"{night:%Y-%m-%d}")
        else:
            kw.update(exposure=2.0)
        frames.append(FrameInfo(path=str(ROOT / f"cal/{kind}/{kind}_{j:05d}.fits"), type=kind,
                                **base, **kw))
    return frames


def main() -> None:
    frames = synthetic_library()
    t0 = time.perf_counter()
    plan = link(frames, root=ROOT)
    t_link = time.perf_counter() - t0
    t0 = time.perf_counter()
    doc = json.dumps(plan.to_json())
    t_json = time.perf_counter() - t0
    t0 = time.perf_counter()
    tree = render_link_tree(plan)
    t_tree = time.perf_counter() - t0
    t0 = time.perf_counter()
    page = render_link_html(plan)
    t_html = time.perf_counter() - t0
    total = t_link + t_json + t_tree + t_html
    n_l = sum(len(ll.group.frames) for ll in plan.light_links)
    print(f"{len(frames)} frames ({n_l} lights), {len(plan.light_links)} light groups, "
          f"{len(plan.groups)} calibration groups; JSON {len(doc) / 1e6:.1f} MB, "
          f"tree {len(tree.splitlines())} lines, HTML {len(page) / 1e6:.1f} MB\n")
    print("| step | time (s) | share |")
    print("|---|---:|---:|")
    for name, t in (("link()", t_link), ("to_json + dumps", t_json),
                    ("terminal tree", t_tree), ("HTML diagram", t_html)):
        print(f"| {name} | {t:.3f} | {t / total:.0%} |")
    print(f"| **total** | **{total:.3f}** | target link() < 5 s: "
          f"{'met' if t_link < 5 else 'MISSED'} |")


if __name__ == "__main__":
    main()
