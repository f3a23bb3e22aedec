"""The household plan solver: a function of its inputs alone, whichever plans came before it, and
the batched closed form equal to the plans made one by one."""

from dataclasses import replace

import numpy as np
import pytest

from mas.brains.hems import PlanInputs, closed_form_arrays, solve_plan, structure
from mas.brains.household import HouseholdBrain, make_plans
from mas.errors import PlanError
from mas.scenario import Forecast
from mas.world import SLOTS, household_rng
from tests.mas.test_mas_brains import EXPORT, IMPORT, _spec

KINDS = [{"pv": pv, "battery": bat, "ev": ev} for pv, bat, ev in
         [(True, True, False), (True, True, True), (False, False, True), (True, False, False),
          (False, False, False), (True, False, True)]]


def _brain(index: int, kind: dict, *, seed: int = 11) -> HouseholdBrain:
    spec = _spec(index, **kind)
    return HouseholdBrain(spec, IMPORT, EXPORT, Forecast(0.2, 0.2),
                          household_rng(seed, spec.index), salt_seed=seed)


def _requests(n: int, rounds: int, seed: int) -> list[list[tuple[np.ndarray | None, ...]]]:
    """Per round, per household: (lam, target); round 0 without either."""
    rng = np.random.default_rng(seed)
    out: list[list[tuple[np.ndarray | None, ...]]] = [[(None, None)] * n]
    for _ in range(rounds - 1):
        out.append([(rng.uniform(-0.3, 0.4, SLOTS), rng.uniform(-4.0, 6.0, SLOTS))
                    for _ in range(n)])
    return out


def _inputs(n: int, seed: int) -> list[tuple[dict, PlanInputs]]:
    """Plan inputs of ``n`` households of every kind, half with a proximal target."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        kind = KINDS[k % len(KINDS)]
        b = _brain(k, kind, seed=seed)
        b.lam = rng.uniform(-0.3, 0.4, SLOTS)
        out.append((kind, b.plan_inputs(rng.uniform(-4.0, 6.0, SLOTS) if k % 2 else None)))
    return out


def _solve(kind: dict, x: PlanInputs):
    spec = _spec(**kind)
    return solve_plan(spec.pv, spec.battery, spec.ev, x)


def _fields(sol) -> list[bytes]:
    return [sol.import_kw.tobytes(), sol.export_kw.tobytes(), sol.pv_kw.tobytes(),
            sol.battery_kw.tobytes(), sol.ev_kw.tobytes(), repr(sol.objective_eur).encode()]


def test_a_plan_does_not_depend_on_the_plans_solved_before_it():
    """The solvers shared by a structure are reused, so the order of the solves, the structures'
    first users and a failed solve in between must not change any plan, to the bit."""
    cases = _inputs(24, seed=4)
    first = [_fields(_solve(kind, x)) for kind, x in cases]
    structure.cache_clear()  # new shared solvers, whose first users differ below
    kind, x = cases[5]
    spec = _spec(**kind)
    with pytest.raises(PlanError):  # infeasible: the EV cannot get 1 MWh
        solve_plan(spec.pv, spec.battery, spec.ev, replace(x, ev_need_kwh=1000.0))
    order = np.random.default_rng(0).permutation(len(cases))
    again = {int(k): _fields(_solve(*cases[k])) for k in order}
    assert [again[k] for k in range(len(cases))] == first


def test_a_household_plan_sequence_is_the_same_in_any_household_order():
    """What parity between the runtimes needs: a household's plans over the rounds are the same
    whether it plans alone, or among others in any order."""
    kinds = [KINDS[k % len(KINDS)] for k in range(12)]
    reqs = _requests(len(kinds), rounds=4, seed=2)
    alone = []
    for k, kind in enumerate(kinds):
        b = _brain(k, kind)
        alone.append([b.make_plan(*reqs[r][k]) for r in range(len(reqs))])
    brains = [_brain(k, kind) for k, kind in enumerate(kinds)]
    rng = np.random.default_rng(1)
    together: list[list] = [[] for _ in kinds]
    for r in range(len(reqs)):
        for k in rng.permutation(len(kinds)):
            together[k].append(brains[k].make_plan(*reqs[r][k]))
    assert together == alone


def test_make_plans_equals_make_plan_one_by_one():
    """The batched closed form (and its rounding and pricing) gives every household bitwise the
    plans it makes alone; the other households go through make_plan."""
    kinds = [KINDS[k % len(KINDS)] for k in range(18)]
    reqs = _requests(len(kinds), rounds=4, seed=7)
    one = [_brain(k, kind) for k, kind in enumerate(kinds)]
    many = [_brain(k, kind) for k, kind in enumerate(kinds)]
    assert sum(b.closed_form for b in many) == 6
    for r in range(len(reqs)):
        lams, targets = zip(*reqs[r], strict=True)
        want = [b.make_plan(lam, t) for b, lam, t in zip(one, lams, targets, strict=True)]
        got = make_plans(many, lams, targets)
        assert got == want
        assert [repr(p.cost_eur) for p in got] == [repr(p.cost_eur) for p in want]
    for a, b in zip(one, many, strict=True):
        assert a.lam.tobytes() == b.lam.tobytes()


def test_make_plans_checks_its_inputs():
    brains = [_brain(0, KINDS[4]), _brain(1, KINDS[3])]
    with pytest.raises(PlanError, match="2 households, 1 lam"):
        make_plans(brains, [None], [None, None])
    with pytest.raises(PlanError, match="lam_eur_per_kwh"):
        make_plans(brains, [None, [0.0] * 3], [None, None])


def test_closed_form_rows_are_the_households_own_solves():
    cases = [x for kind, x in _inputs(30, seed=9) if not kind["battery"] and not kind["ev"]]
    for prox in (False, True):
        group = [x for x in cases if x.prox == prox]
        stacked = PlanInputs(
            *(np.stack([getattr(x, f) for x in group]) for f in
              ("load_kw", "pv_avail_kw", "import_eur_per_kwh", "export_eur_per_kwh",
               "lam_eur_per_kwh")), 0.0, np.zeros(SLOTS), 0.0, group[0].prox_eur_per_kw2,
            np.stack([x.target_import_kw for x in group]) if prox else None)
        rows = closed_form_arrays(stacked)
        for k, x in enumerate(group):
            alone = closed_form_arrays(x)
            for a, b in zip(rows, alone, strict=True):
                assert a[k].tobytes() == np.asarray(b).tobytes()
