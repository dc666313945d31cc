"""The whole pipeline (``skystack run``): stages chained over groups, cached, resumable."""

from __future__ import annotations

from skystack.pipeline.config import RunConfig
from skystack.pipeline.run import RunError, RunResult, run_pipeline

__all__ = ["RunConfig", "RunError", "RunResult", "run_pipeline"]
