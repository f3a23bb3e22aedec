"""``vdg run`` (the main job: one simulated day through XMPP and the chain) and ``vdg agents``.

``summary.json`` is a user-facing contract: fields are added, never renamed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from experiments.scenario import DEFAULT, load_scenario
from mas.scenario import Scenario
from mas.tables import dso_rows, write_csv
from mas.world import SLOTS

SUMMARY_FIELDS = ("households", "trades", "traded_kwh", "welfare_eur", "cost_prosumers_eur",
                  "cost_consumers_eur", "peak_import_kw", "v_min_pu", "v_max_pu",
                  "admm_iterations", "gas_used", "xmpp_messages", "money_conserved",
                  "energy_conserved", "wall_time_s")


class PhaseBars:
    """One progress bar per phase on stderr (off with ``-q``)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.phase: str | None = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        """Draw the bar of ``phase``; a new phase starts a new line."""
        if not self.enabled:
            return
        if phase != self.phase and self.phase is not None:
            sys.stderr.write("\n")
        self.phase = phase
        width = 30
        filled = round(width * done / total) if total else width
        sys.stderr.write(f"\r{phase:<16} [{'#' * filled}{'-' * (width - filled)}] "
                         f"{done}/{total}")
        sys.stderr.flush()

    def close(self) -> None:
        """End the last line."""
        if self.enabled and self.phase is not None:
            sys.stderr.write("\n")


def _scenario(name: str, households: int | None, seed: int | None) -> Scenario:
    return load_scenario(name).with_overrides(households=households, seed=seed)


def write_outputs(out: Path, runner: Any, summ: dict[str, Any]) -> None:
    """``summary.json``, per-agent CSVs under ``agents/``, ``report.md`` with plots."""
    from mas.summary import household_table  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summ, indent=2) + "\n")
    rec, world, dso = runner.record, runner.world, runner.dso_brain
    rows = household_table(runner)
    agents = out / "agents"
    write_csv(agents / "households.csv", rows)
    for h in world.households:
        series = []
        for t in range(SLOTS):
            row: dict[str, Any] = {
                "slot": t,
                "planned_import_kw": rec.plans_import_kw.get(h.id, [0.0] * SLOTS)[t],
                "metered_export_kwh": rec.metered_kwh.get(h.id, [0.0] * SLOTS)[t],
            }
            for s in rec.sessions:
                c = rec.cleared.get(s["session"], {}).get(h.id)
                if "slots" in s and t in s["slots"]:
                    row[f"cleared_{s['session']}_wh"] = c[s["slots"].index(t)] if c else 0
            series.append(row)
        by_keys: dict[str, Any] = {}
        for r in series:
            by_keys.update(dict.fromkeys(r, ""))
        write_csv(agents / f"{h.id}.csv", [{**by_keys, **r} for r in series])
    metered = dict(rec.metered_kwh.items())
    state = dso.grid_state(metered)
    planned = dso.grid_state({h: [-x for x in v] for h, v in rec.plans_import_kw.items()})
    write_csv(agents / "dso.csv", dso_rows(planned, state, runner.scenario.grid.import_limit_kw))
    write_csv(agents / "dso_rounds.csv", rec.rounds)
    write_csv(agents / "dso_flexibility.csv", rec.flex)
    auct = []
    for s in rec.sessions:
        for k, t in enumerate(s.get("slots", [])):
            auct.append({"session": s["session"], "chain_session": s["chain_id"], "slot": t,
                         "participants": s["participants"], "volume_wh": s["volume_wh"][k],
                         "buy_price_eur_per_kwh": s["buy_price_ueur_per_kwh"][k] / 1e6,
                         "sell_price_eur_per_kwh": s["sell_price_ueur_per_kwh"][k] / 1e6})
    write_csv(agents / "auctioneer.csv", auct)
    agg = rec.cleared.get("da", {}).get("agg")
    write_csv(agents / "aggregator.csv", [
        {"slot": t, "bought_wh": agg[t] if agg else 0,
         "wholesale_eur_per_kwh": world.wholesale_eur_per_kwh[t]} for t in range(SLOTS)])
    _report(out, runner, summ, state, planned)


