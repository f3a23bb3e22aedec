"""Known answers worked by hand from each mechanism's definition (docs/market.md)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.auction import (
    MECHANISMS,
    _reduction_step,
    clear,
    efficient,
    equal_reduction,
    huang,
    mcafee,
    pay_as_bid,
    uniform,
)
from market.errors import MechanismError, UnknownOrderError
from market.orders import Order, OrderTable


def _o(order_id: str, side: str, kwh: float, eur: float, slot: int = 0) -> Order:
    return Order(order_id, f"h-{order_id}", side, kwh, eur, slot)


def _filled(clearing, order_id):
    return clearing.fill(order_id).filled_wh


def _price(clearing, order_id):
    return clearing.fill(order_id).price_ueur_per_kwh


# --- one-cent grid: b 0.30 0.25 0.20, s 0.10 0.20 0.30, 1 kWh each -----------------------------
# B = 1,2,3 kWh; S = 1,2,3 kWh. Buyer 3 faces s(2 kWh+) = 0.30 > 0.20: inefficient. Seller 3 faces
# d(2 kWh+) = 0.20 < 0.30: inefficient. Break-even pair (b2 @ 0.25, s2 @ 0.20), Q* = 2 kWh.
CENT_GRID = [
    _o("b1", "buy", 1, 0.30),
    _o("b2", "buy", 1, 0.25),
    _o("b3", "buy", 1, 0.20),
    _o("s1", "sell", 1, 0.10),
    _o("s2", "sell", 1, 0.20),
    _o("s3", "sell", 1, 0.30),
]


def test_huang_cent_grid_excludes_the_break_even_pair():
    c = huang(CENT_GRID)
    assert [f.filled_wh for f in c.fills()] == [1000, 0, 0, 1000, 0, 0]
    assert _price(c, "b1") == 250_000  # first excluded buyer's price
    assert _price(c, "s1") == 200_000  # first excluded seller's price
    (slot,) = c.slots
    assert (slot.break_even_buy, slot.break_even_sell) == ("b2", "s2")
    assert slot.efficient_wh == 2000
    assert c.traded_wh == 1000
    assert c.auctioneer_surplus_neur == 1000 * 50_000  # 1 kWh × 0.05 EUR = 0.05 EUR
    assert c.excluded == ("b2", "b3", "s2", "s3")


def test_curves_meeting_at_an_equal_price_trade():
    # b 0.30 0.20, s 0.10 0.20: the curves meet at 0.20. The pair (b2, s2) has zero gain but is
    # efficient under the >= rule, so it is the break-even pair and (b1, s1) trade at 0.20.
    # A strict > rule would make (b1, s1) the break-even pair and trade nothing.
    book = [_o("b1", "buy", 1, 0.30), _o("b2", "buy", 1, 0.20),
            _o("s1", "sell", 1, 0.10), _o("s2", "sell", 1, 0.20)]
    c = huang(book)
    assert c.traded_wh == 1000
    assert _price(c, "b1") == _price(c, "s1") == 200_000
    assert c.auctioneer_surplus_neur == 0


def test_equal_prices_are_ordered_by_id():
    # buyers a 0.30, then b and c both 0.20 -> b before c (id order), whatever the input order.
    # sellers s1 0.10 2 kWh, s2 0.15 2 kWh. B = 1,2,3; S = 2,4. All three buyers efficient
    # (c faces s(2+) = 0.15 <= 0.20); both sellers efficient (s2 faces d(2+) = 0.20 >= 0.15).
    # Break-even pair (c, s2); a and b buy 2 kWh at 0.20, s1 sells 2 kWh at 0.15.
    book = [_o("c", "buy", 1, 0.20), _o("a", "buy", 1, 0.30), _o("b", "buy", 1, 0.20),
            _o("s2", "sell", 2, 0.15), _o("s1", "sell", 2, 0.10)]
    c = huang(book)
    assert (_filled(c, "a"), _filled(c, "b"), _filled(c, "c")) == (1000, 1000, 0)
    assert (_filled(c, "s1"), _filled(c, "s2")) == (2000, 0)
    assert _price(c, "a") == 200_000
    assert _price(c, "s1") == 150_000
    # rename b -> d: now c precedes d at 0.20
    renamed = [Order("d", o.owner, o.side, o.quantity_kwh, o.price_eur_per_kwh, o.slot)
               if o.id == "b" else o for o in book]
    c2 = huang(renamed)
    assert (_filled(c2, "c"), _filled(c2, "d")) == (1000, 0)


# --- a long side that must be reduced, with a participant dropping out -------------------------
# buyers b1 0.50 5 kWh, b2 0.45 0.5 kWh, b3 0.40 3 kWh, b4 0.30 2 kWh; sellers s1 0.10 2 kWh,
# s2 0.20 2 kWh, s3 0.35 10 kWh. B = 5, 5.5, 8.5, 10.5; S = 2, 4, 14.
# b3 faces s(5.5+) = 0.35 <= 0.40 (efficient); b4 faces s(8.5+) = 0.35 > 0.30 (not).
# s3 faces d(4+) = 0.50 >= 0.35 (efficient). Break-even (b3 @ 0.40, s3 @ 0.35); Q* = 8.5 kWh.
# Huang: b1, b2 want 5.5 kWh, s1, s2 offer 4 kWh -> buyers reduce 1.5 kWh equally: 0.75 each
# would push b2 below zero, so b2 drops out and b1 alone is reduced to 4 kWh.
LONG_BUYERS = [
    _o("b1", "buy", 5, 0.50),
    _o("b2", "buy", 0.5, 0.45),
    _o("b3", "buy", 3, 0.40),
    _o("b4", "buy", 2, 0.30),
    _o("s1", "sell", 2, 0.10),
    _o("s2", "sell", 2, 0.20),
    _o("s3", "sell", 10, 0.35),
]


def test_huang_reduces_the_long_side_equally_and_drops_a_small_member():
    c = huang(LONG_BUYERS)
    assert [f.filled_wh for f in c.fills()] == [4000, 0, 0, 0, 2000, 2000, 0]
    assert _price(c, "b1") == 400_000
    assert _price(c, "s1") == _price(c, "s2") == 350_000
    assert c.auctioneer_surplus_neur == 4000 * 50_000  # 4 kWh × 0.05 EUR
    assert set(c.excluded) == {"b2", "b3", "b4", "s3"}


def test_efficient_prices_at_the_partially_filled_sellers_price():
    # Q* = 8.5 kWh = B_3 < S_3: s3 is filled partially (4.5 kWh), so the clearing price is 0.35.
    c = efficient(LONG_BUYERS)
    assert [f.filled_wh for f in c.fills()] == [5000, 500, 3000, 0, 2000, 2000, 4500]
    assert set(c.price_ueur_per_kwh[c.filled_wh > 0]) == {350_000}
    assert c.auctioneer_surplus_neur == 0


def test_uniform_k_price_between_break_even_prices():
    c = uniform(LONG_BUYERS, k=0.5)
    assert [f.filled_wh for f in c.fills()] == [5000, 500, 3000, 0, 2000, 2000, 4500]
    assert c.slots[0].buy_price_ueur_per_kwh == 375_000  # 0.35 + 0.5 × (0.40 − 0.35)
    assert uniform(LONG_BUYERS, k=0).slots[0].buy_price_ueur_per_kwh == 350_000
    assert uniform(LONG_BUYERS, k=1).slots[0].buy_price_ueur_per_kwh == 400_000


def test_pay_as_bid_charges_own_prices():
    c = pay_as_bid(LONG_BUYERS)
    assert _price(c, "b2") == 450_000
    assert _price(c, "s3") == 350_000
    # surplus = 5×0.50 + 0.5×0.45 + 3×0.40 − (2×0.10 + 2×0.20 + 4.5×0.35) = 3.925 − 2.175 EUR
    assert c.auctioneer_surplus_neur == 1_750_000_000
    assert c.slots[0].buy_price_ueur_per_kwh is None


def test_mcafee_without_a_first_excluded_seller_reduces_like_huang():
    # there is no seller after s3, so p0 does not exist and McAfee falls back to trade reduction
    assert list(mcafee(LONG_BUYERS).filled_wh) == list(huang(LONG_BUYERS).filled_wh)


def test_mcafee_trades_everything_at_p0_when_it_lies_between_the_break_even_prices():
    # unit orders: b 0.9 0.7 0.5 0.2, s 0.1 0.3 0.4 0.8. Efficient pairs: (0.9,0.1), (0.7,0.3),
    # (0.5,0.4); break-even (0.5, 0.4). p0 = (0.2 + 0.8)/2 = 0.5 in [0.4, 0.5]: three units trade.
    book = [_o(f"b{i}", "buy", 1, p) for i, p in enumerate((0.9, 0.7, 0.5, 0.2))]
    book += [_o(f"s{i}", "sell", 1, p) for i, p in enumerate((0.1, 0.3, 0.4, 0.8))]
    c = mcafee(book)
    assert c.traded_wh == 3000
    assert c.slots[0].buy_price_ueur_per_kwh == 500_000
    # with b4 at 0.05, p0 = 0.425 still in range; with s4 at 0.99, p0 = 0.595 > 0.5: reduction
    book[-1] = _o("s3", "sell", 1, 0.99)
    c = mcafee(book)
    assert c.traded_wh == 2000
    assert c.slots[0].buy_price_ueur_per_kwh == 500_000
    assert c.slots[0].sell_price_ueur_per_kwh == 400_000


def test_walrasian_midpoint_when_both_marginal_traders_are_filled_exactly():
    # b 0.9, 0.5 ; s 0.1, 0.6 (1 kWh each): Q* = 1 kWh = B_1 = S_1; clearing interval
    # [max(s1, b2), min(b1, s2)] = [0.5, 0.6] -> midpoint 0.55
    book = [_o("b1", "buy", 1, 0.9), _o("b2", "buy", 1, 0.5),
            _o("s1", "sell", 1, 0.1), _o("s2", "sell", 1, 0.6)]
    assert efficient(book).slots[0].buy_price_ueur_per_kwh == 550_000


def test_one_buyer_and_one_seller_never_trade_in_huang():
    book = [_o("b", "buy", 1, 0.9), _o("s", "sell", 1, 0.1)]
    assert huang(book).traded_wh == 0
    assert efficient(book).traded_wh == 1000


def test_no_crossing_and_one_sided_books_trade_nothing():
    for book in ([_o("b", "buy", 1, 0.1), _o("s", "sell", 1, 0.2)], [_o("b", "buy", 1, 0.3)], []):
        for name in MECHANISMS:
            c = clear(book, name)
            assert c.traded_wh == 0
            assert c.auctioneer_surplus_neur == 0
            assert all(s.buy_price_ueur_per_kwh is None for s in c.slots)


def test_slots_clear_independently():
    book = [_o(o.id + "@1", o.side, o.quantity_kwh, o.price_eur_per_kwh, slot=1) for o in CENT_GRID]
    c = huang(CENT_GRID + book)
    assert [s.slot for s in c.slots] == [0, 1]
    assert c.slot(0).traded_wh == c.slot(1).traded_wh == 1000
    assert c.traded_wh == 2000
    with pytest.raises(UnknownOrderError, match="slot 7"):
        c.slot(7)


def test_equal_reduction_leftover_goes_to_the_largest_ids():
    # 3 × 3 Wh down to 7 Wh: r = 0 (F(1) = 6 < 7), 2 Wh left over -> ranks 1 and 2 lose 1 Wh
    assert list(equal_reduction(np.array([3, 3, 3]), np.array([0, 1, 2]), 7)) == [3, 2, 2]
    # [10, 1, 4] down to 9: F(2) = 8 + 0 + 2 = 10 >= 9 > F(3) = 8, so r = 2 and 1 Wh is left over;
    # the 1 Wh member drops out; of the members still trading, rank 2 (q = 4) loses it.
    assert list(equal_reduction(np.array([10, 1, 4]), np.array([0, 1, 2]), 9)) == [8, 0, 1]
    assert list(equal_reduction(np.array([5, 5]), np.array([1, 0]), 10)) == [5, 5]
    assert list(equal_reduction(np.array([5, 5]), np.array([1, 0]), 0)) == [0, 0]


@settings(deadline=None, max_examples=200)
@given(q=st.lists(st.integers(1, 60), min_size=1, max_size=12), data=st.data())
def test_reduction_step_both_paths_match_a_scan(q, data):
    # the fixed point (rounds=8) and the sort-based formula (rounds=0) against a linear scan
    quantity = np.array(q, dtype=np.int64)
    total = int(quantity.sum())
    if total < 2:
        return
    target = data.draw(st.integers(1, total - 1))
    expected = max(r for r in range(max(q) + 1) if np.maximum(quantity - r, 0).sum() >= target)
    assert _reduction_step(quantity, total, target) == expected
    assert _reduction_step(quantity, total, target, rounds=0) == expected
    reduced = equal_reduction(quantity, np.arange(len(q)), target)
    assert reduced.sum() == target
    base = np.maximum(quantity - expected, 0)
    assert np.all((reduced == base) | (reduced == base - 1))


def test_clear_refuses_unknown_mechanism_and_bad_k():
    with pytest.raises(MechanismError, match="mechanism must be one of"):
        clear(CENT_GRID, "vickrey")
    for k in (-0.1, 1.5, float("nan"), "0.5", True):
        with pytest.raises(MechanismError, match="k must be"):
            clear(CENT_GRID, "uniform", k=k)


def test_clearing_is_frozen_and_read_only():
    c = huang(OrderTable.from_orders(CENT_GRID))
    with pytest.raises(ValueError, match="read-only"):
        c.filled_wh[0] = 5
    with pytest.raises(AttributeError):
        c.mechanism = "x"  # type: ignore[misc]
    assert c.fill("b1").filled_kwh == 1.0
    assert c.fill("b1").price_eur_per_kwh == 0.25
    assert c.fill("b3").price_eur_per_kwh is None


def test_huang_reduces_long_sellers_and_leftover_wh_go_to_the_largest_ids():
    # Wh quantities. buyers B1 0.90 × 4, B2 0.80 × 3, B3 0.20 × 10; sellers sa, sb, sc 0.10 × 3,
    # sd 0.15 × 3, se 0.50 × 5. B = 4, 7, 17; S = 3, 6, 9, 12, 17. B3 faces s(7+) = sc 0.10
    # <= 0.20: efficient, K = B3. sd faces d(9+) = B3 0.20 >= 0.15: efficient; se faces
    # d(12+) = 0.20 < 0.50: not, so L = sd. B1, B2 buy 7 Wh at 0.20; sa, sb, sc offer 9 Wh at 0.15:
    # r = 0 (F(1) = 6 < 7), 2 Wh left over, taken from the largest ids sb and sc.
    wh = [("B1", "buy", 4, 0.90), ("B2", "buy", 3, 0.80), ("B3", "buy", 10, 0.20),
          ("sa", "sell", 3, 0.10), ("sb", "sell", 3, 0.10), ("sc", "sell", 3, 0.10),
          ("sd", "sell", 3, 0.15), ("se", "sell", 5, 0.50)]
    book = [_o(i, side, q / 1000, p) for i, side, q, p in wh]
    c = huang(book)
    assert [f.filled_wh for f in c.fills()] == [4, 3, 0, 3, 2, 2, 0, 0]
    assert (c.slots[0].break_even_buy, c.slots[0].break_even_sell) == ("B3", "sd")
    assert (c.slots[0].buy_price_ueur_per_kwh, c.slots[0].sell_price_ueur_per_kwh) == (
        200_000, 150_000)
    assert c.auctioneer_surplus_neur == 7 * 50_000


def test_pay_as_bid_surplus_is_exact_beyond_64_bits():
    # 20 × 1 GWh at up to 1000 EUR/kWh: sums of nEUR beyond 2**63 stay exact
    book = [_o(f"b{i:02d}", "buy", 1e6, 1000.0) for i in range(20)]
    book += [_o(f"s{i:02d}", "sell", 1e6, -1000.0) for i in range(20)]
    c = pay_as_bid(book)
    assert c.traded_wh == 20 * 10**9
    assert c.auctioneer_surplus_neur == 20 * 10**9 * 2 * 10**9
    assert c.auctioneer_surplus_neur > 2**63
