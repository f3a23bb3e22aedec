"""Unit tests of the runtime-agnostic brains: deterministic, no messaging, no wall clock."""

import numpy as np
import pytest

from grid.der import BatterySpec, EvSpec, PvSpec
from ledger.orders import commitment
from market.vdg import Direction
from mas.brains.aggregator import AggregatorBrain
from mas.brains.auctioneer import SessionBook, SessionPlan, day_sessions, vector_from_intent
from mas.brains.dso import DsoBrain
from mas.brains.hems import battery_key, ev_key, reference_problem, solve_plan, structure
from mas.brains.household import HouseholdBrain
from mas.errors import PlanError, ProtocolStateError
from mas.scenario import Forecast, GridSpec, Scenario
from mas.world import SLOTS, HouseholdSpec, build_world, household_rng

SUN = np.clip(np.sin(np.pi * (np.arange(24) + 0.5 - 5) / 16), 0, None)
IMPORT = tuple(0.25 + 0.05 * (17 <= t <= 20) for t in range(24))
EXPORT = tuple(0.08 for _ in range(24))


def _spec(index=0, *, pv=True, battery=True, ev=False) -> HouseholdSpec:
    hid = f"h{index:03d}"
    load = tuple(0.4 + 0.6 * (7 <= t <= 9) + 1.0 * (18 <= t <= 21) for t in range(24))
    avail = tuple(float(x) for x in (4.0 * SUN if pv else np.zeros(24)))
    ev_avail = tuple(float(t >= 18 or t < 7) for t in range(24))
    return HouseholdSpec(
        id=hid, index=index, bus=1, load_name="l", load_kw=load, load_q_kvar=(0.1,) * 24,
        pv_avail_kw=avail, pv=PvSpec(f"pv-{hid}", 1, 4.0) if pv else None,
        battery=BatterySpec(f"bat-{hid}", 1, 8.0, 3.0, 3.0, degradation_eur_per_kwh=0.01)
        if battery else None,
        ev=EvSpec(f"ev-{hid}", 1, 7.4) if ev else None,
        ev_available=ev_avail if ev else (0.0,) * 24, ev_need_kwh=10.0 if ev else 0.0,
        buy_value_frac=0.95, sell_markup_frac=0.1,
    )


def _brain(spec=None, seed=3, sigma=0.1) -> HouseholdBrain:
    spec = spec or _spec()
    return HouseholdBrain(spec, IMPORT, EXPORT, Forecast(sigma, sigma),
                          household_rng(seed, spec.index), salt_seed=seed)


@pytest.mark.parametrize("devices", [(False, False, False), (True, False, False),
                                     (True, True, False), (False, False, True),
                                     (True, False, True), (True, True, True)])
@pytest.mark.parametrize("case", range(4))
def test_plan_solver_matches_the_cvxpy_reference(devices, case):
    """The closed form and the hand-built conic data solve the problem the grid.der builders
    state (a DPP cvxpy problem solved by cvxpy): same optimal value, a feasible schedule."""
    pv, battery, ev = devices
    spec = _spec(pv=pv, battery=battery, ev=ev)
    rng = np.random.default_rng(case)
    b = _brain(spec)
    b.lam = rng.uniform(-0.3, 0.4, SLOTS) if case else np.zeros(SLOTS)
    target = rng.uniform(-4.0, 6.0, SLOTS) if case >= 2 else None
    x = b.plan_inputs(target)
    sol = solve_plan(spec.pv, spec.battery, spec.ev, x)
    problem, _, _ = reference_problem(spec.pv, spec.battery, spec.ev, x)
    assert problem.is_dpp()
    problem.solve(solver="CLARABEL")
    assert problem.status == "optimal"
    assert sol.objective_eur == pytest.approx(problem.value, abs=1e-6)
    inj = sol.pv_kw + sol.battery_kw - sol.ev_kw - x.load_kw
    np.testing.assert_allclose(sol.export_kw - sol.import_kw, inj, atol=1e-6)
    assert min(sol.import_kw.min(), sol.export_kw.min(), sol.pv_kw.min()) >= -1e-7
    assert np.all(sol.pv_kw <= x.pv_avail_kw + 1e-7)


