"""The link diagram (HTML/SVG) and the terminal tree, read back and checked against the plan."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

from skystack.linking import LinkConfig, LinkOverride, link
from skystack.metadata import FrameInfo
from skystack.report import render_link_fragment, render_link_html, render_link_tree

ROOT = Path("/data/lib")
SVG = "{http://www.w3.org/2000/svg}"


def _frames(type_, n, folder, **kw):
    base = dict(binning=(1, 1), width=256, height=192, gain=100.0, offset=50.0, camera="cam",
                temperature=-10.0)
    if type_ == "light":
        base.update(object="M31", session="2026-10-12", date_obs=datetime(2026, 10, 12, 22))
    base.update(kw)
    return [FrameInfo(path=str(ROOT / folder / f"{type_}_{i:03d}.fits"), type=type_, **base)
            for i in range(n)]


def messy_library() -> list[FrameInfo]:
    """Lights with every kind of outcome: ok, warnings, and broken links."""
    return (
        _frames("light", 4, "L/Ha", exposure=300.0, filter="Ha")           # ok
        + _frames("light", 3, "L/OIII", exposure=300.0, filter="OIII",     # flat of another night
                  session="2026-10-14")
        + _frames("light", 3, "L/B", exposure=180.0, filter="B")           # scaled dark, no flat
        + _frames("light", 2, "L/R", exposure=300.0, filter="R",            # dark too warm
                  temperature=0.0)
        + _frames("dark", 5, "D300", exposure=300.0)
        + _frames("dark", 1, "masters", exposure=60.0, master=True)
        + _frames("bias", 5, "Bias", exposure=0.0)
        + _frames("flat", 3, "F/Ha", exposure=2.0, filter="Ha", session="2026-10-12")
        + _frames("flat", 3, "F/OIII", exposure=3.0, filter="OIII", session="2026-10-12")
        + _frames("flat", 2, "F/R", exposure=2.0, filter="R", session="2026-10-12")
        + _frames("dark_flat", 3, "DF", exposure=2.0)
        + _frames("dark", 2, "D120", exposure=120.0, gain=0.0)             # unused
    )


def _svg(html_text: str) -> ET.Element:
    m = re.search(r"<svg\b.*?</svg>", html_text, re.S)
    assert m is not None
    return ET.fromstring(m.group(0))


def _plan():
    return link(messy_library(), root=ROOT)


def test_one_node_per_master_and_light_group():
    plan = _plan()
    svg = _svg(render_link_fragment(plan))
    nodes = svg.findall(f".//{SVG}g[@data-kind]")
    masters = {n.get("data-id") for n in nodes if n.get("data-kind") == "master"}
    lights = {n.get("data-id") for n in nodes if n.get("data-kind") == "lights"}
    assert masters == {g.id for g in plan.groups}
    assert len([n for n in nodes if n.get("data-kind") == "master"]) == len(plan.groups)
    assert lights == {ll.group.id for ll in plan.light_links}
    assert len(lights) == 4
    # unused groups are marked, statuses follow the plan
    unused = {n.get("data-id") for n in nodes if n.get("data-used") == "false"}
    assert unused == {g.id for g in plan.groups} - plan.used_groups()
    # the 60 s master loses to the 300 s dark for the 180 s lights (nearer by exposure ratio)
    assert unused == {"dark-120s-g0-o50-m10C-bin1x1", "dark-60s-g100-o50-m10C-bin1x1-master"}
    status = {n.get("data-id"): n.get("data-status") for n in nodes
              if n.get("data-kind") == "lights"}
    assert status == {ll.group.id: ll.worst for ll in plan.light_links}
    assert sorted(status.values()) == ["error", "error", "ok", "warning"]


def test_edges_broken_exactly_for_broken_links():
    plan = _plan()
    svg = _svg(render_link_html(plan))
    edges = svg.findall(f".//{SVG}path")
    assert all("edge" in e.get("class").split() for e in edges)
    broken = {(e.get("data-to"), e.get("data-link")) for e in edges
              if "broken" in e.get("class").split()}
    expected = {(ll.group.id, k) for ll in plan.light_links
                for k in ("dark", "bias", "flat", "dark_flat") if ll.status(k) == "error"}
    assert broken == expected
    assert len(expected) == 2     # B: no flat; R: dark too warm (R's flat is fine)
    assert {k for _, k in expected} == {"flat", "dark"}
    for e in edges:
        if "broken" in e.get("class").split():
            assert e.get("data-status") == "error"
            assert e.get("data-from").startswith("missing-")
            title = e.find(f"{SVG}title").text
            assert "—" in title       # the reason and the fix
    # warning edges: exactly the links with warnings that point at a real group
    warn = {(e.get("data-to"), e.get("data-link")) for e in edges
            if e.get("data-status") == "warning" and e.get("data-link") in ("dark", "flat")}
    exp_warn = {(ll.group.id, k) for ll in plan.light_links for k in ("dark", "flat")
                if ll.status(k) == "warning"}
    assert warn == exp_warn and len(warn) == 2
    # one edge per link: light-group links + flat calibration arcs
    n_links = 0
    arcs = set()
    for ll in plan.light_links:
        for lk in (ll.dark, ll.bias, ll.flat):
            if lk is not None and lk.group is not None:
                n_links += 1
        if ll.flat is not None:
            for sub in (ll.flat.dark_flat, ll.flat.bias):
                if sub is not None:
                    arcs.add((sub.group.id, ll.flat.group.id))
    assert len(edges) == n_links + len(arcs) + len(expected)
    # the missing node carries the message
    missing = [n for n in svg.findall(f".//{SVG}g[@data-kind='missing']")]
    assert len(missing) == len(expected)
    assert all(n.get("data-status") == "error" for n in missing)


def test_page_is_self_contained_and_well_formed():
    page = render_link_html(_plan())

    class Check(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags: list[str] = []
            self.external: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            for k, v in attrs:
                if k in ("src", "href") and v:
                    self.external.append(v)

    c = Check()
    c.feed(page)
    assert c.external == []
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page
    assert c.tags.count("svg") == 1 and c.tags.count("style") >= 1 and "script" in c.tags
    assert page.startswith("<!DOCTYPE html>")
    # file lists travel with the page (hover titles + click data)
    assert "L/Ha/light_000.fits" in page and "D300/dark_004.fits" in page


def test_override_edges_and_empty_plan():
    cfg = LinkConfig(overrides=(LinkOverride(lights="L/B/*", flat=None),))
    plan = link(messy_library(), root=ROOT, config=cfg)
    svg = _svg(render_link_fragment(plan))
    broken = [e for e in svg.findall(f".//{SVG}path") if "broken" in e.get("class")]
    assert len(broken) == 1                     # the B flat is switched off, not broken
    empty = _svg(render_link_fragment(link([])))
    assert empty.findall(f".//{SVG}g[@data-kind]") == []


def test_terminal_tree_marks():
    plan = _plan()
    tree = render_link_tree(plan)
    lines = tree.splitlines()
    assert lines[0] == ("link plan: 12 lights in 4 groups, 8 calibration groups — "
                        "2 with errors, 1 with warnings")
    assert lines[1] == "2026-10-12"
    assert "2026-10-14" in lines
    assert sum("✘ flat      none" in ln for ln in lines) == 1
    assert sum("✘ dark      none" in ln for ln in lines) == 1
    assert any("✔ dark      dark-300s-g100-o50-m10C-bin1x1 (5 darks 300 s, −10 °C) — exact "
               "exposure 300 s" in ln for ln in lines)
    assert any(ln.strip().startswith("└── ✔ dark-flat") or "✔ dark-flat" in ln for ln in lines)
    assert any("⚠ flat      flat-OIII-2026-10-12-bin1x1" in ln for ln in lines)
    assert ("unused calibration groups: dark-60s-g100-o50-m10C-bin1x1-master, "
            "dark-120s-g0-o50-m10C-bin1x1") in tree
    # colour only on request
    assert "\x1b[" not in tree and "\x1b[31m" in render_link_tree(plan, color=True)
