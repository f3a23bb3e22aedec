import json

import pytest
from click.testing import CliRunner

from experiments.cli import cli

REQUIRED = ["feeder", "buses", "periods", "status", "objective_eur", "solve_time_s",
            "build_time_s", "relaxation_gap", "v_min_pu", "v_max_pu", "peak_import_kw",
            "pf_check_max_dv_pu"]


def test_feeders_lists_the_catalogue():
    result = CliRunner().invoke(cli, ["feeders"])
    assert result.exit_code == 0
    names = result.output.split()
    assert "case33bw" in names
    assert "1-LV-urban6--2-sw" in names


def test_opf_writes_summary_and_series(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["-q", "opf", "case33bw", "--hours", "24", "--step-min",
                                      "60", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "opf.json").read_text())
    for field in REQUIRED:
        assert field in summary, field
    assert summary["feeder"] == "case33bw"
    assert summary["buses"] == 33
    assert summary["periods"] == 24
    assert summary["status"] == "optimal"
    assert summary["pf_check_max_dv_pu"] < 1e-3
    assert 0.9 <= summary["v_min_pu"] <= summary["v_max_pu"] <= 1.1
    volts = (out / "voltages_pu.csv").read_text().splitlines()
    dlmp = (out / "dlmp_eur_per_kwh.csv").read_text().splitlines()
    assert len(volts) == len(dlmp) == 25
    assert volts[0].split(",")[:2] == ["time", "bus_0"]
    assert len(volts[1].split(",")) == 34
    assert "relaxation_gap" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["opf", "atlantis"], "unknown feeder 'atlantis'"),
    (["opf", "case33bw", "--step-min", "7"], "step_min"),
    (["opf", "1-LV-rural1--0-sw", "--day", "2019-01-01"], "2016 only"),
    (["opf", "case33bw", "--day", "June 21"], "YYYY-MM-DD"),
    (["opf", "case33bw", "--margin", "nan"], "--margin"),
])
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "never"
    result = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 1
    assert message in result.output
    assert not out.exists()
