"""``vdg run --runtime mesa``: the Mesa runtime behind the main command."""

import json

import pytest
from click.testing import CliRunner

from experiments.cli import cli


@pytest.mark.integration
def test_mesa_runtime_writes_the_summary(tmp_path):
    out = tmp_path / "mesa"
    result = CliRunner().invoke(cli, ["-q", "run", "--runtime", "mesa", "--ledger", "memory",
                                      "--households", "6", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runtime"] == "mesa"
    assert summary["households"] == 6
    assert summary["xmpp_messages"] == 0
    assert summary["money_conserved"] is True
    assert summary["energy_conserved"] is True
    for field in ("trades", "traded_kwh", "welfare_eur", "peak_import_kw", "gas_used"):
        assert field in summary
    households_csv = out / "agents" / "households.csv"
    assert households_csv.exists(), sorted(p.name for p in out.rglob("*"))
    assert len(households_csv.read_text().strip().splitlines()) == 1 + 6


@pytest.mark.parametrize(("args", "message"), [
    (["--xmpp", "127.0.0.1:5222"], "--xmpp"),
    (["--ledger", "memory", "--chain", "http://127.0.0.1:8545"], "--chain"),
])
def test_mesa_runtime_refuses_options_it_cannot_honour(tmp_path, args, message):
    out = tmp_path / "never"
    result = CliRunner().invoke(cli, ["run", "--runtime", "mesa", *args, "--out", str(out)])
    assert result.exit_code == 1
    assert message in result.output
    assert not out.exists()
