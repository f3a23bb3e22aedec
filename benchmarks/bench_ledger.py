"""Gas and time of the ledger's contracts, on the embedded chain and on anvil in one run.

    .venv/bin/python benchmarks/bench_ledger.py            # embedded + anvil (needs npm ci)
    .venv/bin/python benchmarks/bench_ledger.py --no-anvil # embedded only

Measures: deploy; commit + reveal per household-day (24 slots); clearing per order at 100 and
1,000 orders; attestation + mint per meter-slot; one ADMM iteration for case33bw x 24 h; one
fleet step for 70 batteries; transactions per second (sequential with receipts, and pre-signed
in a batch). Goals from the design are printed beside the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ledger.admm import ContractAdmm
from ledger.anvil import AnvilNode
from ledger.chain import ChainConfig
from ledger.client import Web3Ledger
from ledger.orders import OrderVector, SlotOrder

SLOTS_PER_DAY = 24


@dataclass
class Row:
    what: str
    gas: float
    unit: str
    seconds: float
    goal: float | None = None


def _gas_since(led: Web3Ledger, mark: int, prefix: str = "") -> list[int]:
    return [r.gas_used for r in led.gas_log[mark:] if r.call.startswith(prefix)]


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _random_vector(rng: np.random.Generator, n_slots: int) -> OrderVector:
    slots = []
    for _ in range(n_slots):
        q = int(rng.integers(200, 3000)) * (1 if rng.random() < 0.5 else -1)
        slots.append(SlotOrder(q, int(rng.integers(50, 400)) * 1000))
    return OrderVector(tuple(slots))


def _session(
    led: Web3Ledger, hh: list[str], vectors: list[OrderVector]
) -> tuple[int, float, float]:
    sid = led.open_session(
        0, len(vectors[0].slots), commit_s=3600, reveal_s=3600, penalty_eur_per_kwh=0.1
    )
    t0 = time.perf_counter()
    for h, v in zip(hh, vectors, strict=True):
        led.commit(sid, h, v)
    led.advance_time(3601)
    for h in hh:
        led.reveal(sid, h)
    t_cr = time.perf_counter() - t0
    led.advance_time(3601)
    _, t_clear = _timed(lambda: led.clear(sid))
    return sid, t_cr, t_clear


def bench_market(led: Web3Ledger, rng: np.random.Generator) -> list[Row]:
    rows = []
    # commit + reveal per household-day, and clearing of 4 x 25 = 100 and 40 x 25 = 1000 orders
    hh = led.add_households(40, credit_eur=10_000.0)
    for n_hh, n_slots in ((10, SLOTS_PER_DAY), (4, 25), (40, 25)):
        vectors = [_random_vector(rng, n_slots) for _ in range(n_hh)]
        mark = len(led.gas_log)
        _, t_cr, t_clear = _session(led, hh[:n_hh], vectors)
        commits = _gas_since(led, mark, "VdgMarket.commit")
        reveals = _gas_since(led, mark, "VdgMarket.reveal")
        clear = _gas_since(led, mark, "VdgMarket.clear")[0]
        orders = n_hh * n_slots
        if n_slots == SLOTS_PER_DAY:
            per = statistics.mean(commits) + statistics.mean(reveals)
            rows.append(
                Row(
                    "commit + reveal per household-day (24 slots)",
                    per,
                    "gas/household",
                    t_cr / n_hh,
                    150_000,
                )
            )
            rows.append(Row("  of which commit", statistics.mean(commits), "gas/household", 0.0))
            rows.append(
                Row("  of which reveal (median)", statistics.median(reveals), "gas/household", 0.0)
            )
        else:
            rows.append(
                Row(
                    f"clearing, {orders} orders ({n_hh} x {n_slots} slots)",
                    clear / orders,
                    "gas/order",
                    t_clear,
                    15_000,
                )
            )
    # a single-slot book of 100 orders
    many = hh + led.add_households(60, credit_eur=10_000.0)
    vectors = [_random_vector(rng, 1) for _ in range(100)]
    mark = len(led.gas_log)
    _, _, t_clear = _session(led, many, vectors)
    clear = _gas_since(led, mark, "VdgMarket.clear")[0]
    rows.append(Row("clearing, 100 orders in one slot", clear / 100, "gas/order", t_clear, 15_000))
    # attestation + mint, 40 meters in one transaction
    mark = len(led.gas_log)
    _, t = _timed(lambda: led.attest(500, {h: round(float(rng.uniform(-2, 3)), 3) for h in hh}))
    rows.append(
        Row(
            "attestation + mint, 40 meters per tx",
            _gas_since(led, mark)[0] / 40,
            "gas/meter-slot",
            t / 40,
        )
    )
    mark = len(led.gas_log)
    _, t = _timed(lambda: led.attest(501, {hh[0]: 1.0}))
    rows.append(
        Row("attestation + mint, 1 meter per tx", _gas_since(led, mark)[0], "gas/meter-slot", t)
    )
    return rows


def case33bw_copies(hours: int = 24) -> tuple[int, list[list[int]]]:
    """Coupling of case33bw's 32 non-root buses: own P, Q, v; children's P, Q; parent's v."""
    parent = {i: i - 1 for i in range(1, 18)}
    parent.update({18: 1, 19: 18, 20: 19, 21: 20, 22: 2, 23: 22, 24: 23, 25: 5})
    parent.update({i: i - 1 for i in range(26, 33)})
    nb = 33
    children = {b: [c for c, p in parent.items() if p == b] for b in range(nb)}

    def g(var: int, bus: int, t: int) -> int:
        return (var * nb + bus) * hours + t

    copies = []
    for b in range(1, nb):
        cp: list[int] = []
        for t in range(hours):
            cp += [g(0, b, t), g(1, b, t), g(2, b, t)]
            for c in children[b]:
                cp += [g(0, c, t), g(1, c, t)]
            cp.append(g(2, parent[b], t))
        copies.append(cp)
    return 3 * nb * hours, copies


