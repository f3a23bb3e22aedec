"""Attacks on the contracts: each reverts with its reason and leaves balances and state alone."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_utils import keccak

from ledger.chain import decode_revert
from ledger.client import HOUSEHOLD, MAX_UINT, Web3Ledger
from ledger.errors import ContractRevert, FixedPointError
from ledger.orders import OrderVector, SlotOrder, commitment, sort_book
from tests.ledger.sessions import Session

pytestmark = pytest.mark.chain


def _snapshot(led: Web3Ledger, accounts: list[str], sid: int | None = None) -> dict[str, object]:
    snap: dict[str, object] = {
        "credit_supply": led.credit_supply_nano(),
        "energy_supply": led.energy_supply_wh(),
        "market_credit": led.credit_nano(led.c["market"].address),
    }
    for a in accounts:
        snap[f"credit:{a}"] = led.credit_nano(a)
        snap[f"energy:{a}"] = led.energy_wh(a)
        snap[f"owed:{a}"] = led.owed_nano(a)
        if sid is not None:
            snap[f"escrow:{a}"] = led.escrow_of(sid, a)
    if sid is not None:
        snap["session"] = led.session(sid)
    return snap


def test_unauthorised_mint_of_credit(led: Web3Ledger) -> None:
    (h,) = led.add_households(1)
    before = _snapshot(led, [h])
    with pytest.raises(ContractRevert) as err:
        led.mint_credit(h, 1000.0, sender=h)
    assert err.value.error == "Unauthorized"
    assert err.value.error_args == (h, 1)
    assert _snapshot(led, [h]) == before


def test_attestation_by_a_non_dso_mints_nothing(led: Web3Ledger) -> None:
    a, b = led.add_households(2)
    before = _snapshot(led, [a, b])
    for sender in (a, led.roles["auctioneer"].address, led.roles["aggregator"].address):
        with pytest.raises(ContractRevert) as err:
            led.attest(7, {a: 5.0}, sender=sender)
        assert err.value.error == "Unauthorized"
    assert _snapshot(led, [a, b]) == before
    assert led.attestation(a, 7) == (False, 0)


def test_double_mint_for_one_meter_and_slot(led: Web3Ledger) -> None:
    (h,) = led.add_households(1)
    led.attest(7, {h: 2.0})
    before = _snapshot(led, [h])
    with pytest.raises(ContractRevert) as err:
        led.attest(7, {h: 2.0})
    assert err.value.error == "AlreadyAttested"
    assert err.value.error_args == (led.meter_of(h), 7)
    assert _snapshot(led, [h]) == before
    assert led.attestation(h, 7) == (True, 2000)


def test_attestation_of_an_unknown_meter(led: Web3Ledger) -> None:
    (h,) = led.add_households(1)
    stranger = led.new_account()
    before = _snapshot(led, [h])
    with pytest.raises(ContractRevert) as err:
        led.attest_raw(7, [stranger], [1000], led.roles["dso"].address)
    assert err.value.error == "UnknownMeter"
    assert _snapshot(led, [h]) == before


def test_bid_from_an_unregistered_account(led: Web3Ledger) -> None:
    (h,) = led.add_households(1, credit_eur=10)
    sid = led.open_session(0, 2)
    stranger = led.new_account()
    before = _snapshot(led, [h, stranger], sid)
    with pytest.raises(ContractRevert) as err:
        led.commit(sid, stranger, OrderVector.from_kwh([1.0, 1.0], [0.2, 0.2]))
    assert err.value.error == "Unauthorized"
    assert err.value.error_args == (stranger, HOUSEHOLD)
    assert _snapshot(led, [h, stranger], sid) == before
    assert led.chain.call(led.c["market"], "sealOf", [sid, stranger]) == 0


def test_reveal_that_does_not_match_its_commit(session_factory: Callable[..., Session]) -> None:
    s = session_factory("committed")
    led, h = s.led, s.households[0]
    led.advance_time(601)
    before = _snapshot(led, s.households, s.sid)
    other = OrderVector.from_kwh([5.0, 5.0], [0.01, 0.01])
    with pytest.raises(ContractRevert) as err:
        led.reveal(s.sid, h, orders=other, salt=led._sealed[(s.sid, h)][1])
    assert err.value.error == "CommitMismatch"
    with pytest.raises(ContractRevert) as err:
        led.reveal(s.sid, h, orders=s.vectors[0], salt=b"\x01" * 32)
    assert err.value.error == "CommitMismatch"
    assert _snapshot(led, s.households, s.sid) == before


def test_reveal_before_the_commit_gate_and_after_the_deadline(
    session_factory: Callable[..., Session],
) -> None:
    s = session_factory("committed")
    led, h = s.led, s.households[0]
    before = _snapshot(led, s.households, s.sid)
    with pytest.raises(ContractRevert) as err:
        led.reveal(s.sid, h)
    assert err.value.error == "RevealNotOpen"
    led.advance_time(1300)  # past commit and reveal gates
    with pytest.raises(ContractRevert) as err:
        led.reveal(s.sid, h)
    assert err.value.error == "RevealClosed"
    assert _snapshot(led, s.households, s.sid) == before


def test_commit_after_the_gate(led: Web3Ledger) -> None:
    (h,) = led.add_households(1, credit_eur=10)
    sid = led.open_session(0, 1, commit_s=60)
    led.advance_time(61)
    before = _snapshot(led, [h], sid)
    with pytest.raises(ContractRevert) as err:
        led.commit(sid, h, OrderVector.from_kwh([1.0], [0.2]))
    assert err.value.error == "CommitClosed"
    assert _snapshot(led, [h], sid) == before


def test_double_reveal(session_factory: Callable[..., Session]) -> None:
    s = session_factory("committed")
    led, h = s.led, s.households[0]
    led.advance_time(601)
    led.reveal(s.sid, h)
    before = _snapshot(led, s.households, s.sid)
    with pytest.raises(ContractRevert) as err:
        led.reveal(s.sid, h)
    assert err.value.error == "AlreadyRevealed"
    assert _snapshot(led, s.households, s.sid) == before


def test_double_commit(session_factory: Callable[..., Session]) -> None:
    s = session_factory("committed")
    led, h = s.led, s.households[0]
    before = _snapshot(led, s.households, s.sid)
    with pytest.raises(ContractRevert) as err:
        led.commit(s.sid, h, OrderVector.from_kwh([9.0, 9.0], [0.9, 0.9]))
    assert err.value.error == "AlreadyCommitted"
    assert _snapshot(led, s.households, s.sid) == before


def test_double_settlement(session_factory: Callable[..., Session]) -> None:
    s = session_factory("attested")
    led = s.led
    led.settle(s.sid)
    accounts = [*s.households, led.roles["treasury"].address]
    before = _snapshot(led, accounts, s.sid)
    with pytest.raises(ContractRevert) as err:
        led.settle(s.sid)
    assert err.value.error == "AlreadySettled"
    assert _snapshot(led, accounts, s.sid) == before


def test_settlement_needs_the_sellers_attestation(session_factory: Callable[..., Session]) -> None:
    s = session_factory("cleared")
    led = s.led
    before = _snapshot(led, s.households, s.sid)
    with pytest.raises(ContractRevert) as err:
        led.settle(s.sid)
    assert err.value.error == "NotAttested"
    assert err.value.error_args == (s.households[2], 100)
    assert _snapshot(led, s.households, s.sid) == before


def test_settlement_by_a_non_dso_and_with_forged_results(
    session_factory: Callable[..., Session],
) -> None:
    s = session_factory("attested")
    led = s.led
    before = _snapshot(led, s.households, s.sid)
    with pytest.raises(ContractRevert) as err:
        led.settle(s.sid, sender=s.households[0])
    assert err.value.error == "Unauthorized"
    cl = led._clearings[s.sid]
    forged = bytearray(cl.results_blob)
    forged[3] = 0xFF  # household 0 claims another quantity in slot 0
    with pytest.raises(ContractRevert) as err:
        led.chain.transact(
            led.c["market"],
            "settle",
            [
                s.sid,
                b"".join(bytes.fromhex(h[2:]) for h in cl.households),
                cl.prices_blob,
                bytes(forged),
            ],
            led.roles["dso"],
        )
    assert err.value.error == "ResultMismatch"
    # the same bytes split differently between prices and results (same packed hash)
    blob_hh = b"".join(bytes.fromhex(h[2:]) for h in cl.households)
    shifted = (cl.prices_blob[:-4], cl.prices_blob[-4:] + cl.results_blob)
    with pytest.raises(ContractRevert) as err:
        led.chain.transact(led.c["market"], "settle", [s.sid, blob_hh, *shifted], led.roles["dso"])
    assert err.value.error == "BadLength"
    assert _snapshot(led, s.households, s.sid) == before


def test_escrow_withdrawal_before_settlement(session_factory: Callable[..., Session]) -> None:
    s = session_factory("attested")
    led, h = s.led, s.households[0]
    before = _snapshot(led, s.households, s.sid)
    assert led.escrow_of(s.sid, h)[1] > 0
    with pytest.raises(ContractRevert) as err:
        led.withdraw(h)
    assert err.value.error == "NothingOwed"
    assert _snapshot(led, s.households, s.sid) == before


def test_clearing_with_a_forged_book_or_sort(session_factory: Callable[..., Session]) -> None:
    s = session_factory("revealed")
    led = s.led
    before = _snapshot(led, s.households, s.sid)
    hh, vectors = led.revealed_book(s.sid)
    blob_hh = b"".join(bytes.fromhex(h[2:]) for h in hh)
    # a forged book: household 0 pretends to bid more
    forged = [OrderVector((SlotOrder(9000, 900_000), vectors[0].slots[1])), *vectors[1:]]
    with pytest.raises(ContractRevert) as err:
        led.chain.transact(
            led.c["market"], "clear",
            [s.sid, blob_hh, b"".join(v.encode() for v in forged), b""], led.roles["auctioneer"],
        )  # fmt: skip
    assert err.value.error == "BookMismatch"
    # a wrong sort: slot 0 buyers in ascending price order
    good = led.c["market"]
    book = bytearray(sort_book(vectors, 2))
    book[4:8] = book[6:8] + book[4:6]
    with pytest.raises(ContractRevert) as err:
        led.chain.transact(
            good,
            "clear",
            [s.sid, blob_hh, b"".join(v.encode() for v in vectors), bytes(book)],
            led.roles["auctioneer"],
        )
    assert err.value.error == "BadSort"
    assert _snapshot(led, s.households, s.sid) == before


def test_reentrancy_on_payouts_is_refused(led: Web3Ledger) -> None:
    chain = led.chain
    admin = led.roles["admin"]
    token = chain.deploy("ReentrantToken", admin)
    market = chain.deploy(
        "VdgMarket", admin, led.c["registry"].address, token.address, led.c["energy"].address,
        led.roles["treasury"].address,
    )  # fmt: skip
    attacker = chain.deploy("Attacker", admin)
    led.grant(attacker.address, HOUSEHOLD)
    chain.transact(token, "mint", [attacker.address, 10**12], admin)
    auctioneer = led.roles["auctioneer"]
    receipt = chain.transact(
        market, "openSession", [0, 1, chain.now() + 60, chain.now() + 120, 0], auctioneer
    )
    sid = market.events.SessionOpened().process_receipt(receipt)[0]["args"]["session"]
    orders = OrderVector((SlotOrder(1000, 300_000),)).encode()
    salt = keccak(text="salt")
    h = commitment(sid, attacker.address, orders, salt)

    def as_attacker(fn: str, args: list[object]) -> None:
        chain.transact(attacker, "call", [market.address, market.encode_abi(fn, args=args)], admin)

    as_attacker("commit", [sid, h])
    chain.advance_time(61)
    as_attacker("reveal", [sid, orders, salt])
    chain.advance_time(61)
    hh = bytes.fromhex(attacker.address[2:])
    chain.transact(market, "clear", [sid, hh, orders, b"\x00\x01\x00\x00\x00\x00"], auctioneer)
    chain.transact(market, "settle", [sid, hh, b"\x00" * 8, b"\x00" * 4], led.roles["dso"])
    owed = chain.call(market, "owed", [attacker.address])
    assert owed == 1000 * 300_000  # nothing traded: the whole escrow comes back
    chain.transact(
        token,
        "arm",
        [market.address, attacker.address, market.encode_abi("withdraw", args=[])],
        admin,
    )
    before = chain.call(token, "balanceOf", [attacker.address])
    as_attacker("withdraw", [])
    assert chain.call(token, "attempted") is True
    assert chain.call(token, "reentrySucceeded") is False
    assert decode_revert(bytes(chain.call(token, "reentryRevert"))).error == "ReentrantCall"
    # paid exactly once, nothing left owed, the market kept nothing back
    assert chain.call(token, "balanceOf", [attacker.address]) == before + owed
    assert chain.call(market, "owed", [attacker.address]) == 0
    assert chain.call(token, "balanceOf", [market.address]) == 0


def test_zero_quantities_are_refused(led: Web3Ledger) -> None:
    (h,) = led.add_households(1, credit_eur=10)
    sid = led.open_session(0, 2, commit_s=60)
    zero = OrderVector.from_kwh([0.0, 0.0], [0.2, 0.2])
    led.commit(sid, h, zero)
    led.advance_time(61)
    before = _snapshot(led, [h], sid)
    with pytest.raises(ContractRevert) as err:
        led.reveal(sid, h)
    assert err.value.error == "EmptyOrder"
    assert _snapshot(led, [h], sid) == before
    with pytest.raises(ContractRevert) as err:
        led.chain.transact(led.c["credit"], "mint", [h, 0], led.roles["admin"])
    assert err.value.error == "ZeroAmount"
    assert _snapshot(led, [h], sid) == before


def test_overflowing_quantities_are_refused(led: Web3Ledger) -> None:
    (h,) = led.add_households(1, credit_eur=10)
    sid = led.open_session(0, 1, commit_s=60)
    # int32 minimum: its magnitude does not fit the contract's range
    raw = (-(2**31)).to_bytes(4, "big", signed=True) + (1).to_bytes(4, "big")
    salt = b"\x07" * 32
    led.chain.transact(
        led.c["market"], "commit", [sid, commitment(sid, h, raw, salt)], led.chain.key(h)
    )
    led.advance_time(61)
    before = _snapshot(led, [h], sid)
    with pytest.raises(ContractRevert) as err:
        led.chain.transact(led.c["market"], "reveal", [sid, raw, salt], led.chain.key(h))
    assert err.value.error == "QuantityOutOfRange"
    # attestations beyond ±(2**31 − 1) Wh
    for value in (2**31, -(2**31), 2**255 - 1):
        with pytest.raises(ContractRevert) as err:
            led.attest_raw(3, [led.meter_of(h)], [value], led.roles["dso"].address)
        assert err.value.error == "QuantityOutOfRange"
    # an escrow that exceeds the household's credit reverts in the token, nothing moves
    assert _snapshot(led, [h], sid) == before
    assert led.attestation(h, 3) == (False, 0)


def test_client_refuses_unrepresentable_values(led: Web3Ledger) -> None:
    (h,) = led.add_households(1)
    before = _snapshot(led, [h])
    with pytest.raises(FixedPointError) as err:
        OrderVector.from_kwh([3e6], [0.1])  # 3 GWh does not fit int32 Wh
    assert err.value.field == "qty_kwh[0]"
    with pytest.raises(FixedPointError):
        OrderVector.from_kwh([1.0], [-0.1])
    with pytest.raises(FixedPointError):
        OrderVector.from_kwh([float("nan")], [0.1])
    with pytest.raises(FixedPointError) as err:
        led.mint_credit(h, -5.0)
    assert err.value.field == "amount_eur"
    with pytest.raises(FixedPointError):
        led.attest(1, {h: float("inf")})
    assert _snapshot(led, [h]) == before


def test_escrow_beyond_balance_reverts_in_the_token(led: Web3Ledger) -> None:
    (h,) = led.add_households(1, credit_eur=0.1)
    sid = led.open_session(0, 1, commit_s=60)
    led.commit(sid, h, OrderVector.from_kwh([10.0], [1.0]))  # 10 EUR escrow
    led.advance_time(61)
    before = _snapshot(led, [h], sid)
    with pytest.raises(ContractRevert) as err:
        led.reveal(sid, h)
    assert err.value.error == "InsufficientBalance"
    assert _snapshot(led, [h], sid) == before
    assert led.chain.call(led.c["credit"], "allowance", [h, led.c["market"].address]) == MAX_UINT
