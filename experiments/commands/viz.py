"""``vdg viz``: the Mesa model in the browser (a SolaraViz page served on 127.0.0.1).

The command hands over to the Solara server (``solara run`` of this module, whose :func:`Page`
renders :class:`mas.mesa.viz.VdgPage`); the scenario travels in environment variables. Assets
are served from the installed ``solara-assets`` package, so the page works offline.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import click
import solara

from mas.mesa.model import LedgerKind
from mas.mesa.params import scenario_with
from mas.mesa.viz import VdgPage
from mas.scenario import Scenario

ENV_SCENARIO = "VDG_VIZ_SCENARIO"
ENV_HOUSEHOLDS = "VDG_VIZ_HOUSEHOLDS"
ENV_LEDGER = "VDG_VIZ_LEDGER"
HOST = "127.0.0.1"


@solara.component
def Page() -> None:  # noqa: N802 - the name Solara looks for
    """The page Solara serves (scenario from the environment ``vdg viz`` set)."""
    from experiments.commands.sweep import resolve_scenario  # noqa: PLC0415

    scenario = solara.use_memo(lambda: _scenario_from_env(resolve_scenario), [])
    ledger: LedgerKind = "evm" if os.environ.get(ENV_LEDGER) == "evm" else "memory"
    VdgPage(scenario, ledger)


def _scenario_from_env(resolve: Callable[[str | None], Scenario]) -> Scenario:
    sc = resolve(os.environ.get(ENV_SCENARIO) or None)
    n = os.environ.get(ENV_HOUSEHOLDS)
    return scenario_with(sc, {"households": int(n)}) if n else sc


@click.command()
@click.argument("scenario", required=False, default="default")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--households", type=click.IntRange(2, 100_000), default=None,
              help="Number of households [default: the scenario's].")
@click.option("--ledger", type=click.Choice(["memory", "evm"]), default="memory",
              show_default=True, help="In-memory ledger or the embedded EVM chain.")
def viz(scenario: str, port: int, households: int | None, ledger: str) -> None:
    """Serve the browser view of SCENARIO on http://127.0.0.1:PORT (Ctrl-C stops it).

    The feeder is drawn as a tree from the substation, buses coloured by voltage and net
    injection; time series of clearing prices and volumes, battery state of charge and
    substation import; controls for the main parameters; step, play and reset. SCENARIO is a
    scenario TOML file, a shipped scenario name, or 'default'.
    """
    from experiments.commands.sweep import resolve_scenario  # noqa: PLC0415

    sc = resolve_scenario(scenario)  # fail here, with a clear message, not in the server
    if households is not None:
        scenario_with(sc, {"households": households})
    env = dict(os.environ)
    env[ENV_SCENARIO] = str(Path(scenario).resolve()) if Path(scenario).exists() else scenario
    env[ENV_LEDGER] = ledger
    if households is not None:
        env[ENV_HOUSEHOLDS] = str(households)
    env.setdefault("SOLARA_TELEMETRY_MIXPANEL_ENABLE", "False")
    click.echo(f"vdg viz: {sc.name} on http://{HOST}:{port} (Ctrl-C stops)", err=True)
    args = [sys.executable, "-m", "solara", "run", "experiments.commands.viz", "--host", HOST,
            "--port", str(port), "--production", "--no-open", "--log-level", "warning"]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, args, env)  # the server replaces this process
