"""Must show: one small day through the SPADE runtime (XMPP, embedded chain) and through the
Mesa runtime settles the same trades and payments, participant by participant."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from experiments.commands.run import write_outputs
from mas.mesa.model import VdgModel
from mas.mesa.outputs import write_agent_csvs
from mas.mesa.summary import day_settlement
from mas.scenario import Scenario
from mas.spade.runtime import DayRunner
from mas.summary import summary, welfare_eur

pytestmark = [pytest.mark.xmpp, pytest.mark.chain, pytest.mark.integration]

SMALL = Scenario(name="parity", feeder="kerber-landnetz-kabel-1", households=8, seed=4)


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_spade_and_mesa_settle_the_same_trades_and_payments(tmp_path: Path) -> None:
    runner = DayRunner(SMALL)
    record = runner.run()
    spade_cleared = {(session, who): tuple(row)
                     for session, rows in record.cleared.items()
                     for who, row in rows.items() if any(row)}
    spade_paid = runner.ops.credit_delta_nano()
    spade_prices = {s["session"]: tuple(zip(s["buy_price_ueur_per_kwh"],
                                            s["sell_price_ueur_per_kwh"], strict=True))
                    for s in record.sessions if s.get("participants")}

    model = VdgModel(SMALL, collect_agents=False)
    mesa_summary = model.run_day()
    mesa = day_settlement(model)

    assert spade_cleared  # a day with trades, so the comparison is not vacuous
    # the intraday sessions ran in both and traded the households' updated forecasts
    assert any(session.startswith("id") for session, _ in spade_cleared)
    assert mesa_summary["intraday_traded_kwh"] > 0
    assert summary(runner, 0.0)["intraday_traded_kwh"] == mesa_summary["intraday_traded_kwh"]
    assert summary(runner, 0.0)["real_time_traded_kwh"] == \
        mesa_summary["real_time_traded_kwh"]
    assert spade_cleared == mesa.cleared_wh
    assert spade_prices == mesa.prices_ueur_per_kwh
    assert spade_paid == mesa.credit_change_nano
    assert any(v != 0 for v in spade_paid.values())
    # the summary's welfare is one definition in both runtimes
    assert welfare_eur(runner) > 0
    assert mesa_summary["welfare_eur"] == round(welfare_eur(runner), 6)

    # the agents' CSV files: the same files, and the same values where the columns overlap
    write_outputs(tmp_path / "spade", runner, summary(runner, 0.0))
    write_agent_csvs(model, tmp_path / "mesa")
    for name in ["households.csv", "aggregator.csv", "auctioneer.csv",
                 *(f"{h.id}.csv" for h in runner.world.households)]:
        spade_rows = _csv(tmp_path / "spade" / "agents" / name)
        mesa_rows = _csv(tmp_path / "mesa" / "agents" / name)
        assert spade_rows, name
        assert list(spade_rows[0]) == list(mesa_rows[0]), name
        common = [c for c in spade_rows[0] if c != "chain_session"]
        assert [{c: r[c] for c in common} for r in spade_rows] == \
            [{c: r[c] for c in common} for r in mesa_rows], name
