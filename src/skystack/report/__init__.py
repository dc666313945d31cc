"""Human-facing reports: the calibration link tree (terminal) and link diagram (HTML/SVG)."""

from __future__ import annotations

from skystack.report.link_html import render_link_fragment, render_link_html
from skystack.report.link_tree import render_link_tree

__all__ = ["render_link_fragment", "render_link_html", "render_link_tree"]
