"""``vdg run`` on the shipped scenario (smoke test) and the scenario loader's validation."""

import json

import pytest
from click.testing import CliRunner

from experiments.cli import cli
from experiments.commands.run import SUMMARY_FIELDS
from experiments.scenario import load_scenario, shipped
from mas.errors import ScenarioError
from mas.scenario import Scenario


def test_the_default_scenario_has_a_simbench_feeder_with_forty_households_or_more():
    assert "default" in shipped()
    sc = load_scenario()
    assert sc.feeder.startswith("1-LV-")
    assert sc.households is None  # every load of the feeder: 41
    assert sc.der.pv_share > 0
    assert sc.der.battery_share > 0
    assert sc.der.ev_share > 0


@pytest.mark.parametrize(("text", "needle"), [
    ('feeder = "x"\nbogus = 1\n', "bogus"),
    ("[der]\npv_share = 2.0\n", "der.pv_share"),
    ('[market]\nmechanism = "walrasian"\n', "market.mechanism"),
    ("[market]\nreal_time_block_h = 5\n", "real_time_block_h"),
    ('day = "21/06/2016"\n', "day"),
    ("households = 0\n", "households"),
    ("[grid]\nmax_rounds = 1.5\n", "grid.max_rounds"),
    ("[runtime]\nnope = 1\n", "runtime.nope"),
    ("this is not toml", "invalid TOML"),
])
def test_a_bad_scenario_file_names_the_field(tmp_path, text, needle):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(str(path))
    assert needle in str(info.value)


def test_an_unknown_scenario_name_is_refused():
    with pytest.raises(ScenarioError, match="nope"):
        load_scenario("nope")


def test_scenario_round_trips_through_a_mapping():
    sc = Scenario(households=7, seed=9)
    assert Scenario.from_dict(sc.to_dict()) == sc
    assert sc.with_overrides(households=3).households == 3


@pytest.mark.xmpp
@pytest.mark.chain
@pytest.mark.integration
def test_vdg_run_writes_the_summary_csvs_and_report(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["-q", "run", "default", "--households", "4", "--seed",
                                      "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(SUMMARY_FIELDS) <= set(summary)
    assert summary["households"] == 4
    assert summary["money_conserved"] is True
    assert summary["energy_conserved"] is True
    assert (out / "report.md").read_text().startswith("# vdg run")
    assert (out / "agents" / "h000.csv").exists()
    assert (out / "agents" / "auctioneer.csv").exists()
    assert "traded_kwh" in result.output


@pytest.mark.parametrize(("roles", "needle"), [
    ("dso", "dso and auctioneer run in one process"),
    ("auctioneer,aggregator", "dso and auctioneer run in one process"),
    ("household,operator", "household runs in its own process"),
    ("mayor", "mayor"),
])
def test_vdg_agents_refuses_roles_that_do_not_fit(roles, needle):
    result = CliRunner().invoke(cli, ["-q", "agents", "--roles", roles, "--xmpp", "localhost"])
    assert result.exit_code != 0
    assert needle in result.output + str(result.exception)
