"""The stack engine: combine N frames into one with pixel rejection, weights and normalization.

>>> from skystack.integrate import integrate, IntegrationConfig        # doctest: +SKIP
>>> result = integrate(paths, config=IntegrationConfig(rejection="winsorized"), memory="2G")
>>> result.write("master.fits")                                          # doctest: +SKIP

Frames given as paths are streamed in row bands sized from the memory budget; arrays are used in
place. Rejection semantics are specified by the plain reference in ``_reference.py`` and run by
the numba kernels in ``_kernels.py``.
"""

from __future__ import annotations

from skystack.integrate.config import (
    COMBINES,
    NORMALIZATIONS,
    REJECTION_NORMALIZATIONS,
    REJECTIONS,
    IntegrationConfig,
    choose_rejection,
)
from skystack.integrate.engine import (
    FrameStats,
    IntegrationError,
    IntegrationResult,
    integrate,
    parse_memory,
)
from skystack.integrate.io import BandNormalizer

__all__ = [
    "integrate",
    "IntegrationConfig",
    "IntegrationResult",
    "FrameStats",
    "BandNormalizer",
    "IntegrationError",
    "choose_rejection",
    "parse_memory",
    "COMBINES",
    "REJECTIONS",
    "NORMALIZATIONS",
    "REJECTION_NORMALIZATIONS",
]
