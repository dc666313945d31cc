"""The link plan as one self-contained HTML page: inline SVG, CSS and JS, no network.

Masters (existing or to be built) sit on the left, light groups on the right, one edge per link.
Broken links run red from a dashed "missing" node carrying the reason and the fix; warnings are
amber. Hover a node or an edge for its details; click a node for its file list. Every node and
edge carries machine-readable attributes (``data-kind``, ``data-id``, ``data-status``,
``data-link``, ``data-from``, ``data-to``; broken edges have class ``edge broken``) so tests and
other tools can read the diagram back.
"""

from __future__ import annotations

import html
import itertools
import json
import textwrap
from dataclasses import dataclass

from skystack.linking import CalibrationGroup, LightLinks, Link, LinkPlan

__all__ = ["render_link_fragment", "render_link_html"]

_NODE_W_LEFT = 330
_NODE_W_RIGHT = 330
_NODE_H = 42
_PITCH = 52
_SECTION = 28
_X_LEFT = 80  # room on the left for flat ← dark-flat/bias arcs
_X_RIGHT = 640
_TOP = 40
_KIND_ORDER = ("bias", "dark", "dark_flat", "flat")
_KIND_TITLE = {"bias": "bias", "dark": "darks", "dark_flat": "dark-flats", "flat": "flats",
               "missing": "missing calibration"}
_MARK = {"ok": "✔", "warning": "⚠", "error": "✘"}
_fragment_ids = itertools.count(1)


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


@dataclass
class _Node:
    id: str
    kind: str  # bias|dark|dark_flat|flat|missing|lights
    title: str
    subtitle: str
    status: str
    details: dict
    x: float = 0.0
    y: float = 0.0
    used: bool = True

    def sub_lines(self) -> list[str]:
        """Subtitle lines: missing nodes show their whole reason and fix (wrapped)."""
        if self.kind == "missing":
            return textwrap.wrap(self.subtitle, 52) or [""]
        return [self.subtitle]

    @property
    def height(self) -> float:
        return _NODE_H + 14 * (len(self.sub_lines()) - 1)


@dataclass
class _Edge:
    src: str
    dst: str
    link: str
    status: str
    text: str
    side: str  # "cross" (master → lights) or "left" (dark-flat/bias → flat arc)


def _worst(statuses: list[str]) -> str:
    return "error" if "error" in statuses else "warning" if "warning" in statuses else "ok"


def _build(plan: LinkPlan) -> tuple[list[_Node], list[_Node], list[_Edge]]:
    used = plan.used_groups()
    masters: dict[str, _Node] = {}
    for g in plan.groups:
        masters[g.id] = _Node(
            id=g.id, kind=g.kind, title=g.id, subtitle=g.describe(), status="ok",
            details={"title": f"{g.kind.replace('_', '-')} {g.id}",
                     "lines": [g.describe(), "existing master on disk" if g.master
                               else f"master to build from {len(g.frames)} frames"],
                     "files": [plan.rel(p) for p in g.paths()]},
            used=g.id in used)
    lights: list[_Node] = []
    missing: list[_Node] = []
    edges: dict[tuple[str, str, str], _Edge] = {}

    def add_edge(src: str, dst: str, link: str, status: str, text: str, side: str) -> None:
        key = (src, dst, link)
        if key not in edges:
            edges[key] = _Edge(src, dst, link, status, text, side)

    ordered = sorted(plan.light_links, key=lambda ll: (
        str(ll.group.key.get("session") or ""), str(ll.group.key.get("object") or ""),
        str(ll.group.key.get("filter") or ""), ll.group.id))
    for ll in ordered:
        lg = ll.group
        k = lg.key
        where = " · ".join(str(v) for v in (k.get("session"), k.get("object"), k.get("panel"),
                                            k.get("filter")) if v)
        lines = [lg.describe()] + [f"{_MARK[p.severity]} {p.link}: {p.message}"
                                   for p in ll.problems]
        lights.append(_Node(id=lg.id, kind="lights", title=f"{where or lg.id}",
                            subtitle=lg.describe(), status=ll.worst,
                            details={"title": lg.id, "lines": lines,
                                     "files": [plan.rel(f.path) for f in lg.frames]}))
        for kind, lk in (("dark", ll.dark), ("bias", ll.bias), ("flat", ll.flat)):
            _link_edges(plan, ll, kind, lk, masters, add_edge)
        for kind in ("dark", "bias", "flat", "dark_flat"):
            if ll.status(kind) != "error" or _has_group(ll, kind):
                continue
            msgs = [p.message for p in ll.problems if p.link == kind and p.severity == "error"]
            mid = f"missing-{kind}-{lg.id}"
            missing.append(_Node(id=mid, kind="missing", title=f"no {kind.replace('_', '-')}",
                                 subtitle=msgs[0] if msgs else "", status="error",
                                 details={"title": f"missing {kind} for {lg.id}",
                                          "lines": msgs, "files": []}))
            add_edge(mid, lg.id, kind, "error", " ".join(msgs), "cross")
    # a master is as bad as the worst link it makes
    for e in edges.values():
        if e.src in masters:
            m = masters[e.src]
            m.status = _worst([m.status, e.status])
    left = [masters[g.id] for kind in _KIND_ORDER for g in sorted(
        (g for g in plan.groups if g.kind == kind), key=lambda g: g.id)]
    return left + missing, lights, list(edges.values())


