"""``vdg experiment bder`` and ``vdg experiment yangwang``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from experiments import bder as bder_mod
from experiments import yangwang as yw_mod

_BDER = bder_mod.BderConfig()
"""The study's defaults, shown by ``--help``."""


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("results/bder"), show_default=True, help="Output directory.")
@click.option("--days", default=_BDER.days, show_default=True, type=click.IntRange(1, 7),
              help="Days per season (from 21 June and 21 December).")
@click.option("--households", default=None, type=click.IntRange(2, None),
              help="Use only the first N households of the feeder.")
@click.option("--feeder", default=_BDER.feeder, show_default=True,
              help="SimBench LV feeder.")
@click.option("--method", type=click.Choice(["central", "admm"]), default=_BDER.method,
              show_default=True,
              help="Solve every day centrally (same formulation) or every day by ADMM.")
@click.option("--admm-days", default=_BDER.admm_days, show_default=True, type=click.IntRange(0, 7),
              help="With --method central: also run ADMM on this many first days of each "
                   "trading scenario and report its gap.")
@click.option("--root-quadratic", default=_BDER.root_quadratic_eur_per_kw2h, show_default=True,
              type=click.FloatRange(0, None),
              help="Quadratic cost on the substation exchange in the grid modes, EUR/kW²h.")
@click.option("--root-base", type=click.Choice(["exchange", "purchases"]),
              default=_BDER.root_base, show_default=True,
              help="Charge that cost on the net substation exchange or on the households' "
                   "grid purchases.")
@click.option("--peak-weight", default=_BDER.peak_weight, show_default=True,
              type=click.FloatRange(0, None),
              help="That cost is this many times larger in the peak hours 6-9 and 17-20 h "
                   "(1: the same in every hour).")
@click.option("--ev-hours", default=_BDER.ev_hours, show_default=True, nargs=2,
              type=click.IntRange(0, 24), metavar="START END",
              help="Hours in which EVs may charge, wrapping past midnight "
                   "(0 24: any hour; 18 7: evening to morning).")
@click.pass_context
def bder(ctx: click.Context, out_dir: Path, days: int, households: int | None, feeder: str,
         method: str, admm_days: int, root_quadratic: float, root_base: str,
         peak_weight: float, ev_hours: tuple[int, int]) -> None:
    """Reproduce the B-DER study: BS/TS/GS/TGS × summer and winter week.

    Writes table4_economics.csv, table5_energy.csv, report.md and plots. Measured on two
    cores shared with other jobs (load average 7-8): the full run (13 households, 7 days,
    central with ADMM checks on day 1) 21 minutes, 4 of them CPU time; --days 1
    --households 4 4 minutes, half a minute of CPU time. The report states its run time.
    """
    quiet = bool(ctx.obj and ctx.obj.get("quiet"))
    try:
        cfg = bder_mod.BderConfig(feeder=feeder, days=days, households=households,
                                  method=method, admm_days=admm_days,
                                  root_quadratic_eur_per_kw2h=root_quadratic,
                                  root_base=root_base, peak_weight=peak_weight, ev_hours=ev_hours)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    out = bder_mod.run(cfg, progress=None if quiet else (
        lambda m: click.echo(f"  {m}  ({time.perf_counter() - t0:.0f} s)", err=True)))
    plots = bder_mod.write_plots(out, out_dir)
    report = bder_mod.write_report(out, cfg, out_dir, time.perf_counter() - t0, plots)
    f = bder_mod.findings(bder_mod.table4(out), bder_mod.table5(out))
    for k, v in f.items():
        click.echo(f"{k:32s} {v:+.3f}")
    click.echo(f"wrote {report}, table4_economics.csv, table5_energy.csv, {', '.join(plots)}")


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("results/yangwang"), show_default=True, help="Output directory.")
@click.option("--prosumers", default=10, show_default=True, type=click.IntRange(2, None))
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 14))
@click.option("--rho", default=1.0, show_default=True, type=float, help="ADMM penalty ρ.")
@click.option("--max-iter", default=300, show_default=True, type=click.IntRange(1, None))
@click.option("--seed", default=7, show_default=True, type=int, help="Seed of the data.")
def yangwang(out_dir: Path, prosumers: int, days: int, rho: float, max_iter: int,
             seed: int) -> None:
    """Yang-Wang prosumer coordination: ADMM (16)-(17) against the central DCM.

    Writes summary.json, convergence.csv, schedules.csv, convergence.png, schedules.png.
    """
    cfg = yw_mod.YwConfig(prosumers=prosumers, days=days, rho=rho, max_iter=max_iter,
                          seed=seed)
    central, admm = yw_mod.run(cfg)
    summary = yw_mod.write(central, admm, cfg, out_dir)
    click.echo(json.dumps(summary, indent=2))
    click.echo(f"wrote {out_dir}/summary.json, convergence.csv, schedules.csv, plots")
