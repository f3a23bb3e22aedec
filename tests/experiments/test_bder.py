"""Smoke and finding tests of the B-DER and Yang-Wang experiments."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from experiments.bder import BderConfig, ScenarioOutcome, findings, run, table4, table5


def test_bder_command_writes_tables_report_and_plots(tmp_path: Path) -> None:
    from experiments.cli import cli  # noqa: PLC0415 - the CLI imports every layer

    res = CliRunner().invoke(cli, ["-q", "experiment", "bder", "--out", str(tmp_path),
                                   "--days", "1", "--households", "2", "--admm-days", "0",
                                   "--peak-weight", "3", "--ev-hours", "18", "7",
                                   "--root-base", "purchases"])
    assert res.exit_code == 0, res.output
    for name in ("table4_economics.csv", "table5_energy.csv", "report.md",
                 "daily_exchange.png", "prices.png", "household_costs.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    text = (tmp_path / "table4_economics.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(text.splitlines()))
    assert rows[0] == ["Scenario", "BS", "TS", "GS", "TGS", "BW", "TW", "GW", "TGW"]
    labels = [r[0] for r in rows]
    assert "Prosumer import costs (Eur)" in labels
    assert "Total costs (Eur)" in labels
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "paper" in report
    assert "Why our figures differ" in report
    # the options reach the run
    assert "3× in the peak hours" in report
    assert "window 18–7 h" in report
    assert "households' grid purchases" in report


@pytest.mark.parametrize("args", [["--ev-hours", "24", "3"], ["--peak-weight", "-1"],
                                  ["--root-base", "net"]])
def test_bder_command_rejects_bad_options(tmp_path: Path, args: list[str]) -> None:
    from experiments.cli import cli  # noqa: PLC0415 - the CLI imports every layer

    res = CliRunner().invoke(cli, ["-q", "experiment", "bder", "--out", str(tmp_path), *args])
    assert res.exit_code == 2, res.output
    assert args[0] in res.output or "ev_hours" in res.output, res.output


def test_bder_small_run_trades_pay_and_baseline_has_no_exchange() -> None:
    out = run(BderConfig(days=1, households=3, admm_days=1, seasons=("summer",)))
    t4, t5 = table4(out), table5(out)
    assert t5["Total local energy exchange (kWh)"]["BS"] is None
    assert (t5["Total local energy exchange (kWh)"]["TS"] or 0) > 0
    # trading never makes the community's import bill larger than the baseline's
    assert t4["Total import costs (Eur)"]["TS"] <= t4["Total import costs (Eur)"]["BS"] + 1e-6
    # ADMM agrees with the central solve of the same formulation
    for name in ("TS", "GS", "TGS"):
        assert out[name].admm_gaps
        assert max(out[name].admm_gaps) <= 5e-3


@pytest.fixture(scope="module")
def summer_day() -> dict[str, ScenarioOutcome]:
    """All 13 households, one summer day, every scenario solved centrally."""
    return run(BderConfig(days=1, admm_days=0, seasons=("summer",)))


def test_bder_metrics_follow_the_report_definitions(summer_day: dict[str, ScenarioOutcome]
                                                    ) -> None:
    t4, t5 = table4(summer_day), table5(summer_day)
    peak_hours = [6, 7, 8, 17, 18, 19]            # 6-9 AM and 5-8 PM (B-DER Table 5)
    for name, oc in summer_day.items():
        imports = np.sum([r.import_kw for r in oc.results], axis=0)
        assert t5["Total imports (kWh)"][name] == pytest.approx(imports.sum())
        assert t5["Peak imports (kWh)"][name] == pytest.approx(imports[peak_hours].sum())
        cost = np.sum([r.import_cost_eur for r in oc.results], axis=0)
        assert t4["Total import costs (Eur)"][name] == pytest.approx(cost.sum())
    # the grid-only scenario has no trading mechanism: no trade costs, totals = import costs
    assert t4["Prosumer trade costs (Eur)"]["GS"] is None
    assert t4["Total costs (Eur)"]["GS"] == pytest.approx(t4["Total import costs (Eur)"]["GS"])


def test_bder_grid_modes_cut_peak_imports(summer_day: dict[str, ScenarioOutcome]) -> None:
    f = findings(table4(summer_day), table5(summer_day))
    # the report's measure: energy bought in the peak hours, summed over households
    for key in ("peak_GS_vs_BS", "peak_TGS_vs_BS", "peak_GS_vs_TS", "peak_TGS_vs_TS"):
        assert f[key] < 0, (key, f[key])


@pytest.mark.xfail(strict=True, reason="not reproduced: TGS keeps out of the peak hours with "
                   "the households' own batteries rather than by trading more, so its import "
                   "cost is not below TS (docs/admm.md, B-DER)")
def test_bder_trade_and_grid_imports_cost_less_than_trade_only(
        summer_day: dict[str, ScenarioOutcome]) -> None:
    f = findings(table4(summer_day), table5(summer_day))
    assert f["import_cost_TGS_minus_TS_eur"] < 0, f


@pytest.mark.slow
def test_bder_full_week_reproduces_the_qualitative_findings() -> None:
    out = run(BderConfig(admm_days=0))
    f = findings(table4(out), table5(out))
    for key in ("peak_GS_vs_BS", "peak_TGS_vs_BS", "peak_GS_vs_TS", "peak_TGS_vs_TS"):
        assert f[key] < 0, (key, f[key])
    assert f["power_TGS_vs_TS"] < 0
    assert f["winter_spread"] < f["summer_spread"]


def test_yangwang_command_writes_convergence_and_schedules(tmp_path: Path) -> None:
    from experiments.cli import cli  # noqa: PLC0415 - the CLI imports every layer

    res = CliRunner().invoke(cli, ["-q", "experiment", "yangwang", "--out", str(tmp_path),
                                   "--days", "1", "--prosumers", "3"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["converged"]
    assert summary["gap_vs_central"] <= 0.01
    for name in ("convergence.csv", "schedules.csv", "convergence.png", "schedules.png"):
        assert (tmp_path / name).stat().st_size > 0, name
