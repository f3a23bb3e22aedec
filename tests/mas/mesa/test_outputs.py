"""The agents' CSV files of a Mesa day: the SPADE runtime's names and columns, consistent sums."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mas.mesa.model import VdgModel
from mas.mesa.outputs import write_agent_csvs
from mas.mesa.summary import day_settlement
from mas.scenario import Scenario

SMALL = Scenario(name="small", feeder="kerber-landnetz-kabel-1", households=8, seed=4)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[VdgModel, Path]:
    model = VdgModel(SMALL, collect_agents=False)
    model.run_day()
    return model, write_agent_csvs(model, tmp_path_factory.mktemp("day"))


def test_files_and_columns(written: tuple[VdgModel, Path]) -> None:
    model, agents = written
    names = {p.name for p in agents.iterdir()}
    assert {"households.csv", "dso.csv", "auctioneer.csv", "aggregator.csv"} <= names
    assert {f"{h.hid}.csv" for h in model.households} <= names
    rows = _read(agents / "households.csv")
    assert [r["household"] for r in rows] == [h.hid for h in model.households]
    assert list(rows[0]) == ["household", "bus", "pv_kwp", "battery_kwh", "ev_kw", "prosumer",
                             "sold_local_kwh", "bought_local_kwh", "import_kwh", "export_kwh",
                             "market_eur", "supplier_eur", "bill_eur"]
    series = _read(agents / f"{model.households[0].hid}.csv")
    assert len(series) == 24
    sessions = {f"cleared_{r.plan.name}_wh" for r in model.sessions}
    assert set(series[0]) == {"slot", "planned_import_kw", "metered_export_kwh"} | sessions
    assert list(_read(agents / "dso.csv")[0]) == ["slot", "planned_import_kw",
                                                  "metered_import_kw", "import_limit_kw",
                                                  "v_min_pu", "v_max_pu"]


def test_the_files_add_up_to_the_day(written: tuple[VdgModel, Path]) -> None:
    model, agents = written
    summary = model.summary
    assert summary is not None
    auct = _read(agents / "auctioneer.csv")
    assert sum(int(r["volume_wh"]) for r in auct) / 1000 == pytest.approx(
        summary["traded_kwh"], abs=1e-3)
    rows = _read(agents / "households.csv")
    paid = day_settlement(model).credit_change_nano
    for r in rows:  # the market part of the bill is what the ledger moved
        assert float(r["market_eur"]) == pytest.approx(-paid[r["household"]] / 1e9, abs=1e-6)
        assert float(r["bill_eur"]) == pytest.approx(
            float(r["market_eur"]) + float(r["supplier_eur"]), abs=2e-6)
    k = 3
    hid = model.households[k].hid
    series = _read(agents / f"{hid}.csv")
    assert [float(r["metered_export_kwh"]) for r in series] == [
        model.dso.brain.attested[t][hid] for t in range(24)]  # the attested readings
    assert [float(r["metered_export_kwh"]) for r in series] == pytest.approx(
        model.metered_kw[:, k].tolist(), abs=5e-4)
    dso = _read(agents / "dso.csv")
    assert max(float(r["metered_import_kw"]) for r in dso) == pytest.approx(
        summary["peak_import_kw"], abs=0.01)
