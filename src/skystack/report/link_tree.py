"""The link plan as a terminal tree: session → target → filter → light group → masters.

Plain text with ✔ / ⚠ / ✘ marks (and optional ANSI colours), so it reads the same in a
terminal, a log file or a bug report.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from skystack.linking import Link, LinkPlan, LightLinks

__all__ = ["render_link_tree", "MARKS"]

#: status → mark shown in front of a link
MARKS = {"ok": "✔", "warning": "⚠", "error": "✘", "off": "–"}
_ANSI = {"ok": "\x1b[32m", "warning": "\x1b[33m", "error": "\x1b[31m", "off": "\x1b[2m"}
_RESET = "\x1b[0m"


@dataclass
class _Node:
    label: str
    children: list[_Node] = field(default_factory=list)


def _paint(text: str, status: str, color: bool) -> str:
    return f"{_ANSI[status]}{text}{_RESET}" if color else text


def _link_node(kind: str, lk: Link | None, status: str, ll: LightLinks, color: bool,
               show_missing: bool = True) -> _Node | None:
    label = kind.replace("_", "-")
    if kind in ll.off:
        return _Node(_paint(f"{MARKS['off']} {label:<9} switched off by an override", "off",
                            color))
    if lk is None or lk.group is None:
        if not show_missing or status == "ok":
            return None
        return _Node(_paint(f"{MARKS[status]} {label:<9} none", status, color))
    g = lk.group
    text = f"{MARKS[status]} {label:<9} {g.id} ({g.describe()}) — {lk.reason}"
    return _Node(_paint(text, status, color))


def _group_node(ll: LightLinks, color: bool) -> _Node:
    lg = ll.group
    worst = ll.worst
    node = _Node(_paint(f"{MARKS[worst]} {lg.describe()}  [{lg.id}]", worst, color))
    for kind, lk in (("dark", ll.dark), ("bias", ll.bias), ("flat", ll.flat)):
        # a missing bias is only worth a line when a problem names it
        n = _link_node(kind, lk, ll.status(kind), ll, color, show_missing=kind != "bias"
                       or ll.status("bias") != "ok")
        if n is None:
            continue
        if kind == "flat" and lk is not None:
            for sub_kind, sub in (("dark_flat", lk.dark_flat), ("bias", lk.bias)):
                status = ll.status("dark_flat") if sub_kind == "dark_flat" else "ok"
                sn = _link_node(sub_kind, sub, status, ll, color,
                                show_missing=sub_kind == "dark_flat")
                if sn is not None:
                    n.children.append(sn)
        node.children.append(n)
    for p in ll.problems:
        node.children.append(_Node(_paint(f"{MARKS[p.severity]} {p.link}: {p.message}",
                                          p.severity, color)))
    return node


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _render(node: _Node, prefix: str, last: bool, top: bool, out: list[str]) -> None:
    if top:
        out.append(node.label)
        child_prefix = ""
    else:
        out.append(prefix + ("└── " if last else "├── ") + node.label)
        child_prefix = prefix + ("    " if last else "│   ")
    for i, c in enumerate(node.children):
        _render(c, child_prefix, i == len(node.children) - 1, False, out)


def render_link_tree(plan: LinkPlan, *, color: bool = False) -> str:
    """Render the plan as a text tree.

    Parameters
    ----------
    plan
        The result of :func:`skystack.linking.link`.
    color
        Wrap marks in ANSI colours (for a terminal).

    Returns
    -------
    str
        The tree, one line per session/target/filter/light group/link/problem, ending with a
        newline.
    """
    tree: dict[str, dict[str, dict[str, list[LightLinks]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    for ll in plan.light_links:
        k = ll.group.key
        tree[k.get("session") or "(no session)"][k.get("object") or "(no target)"][
            k.get("filter") or "(no filter)"].append(ll)
    n_err = sum(1 for ll in plan.light_links if ll.worst == "error")
    n_warn = sum(1 for ll in plan.light_links if ll.worst == "warning")
    n_lights = sum(len(ll.group.frames) for ll in plan.light_links)
    head = (f"link plan: {_n(n_lights, 'light')} in {_n(len(plan.light_links), 'group')}, "
            f"{_n(len(plan.groups), 'calibration group')} — {n_err} with errors, "
            f"{n_warn} with warnings")
    out = [head]
    for session in sorted(tree):
        s_node = _Node(session)
        for target in sorted(tree[session]):
            t_node = _Node(target)
            for filt in sorted(tree[session][target]):
                f_node = _Node(f"filter {filt}")
                for ll in sorted(tree[session][target][filt], key=lambda x: x.group.id):
                    f_node.children.append(_group_node(ll, color))
                t_node.children.append(f_node)
            s_node.children.append(t_node)
        _render(s_node, "", True, True, out)
    unused = [g for g in plan.groups if g.id not in plan.used_groups()]
    if unused:
        out.append("unused calibration groups: " + ", ".join(g.id for g in unused))
    if plan.rejected:
        out.append(f"rejected files ({len(plan.rejected)}):")
        out.extend(f"  {plan.rel(p)}: {r}" for p, r in plan.rejected)
    return "\n".join(out) + "\n"
