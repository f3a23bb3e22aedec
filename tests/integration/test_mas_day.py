"""A simulated day through the embedded XMPP server and the embedded chain, end to end."""

import pytest

from mas.scenario import RuntimeSpec, Scenario
from mas.spade.runtime import DayRunner
from mas.summary import summary

pytestmark = [pytest.mark.xmpp, pytest.mark.chain, pytest.mark.integration]


def _run(**kw):
    runner = DayRunner(Scenario(households=10, seed=3,
                                runtime=RuntimeSpec(household_processes=1), **kw))
    runner.run()
    return runner, summary(runner, 0.0)


@pytest.fixture(scope="module")
def day():
    return _run()


def test_a_day_with_ten_households_clears_settles_and_conserves(day):
    runner, s = day
    assert s["households"] == 10
    assert s["trades"] > 0
    assert s["traded_kwh"] > 0
    assert s["clearing_matches_reference"]
    assert s["money_conserved"]
    assert s["energy_conserved"]
    assert s["missing_readings"] == 0
    assert s["messages_rejected"] == 0
    assert s["gas_used"] > 0
    assert s["admm_iterations"] == len(runner.record.rounds) >= 1
    for r in runner.record.rounds:  # every round's aggregator step ran on chain, all answered
        assert r["gas_used"] > 0
        assert r["answers"] == 10
    assert s["admm_gas_used"] == sum(r["gas_used"] for r in runner.record.rounds)
    assert set(runner.record.plans_import_kw) == {f"h{i:03d}" for i in range(10)}
    assert [r["session"] for r in runner.record.sessions] == \
        ["da", "id00", "rt00", "id06", "rt06", "id12", "rt12", "id18", "rt18"]
    assert s["intraday_traded_kwh"] > 0  # cleared on chain from updated forecasts
    assert not any(p.poll() is None for p in runner.workers)  # nothing left running
    assert not runner.server.running


def test_every_message_went_through_the_server(day):
    runner, s = day
    sent = runner.client_messages + runner.household_messages
    assert runner.household_messages > 0
    assert s["xmpp_messages_counted_by"] == "server"
    assert s["xmpp_messages"] == sent  # the in-process shortcut carried none of them


@pytest.mark.slow  # a second full day
def test_the_same_seed_gives_the_same_settlement(day):
    runner, _ = day
    again, _ = _run()
    assert again.ops.credit_delta_nano() == runner.ops.credit_delta_nano()
    assert again.record.cleared == runner.record.cleared
    assert again.record.metered_kwh == runner.record.metered_kwh


@pytest.mark.slow  # a second full day
def test_the_aggregator_in_its_own_process_bids_over_xmpp():
    runner = DayRunner(Scenario(households=10, seed=3,
                                runtime=RuntimeSpec(household_processes=1)),
                       aggregator="process")
    runner.run()
    assert not any(a.name_ == "agg" for a in runner.agents)  # not in the operator's process
    assert len(runner.workers) == 2
    assert "agg" in runner.record.limits["da"]  # its sealed bid was revealed and cleared
    assert runner.record.clearing_matches
    assert not any(p.poll() is None for p in runner.workers)
