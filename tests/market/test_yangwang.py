"""Yang-Wang prosumer coordination: ADMM (16)-(17) against the centralised DCM."""

import numpy as np
import pytest

from market.errors import MarketError
from market.yangwang import YangWang, synthetic_week


def test_synthetic_data_are_reproducible() -> None:
    a = synthetic_week(4, 2, np.random.default_rng(1))[1]
    b = synthetic_week(4, 2, np.random.default_rng(1))[1]
    np.testing.assert_array_equal(a.renewable_kw, b.renewable_kw)
    assert a.renewable_kw.shape == (48, 4)


def test_admm_converges_within_one_percent_of_the_central_solution() -> None:
    pros, inp = synthetic_week(6, 1)
    model = YangWang(pros, 24)
    central = model.solve_central(inp)
    admm = model.solve_admm(inp, rho=1.0, max_iter=300, tol_kw=1e-3,
                            reference_objective_eur=central.objective_eur)
    assert admm.converged
    gap = abs(admm.objective_eur - central.objective_eur) / abs(central.objective_eur)
    assert gap <= 0.01
    # the clearing constraint (10) holds at the ADMM solution
    t = admm.trades_kw
    assert np.max(np.abs(t + np.transpose(t, (0, 2, 1)))) <= 1e-2
    # both solutions respect the thermal comfort band and the grid capacity
    for res in (central, admm):
        assert np.all(res.schedules["t_in_c"] >= 21.0 - 1e-4)
        assert np.all(res.schedules["t_in_c"] <= 27.0 + 1e-4)
        assert np.all(res.schedules["grid_kw"] <= 10.0 + 1e-4)
    # the gap history shrinks
    assert admm.history["gap"][-1] < admm.history["gap"][0]


def test_one_prosumer_is_refused() -> None:
    pros, _ = synthetic_week(1, 1)
    with pytest.raises(MarketError):
        YangWang(pros, 24)