def _has_group(ll: LightLinks, kind: str) -> bool:
    if kind == "dark_flat":
        return ll.flat is not None and ll.flat.dark_flat is not None
    lk = getattr(ll, kind)
    return lk is not None and lk.group is not None


def _link_edges(plan: LinkPlan, ll: LightLinks, kind: str, lk: Link | None,
                masters: dict[str, _Node], add_edge) -> None:  # type: ignore[no-untyped-def]
    if lk is None or lk.group is None:
        return
    status = ll.status(kind)
    msgs = [p.message for p in ll.problems if p.link == kind]
    text = lk.reason + ("".join(f" | {m}" for m in msgs))
    if lk.scale != 1.0:
        text = f"scale ×{lk.scale:.3g}: " + text
    _ensure(masters, lk.group, plan)
    add_edge(lk.group.id, ll.group.id, kind, status, text, "cross")
    if kind == "flat":
        for sub_kind, sub in (("dark_flat", lk.dark_flat), ("bias", lk.bias)):
            if sub is None or sub.group is None:
                continue
            _ensure(masters, sub.group, plan)
            st = ll.status("dark_flat") if sub_kind == "dark_flat" else "ok"
            sub_msgs = [p.message for p in ll.problems if p.link == "dark_flat"]
            add_edge(sub.group.id, lk.group.id, sub_kind, st,
                     sub.reason + "".join(f" | {m}" for m in sub_msgs), "left")


def _ensure(masters: dict[str, _Node], g: CalibrationGroup, plan: LinkPlan) -> None:
    if g.id not in masters:  # pragma: no cover - every group is in plan.groups
        masters[g.id] = _Node(g.id, g.kind, g.id, g.describe(), "ok",
                              {"title": g.id, "lines": [], "files": g.paths()})


def _layout(left: list[_Node], right: list[_Node]) -> tuple[list[tuple[str, float]], float]:
    """Place nodes; returns section labels (text, y) on the left and the total height."""
    sections: list[tuple[str, float]] = []
    y = _TOP
    prev = None
    for n in left:
        if n.kind != prev:
            sections.append((_KIND_TITLE.get(n.kind, n.kind), y + 16))
            y += _SECTION
            prev = n.kind
        n.x, n.y = _X_LEFT, y
        y += _PITCH + n.height - _NODE_H
    h_left = y
    y = _TOP + _SECTION
    for n in right:
        n.x, n.y = _X_RIGHT, y
        y += _PITCH
    return sections, max(h_left, y) + 20


def _node_svg(n: _Node, width: int) -> str:
    tip = f"{n.details['title']}\n" + "\n".join(n.details["lines"])
    files = n.details["files"]
    if files:
        shown = files[:15]
        tip += f"\n{len(files)} file(s):\n" + "\n".join(shown)
        if len(files) > len(shown):
            tip += f"\n… and {len(files) - len(shown)} more (click)"
    data_kind = "lights" if n.kind == "lights" else "missing" if n.kind == "missing" else "master"
    cls = f"node {n.kind} {n.status}" + ("" if n.used else " unused")
    mark = _MARK[n.status] + " " if n.kind in ("lights", "missing") or n.status != "ok" else ""
    chars = width // 7
    return (
        f'<g class="{cls}" data-kind="{data_kind}" data-type="{_e(n.kind)}" '
        f'data-id="{_e(n.id)}" data-status="{n.status}" data-used="{str(n.used).lower()}" '
        f'transform="translate({n.x:.0f},{n.y:.0f})" tabindex="0">'
        f"<title>{_e(tip)}</title>"
        f'<rect width="{width}" height="{n.height:.0f}" rx="6"/>'
        f'<text x="10" y="17" class="t1">{_e(_clip(mark + n.title, chars))}</text>'
        + "".join(f'<text x="10" y="{33 + 14 * i}" class="t2">{_e(_clip(line, chars + 8))}'
                  "</text>" for i, line in enumerate(n.sub_lines()))
        + "</g>")


