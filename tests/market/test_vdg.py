"""VDG sessions, calendar, gate closures, flexibility calls, supplier fallback, VDG partitions."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from market.errors import (
    DuplicateOrderError,
    GateClosedError,
    MechanismError,
    OrderError,
    SessionError,
    UnknownOrderError,
    UnknownSessionError,
)
from market.orders import Order
from market.vdg import (
    Direction,
    FlexibilityCall,
    FlexOffer,
    MarketCalendar,
    Session,
    SessionKind,
    Tariff,
    VdgMarket,
    clear_flexibility_call,
    partition_buses,
    residual_to_supplier,
)

DAY = datetime(2026, 11, 23, tzinfo=UTC)


def _market(slot_minutes: int = 60) -> tuple[VdgMarket, MarketCalendar]:
    calendar = MarketCalendar(DAY, slot_minutes=slot_minutes)
    market = VdgMarket("feeder-1", buses=["b1", "b2"])
    market.open_sessions(calendar.sessions("f1"))
    return market, calendar


def _order(order_id, side, kwh, eur, slot, session="f1-da"):
    return Order(order_id, f"h-{order_id}", side, kwh, eur, slot, session)


def test_calendar_day_ahead_closes_before_the_wholesale_gate():
    calendar = MarketCalendar(DAY)
    sessions = calendar.sessions("f1")
    da = sessions[0]
    assert da.kind is SessionKind.DAY_AHEAD
    assert da.slots == tuple(range(24))
    wholesale = DAY - timedelta(hours=12)
    assert da.gate_closure == wholesale - timedelta(hours=1) < wholesale
    assert [s.id for s in sessions].count("f1-da") == 1


def test_calendar_rolling_intraday_and_real_time_sessions():
    calendar = MarketCalendar(DAY, slot_minutes=15)
    assert calendar.n_slots == 96
    sessions = {s.id: s for s in calendar.sessions("x")}
    intraday = [s for s in sessions.values() if s.kind is SessionKind.INTRADAY]
    assert len(intraday) == 24
    assert intraday[0].slots == tuple(range(96))
    assert intraday[0].gate_closure == DAY - timedelta(hours=1)
    # session 5 trades the slots from 05:00 on and closes at 04:00
    assert sessions["x-id05"].slots == tuple(range(20, 96))
    assert sessions["x-id05"].gate_closure == DAY + timedelta(hours=4)
    # gates roll forward, each later session trades fewer slots
    gates = [s.gate_closure for s in intraday]
    assert gates == sorted(gates)
    assert all(len(a.slots) > len(b.slots) for a, b in itertools.pairwise(intraday))
    rt = sessions["x-rt10"]
    assert rt.kind is SessionKind.REAL_TIME
    assert rt.slots == (10,)
    assert rt.gate_closure == DAY + timedelta(minutes=150 - 5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"day_start": datetime(2026, 11, 23)}, "day_start must be a timezone-aware datetime"),
        ({"slot_minutes": 30}, "slot_minutes must be 15 or 60, got 30"),
        ({"intraday_every": timedelta(0)}, "intraday_every must be a positive timedelta"),
        ({"wholesale_gate": timedelta(hours=1)}, "wholesale_gate must be before day_start"),
        ({"real_time_lead": timedelta(hours=2)}, "intraday_lead must be >= real_time_lead"),
    ],
)
def test_bad_calendar_is_refused(kwargs, message):
    with pytest.raises(SessionError, match=message):
        MarketCalendar(**{"day_start": DAY, **kwargs})


def test_bad_session_is_refused():
    with pytest.raises(SessionError, match="slots must not be empty"):
        Session("s", "intraday", (), DAY)
    with pytest.raises(SessionError, match="kind must be one of"):
        Session("s", "weekly", (1,), DAY)
    with pytest.raises(MechanismError, match="mechanism must be one of"):
        Session("s", "intraday", (1,), DAY, mechanism="vcg")
    with pytest.raises(OrderError, match="slot must be an integer >= 0, got -2"):
        Session("s", "intraday", (-2,), DAY)
    market, _ = _market()
    with pytest.raises(SessionError, match="'f1-da': already open"):
        market.open_session(Session("f1-da", "day-ahead", (1,), DAY))
    with pytest.raises(SessionError, match="already open"):
        market.open_sessions([Session("new", "intraday", (1,), DAY),
                              Session("new", "intraday", (2,), DAY)])
    assert "new" not in market.session_ids


def test_day_ahead_submit_cancel_clear():
    market, calendar = _market()
    before = calendar.day_ahead_gate - timedelta(minutes=1)
    market.submit_many([
        _order("b1", "buy", 1, 0.30, 8), _order("b2", "buy", 1, 0.25, 8),
        _order("b3", "buy", 1, 0.20, 8), _order("s1", "sell", 1, 0.10, 8),
        _order("s2", "sell", 1, 0.20, 8), _order("s3", "sell", 1, 0.30, 8),
        _order("x", "buy", 1, 0.9, 9),
    ], before)
    assert market.cancel("f1-da", "x", before, owner="h-x").id == "x"
    with pytest.raises(SessionError, match="cannot clear before gate closure"):
        market.clear("f1-da", before)
    assert market.result("f1-da") is None
    cleared = market.clear("f1-da", calendar.day_ahead_gate)
    assert cleared.mechanism == "huang"
    assert cleared.traded_wh == 1000
    assert cleared.fill("b1").price_ueur_per_kwh == 250_000
    assert market.clear("f1-da", calendar.day_ahead_gate + timedelta(hours=1)) is cleared
    assert market.result("f1-da") is cleared


def test_gate_closure_and_bad_submissions_leave_the_books_unchanged():
    market, calendar = _market()
    gate = calendar.day_ahead_gate
    market.submit(_order("a", "buy", 1, 0.2, 3), gate - timedelta(seconds=1))
    snapshot = {s: market.book(s).orders() for s in market.session_ids}
    with pytest.raises(GateClosedError, match="order 'late': session 'f1-da' closed at"):
        market.submit(_order("late", "buy", 1, 0.2, 3), gate)
    with pytest.raises(GateClosedError, match="cancel of order 'a'"):
        market.cancel("f1-da", "a", gate)
    with pytest.raises(UnknownSessionError, match="session 'nope': no such session"):
        market.submit(_order("u", "buy", 1, 0.2, 3, session="nope"), gate - timedelta(hours=1))
    with pytest.raises(OrderError, match="order 'ns': session must name a session"):
        market.submit(_order("ns", "buy", 1, 0.2, 3, session=None), gate - timedelta(hours=1))
    with pytest.raises(OrderError, match="order 'far': slot 30 is not traded in session 'f1-da'"):
        market.submit_many([_order("ok", "buy", 1, 0.2, 3, session="f1-id00"),
                            _order("far", "buy", 1, 0.2, 30)], gate - timedelta(hours=1))
    with pytest.raises(DuplicateOrderError, match="order 'a'"):
        market.submit_many([_order("ok", "buy", 1, 0.2, 3, session="f1-id00"),
                            _order("a", "sell", 1, 0.2, 3)], gate - timedelta(hours=1))
    with pytest.raises(UnknownOrderError, match="order 'zz'"):
        market.cancel("f1-da", "zz", gate - timedelta(hours=1))
    with pytest.raises(SessionError, match="now must be a timezone-aware datetime"):
        market.submit(_order("naive", "buy", 1, 0.2, 3), datetime(2026, 11, 22))
    # the intraday session of slot 3 still takes orders after the day-ahead gate
    with pytest.raises(GateClosedError):
        market.submit(_order("rt", "buy", 1, 0.2, 3, session="f1-rt03"),
                      DAY + timedelta(hours=3) - timedelta(minutes=5))
    assert {s: market.book(s).orders() for s in market.session_ids} == snapshot
    market.submit(_order("id", "buy", 1, 0.2, 3, session="f1-id00"), gate)
    assert len(market.book("f1-id00")) == 1


def test_supplier_takes_the_unmatched_energy_at_retail_prices():
    market, calendar = _market()
    market.submit_many([_order("b1", "buy", 2, 0.30, 0), _order("b2", "buy", 1, 0.25, 0),
                        _order("s1", "sell", 1, 0.10, 0), _order("s2", "sell", 1.5, 0.20, 0)],
                       calendar.day_ahead_gate - timedelta(hours=1))
    cleared = market.clear("f1-da", calendar.day_ahead_gate)
    tariff = Tariff(retail_import_eur_per_kwh=0.32, feed_in_eur_per_kwh=0.08)
    trades = residual_to_supplier(cleared, tariff)
    by_id = {t.order_id: t for t in trades}
    for order in market.book("f1-da"):
        unmatched = order.quantity_wh - cleared.fill(order.id).filled_wh
        assert (by_id[order.id].e_wh if order.id in by_id else 0) == unmatched
    for t in trades:
        expected = 320_000 if t.side == "buy" else 80_000
        assert t.price_ueur_per_kwh == expected
        assert t.money_neur == t.e_wh * expected
    with pytest.raises(OrderError, match="tariff: feed_in_eur_per_kwh must be a finite number"):
        Tariff(0.3, float("nan"))


def test_flexibility_call_buys_the_cheapest_offers_at_the_marginal_price():
    call = FlexibilityCall("call-1", "dso", "up", p_kw=5, slot=18,
                           buses=frozenset({"b7", "b8"}), price_cap_eur_per_kwh=0.50)
    offers = [FlexOffer("o1", "h1", "b7", 3, 0.20), FlexOffer("o2", "h2", "b8", 3, 0.30),
              FlexOffer("o3", "h3", "b8", 2, 0.60)]
    result = clear_flexibility_call(call, offers)
    assert call.direction is Direction.UP
    # 5 kWh asked: o1 3 kWh in full, o2 2 of its 3 kWh; o3 is above the cap
    assert result.accepted_kw == {"o1": 3.0, "o2": 2.0}
    assert result.procured_kw == 5.0
    assert result.clearing.fill("o1").price_ueur_per_kwh == 300_000  # marginal offer's price
    assert result.clearing.fill("call-1").filled_wh == 5000
    # with Huang the single buyer (the DSO) is the break-even buyer: nothing trades
    huang_call = FlexibilityCall("call-2", "dso", "up", 5, 18, frozenset({"b7", "b8"}), 0.5,
                                 mechanism="huang")
    assert clear_flexibility_call(huang_call, offers).procured_kw == 0


def test_flexibility_bad_input():
    with pytest.raises(OrderError, match="offer 'o9' to call 'c': bus 'b1' is not in the call"):
        clear_flexibility_call(FlexibilityCall("c", "dso", "down", 1, 0, frozenset({"b2"}), 0.1),
                               [FlexOffer("o9", "h", "b1", 1, 0.05)])
    with pytest.raises(OrderError, match="p_kw must be finite and > 0, got nan"):
        FlexibilityCall("c", "dso", "down", float("nan"), 0, frozenset({"b2"}), 0.1)
    with pytest.raises(OrderError, match="direction must be 'up' or 'down'"):
        FlexibilityCall("c", "dso", "sideways", 1, 0, frozenset({"b2"}), 0.1)
    with pytest.raises(OrderError, match="buses must not be empty"):
        FlexibilityCall("c", "dso", "up", 1, 0, frozenset(), 0.1)
    with pytest.raises(OrderError, match="price_cap_eur_per_kwh must be a finite number"):
        FlexibilityCall("c", "dso", "up", 1, 0, frozenset({"b2"}), float("inf"))
    call = FlexibilityCall("c", "dso", "up", 1, 0, frozenset({"b2"}), 0.1)
    with pytest.raises(OrderError, match="to call 'c': p_kw must be finite and > 0, got -1"):
        clear_flexibility_call(call, [FlexOffer("o", "h", "b2", -1, 0.05)])
    with pytest.raises(DuplicateOrderError, match="id is the call's own id"):
        clear_flexibility_call(call, [FlexOffer("c", "h", "b2", 1, 0.05)])
    with pytest.raises(DuplicateOrderError):
        clear_flexibility_call(call, [FlexOffer("o", "h", "b2", 1, 0.05),
                                      FlexOffer("o", "h2", "b2", 1, 0.05)])


def test_partition_per_feeder_and_per_subtree():
    #      0
    #     / \
    #    1   4
    #   / \   \
    #  2   3   5
    edges = [(0, 1), (1, 2), (1, 3), (0, 4), (4, 5)]
    assert set(partition_buses(edges, 0).values()) == {0}
    parts = partition_buses(edges, 0, heads=[1, 5])
    assert parts == {0: 0, 1: 1, 2: 1, 3: 1, 4: 0, 5: 5}
    with pytest.raises(SessionError, match="not on the feeder"):
        partition_buses(edges, 0, heads=[9])
    with pytest.raises(SessionError, match="not a tree"):
        partition_buses([*edges, (2, 3)], 0)
    with pytest.raises(SessionError, match="not a tree"):
        partition_buses([(0, 1), (7, 8)], 0)


def test_due_sessions_are_cleared_once_and_open_sessions_per_slot():
    market, calendar = _market()
    t0 = calendar.day_ahead_gate - timedelta(hours=1)
    assert market.due(t0) == ()
    assert market.open_for(5, t0) == ("f1-da", "f1-id00", "f1-id01", "f1-id02", "f1-id03",
                                      "f1-id04", "f1-id05", "f1-rt05")
    cleared = market.clear_due(calendar.day_ahead_gate)
    assert list(cleared) == ["f1-da"]
    assert market.due(calendar.day_ahead_gate) == ()
    # at 04:50, intraday sessions 00..05 (the last closed at 04:00) and real-time sessions of
    # slots 0..4 are due; slot 5 is only open in its real-time session (closes at 04:55)
    at = DAY + timedelta(hours=4, minutes=50)
    assert market.open_for(5, at) == ("f1-rt05",)
    due = market.clear_due(at)
    assert "f1-da" not in due
    assert set(due) == {f"f1-id{j:02d}" for j in range(6)} | {f"f1-rt{s:02d}" for s in range(5)}
