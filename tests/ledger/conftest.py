"""Fixtures of the ledger suite: a freshly deployed ledger on each backend.

``led`` runs every test that uses it twice: on the embedded chain (py-evm in this process) and
on an anvil node installed by the project's ``npm ci``. When anvil is missing, the anvil cases
fail with the install command in the message.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from ledger.anvil import AnvilNode
from ledger.chain import ChainConfig
from ledger.client import Web3Ledger
from tests.ledger.sessions import SESSION_VECTORS, Session

_seeds = itertools.count(1000)


@pytest.fixture(scope="session")
def anvil_url() -> Iterator[str]:
    """One anvil node for the whole run, stopped at the end."""
    with AnvilNode() as node:
        yield node.url


@pytest.fixture(params=["embedded", "anvil"])
def led(request: pytest.FixtureRequest) -> Web3Ledger:
    """A ledger freshly deployed on the embedded chain, then on anvil."""
    if request.param == "anvil":
        url = request.getfixturevalue("anvil_url")
        return Web3Ledger.deploy(ChainConfig(url=url, seed=next(_seeds)))
    return Web3Ledger.deploy()


@pytest.fixture
def session_factory(led: Web3Ledger) -> Callable[..., Session]:
    """Open a session with four households and drive it to a phase.

    Phases: ``"committed"``, ``"revealed"`` (reveal gate closed), ``"cleared"``, ``"attested"``.
    """

    def make(phase: str = "revealed", *, penalty_eur_per_kwh: float = 0.5) -> Session:
        hh = led.add_households(len(SESSION_VECTORS), credit_eur=100.0)
        sid = led.open_session(
            100, 2, commit_s=600, reveal_s=600, penalty_eur_per_kwh=penalty_eur_per_kwh
        )
        s = Session(led, sid, hh, list(SESSION_VECTORS), 100)
        led.commit_all(sid, dict(zip(hh, SESSION_VECTORS, strict=True)))
        if phase == "committed":
            return s
        led.advance_time(601)
        led.reveal_all(sid, hh)
        led.advance_time(601)
        if phase == "revealed":
            return s
        led.clear(sid)
        if phase == "cleared":
            return s
        led.attest(100, {hh[0]: -1.0, hh[1]: -2.0, hh[2]: 1.5, hh[3]: 0.4})
        led.attest(101, {hh[0]: 0.5, hh[1]: -1.0, hh[2]: 2.0, hh[3]: 0.0})
        return s

    return make
