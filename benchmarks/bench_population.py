"""Population benchmark of the Mesa runtime: one day (96 ticks) for 1,000 and 10,000 households.

Each case runs in its own process (so peak memory is that case's): the default scenario's
feeder repeated to N households (:func:`mas.mesa.params.population_world`), the import limit
scaled with N, day-ahead and real-time sessions cleared and settled on the chosen ledger.
Reports wall time split by phase and the child's peak resident memory. Goal: 10,000
households in at most 60 s with the in-memory ledger.

    python benchmarks/bench_population.py                      # 1,000 and 10,000, memory; 1,000 EVM
    python benchmarks/bench_population.py --sizes 1000 --ledgers memory,evm
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

GOAL_S = 60.0
PHASES = ("setup_s", "plan_s", "day-ahead_s", "real-time_s", "delivery_s", "collect_s")


def one_case(n: int, ledger: str) -> dict[str, object]:
    """Run one case in this process and return its measures."""
    from mas.mesa.model import VdgModel  # noqa: PLC0415
    from mas.mesa.params import population_world  # noqa: PLC0415
    from mas.scenario import Scenario  # noqa: PLC0415
    from mas.world import build_world  # noqa: PLC0415

    base = Scenario()
    t0 = time.perf_counter()
    n_base = len(build_world(base).households)  # the feeder (cached; not timed below)
    world_s = time.perf_counter() - t0
    limit = base.grid.import_limit_kw * n / n_base
    scenario = Scenario.from_dict({**base.to_dict(), "households": n,
                                   "grid": {**base.to_dict()["grid"], "import_limit_kw": limit}})
    world = population_world(scenario)
    t0 = time.perf_counter()
    model = VdgModel(scenario, ledger=ledger, collect_agents=False, world=world)
    summary = model.run_day()
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"households": n, "ledger": ledger, "wall_s": round(wall, 2),
            "feeder_load_s": round(world_s, 2), "peak_rss_mb": round(peak_mb, 1),
            **{k: summary[k] for k in PHASES},
            "rounds": summary["admm_iterations"], "trades": summary["trades"],
            "traded_kwh": summary["traded_kwh"], "gas_used": summary["gas_used"],
            "money_conserved": summary["money_conserved"],
            "energy_conserved": summary["energy_conserved"]}


def main() -> None:
    """Run every case in a child process and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--ledgers", default="memory,evm")
    ap.add_argument("--evm-max", type=int, default=1000,
                    help="largest population run on the EVM (the EVM at 10,000 takes hours)")
    ap.add_argument("--case", nargs=2, metavar=("N", "LEDGER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(one_case(int(args.case[0]), args.case[1])))
        return
    rows = []
    for ledger in args.ledgers.split(","):
        for n in (int(x) for x in args.sizes.split(",")):
            if ledger == "evm" and n > args.evm_max:
                rows.append({"households": n, "ledger": ledger, "wall_s": "not run (--evm-max)"})
                continue
            print(f"running {n} households, {ledger} ledger ...", file=sys.stderr, flush=True)
            out = subprocess.run([sys.executable, __file__, "--case", str(n), ledger],
                                 capture_output=True, text=True, check=False)
            if out.returncode != 0:
                rows.append({"households": n, "ledger": ledger,
                             "wall_s": f"failed: {out.stderr.strip().splitlines()[-1:]}"})
                continue
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    cols = ["households", "ledger", "wall_s", "peak_rss_mb", *PHASES, "rounds", "trades",
            "traded_kwh", "gas_used", "money_conserved", "energy_conserved"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    for r in rows:
        if r["ledger"] == "memory" and r["households"] == 10_000 and isinstance(r["wall_s"],
                                                                               float):
            verdict = "met" if r["wall_s"] <= GOAL_S else "NOT met"
            print(f"goal (10,000 households, memory ledger, <= {GOAL_S:.0f} s): {verdict} "
                  f"({r['wall_s']} s)")


if __name__ == "__main__":
    main()
