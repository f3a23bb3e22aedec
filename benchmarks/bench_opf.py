"""Centralised DistFlow OPF: model build and solve times.

Cases: ``case33bw`` for 24 hourly periods, and a 96-step day on the largest SimBench LV feeder
we ship (``1-LV-rural3--0-sw``, 129 buses). For each case the model is built (and compiled)
once, then re-solved ``--runs`` times with new prices (the DPP path a day-by-day study takes).
Reported: medians of the runs for

* ``build_s`` — building and compiling the cvxpy problem (once per model; median over
  ``--builds`` fresh builds),
* ``solve_wall_s`` — one re-solve, from setting parameters to the frozen result,
* ``solver_s`` — the solver's own time inside it,
* ``overhead_ratio`` — ``solve_wall_s / solver_s`` (goal ≤ 1.5),
* ``first_ratio`` — ``(build_s + solve_wall_s) / solver_s`` for a one-off solve.

Run: ``.venv/bin/python benchmarks/bench_opf.py [--runs 7] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings

import numpy as np

from grid.feeders import load_feeder
from grid.opf import Devices, OpfInputs, OpfModel
from grid.prices import Tariff
from grid.profiles import day_profiles

CASES = [("case33bw", 24, 60), ("1-LV-rural3--0-sw", 24, 15)]


def bench_case(name: str, hours: int, step_min: int, runs: int, builds: int) -> dict:
    feeder = load_feeder(name)
    prof = day_profiles(feeder, "2016-06-21", hours, step_min)
    imp, exp = Tariff().prices(prof.start, prof.periods, prof.step_min)
    devices = Devices(pv=prof.pv, batteries=prof.batteries)
    build_times = []
    model = None
    for _ in range(builds):
        t0 = time.perf_counter()
        model = OpfModel(feeder, prof.periods, prof.step_min, devices)
        build_times.append(time.perf_counter() - t0)
    assert model is not None
    rng = np.random.default_rng(0)
    walls, solvers = [], []
    result = None
    for _ in range(runs):
        scale = 1 + 0.1 * rng.standard_normal(prof.periods)
        inputs = OpfInputs(prof.load_p_kw, prof.load_q_kvar, imp * np.abs(scale),
                           np.minimum(exp, imp * np.abs(scale)), prof.pv_p_avail_kw)
        result = model.solve(inputs)
        walls.append(result.solve_time_s)
        solvers.append(result.solver_time_s)
    assert result is not None
    build = statistics.median(build_times)
    wall = statistics.median(walls)
    solver = statistics.median(solvers)
    return {
        "case": name, "buses": feeder.n_buses, "periods": prof.periods,
        "variables": sum(v.size for v in model.problem.variables()),
        "build_s": build, "solve_wall_s": wall, "solver_s": solver,
        "overhead_ratio": wall / solver, "first_ratio": (build + wall) / solver,
        "status": result.status, "runs": runs, "builds": builds,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="re-solves per case (median)")
    ap.add_argument("--builds", type=int, default=3, help="fresh builds per case (median)")
    ap.add_argument("--json", dest="json_path", default=None, help="write the figures here")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", FutureWarning)
    rows = [bench_case(n, h, s, args.runs, args.builds) for n, h, s in CASES]
    cols = ["case", "buses", "periods", "variables", "build_s", "solve_wall_s", "solver_s",
            "overhead_ratio", "first_ratio", "status"]
    print("  ".join(f"{c:>14}" for c in cols))
    for r in rows:
        print("  ".join(f"{r[c]:>14.4f}" if isinstance(r[c], float) else f"{r[c]!s:>14}"
                        for c in cols))
    c33 = rows[0]
    print(f"\ngoal case33bw 24 h re-solve < 0.1 s: {c33['solve_wall_s']:.4f} s "
          f"({'met' if c33['solve_wall_s'] < 0.1 else 'missed'})")
    for r in rows:
        print(f"goal {r['case']} wall/solver <= 1.5: {r['overhead_ratio']:.2f} "
              f"({'met' if r['overhead_ratio'] <= 1.5 else 'missed'})")
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as fh:
            json.dump({"bench": "opf", "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
