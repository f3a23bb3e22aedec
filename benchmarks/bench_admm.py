"""ADMM iterations and wall time to a 0.1 % gap with consensus ≤ 1e-3 p.u., per variant, beside
the centralised solve of the same OPF measured in the same run.

Feeder ``case33bw``, 24 h from 2016-06-21 (default day: H0 loads, PV on 40 % of load buses),
DE prices + 0.10 EUR/kWh. Each variant of :data:`grid.admm.opf.VARIANTS` runs until the relative
gap to the central optimum is at most ``--gap`` and ``max|x̃ − z̃| ≤ --consensus`` (or
``--max-iter``). The central optimum is only the stopping test; nothing of the central solve
starts ADMM (its start is LinDistFlow and tariff estimates).

Timing: every repeat solves the central OPF (``OpfModel.solve``: cvxpy parameters → Clarabel →
result) and then ADMM (``AdmmOpf.solve``: data into the local solvers, rounds, result) right
after it, and the ratio is taken within the repeat; the table shows medians over ``--repeats``.
One-off compile costs are excluded on both sides (the central problem is solved once before the
repeats; the ADMM local problems are compiled once). The machine's load average is recorded.

The gap-and-consensus rule can be met by a crossing: far from convergence the sum of the local
costs may pass the optimum while the copies agree to 1e-3. So each repeat also runs the variant
with the stopping rule used without a known optimum (Boyd et al. §3.3.1, ε_abs = 1e-5,
ε_rel = 1e-4) and reports its rounds, ratio and final gap (``--no-boyd`` skips it).

    .venv/bin/python benchmarks/bench_admm.py [--repeats 5] [--step-min 60]
        [--variants subtree2,subtree4,...] [--max-iter 1500] [--anderson M] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import time
from dataclasses import replace
from typing import Any

from grid.admm.opf import VARIANTS, AdmmOpf, cost_scale_eur, variant_settings
from grid.feeders import load_feeder
from grid.opf import Devices, OpfInputs, OpfModel
from grid.prices import Tariff
from grid.profiles import day_profiles

GOAL_ITERATIONS = 150
GOAL_RATIO = 10.0


def bench(variant: str, step_min: int, repeats: int, gap: float, consensus: float,
          max_iter: int, anderson: int | None = None, boyd: bool = True) -> dict[str, Any]:
    """Median figures of one variant."""
    f = load_feeder("case33bw")
    prof = day_profiles(f, "2016-06-21", 24, step_min)
    imp, exp = Tariff().prices(prof.start, prof.periods, step_min)
    inputs = OpfInputs(prof.load_p_kw, prof.load_q_kvar, imp, exp, prof.pv_p_avail_kw)
    devices = Devices(pv=prof.pv, batteries=prof.batteries)
    central = OpfModel(f, prof.periods, step_min, devices)
    central.solve(inputs)  # compile (cvxpy canonicalisation), excluded like ADMM's below
    spec = VARIANTS[variant]
    opts = replace(variant_settings(variant),
                   cost_scale_eur=cost_scale_eur(inputs, step_min, central.s_base_kw),
                   target_gap=gap, consensus_tol=consensus, max_iter=max_iter)
    if anderson is not None:
        opts = replace(opts, anderson=anderson)
    model = AdmmOpf(f, prof.periods, step_min, devices, admm=opts, regions=spec["partition"],
                    warm_duals=bool(spec["warm_duals"]))
    compile_s = model.engine.compile()
    # the same variant stopped by the Boyd et al. residual rule (no known optimum needed)
    model_b = AdmmOpf(f, prof.periods, step_min, devices, admm=replace(opts, target_gap=None),
                      regions=spec["partition"], warm_duals=bool(spec["warm_duals"]))
    model_b.engine.compile()
    runs = []
    for _ in range(repeats):
        load = os.getloadavg()[0]
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
                     "solve_s": res.run.solve_time_s, "load_avg_1min": load,
                     "anderson_accepted": res.run.anderson_accepted,
                     "anderson_rejected": res.run.anderson_rejected})
        if boyd:
            t0 = time.perf_counter()
            res_b = model_b.solve(inputs, reference_objective_eur=ref.objective_eur)
            t_b = time.perf_counter() - t0
            runs[-1].update({"boyd_iterations": res_b.run.iterations, "boyd_admm_s": t_b,
                             "boyd_ratio": t_b / t_central,
                             "boyd_converged": res_b.run.converged,
                             "boyd_gap": abs(res_b.opf.objective_eur - ref.objective_eur)
                             / abs(ref.objective_eur),
                             "boyd_consensus": res_b.run.consensus_inf})
    keys = ["central_s", "admm_s", "ratio", "iterations", "gap", "consensus", "solve_s",
            "load_avg_1min"]
    if boyd:
        keys += ["boyd_iterations", "boyd_admm_s", "boyd_ratio", "boyd_gap", "boyd_consensus"]
    med = {k: statistics.median(r[k] for r in runs) for k in keys}
    return {"variant": variant, "regions": len(model.regions), "periods": prof.periods,
            "compile_s": compile_s, "alpha": opts.alpha,
            "residual_balancing": opts.residual_balancing, "anderson": opts.anderson,
            "rho": opts.rho, "warm_duals": bool(spec["warm_duals"]),
            "converged": all(r["converged"] for r in runs),
            "boyd_converged": boyd and all(r["boyd_converged"] for r in runs),
            "runs": runs, **med,
            "per_round_ms": 1000 * med["admm_s"] / max(med["iterations"], 1),
            "meets_iterations": med["iterations"] <= GOAL_ITERATIONS,
            "meets_ratio": med["ratio"] <= GOAL_RATIO}


def main() -> None:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--step-min", type=int, default=60)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--gap", type=float, default=1e-3)
    ap.add_argument("--consensus", type=float, default=1e-3)
    ap.add_argument("--max-iter", type=int, default=1500)
    ap.add_argument("--anderson", type=int, default=None,
                    help="override the variants' Anderson memory (0: off), for ablation")
    ap.add_argument("--no-boyd", action="store_true",
                    help="skip the second run stopped by the Boyd et al. residual rule")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"case33bw 24 h, step {args.step_min} min, stop at gap <= {args.gap:g} and "
          f"consensus <= {args.consensus:g} p.u., medians of {args.repeats}; "
          f"{os.cpu_count()} cores, load average at start {os.getloadavg()[0]:.1f}")
    head = (f"{'variant':10s} {'regions':>7s} {'α':>4s} {'RB':>3s} {'AA':>3s} {'y0':>4s} "
            f"{'iter':>6s} {'ADMM s':>8s} {'central s':>9s} {'ratio':>7s} {'ms/round':>8s} "
            f"{'gap':>8s} {'consensus':>9s} {'load':>5s} | {'Boyd it':>7s} {'ratio':>7s} "
            f"{'gap':>8s}")
    print(head, flush=True)
    rows = []
    for v in args.variants.split(","):
        row = bench(v, args.step_min, args.repeats, args.gap, args.consensus, args.max_iter,
                    args.anderson, not args.no_boyd)
        rows.append(row)
        print(f"{v:10s} {row['regions']:7d} {row['alpha']:4.1f} "
              f"{'yes' if row['residual_balancing'] else 'no':>3s} {row['anderson']:3d} "
              f"{'warm' if row['warm_duals'] else 'zero':>4s} {row['iterations']:6.0f} "
              f"{row['admm_s']:8.3f} {row['central_s']:9.3f} {row['ratio']:6.1f}x "
              f"{row['per_round_ms']:8.1f} {row['gap']:8.1e} {row['consensus']:9.1e} "
              f"{row['load_avg_1min']:5.1f}"
              f"{'' if row['converged'] else ' ROUND LIMIT'} | "
              + (f"{row['boyd_iterations']:7.0f} {row['boyd_ratio']:6.1f}x "
                 f"{row['boyd_gap']:8.1e}{'' if row['boyd_converged'] else ' ROUND LIMIT'}"
                 if not args.no_boyd else "-"), flush=True)
    print(f"goals: <= {GOAL_ITERATIONS} iterations, <= {GOAL_RATIO:g}x central wall time")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"step_min": args.step_min, "repeats": args.repeats, "gap": args.gap,
                       "consensus": args.consensus, "cpu_count": os.cpu_count(),
                       "machine": platform.platform(), "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
