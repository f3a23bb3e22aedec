"""Per-agent CSV files of a Mesa day, with the names and columns the SPADE runtime writes.

``vdg run`` writes ``agents/`` for a SPADE day (``experiments/commands/run.py``);
:func:`write_agent_csvs` writes the same files for a finished :class:`VdgModel`, so one script
reads either runtime's output:

* ``households.csv`` (one row per household): ``household``, ``bus``, ``pv_kwp``,
  ``battery_kwh``, ``ev_kw``, ``prosumer``, ``sold_local_kwh``, ``bought_local_kwh``,
  ``import_kwh``, ``export_kwh``, ``market_eur``, ``supplier_eur``, ``bill_eur``;
* ``<household>.csv`` (per slot): ``slot``, ``planned_import_kw``, ``metered_export_kwh``,
  ``cleared_<session>_wh`` for each session trading the slot;
* ``dso.csv`` (per slot): ``slot``, ``planned_import_kw``, ``metered_import_kw``,
  ``import_limit_kw``, ``v_min_pu``, ``v_max_pu``;
* ``auctioneer.csv`` (per session and slot): ``session``, ``chain_session``, ``slot``,
  ``participants``, ``volume_wh``, ``buy_price_eur_per_kwh``, ``sell_price_eur_per_kwh``;
* ``aggregator.csv`` (per slot): ``slot``, ``bought_wh``, ``wholesale_eur_per_kwh``.

``dso_rounds.csv`` and ``dso_flexibility.csv`` of the SPADE runtime come from its message
records and have no counterpart here. ``households=False`` leaves out the per-household series
(one file per household; 10,000 files for a population run).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mas.tables import dso_rows, household_row, write_csv
from mas.world import SLOTS

if TYPE_CHECKING:
    from mas.mesa.model import VdgModel

log = logging.getLogger(__name__)


def _sold_kwh(model: VdgModel) -> dict[str, np.ndarray]:
    """Net local sale per participant and global slot, kWh (purchases negative)."""
    sold: dict[str, np.ndarray] = {}
    for rec in model.sessions:
        slots = list(rec.plan.slots)
        for who, row in zip(rec.participants, rec.cleared_wh, strict=True):
            sold.setdefault(who, np.zeros(SLOTS))[slots] -= np.asarray(row, dtype=float) / 1000
    return sold


def metered_kwh(model: VdgModel) -> np.ndarray:
    """Metered net export per slot and household as attested (kWh to the Wh), ``(SLOTS, n)``.

    The readings the ledger settled against, as the SPADE runtime records them; 0 for a slot
    not delivered.
    """
    attested = model.dso.brain.attested
    out = np.zeros((SLOTS, len(model.households)))
    for t, readings in attested.items():
        out[t] = [readings.get(h.hid, 0.0) for h in model.households]
    return out


def household_rows(model: VdgModel, metered_all: np.ndarray | None = None
                   ) -> list[dict[str, Any]]:
    """``households.csv``: assets, local trade, metered energy and bill per household.

    The bill as in the SPADE runtime: what the household paid the market on the ledger plus
    the supplier's balance of its residual (metered net export minus net local sale).
    """
    from mas.mesa.summary import day_settlement  # noqa: PLC0415 - avoids an import cycle

    credit = day_settlement(model).credit_change_nano
    sold = _sold_kwh(model)
    if metered_all is None:
        metered_all = metered_kwh(model)
    imp, exp = model.world.import_eur_per_kwh, model.world.export_eur_per_kwh
    return [household_row(agent.spec, sold.get(agent.spec.id, np.zeros(SLOTS)),
                          metered_all[:, k], imp, exp, credit[agent.spec.id])
            for k, agent in enumerate(model.households)]


def household_series(model: VdgModel, k: int,
                     cleared: list[dict[str, tuple[int, ...]]] | None = None,
                     metered_all: np.ndarray | None = None) -> list[dict[str, Any]]:
    """``<household>.csv`` of the ``k``-th household: plan, meter and trades per slot.

    ``cleared`` (per session of ``model.sessions``, the cleared Wh by participant) and
    ``metered_all`` (:func:`metered_kwh`) are computed here when not given; pass them when
    writing many households.
    """
    if cleared is None:
        cleared = _cleared_by_session(model)
    if metered_all is None:
        metered_all = metered_kwh(model)
    agent = model.households[k]
    plan = agent.brain.plan
    planned = [-x for x in plan.net_export_kw] if plan is not None else [0.0] * SLOTS
    rows = []
    for t in range(SLOTS):
        row: dict[str, Any] = {"slot": t, "planned_import_kw": planned[t],
                               "metered_export_kwh": float(metered_all[t, k])}
        for rec, by_who in zip(model.sessions, cleared, strict=True):
            if t in rec.plan.slots:
                c = by_who.get(agent.hid)
                row[f"cleared_{rec.plan.name}_wh"] = c[rec.plan.slots.index(t)] if c else 0
        rows.append(row)
    keys: dict[str, Any] = {}
    for r in rows:
        keys.update(dict.fromkeys(r, ""))
    return [{**keys, **r} for r in rows]


def _cleared_by_session(model: VdgModel) -> list[dict[str, tuple[int, ...]]]:
    return [dict(zip(r.participants, r.cleared_wh, strict=True)) for r in model.sessions]


def write_agent_csvs(model: VdgModel, out: str | Path, *, households: bool = True) -> Path:
    """Write ``agents/*.csv`` of a finished day under ``out``; returns the ``agents`` folder."""
    agents = Path(out) / "agents"
    metered_all = metered_kwh(model)
    write_csv(agents / "households.csv", household_rows(model, metered_all))
    cleared = _cleared_by_session(model)
    if households:
        for k, agent in enumerate(model.households):
            write_csv(agents / f"{agent.hid}.csv",
                       household_series(model, k, cleared, metered_all))
    dso = model.dso.brain
    planned = dso.grid_state({h.hid: list(h.brain.plan.net_export_kw)
                              for h in model.households if h.brain.plan is not None})
    metered = dso.grid_state({h.hid: metered_all[:, k].tolist()
                              for k, h in enumerate(model.households)})
    write_csv(agents / "dso.csv", dso_rows(planned, metered, model.vdg.grid.import_limit_kw))
    auct = []
    for rec in model.sessions:
        for k, t in enumerate(rec.plan.slots):
            auct.append({"session": rec.plan.name, "chain_session": rec.sid, "slot": t,
                         "participants": len(rec.participants),
                         "volume_wh": round(rec.volume_kwh[k] * 1000),
                         "buy_price_eur_per_kwh": rec.buy_price_eur_per_kwh[k],
                         "sell_price_eur_per_kwh": rec.sell_price_eur_per_kwh[k]})
    write_csv(agents / "auctioneer.csv", auct)
    agg = next((by_who.get(model.aggregator.hid)
                for r, by_who in zip(model.sessions, cleared, strict=True)
                if r.plan.kind == "day-ahead"), None)
    write_csv(agents / "aggregator.csv", [
        {"slot": t, "bought_wh": agg[t] if agg else 0,
         "wholesale_eur_per_kwh": model.world.wholesale_eur_per_kwh[t]} for t in range(SLOTS)])
    log.info("wrote the agents' CSV files to %s", agents)
    return agents