def _edge_svg(e: _Edge, pos: dict[str, _Node]) -> str:
    a, b = pos[e.src], pos[e.dst]
    if e.side == "left":
        # arc on the left margin from the dark-flat/bias to the flat it calibrates
        x0, y0 = a.x, a.y + a.height / 2
        x1, y1 = b.x, b.y + b.height / 2
        bulge = min(80.0, 24 + abs(y1 - y0) / 8)
        d = f"M{x0:.0f},{y0:.0f} C{x0 - bulge:.0f},{y0:.0f} {x1 - bulge:.0f},{y1:.0f} " \
            f"{x1:.0f},{y1:.0f}"
    else:
        x0, y0 = a.x + _NODE_W_LEFT, a.y + a.height / 2
        x1, y1 = b.x, b.y + b.height / 2
        mx = (x0 + x1) / 2
        d = f"M{x0:.0f},{y0:.0f} C{mx:.0f},{y0:.0f} {mx:.0f},{y1:.0f} {x1:.0f},{y1:.0f}"
    cls = "edge broken" if e.status == "error" else f"edge {e.status}"
    tip = f"{e.link.replace('_', '-')}: {e.src} → {e.dst}\n{e.text.replace(' | ', chr(10))}"
    return (f'<path class="{cls}" data-link="{e.link}" data-status="{e.status}" '
            f'data-from="{_e(e.src)}" data-to="{_e(e.dst)}" d="{d}">'
            f"<title>{_e(tip)}</title></path>")


_CSS = """
.sk-link{font:13px/1.35 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;
 display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.sk-link .sk-diagram{flex:1 1 auto;overflow:auto;border:1px solid #ddd;border-radius:8px;
 background:#fcfcfd}
.sk-link svg{display:block}
.sk-link .node rect{fill:#fff;stroke:#99a;stroke-width:1.2}
.sk-link .node{cursor:pointer}
.sk-link .node.bias rect{fill:#f1f1f3}.sk-link .node.dark rect{fill:#e6ecf7}
.sk-link .node.dark_flat rect{fill:#efe7f6}.sk-link .node.flat rect{fill:#fbf6e3}
.sk-link .node.lights rect{fill:#eef7ee}
.sk-link .node.warning rect{stroke:#d99a00;stroke-width:2}
.sk-link .node.error rect{stroke:#d03030;stroke-width:2}
.sk-link .node.missing rect{fill:#fdecec;stroke:#d03030;stroke-dasharray:5 3}
.sk-link .node.unused{opacity:.45}
.sk-link .node.sel rect{stroke:#1a5fd0;stroke-width:3}
.sk-link .t1{font-weight:600;font-size:12.5px}.sk-link .t2{font-size:11.5px;fill:#555}
.sk-link .node.error .t1,.sk-link .node.missing .t2{fill:#b01f1f}
.sk-link .node.warning .t1{fill:#8a6100}
.sk-link .edge{fill:none;stroke:#7a9a86;stroke-width:1.6;opacity:.85}
.sk-link .edge.warning{stroke:#e0a000;stroke-width:2.2}
.sk-link .edge.broken{stroke:#d03030;stroke-width:2.4;stroke-dasharray:7 4}
.sk-link .edge:hover,.sk-link .edge.hl{stroke-width:4;opacity:1}
.sk-link .dim{opacity:.15}
.sk-link .section{font-size:11px;font-weight:700;fill:#667;text-transform:uppercase;
 letter-spacing:.06em}
.sk-link .sk-diagram{max-width:100%}
.sk-link aside{flex:1 0 260px;max-width:420px;max-height:85vh;overflow:auto;border:1px solid #ddd;
 border-radius:8px;padding:10px 12px;background:#fff}
.sk-link aside h3{margin:0 0 6px;font-size:14px;word-break:break-all}
.sk-link aside ul{padding-left:18px;margin:4px 0}
.sk-link aside li{word-break:break-all}
.sk-link .legend span{display:inline-block;margin-right:12px}
.sk-link .ok-c{color:#3f7d55}.sk-link .warning-c{color:#a77400}.sk-link .error-c{color:#c02020}
"""

