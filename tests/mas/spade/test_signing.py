"""Participants sign their own market transactions; the operator only checks and relays them."""

import asyncio
import json

import pytest
from eth_account import Account

from ledger.errors import RawTxError
from ledger.wallet import TxTerms, Wallet
from mas.brains.household import HouseholdBrain
from mas.chainops import RAW_GAS, ChainOps
from mas.errors import ProtocolStateError
from mas.scenario import RuntimeSpec, Scenario
from mas.spade.agents import AGGREGATOR, CFP, HouseholdAgent, VdgAgent
from mas.spade.loop import run_agents
from mas.spade.runtime import DayRunner
from mas.spade.server import EmbeddedXmppServer
from mas.summary import summary
from mas.world import build_world, household_rng

PARTICIPANT_CALLS = {"Credit.approve", "VdgMarket.commit", "VdgMarket.reveal",
                     "VdgMarket.withdraw"}


@pytest.mark.xmpp
@pytest.mark.chain
@pytest.mark.integration
def test_a_day_with_keys_from_a_key_file_leaves_no_participant_key_with_the_operator(
        tmp_path, monkeypatch):
    sc = Scenario(feeder="kerber-landnetz-kabel-1", households=4, seed=5,
                  runtime=RuntimeSpec(household_processes=1, reply_timeout_s=10.0))
    ids = [h.id for h in build_world(sc).households]
    keys = {p: Account.create() for p in [*ids, AGGREGATOR]}
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({p: a.key.hex() for p, a in keys.items()}))
    monkeypatch.setenv("VDG_KEY_FILE", str(path))  # the worker processes read it
    runner = DayRunner(sc, aggregator="process")
    runner.run()
    s = summary(runner, 0.0)
    ops = runner.ops
    assert runner.finished
    assert s["trades"] > 0
    assert s["money_conserved"]
    assert s["clearing_matches_reference"]
    assert ops.address == {p: a.address for p, a in keys.items()}
    assert not any(ops.ledger.chain.holds_key(a) for a in ops.address.values())
    mine = {a.lower() for a in ops.address.values()}
    w3 = ops.ledger.chain.w3
    by_participants = [g for g in ops.ledger.gas_log
                       if w3.eth.get_transaction(g.tx_hash)["from"].lower() in mine]
    assert {g.call for g in by_participants} == PARTICIPANT_CALLS
    # every participant transaction on chain arrived pre-signed through the relay
    assert all(g.tx_hash in ops.relay.relayed for g in by_participants)
    assert len(ops.relay.relayed) == len(by_participants)
    assert s["messages_rejected"] == 0