def bench_admm(led: Web3Ledger, rng: np.random.Generator) -> list[Row]:
    n_global, copies = case33bw_copies()
    n_copies = sum(map(len, copies))
    admm = ContractAdmm(led)
    mark = len(led.gas_log)
    _, t_setup = _timed(lambda: admm.setup(n_global, copies))
    setup_gas = sum(_gas_since(led, mark))
    rows = [
        Row(
            f"ADMM setup case33bw x 24 h ({n_global} globals, {n_copies} copies)",
            setup_gas,
            "gas (once)",
            t_setup,
        )
    ]
    for r in range(2):
        admm.open_round(r, 600)
        t0 = time.perf_counter()
        mark = len(led.gas_log)
        for k, cp in enumerate(copies):
            admm.submit(k, rng.normal(0.5, 0.3, len(cp)))
        res = admm.close_round(1.0)
        dt = time.perf_counter() - t0
        submits = _gas_since(led, mark, "AdmmCoordinator.submit")
        close = sum(
            sum(_gas_since(led, mark, f"AdmmCoordinator.{fn}"))
            for fn in ("closeRound", "closePage", "finalisePage")
        )
        label = "first round" if r == 0 else "later rounds"
        rows.append(
            Row(
                f"ADMM iteration case33bw x 24 h, {label}",
                res.gas_used,
                "gas/iteration",
                dt,
                5_000_000,
            )
        )
        rows.append(
            Row(
                f"  of which {len(submits)} submits (mean)",
                statistics.mean(submits),
                "gas/node",
                0.0,
            )
        )
        rows.append(Row("  of which close (z-update, residuals)", close, "gas", 0.0))
    return rows


def bench_grid_opf(led: Web3Ledger) -> list[Row]:
    """grid's ADMM OPF on case33bw x 24 h with the contract as aggregator (2 iterations)."""
    from grid.admm.engine import AdmmOptions  # noqa: PLC0415 (optional: --grid-opf only)
    from grid.admm.opf import AdmmOpf  # noqa: PLC0415
    from grid.feeders import load_feeder  # noqa: PLC0415
    from grid.opf import Devices, OpfInputs  # noqa: PLC0415
    from grid.prices import Tariff  # noqa: PLC0415
    from grid.profiles import day_profiles  # noqa: PLC0415

    feeder = load_feeder("case33bw")
    prof = day_profiles(feeder, "2016-06-21", 24, 60)
    imp, exp = Tariff().prices(prof.start, prof.periods, 60)
    inputs = OpfInputs(prof.load_p_kw, prof.load_q_kvar, imp, exp, prof.pv_p_avail_kw)
    devices = Devices(pv=prof.pv, batteries=prof.batteries)
    model = AdmmOpf(feeder, prof.periods, 60, devices, admm=AdmmOptions(max_iter=2), regions="bus")
    mark = len(led.gas_log)
    t0 = time.perf_counter()
    model.solve(inputs, aggregator=ContractAdmm(led), batched=True)
    dt = time.perf_counter() - t0
    rows, current = [], 0
    close_calls = ("AdmmCoordinator.closePage", "AdmmCoordinator.finalisePage")
    log = led.gas_log[mark:]
    for i, r in enumerate(log):
        if r.call == "AdmmCoordinator.openRound":
            current = r.gas_used
        elif r.call in ("AdmmCoordinator.submit", "AdmmCoordinator.closeRound", *close_calls):
            current += r.gas_used
            last_page = r.call == "AdmmCoordinator.closeRound" or (
                r.call == close_calls[1]
                and (i + 1 == len(log) or log[i + 1].call != close_calls[1])
            )
            if last_page:
                label = "first" if not rows else "second"
                rows.append(
                    Row(
                        f"grid ADMM OPF case33bw x 24 h, {label} iteration (real x)",
                        current,
                        "gas/iteration",
                        dt / 2,
                        5_000_000,
                    )
                )
    return rows


