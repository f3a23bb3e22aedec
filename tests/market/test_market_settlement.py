"""Settlement: a case worked by hand, exact conservation on every path, bad records."""

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from market_strategies import orders

from market.auction import MECHANISMS, clear, huang
from market.errors import SettlementError
from market.orders import Order
from market.settlement import (
    MARKET,
    SUPPLIER,
    Contract,
    Reason,
    contracts_from_clearing,
    settle,
    settle_contracts,
)
from market.vdg import Tariff

TARIFF = Tariff(retail_import_eur_per_kwh=0.30, feed_in_eur_per_kwh=0.05)
BOOK = [
    Order("b1", "hb1", "buy", 1, 0.30, 0), Order("b2", "hb2", "buy", 1, 0.25, 0),
    Order("b3", "hb3", "buy", 1, 0.20, 0), Order("s1", "hs1", "sell", 1, 0.10, 0),
    Order("s2", "hs2", "sell", 1, 0.20, 0), Order("s3", "hs3", "sell", 1, 0.30, 0),
]


def test_settlement_worked_by_hand():
    # Huang: b1 buys 1 kWh at 0.25 from s1 who gets 0.20. Meters: b1 used 1.2 kWh, s1 injected
    # only 0.6 kWh, b2 (no contract) used 0.5 kWh, s3 (no contract) injected 0.1 kWh.
    metered = {"b1": 1200, "b2": 500, "b3": 0, "s1": 600, "s2": 0, "s3": 100}
    result = settle(huang(BOOK), metered, TARIFF)
    flows = {(t.payer, t.payee, t.reason): t.money_neur for t in result.transfers}
    assert flows == {
        ("hb1", MARKET, Reason.CONTRACT): 1000 * 250_000,  # 0.25 EUR
        ("hb1", SUPPLIER, Reason.IMPORT): 200 * 300_000,  # 0.2 kWh over, at retail
        (MARKET, "hs1", Reason.DELIVERY): 600 * 200_000,  # delivered 0.6 kWh at 0.20
        ("hs1", MARKET, Reason.SHORTFALL_PENALTY): 400 * 100_000,  # gap 0.30 − 0.20
        (MARKET, SUPPLIER, Reason.REPLACEMENT): 400 * 300_000,  # supplier fills the shortfall
        ("hb2", SUPPLIER, Reason.IMPORT): 500 * 300_000,
        (SUPPLIER, "hs3", Reason.FEED_IN): 100 * 50_000,
    }
    balances = result.balances()
    assert balances[MARKET] == 50_000_000 == huang(BOOK).auctioneer_surplus_neur  # 0.05 EUR
    assert balances["hs1"] == 120_000_000 - 40_000_000
    assert sum(balances.values()) == 0
    assert result.tokens() == {"hs1": 600}
    s1 = next(o for o in result.orders if o.order_id == "s1")
    assert (s1.delivered_wh, s1.shortfall_wh, s1.excess_wh) == (600, 400, 0)
    # injection 700 Wh + supplier net 1000 Wh = consumption 1700 Wh
    assert result.supplier_net_supply_wh() == {0: 1000}


@st.composite
def _cleared_and_metered(draw):
    book = draw(orders(min_size=1, slots=2))
    mechanism = draw(st.sampled_from(MECHANISMS))
    clearing = clear(book, mechanism)
    metered = {o.id: draw(st.integers(0, 2 * o.quantity_wh)) for o in book}
    retail = draw(st.integers(0, 40)) / 100
    feed_in = draw(st.integers(0, 40)) / 100
    return book, clearing, metered, Tariff(retail, feed_in)


