"""Scenario files: TOML (shipped under ``experiments/scenarios/`` or any path) → frozen Scenario.

A name without a path separator or suffix is looked up among the shipped scenarios.
"""

from __future__ import annotations

import tomllib
from importlib.resources import files
from pathlib import Path

from mas.errors import ScenarioError
from mas.scenario import Scenario

DEFAULT = "default"


def shipped() -> list[str]:
    """Names of the shipped scenarios."""
    root = files("experiments").joinpath("scenarios")
    return sorted(p.name.removesuffix(".toml") for p in root.iterdir()
                  if p.name.endswith(".toml"))


def load_scenario(name_or_path: str | Path = DEFAULT) -> Scenario:
    """Read and validate a scenario file.

    Raises:
        ScenarioError: no such file or shipped scenario; invalid TOML; invalid content (the
            message names the field).
    """
    text_path = str(name_or_path)
    if "/" not in text_path and not text_path.endswith(".toml"):
        if text_path not in shipped():
            raise ScenarioError(f"scenario {text_path!r} is not a file nor one of the shipped "
                                f"scenarios {shipped()}")
        text = files("experiments").joinpath("scenarios", f"{text_path}.toml").read_text(
            encoding="utf-8")
        where = f"scenario {text_path!r}"
    else:
        try:
            text = Path(text_path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"scenario file {text_path!r}: {exc.strerror}") from None
        where = f"scenario file {text_path!r}"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{where}: invalid TOML: {exc}") from None
    try:
        return Scenario.from_dict(data)
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {exc}") from None
