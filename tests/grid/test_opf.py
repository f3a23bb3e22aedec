import numpy as np
import pandapower as pp
import pytest

from grid.der import GeneratorSpec
from grid.errors import FeederError, InfeasibleError, ProfileError
from grid.feeders import from_pandapower
from grid.opf import Devices, OpfInputs, OpfModel, OpfOptions
from grid.pfcheck import check_with_pandapower
from grid.prices import Tariff
from grid.profiles import day_profiles
from tests.grid.conftest import line_net


def _day(feeder, step_min=60, options=None):
    pr = day_profiles(feeder, "2016-06-21", 24, step_min)
    imp, exp = Tariff().prices(pr.start, pr.periods, pr.step_min)
    model = OpfModel(feeder, pr.periods, pr.step_min,
                     Devices(pv=pr.pv, batteries=pr.batteries), options)
    inputs = OpfInputs(pr.load_p_kw, pr.load_q_kvar, imp, exp, pr.pv_p_avail_kw)
    return model, inputs


def test_problem_is_dpp(feeder):
    model, _ = _day(feeder("1-LV-rural1--2-sw"))
    assert model.problem.is_dpp()


@pytest.mark.parametrize("name", ["case33bw", "1-LV-rural1--2-sw", "1-LV-semiurb4--0-sw"])
def test_opf_agrees_with_pandapower_ac_power_flow(feeder, name):
    f = feeder(name)
    model, inputs = _day(f)
    res = model.solve(inputs)
    assert res.status == "optimal"
    assert res.relaxation_gap < 1e-5
    check = check_with_pandapower(f, res)
    assert check.converged
    assert check.max_dv_pu < 1e-3
    # losses of the relaxation match the AC power flow's line losses on a lossy feeder
    if name == "case33bw":
        np.testing.assert_allclose(res.loss_kw, check.loss_kw_pf, rtol=1e-3)


def test_energy_balance_closes(feeder):
    f = feeder("case33bw")
    model, inputs = _day(f)
    res = model.solve(inputs)
    # import = withdrawals - injections + losses
    np.testing.assert_allclose(res.import_kw, -res.p_inj_kw[:, 1:].sum(axis=1) + res.loss_kw,
                               rtol=1e-6, atol=1e-3)
    assert res.v_pu.min() >= 0.9 - 1e-6


def test_tapped_transformer_matches_pandapower():
    net = pp.create_empty_network(sn_mva=1.0)
    hv, lv = pp.create_bus(net, vn_kv=20.0), pp.create_bus(net, vn_kv=0.4)
    far = pp.create_bus(net, vn_kv=0.4)
    pp.create_ext_grid(net, hv, vm_pu=1.02)
    t = pp.create_transformer(net, hv, lv, std_type="0.4 MVA 20/0.4 kV")
    net.trafo.at[t, "tap_changer_type"] = "Ratio"
    net.trafo.at[t, "tap_pos"] = -2
    net.trafo.at[t, "pfe_kw"] = 0.0
    net.trafo.at[t, "i0_percent"] = 0.0
    pp.create_line_from_parameters(net, lv, far, 0.2, 0.2, 0.08, 0.0, 0.3)
    pp.create_load(net, far, p_mw=0.08, q_mvar=0.02)
    f = from_pandapower(net, "tapped")
    model = OpfModel(f, 1, 60)
    res = model.solve(OpfInputs(np.array([[80.0]]), np.array([[20.0]]), np.array([0.2]),
                                np.array([0.05])))
    assert check_with_pandapower(f, res).max_dv_pu < 1e-6


def _generator_case(v_min):
    """Root - 1 - 2 - 3 with a load at bus 3 and a dear generator beside it."""
    net = line_net(4, r_ohm_per_km=0.005, x_ohm_per_km=0.05, length_km=1.0, load_kw=0.0)
    net.bus["min_vm_pu"] = v_min
    f = from_pandapower(net, "gen")
    gen = GeneratorSpec("g", 3, p_min_kw=0.0, p_max_kw=200.0, beta_eur_per_kwh=0.5)
    model = OpfModel(f, 1, 60, Devices(generators=(gen,)))
    loads = np.array([[0.0, 0.0, 120.0]])
    return model.solve(OpfInputs(loads, loads * 0.2, np.array([0.1]), np.array([0.02])))


def test_dlmps_are_equal_when_nothing_binds_and_losses_vanish():
    net = line_net(4, r_ohm_per_km=1e-6, x_ohm_per_km=0.05, load_kw=50.0)
    f = from_pandapower(net, "lossless")
    res = OpfModel(f, 2, 60).solve(OpfInputs(np.full((2, 3), 50.0), np.full((2, 3), 10.0),
                                             np.array([0.1, 0.3]), np.array([0.05, 0.05])))
    np.testing.assert_allclose(res.dlmp_eur_per_kwh[0], 0.1, rtol=1e-4)
    np.testing.assert_allclose(res.dlmp_eur_per_kwh[1], 0.3, rtol=1e-4)


