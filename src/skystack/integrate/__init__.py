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
    BandResult,
    FrameStats,
    IntegrationError,
    IntegrationPlan,
    IntegrationResult,
    assemble_bands,
    integrate,
    integrate_rows,
    parse_memory,
    prepare_integration,
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
    "IntegrationPlan",
    "BandResult",
    "prepare_integration",
    "integrate_rows",
    "assemble_bands",
    "COMBINES",
    "REJECTIONS",
    "NORMALIZATIONS",
    "REJECTION_NORMALIZATIONS",
]
