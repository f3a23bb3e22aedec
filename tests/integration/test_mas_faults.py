"""Faults over the embedded XMPP server: malformed bodies, a killed agent, a server restart."""

import asyncio
import json

import numpy as np
import pytest

from grid.der import BatterySpec, PvSpec
from mas.brains.household import HouseholdBrain
from mas.errors import MessageError, RuntimeFailureError
from mas.messages import dump, parse
from mas.scenario import RuntimeSpec, Scenario
from mas.spade.agents import CFP, HouseholdAgent, VdgAgent
from mas.spade.loop import run_agents
from mas.spade.runtime import DayRunner
from mas.spade.server import EmbeddedXmppServer, free_port
from mas.summary import summary
from mas.world import HouseholdSpec, household_rng

pytestmark = [pytest.mark.xmpp, pytest.mark.integration]

N_FUZZ = 1000


def _spec() -> HouseholdSpec:
    sun = np.clip(np.sin(np.pi * (np.arange(24) + 0.5 - 5) / 16), 0, None)
    return HouseholdSpec(
        id="h000", index=0, bus=1, load_name="l", load_kw=(0.8,) * 24, load_q_kvar=(0.1,) * 24,
        pv_avail_kw=tuple(float(x) for x in 4 * sun), pv=PvSpec("pv", 1, 4.0),
        battery=BatterySpec("bat", 1, 8.0, 3.0, 3.0), ev=None, ev_available=(0.0,) * 24,
        ev_need_kwh=0.0, buy_value_frac=0.95, sell_markup_frac=0.1)


def _malformed(rng: np.random.Generator) -> list[str]:
    """Deterministic malformed bodies: broken JSON, wrong versions, kinds, fields, types."""
    valid = json.loads(dump("plan.round", round=1, lam_eur_per_kwh=[0.0] * 24,
                            target_import_kw=[0.5] * 24, rho_eur_per_kw2=0.02))
    deliver = json.loads(dump("deliver", slot=3))
    out: list[str] = []
    makers = [
        lambda: json.dumps(valid)[: int(rng.integers(1, 40))],
        lambda: json.dumps({**valid, "v": int(rng.integers(2, 99))}),
        lambda: json.dumps({**valid, "kind": f"k{int(rng.integers(1e6))}"}),
        lambda: json.dumps({**valid, "round": float(rng.normal())}),
        lambda: json.dumps({**valid, "round": -int(rng.integers(1, 99))}),
        lambda: json.dumps({**valid, "lam_eur_per_kwh": [0.0] * int(rng.integers(0, 23))}),
        lambda: json.dumps({**valid, "lam_eur_per_kwh": ["x"] * 24}),
        lambda: json.dumps({**valid, "lam_eur_per_kwh": [1e300 * 10] * 24}),
        lambda: json.dumps({**valid, "target_import_kw": [0.5] * int(rng.integers(0, 23))}),
        lambda: json.dumps({**valid, "rho_eur_per_kw2": -float(rng.uniform(0, 1))}),
        lambda: json.dumps({k: v for k, v in valid.items() if k != "target_import_kw"}),
        lambda: json.dumps({**valid, f"extra{int(rng.integers(99))}": 1}),
        lambda: json.dumps({k: v for k, v in valid.items() if k != "round"}),
        lambda: json.dumps({**deliver, "slot": int(rng.integers(24, 10**6))}),
        lambda: json.dumps({**deliver, "slot": True}),
        lambda: json.dumps([valid]),
        lambda: "".join(chr(int(c)) for c in rng.integers(32, 127, int(rng.integers(1, 60)))),
        lambda: json.dumps({"v": 1, "kind": "market.reveal", "session": ""}),
        lambda: json.dumps({"v": 1, "kind": "market.orders", "session": "da", "qty_wh": [1],
                            "price_ueur_per_kwh": [1], "salt": "zz" * 32}),
    ]
    while len(out) < N_FUZZ:
        body = makers[int(rng.integers(len(makers)))]()
        if not body.strip():
            continue
        try:
            parse(body)
        except MessageError:
            out.append(body)
    return out


def _state(agent: HouseholdAgent) -> tuple:
    b = agent.brain
    return (b.plan, b.flex_kw.tobytes(), tuple(b.deliveries), b.lam.tobytes(),
            tuple(agent.sealed), tuple(agent.answered))


