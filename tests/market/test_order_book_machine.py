"""A Hypothesis state machine for a VDG market's books: refusals never change anything."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from market.errors import (
    DuplicateOrderError,
    GateClosedError,
    MarketError,
    OrderError,
    UnknownOrderError,
)
from market.orders import Order
from market.vdg import Session, VdgMarket

START = datetime(2026, 11, 22, 12, tzinfo=UTC)
SESSIONS = {
    "da": Session("da", "day-ahead", range(4), START + timedelta(minutes=30)),
    "id": Session("id", "intraday", (2, 3), START + timedelta(minutes=60)),
}
IDS = st.sampled_from([f"o{i}" for i in range(8)])


class MarketMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.market = VdgMarket("m")
        self.market.open_sessions(SESSIONS.values())
        self.model: dict[str, dict[str, Order]] = {s: {} for s in SESSIONS}
        self.now = START

    @rule(minutes=st.integers(0, 20))
    def time_passes(self, minutes):
        self.now += timedelta(minutes=minutes)

    @rule(order_id=IDS, session=st.sampled_from(sorted(SESSIONS)), slot=st.integers(0, 5),
          side=st.sampled_from(["buy", "sell"]), wh=st.integers(1, 9), owner=st.sampled_from("ab"))
    def submit(self, order_id, session, slot, side, wh, owner):
        order = Order(order_id, owner, side, wh / 1000, 0.1, slot, session)
        expected: type[MarketError] | None = None
        if self.now >= SESSIONS[session].gate_closure:
            expected = GateClosedError
        elif order_id in self.model[session]:
            expected = DuplicateOrderError
        elif slot not in SESSIONS[session].slots:
            expected = OrderError
        if expected is None:
            self.market.submit(order, self.now)
            self.model[session][order_id] = order
        else:
            with pytest.raises(expected):
                self.market.submit(order, self.now)

    @rule(order_id=IDS, session=st.sampled_from(sorted(SESSIONS)), owner=st.sampled_from("ab"))
    def cancel(self, order_id, session, owner):
        known = self.model[session].get(order_id)
        try:
            self.market.cancel(session, order_id, self.now, owner=owner)
        except GateClosedError:
            assert self.now >= SESSIONS[session].gate_closure
        except UnknownOrderError:
            assert known is None
        except OrderError:
            assert known is not None
            assert known.owner != owner
        else:
            assert known is not None
            assert known.owner == owner
            assert self.now < SESSIONS[session].gate_closure
            del self.model[session][order_id]

    @invariant()
    def books_match_the_model(self):
        for session, orders in self.model.items():
            assert list(self.market.book(session).orders()) == list(orders.values())


TestMarketMachine = MarketMachine.TestCase
TestMarketMachine.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
