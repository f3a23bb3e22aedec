"""The in-memory ledger behaves like the contracts: each behaviour runs on both ledgers.

The cases mirror ``tests/ledger`` (clearing, settlement, shortfall, proof of flow, the refused
calls); the Hypothesis test clears random books on both and compares Wh and prices.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.client import Web3Ledger
from ledger.errors import ContractRevert
from ledger.orders import OrderVector, SlotOrder
from ledger.protocol import Ledger
from mas.mesa.memory_ledger import MemoryLedger, order_ids

VECTORS = [
    OrderVector.from_kwh([1.0, -0.5], [0.30, 0.10]),
    OrderVector.from_kwh([2.0, 1.0], [0.25, 0.40]),
    OrderVector.from_kwh([-1.5, -2.0], [0.05, 0.10]),
    OrderVector.from_kwh([-1.0, 0.0], [0.20, 0.0]),
]
SALT = b"\x07" * 32


def _make(kind: str) -> MemoryLedger | Web3Ledger:
    return MemoryLedger.deploy(5) if kind == "memory" else Web3Ledger.deploy()


@pytest.fixture(params=["memory", pytest.param("evm", marks=pytest.mark.chain)])
def led(request: pytest.FixtureRequest) -> MemoryLedger | Web3Ledger:
    return _make(request.param)


@dataclass
class Run:
    led: MemoryLedger | Web3Ledger
    sid: int
    hh: list[str]


def _session(led, phase: str, penalty: float = 0.5) -> Run:
    hh = led.add_households(len(VECTORS), credit_eur=100.0)
    sid = led.open_session(100, 2, commit_s=600, reveal_s=600, penalty_eur_per_kwh=penalty)
    for h, v in zip(hh, VECTORS, strict=True):
        led.commit(sid, h, v, SALT)
    if phase == "committed":
        return Run(led, sid, hh)
    led.advance_time(601)
    for h, v in zip(hh, VECTORS, strict=True):
        led.reveal(sid, h, v, SALT)
    led.advance_time(601)
    if phase == "revealed":
        return Run(led, sid, hh)
    led.clear(sid)
    if phase == "cleared":
        return Run(led, sid, hh)
    led.attest(100, {hh[0]: -1.0, hh[1]: -2.0, hh[2]: 1.5, hh[3]: 0.4})
    led.attest(101, {hh[0]: 0.5, hh[1]: -1.0, hh[2]: 2.0, hh[3]: 0.0})
    return Run(led, sid, hh)


def _reverts(name: str, fn, *args) -> None:
    with pytest.raises(ContractRevert) as info:
        fn(*args)
    assert info.value.error == name, info.value.reason


def test_clearing_follows_huang(led) -> None:
    r = _session(led, "revealed")
    cl = led.clear(r.sid)
    s0 = cl.slots[0]
    assert (s0.buy_price_ueur_per_kwh, s0.sell_price_ueur_per_kwh, s0.volume_wh) == (
        250_000, 200_000, 1000)
    assert [row[0] for row in cl.cleared_wh] == [1000, 0, -1000, 0]
    assert cl.slots[1].volume_wh == 0
    assert [h.lower() for h in cl.households] == [h.lower() for h in r.hh]


def test_settlement_pays_penalises_refunds_and_conserves_credit(led) -> None:
    r = _session(led, "attested")
    hh = r.hh
    supply = led.credit_supply_nano()
    before = {h: led.credit_nano(h) for h in hh}
    escrow = {h: led.escrow_of(r.sid, h)[1] for h in hh}
    assert escrow[hh[0]] == 1000 * 300_000 + 500 * 500_000  # buy at limit + sell bond
    led.settle(r.sid)
    owed = {h: led.owed_nano(h) for h in hh}
    assert owed[hh[0]] == escrow[hh[0]] - 1000 * 250_000
    assert owed[hh[2]] == escrow[hh[2]] + 1000 * 200_000
    assert owed[hh[1]] == escrow[hh[1]]
    treasury = led.deployment.treasury
    assert led.owed_nano(treasury) == 1000 * (250_000 - 200_000)
    for h in hh:
        assert led.withdraw(h) == owed[h]
        assert led.credit_nano(h) == before[h] + owed[h]
    led.withdraw(treasury)
    assert led.credit_supply_nano() == supply
    assert led.credit_nano(led.deployment.market) == 0


def test_shortfall_is_penalised_from_the_bond(led) -> None:
    r = _session(led, "cleared")
    hh = r.hh
    led.attest(100, {hh[2]: 0.6})
    led.attest(101, {hh[2]: 0.0})
    _, escrow = led.escrow_of(r.sid, hh[2])
    led.settle(r.sid)
    assert led.owed_nano(hh[2]) == escrow + 600 * 200_000 - 400 * 500_000
    assert led.owed_nano(led.deployment.treasury) == (
        1000 * 250_000 - 600 * 200_000 + 400 * 500_000)


def test_energy_tokens_equal_attested_export(led) -> None:
    r = _session(led, "attested")
    assert led.energy_supply_wh() == 1500 + 400 + 500 + 2000
    assert led.attestation(r.hh[0], 100) == (True, -1000)
    assert led.attestation(r.hh[0], 102) == (False, 0)


def test_refused_calls_leave_state_alone(led) -> None:
    r = _session(led, "committed")
    hh = r.hh
    _reverts("AlreadyCommitted", led.commit, r.sid, hh[0], VECTORS[0], SALT)
    _reverts("RevealNotOpen", led.reveal, r.sid, hh[0], VECTORS[0], SALT)
    led.advance_time(601)
    _reverts("CommitClosed", led.commit, r.sid, led.add_households(1, credit_eur=1.0)[0],
             VECTORS[0], SALT)
    _reverts("CommitMismatch", led.reveal, r.sid, hh[0], VECTORS[1], SALT)
    assert led.escrow_of(r.sid, hh[0])[0] is False
    led.reveal(r.sid, hh[0], VECTORS[0], SALT)
    _reverts("AlreadyRevealed", led.reveal, r.sid, hh[0], VECTORS[0], SALT)
    _reverts("ClearingNotOpen", led.clear, r.sid)
    led.advance_time(601)
    _reverts("RevealClosed", led.reveal, r.sid, hh[1], VECTORS[1], SALT)
    led.clear(r.sid)
    # only household 0 revealed: a buyer alone does not trade; settling needs no attestation
    _reverts("NothingOwed", led.withdraw, hh[0])
    led.settle(r.sid)
    _reverts("AlreadySettled", led.settle, r.sid)


def test_settlement_needs_the_sellers_attestation(led) -> None:
    r = _session(led, "cleared")
    led.attest(100, {r.hh[0]: -1.0})
    _reverts("NotAttested", led.settle, r.sid)
    led.attest(100, {r.hh[2]: 1.0})
    _reverts("AlreadyAttested", led.attest, 100, {r.hh[2]: 1.0})
    led.attest(101, {r.hh[2]: 0.0})
    led.settle(r.sid)


def test_escrow_beyond_the_balance_is_refused(led) -> None:
    h = led.add_households(1, credit_eur=1.0)[0]
    sid = led.open_session(0, 1, commit_s=60, reveal_s=60)
    big = OrderVector.from_kwh([100.0], [0.30])  # 30 EUR escrow
    led.commit(sid, h, big, SALT)
    led.advance_time(61)
    with pytest.raises(ContractRevert):
        led.reveal(sid, h, big, SALT)
    assert led.credit_nano(h) == 10**9


PRICES = [50_000 * k for k in range(1, 9)]


@st.composite
def books(draw: st.DrawFn) -> list[OrderVector]:
    n = draw(st.integers(2, 7))
    n_slots = draw(st.integers(1, 3))
    out = []
    for _ in range(n):
        slots = []
        for _ in range(n_slots):
            q = draw(st.one_of(st.just(0), st.integers(-4000, 4000),
                               st.sampled_from([-1000, 1000, 1, -1])))
            slots.append(SlotOrder(q, draw(st.sampled_from(PRICES)) if q else 0))
        if all(s.qty_wh == 0 for s in slots):
            slots[0] = SlotOrder(draw(st.sampled_from([-700, 700])), draw(st.sampled_from(PRICES)))
        out.append(OrderVector(tuple(slots)))
    return out


@pytest.fixture(scope="module")
def pair() -> tuple[tuple[MemoryLedger, list[str]], tuple[Web3Ledger, list[str]]]:
    mem, evm = MemoryLedger.deploy(1), Web3Ledger.deploy()
    return (mem, mem.add_households(7, credit_eur=10_000.0)), (
        evm, evm.add_households(7, credit_eur=10_000.0))


def _clear(led, hh: list[str], vectors: list[OrderVector]):
    sid = led.open_session(0, len(vectors[0].slots), commit_s=60, reveal_s=60)
    for h, v in zip(hh, vectors, strict=False):
        led.commit(sid, h, v, SALT)
    led.advance_time(61)
    for h, v in zip(hh, vectors, strict=False):
        led.reveal(sid, h, v, SALT)
    led.advance_time(61)
    return led.clear(sid)


@pytest.mark.chain
@pytest.mark.slow
@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(vectors=books())
def test_memory_clears_random_books_like_the_chain(pair, vectors) -> None:
    (mem, mem_hh), (evm, evm_hh) = pair
    a = _clear(mem, mem_hh, vectors)
    b = _clear(evm, evm_hh, vectors)
    assert a.cleared_wh == b.cleared_wh
    assert a.slots == b.slots


def test_memory_ledger_offers_the_market_part_of_the_ledger_protocol() -> None:
    market = ("add_households", "mint_credit", "credit_nano", "energy_wh", "attest",
              "open_session", "commit", "reveal", "clear", "settle", "withdraw", "advance_time")
    for name in market:
        ours = inspect.signature(getattr(MemoryLedger, name))
        theirs = inspect.signature(getattr(Ledger, name))
        assert list(ours.parameters) == list(theirs.parameters), name


def test_stored_vector_and_derived_salt_are_revealed() -> None:
    led = MemoryLedger.deploy(2)
    hh = led.add_households(2, credit_eur=10.0)
    sid = led.open_session(0, 1, commit_s=60, reveal_s=60)
    led.commit(sid, hh[0], OrderVector.from_kwh([1.0], [0.2]))
    led.commit(sid, hh[1], OrderVector.from_kwh([-1.0], [0.1]))
    led.advance_time(61)
    led.reveal(sid, hh[0])
    led.reveal(sid, hh[1])
    assert led.escrow_of(sid, hh[0]) == (True, 1000 * 200_000)


@settings(deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20_000), st.integers(0, 120)), max_size=40),
       st.integers(0, 3_000_000), st.sampled_from(["-", "/"]))
def test_order_ids_sort_in_row_then_slot_order(orders, extra_rows, sep) -> None:
    rows = np.array([r for r, _ in orders], dtype=np.int64)
    slots = np.array([t for _, t in orders], dtype=np.int64)
    n_rows = (int(rows.max()) + 1 if orders else 0) + extra_rows
    width = max(6, len(str(n_rows)))
    assert order_ids(rows, slots, n_rows, sep) == [f"{r:0{width}d}{sep}{t:03d}"
                                                   for r, t in orders]
