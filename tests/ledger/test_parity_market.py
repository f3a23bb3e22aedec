"""Books cleared on chain equal ``market``'s Huang clearing of the same orders.

``ledger`` itself never imports ``market``; this test does, to hold the two to one rule. Order
ids are ``"<household index>-<slot>"`` zero-padded, so ``market``'s tie rule (id order) is the
contract's (household index order).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from ledger.client import Web3Ledger
from ledger.orders import OrderVector, SlotOrder
from market.auction import huang
from market.orders import OrderTable
from tests.ledger.strategies import MAX_HOUSEHOLDS, books

pytestmark = pytest.mark.chain


@pytest.fixture(scope="module")
def pool() -> tuple[Web3Ledger, list[str]]:
    led = Web3Ledger.deploy()
    return led, led.add_households(MAX_HOUSEHOLDS, credit_eur=10_000.0)


def _market_clearing(
    vectors: list[OrderVector],
) -> tuple[dict[tuple[int, int], int], dict[int, tuple[int, int, int]]]:
    rows = [
        (i, t, s) for i, v in enumerate(vectors) for t, s in enumerate(v.slots) if s.qty_wh != 0
    ]
    table = OrderTable.from_arrays(
        is_buy=np.array([s.qty_wh > 0 for _, _, s in rows], dtype=bool),
        quantity_wh=np.array([abs(s.qty_wh) for _, _, s in rows], dtype=np.int64),
        price_ueur_per_kwh=np.array([s.price_ueur_per_kwh for _, _, s in rows], dtype=np.int64),
        slot=np.array([t for _, t, _ in rows], dtype=np.int64),
        ids=[f"{i:04d}-{t:03d}" for i, t, _ in rows],
    )
    cl = huang(table)
    fills = {}
    for (i, t, s), filled in zip(rows, cl.filled_wh, strict=True):
        fills[(i, t)] = int(filled) if s.qty_wh > 0 else -int(filled)
    slots = {
        sc.slot: (sc.buy_price_ueur_per_kwh or 0, sc.sell_price_ueur_per_kwh or 0, sc.traded_wh)
        for sc in cl.slots
        if sc.traded_wh
    }
    return fills, slots


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(vectors=books())
def test_chain_clears_like_market(
    pool: tuple[Web3Ledger, list[str]], vectors: list[OrderVector]
) -> None:
    led, all_hh = pool
    hh = all_hh[: len(vectors)]
    n_slots = len(vectors[0].slots)
    sid = led.open_session(0, n_slots, commit_s=60, reveal_s=60)
    for h, v in zip(hh, vectors, strict=True):
        led.commit(sid, h, v)
    led.advance_time(61)
    for h in hh:
        led.reveal(sid, h)
    led.advance_time(61)
    chain = led.clear(sid)
    fills, slots = _market_clearing(vectors)
    for i, h in enumerate(hh):
        assert chain.households[i] == h
        for t in range(n_slots):
            assert chain.cleared_wh[i][t] == fills.get((i, t), 0), (i, t)
    for sc in chain.slots:
        expected = slots.get(sc.slot, (0, 0, 0))
        assert (sc.buy_price_ueur_per_kwh, sc.sell_price_ueur_per_kwh, sc.volume_wh) == expected


def test_parity_sees_a_difference() -> None:
    """The comparison is not vacuous: a book where the break-even pair matters."""
    vectors = [
        OrderVector((SlotOrder(1000, 300_000),)),
        OrderVector((SlotOrder(2000, 250_000),)),
        OrderVector((SlotOrder(-1500, 50_000),)),
        OrderVector((SlotOrder(-1000, 200_000),)),
    ]
    fills, slots = _market_clearing(vectors)
    assert fills == {(0, 0): 1000, (1, 0): 0, (2, 0): -1000, (3, 0): 0}
    assert slots == {0: (250_000, 200_000, 1000)}
