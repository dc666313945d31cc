"""Synthetic nights with ground truth — placeholder docstring, replaced below."""
from __future__ import annotations

from skystack.simulate.build import simulate
from skystack.simulate.truth import FrameTruth, Simulation, Truth, load_truth
