import cvxpy as cp
import numpy as np
import pytest

from grid.der import (
    BatterySpec,
    DeferrableSpec,
    EvSpec,
    GeneratorSpec,
    HvacSpec,
    PvSpec,
    ShiftableSpec,
    build_batteries,
    build_deferrables,
    build_evs,
    build_generators,
    build_hvacs,
    build_pv,
    build_shiftables,
    ev_window,
)
from grid.errors import DerError

T = 24
DT = 1.0
rng = np.random.default_rng(7)
PRICE = 0.1 + 0.2 * rng.random(T)


def _solve(block, extra=()):
    cost = cp.sum(cp.multiply(-PRICE * DT, cp.sum(block.p_kw, axis=0))) + block.cost_eur
    prob = cp.Problem(cp.Minimize(cost), [*block.constraints, *extra])
    prob.solve(solver="CLARABEL")
    assert prob.status == "optimal"
    return prob


def test_battery_soc_follows_its_efficiencies():
    spec = BatterySpec("b", 1, e_max_kwh=10, p_charge_max_kw=3, p_discharge_max_kw=4,
                       eta_charge=0.9, eta_discharge=0.8, e_min_kwh=1.0)
    blk = build_batteries([spec], T, DT)
    blk.parameters["e_init_kwh"].value = np.array([5.0])
    _solve(blk)
    c, d = blk.variables["c_kw"].value[0], blk.variables["d_kw"].value[0]
    e = blk.variables["e_kwh"].value[0]
    expected = 5.0 + np.cumsum(0.9 * c * DT - d * DT / 0.8)
    np.testing.assert_allclose(e, expected, atol=1e-6)
    assert e.min() >= 1.0 - 1e-6
    assert e.max() <= 10 + 1e-6
    assert c.max() <= 3 + 1e-6
    assert d.max() <= 4 + 1e-6
    assert e[-1] == pytest.approx(5.0, abs=1e-5)  # Münsing (7f) with ε = 0
    assert (c + d).sum() > 1  # prices vary, so it trades
    np.testing.assert_allclose(blk.p_kw.value[0], d - c, atol=1e-9)


def test_battery_end_tolerance_allows_a_band():
    spec = BatterySpec("b", 1, 10, 5, 5, end_tolerance_frac=0.2)
    blk = build_batteries([spec], T, DT)
    blk.parameters["e_init_kwh"].value = np.array([5.0])
    _solve(blk)
    assert 4.0 - 1e-6 <= blk.variables["e_kwh"].value[0, -1] <= 6.0 + 1e-6


def test_ev_gets_its_energy_inside_its_window():
    spec = EvSpec("ev", 1, p_max_kw=7.0, efficiency=0.9)
    blk = build_evs([spec], T, DT)
    window = ev_window(T, 18, 7)  # overnight, wrapping
    blk.parameters["available"].value = window.reshape(1, T)
    blk.parameters["e_need_kwh"].value = np.array([20.0])
    _solve(blk)
    p = blk.variables["p_kw"].value[0]
    assert np.all(p[window == 0] <= 1e-7)
    assert 0.9 * p.sum() * DT == pytest.approx(20.0, rel=1e-6)
    assert p.max() <= 7 + 1e-6


def test_ev_window_helper():
    assert ev_window(6, 1, 3).tolist() == [0, 1, 1, 0, 0, 0]
    assert ev_window(6, 4, 1).tolist() == [1, 0, 0, 0, 1, 1]
    with pytest.raises(DerError, match="window"):
        ev_window(6, 7, 1)


def test_deferrable_load_starts_within_its_window_and_runs_its_cycle():
    spec = DeferrableSpec("wash", 1, cycle_kw=(2.0, 1.0), arrival_step=5, max_delay_steps=6)
    blk = build_deferrables([spec], T)
    _solve(blk)
    d = blk.variables["started"].value[0]
    starts = np.diff(np.concatenate([[0.0], d]))
    assert starts[:5].max() <= 1e-7  # not before arrival
    assert d[5 + 6] == pytest.approx(1.0, abs=1e-7)  # started by the deadline
    assert starts[5:12].sum() == pytest.approx(1.0, abs=1e-6)
    p = -blk.p_kw.value[0]
    assert p.sum() == pytest.approx(3.0, abs=1e-6)  # the whole cycle's energy
    # it starts where the two-step cycle is cheapest
    best = min(range(5, 12), key=lambda s: 2 * PRICE[s] + PRICE[s + 1])
    assert starts[best] == pytest.approx(1.0, abs=1e-4)


