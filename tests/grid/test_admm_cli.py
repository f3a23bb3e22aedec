"""``vdg opf --method admm`` writes the OPF fields plus the ADMM ones."""

import json
from pathlib import Path

from click.testing import CliRunner

from experiments.cli import cli


def test_opf_admm_writes_iterations_gap_and_residuals(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["-q", "opf", "case33bw", "--hours", "4", "--step-min", "60",
                                   "--method", "admm", "--variant", "subtree2", "--out",
                                   str(tmp_path)])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "opf.json").read_text(encoding="utf-8"))
    for key in ("objective_eur", "v_min_pu", "dlmp_max_eur_per_kwh", "pf_check_max_dv_pu",
                "iterations", "gap_vs_central", "primal_residual", "dual_residual",
                "wall_time_s", "central_time_s"):
        assert key in data, key
    assert data["method"] == "admm"
    assert data["converged"]
    assert data["iterations"] >= 2
    assert data["gap_vs_central"] <= 5e-3
    # the ADMM voltages pass the same AC power-flow check as the central ones
    assert data["pf_check_max_dv_pu"] <= 5e-3