def test_dlmps_spread_when_a_voltage_limit_binds():
    free = _generator_case(0.80)
    assert free.v_pu.min() > 0.80 + 1e-3
    assert free.schedules["generator"]["p_kw"].max() < 1e-3  # import is cheaper
    np.testing.assert_allclose(free.dlmp_eur_per_kwh[0], 0.1, rtol=0.05)  # losses only

    bound = _generator_case(0.975)  # above the unsupported voltage at bus 3 (about 0.966)
    assert bound.v_pu[0, 3] == pytest.approx(0.975, abs=1e-5)
    p_gen = bound.schedules["generator"]["p_kw"][0, 0]
    assert 1.0 < p_gen < 200.0  # marginal
    assert bound.dlmp_eur_per_kwh[0, 0] == pytest.approx(0.1, rel=1e-6)
    assert bound.dlmp_eur_per_kwh[0, 3] == pytest.approx(0.5, rel=1e-4)
    assert np.all(np.diff(bound.dlmp_eur_per_kwh[0]) > 0)  # rising towards the binding bus


def test_infeasible_voltage_limit_raises_with_status():
    net = line_net(3, r_ohm_per_km=2.0, x_ohm_per_km=1.0, length_km=1.0)
    net.bus["min_vm_pu"] = 0.99
    f = from_pandapower(net, "weak")
    model = OpfModel(f, 1, 60)
    with pytest.raises(InfeasibleError) as info:
        model.solve(OpfInputs(np.array([[50.0, 50.0]]), np.array([[10.0, 10.0]]),
                              np.array([0.2]), np.array([0.05])))
    assert "infeasible" in info.value.status


def test_resolving_with_new_prices_needs_no_rebuild(chain4):
    model = OpfModel(chain4, 3, 60)
    loads = np.full((3, 3), 10.0)
    a = model.solve(OpfInputs(loads, loads * 0.25, np.full(3, 0.1), np.zeros(3)))
    b = model.solve(OpfInputs(loads, loads * 0.25, np.full(3, 0.2), np.zeros(3)))
    assert a.build_time_s > 0
    assert b.build_time_s == 0
    assert b.objective_eur == pytest.approx(2 * a.objective_eur, rel=1e-6)


def test_losses_objective_loses_no_more_than_the_cost_objective(feeder):
    f = feeder("case33bw")
    m_cost, inputs = _day(f)
    m_loss, _ = _day(f, options=OpfOptions(objective="losses"))
    assert m_loss.solve(inputs).loss_kw.sum() <= m_cost.solve(inputs).loss_kw.sum() + 1e-6


@pytest.mark.parametrize(("field", "value", "match"), [
    ("load_p_kw", np.full((2, 3), np.nan), "NaN"),
    ("load_p_kw", np.zeros((3, 3)), "shape"),
    ("price_export_eur_per_kwh", np.array([0.5, 0.5]), "exceeds the import price"),
])
def test_bad_inputs_name_the_field(chain4, field, value, match):
    model = OpfModel(chain4, 2, 60)
    good = {"load_p_kw": np.ones((2, 3)), "load_q_kvar": np.zeros((2, 3)),
            "price_import_eur_per_kwh": np.full(2, 0.2),
            "price_export_eur_per_kwh": np.full(2, 0.1)}
    good[field] = value
    with pytest.raises(ProfileError, match=match) as info:
        model.solve(OpfInputs(**good))
    assert field in str(info.value)


def test_feeders_in_parallel_carry_k_times_the_load_at_the_same_voltages(feeder):
    f = feeder("case33bw")
    pr = day_profiles(f, "2016-06-21", 24, 60)
    imp, exp = Tariff().prices(pr.start, pr.periods, pr.step_min)
    one = OpfModel(f, pr.periods, pr.step_min, Devices()).solve(
        OpfInputs(pr.load_p_kw, pr.load_q_kvar, imp, exp))
    k = 7
    fk = f.in_parallel(k)
    assert fk.net is None
    assert fk.name.endswith("x7")
    assert sum(a.p_kw for a in fk.loads) == pytest.approx(k * sum(a.p_kw for a in f.loads))
    many = OpfModel(fk, pr.periods, pr.step_min, Devices()).solve(
        OpfInputs(pr.load_p_kw * k, pr.load_q_kvar * k, imp, exp))
    assert one.v_pu.min() < 0.97  # the load makes a voltage drop worth comparing
    np.testing.assert_allclose(many.v_pu, one.v_pu, atol=1e-5)
    np.testing.assert_allclose(many.import_kw, k * one.import_kw, rtol=1e-4, atol=1e-2)
    assert f.in_parallel(1) is f
    with pytest.raises(FeederError, match="copies"):
        f.in_parallel(0)