def test_a_thousand_malformed_bodies_are_rejected_and_change_nothing():
    bodies = _malformed(np.random.default_rng(7))

    async def main():
        with EmbeddedXmppServer() as server:
            brain = HouseholdBrain(_spec(), [0.25] * 24, [0.08] * 24,
                                   Scenario().forecast, household_rng(1, 0))
            home = HouseholdAgent(brain, "localhost", server.client_port, "pw")
            fuzz = VdgAgent("fuzzer", "localhost", server.client_port, "pw")
            await home.start()
            await fuzz.start()
            try:
                first = await fuzz.gather(
                    "plan.answer", "", 0, ["h000"],
                    lambda n: fuzz.send_body(n, CFP, "plan.round", round=0,
                                             lam_eur_per_kwh=[0.0] * 24, target_import_kw=None,
                                             rho_eur_per_kw2=brain.prox), 30)
                assert "h000" in first
                before = _state(home)
                for body in bodies:
                    fuzz.send_raw("h000", CFP, body)
                loop = asyncio.get_running_loop()
                end = loop.time() + 120
                while len(fuzz.failures) < N_FUZZ and loop.time() < end:
                    await asyncio.sleep(0.1)
                assert len(fuzz.failures) == N_FUZZ
                assert home.rejected == N_FUZZ
                assert _state(home) == before
                again = await fuzz.gather(
                    "plan.answer", "", 1, ["h000"],
                    lambda n: fuzz.send_body(n, CFP, "plan.round", round=1,
                                             lam_eur_per_kwh=[0.0] * 24,
                                             target_import_kw=[0.5] * 24,
                                             rho_eur_per_kw2=brain.prox), 30)
                assert "h000" in again  # still alive and answering
                # the server publishes its count from its own process: let it catch up
                end = loop.time() + 30
                while server.messages() < 2 * N_FUZZ and loop.time() < end:
                    await asyncio.sleep(0.2)
                assert server.messages() >= 2 * N_FUZZ
            finally:
                await fuzz.stop()
                await home.stop()

    run_agents(main)


def _small(reply_timeout_s: float = 6.0) -> Scenario:
    return Scenario(feeder="kerber-landnetz-kabel-1", households=6, seed=2,
                    runtime=RuntimeSpec(reply_timeout_s=reply_timeout_s, day_deadline_s=400.0,
                                        household_processes=2))


@pytest.mark.chain
def test_an_agent_killed_mid_session_is_left_out_and_the_day_settles():
    killed = []

    def kill(runner):
        proc = runner.workers[1]  # households 3-5
        proc.kill()
        proc.wait(10)
        killed.append(proc.pid)

    runner = DayRunner(_small(), hooks={"da:committed": kill})
    runner.run()
    s = summary(runner, 0.0)
    assert killed
    da = runner.record.sessions[0]
    assert da["session"] == "da"
    assert da["participants"] <= 4  # households 0-2 and the aggregator at most
    assert s["missing_readings"] == 3 * 24
    assert s["clearing_matches_reference"]
    assert s["money_conserved"]
    assert s["energy_conserved"]
    assert runner.finished


@pytest.mark.chain
@pytest.mark.slow  # waits out reconnections
def test_agents_reconnect_after_a_server_restart_and_the_day_completes():
    restarted = []

    def restart(runner):
        runner.server.restart()
        restarted.append(runner.server.proc.pid)

    runner = DayRunner(_small(reply_timeout_s=15.0), hooks={"coordinated": restart})
    runner.run()
    s = summary(runner, 0.0)
    assert restarted
    assert runner.finished
    assert s["missing_readings"] == 0
    assert all(sess["participants"] > 0 for sess in runner.record.sessions[:1])
    assert s["money_conserved"]
    assert s["energy_conserved"]
    assert s["clearing_matches_reference"]


def test_an_unreachable_chain_is_a_clear_failure_and_nothing_is_left_running():
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    runner = DayRunner(_small(), chain_url=url)
    with pytest.raises(RuntimeFailureError, match="chain"):
        runner.run()
    assert runner.workers == []  # it failed before starting anything
    assert runner.server is None
