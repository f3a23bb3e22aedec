"""The operator's relay of transactions its participants signed themselves.

A participant that cannot reach the chain (the embedded chain lives in the operator's process;
a node may sit behind the operator) signs its call and sends the raw bytes over XMPP; the
operator checks them here and sends them with ``eth_sendRawTransaction``. Nothing is sent
unless every check passes:

* the bytes are an EIP-1559 transaction whose signature recovers an address (``raw``,
  ``signature``);
* the chain id is this chain's (``chainId``), the recipient the expected contract (``to``), no
  ether attached (``value``);
* the sender is the registered account of the participant the message came from (``sender``);
* the calldata decodes against the contract's ABI to the expected function (``function``) with
  the expected arguments, the market session first (``session``, then each argument by name);
* the nonce is the account's next one (``nonce``) and gas within the operator's terms (``gas``,
  ``maxFeePerGas``).

Relaying is idempotent: the same bytes again return the first result and send nothing; another
transaction for a (function, session, sender) already relayed is refused. A refusal raises
:class:`ledger.errors.RawTxError` naming the field and its value.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes

from ledger.chain import Chain, GasRecord, SignedTx
from ledger.errors import RawTxError
from ledger.wallet import decode_call

log = logging.getLogger(__name__)

MAX_RAW_BYTES = 4096


@dataclass(frozen=True, slots=True)
class DecodedTx:
    """A raw transaction taken apart (nothing checked beyond its form and signature).

    Attributes:
        tx_hash: keccak of the raw bytes, hex.
        sender: the address the signature recovers.
        nonce, to, chain_id, gas, max_fee_wei, value: the transaction's fields.
        data: the calldata.
        fn: the contract function the calldata calls.
        args: its arguments by ABI name.
    """

    tx_hash: str
    sender: str
    nonce: int
    to: str
    chain_id: int
    gas: int
    max_fee_wei: int
    value: int
    data: bytes
    fn: str
    args: Mapping[str, Any]


def decode_raw(raw: bytes, contract: str) -> DecodedTx:
    """Take a signed EIP-1559 transaction to ``contract`` (artifact name) apart.

    Raises:
        RawTxError: ``raw`` (not a typed transaction), ``signature`` (no sender recovers) or
            ``data`` (not a call of the contract).
    """
    if not 0 < len(raw) <= MAX_RAW_BYTES:
        raise RawTxError("raw", f"{len(raw)} bytes", f"expected 1..{MAX_RAW_BYTES} bytes")
    try:
        fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    except Exception as exc:  # rlp and eth_account raise several decoding errors
        raise RawTxError("raw", "0x" + raw[:8].hex() + "…",
                         f"not a signed EIP-1559 transaction: {exc}") from exc
    if fields.get("type") != 2:
        raise RawTxError("type", fields.get("type"), "expected an EIP-1559 transaction (2)")
    try:
        sender = Account.recover_transaction(raw)
    except Exception as exc:  # eth_keys: BadSignature, ValidationError
        raise RawTxError("signature", f"r={fields['r']:#x} s={fields['s']:#x}",
                         f"no sender recovers: {exc}") from exc
    to = fields.get("to") or b""
    data = bytes(fields["data"])
    fn, args = decode_call(contract, data)
    return DecodedTx(
        tx_hash="0x" + keccak(raw).hex(), sender=to_checksum_address(sender),
        nonce=int(fields["nonce"]), to=to_checksum_address(to) if to else "",
        chain_id=int(fields["chainId"]), gas=int(fields["gas"]),
        max_fee_wei=int(fields["maxFeePerGas"]), value=int(fields["value"]), data=data, fn=fn,
        args=args)


@dataclass(frozen=True, slots=True)
class Expected:
    """What the operator expects a participant's transaction to be.

    Attributes:
        sender: the participant's registered address.
        contract: the artifact name of the contract called (``VdgMarket``, ``Credit``).
        to: its deployed address.
        fn: the function.
        args: the expected arguments by ABI name (those not named are not checked); the
            market session is ``sid``.
        gas_max: the highest gas limit accepted.
        max_fee_wei: the highest ``maxFeePerGas`` accepted.
        session: the market session it belongs to (-1: none), for idempotency.
    """

    sender: str
    contract: str
    to: str
    fn: str
    args: Mapping[str, Any]
    gas_max: int
    max_fee_wei: int
    session: int = -1


def _shown(name: str) -> str:
    return "session" if name == "sid" else name


@dataclass
class RawTxRelay:
    """Checks and sends participants' pre-signed transactions on one chain.

    Args:
        chain: the operator's chain connection.
    """

    chain: Chain
    _nonces: dict[str, int] = field(default_factory=dict, init=False)
    _sent: dict[str, GasRecord] = field(default_factory=dict, init=False)
    _done: dict[tuple[str, int, str], str] = field(default_factory=dict, init=False)

    @property
    def relayed(self) -> Mapping[str, GasRecord]:
        """Every transaction relayed so far, by transaction hash as in the gas log."""
        return {r.tx_hash: r for r in self._sent.values()}

    def next_nonce(self, address: str) -> int:
        """The nonce the next transaction of ``address`` must carry."""
        a = to_checksum_address(address)
        if a not in self._nonces:
            self._nonces[a] = self.chain.pending_nonce(a)
        return self._nonces[a]

    def check(self, raw: bytes, want: Expected) -> DecodedTx:
        """Decode ``raw`` and check it against ``want``; sends nothing.

        Raises:
            RawTxError: the first field that differs, with its value.
        """
        tx = decode_raw(raw, want.contract)
        if tx.chain_id != self.chain.chain_id:
            raise RawTxError("chainId", tx.chain_id, f"this chain is {self.chain.chain_id}")
        if tx.to != to_checksum_address(want.to):
            raise RawTxError("to", tx.to, f"expected the {want.contract} contract {want.to}")
        if tx.sender != to_checksum_address(want.sender):
            raise RawTxError("sender", tx.sender,
                             f"the signature is not by the registered account {want.sender}")
        if tx.value != 0:
            raise RawTxError("value", tx.value, "no ether may be attached")
        if tx.fn != want.fn:
            raise RawTxError("function", tx.fn, f"expected {want.contract}.{want.fn}")
        for name, value in want.args.items():
            got = tx.args[name]
            same = (got.lower() == str(value).lower() if isinstance(got, str) else got == value)
            if not same:
                raise RawTxError(_shown(name), _plain(got), f"expected {_plain(value)!r}")
        if tx.gas > want.gas_max:
            raise RawTxError("gas", tx.gas, f"above the operator's limit {want.gas_max}")
        if tx.max_fee_wei > want.max_fee_wei:
            raise RawTxError("maxFeePerGas", tx.max_fee_wei,
                             f"above the operator's cap {want.max_fee_wei}")
        return tx

    def relay(self, raw: bytes, want: Expected) -> GasRecord:
        """Check ``raw`` against ``want`` and send it; the same bytes again return the same record.

        Raises:
            RawTxError: a check failed, or another transaction for the same (function, session,
                sender) was relayed already, or the nonce is not the account's next one.
            ContractRevert: the transaction was mined and reverted.
        """
        tx_hash = "0x" + keccak(raw).hex()
        if tx_hash in self._sent:
            log.info("raw transaction %s relayed already; not sent again", tx_hash)
            return self._sent[tx_hash]
        tx = self.check(raw, want)
        key = (tx.fn, want.session, tx.sender)
        if key in self._done:
            raise RawTxError("nonce", tx.nonce, f"{tx.fn} of session {want.session} from "
                             f"{tx.sender} was relayed already as {self._done[key]}")
        expected_nonce = self.next_nonce(tx.sender)
        if tx.nonce != expected_nonce:
            raise RawTxError("nonce", tx.nonce, f"the account's next nonce is {expected_nonce}")
        label = f"{want.contract}.{tx.fn}"
        signed = SignedTx.external(raw, {"to": tx.to, "data": tx.data, "gas": tx.gas}, tx.sender,
                                   label)
        try:
            (record,) = self.chain.send_batch([signed])
        except Exception:
            self._nonces.pop(tx.sender, None)  # mined and reverted, or refused: ask the node
            raise
        self._nonces[tx.sender] = expected_nonce + 1
        self._sent[tx_hash] = record
        self._done[key] = tx_hash
        return record


def _plain(value: Any) -> Any:
    return "0x" + value.hex() if isinstance(value, bytes) else value
