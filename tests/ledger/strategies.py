"""Hypothesis strategies of the ledger tests (one module, shared by the property tests)."""

from __future__ import annotations

from hypothesis import strategies as st

from ledger.orders import OrderVector, SlotOrder

MAX_HOUSEHOLDS = 8
PRICES = [50_000 * k for k in range(1, 9)]  # few distinct prices: ties are common


@st.composite
def books(draw: st.DrawFn) -> list[OrderVector]:
    n = draw(st.integers(2, MAX_HOUSEHOLDS))
    n_slots = draw(st.integers(1, 3))
    vectors = []
    for _ in range(n):
        slots = []
        for _ in range(n_slots):
            qty = draw(
                st.one_of(
                    st.just(0), st.integers(-4000, 4000), st.sampled_from([-1000, 1000, 1, -1])
                )
            )
            slots.append(SlotOrder(qty, draw(st.sampled_from(PRICES)) if qty else 0))
        if all(s.qty_wh == 0 for s in slots):
            slots[0] = SlotOrder(draw(st.sampled_from([-700, 700])), draw(st.sampled_from(PRICES)))
        vectors.append(OrderVector(tuple(slots)))
    return vectors
