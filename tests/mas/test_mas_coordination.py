"""The DSO's consensus ADMM with the households, checked against the centralised solve."""

from __future__ import annotations

import numpy as np
import pytest

from grid.admm.aggregator import ReferenceAggregator
from mas.brains.coordination import (
    ConsensusAdmm,
    RoundRequest,
    admm_objective_eur,
    answer_round,
    central_solve,
    fixed_kw,
    run_rounds,
)
from mas.brains.dso import DsoBrain
from mas.brains.household import HouseholdBrain
from mas.errors import ProtocolStateError, ScenarioError
from mas.scenario import Scenario
from mas.world import SLOTS, World, build_world, household_rng

SMALL = Scenario(name="admm", feeder="kerber-landnetz-kabel-1", households=8, seed=4)


def _brains(world: World, sc: Scenario) -> dict[str, HouseholdBrain]:
    return {h.id: HouseholdBrain(h, world.import_eur_per_kwh, world.export_eur_per_kwh,
                                 sc.forecast, household_rng(sc.seed, h.index), salt_seed=sc.seed,
                                 prox_eur_per_kw2=sc.grid.rho_eur_per_kw2)
            for h in world.households}


def _with_grid(sc: Scenario, **grid: float) -> Scenario:
    data = sc.to_dict()
    return Scenario.from_dict({**data, "grid": {**data["grid"], **grid}})


def _admm(sc: Scenario) -> tuple[World, dict[str, HouseholdBrain], ConsensusAdmm]:
    world = build_world(sc)
    admm = DsoBrain(world, sc.grid).admm
    admm.start(ReferenceAggregator())
    return world, _brains(world, sc), admm


def _unconstrained_peak_kw(sc: Scenario) -> float:
    world = build_world(sc)
    total = np.zeros(SLOTS)
    for b in _brains(world, sc).values():
        total -= np.asarray(b.make_plan().net_export_kw)
    return float(total.max())


@pytest.mark.slow
@pytest.mark.parametrize("anderson", [0, 3])
def test_admm_reaches_the_central_optimum_when_the_import_limit_binds(anderson: int) -> None:
    peak = _unconstrained_peak_kw(SMALL)
    limit = round(0.9 * peak, 3)
    sc = _with_grid(SMALL, import_limit_kw=limit, max_rounds=100, anderson=anderson)
    _, brains, admm = _admm(sc)
    rounds = run_rounds(admm, lambda h, r: answer_round(brains[h], r))
    assert admm.converged
    assert 1 < rounds < 100
    central = central_solve(list(brains.values()), admm.grid)
    assert central.peak_import_kw == pytest.approx(limit, abs=1e-3)  # the limit binds
    gap = (admm_objective_eur(list(brains.values()), admm) - central.objective_eur) \
        / abs(central.objective_eur)
    assert abs(gap) <= 1e-3
    plans = np.array([admm.x[h] for h in admm.ids])
    assert plans.sum(axis=0).max() <= limit + sc.grid.tol_kw  # the households' own plans
    assert admm.history[-1].consensus_kw <= 0.5
    # the first round is the households' own optimum, which breaks the limit
    assert admm.history[0].primal_residual_kw > admm.history[-1].primal_residual_kw


def test_a_round_ignores_duplicates_and_refuses_what_does_not_fit() -> None:
    _, brains, admm = _admm(SMALL)
    requests = admm.open_round()
    assert set(requests) == set(admm.ids)
    first = requests[admm.ids[0]]
    assert first.target_import_kw is None
    assert first.lam_eur_per_kwh == (0.0,) * SLOTS
    x = answer_round(brains[admm.ids[0]], first)
    assert admm.submit(admm.ids[0], 0, x)
    assert not admm.submit(admm.ids[0], 0, [99.0] * SLOTS)  # duplicate: ignored
    with pytest.raises(ProtocolStateError, match="not in the coordination"):
        admm.submit("zz", 0, x)
    with pytest.raises(ProtocolStateError, match="round 1 is not open"):
        admm.submit(admm.ids[1], 1, x)
    with pytest.raises(ProtocolStateError, match="24 finite numbers"):
        admm.submit(admm.ids[1], 0, [1.0] * 3)
    with pytest.raises(ProtocolStateError, match="still open"):
        admm.open_round()
    for h in admm.ids[1:-1]:  # the last household stays silent
        admm.submit(h, 0, answer_round(brains[h], requests[h]))
    out = admm.close_round()
    assert out.answers == len(admm.ids) - 1
    assert admm.ids[-1] not in admm.x
    # next round: targets are the consensus; a silent household's last answer is reused
    requests = admm.open_round()
    assert all(r.target_import_kw is not None for r in requests.values())
    for h in admm.ids[1:]:
        admm.submit(h, 1, answer_round(brains[h], requests[h]))
    out = admm.close_round()
    assert out.stale == (admm.ids[0],)
    assert out.answers == len(admm.ids) - 1