def _report(out: Path, runner: Any, summ: dict[str, Any], state: Any, planned: Any) -> None:
    import matplotlib as mpl  # noqa: PLC0415

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    world, rec = runner.world, runner.record
    hours = np.arange(SLOTS)
    edges = np.arange(SLOTS + 1)

    def stairs(v: Any) -> Any:
        return np.append(np.asarray(v, dtype=float), float(np.asarray(v)[-1]))

    limit = runner.scenario.grid.import_limit_kw
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.step(edges, stairs(planned.import_kw), where="post", label="planned (after coordination)")
    ax.step(edges, stairs(state.import_kw), where="post", label="metered")
    ax.axhline(limit, color="k", ls="--", lw=1, label="limit")
    ax.set_ylim(top=max(ax.get_ylim()[1], 1.1 * limit))
    ax.set_xlabel("hour")
    ax.set_ylabel("substation import, kW")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "import.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    da = next((s for s in rec.sessions if s["session"] == "da" and "slots" in s), None)
    ax.step(edges, stairs(world.import_eur_per_kwh), where="post", label="retail import")
    ax.step(edges, stairs(world.export_eur_per_kwh), where="post", label="feed-in")
    if da:
        buy = np.array(da["buy_price_ueur_per_kwh"]) / 1e6
        vol = np.array(da["volume_wh"])
        ax.plot(hours[vol > 0], buy[vol > 0], "o", ms=3, label="day-ahead local (buyers)")
    ax.set_xlabel("hour")
    ax.set_ylabel("EUR/kWh")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "prices.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(hours, state.v_pu.min(axis=1), label="lowest bus")
    ax.plot(hours, state.v_pu.max(axis=1), label="highest bus")
    ax.axhline(runner.scenario.grid.v_min_pu, color="k", ls="--", lw=1)
    ax.axhline(runner.scenario.grid.v_max_pu, color="k", ls="--", lw=1)
    ax.set_xlabel("hour")
    ax.set_ylabel("voltage, p.u.")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "voltages.png", dpi=120)
    plt.close(fig)
    lines = [f"# vdg run — {summ['scenario']} ({summ['feeder']}, {summ['day']}, seed "
             f"{summ['seed']})", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summ.items()]
    lines += ["", "## Substation import", "", "![import](import.png)", "",
              "## Prices", "", "![prices](prices.png)", "", "## Voltages", "",
              "![voltages](voltages.png)", "", "## Sessions", "",
              "| session | participants | traded kWh | matches market.auction |",
              "|---|---|---|---|"]
    lines += [f"| {s['session']} | {s['participants']} | {s['traded_kwh']} | "
              f"{s.get('matches_reference', '-')} |" for s in rec.sessions]
    lines += ["", "Per-agent CSVs are in `agents/`."]
    (out / "report.md").write_text("\n".join(lines) + "\n")


@click.command()
@click.argument("scenario", default=DEFAULT)
@click.option("--households", type=click.IntRange(1), default=None,
              help="Number of households (the feeder's first loads); default: the scenario's.")
@click.option("--seed", type=click.IntRange(0), default=None, help="Seed (default: scenario's).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/run"),
              show_default=True, help="Output directory.")
@click.option("--xmpp", default=None, metavar="HOST[:PORT]",
              help="Join an existing XMPP server instead of starting the embedded one.")
@click.option("--chain", default=None, metavar="URL",
              help="JSON-RPC URL of a chain node instead of the embedded chain.")
@click.option("--runtime", type=click.Choice(["spade", "mesa"]), default="spade",
              show_default=True,
              help="spade: agents over XMPP; mesa: the same brains in the Mesa model, no XMPP.")
@click.option("--ledger", type=click.Choice(["evm", "memory"]), default="evm", show_default=True,
              help="With --runtime mesa: the EVM (embedded or --chain) or the in-memory ledger.")
@click.pass_context
def run(ctx: click.Context, scenario: str, households: int | None, seed: int | None, out: Path,
        xmpp: str | None, chain: str | None, runtime: str, ledger: str) -> None:
    """Run one simulated day of a VDG neighbourhood through XMPP and the chain.

    SCENARIO is a shipped scenario name or a TOML file (default: the SimBench LV feeder
    1-LV-semiurb4--0-sw with 41 households). On the defaults the embedded XMPP server (loopback
    only) and the embedded chain are started and stopped by the command.
    """
    from mas.spade.runtime import DayRunner  # noqa: PLC0415 - heavy imports only when running
    from mas.summary import summary  # noqa: PLC0415

    sc = _scenario(scenario, households, seed)
    if runtime == "mesa":
        _run_mesa(sc, out, ledger, chain, xmpp)
        return
    bars = PhaseBars(not ctx.obj.get("quiet", False))
    t0 = time.perf_counter()
    runner = DayRunner(sc, xmpp=xmpp, chain_url=chain, progress=bars)
    try:
        runner.run()
    finally:
        bars.close()
    summ = summary(runner, time.perf_counter() - t0)
    write_outputs(out, runner, summ)
    _echo_summary(summ)
    click.echo(f"wrote {out / 'summary.json'}, {out / 'report.md'}, {out / 'agents'}/")


def _echo_summary(summ: dict[str, Any]) -> None:
    width = max(len(k) for k in summ)
    for key, value in summ.items():
        click.echo(f"{key:<{width}}  {value}")