_JS = """
(function(root){
  var data = JSON.parse(root.querySelector('script.sk-data').textContent);
  var panel = root.querySelector('aside');
  var svg = root.querySelector('svg');
  function esc(s){return String(s).replace(/[&<>"]/g,function(c){
    return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c];});}
  function show(id){
    var d = data[id]; if(!d) return;
    var h = '<h3>'+esc(d.title)+'</h3>';
    d.lines.forEach(function(l){
      var c = l.charAt(0)==='\\u2718'?'error-c':l.charAt(0)==='\\u26a0'?'warning-c':'';
      h += '<p class="'+c+'">'+esc(l)+'</p>';});
    if(d.files.length){h += '<b>'+d.files.length+' file(s)</b><ul>';
      d.files.forEach(function(f){h += '<li>'+esc(f)+'</li>';}); h += '</ul>';}
    panel.innerHTML = h;
  }
  function highlight(id, on){
    svg.querySelectorAll('.edge').forEach(function(e){
      var hit = e.getAttribute('data-from')===id || e.getAttribute('data-to')===id;
      e.classList.toggle('hl', on && hit); e.classList.toggle('dim', on && !hit);});
  }
  svg.querySelectorAll('.node').forEach(function(n){
    var id = n.getAttribute('data-id');
    n.addEventListener('mouseenter', function(){highlight(id, true);});
    n.addEventListener('mouseleave', function(){highlight(id, false);});
    n.addEventListener('click', function(){
      svg.querySelectorAll('.node.sel').forEach(function(s){s.classList.remove('sel');});
      n.classList.add('sel'); show(id);});
  });
})(document.currentScript.parentElement);
"""


def render_link_fragment(plan: LinkPlan) -> str:
    """The link diagram as an embeddable HTML fragment (``<div>`` with style, SVG and script).

    Parameters
    ----------
    plan
        The result of :func:`skystack.linking.link`.

    Returns
    -------
    str
        ``<div class="sk-link">`` holding scoped CSS, one inline ``<svg>`` (well-formed XML), a
        details panel and a small script; several fragments can share one page.
    """
    left, right, edges = _build(plan)
    sections, height = _layout(left, right)
    width = _X_RIGHT + _NODE_W_RIGHT + 20
    pos = {n.id: n for n in left + right}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="sk-link-svg" width="{width}" '
             f'height="{height:.0f}" viewBox="0 0 {width} {height:.0f}" role="img" '
             'aria-label="calibration links">']
    for text, y in sections:
        parts.append(f'<text class="section" x="{_X_LEFT}" y="{y:.0f}">{_e(text)}</text>')
    parts.append(f'<text class="section" x="{_X_RIGHT}" y="{_TOP + 16}">light groups</text>')
    # edges first so nodes sit on top; broken and warning edges last so they stay visible
    order = {"ok": 0, "warning": 1, "error": 2}
    for e in sorted(edges, key=lambda e: order[e.status]):
        parts.append(_edge_svg(e, pos))
    for n in left:
        parts.append(_node_svg(n, _NODE_W_LEFT))
    for n in right:
        parts.append(_node_svg(n, _NODE_W_RIGHT))
    parts.append("</svg>")
    details = {n.id: n.details for n in left + right}
    blob = json.dumps(details, ensure_ascii=False).replace("</", "<\\/")
    n_err = sum(1 for e in edges if e.status == "error")
    n_warn = sum(1 for e in edges if e.status == "warning")
    fid = next(_fragment_ids)
    return (
        f'<div class="sk-link" id="sk-link-{fid}">'
        f"<style>{_CSS}</style>"
        f'<div class="sk-diagram">{"".join(parts)}</div>'
        f'<aside><h3>Calibration links</h3><p class="legend">'
        f'<span class="ok-c">✔ ok</span><span class="warning-c">⚠ warning</span>'
        f'<span class="error-c">✘ broken</span></p>'
        f"<p>{len(right)} light group(s), {len(plan.groups)} calibration group(s); "
        f"{n_err} broken link(s), {n_warn} warning(s).</p>"
        "<p>Hover a node or a line for details; click a node for its files.</p></aside>"
        f'<script type="application/json" class="sk-data">{blob}</script>'
        f"<script>{_JS}</script></div>")


def render_link_html(plan: LinkPlan, *, title: str = "skystack — calibration links") -> str:
    """A complete, self-contained HTML page showing the link diagram (no network access).

    Parameters
    ----------
    plan
        The result of :func:`skystack.linking.link`.
    title
        The page title.

    Returns
    -------
    str
        The HTML document.
    """
    root = f"<p class=\"sk-root\">{_e(plan.root)}</p>" if plan.root else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>body{{margin:16px;background:#f4f5f7;"
            "font-family:system-ui,sans-serif}h1{font-size:18px;margin:0 0 4px}"
            ".sk-root{color:#666;margin:0 0 12px;font-size:12px}</style></head><body>"
            f"<h1>{_e(title)}</h1>{root}{render_link_fragment(plan)}</body></html>\n")
