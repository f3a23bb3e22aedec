"""Population benchmark of the Mesa runtime: one day (96 ticks) for 1,000 and 10,000 households.

Each case runs in its own process (so peak memory is that case's): the default scenario's
feeder repeated to N households (:func:`mas.mesa.params.population_world`), the import limit
scaled with N, day-ahead and real-time sessions cleared and settled on the chosen ledger:

* ``memory`` — :class:`mas.mesa.memory_ledger.MemoryLedger`;
* ``anvil`` — the contracts on a local anvil node started for the case (commits and ADMM
  submissions in JSON-RPC batches, reveals in order without a wait each, ADMM rounds closed in
  pages; every batch mined in a few full blocks with automine paused), with a block gas limit
  of :data:`BLOCK_GAS` (a session's clear over 1,000 households does not fit the 30 M gas of a
  mainnet-sized block), base fee 0, pruned history and a private state directory;
* ``evm`` — the contracts on the embedded py-evm chain (one transaction at a time).

Reports wall time and process CPU time, split by phase, the child's peak resident memory (the
imports and the feeder's load count in it) and its resident memory at the end of the day, and
the machine's load average; with ``--repeat R`` the median of R runs per case. The baseline,
measured in the same run: the household plans of ``--baseline N`` households solved the way the
brains did before (one cvxpy problem per household, built, compiled and solved) against
:func:`mas.brains.hems.solve_plan`. Goal: 10,000 households in at most 60 s with the in-memory
ledger.

Measured 2026-11-22 (2-core machine shared with three other jobs), anvil, 1,000 households, two
runs with one block per transaction: 1,014.6 s wall at load average 1.1 (setup 69.4 s, 8 ADMM
rounds 285.1 s, day-ahead 70.1 s, real-time 385.2 s, delivery 27.0 s) and 1,330.8 s at load
4.1; 29,491 trades as with the memory ledger, 6.08·10⁹ gas. With batches mined in few blocks,
200 households: 159 s against 283 s the former way in the same run (load 7–8.5), same trades
and gas. The on-chain ADMM now holds 2³² global variables (it held 65,536: 2,730 households), so
10,000 households can run on anvil; see docs/mesa.md.

    python benchmarks/bench_population.py               # memory 1,000 and 10,000; anvil 1,000
    python benchmarks/bench_population.py --sizes 1000 --ledgers memory,anvil,evm --repeat 3
    python benchmarks/bench_population.py --json results/bench_population.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

GOAL_S = 60.0
PHASES = ("setup_s", "plan_s", "day-ahead_s", "intraday_s", "real-time_s", "delivery_s",
          "collect_s")
LEDGERS = ("memory", "anvil", "evm")
BLOCK_GAS = 8_000_000_000
"""anvil's block gas limit in the bench, and the gas of its clear and settle transactions (a
transaction's gas limit times its fee cap, 1 gwei at base fee 0, must stay below the sender's
10 ETH of gas money). 10,000 households need more than 10⁹: the ``AdmmCoordinator`` setup
(10,001 nodes, 480,000 copies) and a session's clear and settle over every participant."""


def _scenario(n: int, max_rounds: int | None = None) -> Any:
    from mas.scenario import Scenario  # noqa: PLC0415 - imports are timed apart from the case
    from mas.world import build_world  # noqa: PLC0415

    base = Scenario()
    n_base = len(build_world(base).households)
    limit = base.grid.import_limit_kw * n / n_base
    grid = {**base.to_dict()["grid"], "import_limit_kw": limit}
    if max_rounds is not None:
        grid["max_rounds"] = max_rounds
    return Scenario.from_dict({**base.to_dict(), "households": n, "grid": grid})


def one_case(n: int, ledger: str, max_rounds: int | None = None) -> dict[str, Any]:
    """Run one case in this process and return its measures.

    ``max_rounds`` replaces the scenario's ``grid.max_rounds`` (None: the scenario's, whose
    rounds stop at the ADMM stopping rule or there).
    """
    from mas.mesa.model import VdgModel  # noqa: PLC0415
    from mas.mesa.params import population_world  # noqa: PLC0415

    t0 = time.perf_counter()
    scenario = _scenario(n, max_rounds)  # the feeder (cached; not timed below)
    world = population_world(scenario)
    world_s = time.perf_counter() - t0
    node = None
    if ledger == "anvil":
        from ledger.anvil import AnvilNode  # noqa: PLC0415

        # A session's clear and settle are one transaction each over every participant, given
        # the node's block gas limit; at 1,000 households they need more than a 30 M block.
        node = AnvilNode(block_gas_limit=BLOCK_GAS, base_fee_wei=0, prune_history=16).start()
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        model = VdgModel(scenario, ledger="memory" if ledger == "memory" else "evm",
                         collect_agents=False, world=world,
                         chain_url=node.url if node is not None else None,
                         receipt_timeout_s=1800.0)
        summary = model.run_day()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        if node is not None:
            node.stop()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open("/proc/self/statm", encoding="ascii") as f:  # resident pages now (Linux)
        rss_end_mb = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return {"households": n, "ledger": ledger, "max_rounds": scenario.grid.max_rounds,
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "load_avg_1m": round(os.getloadavg()[0], 2), "world_s": round(world_s, 2),
            "peak_rss_mb": round(peak_mb, 1), "rss_end_mb": round(rss_end_mb, 1),
            **{k: summary[k] for k in PHASES},
            "rounds": summary["admm_iterations"], "trades": summary["trades"],
            "traded_kwh": summary["traded_kwh"], "gas_used": summary["gas_used"],
            "money_conserved": summary["money_conserved"],
            "energy_conserved": summary["energy_conserved"]}