def test_households_of_one_kind_share_the_plan_structure():
    a, b = _spec(0, ev=True), _spec(1, ev=True)
    key = (SLOTS, 1.0, True, battery_key(a.battery), ev_key(a.ev))
    assert structure(*key) is structure(SLOTS, 1.0, True, battery_key(b.battery), ev_key(b.ev))
    assert structure(*key) is not structure(SLOTS, 1.0, True, None, ev_key(a.ev))


def test_household_plan_balances_energy():
    b = _brain(_spec(ev=True))
    plan = b.make_plan()
    net = np.array(plan.net_export_kw)
    recon = np.array(plan.pv_kw) + np.array(plan.battery_kw) - np.array(plan.ev_kw) - b.load_fc_kw
    np.testing.assert_allclose(net, recon, atol=1e-4)
    assert max(plan.battery_kw) <= 3.0 + 1e-6
    assert min(plan.ev_kw) >= -1e-6
    assert sum(plan.ev_kw) == pytest.approx(10.0, abs=1e-3)  # the EV's need, charged


def test_delivery_draws_the_ev_charging_from_the_grid():
    b = _brain(_spec(pv=False, battery=False, ev=True), sigma=0.0)
    plan = b.make_plan()
    for t in range(24):
        d = b.deliver(t)
        assert d.net_export_kw == pytest.approx(-(b.spec.load_kw[t] + plan.ev_kw[t]), abs=1e-5)


def test_household_battery_lowers_the_bill_and_stores_midday_pv():
    with_bat = _brain(sigma=0.0).make_plan()
    without = _brain(_spec(battery=False), sigma=0.0).make_plan()
    assert with_bat.cost_eur < without.cost_eur - 0.1
    assert sum(with_bat.battery_kw[9:16]) < -2.0  # charges from the midday PV
    assert sum(x for x in with_bat.battery_kw if x > 0) > 2.0  # and gives it back


def test_household_admm_step_is_pulled_towards_the_target():
    def brain(prox):
        spec = _spec()
        return HouseholdBrain(spec, IMPORT, EXPORT, Forecast(0.0, 0.0),
                              household_rng(3, spec.index), prox_eur_per_kw2=prox)

    free = -np.array(brain(0.02).make_plan().net_export_kw)
    target = free + 1.5  # ask for 1.5 kW more import in every slot
    zero = np.zeros(24)
    dev = {}
    for prox in (0.02, 0.5, 50.0):
        got = -np.array(brain(prox).make_plan(zero, target_import_kw=target).net_export_kw)
        dev[prox] = np.abs(got - target).sum()
    assert dev[0.02] <= np.abs(free - target).sum() + 1e-6
    assert dev[50.0] < dev[0.5] < np.abs(free - target).sum()


@pytest.mark.parametrize("target", [(1.0,) * 23, (float("nan"),) * 24])
def test_household_admm_step_rejects_a_bad_target(target):
    b = _brain()
    with pytest.raises(PlanError, match="target_import_kw"):
        b.make_plan(None, target_import_kw=target)


def test_household_same_seed_same_plan_and_orders():
    a, b = _brain(seed=5), _brain(seed=5)
    assert a.make_plan() == b.make_plan()
    assert a.day_ahead_orders(range(24)) == b.day_ahead_orders(range(24))
    c = _brain(seed=6)
    assert not np.array_equal(a.load_fc_kw, c.load_fc_kw)


def test_coordination_price_reduces_evening_import():
    b = _brain(_spec(ev=True), sigma=0.0)
    base = np.array(b.make_plan().net_export_kw)
    lam = np.zeros(24)
    lam[18:22] = 0.5
    moved = np.array(b.make_plan(lam).net_export_kw)
    assert -moved[18:22].sum() < -base[18:22].sum() - 0.5


