"""The summary of a Mesa day (the fields of ``vdg run``'s ``summary.json``) and its settlement.

Cost model of a household: what it paid the market on the ledger (Credit before minus after,
penalties included) plus the retail supplier's bill for its residual, slot by slot: metered
import not covered by its net local purchase is bought at the retail import price, the rest sold
at the feed-in price. ``welfare_eur`` is the gains from trade at the revealed limit prices,
computed as in the SPADE runtime (:func:`mas.brains.auctioneer.gains_from_trade_nano`);
``savings_vs_retail_eur`` is what the local market saved every participant against retail only
(the same metered flows, all at retail prices), plus the aggregator's wholesale resale margin and
the market treasury's take (trade surplus, penalties).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mas.tables import traded_by_kind
from mas.world import SLOTS

if TYPE_CHECKING:
    from mas.mesa.model import VdgModel

NANO = 1e9


@dataclass(frozen=True, slots=True)
class DaySettlement:
    """What a day settled, by participant id (comparable across runtimes and ledgers).

    Attributes:
        cleared_wh: per (session name, participant), Wh bought (> 0) or sold (< 0) per slot.
        prices_ueur_per_kwh: per session name, (buyer price, seller price) per slot, µEUR/kWh.
        credit_change_nano: per participant, Credit after the day minus before, nEUR.
    """

    cleared_wh: dict[tuple[str, str], tuple[int, ...]]
    prices_ueur_per_kwh: dict[str, tuple[tuple[int, int], ...]]
    credit_change_nano: dict[str, int]


def day_settlement(model: VdgModel) -> DaySettlement:
    """The trades, prices and payments of a finished (or running) day."""
    cleared = {}
    prices = {}
    for rec in model.sessions:
        for who, row in zip(rec.participants, rec.cleared_wh, strict=True):
            if any(row):
                cleared[(rec.plan.name, who)] = tuple(row)
        prices[rec.plan.name] = tuple(
            (round(b * 1e6), round(s * 1e6))
            for b, s in zip(rec.buy_price_eur_per_kwh, rec.sell_price_eur_per_kwh, strict=True))
    change = {p.hid: model.ledger.credit_nano(p.address) - model.credit_start_nano[p.hid]
              for p in model.participants}
    return DaySettlement(cleared, prices, change)


def _local_kwh(model: VdgModel) -> dict[str, np.ndarray]:
    """Net local purchase per participant and global slot, kWh."""
    out: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(SLOTS))
    for rec in model.sessions:
        for who, row in zip(rec.participants, rec.cleared_wh, strict=True):
            out[who][list(rec.plan.slots)] += np.asarray(row, dtype=float) / 1000.0
    return out


def day_summary(model: VdgModel, wall_time_s: float) -> dict[str, Any]:
    """The run summary (the fields of the SPADE runtime's ``summary.json``, and phase times).

    ``wall_time_s`` runs from the model's construction (world, ledger, agents) to the end of
    the day; ``setup_s`` and ``<phase>_s`` split it.
    """
    led = model.ledger
    imp = np.asarray(model.world.import_eur_per_kwh)
    exp = np.asarray(model.world.export_eur_per_kwh)
    local = _local_kwh(model)
    settle = day_settlement(model)
    cost_pro = cost_con = 0.0
    savings = 0.0
    for k, h in enumerate(model.households):
        metered = model.metered_kw[:, k]  # hourly slots: kWh
        residual = -metered - local[h.hid]
        retail = float(np.sum(np.where(residual > 0, residual * imp, residual * exp)))
        paid = -settle.credit_change_nano[h.hid] / NANO
        cost = paid + retail
        alone = float(np.sum(np.where(metered < 0, -metered * imp, -metered * exp)))
        savings += alone - cost
        if h.spec.is_prosumer:
            cost_pro += cost
        else:
            cost_con += cost
    agg = model.aggregator
    bought = local[agg.hid]
    savings += float(np.sum(bought * np.asarray(model.world.wholesale_eur_per_kwh)))
    savings += settle.credit_change_nano[agg.hid] / NANO
    savings += (led.credit_nano(led.deployment.treasury) - model.treasury_start_nano) / NANO
    welfare = sum(r.gains_nano for r in model.sessions) / NANO
    trades = sum(1 for row in settle.cleared_wh.values() for x in row if x)
    traded_kwh = sum(sum(r.volume_kwh) for r in model.sessions)
    balanced = all(sum(row[t] for row in r.cleared_wh) == 0
                   for r in model.sessions for t in range(len(r.plan.slots)))
    exported_wh = sum(max(round(e * 1000), 0) for readings in model.dso.brain.attested.values()
                      for e in readings.values())
    accounts = [p.address for p in model.participants] + [led.deployment.treasury]
    supply = led.credit_supply_nano()
    money_ok = (supply == model.credit_supply_start_nano
                and led.credit_nano(led.deployment.market) == 0
                and sum(led.credit_nano(a) for a in accounts)
                == sum(model.credit_start_nano.values()) + model.treasury_start_nano)
    import_kw = -model.metered_kw.sum(axis=1)
    state = model.metered_state
    gas = sum(r.gas_used for r in getattr(led, "gas_log", []))
    history = model.dso.brain.admm.history
    return {
        "runtime": "mesa",
        "ledger": model.ledger_kind,
        "scenario": model.vdg.name,
        "seed": model.vdg.seed,
        "households": len(model.households),
        "trades": trades,
        "traded_kwh": round(traded_kwh, 3),
        **traded_by_kind((r.plan.kind, sum(r.volume_kwh)) for r in model.sessions),
        "welfare_eur": round(welfare, 6),
        "savings_vs_retail_eur": round(savings, 6),
        "cost_prosumers_eur": round(cost_pro, 6),
        "cost_consumers_eur": round(cost_con, 6),
        "peak_import_kw": round(float(import_kw.max()), 3),
        "v_min_pu": round(state.v_min_pu, 6) if state is not None else None,
        "v_max_pu": round(state.v_max_pu, 6) if state is not None else None,
        "admm_iterations": model.rounds,
        "admm_converged": bool(history and history[-1].converged),
        "admm_primal_residual_kw": history[-1].primal_residual_kw if history else None,
        "admm_gas_used": sum(r.gas_used for r in history),
        "flex_calls": model.flex_calls,
        "flex_kw": round(model.flex_kw, 3),
        "sessions": len(model.sessions),
        "gas_used": gas,
        "xmpp_messages": 0,
        "money_conserved": bool(money_ok),
        "energy_conserved": bool(balanced and led.energy_supply_wh() == exported_wh),
        "wall_time_s": round(wall_time_s, 3),
        "setup_s": round(model.setup_s, 3),
        **{f"{k}_s": round(v, 3) for k, v in model.phase_s.items()},
    }
