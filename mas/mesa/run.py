"""One day through the Mesa runtime, for ``vdg run --runtime mesa``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mas.mesa.model import LedgerKind, VdgModel
from mas.mesa.outputs import write_agent_csvs
from mas.scenario import Scenario

log = logging.getLogger(__name__)


def run_day_mesa(scenario: Scenario | str | Path | None = None, seed: int | None = None, *,
                 households: int | None = None, ledger: LedgerKind = "memory",
                 chain_url: str | None = None, out: str | Path | None = None,
                 agent_series: bool = True, **params: Any) -> dict[str, Any]:
    """Run one day in the Mesa model and return its summary.

    Args:
        scenario: a scenario, a scenario TOML path, or ``None`` for the defaults.
        seed: replaces the scenario's seed.
        households: replaces the number of households (may exceed the feeder's loads).
        ledger: ``"memory"`` or ``"evm"`` (the embedded chain, or ``chain_url``).
        chain_url: a JSON-RPC node for ``ledger="evm"`` (``None``: embedded py-evm).
        out: where to write the agents' CSV files (``out/agents/``, the files and columns of
            the SPADE runtime, :mod:`mas.mesa.outputs`); ``None``: none.
        agent_series: with ``out``, also one file per household.
        **params: further scenario parameters by flat name.

    Returns:
        The summary: ``households``, ``trades``, ``traded_kwh``, ``welfare_eur``,
        ``cost_prosumers_eur``, ``cost_consumers_eur``, ``peak_import_kw``, ``v_min_pu``,
        ``v_max_pu``, ``admm_iterations``, ``gas_used``, ``xmpp_messages`` (0: no XMPP),
        ``money_conserved``, ``energy_conserved``, ``wall_time_s`` and a few more.
    """
    if households is not None:
        params["households"] = households
    model = VdgModel(scenario, ledger=ledger, rng=seed, collect_agents=False,
                     chain_url=chain_url, **params)
    summary = model.run_day()
    if out is not None:
        write_agent_csvs(model, out, households=agent_series)
    return summary
