"""A market participant's own key: where it comes from, the calldata it signs, signing.

A participant that holds its key signs its market transactions itself and hands the operator
only the raw signed bytes, which the operator checks and relays (:mod:`ledger.relay`); the key
never leaves the participant's process. The operator fixes everything but the call itself in
:class:`TxTerms` (chain, contract, nonce, gas) because the participant cannot reach the chain.

Keys come from a key file (``{"h000": "0x…", ...}``, path in ``--key-file`` or
``VDG_KEY_FILE``) or, for the simulated day only, from :func:`simulation_key` — derived from
the scenario seed and the participant id, which are public, so anybody can recompute them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import function_abi_to_4byte_selector, keccak, to_checksum_address

from ledger import artifacts
from ledger.errors import LedgerError, RawTxError

log = logging.getLogger(__name__)

KEY_FILE_ENV = "VDG_KEY_FILE"
"""Environment variable naming a key file when ``--key-file`` is not given."""


@cache
def _functions(contract: str) -> dict[str, tuple[bytes, tuple[str, ...], tuple[str, ...]]]:
    """Selector, input types and input names of each function of a compiled contract."""
    out = {}
    for item in artifacts.load(contract).abi:
        if item.get("type") == "function":
            types = tuple(i["type"] for i in item["inputs"])
            names = tuple(i["name"] for i in item["inputs"])
            out[item["name"]] = (function_abi_to_4byte_selector(cast(Any, item)), types, names)
    return out


def encode_call(contract: str, fn: str, args: Sequence[Any]) -> bytes:
    """Calldata of ``contract.fn(*args)`` from the compiled ABI."""
    selector, types, _ = _functions(contract)[fn]
    return selector + abi_encode(list(types), list(args))


def decode_call(contract: str, data: bytes) -> tuple[str, dict[str, Any]]:
    """The function and its arguments (by ABI name) of calldata to ``contract``.

    Raises:
        RawTxError: the selector is not one of the contract's functions or the arguments do
            not decode.
    """
    for fn, (selector, types, names) in _functions(contract).items():
        if data[:4] == selector:
            try:
                values = abi_decode(list(types), data[4:], strict=True)
            except Exception as exc:  # eth_abi raises several decoding errors
                raise RawTxError("data", "0x" + data[:36].hex(),
                                 f"arguments of {contract}.{fn} do not decode: {exc}") from exc
            return fn, dict(zip(names, values, strict=True))
    raise RawTxError("data", "0x" + data[:4].hex(), f"not a function of {contract}")


def simulation_key(seed: int, participant: str) -> LocalAccount:
    """A participant's key derived from the scenario seed and its id — simulation only.

    Both inputs are public, so anybody can recompute the key: fit for a simulated day, never
    for money that matters.
    """
    return Account.from_key(keccak(text=f"vdg-participant-key:{seed}:{participant}"))


def load_keys(path: Path) -> dict[str, LocalAccount]:
    """Participants' keys from a JSON file ``{"h000": "0x<64 hex>", ...}``.

    Raises:
        LedgerError: the file is missing, not a JSON object, or a key is not a private key
            (the message names the participant, never the key).
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise LedgerError(f"key file {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise LedgerError(f"key file {path}: not JSON ({exc.msg}, line {exc.lineno})") from exc
    if not isinstance(data, dict):
        raise LedgerError(f"key file {path}: expected an object participant -> key")
    out = {}
    for who, key in data.items():
        try:
            out[str(who)] = Account.from_key(key)
        except Exception as exc:  # eth_keys raises ValueError or its own ValidationError
            raise LedgerError(f"key file {path}: the key of {who!r} is not a 32-byte private "
                              "key in hex") from exc
    return out


@dataclass(frozen=True, slots=True)
class TxTerms:
    """What the operator fixes for one transaction of a participant.

    Attributes:
        chain_id: the chain's id (replay protection across chains).
        to: the contract called.
        nonce: the account's next nonce as the chain sees it.
        gas: the gas limit.
        max_fee_wei: ``maxFeePerGas``.
        priority_fee_wei: ``maxPriorityFeePerGas``.
    """

    chain_id: int
    to: str
    nonce: int
    gas: int
    max_fee_wei: int
    priority_fee_wei: int = 1


class Wallet:
    """One participant's key; signs the calls it decides to make and nothing else.

    Args:
        account: the participant's key.

    Attributes:
        nonce: the next nonce as far as this wallet knows (``None`` until told).
        signed: transactions signed, by (function, session) — the same request is answered
            with the same bytes, so a resend can never become a second transaction.
    """

    def __init__(self, account: LocalAccount) -> None:
        self._account = account
        self.nonce: int | None = None
        self.signed: dict[tuple[str, int], bytes] = {}

    def __repr__(self) -> str:
        return f"Wallet({self.address})"

    @property
    def address(self) -> str:
        """The account's checksum address."""
        return str(self._account.address)

    def sign(self, terms: TxTerms, contract: str, fn: str, args: Sequence[Any],
             session: int = -1) -> bytes:
        """Sign ``contract.fn(*args)`` under the operator's terms; returns the raw bytes.

        Args:
            terms: chain, contract address, nonce and gas fixed by the operator.
            contract: the artifact name (``VdgMarket``, ``Credit``).
            fn: the function.
            args: its arguments.
            session: the market session it belongs to (-1: none); a second request for the
                same (function, session) gets the first signature back.
        """
        key = (fn, session)
        if key in self.signed:
            return self.signed[key]
        if self.nonce is not None and terms.nonce != self.nonce:
            log.info("%s: nonce %d from the operator, %d counted here; using the operator's",
                     self.address, terms.nonce, self.nonce)
        tx: dict[str, Any] = {"to": to_checksum_address(terms.to), "value": 0,
              "data": encode_call(contract, fn, args), "gas": terms.gas,
              "nonce": terms.nonce, "chainId": terms.chain_id,
              "maxFeePerGas": terms.max_fee_wei, "maxPriorityFeePerGas": terms.priority_fee_wei}
        raw = bytes(self._account.sign_transaction(tx).raw_transaction)
        self.nonce = terms.nonce + 1
        self.signed[key] = raw
        return raw


def wallets_for(participants: Sequence[str], seed: int,
                keys: Mapping[str, LocalAccount] | None) -> dict[str, Wallet]:
    """Wallets of ``participants``: from ``keys`` when given (all must be there), else derived.

    Raises:
        LedgerError: ``keys`` lacks a participant.
    """
    if keys is None:
        return {p: Wallet(simulation_key(seed, p)) for p in participants}
    missing = [p for p in participants if p not in keys]
    if missing:
        raise LedgerError(f"key file has no key for participant {missing[0]!r}")
    return {p: Wallet(keys[p]) for p in participants}