def test_household_rejects_a_bad_coordination_price():
    with pytest.raises(PlanError, match="lam_eur_per_kwh"):
        _brain().make_plan([0.0] * 3)


def test_orders_follow_the_plan_with_limit_prices():
    b = _brain(sigma=0.0)
    plan = b.make_plan()
    intent = b.day_ahead_orders(range(24))
    for t in range(24):
        q = intent.qty_kwh[t]
        assert q == pytest.approx(-plan.net_export_kw[t], abs=1e-3)
        if q > 0:
            assert intent.price_eur_per_kwh[t] == pytest.approx(0.95 * IMPORT[t], abs=1e-6)
        elif q < 0:
            assert EXPORT[t] <= intent.price_eur_per_kwh[t] <= IMPORT[t]


def test_delivery_is_in_order_idempotent_and_respects_the_battery():
    b = _brain()
    b.make_plan()
    with pytest.raises(PlanError, match="slot must be"):
        b.deliver(24)
    first = b.deliver(0)
    assert b.deliver(0) is first
    third = b.deliver(3)  # a lost request: slots 1 and 2 run first, in order
    assert sorted(b.deliveries) == [0, 1, 2, 3]
    assert b.deliver(3) is third
    for t in range(4, 24):
        d = b.deliver(t)
        assert 0.0 - 1e-9 <= d.soc_kwh <= 8.0 + 1e-9
    assert len(b.metered_export_kwh()) == 24


def test_real_time_orders_trade_the_forecast_error():
    b = _brain(sigma=0.3)
    b.make_plan()
    intent = b.real_time_orders(range(6))
    assert not intent.empty
    exact = _brain(sigma=0.0)
    exact.make_plan()
    assert exact.real_time_orders(range(24)).empty


def test_flex_offer_up_uses_battery_headroom_and_accept_moves_setpoint():
    b = _brain(sigma=0.0)
    plan = b.make_plan()
    t = 19
    offer = b.flex_offer(t, Direction.UP)
    assert offer is not None
    assert offer.p_kw == pytest.approx(3.0 - plan.battery_kw[t], abs=1e-3)
    b.accept_flex(t, Direction.UP, 0.5)
    assert b.flex_kw[t] == 0.5
    assert _brain(_spec(pv=False, battery=False)).flex_offer(t, Direction.UP) is None


def test_salt_is_deterministic_per_session():
    b = _brain(seed=2)
    assert b.salt(1) == _brain(seed=2).salt(1)
    assert b.salt(1) != b.salt(2)
    assert len(b.salt(1)) == 32


def test_session_book_checks_commitments_and_is_canonical():
    addresses = {"h000": "0x" + "11" * 20, "h001": "0x" + "22" * 20}
    book = SessionBook(SessionPlan("da", "day-ahead", (0, 1)), 7, addresses)
    v0 = vector_from_intent([1.0, 0.0], [0.3, 0.0])
    v1 = vector_from_intent([-1.0, -0.5], [0.1, 0.1])
    s0, s1 = b"\x01" * 32, b"\x02" * 32
    c1 = commitment(7, addresses["h001"], v1.encode(), s1)
    c0 = commitment(7, addresses["h000"], v0.encode(), s0)
    assert book.commit("h001", c1)
    assert not book.commit("h001", c1)
    with pytest.raises(ProtocolStateError, match="another hash"):
        book.commit("h001", c0)
    book.commit("h000", c0)
    with pytest.raises(ProtocolStateError, match="phase"):
        book.reveal("h000", v0, s0)
    book.open_reveal()
    with pytest.raises(ProtocolStateError, match="do not match"):
        book.reveal("h000", v0, s1)
    book.reveal("h001", v1, s1)
    book.reveal("h000", v0, s0)
    assert [w for w, *_ in book.canonical()] == ["h000", "h001"]
    with pytest.raises(ProtocolStateError, match="not registered"):
        book.commit("x", c0)


