"""The figures of a simulated day: money, energy, grid, market, messaging.

Computed from what the operator's agents recorded (:class:`mas.spade.runtime.DayRecord`) and from
the chain. Households' bills combine what they paid or earned on the chain (Credit) with the
supplier balancing their residual at retail prices: metered net export minus what they sold net
in the local sessions is fed in at the feed-in price (or imported at the import price).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from mas.brains.auctioneer import gains_from_trade_nano
from mas.spade.runtime import AGGREGATOR, DayRunner
from mas.tables import household_row, traded_by_kind
from mas.world import SLOTS

log = logging.getLogger(__name__)


def household_table(runner: DayRunner) -> list[dict[str, Any]]:
    """One row per household: assets, traded energy, metered energy, bill."""
    world, ops, rec = runner.world, runner.ops, runner.record
    assert world is not None
    assert ops is not None
    credit = ops.credit_delta_nano()
    rows = []
    for h in world.households:
        sold = np.zeros(SLOTS)  # net local sale per slot, kWh
        for name, cleared in rec.cleared.items():
            slots = next(s["slots"] for s in rec.sessions if s["session"] == name)
            row = cleared.get(h.id)
            if row is not None:
                for k, t in enumerate(slots):
                    sold[t] -= row[k] / 1000
        metered = np.asarray(rec.metered_kwh.get(h.id, [0.0] * SLOTS))
        rows.append(household_row(h, sold, metered, world.import_eur_per_kwh,
                                  world.export_eur_per_kwh, credit[h.id]))
    return rows


def welfare_eur(runner: DayRunner) -> float:
    """Gains from local trade at the revealed limit prices, EUR."""
    rec = runner.record
    total = 0
    for session in rec.sessions:
        name = session["session"]
        if name in rec.cleared:
            total += gains_from_trade_nano(rec.cleared[name], rec.limits[name],
                                           session["buy_price_ueur_per_kwh"],
                                           session["sell_price_ueur_per_kwh"])
    return total / 1e9


def summary(runner: DayRunner, wall_time_s: float) -> dict[str, Any]:
    """The day's summary (the fields of ``summary.json``)."""
    world, ops, rec, dso = runner.world, runner.ops, runner.record, runner.dso_brain
    assert world is not None
    assert ops is not None
    assert dso is not None
    rows = household_table(runner)
    metered = dict(rec.metered_kwh.items())
    state = dso.grid_state(metered)
    trades = sum(1 for c in rec.cleared.values() for row in c.values() for wh in row if wh)
    traded_wh = sum(-wh for c in rec.cleared.values() for row in c.values() for wh in row
                    if wh < 0)
    balanced = all(sum(row[k] for row in c.values()) == 0
                   for c in rec.cleared.values() for k in range(len(next(iter(c.values())))))
    attested_export_wh = sum(round(max(v, 0.0) * 1000) for vals in metered.values()
                             for v in vals)
    money = ops.money_check()
    server_msgs = runner.server_messages()
    return {
        "scenario": runner.scenario.name,
        "feeder": world.feeder.name,
        "day": runner.scenario.day,
        "seed": runner.scenario.seed,
        "households": len(world.households),
        "prosumers": sum(1 for h in world.households if h.is_prosumer),
        "trades": trades,
        "traded_kwh": round(traded_wh / 1000, 3),
        **traded_by_kind((s["kind"], s["traded_kwh"]) for s in rec.sessions),
        "welfare_eur": round(welfare_eur(runner), 6),
        "cost_prosumers_eur": round(sum(r["bill_eur"] for r in rows if r["prosumer"]), 6),
        "cost_consumers_eur": round(sum(r["bill_eur"] for r in rows if not r["prosumer"]), 6),
        "aggregator_credit_eur": round(ops.credit_delta_nano()[AGGREGATOR] / 1e9, 6),
        "peak_import_kw": round(float(state.import_kw.max()), 3),
        "v_min_pu": round(state.v_min_pu, 5),
        "v_max_pu": round(state.v_max_pu, 5),
        "admm_iterations": len(rec.rounds),
        "admm_converged": bool(rec.rounds and rec.rounds[-1]["converged"]),
        "admm_primal_residual_kw": rec.rounds[-1]["primal_residual_kw"] if rec.rounds else None,
        "admm_gas_used": sum(r["gas_used"] for r in rec.rounds),
        "flexibility_calls": len(rec.flex),
        "flexibility_procured_kw": round(sum(f["procured_kw"] for f in rec.flex), 3),
        "sessions": len(rec.sessions),
        "gas_used": ops.gas_used(),
        "xmpp_messages": server_msgs if server_msgs is not None else runner.client_messages,
        "xmpp_messages_counted_by": "server" if server_msgs is not None else "operator agents",
        "messages_rejected": runner.rejected,
        "missing_readings": rec.missing_readings,
        "clearing_matches_reference": rec.clearing_matches,
        "money_conserved": money.conserved,
        "energy_conserved": balanced and ops.energy_supply_wh() == attested_export_wh,
        "wall_time_s": round(wall_time_s, 2),
    }