def bench_fleet(led: Web3Ledger, rng: np.random.Generator) -> list[Row]:
    hh = led.add_households(70)
    led.fleet_register(hh)
    led.fleet_series(0, [0.5] * 4, [20.0] * 4, [1] * 4)
    gas, times = [], []
    for _ in range(3):
        mark = len(led.gas_log)
        _, t = _timed(
            lambda: led.fleet_step(
                0, rng.uniform(0.1, 0.9, 70).tolist(), rng.normal(0.1, 0.2, 70).tolist()
            )
        )
        gas += _gas_since(led, mark)
        times.append(t)
    return [
        Row("fleet step, 70 batteries, first step", gas[0], "gas/step", times[0], 106_000),
        Row(
            "fleet step, 70 batteries, later steps",
            statistics.mean(gas[1:]),
            "gas/step",
            statistics.mean(times[1:]),
            106_000,
        ),
    ]


def bench_tps(led: Web3Ledger, n: int = 200) -> list[Row]:
    a, b = led.add_households(2, credit_eur=1000.0)
    credit = led.c["credit"]
    key = led.chain.key(a)
    t0 = time.perf_counter()
    for _ in range(n // 4):
        led.chain.transact(credit, "transfer", [b, 1], key, 100_000)
    seq = (n // 4) / (time.perf_counter() - t0)
    data = credit.encode_abi("transfer", args=[b, 1])
    items = [
        (key, {"to": credit.address, "data": data, "gas": 100_000}, "Credit.transfer")
        for _ in range(n)
    ]
    t0 = time.perf_counter()
    signed = led.chain.sign_batch(items)
    sign = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    led.chain.send_batch(signed)
    batch = n / (time.perf_counter() - t0)
    return [
        Row("throughput, sequential (sign, send, receipt)", 0, "", 1 / seq, None),
        Row("throughput, pre-signed batch (send, receipts)", 0, "", 1 / batch, None),
        Row("throughput, local signing alone", 0, "", 1 / sign, None),
    ]


def run(led: Web3Ledger, seed: int) -> list[Row]:
    rng = np.random.default_rng(seed)
    rows = [Row("deploy (7 contracts, roles)", sum(r.gas_used for r in led.gas_log), "gas", 0.0)]
    tps = bench_tps(led)  # first, on a young chain: a node slows down as its history grows
    rows += bench_market(led, rng)
    rows += bench_admm(led, rng)
    rows += bench_fleet(led, rng)
    return rows + tps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-anvil", action="store_true", help="embedded chain only")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument(
        "--grid-opf", action="store_true", help="also run grid's ADMM OPF on the contract (slow)"
    )
    args = parser.parse_args()
    results: dict[str, list[Row]] = {}
    (led, t_deploy) = _timed(Web3Ledger.deploy)
    assert isinstance(led, Web3Ledger)
    results["embedded"] = run(led, args.seed)
    results["embedded"][0].seconds = t_deploy
    if args.grid_opf:
        grid_rows = bench_grid_opf(led)
        for r in grid_rows:
            ok = "yes" if r.gas <= (r.goal or 0) else "NO"
            print(f"{r.what:62} {r.gas:>12,.0f} {r.unit:16} {r.goal or 0:>10,.0f} {ok}")
    if not args.no_anvil:
        with AnvilNode() as node:
            (led2, t_deploy2) = _timed(lambda: Web3Ledger.deploy(ChainConfig(url=node.url)))
            assert isinstance(led2, Web3Ledger)
            results["anvil"] = run(led2, args.seed)
            results["anvil"][0].seconds = t_deploy2
    emb = results["embedded"]
    anv = results.get("anvil")
    print(
        f"{'measure':62} {'gas':>12} {'unit':16} {'goal':>10} {'ok':3} {'s emb':>8} {'s anvil':>8}"
    )
    for i, row in enumerate(emb):
        goal = f"{row.goal:,.0f}" if row.goal else ""
        ok = "" if row.goal is None else ("yes" if row.gas <= row.goal else "NO")
        gas = f"{row.gas:,.0f}" if row.gas else ""
        if row.what.startswith("throughput"):
            gas, unit = f"{1 / row.seconds:,.1f}", "tx/s embedded"
            anv_s = f"{1 / anv[i].seconds:,.1f}" if anv else ""
            print(
                f"{row.what:62} {gas:>12} {unit:16} {goal:>10} {ok:3} {'':>8} {anv_s + ' tx/s':>8}"
            )
            continue
        anv_s = f"{anv[i].seconds:.3f}" if anv else ""
        if anv and anv[i].gas != row.gas and not row.what.startswith(("ADMM", "  of which")):
            anv_s += " (gas differs)"
        print(
            f"{row.what:62} {gas:>12} {row.unit:16} {goal:>10} {ok:3} {row.seconds:8.3f} {anv_s:>8}"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({k: [r.__dict__ for r in v] for k, v in results.items()}, f, indent=1)


if __name__ == "__main__":
    main()
