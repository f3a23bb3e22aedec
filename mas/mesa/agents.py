"""Mesa agents: thin shells around the brains of :mod:`mas.brains`.

Each agent holds one brain and turns the model's protocol steps into brain calls; it keeps no
market logic of its own. Households are :class:`mesa.discrete_space.CellAgent` placed on their
feeder bus in the model's network space.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import mesa
from mesa.discrete_space import CellAgent

from market.vdg import Direction
from mas.brains.aggregator import AggregatorBrain
from mas.brains.auctioneer import SessionPlan
from mas.brains.coordination import RoundRequest, answer_round, check_round_rho
from mas.brains.dso import DsoBrain
from mas.brains.household import (
    Delivery,
    FlexOfferIntent,
    HouseholdBrain,
    OrderIntent,
    make_plans,
)
from mas.world import HouseholdSpec

if TYPE_CHECKING:
    from mas.mesa.model import VdgModel

log = logging.getLogger(__name__)

AGGREGATOR_ID = "agg"


class HouseholdAgent(CellAgent):
    """A household: HEMS and trading agent (wraps :class:`HouseholdBrain`).

    Attributes:
        hid: the household's id (``h000`` ...).
        brain: its brain.
        address: its account on the ledger.
        last: its last delivery (``None`` before the first slot).
    """

    def __init__(self, model: VdgModel, spec: HouseholdSpec, brain: HouseholdBrain,
                 address: str) -> None:
        super().__init__(model)
        self.hid = spec.id
        self.spec = spec
        self.brain = brain
        self.address = address
        self.last: Delivery | None = None
        self.cell = model.space[spec.bus]

    def answer_round(self, request: RoundRequest) -> list[float]:
        """Its step of an ADMM round with the DSO: the re-planned net import per slot."""
        return answer_round(self.brain, request)

    def flex_offer(self, slot: int, direction: Direction) -> FlexOfferIntent | None:
        """Its offer to a flexibility call (``None``: nothing to offer)."""
        return self.brain.flex_offer(slot, direction)

    def orders(self, session: SessionPlan) -> OrderIntent:
        """Its orders for a session of the day (day-ahead, intraday or real-time)."""
        return self.brain.session_orders(session)

    def salt(self, session: int) -> bytes:
        """Its commitment salt in an on-chain session."""
        return self.brain.salt(session)

    def deliver(self, slot: int) -> Delivery:
        """Run ``slot`` for real and read the meter."""
        self.last = self.brain.deliver(slot)
        return self.last

    @property
    def soc_frac(self) -> float | None:
        """Battery state of charge (``None`` without a battery)."""
        bat = self.spec.battery
        if bat is None:
            return None
        soc = self.last.soc_kwh if self.last else self.brain._soc_kwh  # read only: no public getter
        return soc / bat.e_max_kwh

    @property
    def net_export_kw(self) -> float:
        """Metered net export of the last delivered slot (0 before delivery)."""
        return self.last.net_export_kw if self.last else 0.0


def answer_rounds(agents: Sequence[HouseholdAgent],
                  requests: Mapping[str, RoundRequest]) -> dict[str, list[float]]:
    """The steps of many households in one ADMM round, by household id.

    The answers of :meth:`HouseholdAgent.answer_round`, the closed-form plans made together
    (:func:`mas.brains.household.make_plans`).

    Raises:
        ProtocolStateError: a round's ρ is not its household's proximal weight.
        PlanError: a plan is not solved.
    """
    for a in agents:
        check_round_rho(a.brain, requests[a.hid])
    asked = [requests[a.hid] for a in agents]
    plans = make_plans([a.brain for a in agents], [r.lam_eur_per_kwh for r in asked],
                       [r.target_import_kw for r in asked])
    return {a.hid: [-x for x in plan.net_export_kw] for a, plan in zip(agents, plans,
                                                                        strict=True)}


class DsoAgent(mesa.Agent):
    """The DSO (wraps :class:`DsoBrain`)."""

    def __init__(self, model: VdgModel, brain: DsoBrain) -> None:
        super().__init__(model)
        self.brain = brain


class AggregatorAgent(mesa.Agent):
    """The aggregator (wraps :class:`AggregatorBrain`); trades in the day-ahead session.

    Attributes:
        address: its account on the ledger.
    """

    def __init__(self, model: VdgModel, brain: AggregatorBrain, address: str,
                 salt_seed: int) -> None:
        super().__init__(model)
        self.hid = AGGREGATOR_ID
        self.brain = brain
        self.address = address
        self.salt_seed = salt_seed

    def orders(self, session: SessionPlan) -> OrderIntent:
        """Its plan in the day-ahead session; nothing in the later sessions."""
        if session.kind == "day-ahead":
            return self.brain.day_ahead_orders(session.slots)
        return OrderIntent((0.0,) * len(session.slots), (0.0,) * len(session.slots))

    def salt(self, session: int) -> bytes:
        """Its commitment salt in an on-chain session (same scheme as the households')."""
        text = f"vdg-salt:{self.salt_seed}:{self.hid}:{session}"
        return hashlib.sha256(text.encode()).digest()
