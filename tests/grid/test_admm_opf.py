"""Consensus ADMM on the DistFlow OPF against the centralised solve of the same model."""

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest

from grid.admm.aggregator import ReferenceAggregator, RoundResult
from grid.admm.engine import AdmmOptions, NodeTimeoutError
from grid.admm.opf import AdmmOpf, cost_scale_eur, partition, solve_admm_opf
from grid.feeders import Feeder, load_feeder
from grid.opf import Devices, OpfInputs, OpfModel
from grid.prices import Tariff
from grid.profiles import day_profiles


def _case(name: str, hours: float, step_min: int = 60, day: str = "2016-06-21"
          ) -> tuple[Feeder, Devices, OpfInputs, int]:
    f = load_feeder(name)
    prof = day_profiles(f, day, hours, step_min)
    imp, exp = Tariff().prices(prof.start, prof.periods, step_min)
    return (f, Devices(pv=prof.pv, batteries=prof.batteries),
            OpfInputs(prof.load_p_kw, prof.load_q_kvar, imp, exp, prof.pv_p_avail_kw),
            prof.periods)


def test_partitions_cover_every_bus_once_and_are_connected() -> None:
    f = load_feeder("case33bw")
    for kind in ("bus", 2, 4, 7):
        regions = partition(f, kind)
        flat = [b for r in regions for b in r]
        assert sorted(flat) == sorted(f.buses)
        for r in regions:
            tops = [b for b in r if f.parent(b) not in r]
            assert len(tops) == 1, f"region {r} is not connected"
    assert len(partition(f, "bus")) == f.n_buses


def test_local_problems_are_dpp() -> None:
    f, dev, _inp, T = _case("case33bw", 3)
    model = AdmmOpf(f, T, 60, dev, regions="bus")
    assert model.engine.is_dpp()


@pytest.mark.parametrize("anderson", [0, 3])
def test_batched_path_gives_the_per_node_iterates(anderson: int) -> None:
    # The batched path forms every node's conic data in one vectorised update and solves each
    # block with its own solver: the same arithmetic as the per-node path, so every round's
    # iterates are equal bit for bit. A small μ makes residual balancing change ρ mid-run.
    f, dev, inp, T = _case("case33bw", 3)
    opts = AdmmOptions(max_iter=8, alpha=1.6, residual_balancing=True, balance_mu=1.2,
                       anderson=anderson, cost_scale_eur=cost_scale_eur(inp, 60, 5000))
    model = AdmmOpf(f, T, 60, dev, admm=opts, regions="bus")
    a = model.solve(inp, batched=True).run
    b = model.solve(inp, batched=False).run
    c = model.solve(inp, batched=True).run  # solver state left by a run does not leak
    assert a.iterations == b.iterations == 8
    assert len(set(a.history["rho"])) > 1, "residual balancing should have changed rho"
    for other in (b, c):
        for key in ("primal", "dual", "rho", "objective_eur", "consensus_inf"):
            assert np.array_equal(a.history[key], other.history[key]), key
        assert np.array_equal(a.z, other.z)
        for xa, xb in zip(a.x, other.x, strict=True):
            assert np.array_equal(xa, xb)
        for ya, yb in zip(a.y, other.y, strict=True):
            assert np.array_equal(ya, yb)
    # and the iterates do move: round 8 differs from round 1
    assert not np.allclose(a.history["primal"][-1], a.history["primal"][0], rtol=0.1)


def test_local_solutions_reach_cvxpy_after_a_run() -> None:
    # Clarabel is driven directly; the last local solutions are handed back to cvxpy, so the
    # nodes' own costs evaluated by cvxpy equal the run's objective
    f, dev, inp, T = _case("case33bw", 3)
    model = AdmmOpf(f, T, 60, dev, admm=AdmmOptions(
        max_iter=3, cost_scale_eur=cost_scale_eur(inp, 60, 5000)), regions=2)
    run = model.solve(inp).run
    assert model.engine.objective_eur() == pytest.approx(run.objective_eur, rel=1e-6)
    for parts, x in zip(model.parts, run.x, strict=True):
        np.testing.assert_allclose(np.vstack([np.asarray(c.value) for c in parts.coupling]),
                                   x, atol=1e-6)


