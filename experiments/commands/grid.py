"""``vdg feeders`` and ``vdg opf``: the physical layer from the command line."""

from __future__ import annotations

import csv
import json
import math
import time
from datetime import datetime
from pathlib import Path

import click
import numpy as np

from grid.admm.opf import DEFAULT_VARIANT, VARIANTS, solve_admm_opf
from grid.errors import ProfileError
from grid.feeders import describe, feeder_names, load_feeder
from grid.opf import Devices, OpfInputs, OpfModel, OpfOptions, OpfResult
from grid.pfcheck import check_with_pandapower
from grid.prices import Tariff
from grid.profiles import day_profiles

DEFAULT_DAY = "2016-06-21"


def _table(rows: list[dict[str, object]]) -> str:
    cols = list(rows[0])
    width = {c: max(len(str(c)), *(len(str(r[c])) for r in rows)) for c in cols}
    line = "  ".join(f"{c:<{width[c]}}" for c in cols)
    out = [line, "  ".join("-" * width[c] for c in cols)]
    out += ["  ".join(f"{r[c]!s:<{width[c]}}" for c in cols) for r in rows]
    return "\n".join(out)


@click.command()
@click.option("--details/--no-details", default=False,
              help="Build each feeder and show bus, device and depth counts (slower).")
def feeders(details: bool) -> None:
    """List the feeders vdg can build (pandapower networks and SimBench LV codes).

    A pandapower JSON file path is accepted wherever a feeder name is.
    """
    if not details:
        for name in feeder_names():
            click.echo(name)
        return
    rows = []
    with click.progressbar(feeder_names(), label="building feeders", file=None) as names:
        rows = [describe(load_feeder(n)) for n in names]
    click.echo(_table(rows))


def opf_summary(result: OpfResult, pf_max_dv_pu: float | None, feeder_buses: int
                ) -> dict[str, object]:
    """The fields of ``opf.json`` (a user-facing contract: add, never rename)."""
    return {
        "feeder": result.feeder,
        "buses": feeder_buses,
        "periods": result.periods,
        "step_min": result.step_min,
        "status": result.status,
        "objective_eur": result.objective_eur,
        "solve_time_s": result.solve_time_s,
        "solver_time_s": result.solver_time_s,
        "build_time_s": result.build_time_s,
        "relaxation_gap": result.relaxation_gap,
        "v_min_pu": float(np.min(result.v_pu)),
        "v_max_pu": float(np.max(result.v_pu)),
        "peak_import_kw": float(np.max(result.import_kw)),
        "energy_import_kwh": float(np.sum(np.clip(result.import_kw, 0, None))
                                   * result.step_min / 60),
        "energy_export_kwh": float(np.sum(np.clip(-result.import_kw, 0, None))
                                   * result.step_min / 60),
        "losses_kwh": float(np.sum(result.loss_kw) * result.step_min / 60),
        "dlmp_min_eur_per_kwh": float(np.min(result.dlmp_eur_per_kwh)),
        "dlmp_max_eur_per_kwh": float(np.max(result.dlmp_eur_per_kwh)),
        "pf_check_max_dv_pu": pf_max_dv_pu if pf_max_dv_pu is not None else math.nan,
    }


def _write_series(path: Path, times: list[str], buses: tuple[object, ...],
                  values: np.ndarray) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["time", *[f"bus_{b}" for b in buses]])
        for t, row in zip(times, values, strict=True):
            w.writerow([t, *(f"{x:.9g}" for x in row)])


@click.command()
@click.argument("feeder")
@click.option("--day", default=DEFAULT_DAY, show_default=True, metavar="YYYY-MM-DD",
              help="First day of the horizon (SimBench profiles cover 2016).")
@click.option("--hours", default=24.0, show_default=True, type=float,
              help="Horizon length in hours.")
@click.option("--step-min", default=15, show_default=True, type=int,
              help="Period length in minutes; must divide 60.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Write opf.json, voltages_pu.csv and dlmp_eur_per_kwh.csv here.")
@click.option("--objective", type=click.Choice(["import_cost", "import_cost+losses", "losses"]),
              default="import_cost", show_default=True, help="What the OPF minimises.")
