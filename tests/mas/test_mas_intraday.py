"""Intraday sessions: the day's calendar, the households' intraday orders, the scenario field."""

import math

import numpy as np
import pytest

from mas.brains.auctioneer import SessionPlan, day_sessions
from mas.brains.household import HouseholdBrain
from mas.errors import PlanError, ProtocolStateError, ScenarioError
from mas.scenario import Forecast, MarketSpec, Scenario
from mas.world import SLOTS, household_rng
from tests.mas.test_mas_brains import EXPORT, IMPORT, _brain, _spec

DA_LEAD_H = 13  # the day-ahead gate: D-1 11:00, an hour before the wholesale gate


# ---------------------------------------------------------------------------- calendar


def test_intraday_sessions_follow_the_calendar_between_day_ahead_and_real_time():
    sessions = day_sessions(6, 6)
    assert [s.name for s in sessions] == ["da", "id00", "rt00", "id06", "rt06", "id12", "rt12",
                                          "id18", "rt18"]
    by_name = {s.name: s for s in sessions}
    assert by_name["id00"].slots == tuple(range(24))
    assert by_name["id12"].slots == tuple(range(12, 24))
    assert by_name["id18"].kind == "intraday"
    assert by_name["id06"].gate_h == 5.0  # an hour before the first slot it trades
    assert by_name["da"].gate_h == -DA_LEAD_H
    assert day_sessions(6, 0) == day_sessions(6)
    assert [s.name for s in day_sessions(6)] == ["da", "rt00", "rt06", "rt12", "rt18"]


@pytest.mark.parametrize("block_h", [1, 2, 3, 4, 6, 8, 12, 24])
@pytest.mark.parametrize("every_h", [0, 1, 4, 5, 6, 7, 12, 24])
def test_sessions_close_in_order_and_never_trade_a_slot_after_its_real_time_session(
        block_h, every_h):
    sessions = day_sessions(block_h, every_h)
    gates = [s.gate_h for s in sessions]
    assert gates == sorted(gates)
    rt_gate = {t: s.gate_h for s in sessions if s.kind == "real-time" for t in s.slots}
    assert sorted(rt_gate) == list(range(SLOTS))
    intraday = [s for s in sessions if s.kind == "intraday"]
    for s in intraday:
        assert all(s.gate_h < rt_gate[t] for t in s.slots), s
        assert s.slots == tuple(range(s.slots[0], SLOTS))
    hours = {int(s.name[2:]) for s in intraday}
    # every calendar gate whose hour still has a real-time session to come has a session
    assert hours == {h for h in range(0, SLOTS, every_h or SLOTS)
                     if every_h and math.ceil(h / block_h) * block_h < SLOTS}


def test_a_session_is_known_by_its_name():
    assert SessionPlan.from_name("id06", [6, 7]) == SessionPlan("id06", "intraday", (6, 7))
    assert SessionPlan.from_name("rt12", [12]).kind == "real-time"
    assert SessionPlan.from_name("da", range(24)).kind == "day-ahead"
    for bad in ("", "dax", "id", "idxx", "id24", "xx06", "rt-1"):
        with pytest.raises(ProtocolStateError, match="not a session of the day"):
            SessionPlan.from_name(bad, [0])


# ---------------------------------------------------------------------------- forecasts


def test_the_forecast_error_shrinks_with_the_lead_time():
    b = _brain(sigma=0.3)
    t = 14
    load, pv = b.spec.load_kw[t], b.spec.pv_avail_kw[t]
    assert b.forecast_kw(t, 0.0) == pytest.approx((load, pv))
    assert b.forecast_kw(t, t + DA_LEAD_H) == pytest.approx((b.load_fc_kw[t], b.pv_fc_kw[t]))
    errors = [abs(b.forecast_kw(t, lead)[1] - pv) for lead in (0.5, 1, 3, 9, 27)]
    assert errors == sorted(errors)
    assert errors[0] < errors[-1]
    share = math.sqrt(3 / (t + DA_LEAD_H))
    assert b.forecast_kw(t, 3)[0] == pytest.approx(load + share * (b.load_fc_kw[t] - load))


def _pv_only(seed=3, sigma=0.3) -> HouseholdBrain:
    """A home with PV and nothing to shift: its plan is its day-ahead forecast."""
    spec = _spec(battery=False)
    return HouseholdBrain(spec, IMPORT, EXPORT, Forecast(sigma, sigma),
                          household_rng(seed, spec.index), salt_seed=seed)