def _run_mesa(sc: Scenario, out: Path, ledger: str, chain: str | None, xmpp: str | None) -> None:
    """``vdg run --runtime mesa``: the day in the Mesa model; summary and agents' CSV files."""
    from mas.errors import ScenarioError  # noqa: PLC0415
    from mas.mesa.run import run_day_mesa  # noqa: PLC0415 - heavy imports only when running

    if xmpp is not None:
        raise ScenarioError(f"--xmpp {xmpp!r}: the mesa runtime sends no XMPP messages")
    if chain is not None and ledger == "memory":
        raise ScenarioError(f"--chain {chain!r} needs --ledger evm, not memory")
    summ = run_day_mesa(sc, ledger="memory" if ledger == "memory" else "evm", chain_url=chain,
                        out=out)
    summ = {"runtime": "mesa", "ledger": ledger, **summ}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summ, indent=2, default=str) + "\n")
    _echo_summary(summ)
    click.echo(f"wrote {out / 'summary.json'}")


@click.command()
@click.option("--roles", default="household", show_default=True,
              help="Comma-separated: household (agents of --ids), aggregator, dso and auctioneer "
                   "(together: the day's driver and chain client), or operator (= dso, "
                   "auctioneer, aggregator).")
@click.option("--ids", default="all", show_default=True, help="Household indices, e.g. 0-19,25.")
@click.option("--xmpp", required=True, metavar="HOST[:PORT]", help="The XMPP server to join.")
@click.option("--chain", default=None, metavar="URL", help="Chain node (operator role).")
@click.option("--scenario", "scenario_name", default=DEFAULT, show_default=True)
@click.option("--households", type=click.IntRange(1), default=None)
@click.option("--seed", type=click.IntRange(0), default=None)
@click.option("--password", default="vdg", show_default=True, help="XMPP account password.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/agents"),
              show_default=True, help="Output directory of the operator role.")
@click.option("--key-file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              envvar="VDG_KEY_FILE", default=None,
              help="JSON object id -> private key of the household and aggregator agents "
                   "started here (env VDG_KEY_FILE). Without it keys are derived from the "
                   "seed: simulation only.")
@click.pass_context
def agents(ctx: click.Context, roles: str, ids: str, xmpp: str, chain: str | None,
           scenario_name: str, households: int | None, seed: int | None, password: str,
           out: Path, key_file: Path | None) -> None:
    """Start some of a scenario's agents on this machine, joining an existing XMPP server.

    Every machine must use the same scenario, households and seed. Households and the
    aggregator sign their market transactions with their own keys (--key-file); the operator
    only relays them.
    """
    from ledger.wallet import load_keys  # noqa: PLC0415
    from mas.errors import ScenarioError  # noqa: PLC0415
    from mas.spade.loop import run_agents  # noqa: PLC0415
    from mas.spade.worker import (  # noqa: PLC0415
        parse_ids,
        parse_xmpp,
        run_aggregator,
        run_households,
    )
    from mas.world import build_world  # noqa: PLC0415

    sc = _scenario(scenario_name, households, seed)
    wanted = {r.strip() for r in roles.split(",") if r.strip()}
    unknown = wanted - {"household", "operator", "dso", "auctioneer", "aggregator"}
    if unknown or not wanted:
        raise ScenarioError(f"roles: unknown role(s) {sorted(unknown)}" if unknown
                            else "roles: name at least one role")
    if "operator" in wanted:
        wanted = (wanted - {"operator"}) | {"dso", "auctioneer", "aggregator"}
    driver = wanted & {"dso", "auctioneer"}
    if driver and driver != {"dso", "auctioneer"}:
        raise ScenarioError("roles: dso and auctioneer run in one process (they share the "
                            "day's driver and the chain client); give both")
    if driver and "household" in wanted:
        raise ScenarioError("roles: household runs in its own process, not with dso and "
                            "auctioneer")
    domain, port = parse_xmpp(xmpp)
    deadline = sc.runtime.day_deadline_s
    if not driver:
        n = len(build_world(sc).households)
        keys = load_keys(key_file) if key_file else None

        async def serve() -> None:
            jobs = []
            if "household" in wanted:
                jobs.append(run_households(sc, parse_ids(ids, n), domain, port, password,
                                           deadline, keys))
            if "aggregator" in wanted:
                jobs.append(run_aggregator(sc, domain, port, password, deadline, keys))
            await asyncio.gather(*jobs)

        run_agents(serve)
        return
    from mas.spade.runtime import DayRunner  # noqa: PLC0415
    from mas.summary import summary  # noqa: PLC0415

    bars = PhaseBars(not ctx.obj.get("quiet", False))
    t0 = time.perf_counter()
    runner = DayRunner(sc, xmpp=xmpp, chain_url=chain, progress=bars, start_households=False,
                       password=password,
                       aggregator="here" if "aggregator" in wanted else "elsewhere")
    try:
        runner.run()
    finally:
        bars.close()
    summ = summary(runner, time.perf_counter() - t0)
    write_outputs(out, runner, summ)
    click.echo(json.dumps(summ, indent=2))
