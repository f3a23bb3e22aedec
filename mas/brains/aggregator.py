"""The aggregator brain: a balance-responsible party that bids its fleet plan into the VDG.

A simple fleet plan for now: the aggregator buys the neighbourhood's expected midday surplus in
the day-ahead local session at the wholesale price plus a premium for the balancing energy it
saves (it resells on the wholesale market), up to its fleet's import capacity per slot. The full
virtual-battery plan of Couraud et al. comes with its own issue.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mas.brains.household import OrderIntent
from mas.world import SLOTS

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FleetPlan:
    """The aggregator's position per slot.

    Attributes:
        buy_kwh: energy it bids for per slot.
        price_eur_per_kwh: its limit price per slot (the wholesale price).
    """

    buy_kwh: tuple[float, ...]
    price_eur_per_kwh: tuple[float, ...]


class AggregatorBrain:
    """A wholesale-facing aggregator.

    Args:
        wholesale_eur_per_kwh: wholesale price per slot.
        capacity_kw: the most it takes per slot.
        share: the share of the expected surplus it bids for.
        premium_eur_per_kwh: what it pays above the wholesale price.
    """

    def __init__(self, wholesale_eur_per_kwh: Sequence[float], capacity_kw: float = 20.0,
                 share: float = 0.5, premium_eur_per_kwh: float = 0.02) -> None:
        self.premium = premium_eur_per_kwh
        self.wholesale = np.asarray(wholesale_eur_per_kwh, dtype=float)
        self.capacity_kw = capacity_kw
        self.share = share
        self.plan: FleetPlan | None = None

    def make_plan(self, expected_net_export_kw: Sequence[float]) -> FleetPlan:
        """Bid for a share of the neighbourhood's expected surplus, slot by slot."""
        surplus = np.clip(np.asarray(expected_net_export_kw, dtype=float), 0, None)
        buy = np.minimum(self.share * surplus, self.capacity_kw)
        buy = np.round(buy, 3) + 0.0
        price = np.where(buy > 0, np.round(np.clip(self.wholesale + self.premium, 0.0, None), 6),
                         0.0)
        self.plan = FleetPlan(tuple(buy.tolist()), tuple(price.tolist()))
        return self.plan

    def day_ahead_orders(self, slots: Sequence[int]) -> OrderIntent:
        """The plan as an order intent for the day-ahead session."""
        plan = self.plan or FleetPlan((0.0,) * SLOTS, (0.0,) * SLOTS)
        return OrderIntent(tuple(plan.buy_kwh[t] for t in slots),
                           tuple(plan.price_eur_per_kwh[t] for t in slots))

    def wholesale_revenue_eur(self, bought_wh: Sequence[int], slots: Sequence[int]) -> float:
        """What reselling the energy bought in ``slots`` earns on the wholesale market."""
        return float(sum(w / 1000 * self.wholesale[t] for w, t in zip(bought_wh, slots,
                                                                       strict=True)))