@settings(deadline=None, max_examples=150)
@given(case=_cleared_and_metered())
def test_money_and_energy_are_conserved_exactly(case):
    book, clearing, metered, tariff = case
    result = settle(clearing, metered, tariff)
    balances = result.balances()
    assert sum(balances.values()) == 0
    assert all(t.money_neur > 0 for t in result.transfers)
    # the market keeps the auctioneer surplus, plus any shortfall whose price exceeded retail
    extra = sum(
        o.shortfall_wh * max(c.price_ueur_per_kwh - tariff.retail_import_ueur_per_kwh, 0)
        for o, c in zip(result.orders, contracts_from_clearing(clearing), strict=True)
    )
    assert balances.get(MARKET, 0) == clearing.auctioneer_surplus_neur + extra
    # per slot: injected + supplier net supply == consumed
    injected: dict[int, int] = defaultdict(int)
    consumed: dict[int, int] = defaultdict(int)
    for o in book:
        (consumed if o.is_buy else injected)[o.slot] += metered[o.id]
    net = result.supplier_net_supply_wh()
    for slot in injected.keys() | consumed.keys():
        assert injected[slot] + net.get(slot, 0) == consumed[slot]
    # tokens = verified delivery, never more than contracted or metered
    assert sum(result.tokens().values()) == sum(o.delivered_wh for o in result.orders
                                                if o.side == "sell")
    for o in result.orders:
        assert o.delivered_wh == min(o.contracted_wh, o.metered_wh)
        if o.side == "sell":
            assert o.token_wh == o.delivered_wh
            assert o.delivered_wh + o.shortfall_wh == o.contracted_wh
            assert o.delivered_wh + o.excess_wh == o.metered_wh
        else:
            assert o.contracted_wh + o.over_wh - o.under_wh == o.metered_wh


def test_shortfall_penalty_is_the_price_gap():
    contracts = [Contract("b", "hb", "buy", 0, 2000, 100_000),
                 Contract("s", "hs", "sell", 0, 2000, 100_000)]
    result = settle_contracts(contracts, {"b": 2000, "s": 500}, TARIFF)
    penalty = [t for t in result.transfers if t.reason is Reason.SHORTFALL_PENALTY]
    assert [(t.payer, t.money_neur) for t in penalty] == [("hs", 1500 * 200_000)]
    # the seller nets 0.05 EUR for the 0.5 kWh delivered, minus 0.30 EUR for the 1.5 kWh gap
    assert result.balances()["hs"] == 500 * 100_000 - 1500 * 200_000


@pytest.mark.parametrize(
    ("metered", "message"),
    [
        ({"b": 1000}, "no reading for order 's'"),
        ({"b": 1000, "s": -1}, "order 's' must be an integer >= 0 Wh, got -1"),
        ({"b": 1000, "s": 1.5}, "order 's' must be an integer >= 0 Wh, got 1.5"),
        ({"b": 1000, "s": 1000, "x": 5}, "order 'x' has no contract"),
    ],
)
def test_bad_meter_readings_are_refused(metered, message):
    contracts = [Contract("b", "hb", "buy", 0, 1000, 1), Contract("s", "hs", "sell", 0, 1000, 1)]
    with pytest.raises(SettlementError, match=message):
        settle_contracts(contracts, metered, TARIFF)


def test_unbalanced_or_duplicate_contracts_are_refused():
    with pytest.raises(SettlementError, match="slot 3 buys \\+500 Wh more than it sells"):
        settle_contracts([Contract("b", "hb", "buy", 3, 1500, 1),
                          Contract("s", "hs", "sell", 3, 1000, 1)], {"b": 0, "s": 0}, TARIFF)
    with pytest.raises(SettlementError, match="contracted_wh must be >= 0, got -1"):
        Contract("b", "hb", "buy", 3, -1, 1)
    with pytest.raises(SettlementError, match="side must be 'buy' or 'sell'"):
        Contract("b", "hb", "hold", 3, 1, 1)
    with pytest.raises(SettlementError, match=r"price_ueur_per_kwh must be an integer, got 0\.1"):
        Contract("b", "hb", "buy", 3, 1, 0.1)
    with pytest.raises(SettlementError, match="appears twice"):
        settle_contracts([Contract("b", "hb", "buy", 3, 0, 1),
                          Contract("b", "hb", "buy", 3, 0, 1)], {"b": 0}, TARIFF)