@pytest.mark.chain
def test_the_operator_refuses_a_wrong_transaction_and_sends_nothing():
    ops = ChainOps(["h000", "h001"], credit_eur=5.0)
    wallets = {"h000": Wallet(Account.create()), "h001": Wallet(Account.create())}
    assert ops.register({p: w.address for p, w in wallets.items()}) == {}
    refused = ops.register({"h000": wallets["h000"].address,
                            "h009": Account.create().address})
    assert set(refused) == {"h000", "h009"}
    assert all(isinstance(e, ProtocolStateError) for e in refused.values())
    assert "joined already" in str(refused["h000"])
    assert "unknown" in str(refused["h009"])
    assert set(ops.address) == {"h000", "h001"}
    join = ops.join_terms()

    def terms(who, fn, to="market"):
        t = ops.terms(who, fn)
        return TxTerms(join["chain_id"], join[to], t["nonce"], t["gas"], t["max_fee_wei"])

    for p, w in wallets.items():
        ops.relay_approval(p, w.sign(terms(p, "approve", "credit"), "Credit", "approve",
                                     [join["market"], 2**256 - 1]))
    assert ops.ready == {"h000", "h001"}
    sid = ops.open_session(0, 2, 0.5)
    digest = b"\x5a" * 32
    before = len(ops.ledger.gas_log)
    raw = wallets["h001"].sign(terms("h001", "commit"), "VdgMarket", "commit", [sid, digest],
                               sid)
    with pytest.raises(RawTxError, match="sender") as info:  # h001's transaction as h000's
        ops.relay_commit(sid, "h000", digest, raw)
    assert info.value.field == "sender"
    other = Wallet(Account.create())
    wrong = other.sign(terms("h000", "commit"), "VdgMarket", "commit", [sid + 1, digest])
    with pytest.raises(RawTxError, match="sender"):
        ops.relay_commit(sid, "h000", digest, wrong)
    with pytest.raises(RawTxError, match="session"):
        ops.relay_commit(sid, "h001", digest, Wallet(wallets["h001"]._account).sign(
            terms("h001", "commit"), "VdgMarket", "commit", [sid + 1, digest]))
    assert len(ops.ledger.gas_log) == before
    ops.relay_commit(sid, "h001", digest, raw)
    ops.relay_commit(sid, "h001", digest, raw)  # the same bytes again: nothing more sent
    assert len(ops.ledger.gas_log) == before + 1
    assert ops.ledger.gas_log[-1].call == "VdgMarket.commit"
    assert RAW_GAS["commit"] > 2 * ops.ledger.gas_log[-1].gas_used


@pytest.mark.xmpp
def test_a_household_signs_only_for_its_own_account_and_after_joining():
    async def main():
        with EmbeddedXmppServer() as server:
            sc = Scenario(feeder="kerber-landnetz-kabel-1", households=1, seed=1)
            world = build_world(sc)
            brain = HouseholdBrain(world.households[0], world.import_eur_per_kwh,
                                   world.export_eur_per_kwh, sc.forecast, household_rng(1, 0))
            home = HouseholdAgent(brain, "localhost", server.client_port, "pw")
            op = VdgAgent("operator", "localhost", server.client_port, "pw")
            await home.start()
            await op.start()
            name = home.name_
            t = {"nonce": 0, "gas": 120_000, "max_fee_wei": 10**9}
            try:
                op.send_body(name, CFP, "market.commit", session="da", chain_session=1,
                             slots=list(range(24)), address=home.wallet.address, **t)
                await _wait(lambda: len(op.failures) == 1)
                assert "before account.join" in op.failures[0][1]
                got = await op.gather(
                    "account.address", "", -1, [name],
                    lambda n: op.send_body(n, CFP, "account.join", chain_id=31337,
                                           market="0x" + "11" * 20, credit="0x" + "22" * 20),
                    20)
                assert got[name]["address"] == home.wallet.address
                op.send_body(name, CFP, "market.commit", session="rt00", chain_session=2,
                             slots=[0, 1, 2, 3], address="0x" + "33" * 20, **t)
                await _wait(lambda: len(op.failures) == 2)
                assert "field 'address'" in op.failures[1][1]
                assert home.sealed == {}
            finally:
                await op.stop()
                await home.stop()

    run_agents(main)


async def _wait(cond, timeout_s=20.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not cond():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.xmpp
@pytest.mark.chain
@pytest.mark.integration
def test_households_sign_for_a_chain_node_they_cannot_reach():
    from ledger.anvil import AnvilNode  # noqa: PLC0415

    sc = Scenario(feeder="kerber-landnetz-kabel-1", households=4, seed=5,
                  runtime=RuntimeSpec(household_processes=1, reply_timeout_s=10.0))
    with AnvilNode() as node:
        runner = DayRunner(sc, chain_url=node.url)
        runner.run()
        s = summary(runner, 0.0)  # reads the node
    assert runner.finished
    assert s["trades"] > 0
    assert s["money_conserved"]
    assert s["clearing_matches_reference"]
    calls = {r.call for r in runner.ops.relay.relayed.values()}
    assert calls == PARTICIPANT_CALLS