def test_anderson_acceleration_reaches_the_centralised_optimum() -> None:
    f, dev, inp, T = _case("case33bw", 24)
    central = OpfModel(f, T, 60, dev).solve(inp)
    opts = AdmmOptions(anderson=5, cost_scale_eur=cost_scale_eur(inp, 60, 5000))
    run = AdmmOpf(f, T, 60, dev, admm=opts, regions=4).solve(inp).run
    assert run.converged  # the Boyd stopping rule, not the known optimum
    assert run.anderson_accepted > 0
    gap = abs(run.objective_eur - central.objective_eur) / abs(central.objective_eur)
    assert gap <= 5e-3
    assert run.consensus_inf <= 1e-3


def test_warm_duals_sum_to_zero_over_the_copies_of_a_flow() -> None:
    f, dev, inp, T = _case("case33bw", 3)
    model = AdmmOpf(f, T, 60, dev, admm=AdmmOptions(cost_scale_eur=cost_scale_eur(inp, 60, 5000)),
                    regions=4)
    ys = model.initial_duals(inp)
    total: dict[object, np.ndarray] = {}
    for parts, y in zip(model.parts, ys, strict=True):
        assert y.shape == (len(parts.keys), T)
        for key, row in zip(parts.keys, y, strict=True):
            total[key] = total.get(key, np.zeros(T)) + row
    for key, tot in total.items():
        np.testing.assert_allclose(tot, 0.0, atol=1e-12, err_msg=str(key))
    # the flows into the cut branches are priced near the import price per period
    assert any(np.all(np.abs(y) > 0.1) for y in ys[0])


@pytest.mark.parametrize(("feeder", "variant"), [("case33bw", "subtree2"),
                                                 ("1-LV-rural1--0-sw", "subtree2")])
def test_admm_matches_the_centralised_optimum(feeder: str, variant: str) -> None:
    f, dev, inp, T = _case(feeder, 24)
    res, central = solve_admm_opf(f, T, 60, dev, inp, variant=variant)
    assert central is not None
    assert res.run.converged
    gap = abs(res.opf.objective_eur - central.objective_eur) / abs(central.objective_eur)
    assert gap <= 5e-3
    assert res.run.consensus_inf <= 1e-3
    # the substation import agrees with the centralised one
    scale = max(1.0, float(np.max(np.abs(central.import_kw))))
    assert np.max(np.abs(res.opf.import_kw - central.import_kw)) / scale <= 0.02


def test_a_late_node_raises_an_error_naming_it() -> None:
    f, dev, inp, T = _case("case33bw", 2)
    model = AdmmOpf(f, T, 60, dev, admm=AdmmOptions(max_iter=5), regions="bus")
    with pytest.raises(NodeTimeoutError) as err:
        model.solve(inp, missed=lambda k, i: (k, i) == (2, 7))
    assert err.value.node == 7
    assert err.value.round_index == 2
    assert "bus" in str(err.value)


def test_a_late_node_may_be_replaced_by_its_last_value_and_the_run_is_flagged() -> None:
    f, dev, inp, T = _case("case33bw", 2)
    opts = AdmmOptions(max_iter=5, on_missing="reuse")
    model = AdmmOpf(f, T, 60, dev, admm=opts, regions="bus")
    run = model.solve(inp, missed=lambda k, i: (k, i) == (2, 7)).run
    assert run.flagged
    assert run.stale == ((2, 7),)
    clean = AdmmOpf(f, T, 60, dev, admm=replace(opts, on_missing="raise"), regions="bus")
    assert not clean.solve(inp).run.flagged


class _DroppingAggregator(ReferenceAggregator):
    """An aggregator (e.g. a contract) that loses node 3's submission in round 1."""

    def submit(self, node: int, x_local: Sequence[float]) -> None:
        if not (node == 3 and self._round == 1):
            super().submit(node, x_local)

    def close_round(self, rho: float) -> RoundResult:
        return super().close_round(rho)


def test_a_node_missing_at_the_aggregator_always_raises() -> None:
    f, dev, inp, T = _case("case33bw", 2)
    model = AdmmOpf(f, T, 60, dev, admm=AdmmOptions(max_iter=4, on_missing="reuse"),
                    regions="bus")
    with pytest.raises(NodeTimeoutError) as err:
        model.solve(inp, aggregator=_DroppingAggregator())
    assert err.value.node == 3
