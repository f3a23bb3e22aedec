"""Scenario parameters by flat name, scenario files, and populations larger than a feeder.

Model parameters (Mesa's ``batch_run``, the sweep's ``--param``, the browser controls) name a
scenario field by its bare name (``battery_share``) or with its section (``der.battery_share``);
the bare names are unique across sections. :func:`population_world` builds a neighbourhood of
any size on a feeder by repeating the feeder's households over its loads.
"""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mas.errors import ScenarioError
from mas.mesa.errors import ModelParameterError
from mas.scenario import _SECTIONS, Scenario
from mas.world import World, build_world, household_id

log = logging.getLogger(__name__)

TOP_LEVEL = ("feeder", "day", "households", "seed")


def parameter_names() -> dict[str, str]:
    """Every flat parameter name -> its dotted scenario path (``battery_share`` -> ``der.…``)."""
    out = {name: name for name in TOP_LEVEL}
    for section, cls in _SECTIONS.items():
        for f in dataclasses.fields(cls):
            out[f.name] = f"{section}.{f.name}"
            out[f"{section}.{f.name}"] = f"{section}.{f.name}"
    return out


def scenario_with(scenario: Scenario, params: Mapping[str, Any]) -> Scenario:
    """A copy of ``scenario`` with parameters replaced (validated like a scenario file).

    Raises:
        ModelParameterError: an unknown parameter name.
        ScenarioError: a value out of range (named).
    """
    if not params:
        return scenario
    names = parameter_names()
    data = scenario.to_dict()
    for name, value in params.items():
        path = names.get(name)
        if path is None:
            raise ModelParameterError(f"unknown parameter {name!r} (known: "
                                      f"{sorted(n for n in names if '.' not in n)})")
        if "." in path:
            section, key = path.split(".")
            data.setdefault(section, {})[key] = value
        else:
            data[path] = value
    return Scenario.from_dict(data)


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario TOML file.

    Raises:
        ScenarioError: the file is missing, not TOML, or not a valid scenario.
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"scenario file {str(p)!r} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"scenario file {str(p)!r} is not TOML: {exc}") from exc
    return Scenario.from_dict(data)


def population_world(scenario: Scenario) -> World:
    """The neighbourhood of ``scenario``, repeated over the feeder's loads to any size.

    Up to the feeder's number of loads this is :func:`mas.world.build_world`. Beyond, household
    ``i`` copies the profiles and assets of household ``i mod n`` of the full feeder (bus
    included) under its own id and index, so its forecast noise and salts are its own. The
    feeder becomes ``⌈N/n⌉`` copies of itself in parallel (:meth:`grid.feeders.Feeder.in_parallel`),
    so the DSO's grid model carries the population at the voltages one copy has. The DSO's
    import limit is not changed; scale ``grid.import_limit_kw`` with the population.
    """
    n = scenario.households
    try:
        return build_world(scenario)
    except ScenarioError:
        if n is None:
            raise
    data = scenario.to_dict()
    data.pop("households", None)
    base = build_world(Scenario.from_dict(data))
    k = len(base.households)
    households = tuple(
        dataclasses.replace(base.households[i % k], id=household_id(i), index=i)
        for i in range(n)
    )
    copies = -(-n // k)
    log.info("population of %d households over %d feeder loads (%d feeders in parallel)", n, k,
             copies)
    return dataclasses.replace(base, scenario=scenario, households=households,
                               feeder=base.feeder.in_parallel(copies))
