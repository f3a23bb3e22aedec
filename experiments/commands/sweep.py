"""``vdg sweep``: parameter sweeps of the Mesa runtime over Mesa's ``batch_run``.

Every combination of the ``--param`` values runs once per seed (parameters × seeds), one
simulated day each, on the in-memory ledger by default. Output in ``--out``: ``sweep.parquet``
and ``sweep.csv`` (one tidy row per run: run id, seed, the swept parameters, the day's summary
fields), ``summary.csv`` (mean and standard deviation over seeds per combination) and one plot
per swept parameter (``sweep_<param>.png``: key metrics against the parameter, mean ± std).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import click

from mas.errors import ScenarioError
from mas.mesa.model import SUMMARY_REPORTERS, TICKS_PER_DAY, VdgModel
from mas.mesa.params import load_scenario, parameter_names, scenario_with
from mas.scenario import Scenario

log = logging.getLogger(__name__)

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
PLOTTED = ("welfare_eur", "traded_kwh", "peak_import_kw", "cost_consumers_eur")


def resolve_scenario(name: str | None) -> Scenario:
    """A scenario from a TOML path, a name under ``experiments/scenarios``, or ``default``.

    Raises:
        ScenarioError: nothing by that name.
    """
    if name is None or name == "default":
        shipped = SCENARIO_DIR / "default.toml"
        return load_scenario(shipped) if shipped.exists() else Scenario()
    path = Path(name)
    if path.suffix == ".toml" or path.exists():
        return load_scenario(path)
    shipped = SCENARIO_DIR / f"{name}.toml"
    if shipped.exists():
        return load_scenario(shipped)
    known = sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))
    raise ScenarioError(f"scenario {name!r} is neither a TOML file nor a shipped scenario "
                        f"(shipped: {known or ['default']})")


def _value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_params(items: tuple[str, ...]) -> dict[str, list[Any]]:
    """``NAME=V1,V2,...`` options to ``{name: [values]}``.

    Raises:
        click.BadParameter: no ``=``, no value, a repeated or unknown name.
    """
    names = parameter_names()
    out: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not name or not values.strip():
            raise click.BadParameter(f"expected NAME=V1,V2,..., got {item!r}", param_hint="--param")
        if name not in names or name == "seed":
            known = sorted(n for n in names if "." not in n and n != "seed")
            raise click.BadParameter(f"unknown parameter {name!r} (known: {', '.join(known)})",
                                     param_hint="--param")
        if name in out:
            raise click.BadParameter(f"parameter {name!r} given twice", param_hint="--param")
        out[name] = [_value(v) for v in values.split(",") if v.strip()]
    return out


def run_sweep(scenario: Scenario, params: dict[str, list[Any]], seeds: list[int], *,
              processes: int = 1, ledger: str = "memory", progress: bool = True
              ) -> list[dict[str, Any]]:
    """Run every combination × seed through ``mesa.batch_run``; one tidy row per run."""
    from mesa import batch_run  # noqa: PLC0415 - keeps `vdg --help` fast

    for name, values in params.items():  # validate every value before the first run
        for v in values:
            scenario_with(scenario, {name: v})
    fixed = {"scenario": scenario, "ledger": ledger, "collect_agents": False}
    raw = batch_run(VdgModel, parameters={**fixed, **params}, number_processes=processes,
                    rng=seeds, max_steps=TICKS_PER_DAY, data_collection_period=-1,
                    display_progress=progress)
    rows = []
    for r in sorted(raw, key=lambda r: r["RunId"]):
        row: dict[str, Any] = {"run": r["RunId"], "seed": r["rng"], "scenario": scenario.name}
        row.update({k: r[k] for k in params})
        row.update({k: r[k] for k in SUMMARY_REPORTERS})
        rows.append(row)
    return rows


def _plots(df: Any, params: dict[str, list[Any]], out: Path) -> list[Path]:
    import matplotlib as mpl  # noqa: PLC0415

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    written = []
    for name in params:
        stats = df.groupby(name)[list(PLOTTED)].agg(["mean", "std"])
        fig, axes = plt.subplots(1, len(PLOTTED), figsize=(4 * len(PLOTTED), 3.2))
        for ax, metric in zip(axes, PLOTTED, strict=True):
            x = [str(v) for v in stats.index] if stats.index.dtype == object else stats.index
            mean = stats[(metric, "mean")]
            std = stats[(metric, "std")].fillna(0.0)
            ax.errorbar(x, mean, yerr=std, marker="o", capsize=3)
            ax.set_xlabel(name)
            ax.set_title(metric, fontsize=9)
            ax.grid(alpha=0.3)
        fig.suptitle(f"sweep over {name} (mean ± std over seeds and other parameters)",
                     fontsize=10)
        fig.tight_layout()
        path = out / f"sweep_{name.replace('.', '_')}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


@click.command()
@click.argument("scenario", required=False, default="default")
@click.option("--param", "param_items", multiple=True, metavar="NAME=V1,V2,...",
              help="A scenario parameter and its values (repeatable; e.g. battery_share=0,0.5).")
@click.option("--seeds", type=click.IntRange(1, 10_000), default=1, show_default=True,
              help="Seeds per combination: the scenario's seed, seed+1, ...")
@click.option("--processes", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Worker processes of batch_run.")
@click.option("--ledger", type=click.Choice(["memory", "evm"]), default="memory",
              show_default=True, help="In-memory ledger, or the embedded EVM chain (slow).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Output directory [default: results/sweep-<scenario>].")
@click.pass_context
def sweep(ctx: click.Context, scenario: str, param_items: tuple[str, ...], seeds: int,
          processes: int, ledger: str, out_dir: Path | None) -> None:
    """Sweep scenario parameters × seeds through the Mesa runtime (one day per run).

    SCENARIO is a scenario TOML file, a shipped scenario name, or 'default'. Writes
    sweep.parquet, sweep.csv, summary.csv and a plot per parameter to --out.
    """
    import pandas as pd  # noqa: PLC0415

    sc = resolve_scenario(scenario)
    params = parse_params(param_items)
    seed_list = [sc.seed + k for k in range(seeds)]
    n_runs = seeds * math.prod(len(v) for v in params.values())
    out = out_dir or Path("results") / f"sweep-{sc.name}"
    out.mkdir(parents=True, exist_ok=True)
    quiet = bool(ctx.obj and ctx.obj.get("quiet"))
    if not quiet:
        click.echo(f"sweep {sc.name}: {n_runs} runs ({seeds} seeds × "
                   f"{' × '.join(f'{len(v)} {k}' for k, v in params.items()) or 'no parameter'})"
                   f" on {processes} process(es), {ledger} ledger", err=True)
    t0 = time.perf_counter()
    rows = run_sweep(sc, params, seed_list, processes=processes, ledger=ledger,
                     progress=not quiet)
    df = pd.DataFrame(rows)
    df.to_parquet(out / "sweep.parquet", index=False)
    df.to_csv(out / "sweep.csv", index=False)
    group = list(params) or ["scenario"]
    metrics = [m for m in SUMMARY_REPORTERS if m not in ("money_conserved", "energy_conserved")]
    summary = df.groupby(group)[metrics].agg(["mean", "std"])
    summary.columns = [f"{m}_{s}" for m, s in summary.columns]
    summary.reset_index().to_csv(out / "summary.csv", index=False)
    plots = _plots(df, params, out)
    click.echo(df.groupby(group)[["welfare_eur", "traded_kwh", "peak_import_kw"]].mean()
               .round(3).to_string())
    if not (df["money_conserved"].all() and df["energy_conserved"].all()):
        click.echo("warning: a run did not conserve money or energy (see sweep.csv)", err=True)
    click.echo(f"{len(df)} runs in {time.perf_counter() - t0:.1f} s -> {out}/sweep.parquet, "
               f"sweep.csv, summary.csv" + "".join(f", {p.name}" for p in plots))
