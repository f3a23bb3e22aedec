"""Money and energy are conserved across random sessions settled against random deliveries."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.client import Web3Ledger
from ledger.orders import OrderVector
from tests.ledger.strategies import MAX_HOUSEHOLDS, books

pytestmark = pytest.mark.chain


@pytest.fixture(scope="module")
def pool() -> tuple[Web3Ledger, list[str]]:
    led = Web3Ledger.deploy()
    return led, led.add_households(MAX_HOUSEHOLDS, credit_eur=10_000.0)


_slot_base = iter(range(1000, 10**9, 10))


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(vectors=books(), delivered=st.lists(st.integers(-3000, 5000), min_size=24, max_size=24))
def test_session_conserves_credit_and_energy(
    pool: tuple[Web3Ledger, list[str]], vectors: list[OrderVector], delivered: list[int]
) -> None:
    led, all_hh = pool
    hh = all_hh[: len(vectors)]
    n_slots = len(vectors[0].slots)
    start = next(_slot_base)
    treasury = led.roles["treasury"].address
    accounts = [*all_hh, treasury, led.c["market"].address, led.roles["admin"].address]
    supply = led.credit_supply_nano()
    held = {a: led.credit_nano(a) for a in accounts}
    assert sum(held.values()) == supply
    energy_before = led.energy_supply_wh()
    sid = led.open_session(start, n_slots, commit_s=60, reveal_s=60, penalty_eur_per_kwh=0.07)
    for h, v in zip(hh, vectors, strict=True):
        led.commit(sid, h, v)
    led.advance_time(61)
    for h in hh:
        led.reveal(sid, h)
    led.advance_time(61)
    led.clear(sid)
    flows = {}
    for t in range(n_slots):
        flows[t] = {h: delivered[(i * n_slots + t) % 24] / 1000 for i, h in enumerate(hh)}
        led.attest(start + t, flows[t])
    exported = sum(max(0, round(e * 1000)) for f in flows.values() for e in f.values())
    assert led.energy_supply_wh() - energy_before == exported  # minted = attested export
    escrow = sum(led.escrow_of(sid, h)[1] for h in hh)
    led.settle(sid)
    owed = {a: led.owed_nano(a) for a in [*hh, treasury]}
    assert sum(owed.values()) == escrow  # settlement redistributes the escrow, no more, no less
    for a, amount in owed.items():
        if amount:
            assert led.withdraw(a) == amount
    assert led.credit_supply_nano() == supply
    assert led.credit_nano(led.c["market"].address) == held[led.c["market"].address] == 0
    assert sum(led.credit_nano(a) for a in accounts) == supply
