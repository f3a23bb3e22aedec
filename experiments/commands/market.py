"""``vdg market clear`` and ``vdg experiment mda``.

``vdg market clear ORDERS.csv --mechanism huang|uniform|pay-as-bid|mcafee|efficient [--k 0.5]
[--out FILE] [--format csv|json]`` clears a book read from CSV (columns
``id,owner,side,quantity_kwh,price_eur_per_kwh,slot``) and writes one row per input order with
``id,slot,filled_kwh,price_eur_per_kwh``.

``vdg experiment mda [--out DIR]`` runs the MDA study of :mod:`market.experiment_mda` and writes
``mda.csv`` and plots (efficiency, auctioneer surplus, misreport gain against market size).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from pathlib import Path
from typing import TextIO

import click

from grid.errors import VdgError
from market.auction import MECHANISMS, Clearing, clear
from market.experiment_mda import DEFAULT_TRADERS, MdaPoint, run_mda_experiment
from market.io import read_orders_file, result_json, write_result_csv


@click.group()
def market() -> None:
    """Clear local energy market order books."""


@market.command("clear")
@click.argument("orders_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--mechanism", type=click.Choice(MECHANISMS), default="huang", show_default=True,
              help="Clearing mechanism.")
@click.option("--k", "k", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="k of the uniform-price k-double auction (0: sellers' side, 1: buyers').")
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              default=None, help="Write the result here instead of standard output.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True, help="Output format.")
def clear_command(orders_csv: Path, mechanism: str, k: float, out: Path | None, fmt: str) -> None:
    """Clear the orders in ORDERS_CSV, one delivery slot at a time.

    Output: one row per input order (id, slot, filled_kwh, price_eur_per_kwh), in input order;
    filled_kwh is 0 and the price empty (JSON: null) for an order that trades nothing. JSON adds
    per-slot clearing prices, traded volume and auctioneer surplus.
    """
    try:
        orders = read_orders_file(orders_csv)
        clearing = clear(orders, mechanism, k=k)
    except VdgError as exc:
        raise click.ClickException(str(exc)) from exc
    if out is None:
        _write(clearing, fmt, sys.stdout)
        return
    with out.open("w", newline="", encoding="utf-8") as handle:
        _write(clearing, fmt, handle)
    click.echo(
        f"{mechanism}: {len(orders)} orders, {len(clearing.slots)} slot(s), "
        f"traded {clearing.traded_wh / 1000:g} kWh, auctioneer surplus "
        f"{clearing.auctioneer_surplus_neur / 1e9:.6f} EUR -> {out}"
    )


def _write(clearing: Clearing, fmt: str, handle: TextIO) -> None:
    if fmt == "json":
        json.dump(result_json(clearing), handle, indent=2)
        handle.write("\n")
    else:
        write_result_csv(clearing, handle)


@click.command("mda")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out/mda"),
              show_default=True, help="Directory for mda.csv and the plots.")
@click.option("--traders", default=",".join(map(str, DEFAULT_TRADERS)), show_default=True,
              help="Comma-separated market sizes (orders per book).")
@click.option("--replicates", type=click.IntRange(1), default=20, show_default=True,
              help="Random books per market size.")
@click.option("--deviators", type=click.IntRange(0), default=3, show_default=True,
              help="Traders per book that try price misreports.")
@click.option("--k", "k", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="k of the uniform mechanism.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
def mda(*, out: Path, traders: str, replicates: int, deviators: int, k: float, seed: int) -> None:
    """Efficiency, auctioneer surplus and misreport gains of each mechanism against market size."""
    try:
        sizes = tuple(int(t) for t in traders.split(",") if t.strip())
    except ValueError as exc:
        raise click.BadParameter(
            f"expected integers, got {traders!r}", param_hint="--traders"
        ) from exc
    try:
        points = run_mda_experiment(
            n_traders=sizes, replicates=replicates, deviators=deviators, k=k, seed=seed
        )
    except VdgError as exc:
        raise click.ClickException(str(exc)) from exc
    out.mkdir(parents=True, exist_ok=True)
    table = out / "mda.csv"
    with table.open("w", newline="", encoding="utf-8") as handle:
        fields = [f.name for f in dataclasses.fields(MdaPoint)]
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for p in points:
            writer.writerow(dataclasses.asdict(p))
    plots = _plot(points, out)
    click.echo(f"{'mechanism':<11} {'traders':>7} {'efficiency':>10} {'surplus':>8} "
               f"{'gain EUR':>10} {'gain rate':>9}")
    for p in points:
        click.echo(f"{p.mechanism:<11} {p.n_traders:>7} {p.efficiency:>10.4f} "
                   f"{p.surplus_share:>8.4f} {p.misreport_gain_eur:>10.5f} "
                   f"{p.misreport_gain_rate:>9.3f}")
    click.echo(f"wrote {table} and {', '.join(str(p) for p in plots)}")


def _plot(points: tuple[MdaPoint, ...], out: Path) -> list[Path]:
    import matplotlib  # noqa: PLC0415 - plotting is only needed by this command

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    written = []
    for attr, label, name in (
        ("efficiency", "efficiency (welfare / max welfare)", "mda_efficiency.png"),
        ("surplus_share", "auctioneer surplus / max welfare", "mda_surplus.png"),
        ("misreport_gain_eur", "mean best misreport gain per deviator (EUR)", "mda_misreport.png"),
    ):
        fig, ax = plt.subplots(figsize=(6, 4))
        mechanisms = dict.fromkeys(p.mechanism for p in points)
        for j, mechanism in enumerate(mechanisms):
            mine = [p for p in points if p.mechanism == mechanism]
            ax.plot([p.n_traders for p in mine], [getattr(p, attr) for p in mine],
                    marker="osD^v"[j % 5], linestyle=("-", "--", ":", "-.")[j % 4],
                    label=mechanism)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("traders (orders per book)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written
