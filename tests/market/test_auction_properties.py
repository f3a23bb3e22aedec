"""Hypothesis properties of every mechanism, and strategy-proofness of Huang et al.'s."""

import dataclasses
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from market_strategies import max_welfare_neur, orders, reference_break_even

from market.auction import MECHANISMS, Clearing, clear, huang
from market.orders import Order

FAST = settings(deadline=None, max_examples=120)


def _utility_neur(clearing: Clearing, order: Order) -> int:
    """Gain at the true limit price: (value − price) × Wh for a buyer, mirrored for a seller."""
    fill = clearing.fill(order.id)
    if not fill.filled_wh:
        return 0
    gap = order.price_ueur_per_kwh - fill.price_ueur_per_kwh
    return fill.filled_wh * (gap if order.is_buy else -gap)


def _by_id(clearing: Clearing) -> dict[str, tuple[int, int | None]]:
    return {f.order_id: (f.filled_wh, f.price_ueur_per_kwh) for f in clearing.fills()}


@pytest.mark.parametrize("mechanism", MECHANISMS)
@FAST
@given(book=orders(slots=3))
def test_feasible_individually_rational_and_weakly_budget_balanced(mechanism, book):
    c = clear(book, mechanism)
    bought: dict[int, int] = defaultdict(int)
    sold: dict[int, int] = defaultdict(int)
    paid = received = 0
    for order in book:
        fill = c.fill(order.id)
        assert 0 <= fill.filled_wh <= order.quantity_wh
        if fill.filled_wh:
            # nobody trades beyond their limit price (individual rationality)
            if order.is_buy:
                assert fill.price_ueur_per_kwh <= order.price_ueur_per_kwh
            else:
                assert fill.price_ueur_per_kwh >= order.price_ueur_per_kwh
            assert _utility_neur(c, order) >= 0
        if order.is_buy:
            bought[order.slot] += fill.filled_wh
            paid += fill.money_neur
        else:
            sold[order.slot] += fill.filled_wh
            received += fill.money_neur
    for slot_index in bought.keys() | sold.keys():
        assert bought[slot_index] == sold[slot_index]
    for slot in c.slots:
        assert bought[slot.slot] == sold[slot.slot] == slot.traded_wh
        assert slot.traded_wh <= slot.efficient_wh
    assert c.auctioneer_surplus_neur == paid - received >= 0
    assert c.traded_wh == sum(bought.values())
    assert set(c.excluded) == {o.id for o in book if c.fill(o.id).filled_wh == 0}


@pytest.mark.parametrize("mechanism", MECHANISMS)
@FAST
@given(book=orders(slots=2), data=st.data())
def test_deterministic_and_independent_of_input_order(mechanism, book, data):
    shuffled = data.draw(st.permutations(book))
    first = _by_id(clear(book, mechanism))
    assert _by_id(clear(book, mechanism)) == first
    assert _by_id(clear(shuffled, mechanism)) == first


@pytest.mark.parametrize("mechanism", MECHANISMS)
@FAST
@given(book=orders())
def test_break_even_pair_matches_a_unit_by_unit_reference(mechanism, book):
    q_star, buyer, seller = reference_break_even(book)
    slots = clear(book, mechanism).slots
    if not slots:
        assert not book
        return
    (slot,) = slots
    assert (slot.efficient_wh, slot.break_even_buy, slot.break_even_sell) == (q_star, buyer, seller)


@pytest.mark.parametrize("mechanism", ["efficient", "uniform", "pay-as-bid"])
@FAST
@given(book=orders())
def test_efficient_allocation_mechanisms_reach_the_largest_gains_from_trade(mechanism, book):
    c = clear(book, mechanism)
    value = sum(
        (1 if o.is_buy else -1) * c.fill(o.id).filled_wh * o.price_ueur_per_kwh for o in book
    )
    assert value == max_welfare_neur(book)


def _reference_huang(book: list[Order]) -> dict[str, int]:
    """Huang's allocation straight from the definition, with Python lists and a scan over r."""
    q_star, k_id, l_id = reference_break_even(book)
    fills = {o.id: 0 for o in book}
    if not q_star:
        return fills
    buyers = sorted((o for o in book if o.is_buy), key=lambda o: (-o.price_ueur_per_kwh, o.id))
    sellers = sorted((o for o in book if not o.is_buy), key=lambda o: (o.price_ueur_per_kwh, o.id))
    ahead_b = buyers[: [o.id for o in buyers].index(k_id)]
    ahead_s = sellers[: [o.id for o in sellers].index(l_id)]
    volume = min(sum(o.quantity_wh for o in ahead_b), sum(o.quantity_wh for o in ahead_s))
    for side in (ahead_b, ahead_s):
        if not side or not volume:
            continue
        r = max(r for r in range(max(o.quantity_wh for o in side) + 1)
                if sum(max(o.quantity_wh - r, 0) for o in side) >= volume)
        got = {o.id: max(o.quantity_wh - r, 0) for o in side}
        extra = sum(got.values()) - volume
        for order_id in sorted((i for i in got if got[i] > 0), reverse=True)[:extra]:
            got[order_id] -= 1
        fills.update(got)
    return fills


