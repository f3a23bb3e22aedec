"""ADMM iterations and wall time to a 0.1 % gap with consensus ≤ 1e-3 p.u., per variant, beside
the centralised solve of the same OPF measured in the same run.

Feeder ``case33bw``, 24 h from 2016-06-21 (default day: H0 loads, PV on 40 % of load buses),
DE prices + 0.10 EUR/kWh. Each variant of :data:`grid.admm.opf.VARIANTS` runs until the relative
gap to the central optimum is at most ``--gap`` and ``max|x̃ − z̃| ≤ --consensus`` (or
``--max-iter``); the batched in-process path solves all nodes in one Clarabel call per round.
Figures are medians of ``--repeats`` runs; every run times the central solve right before the
ADMM run and the ratio is the median of the per-run ratios. Goals: ≤ 150 iterations and
≤ 10x the central wall time.

    .venv/bin/python benchmarks/bench_admm.py [--repeats 3] [--step-min 60]
        [--variants subtree2,subtree4,relaxed,balanced,plain] [--max-iter 1500] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from typing import Any

from grid.admm.engine import AdmmOptions
from grid.admm.opf import VARIANTS, AdmmOpf, cost_scale_eur
from grid.feeders import load_feeder
from grid.opf import Devices, OpfInputs, OpfModel
from grid.prices import Tariff
from grid.profiles import day_profiles

GOAL_ITERATIONS = 150
GOAL_RATIO = 10.0


def bench(variant: str, step_min: int, repeats: int, gap: float, consensus: float,
          max_iter: int) -> dict[str, Any]:
    """Median figures of one variant."""
    f = load_feeder("case33bw")
    prof = day_profiles(f, "2016-06-21", 24, step_min)
    imp, exp = Tariff().prices(prof.start, prof.periods, step_min)
    inputs = OpfInputs(prof.load_p_kw, prof.load_q_kvar, imp, exp, prof.pv_p_avail_kw)
    devices = Devices(pv=prof.pv, batteries=prof.batteries)
    central = OpfModel(f, prof.periods, step_min, devices)
    spec = VARIANTS[variant]
    model = AdmmOpf(f, prof.periods, step_min, devices, admm=AdmmOptions(
        alpha=float(spec["alpha"]), residual_balancing=bool(spec["residual_balancing"]),
        cost_scale_eur=cost_scale_eur(inputs, step_min, central.s_base_kw), target_gap=gap,
        consensus_tol=consensus, max_iter=max_iter), regions=spec["partition"])
    compile_s = model.engine.compile()  # build costs are excluded on both sides
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ref = central.solve(inputs)
        t_central = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = model.solve(inputs, reference_objective_eur=ref.objective_eur)
        t_admm = time.perf_counter() - t0
        runs.append({"central_s": t_central, "admm_s": t_admm, "ratio": t_admm / t_central,
                     "iterations": res.run.iterations, "converged": res.run.converged,
                     "gap": abs(res.opf.objective_eur - ref.objective_eur)
                     / abs(ref.objective_eur),
                     "consensus": res.run.consensus_inf,
                     "solve_s": res.run.solve_time_s})
    med = {k: statistics.median(r[k] for r in runs) for k in
           ("central_s", "admm_s", "ratio", "iterations", "gap", "consensus", "solve_s")}
    return {"variant": variant, "regions": len(model.regions), "periods": prof.periods,
            "compile_s": compile_s,
            "alpha": spec["alpha"], "residual_balancing": spec["residual_balancing"],
            "converged": all(r["converged"] for r in runs), "runs": runs, **med,
            "per_round_ms": 1000 * med["admm_s"] / max(med["iterations"], 1),
            "meets_iterations": med["iterations"] <= GOAL_ITERATIONS,
            "meets_ratio": med["ratio"] <= GOAL_RATIO}


def main() -> None:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--step-min", type=int, default=60)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--gap", type=float, default=1e-3)
    ap.add_argument("--consensus", type=float, default=1e-3)
    ap.add_argument("--max-iter", type=int, default=1500)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    for v in args.variants.split(","):
        row = bench(v, args.step_min, args.repeats, args.gap, args.consensus, args.max_iter)
        rows.append(row)
        print(f"{v:10s} regions {row['regions']:3d}  iterations {row['iterations']:6.0f}  "
              f"ADMM {row['admm_s']:8.2f} s  central {row['central_s']:6.3f} s  "
              f"ratio {row['ratio']:8.1f}x  {row['per_round_ms']:6.1f} ms/round  "
              f"gap {row['gap']:.2e}  consensus {row['consensus']:.1e}  "
              f"{'converged' if row['converged'] else 'ROUND LIMIT'}", flush=True)
    print(f"goals: <= {GOAL_ITERATIONS} iterations, <= {GOAL_RATIO:g}x central wall time")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"step_min": args.step_min, "repeats": args.repeats, "gap": args.gap,
                       "consensus": args.consensus, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