def test_intraday_orders_trade_the_updated_forecast_minus_the_plan():
    b = _pv_only()
    plan = b.make_plan()
    gate_h = 5.0
    slots = range(6, 24)
    intent = b.intraday_orders(slots, gate_h)
    assert not intent.empty
    for k, t in enumerate(slots):
        share = math.sqrt((t - gate_h) / (t + DA_LEAD_H))
        load = b.spec.load_kw[t] + share * (b.load_fc_kw[t] - b.spec.load_kw[t])
        pv = b.spec.pv_avail_kw[t] + share * (b.pv_fc_kw[t] - b.spec.pv_avail_kw[t])
        want = -((pv - load) - plan.net_export_kw[t])  # buy > 0
        assert intent.qty_kwh[k] == pytest.approx(want, abs=1e-3)
        if intent.qty_kwh[k] > 0:
            assert intent.price_eur_per_kwh[k] == b.buy_limit(t)
        elif intent.qty_kwh[k] < 0:
            assert intent.price_eur_per_kwh[k] == b.sell_limit(t)


def test_an_underforecast_load_is_bought_and_an_underforecast_pv_is_sold():
    b = _pv_only(sigma=0.0)
    b.load_fc_kw[19] *= 0.5  # expected half the evening load day-ahead
    b.pv_fc_kw[12] *= 0.5  # and half the midday sun
    b.make_plan()
    intent = b.intraday_orders(range(6, 24), 5.0)
    qty = dict(zip(range(6, 24), intent.qty_kwh, strict=True))
    assert qty[19] > 0
    assert qty[12] < 0
    assert intent.price_eur_per_kwh[19 - 6] == b.buy_limit(19)
    assert intent.price_eur_per_kwh[12 - 6] == b.sell_limit(12)
    assert all(q == 0 for t, q in qty.items() if t not in (12, 19))


def test_no_intraday_order_without_a_forecast_error():
    b = _brain(sigma=0.0)
    b.make_plan()
    assert b.intraday_orders(range(24), -1.0).empty
    b.deliver(5)  # the battery follows its setpoints from its state of charge at slot 6
    assert b.session_orders(SessionPlan("id06", "intraday", tuple(range(6, 24)))).empty


def test_cleared_intraday_trades_move_the_position_later_sessions_trade_against():
    b = _brain(sigma=0.3)
    b.make_plan()
    before_rt = b.real_time_orders(range(6))
    session = SessionPlan("id00", "intraday", tuple(range(24)))
    first = b.session_orders(session)
    assert not first.empty
    assert b.session_orders(session) == first  # asking again changes nothing
    cleared = [round(q * 1000) for q in first.qty_kwh]  # everything cleared
    b.session_result("id00", cleared)
    # the same forecast again: nothing left to trade
    assert b.intraday_orders(range(24), session.gate_h).empty
    # real time trades what the intraday trades left
    after_rt = b.real_time_orders(range(6))
    for k in range(6):
        assert after_rt.qty_kwh[k] == pytest.approx(before_rt.qty_kwh[k] - first.qty_kwh[k],
                                                    abs=2e-3)
    # day-ahead and real-time results do not move the position
    b.session_orders(SessionPlan("rt00", "real-time", tuple(range(6))))
    b.session_result("rt00", [1000] * 6)
    assert b.real_time_orders(range(6)) == after_rt


def test_session_orders_dispatch_by_kind():
    b = _brain(sigma=0.3)
    b.make_plan()
    assert b.session_orders(SessionPlan("da", "day-ahead", tuple(range(24)))) == \
        b.day_ahead_orders(range(24))
    assert b.session_orders(SessionPlan("rt06", "real-time", tuple(range(6, 12)))) == \
        b.real_time_orders(range(6, 12))
    assert b.session_orders(SessionPlan("id00", "intraday", tuple(range(24)))) == \
        b.intraday_orders(range(24), -1.0)


def test_a_session_result_that_does_not_fit_is_refused():
    b = _brain(sigma=0.3)
    b.make_plan()
    with pytest.raises(PlanError, match="made no orders"):
        b.session_result("id06", [0] * 18)
    b.session_orders(SessionPlan("id06", "intraday", tuple(range(6, 24))))
    with pytest.raises(PlanError, match="17 values for 18 slots"):
        b.session_result("id06", [0] * 17)
    assert not np.any(b.intraday_bought_kwh)


# ---------------------------------------------------------------------------- scenario


def test_intraday_spacing_defaults_to_six_hours_and_zero_turns_it_off():
    assert MarketSpec().intraday_every_h == 6
    sc = Scenario.from_dict({"market": {"intraday_every_h": 0}})
    assert sc.market.intraday_every_h == 0
    assert Scenario.from_dict(sc.to_dict()) == sc


@pytest.mark.parametrize("value", [-1, 25, 2.5, "6", True, None, math.nan])
def test_a_bad_intraday_spacing_is_refused_naming_the_field(value):
    with pytest.raises(ScenarioError, match=r"market\.intraday_every_h"):
        Scenario.from_dict({"market": {"intraday_every_h": value}})
