"""Market metrics on a book worked by hand, and the Gini coefficient."""

import pytest
from hypothesis import given, settings
from market_strategies import orders

from market.auction import MECHANISMS, clear, huang
from market.metrics import gini, market_metrics
from market.orders import Order


def _o(order_id, side, kwh, eur):
    return Order(order_id, f"h-{order_id}", side, kwh, eur, 0)


LONG_BUYERS = [_o("b1", "buy", 5, 0.50), _o("b2", "buy", 0.5, 0.45), _o("b3", "buy", 3, 0.40),
               _o("b4", "buy", 2, 0.30), _o("s1", "sell", 2, 0.10), _o("s2", "sell", 2, 0.20),
               _o("s3", "sell", 10, 0.35)]


def test_metrics_of_huang_worked_by_hand():
    # Huang (see test_auction): b1 buys 4 kWh at 0.40; s1, s2 sell 2 kWh each at 0.35
    m = market_metrics(huang(LONG_BUYERS))
    assert m.welfare_neur == 4000 * 500_000 - (2000 * 100_000 + 2000 * 200_000)  # 1.4 EUR
    # efficient: 5×0.50 + 0.5×0.45 + 3×0.40 − (2×0.10 + 2×0.20 + 4.5×0.35) = 1.75 EUR
    assert m.max_welfare_neur == 1_750_000_000
    assert m.efficiency == pytest.approx(0.8)
    assert (m.traded_wh, m.efficient_wh) == (4000, 8500)
    assert m.auctioneer_surplus_neur == 200_000_000
    assert (m.price_min_ueur_per_kwh, m.price_max_ueur_per_kwh) == (350_000, 400_000)
    assert m.price_vwap_ueur_per_kwh == 400_000
    by_owner = {p.owner: p for p in m.participants}
    assert by_owner["h-b1"].benefit_neur == 4000 * 100_000
    assert by_owner["h-b1"].cost_neur == 4000 * 400_000
    assert by_owner["h-s1"].revenue_neur == 2000 * 350_000
    assert by_owner["h-s1"].prosumer
    assert not by_owner["h-b2"].prosumer
    assert m.prosumer_benefit_neur == 2000 * 250_000 + 2000 * 150_000
    assert m.consumer_benefit_neur == 4000 * 100_000
    # benefits [0, 0, 0, 0, 3, 4, 5] (×1e8): G = 2·(5·3 + 6·4 + 7·5)/(7·12) − 8/7
    assert m.gini_benefit == pytest.approx(2 * 74 / 84 - 8 / 7)


def test_metrics_without_trade():
    m = market_metrics(huang([_o("b", "buy", 1, 0.1), _o("s", "sell", 1, 0.2)]))
    assert (m.welfare_neur, m.max_welfare_neur, m.efficiency) == (0, 0, 1.0)
    assert m.price_min_ueur_per_kwh is None
    assert m.price_vwap_ueur_per_kwh is None
    assert m.gini_benefit == 0.0


def test_gini():
    assert gini([1, 1, 1]) == 0.0
    assert gini([0, 0, 1]) == pytest.approx(2 / 3)
    assert gini([]) == 0.0
    with pytest.raises(ValueError, match="must be >= 0"):
        gini([1, -1])


@settings(deadline=None, max_examples=60)
@given(book=orders(slots=2))
def test_welfare_splits_into_benefits_and_surplus(book):
    for mechanism in MECHANISMS:
        c = clear(book, mechanism)
        m = market_metrics(c)
        assert m.welfare_neur == sum(p.benefit_neur for p in m.participants) + \
            m.auctioneer_surplus_neur
        assert 0 <= m.welfare_neur <= m.max_welfare_neur
        assert sum(p.cost_neur for p in m.participants) - \
            sum(p.revenue_neur for p in m.participants) == m.auctioneer_surplus_neur
        assert 0 <= m.gini_benefit <= 1