def test_a_household_refuses_a_round_with_another_rho() -> None:
    world = build_world(SMALL)
    brain = _brains(world, SMALL)[world.ids[0]]
    request = RoundRequest(0, (0.0,) * SLOTS, None, 2 * SMALL.grid.rho_eur_per_kw2)
    with pytest.raises(ProtocolStateError, match="rho_eur_per_kw2"):
        answer_round(brain, request)
    assert brain.plan is None  # nothing planned


def test_the_grid_copy_keeps_import_and_voltages_within_limits() -> None:
    sc = _with_grid(SMALL, import_limit_kw=10.0, v_min_pu=0.97)
    world = build_world(sc)
    grid = DsoBrain(world, sc.grid).admm.grid
    n = len(world.households)
    want = np.full((n, SLOTS), 5.0)  # 40 kW of import asked for in every slot
    p = grid.solve(np.zeros((n, SLOTS)), want)
    assert p.sum(axis=0).max() <= 10.0 + 1e-4
    assert p.sum(axis=0).min() > 0.9 * 10.0  # as close to the target as the limit allows
    assert np.sqrt(np.asarray(grid.v_sq.value)).min() >= 0.97 - 1e-6
    free = grid.solve(np.zeros((n, SLOTS)), np.full((n, SLOTS), 0.5))
    # within limits: near the target, a little below it (the DSO's losses have a price)
    assert np.all(free <= 0.5 + 1e-6)
    np.testing.assert_allclose(free, 0.5, atol=0.05)


def test_z_is_on_the_contracts_grid() -> None:
    z = np.array([1.5e-6, -1.5e-6, 2.0000000001e-6, 0.3])
    np.testing.assert_array_equal(fixed_kw(z), [1e-6, -1e-6, 2e-6, 0.3])


def _targets(requests: dict[str, RoundRequest], ids: tuple[str, ...]) -> np.ndarray:
    return np.array([requests[h].target_import_kw for h in ids])


def test_anderson_sends_extrapolated_targets_on_the_contracts_grid() -> None:
    sc = _with_grid(SMALL, import_limit_kw=round(0.8 * _unconstrained_peak_kw(SMALL), 3),
                    anderson=3)
    world, brains, fast = _admm(sc)
    plain_brains = _brains(world, sc)
    # the same grid copy (a second build may order the conic problem differently)
    plain = ConsensusAdmm(fast.ids, fast.grid, _with_grid(sc, anderson=0).grid, fast.rho)
    plain.start(ReferenceAggregator())
    extrapolated = False
    for _ in range(4):
        got, want = fast.open_round(), plain.open_round()
        if fast.round > 0:
            z = _targets(got, fast.ids)
            np.testing.assert_array_equal(fixed_kw(z), z)  # the contract's fixed point
            extrapolated |= not np.array_equal(z, _targets(want, plain.ids))
        for h in fast.ids:
            fast.submit(h, fast.round, answer_round(brains[h], got[h]))
            plain.submit(h, plain.round, answer_round(plain_brains[h], want[h]))
        fast.close_round()
        plain.close_round()
        if fast.round == 0:  # no difference to extrapolate from yet: the plain iterate
            np.testing.assert_array_equal(fast.z, plain.z)
    assert extrapolated


def test_the_scenario_refuses_a_bad_anderson_memory() -> None:
    with pytest.raises(ScenarioError, match=r"grid\.anderson .*-1"):
        _with_grid(SMALL, anderson=-1)
