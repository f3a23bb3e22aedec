"""A Mesa day on an anvil node: commits in batch requests, reveals in participant order,
attestations in chunks; it settles the day the in-memory ledger settles."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import mas.mesa.model as mesa_model
from ledger.anvil import AnvilNode
from mas.mesa.model import MarketBatch, VdgModel
from mas.mesa.summary import day_settlement
from mas.scenario import Scenario

pytestmark = [pytest.mark.chain, pytest.mark.integration]

SMALL = Scenario(name="small", feeder="kerber-landnetz-kabel-1", households=8, seed=4)


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    with AnvilNode() as node:
        yield node.url


def test_a_day_on_anvil_settles_like_the_memory_ledger(anvil_url: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mesa_model, "ATTEST_BATCH", 3)  # 8 households: three calls per slot
    on_chain = VdgModel(SMALL, ledger="evm", chain_url=anvil_url, collect_agents=False)
    assert isinstance(on_chain._batch, MarketBatch)
    summary = on_chain.run_day()
    memory = VdgModel(SMALL, collect_agents=False)
    memory.run_day()
    assert day_settlement(on_chain) == day_settlement(memory)
    assert summary["money_conserved"]
    assert summary["energy_conserved"]
    calls = [r.call for r in on_chain.ledger.gas_log]
    assert calls.count("EnergyToken.attest") == 24 * 3
    assert calls.count("VdgMarket.withdraw") > 0  # sent in a batch; money_conserved: all paid
    assert on_chain.ledger.credit_nano(on_chain.ledger.deployment.market) == 0
    rank = {p.address: k for k, p in enumerate(on_chain.participants)}
    for rec in on_chain.sessions:
        revealed, _ = on_chain.ledger.revealed_book(rec.sid)
        order = [rank[a] for a in revealed]
        assert order == sorted(order)  # mined in participant order
        assert len(order) == len(rec.participants)


def test_the_embedded_chain_and_the_memory_ledger_take_calls_one_by_one() -> None:
    assert VdgModel(SMALL, collect_agents=False)._batch is None
