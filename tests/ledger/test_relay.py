"""Transactions the households sign themselves, relayed by the operator after checks."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any

import pytest
from eth_account import Account

from ledger.chain import ChainConfig
from ledger.client import MAX_UINT, Web3Ledger
from ledger.errors import LedgerError, RawTxError
from ledger.orders import OrderVector, SlotOrder, commitment
from ledger.relay import Expected, RawTxRelay
from ledger.wallet import TxTerms, Wallet, load_keys, simulation_key, wallets_for

_seeds = itertools.count(5000)
GAS = 300_000
ORDERS = OrderVector((SlotOrder(1500, 250_000), SlotOrder(-800, 90_000)))
SALT = b"\x07" * 32


@dataclass
class Setup:
    led: Web3Ledger
    relay: RawTxRelay
    wallet: Wallet
    sid: int

    def terms(self, to: str | None = None, **over: Any) -> TxTerms:
        t = TxTerms(self.led.chain.chain_id, to or self.led.c["market"].address,
                    self.relay.next_nonce(self.wallet.address), GAS,
                    self.led.chain.fee_cap_wei())
        return replace(t, **over)

    def expect(self, fn: str, args: dict[str, Any], contract: str = "VdgMarket",
               to: str | None = None) -> Expected:
        return Expected(self.wallet.address, contract, to or self.led.c["market"].address, fn,
                        args, GAS, self.led.chain.fee_cap_wei() * 2, self.sid)

    def approve(self) -> None:
        market = self.led.c["market"].address
        raw = self.wallet.sign(self.terms(self.led.c["credit"].address), "Credit", "approve",
                               [market, MAX_UINT])
        self.relay.relay(raw, self.expect("approve", {"spender": market}, "Credit",
                                          self.led.c["credit"].address))

    def digest(self) -> bytes:
        return commitment(self.sid, self.wallet.address, ORDERS.encode(), SALT)


@pytest.fixture(params=["embedded", pytest.param("anvil", marks=pytest.mark.chain)])
def setup(request: pytest.FixtureRequest) -> Setup:
    """A ledger with one externally keyed household, registered and approved, a session open."""
    if request.param == "anvil":
        led = Web3Ledger.deploy(ChainConfig(url=request.getfixturevalue("anvil_url"),
                                            seed=next(_seeds)))
    else:
        led = Web3Ledger.deploy()
    wallet = Wallet(Account.create())
    led.register_households([wallet.address], credit_eur=10.0)
    relay = RawTxRelay(led.chain)
    sid = led.open_session(100, 2, commit_s=600, reveal_s=600, penalty_eur_per_kwh=0.5)
    s = Setup(led, relay, wallet, sid)
    s.approve()
    return s


def test_presigned_commit_and_reveal_are_accepted(setup: Setup) -> None:
    s, led = setup, setup.led
    assert not led.chain.holds_key(s.wallet.address)
    digest = s.digest()
    raw = s.wallet.sign(s.terms(), "VdgMarket", "commit", [s.sid, digest], s.sid)
    rec = s.relay.relay(raw, s.expect("commit", {"sid": s.sid, "h": digest}))
    assert rec.call == "VdgMarket.commit"
    assert led.events("market", "Committed", session=s.sid)[0]["household"] == s.wallet.address
    led.advance_time(601)
    raw = s.wallet.sign(s.terms(), "VdgMarket", "reveal", [s.sid, ORDERS.encode(), SALT], s.sid)
    s.relay.relay(raw, s.expect("reveal", {"sid": s.sid, "orders": ORDERS.encode(),
                                           "salt": SALT}))
    revealed, escrow = led.escrow_of(s.sid, s.wallet.address)
    assert revealed
    assert escrow == 1500 * 250_000 + 800 * 500_000  # buy qty·price + sell qty·penalty (nano)


def _commit_state(s: Setup) -> tuple[int, int, int]:
    led = s.led
    return (led.chain.pending_nonce(s.wallet.address), len(led.gas_log),
            len(led.events("market", "Committed", session=s.sid)))


@pytest.mark.parametrize(("fault", "field"), [
    ("sender", "sender"), ("contract", "to"), ("session", "session"), ("chain", "chainId"),
    ("signature", "signature"), ("function", "function"), ("nonce", "nonce"), ("gas", "gas"),
    ("garbage", "raw"), ("tampered", "sender"),
])
def test_bad_raw_commit_is_refused_and_nothing_sent(setup: Setup, fault: str,
                                                    field: str) -> None:
    s = setup
    digest = s.digest()
    wallet, terms, fn, args = s.wallet, s.terms(), "commit", [s.sid, digest]
    if fault == "sender":
        wallet = Wallet(Account.create())
        terms = replace(terms, nonce=0)
    elif fault == "contract":
        terms = s.terms(to=s.led.c["billing"].address)
    elif fault == "session":
        args = [s.sid + 1, digest]
    elif fault == "chain":
        terms = replace(terms, chain_id=terms.chain_id + 1)
    elif fault == "function":
        fn, args = "withdraw", []
    elif fault == "nonce":
        terms = replace(terms, nonce=terms.nonce + 5)
    elif fault == "gas":
        terms = replace(terms, gas=GAS + 1)
    raw = wallet.sign(terms, "VdgMarket", fn, args, s.sid)
    if fault == "signature":  # r = 5 is no curve point's x: no public key recovers
        raw = _with_signature(raw, r=5, s_=1)
    elif fault == "tampered":  # another valid signature: it recovers somebody else
        raw = _with_signature(raw, r=2, s_=1)
    elif fault == "garbage":
        raw = b"\x02" + b"\xff" * 40
    before = _commit_state(s)
    with pytest.raises(RawTxError) as info:
        s.relay.relay(raw, s.expect("commit", {"sid": s.sid, "h": digest}))
    assert info.value.field == field
    assert field in str(info.value)
    assert _commit_state(s) == before


def _with_signature(raw: bytes, r: int, s_: int) -> bytes:
    import rlp  # noqa: PLC0415 (eth_account's dependency)

    items = rlp.decode(raw[1:])
    items[-2] = r.to_bytes(32, "big").lstrip(b"\0")
    items[-1] = s_.to_bytes(32, "big").lstrip(b"\0")
    return raw[:1] + rlp.encode(items)


def test_replayed_raw_tx_is_idempotent_and_a_second_commit_refused(setup: Setup) -> None:
    s = setup
    digest = s.digest()
    raw = s.wallet.sign(s.terms(), "VdgMarket", "commit", [s.sid, digest], s.sid)
    want = s.expect("commit", {"sid": s.sid, "h": digest})
    first = s.relay.relay(raw, want)
    before = _commit_state(s)
    assert s.relay.relay(raw, want) == first  # same bytes: same record, nothing sent
    assert _commit_state(s) == before
    other = Wallet(Account.from_key(b"\x01" * 32))  # a second signature by another key
    assert other.sign(s.terms(), "VdgMarket", "commit", [s.sid, digest]) != raw
    again = _resigned(s, digest)
    with pytest.raises(RawTxError, match="relayed already") as info:
        s.relay.relay(again, want)
    assert info.value.field == "nonce"
    assert _commit_state(s) == before


def _resigned(s: Setup, digest: bytes) -> bytes:
    """The same household signs a second commit of the session with its next nonce."""
    fresh = Wallet(s.wallet._account)
    return fresh.sign(s.terms(), "VdgMarket", "commit", [s.sid, digest], s.sid)


def test_wallet_answers_a_repeated_request_with_the_same_bytes() -> None:
    w = Wallet(simulation_key(3, "h001"))
    terms = TxTerms(1, "0x" + "11" * 20, 4, GAS, 10**9)
    raw = w.sign(terms, "VdgMarket", "commit", [7, b"\x01" * 32], 7)
    assert w.sign(replace(terms, nonce=9), "VdgMarket", "commit", [7, b"\x01" * 32], 7) == raw
    assert w.nonce == 5
    assert simulation_key(3, "h001").address == w.address != simulation_key(4, "h001").address
    assert "0x" not in repr(w).replace(w.address, "")  # never the key


def test_key_file_gives_each_participant_its_key(tmp_path: Any) -> None:
    a, b = Account.create(), Account.create()
    path = tmp_path / "keys.json"
    path.write_text(f'{{"h000": "{a.key.hex()}", "h001": "0x{b.key.hex()}"}}')
    keys = load_keys(path)
    wallets = wallets_for(["h000", "h001"], 0, keys)
    assert [w.address for w in wallets.values()] == [a.address, b.address]
    with pytest.raises(LedgerError, match="no key for participant 'h002'"):
        wallets_for(["h002"], 0, keys)
    path.write_text('{"h000": "0x1234"}')
    with pytest.raises(LedgerError, match="the key of 'h000' is not") as info:
        load_keys(path)
    assert "1234" not in str(info.value)