def test_reference_clearing_balances_each_slot():
    addresses = {f"h{i:03d}": "0x" + f"{i + 1:02x}" * 20 for i in range(4)}
    book = SessionBook(SessionPlan("da", "day-ahead", (0,)), 1, addresses)
    vecs = {"h000": ([2.0], [0.30]), "h001": ([1.0], [0.25]), "h002": ([-1.5], [0.10]),
            "h003": ([-2.0], [0.12])}
    for who, (q, p) in vecs.items():
        v = vector_from_intent(q, p)
        book.commit(who, commitment(1, addresses[who], v.encode(), b"\x00" * 32))
    book.open_reveal()
    for who, (q, p) in vecs.items():
        book.reveal(who, vector_from_intent(q, p), b"\x00" * 32)
    cleared = book.reference_clearing()
    assert sum(v[0] for v in cleared.values()) == 0
    assert cleared["h000"][0] > 0


def test_day_sessions_cover_the_day():
    sessions = day_sessions(6)
    assert sessions[0].slots == tuple(range(24))
    assert sum(len(s.slots) for s in sessions[1:]) == 24


def test_aggregator_bids_for_a_share_of_the_surplus():
    agg = AggregatorBrain([0.05] * 24, capacity_kw=5.0, share=0.5)
    surplus = [0.0] * 10 + [20.0, 4.0] + [0.0] * 12
    plan = agg.make_plan(surplus)
    assert plan.buy_kwh[10] == 5.0
    assert plan.buy_kwh[11] == 2.0
    assert plan.buy_kwh[0] == 0.0
    assert agg.day_ahead_orders(range(24)).qty_kwh[10] == 5.0


@pytest.fixture(scope="module")
def small_world():
    return build_world(Scenario(feeder="kerber-landnetz-kabel-1", households=6, seed=4))


def test_world_is_deterministic_in_the_seed(small_world):
    again = build_world(Scenario(feeder="kerber-landnetz-kabel-1", households=6, seed=4))
    assert again.households == small_world.households
    assert len(small_world.households) == 6
    assert len(small_world.import_eur_per_kwh) == SLOTS


def test_dso_voltage_drops_with_import_and_rises_with_export(small_world):
    dso = DsoBrain(small_world, GridSpec(v_min_pu=0.99, v_max_pu=1.01))
    ids = small_world.ids
    heavy = dso.grid_state({h: [-20.0] * 24 for h in ids})
    export = dso.grid_state({h: [20.0] * 24 for h in ids})
    assert heavy.v_min_pu < 1.0 < export.v_max_pu
    assert heavy.low
    assert export.high
    calls = dso.flexibility_calls(heavy)
    assert calls
    assert all(c.direction is Direction.UP for c in calls)
    assert dso.flexibility_calls(export)[0].direction is Direction.DOWN


def test_dso_clears_a_call_and_attests_idempotently(small_world):
    dso = DsoBrain(small_world, GridSpec())
    ids = small_world.ids
    call = dso._call(18, Direction.UP, 3.0, frozenset(small_world.feeder.buses))
    res = dso.clear_call(call, {ids[0]: (2.0, 0.05), ids[1]: (2.0, 0.10), ids[2]: (1.0, 0.5)})
    assert 0 < res.procured_kw <= 3.0 + 1e-9
    assert f"{call.id}/{ids[2]}" not in res.accepted_kw  # above the price cap
    first = dso.attest(3, {ids[0]: 1.2345, ids[1]: -0.5})
    assert dso.attest(3, {ids[0]: 1.2345, ids[1]: -0.5}) == first
    with pytest.raises(ProtocolStateError, match="already attested"):
        dso.attest(3, {ids[0]: 0.0})
    with pytest.raises(ProtocolStateError, match="unknown household"):
        dso.attest(4, {"nobody": 0.0})