def test_deferrable_that_cannot_finish_is_refused():
    spec = DeferrableSpec("late", 1, (1.0, 1.0, 1.0), arrival_step=20, max_delay_steps=3)
    with pytest.raises(DerError, match="exceeds the horizon"):
        build_deferrables([spec], T)


def test_shiftable_keeps_its_energy_inside_its_window():
    spec = ShiftableSpec("dish", 1, window=(8, 20), p_max_kw=3, discomfort_eur_per_kw2=0.01)
    blk = build_shiftables([spec], T)
    pref = np.zeros((1, T))
    pref[0, 10:12] = 2.0
    blk.parameters["preferred_kw"].value = pref
    _solve(blk)
    p = blk.variables["p_kw"].value[0]
    assert p.sum() == pytest.approx(4.0, abs=1e-6)
    assert p[:8].max() <= 1e-7
    assert p[20:].max() <= 1e-7


def test_hvac_follows_its_thermal_model_and_comfort_band():
    spec = HvacSpec("ac", 1, r_c_h=5.0, gamma_c_per_kw=-1.5, p_max_kw=3.0, t_min_c=20,
                    t_max_c=25, t_ref_c=22, t_init_c=23, discomfort_eur_per_c2=0.05)
    blk = build_hvacs([spec], T, DT)
    t_out = 26 + 6 * np.sin(np.linspace(0, 2 * np.pi, T))
    blk.parameters["t_out_c"].value = t_out
    _solve(blk)
    t_in, p = blk.variables["t_in_c"].value[0], blk.variables["p_kw"].value[0]
    a = np.exp(-DT / 5.0)
    prev = np.concatenate([[23.0], t_in[:-1]])
    p_prev = np.concatenate([[0.0], p[:-1]])
    np.testing.assert_allclose(t_in, t_out - (t_out - prev) * a - 1.5 * p_prev, atol=1e-6)
    assert t_in.min() >= 20 - 1e-6
    assert t_in.max() <= 25 + 1e-6


def test_pv_is_curtailable_and_reactive_within_its_rating():
    spec = PvSpec("pv", 1, p_rated_kw=5, s_rated_kva=5.5, q_capable=True)
    blk = build_pv([spec], T)
    avail = np.clip(5 * np.sin(np.linspace(0, np.pi, T)), 0, None).reshape(1, T)
    blk.parameters["p_avail_kw"].value = avail
    q = blk.variables["q_kvar"]
    _solve(blk, extra=[q == 2.0])
    p = blk.variables["p_kw"].value
    assert np.all(p <= avail + 1e-7)
    assert np.all(p**2 + 4.0 <= 5.5**2 + 1e-5)


def test_generator_quadratic_cost():
    spec = GeneratorSpec("g", 1, 0, 10, alpha_eur_per_kw2h=0.01, beta_eur_per_kwh=0.05)
    blk = build_generators([spec], T, DT)
    _solve(blk)
    p = blk.variables["p_kw"].value[0]
    # marginal cost 2αp + β equals the price where the generator is not at a limit
    np.testing.assert_allclose(p, np.clip((PRICE - 0.05) / 0.02, 0, 10), atol=1e-4)


@pytest.mark.parametrize(("factory", "field"), [
    (lambda: BatterySpec("b", 1, -1, 1, 1), "e_max_kwh"),
    (lambda: BatterySpec("b", 1, 10, 1, 1, eta_charge=1.2), "eta_charge"),
    (lambda: BatterySpec("b", 1, 10, float("nan"), 1), "p_charge_max_kw"),
    (lambda: BatterySpec("b", 1, 10, 1, 1, e_min_kwh=11), "e_min_kwh"),
    (lambda: EvSpec("e", 1, 0.0), "p_max_kw"),
    (lambda: PvSpec("p", 1, -5), "p_rated_kw"),
    (lambda: PvSpec("p", 1, 5, s_rated_kva=4), "s_rated_kva"),
    (lambda: DeferrableSpec("d", 1, (), 0, 0), "cycle_kw"),
    (lambda: ShiftableSpec("s", 1, (5, 5), 1), "window"),
    (lambda: HvacSpec("h", 1, 5, 0.0, 1, 20, 25, 22, 22), "gamma_c_per_kw"),
    (lambda: GeneratorSpec("g", 1, 5, 1), "p_min_kw"),
])
def test_bad_device_parameters_name_the_field(factory, field):
    with pytest.raises(DerError, match=field):
        factory()
