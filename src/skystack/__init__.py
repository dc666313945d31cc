"""skystack — batch preprocessing for astrophotography.

Scan frames, link calibration frames to lights with readable rules, build masters, calibrate,
measure, register, normalize and integrate — and explain every decision.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