@click.option("--zone", type=click.Choice(["DE", "NL"]), default="DE", show_default=True,
              help="Day-ahead price zone (SMARD 2018 series).")
@click.option("--margin", default=0.10, show_default=True, type=float,
              help="Retail margin added to the day-ahead price for imports, EUR/kWh.")
@click.option("--pf-check/--no-pf-check", default=True, show_default=True,
              help="Check the result with pandapower's AC power flow.")
@click.option("--method", type=click.Choice(["central", "admm"]), default="central",
              show_default=True,
              help="Solution method: the centralised SOCP, or consensus ADMM over per-bus or "
                   "subtree nodes (then the centralised solve runs too, for the gap).")
@click.option("--variant", type=click.Choice(sorted(VARIANTS)), default=DEFAULT_VARIANT,
              show_default=True, help="ADMM variant (see docs/admm.md).")
def opf(feeder: str, day: str, hours: float, step_min: int, out_dir: Path | None,
        objective: str, zone: str, margin: float, pf_check: bool, method: str,
        variant: str) -> None:
    """Run the multi-period DistFlow OPF on FEEDER and print a summary.

    FEEDER is a name from `vdg feeders` or a pandapower JSON file.
    """
    if not math.isfinite(margin) or margin < 0:
        raise ProfileError(f"--margin must be finite and >= 0, got {margin!r}")
    try:
        datetime.strptime(day, "%Y-%m-%d")
    except ValueError as exc:
        raise ProfileError(f"--day must be YYYY-MM-DD, got {day!r}") from exc
    t_start = time.perf_counter()
    fdr = load_feeder(feeder)
    prof = day_profiles(fdr, day, hours, step_min)
    imp, exp = Tariff(margin_eur_per_kwh=margin, zone=zone).prices(prof.start, prof.periods,
                                                                    prof.step_min)
    devices = Devices(pv=prof.pv, batteries=prof.batteries)
    options = OpfOptions(objective=objective)  # type: ignore[arg-type]
    inputs = OpfInputs(prof.load_p_kw, prof.load_q_kvar, imp, exp, prof.pv_p_avail_kw)
    admm_fields: dict[str, object] = {}
    if method == "admm":
        res, central = solve_admm_opf(fdr, prof.periods, prof.step_min, devices, inputs,
                                      options, variant)
        assert central is not None
        result = res.opf
        admm_fields = {
            "method": "admm", "variant": variant, "iterations": res.run.iterations,
            "converged": res.run.converged,
            "gap_vs_central": abs(result.objective_eur - central.objective_eur)
            / abs(central.objective_eur),
            "primal_residual": res.run.primal_residual,
            "dual_residual": res.run.dual_residual,
            "consensus_inf_pu": res.run.consensus_inf,
            "wall_time_s": res.run.wall_time_s,
            "central_time_s": central.solve_time_s,
            "central_objective_eur": central.objective_eur,
        }
    else:
        model = OpfModel(fdr, prof.periods, prof.step_min, devices, options)
        result = model.solve(inputs)
    check = check_with_pandapower(fdr, result) if pf_check else None
    summary = opf_summary(result, check.max_dv_pu if check else None, fdr.n_buses)
    summary["wall_time_s"] = time.perf_counter() - t_start
    summary.update(admm_fields)
    summary["profiles"] = prof.source
    summary["day"] = day
    click.echo(_table([{"field": k, "value": f"{v:.6g}" if isinstance(v, float) else v}
                       for k, v in summary.items()]))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        times = [(prof.start + (k * np.timedelta64(step_min, "m")).astype(object))
                 .strftime("%Y-%m-%d %H:%M") for k in range(prof.periods)]
        _write_series(out_dir / "voltages_pu.csv", times, result.buses, result.v_pu)
        _write_series(out_dir / "dlmp_eur_per_kwh.csv", times, result.buses,
                      result.dlmp_eur_per_kwh)
        (out_dir / "opf.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        click.echo(f"wrote {out_dir / 'opf.json'}, voltages_pu.csv, dlmp_eur_per_kwh.csv")