@FAST
@given(book=orders(max_size=16))
def test_huang_matches_the_definition(book):
    c = huang(book)
    assert {f.order_id: f.filled_wh for f in c.fills()} == _reference_huang(book)


@settings(deadline=None, max_examples=150)
@given(book=orders(min_size=2, max_size=14), data=st.data())
def test_huang_no_unilateral_price_misreport_pays(book, data):
    deviator = data.draw(st.sampled_from(book))
    truthful = _utility_neur(huang(book), deviator)
    # every cent of the grid, and just above / below every other order's price
    candidates = {c / 100 for c in range(-2, 15)}
    for other in book:
        for delta in (-1e-6, 0.0, 1e-6):
            candidates.add(round(other.price_eur_per_kwh + delta, 6))
    candidates.add(data.draw(st.floats(min_value=-1, max_value=1, allow_nan=False)))
    for price in sorted(candidates):
        lie = dataclasses.replace(deviator, price_eur_per_kwh=price)
        book_lie = [lie if o.id == deviator.id else o for o in book]
        assert _utility_neur(huang(book_lie), deviator) <= truthful, (deviator, price)


@FAST
@given(book=orders(min_size=2, max_size=14), data=st.data())
def test_huang_trades_no_more_than_the_efficient_volume_and_is_ir_for_excluded(book, data):
    c = huang(book)
    q_star = reference_break_even(book)[0]
    assert c.traded_wh <= q_star
    # the break-even pair never trades
    for slot in c.slots:
        for order_id in (slot.break_even_buy, slot.break_even_sell):
            if order_id is not None:
                assert c.fill(order_id).filled_wh == 0


def test_pay_as_bid_is_not_strategy_proof():
    # a check that the misreport test has teeth: under pay-as-bid a buyer gains by shading its bid
    book = [Order("b1", "h1", "buy", 1, 0.30, 0), Order("b2", "h2", "buy", 1, 0.10, 0),
            Order("s1", "h3", "sell", 1, 0.05, 0), Order("s2", "h4", "sell", 1, 0.40, 0)]
    truthful = _utility_neur(clear(book, "pay-as-bid"), book[0])
    lie = dataclasses.replace(book[0], price_eur_per_kwh=0.2)
    assert _utility_neur(clear([lie, *book[1:]], "pay-as-bid"), book[0]) > truthful
    assert np.all(clear(book, "pay-as-bid").filled_wh >= 0)


@FAST
@given(book=orders())
def test_efficient_price_is_a_competitive_equilibrium(book):
    # at the Walrasian price every buyer above it and every seller below it is filled in full,
    # and nobody on the wrong side of it trades
    c = clear(book, "efficient")
    if not c.traded_wh:
        return
    (slot,) = c.slots
    p = slot.buy_price_ueur_per_kwh
    assert p == slot.sell_price_ueur_per_kwh
    for o in book:
        filled = c.fill(o.id).filled_wh
        gain = (o.price_ueur_per_kwh - p) * (1 if o.is_buy else -1)
        if gain > 0:
            assert filled == o.quantity_wh, o
        elif gain < 0:
            assert filled == 0, o


@settings(deadline=None, max_examples=100)
@given(book=orders(min_size=2, max_size=12, max_wh=1), data=st.data())
def test_mcafee_is_truthful_for_unit_orders(book, data):
    # McAfee (1992) is dominant-strategy truthful when every order is for one unit (here 1 Wh)
    deviator = data.draw(st.sampled_from(book))
    truthful = _utility_neur(clear(book, "mcafee"), deviator)
    candidates = {c / 100 for c in range(-2, 15)}
    candidates |= {round(o.price_eur_per_kwh + d, 6) for o in book for d in (-1e-6, 1e-6)}
    for price in sorted(candidates):
        lie = dataclasses.replace(deviator, price_eur_per_kwh=price)
        book_lie = [lie if o.id == deviator.id else o for o in book]
        assert _utility_neur(clear(book_lie, "mcafee"), deviator) <= truthful, (deviator, price)
