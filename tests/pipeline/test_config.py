"""`skystack run --config`: the README's example parses into run and link settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from skystack.errors import ConfigError
from skystack.linking import LinkConfig
from skystack.pipeline import RunConfig

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_config_example_parses(tmp_path: Path) -> None:
    toml = re.search(r"```toml\n(.*?)```", README.read_text(), re.S).group(1)
    path = tmp_path / "skystack.toml"
    path.write_text(toml)
    cfg = RunConfig.from_toml(path, jobs=1)
    assert cfg.rejection == "winsorized" and cfg.local_normalization and cfg.jobs == 1
    link = LinkConfig.from_mapping(cfg.link)
    assert link.temperature_tolerance == 3.0
    assert link.overrides[0].lights == "M31/Ha/**"
    assert "jobs" not in cfg.product_params()  # execution settings do not change products


def test_unknown_setting_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[run]\nrejectoin = 'sigma'\n")
    with pytest.raises(ConfigError, match="rejectoin"):
        RunConfig.from_toml(path)
