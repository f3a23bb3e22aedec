"""The batch of households makes bitwise the orders and deliveries the brains make one by one."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grid.der import BatterySpec, EvSpec, PvSpec
from mas.brains.auctioneer import SessionPlan, day_sessions, vector_from_intent
from mas.brains.household import HouseholdBrain, Plan
from mas.brains.household_batch import HouseholdBatch, round_like_python
from mas.scenario import Forecast
from mas.world import SLOTS, HouseholdSpec, household_rng
from tests.mas.test_mas_brains import EXPORT, IMPORT

# ---------------------------------------------------------------------------- rounding


def _bits(values) -> list[str]:
    return [float(v).hex() for v in np.asarray(values, dtype=float).ravel()]


@pytest.mark.parametrize("decimals", [3, 6])
def test_rounding_is_pythons_near_halves_and_at_every_magnitude(decimals):
    rng = np.random.default_rng(1)
    halves = (rng.integers(-10**7, 10**7, 4000) + 0.5) / 10.0**decimals
    near = np.concatenate([halves, np.nextafter(halves, np.inf), np.nextafter(halves, -np.inf)])
    wide = rng.standard_normal(4000) * 10.0 ** rng.integers(-12, 9, 4000)
    dyadic = rng.integers(-2**20, 2**20, 2000) / 2.0**rng.integers(0, 30, 2000)  # exact halves
    x = np.concatenate([near, wide, dyadic, [0.0, -0.0, 1e300, -1e-300, np.inf, np.nan]])
    expected = [round(float(v), decimals) for v in x]
    assert _bits(round_like_python(x.copy(), decimals)) == _bits(expected)
    grid = x[:6000].reshape(100, 60)[:, ::-1][:, [5, 1, 7]]  # not C-ordered: a column selection
    assert _bits(round_like_python(grid, decimals)) == _bits(
        [[round(float(v), decimals) for v in row] for row in grid])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1,
                max_size=30), st.sampled_from([3, 6]))
def test_rounding_is_pythons_for_any_float(values, decimals):
    x = np.array(values, dtype=float)
    assert _bits(round_like_python(x, decimals)) == _bits([round(v, decimals) for v in values])


# ---------------------------------------------------------------------------- households


def _random_spec(index: int, rng: np.random.Generator) -> HouseholdSpec:
    hid = f"h{index:03d}"
    pv, battery, ev = rng.random(3) < (0.7, 0.5, 0.3)
    # profiles with a 5 in the 7th decimal, as the feeder's: sums that land on a half of the
    # 1e-6 kW grid the brain rounds to (where numpy's and Python's rounding differ)
    load = tuple(float(x) for x in (2 * rng.integers(10**5, 3 * 10**6, SLOTS) + 1) / 2e6)
    sun = np.clip(np.sin(np.pi * (np.arange(SLOTS) - 6) / 12), 0, None)
    avail = tuple(float(x) for x in (np.round(rng.uniform(2.0, 8.0) * sun, 6) if pv
                                     else np.zeros(SLOTS)))
    e_max = float(rng.uniform(2.0, 12.0))
    bat = BatterySpec(f"bat-{hid}", 1, e_max, float(rng.uniform(0.5, 5.0)),
                      float(rng.uniform(0.5, 5.0)), eta_charge=float(rng.uniform(0.8, 1.0)),
                      eta_discharge=float(rng.uniform(0.8, 1.0)),
                      e_min_kwh=float(rng.uniform(0.0, 0.3) * e_max)) if battery else None
    return HouseholdSpec(
        id=hid, index=index, bus=1, load_name="l", load_kw=load, load_q_kvar=(0.1,) * SLOTS,
        pv_avail_kw=avail, pv=PvSpec(f"pv-{hid}", 1, 6.0) if pv else None, battery=bat,
        ev=EvSpec(f"ev-{hid}", 1, 7.4) if ev else None,
        ev_available=(1.0,) * SLOTS if ev else (0.0,) * SLOTS, ev_need_kwh=8.0 if ev else 0.0,
        buy_value_frac=float(rng.uniform(0.9, 1.0)), sell_markup_frac=float(rng.uniform(0, 0.3)))


def _twin_households(seed: int, n: int) -> tuple[list[HouseholdBrain], list[HouseholdBrain]]:
    """Two identical sets of brains with random plans, flexibility and intraday positions.

    The plans are drawn rather than solved, with setpoints that overrun the batteries' limits
    and state of charge, so every branch of the delivery is taken.
    """
    rng = np.random.default_rng(seed)
    specs = [_random_spec(i, rng) for i in range(n)]
    draws = []
    for s in specs:
        six = lambda a: tuple(float(x) for x in np.round(a, 6) + 0.0)  # noqa: E731
        bat = rng.uniform(-6, 6, SLOTS) if s.battery is not None else np.zeros(SLOTS)
        ev = rng.uniform(0, 3, SLOTS) * (rng.random(SLOTS) < 0.3) if s.ev is not None else \
            np.zeros(SLOTS)
        net = np.asarray(s.pv_avail_kw) + bat - np.asarray(s.load_kw) - ev
        draws.append((Plan(six(net + rng.normal(0, 0.05, SLOTS)), six(bat), six(ev),
                           s.pv_avail_kw, 0.0),
                      rng.uniform(-2, 2, SLOTS) * (rng.random(SLOTS) < 0.3),
                      rng.integers(-2000, 2000, SLOTS) / 1000 * (rng.random(SLOTS) < 0.5)))
    twins = []
    for _ in range(2):
        brains = []
        for s, (plan, flex, bought) in zip(specs, draws, strict=True):
            b = HouseholdBrain(s, IMPORT, EXPORT, Forecast(0.2, 0.3), household_rng(seed, s.index),
                               salt_seed=seed)
            b.plan = plan
            b.flex_kw = flex.copy()
            b.intraday_bought_kwh = bought.copy()
            brains.append(b)
        twins.append(brains)
    return twins[0], twins[1]


def _meter(deliveries) -> list[tuple]:
    """Deliveries bit for bit (the brain's hold numpy floats, the batch's Python floats)."""
    return [(d.slot, *_bits([d.net_export_kw, d.battery_kw, d.soc_kwh])) for d in deliveries]


def _vectors(brains: list[HouseholdBrain], session: SessionPlan) -> list[tuple]:
    out = []
    for b in brains:
        intent = b.session_orders(session)
        vec = vector_from_intent(intent.qty_kwh, intent.price_eur_per_kwh)
        out.append(tuple((s.qty_wh, s.price_ueur_per_kwh) for s in vec.slots))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_a_batch_day_trades_and_meters_bitwise_as_the_brains_do(seed):
    one, many = _twin_households(seed, 40)
    batch = HouseholdBatch(many)
    sessions = [*day_sessions(6, 6), SessionPlan("id03", "intraday", tuple(range(3, 24)))]
    sessions.sort(key=lambda s: s.slots[0])
    rng = np.random.default_rng(seed)
    traded = 0
    delivered = 0
    for session in sessions:
        for t in range(delivered, session.slots[0]):
            singles = [b.deliver(t) for b in one]
            batched = batch.deliver(t)
            assert _meter(batched) == _meter(singles)
            assert _bits([b._soc_kwh for b in many]) == _bits([b._soc_kwh for b in one])
        delivered = session.slots[0]
        qty_wh, price = batch.session_orders(session)
        expected = _vectors(one, session)
        got = [tuple(zip(q, p, strict=True)) for q, p in zip(qty_wh.tolist(), price.tolist(),
                                                             strict=True)]
        assert got == expected
        traded += int(np.count_nonzero(qty_wh))
        for b1, b2 in zip(one, many, strict=True):  # the same random fills to both
            cleared = rng.integers(-300, 300, len(session.slots)).tolist()
            b1.session_result(session.name, cleared)
            b2.session_result(session.name, cleared)
    assert traded > 0
    assert _meter(batch.deliver(SLOTS - 1)) == _meter(b.deliver(SLOTS - 1) for b in one)
    assert all(math.isfinite(b._soc_kwh) for b in many)


def test_a_batch_delivers_one_by_one_when_a_household_is_behind():
    one, many = _twin_households(7, 5)
    many[2].deliver(0)
    one[2].deliver(0)
    batch = HouseholdBatch(many)
    assert _meter(batch.deliver(3)) == _meter(b.deliver(3) for b in one)
    assert all(len(b.deliveries) == 4 for b in many)
