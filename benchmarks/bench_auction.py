"""Clearing time of every mechanism against numpy sorting the same prices, in the same run.

For 100 / 10,000 / 100,000 single-slot orders (random sides, prices and quantities, seeded), each
mechanism clears a prebuilt :class:`market.orders.OrderTable`; the baseline is
``numpy.argsort`` of the same limit prices as float64 EUR/kWh. Every figure is the median of
``--repeats`` runs (each run averages enough calls to last about 20 ms); every run times the sort
right before the mechanism, and the ratio is the median of the per-run ratios. The goal: Huang
clearing of 10,000 orders in at most 3x the sort time. A last column times Huang from ``Order``
objects (validation and table construction included) for the record.

    .venv/bin/python benchmarks/bench_auction.py [--repeats 7] [--sizes 100,10000,100000]
                                                 [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from market.auction import MECHANISMS, clear
from market.orders import UEUR_PER_EUR, WH_PER_KWH, Order, OrderTable

GOAL_RATIO = 3.0


def _book(n: int, seed: int) -> OrderTable:
    rng = np.random.default_rng(seed)
    is_buy = rng.random(n) < 0.5
    price = np.where(is_buy, rng.integers(50_000, 400_001, n), rng.integers(0, 300_001, n))
    return OrderTable.from_arrays(
        is_buy=is_buy,
        quantity_wh=rng.integers(100, 10_001, n),
        price_ueur_per_kwh=price.astype(np.int64),
        ids=[f"o{i:06d}" for i in range(n)],
    )


def _calls_for(fn: Callable[[], object], budget_s: float = 0.02) -> int:
    fn()  # warm up
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, int(budget_s / once))


def _seconds(fn: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def _paired(fn: Callable[[], object], baseline: Callable[[], object], repeats: int,
            ) -> tuple[float, float, float]:
    """Medians of fn and baseline, and the median of their per-run ratio.

    Each run times the baseline immediately before the function, so that a change of machine
    load between runs affects both sides of the ratio alike.
    """
    n_fn, n_base = _calls_for(fn), _calls_for(baseline)
    times, bases, ratios = [], [], []
    for _ in range(repeats):
        base = _seconds(baseline, n_base)
        t = _seconds(fn, n_fn)
        times.append(t)
        bases.append(base)
        ratios.append(t / base)
    return statistics.median(times), statistics.median(bases), statistics.median(ratios)


def run(sizes: list[int], repeats: int, seed: int = 0) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for n in sizes:
        table = _book(n, seed)
        prices = table.price_ueur_per_kwh.astype(np.float64) / UEUR_PER_EUR

        def sort(p: np.ndarray = prices) -> object:
            return np.argsort(p)

        for name in MECHANISMS:
            t, base, ratio = _paired(lambda name=name, table=table: clear(table, name), sort,
                                     repeats)
            rows.append({"orders": n, "mechanism": name, "median_ms": t * 1e3,
                         "numpy_sort_ms": base * 1e3, "ratio": ratio})
        orders = [
            Order(table.ids[i], table.owners[i], "buy" if table.is_buy[i] else "sell",
                  int(table.quantity_wh[i]) / WH_PER_KWH,
                  int(table.price_ueur_per_kwh[i]) / UEUR_PER_EUR, 0)
            for i in range(n)
        ]
        t, base, ratio = _paired(lambda orders=orders: clear(orders, "huang"), sort, repeats)
        rows.append({"orders": n, "mechanism": "huang from Order objects", "median_ms": t * 1e3,
                     "numpy_sort_ms": base * 1e3, "ratio": ratio})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,10000,100000")
    parser.add_argument("--repeats", type=int, default=7, help="runs per figure (median; >= 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_path", default=None, help="write the figures here")
    args = parser.parse_args()
    repeats = max(5, args.repeats)
    rows = run([int(s) for s in args.sizes.split(",")], repeats, args.seed)
    print(f"{'orders':>7}  {'mechanism':<26} {'median ms':>10} {'np.argsort ms':>13} {'ratio':>7}")
    for r in rows:
        print(f"{r['orders']:>7}  {r['mechanism']:<26} {r['median_ms']:>10.3f} "
              f"{r['numpy_sort_ms']:>13.3f} {r['ratio']:>7.2f}")
    goal = [r for r in rows if r["orders"] == 10_000 and r["mechanism"] == "huang"]
    if goal:
        ratio = float(goal[0]["ratio"])
        verdict = "met" if ratio <= GOAL_RATIO else "NOT met"
        print(f"goal (huang, 10,000 orders, <= {GOAL_RATIO:g}x numpy sort): {ratio:.2f}x, "
              f"{verdict}")
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as handle:
            json.dump({"repeats": repeats, "seed": args.seed, "goal_ratio": GOAL_RATIO,
                       "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
