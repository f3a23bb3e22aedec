"""The unified prosumer market: coefficients, modes, ADMM against the central solve, prices."""

import numpy as np
import pytest

from grid.admm.engine import AdmmOptions
from grid.der import BatterySpec, EvSpec, PvSpec
from grid.feeders import Feeder, load_feeder
from market.bilateral import (
    BilateralMarket,
    Household,
    MarketInputs,
    peak_mask,
    trading_coefficients,
)
from market.errors import MarketError

FEEDER = "1-LV-rural1--0-sw"


def _scenario(periods: int = 4, n: int = 6) -> tuple[Feeder, list[Household], MarketInputs]:
    """Six households, three with PV and a battery, one EV; a sunny midday window."""
    f = load_feeder(FEEDER)
    rng = np.random.default_rng(3)
    buses = [a.bus for a in f.loads][:n]
    hh = []
    for i, b in enumerate(buses):
        pv = PvSpec(f"pv{i}", b, 5.0) if i % 2 == 0 else None
        bat = BatterySpec(f"b{i}", b, 4.0, 2.0, 2.0) if i % 2 == 0 else None
        ev = EvSpec(f"ev{i}", b, 3.7) if i == 1 else None
        hh.append(Household(f"h{i}", b, pv, bat, ev))
    load = rng.uniform(0.3, 1.5, (periods, n))
    sun = np.linspace(0.6, 0.9, periods)[:, None]
    pv = np.column_stack([4.0 * sun[:, 0] if h.pv else np.zeros(periods) for h in hh])
    imp = np.linspace(0.20, 0.30, periods)
    inputs = MarketInputs(load, 0.2 * load, pv, imp, 0.5 * imp,
                          ev_available=np.ones((periods, n)), ev_e_need_kwh=np.full(n, 3.0),
                          gamma_eur_per_kwh=trading_coefficients(pv, load))
    return f, hh, inputs


def test_coefficients_follow_eqs_26_to_29() -> None:
    pv = np.array([[3.0, 0.0, 2.0, 0.0]])
    load = np.array([[1.0, 2.0, 1.0, 1.0]])
    g = trading_coefficients(pv, load, chi=10.0, eur_per_unit=1.0)
    assert g.shape == (1, 4, 4)
    np.testing.assert_allclose(np.diagonal(g[0]), 0.0)
    np.testing.assert_allclose(g, np.transpose(g, (0, 2, 1)))
    assert g[0, 0, 2] == 10.0        # two sellers
    assert g[0, 1, 3] == 10.0        # two buyers
    # each household is at its own maximum: γ^s = γ^b = χ/2, so the pair's coefficient is 0
    assert g[0, 0, 1] == pytest.approx(0.0)
    assert np.all((g >= 0) & (g <= 10.0))


def test_peak_mask_marks_six_to_nine_and_five_to_eight() -> None:
    m = peak_mask(24, 60)
    assert list(np.flatnonzero(m)) == [6, 7, 8, 17, 18, 19]


def test_grid_modes_need_a_feeder() -> None:
    _, hh, _ = _scenario()
    with pytest.raises(MarketError):
        BilateralMarket(hh, 4, 60, "TGS")


def test_baseline_has_no_trades_and_trading_does_not_cost_the_community_more() -> None:
    f, hh, inp = _scenario()
    bs = BilateralMarket(hh, 4, 60, "BS").solve(inp)
    ts = BilateralMarket(hh, 4, 60, "TS").solve(inp, "central")
    assert np.all(bs.trades_kw == 0)
    assert ts.objective_eur <= bs.objective_eur + 1e-6
    assert np.abs(ts.trades_kw).sum() > 0.1, "the scenario is built so that trades pay"
    # payments between households cancel
    assert ts.trade_cost_eur.sum() == pytest.approx(0.0, abs=1e-6)
    del f


@pytest.mark.parametrize("mode", ["TS", "TGS"])
def test_admm_matches_central_with_reciprocal_trades_and_prices_between_tariffs(mode: str
                                                                               ) -> None:
    f, hh, inp = _scenario()
    market = BilateralMarket(hh, 4, 60, mode, f if mode == "TGS" else None, regions=2,
                             admm=AdmmOptions(alpha=1.6, max_iter=3000, cost_scale_eur=0.0))
    central = market.solve(inp, "central")
    admm = market.solve(inp, "admm", reference_objective_eur=central.objective_eur)
    assert admm.run is not None
    assert admm.run.converged
    gap = abs(admm.objective_eur - central.objective_eur) / abs(central.objective_eur)
    assert gap <= 5e-3
    assert central.reciprocity_kw <= 1e-6
    assert admm.reciprocity_kw <= 0.02          # consensus 1e-3 in units of 10 kW
    imp = inp.price_import_eur_per_kwh[:, None, None]
    exp = inp.price_export_eur_per_kwh[:, None, None]
    for res in (central, admm):
        price = res.trade_price_eur_per_kwh
        traded = ~np.isnan(price) & (np.abs(res.trades_kw) > 0.05)
        assert traded.any()
        lo = np.broadcast_to(exp, price.shape)[traded]
        hi = np.broadcast_to(imp, price.shape)[traded]
        assert np.all(price[traded] >= lo - 2e-3)
        assert np.all(price[traded] <= hi + 2e-3)



def test_a_time_varying_root_cost_moves_the_substation_exchange_out_of_its_hours() -> None:
    f, hh, inp = _scenario()
    flat = BilateralMarket(hh, 4, 60, "GS", f).solve(inp, "central")
    alpha = np.array([0.0, 0.0, 0.0, 0.5])          # dear in the last period only
    dear = BilateralMarket(hh, 4, 60, "GS", f, root_quadratic_eur_per_kw2h=alpha
                           ).solve(inp, "central")
    assert abs(dear.substation_import_kw[3]) < abs(flat.substation_import_kw[3]) - 0.1
    assert dear.network_cost_eur >= 0.5 * dear.substation_import_kw[3] ** 2 - 1e-6
    with pytest.raises(MarketError):
        BilateralMarket(hh, 4, 60, "GS", f, root_quadratic_eur_per_kw2h=[0.0, 0.0, -1.0, 0.0])


def test_a_root_cost_on_purchases_is_charged_on_the_households_imports_and_admm_agrees() -> None:
    f, hh, inp = _scenario()
    alpha = np.array([0.0, 0.0, 0.0, 0.5])
    market = BilateralMarket(hh, 4, 60, "TGS", f, regions=2, root_quadratic_eur_per_kw2h=alpha,
                             root_base="purchases",
                             admm=AdmmOptions(alpha=1.6, max_iter=3000, cost_scale_eur=0.0))
    # the other region's purchases reach the root's node as a consensus copy
    assert sum(k[0] == "g" for p in market._pieces for k in p.keys) == 2
    central = market.solve(inp, "central")
    bought = central.import_kw.sum(axis=1)
    losses = inp.price_import_eur_per_kwh @ central.losses_kw
    # charged on the purchases, not on the substation exchange (which feed-in reduces)
    assert central.network_cost_eur == pytest.approx(alpha @ bought**2 + losses, rel=1e-6)
    admm = market.solve(inp, "admm", reference_objective_eur=central.objective_eur)
    assert admm.run is not None
    assert admm.run.converged
    assert abs(admm.objective_eur - central.objective_eur) <= 5e-3 * abs(central.objective_eur)
    with pytest.raises(MarketError, match="root_base"):
        BilateralMarket(hh, 4, 60, "TGS", f, root_base="net")  # type: ignore[arg-type]