def baseline(n: int) -> dict[str, Any]:
    """Plans of ``n`` households: one cvxpy problem each (the former way) vs ``solve_plan``."""
    import numpy as np  # noqa: PLC0415

    from mas.brains.hems import reference_problem, solve_plan  # noqa: PLC0415
    from mas.brains.household import HouseholdBrain  # noqa: PLC0415
    from mas.mesa.params import population_world  # noqa: PLC0415
    from mas.world import household_rng  # noqa: PLC0415

    scenario = _scenario(n)
    world = population_world(scenario)
    brains = [HouseholdBrain(h, world.import_eur_per_kwh, world.export_eur_per_kwh,
                             scenario.forecast, household_rng(scenario.seed, h.index))
              for h in world.households]
    inputs = [b.plan_inputs(None) for b in brains]
    t0 = time.perf_counter()
    ref = []
    for b, x in zip(brains, inputs, strict=True):
        problem, _, _ = reference_problem(b.spec.pv, b.spec.battery, b.spec.ev, x)
        problem.solve(solver="CLARABEL")
        ref.append(problem.value)
    ref_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    new = [solve_plan(b.spec.pv, b.spec.battery, b.spec.ev, x).objective_eur
           for b, x in zip(brains, inputs, strict=True)]
    new_s = time.perf_counter() - t0
    return {"households": n, "cvxpy_per_household_s": round(ref_s, 3),
            "solve_plan_s": round(new_s, 3), "speedup": round(ref_s / new_s, 1),
            "max_objective_diff_eur": float(np.max(np.abs(np.subtract(ref, new))))}


def _child(args: list[str]) -> dict[str, Any] | str:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        return f"failed: {out.stderr.strip().splitlines()[-1:]}"
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    row = dict(runs[0])
    for key in ("wall_s", "cpu_s", "load_avg_1m", "peak_rss_mb", "rss_end_mb", *PHASES):
        row[key] = round(statistics.median(r[key] for r in runs), 2)
    row["runs"] = len(runs)
    row["wall_s_all"] = [r["wall_s"] for r in runs]
    return row


def main() -> None:
    """Run every case in a child process and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--ledgers", default="memory,anvil", help=f"of {', '.join(LEDGERS)}")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case (median reported)")
    ap.add_argument("--evm-max", type=int, default=1000,
                    help="largest population run on a chain (anvil or py-evm)")
    ap.add_argument("--baseline", type=int, default=100,
                    help="households in the plan baseline (0: none)")
    ap.add_argument("--max-rounds", default="",
                    help="comma-separated caps on the ADMM coordination rounds, one case each "
                         "(default: the scenario's grid.max_rounds)")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    ap.add_argument("--case", nargs=3, metavar=("N", "LEDGER", "ROUNDS"), help=argparse.SUPPRESS)
    ap.add_argument("--baseline-case", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        rounds = int(args.case[2]) if args.case[2] != "scenario" else None
        print(json.dumps(one_case(int(args.case[0]), args.case[1], rounds)))
        return
    if args.baseline_case:
        print(json.dumps(baseline(args.baseline_case)))
        return
    caps = [c.strip() for c in args.max_rounds.split(",") if c.strip()] or ["scenario"]
    for cap in caps:
        if cap != "scenario" and (not cap.isdigit() or int(cap) < 1):
            ap.error(f"--max-rounds: {cap!r} is not a positive integer")
    rows: list[dict[str, Any]] = []
    for ledger in args.ledgers.split(","):
        if ledger not in LEDGERS:
            ap.error(f"unknown ledger {ledger!r} (known: {', '.join(LEDGERS)})")
        for n in (int(x) for x in args.sizes.split(",")):
            if ledger != "memory" and n > args.evm_max:
                rows.append({"households": n, "ledger": ledger, "wall_s": "not run (--evm-max)"})
                continue
            for cap in caps:
                runs = []
                for k in range(args.repeat):
                    print(f"running {n} households, {ledger} ledger, rounds {cap} "
                          f"({k + 1}/{args.repeat}) ...", file=sys.stderr, flush=True)
                    got = _child(["--case", str(n), ledger, cap])
                    if isinstance(got, str):
                        rows.append({"households": n, "ledger": ledger, "wall_s": got})
                        break
                    print(json.dumps(got), file=sys.stderr, flush=True)
                    runs.append(got)
                if runs:
                    rows.append(_median_row(runs))
    cols = ["households", "ledger", "max_rounds", "wall_s", "cpu_s", "load_avg_1m", "peak_rss_mb",
            "rss_end_mb",
            *PHASES,
            "rounds", "trades", "traded_kwh", "gas_used", "money_conserved", "energy_conserved",
            "runs"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    base = _child(["--baseline-case", str(args.baseline)]) if args.baseline else None
    if base is not None:
        print(f"baseline, plans of {args.baseline} households: {base}")
    for r in rows:
        if r["ledger"] == "memory" and r["households"] == 10_000 and isinstance(r["wall_s"],
                                                                               float):
            verdict = "met" if r["wall_s"] <= GOAL_S else "NOT met"
            print(f"goal (10,000 households, memory ledger, <= {GOAL_S:.0f} s wall): {verdict} "
                  f"with {r['rounds']} ADMM rounds (cap {r['max_rounds']}) "
                  f"({r['wall_s']} s wall, {r['cpu_s']} s CPU, load average "
                  f"{r['load_avg_1m']})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"rows": rows, "baseline": base, "load_avg": os.getloadavg()}, f, indent=1)


if __name__ == "__main__":
    main()
