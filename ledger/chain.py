"""Chain access: backends, local signing, sending with retries, revert decoding, gas records.

Two backends reach a chain through the same :class:`Chain`:

* ``embedded`` — web3's ``EthereumTesterProvider`` (py-evm in this process), the default;
* ``url`` — any JSON-RPC node (anvil, geth, besu) given by its HTTP URL.

Every account the ledger acts for is a local key (deterministic from a seed, so a seeded run
reproduces its addresses); transactions are signed here and sent raw. Transactions signed
elsewhere (households holding their own keys) are sent as they are (:meth:`SignedTx.external`,
checked first by :mod:`ledger.relay`). Accounts are funded from
the node's first unlocked account (the embedded chain's and anvil's are) or from a funded key.
"""

from __future__ import annotations

import ast
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, partial
from typing import Any, cast

from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import TransactionNotFound
from web3.middleware import ExtraDataToPOAMiddleware
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import RPCEndpoint, TxParams

from ledger import artifacts
from ledger.errors import ChainUnavailableError, ContractRevert, LedgerError

logger = logging.getLogger(__name__)

DEFAULT_GAS_LIMIT = 15_000_000
FUND_WEI = 10**19  # 10 ether per account: gas on a private chain
POOL_CHUNK = 256
"""Transactions sent and mined together at most (:meth:`Chain.send_batch`, :meth:`Chain.fund`):
anvil's pool takes a sender's chain of pending transactions in time quadratic in its length
(funding 2,000 accounts in one go took 5.6 s, 4,000 took 25 s; 500, 0.6 s)."""
_TRANSIENT = (ConnectionError, TimeoutError, OSError)


@dataclass(frozen=True, slots=True)
class GasRecord:
    """Gas used by one transaction.

    Attributes:
        call: ``"Contract.function"`` (or ``"Contract.deploy"``).
        gas_used: gas units charged.
        tx_hash: the transaction hash, hex.
        block: the block number it was mined in.
    """

    call: str
    gas_used: int
    tx_hash: str
    block: int


@dataclass(frozen=True, slots=True)
class ExternalSigner:
    """The address of an account whose key this process does not hold."""

    address: str


@dataclass(frozen=True, slots=True)
class _Raw:
    raw_transaction: bytes


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A transaction signed ahead of sending.

    Attributes:
        signed: the signed transaction (``signed.raw_transaction`` are the bytes sent).
        tx: its fields (``to``, ``data``, ``value``, ``gas``), replayed to decode a revert.
        acct: the signer: a local key, or an :class:`ExternalSigner` for a transaction signed
            elsewhere and relayed here.
        label: ``"Contract.function"`` for the gas log.
    """

    signed: Any
    tx: dict[str, Any]
    acct: LocalAccount | ExternalSigner
    label: str

    @classmethod
    def external(cls, raw: bytes, tx: dict[str, Any], sender: str, label: str) -> SignedTx:
        """A transaction signed by an account whose key stays with its owner."""
        return cls(_Raw(bytes(raw)), tx, ExternalSigner(to_checksum_address(sender)), label)


@dataclass(frozen=True, slots=True)
class ChainConfig:
    """Where the chain is.

    Attributes:
        url: JSON-RPC HTTP URL, or ``None`` for the embedded chain.
        seed: seed of the ledger's local keys.
        funder_key: a funded private key (hex) for nodes without an unlocked account.
        retries: attempts for a transient RPC error (connection reset, timeout).
        timeout_s: seconds to wait for a receipt.
        poa: the node runs a proof-of-authority chain (geth clique, besu IBFT/QBFT) whose
            blocks carry long ``extraData``; web3's ``ExtraDataToPOAMiddleware`` is injected.
    """

    url: str | None = None
    seed: int = 0
    funder_key: str | None = None
    retries: int = 3
    timeout_s: float = 60.0
    poa: bool = False


@cache
def _error_table() -> dict[bytes, tuple[str, list[str]]]:
    table: dict[bytes, tuple[str, list[str]]] = {}
    for name in artifacts.names():
        for item in artifacts.load(name).abi:
            if item.get("type") == "error":
                types = [i["type"] for i in item["inputs"]]
                sig = f"{item['name']}({','.join(types)})"
                table[keccak(text=sig)[:4]] = (item["name"], types)
    return table


_ERROR_STRING = keccak(text="Error(string)")[:4]
_PANIC = keccak(text="Panic(uint256)")[:4]


def decode_revert(data: bytes) -> ContractRevert:
    """Turn revert data into a :class:`ContractRevert` naming the custom error and its args."""
    if not data:
        return ContractRevert("reverted without reason")
    sel, body = data[:4], data[4:]
    if sel == _ERROR_STRING:
        (msg,) = abi_decode(["string"], body)
        return ContractRevert(msg, "Error", (msg,))
    if sel == _PANIC:
        (code,) = abi_decode(["uint256"], body)
        return ContractRevert(f"Panic(0x{code:02x})", "Panic", (code,))
    table = _error_table()
    if sel in table:
        name, types = table[sel]
        raw = abi_decode(types, body) if types else ()
        args = tuple(
            to_checksum_address(a) if t == "address" else a for t, a in zip(types, raw, strict=True)
        )
        shown = ", ".join(str(a) for a in args)
        return ContractRevert(f"{name}({shown})", name, args)
    return ContractRevert(f"reverted with unknown data 0x{data.hex()}")


def revert_data(exc: BaseException) -> bytes | None:
    """Extract revert data from the exception shapes of web3, eth-tester and JSON-RPC nodes."""
    found = _data_attribute(getattr(exc, "data", None))
    if found is None and exc.args:
        found = _data_in_text(str(exc.args[0]))
    return found


def _data_attribute(data: object) -> bytes | None:
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if isinstance(data, dict) and isinstance(data.get("data"), str):
        return bytes.fromhex(data["data"].removeprefix("0x"))
    return None


def _data_in_text(text: str) -> bytes | None:
    marker = "execution reverted: "
    if marker in text:
        tail = text.split(marker, 1)[1].strip()
        if tail.startswith(("b'", 'b"')):
            value = ast.literal_eval(tail)
            return value if isinstance(value, bytes) else None
        if tail.startswith("0x"):
            return bytes.fromhex(tail[2:])
    return b"" if text.strip() == "execution reverted" else None


@dataclass
class Chain:
    """A connection with local keys, nonces and a gas log.

    Attributes:
        w3: the web3 instance.
        gas_log: every mined transaction's gas, in order.
    """

    config: ChainConfig = field(default_factory=ChainConfig)
    w3: Web3 = field(init=False)
    gas_log: list[GasRecord] = field(default_factory=list, init=False)
    _keys: dict[str, LocalAccount] = field(default_factory=dict, init=False)
    _nonces: dict[str, int] = field(default_factory=dict, init=False)
    _n_keys: int = field(default=0, init=False)
    _chain_id: int = field(default=0, init=False)
    _tester: Any = field(default=None, init=False)
    _fee_cap: int = field(default=0, init=False)
    _fee_uses: int = field(default=0, init=False)
    _can_mine: bool | None = field(default=None, init=False)
    _can_pause: bool | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.config.url is None:
            provider = EthereumTesterProvider()
            self._tester = provider.ethereum_tester
            self.w3 = Web3(provider)
        else:
            # web3 asks for the chain id before every transaction and call: one round trip
            # each unless cached (the only request cached: the answer cannot change)
            # a request waits for the node at least as long as for a receipt: anvil answers a
            # transaction after mining it, which for 10⁹ gas takes minutes on a loaded machine
            timeout_s = max(60.0, self.config.timeout_s)
            http = Web3.HTTPProvider(self.config.url, request_kwargs={"timeout": timeout_s},
                                     cache_allowed_requests=True,
                                     cacheable_requests={RPCEndpoint("eth_chainId")})
            self.w3 = Web3(http)
            if self.config.poa:
                self.w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
            try:
                self.w3.eth.chain_id  # noqa: B018 (probe the node)
            except _TRANSIENT as exc:
                raise ChainUnavailableError(
                    f"no JSON-RPC node at {self.config.url}: {exc}"
                ) from exc
        self._chain_id = self._retry(lambda: self.w3.eth.chain_id)
        logger.info("connected to chain %d (%s)", self._chain_id, self.config.url or "embedded")

    @property
    def embedded(self) -> bool:
        """True on the in-process chain."""
        return self.config.url is None

    @property
    def chain_id(self) -> int:
        """The chain id."""
        return self._chain_id

    # ------------------------------------------------------------------------ accounts

    def new_account(self, fund: bool = True) -> LocalAccount:
        """A fresh local key, deterministic in the seed and creation order, funded with gas."""
        material = keccak(text=f"vdg-ledger:{self.config.seed}:{self._n_keys}")
        self._n_keys += 1
        acct: LocalAccount = Account.from_key(material)
        self._keys[acct.address] = acct
        if fund:
            self.fund([acct.address])
        return acct

    def holds_key(self, address: str) -> bool:
        """True when this process holds the private key of ``address``."""
        return to_checksum_address(address) in self._keys

    def key(self, address: str) -> LocalAccount:
        """The local key of an address this chain created."""
        try:
            return self._keys[to_checksum_address(address)]
        except KeyError as exc:
            raise LedgerError(f"no local key for {address}") from exc

    def fund(self, addresses: Sequence[str], wei: int = FUND_WEI) -> None:
        """Send gas money to addresses from the node's first account or the funder key."""
        if self.config.funder_key:
            funder = Account.from_key(self.config.funder_key)
            self._keys.setdefault(funder.address, funder)
            for a in addresses:
                self._send_raw(funder, {"to": a, "value": wei, "gas": 21_000}, "fund")
            return
        source = self._retry(lambda: self.w3.eth.accounts)[0]
        if self.embedded:
            hashes = []
            for a in addresses:
                tx = cast(TxParams, {"from": source, "to": to_checksum_address(a), "value": wei})
                hashes.append(self._retry(partial(self.w3.eth.send_transaction, tx)))
            for h in hashes:
                self._receipt(h)
            return
        for i in range(0, len(addresses), POOL_CHUNK):
            self._fund_on_node(source, addresses[i : i + POOL_CHUNK], wei)

    def _fund_on_node(self, source: str, addresses: Sequence[str], wei: int) -> None:
        """Transfers in one batch request, mined together.

        The node signs for its own account; the nonces are given, as the node may take a
        batch's requests in any order.
        """
        provider = cast(Any, self.w3.provider)
        first = self.pending_nonce(source)
        calls = [(RPCEndpoint("eth_sendTransaction"),
                  [{"from": source, "to": to_checksum_address(a), "value": hex(wei),
                    "gas": hex(21_000), "nonce": hex(first + i)}])
                 for i, a in enumerate(addresses)]
        with self._mining_paused(provider):
            responses = self._retry(partial(provider.make_batch_request, calls)) if calls else []
        errors = [r["error"] for r in responses if "error" in r]
        if errors:
            raise LedgerError(f"funding {len(errors)} of {len(calls)} accounts failed: "
                              f"{errors[0]}")
        self._batch_receipts(provider, [r["result"] for r in responses])

    # ------------------------------------------------------------------------ time

    def now(self) -> int:
        """Timestamp of the latest block."""
        return int(self._retry(lambda: self.w3.eth.get_block("latest"))["timestamp"])

    def advance_time(self, seconds: int) -> None:
        """Move the chain's clock forward and mine a block (embedded chain and anvil)."""
        if self._tester is not None:
            self._tester.time_travel(self.now() + int(seconds))
            return
        provider = self.w3.provider
        self._retry(partial(provider.make_request, RPCEndpoint("evm_increaseTime"), [int(seconds)]))
        self._retry(partial(provider.make_request, RPCEndpoint("evm_mine"), []))

    def _nudge_mining(self, provider: Any) -> bool:
        """Ask a development node to mine a block; False where the node has no ``evm_mine``.

        anvil's automine mines when a transaction arrives; when many arrive in one batch some
        ready transactions can stay in its pool until the next arrival, so a wait that sees no
        receipt appear mines a block by hand. A production node (geth, besu) mines on its own
        schedule and answers "method not found": it is not asked again.
        """
        if self._can_mine is False:
            return False
        resp = provider.make_request(RPCEndpoint("evm_mine"), [])
        self._can_mine = "error" not in resp
        return self._can_mine

    # ------------------------------------------------------------------------ contracts

    def contract(self, name: str, address: str) -> Contract:
        """A web3 contract object for a deployed artifact."""
        art = artifacts.load(name)
        c = self.w3.eth.contract(address=to_checksum_address(address), abi=list(art.abi))
        setattr(c, "_vdg_name", name)  # noqa: B010 (label for the gas log)
        return c

    def deploy(self, name: str, sender: LocalAccount, *args: Any) -> Contract:
        """Deploy a compiled contract and return it."""
        art = artifacts.load(name)
        factory = self.w3.eth.contract(abi=list(art.abi), bytecode=art.bytecode)
        data = factory.constructor(*args).data_in_transaction
        receipt = self._send_raw(sender, {"data": data, "gas": DEFAULT_GAS_LIMIT}, f"{name}.deploy")
        return self.contract(name, receipt["contractAddress"])

    def transact(
        self,
        contract: Contract,
        fn: str,
        args: Sequence[Any],
        sender: LocalAccount,
        gas: int = DEFAULT_GAS_LIMIT,
    ) -> Any:
        """Send ``contract.fn(*args)`` from ``sender`` and return the receipt.

        Raises:
            ContractRevert: the transaction reverted (reason decoded from a replay).
        """
        data = contract.encode_abi(fn, args=list(args))
        label = f"{_name_of(contract)}.{fn}"
        return self._send_raw(sender, {"to": contract.address, "data": data, "gas": gas}, label)

    def call(
        self, contract: Contract, fn: str, args: Sequence[Any] = (), sender: str | None = None
    ) -> Any:
        """Read-only call; reverts raise :class:`ContractRevert`."""
        params = cast(TxParams, {"from": to_checksum_address(sender)} if sender else {})
        try:
            return self._retry(lambda: contract.functions[fn](*args).call(params))
        except ContractRevert:
            raise
        except Exception as exc:
            data = revert_data(exc)
            if data is None:
                raise
            raise decode_revert(data) from exc

    def sign_batch(
        self, items: Sequence[tuple[LocalAccount, dict[str, Any], str]]
    ) -> list[SignedTx]:
        """Sign transactions ahead of sending (nonces assigned in order)."""
        return [SignedTx(self._sign(acct, tx), tx, acct, label) for acct, tx, label in items]

    def send_batch(
        self,
        items: Sequence[tuple[LocalAccount, dict[str, Any], str]] | Sequence[SignedTx],
        *,
        ordered: bool = False,
    ) -> list[GasRecord]:
        """Send many transactions with no round trip between them; return their gas records.

        On a node (URL backend) the raw transactions go in one JSON-RPC batch request and the
        receipts come back in another; the embedded chain mines one block per transaction, so
        there they are sent one after the other. Items may be pre-signed (:meth:`sign_batch`).
        A development node (anvil) mines the batch in as few blocks as its block gas limit
        allows (:meth:`_mining_paused`) instead of one block per transaction.

        Args:
            items: the transactions.
            ordered: they must be mined in this order although they come from several senders
                (a clearing breaks ties by reveal order): each is sent in a request of its own,
                after the previous one was accepted, and the order of the receipts is checked.

        Raises:
            ContractRevert: the first transaction that reverted (the others are mined).
            LedgerError: the node mined an ordered batch out of order.
        """
        signed = [i if isinstance(i, SignedTx) else self.sign_batch([i])[0] for i in items]
        if self.embedded or not signed:
            for x in signed:
                h = self._retry(partial(self.w3.eth.send_raw_transaction, x.signed.raw_transaction))
                self._finish(h, x.tx, x.acct, x.label)
            return self.gas_log[len(self.gas_log) - len(signed) :]
        out: list[GasRecord] = []
        for first in range(0, len(signed), POOL_CHUNK):
            out += self._send_chunk(signed[first : first + POOL_CHUNK], ordered)
        return out

    def _send_chunk(self, signed: Sequence[SignedTx], ordered: bool) -> list[GasRecord]:
        provider = cast(Any, self.w3.provider)
        calls = [
            (RPCEndpoint("eth_sendRawTransaction"), ["0x" + s.signed.raw_transaction.hex()])
            for s in signed
        ]
        with self._mining_paused(provider):
            if ordered:
                responses = [self._retry(partial(provider.make_request, *c)) for c in calls]
            else:
                responses = self._retry(partial(provider.make_batch_request, calls))
            hashes = []
            for s, resp in zip(signed, responses, strict=True):
                if "error" in resp:
                    self._nonces.pop(s.acct.address, None)
                    data = _data_attribute(resp["error"].get("data"))
                    raise decode_revert(data) if data is not None else LedgerError(
                        str(resp["error"]))
                hashes.append(resp["result"])
        receipts = self._batch_receipts(provider, hashes)
        if ordered:
            where = [(int(r["blockNumber"], 16), int(r["transactionIndex"], 16)) for r in receipts]
            if where != sorted(where):
                raise LedgerError(f"the node mined {len(where)} transactions out of the order "
                                  f"they were sent in (blocks, indices {where})")
        out: list[GasRecord] = []
        for s, h, raw in zip(signed, hashes, receipts, strict=True):
            status, block, gas = (
                int(raw["status"], 16),
                int(raw["blockNumber"], 16),
                int(raw["gasUsed"], 16),
            )
            if status != 1:
                raise self._traced_revert(h) or self._replay_revert(s.tx, s.acct, block)
            record = GasRecord(s.label, gas, h, block)
            self.gas_log.append(record)
            out.append(record)
        self._note_gas_price(max(int(r.get("effectiveGasPrice", "0x0"), 16) for r in receipts))
        return out

    def _batch_receipts(self, provider: Any, hashes: list[str]) -> list[Any]:
        """The raw receipts of sent transactions, polled in batch requests until all are in."""
        receipts: list[Any] = [None] * len(hashes)
        pending = list(range(len(hashes)))
        still_before: list[int] = []
        stuck = 0
        wait_s = self.config.timeout_s + 0.1 * len(hashes)
        deadline = time.monotonic() + wait_s
        while pending:
            calls = [(RPCEndpoint("eth_getTransactionReceipt"), [hashes[i]]) for i in pending]
            responses = self._retry(partial(provider.make_batch_request, calls))
            still = []
            for i, resp in zip(pending, responses, strict=True):
                if resp.get("result"):
                    receipts[i] = resp["result"]
                else:
                    still.append(i)
            pending = still
            if pending and time.monotonic() > deadline:
                raise ChainUnavailableError(
                    f"{len(pending)} of {len(hashes)} receipts missing after {wait_s:.0f} s"
                )
            if pending:
                time.sleep(0.05)
                if len(pending) == len(still_before) and self._nudge_mining(provider):
                    stuck += 1
                    if stuck >= 3 and self._pool_empty(provider):
                        raise LedgerError(
                            f"{len(pending)} of {len(hashes)} transactions are neither mined nor "
                            f"in the node's pool (dropped by the node), e.g. {hashes[pending[0]]}"
                        )
                    continue
            stuck = 0
            still_before = pending
        return receipts

    def _pool_empty(self, provider: Any) -> bool:
        """True when a development node reports no pending or queued transaction."""
        status = provider.make_request(RPCEndpoint("txpool_status"), [])
        result = status.get("result")
        if not isinstance(result, dict):
            return False
        return all(int(str(result.get(k, "0x0")), 16) == 0 for k in ("pending", "queued"))

    @contextmanager
    def _mining_paused(self, provider: Any) -> Iterator[None]:
        """Hold a development node's automine while a batch is sent, then mine the batch.

        anvil's automine mines one block per arriving transaction, and a block costs the node
        more than most of the transactions in it. Paused, the transactions wait in the pool and
        leave it in blocks as full as the block gas limit allows (``evm_mine`` until the pool
        is empty or stops shrinking), in the node's pool order (arrival order with anvil's
        ``--order fifo``, see :class:`ledger.anvil.AnvilNode`). A node without
        ``evm_setAutomine`` (geth, besu) mines on its own schedule: nothing is paused.
        """
        if self._can_pause is False:
            yield
            return
        resp = self._retry(partial(provider.make_request, RPCEndpoint("anvil_getAutomine"), []))
        self._can_pause = "error" not in resp
        if not self._can_pause or not resp["result"]:  # no such node, or it mines on request
            yield
            if self._can_pause:
                self._mine_pool(provider)
            return
        self._retry(partial(provider.make_request, RPCEndpoint("evm_setAutomine"), [False]))
        try:
            yield
        finally:
            try:
                self._mine_pool(provider)
            finally:
                self._retry(partial(provider.make_request, RPCEndpoint("evm_setAutomine"),
                                    [True]))

    def _mine_pool(self, provider: Any) -> None:
        """Mine blocks until the node's pool holds no pending transaction (or stops shrinking)."""
        before = None
        while True:
            status = self._retry(partial(provider.make_request, RPCEndpoint("txpool_status"), []))
            pending = int(str(status.get("result", {}).get("pending", "0x0")), 16)
            if pending in (0, before):
                return
            before = pending
            self._retry(partial(provider.make_request, RPCEndpoint("evm_mine"), []))

    def fee_cap_wei(self) -> int:
        """A ``maxFeePerGas`` that stays valid for the next transactions (told to signers)."""
        return self._max_fee()

    def pending_nonce(self, address: str) -> int:
        """The node's next nonce of ``address``, counting transactions still in its pool."""
        return int(self._retry(
            lambda: self.w3.eth.get_transaction_count(to_checksum_address(address), "pending")))

    # ------------------------------------------------------------------------ internals

    def _sign(self, acct: LocalAccount, tx: dict[str, Any]) -> Any:
        full = dict(tx)
        full.setdefault("value", 0)
        full["chainId"] = self._chain_id
        full["nonce"] = self._next_nonce(acct.address)
        full.setdefault("maxPriorityFeePerGas", 1)
        full.setdefault("maxFeePerGas", self._max_fee())
        full.pop("from", None)
        return acct.sign_transaction(full)

    def _max_fee(self) -> int:
        # Twice the base fee plus 1 gwei, read every 64 transactions (a read costs a round
        # trip). Blocks above half the gas limit raise the base fee by up to 12.5 % each: the
        # cap is read again as soon as a receipt shows a base fee above half of it
        # (:meth:`_note_gas_price`), while it still covers five more such blocks.
        if self._fee_uses <= 0:
            block = self._retry(lambda: self.w3.eth.get_block("latest"))
            self._fee_cap = 2 * int(block.get("baseFeePerGas", 10**9)) + 10**9
            self._fee_uses = 64
        self._fee_uses -= 1
        return self._fee_cap

    def _note_gas_price(self, effective_wei: int) -> None:
        """Read the fee cap again before the next transaction when the base fee has risen."""
        if 2 * effective_wei > self._fee_cap:
            self._fee_uses = 0

    def _next_nonce(self, address: str) -> int:
        if address not in self._nonces:
            self._nonces[address] = self.pending_nonce(address)
        n = self._nonces[address]
        self._nonces[address] = n + 1
        return n

    def _send_raw(self, acct: LocalAccount, tx: dict[str, Any], label: str) -> Any:
        signed = self._sign(acct, tx)
        try:
            h = self._retry(lambda: self.w3.eth.send_raw_transaction(signed.raw_transaction))
        except Exception as exc:
            self._nonces.pop(acct.address, None)  # resynchronise from the node next time
            data = revert_data(exc)
            if data is None:
                raise
            raise decode_revert(data) from exc
        return self._finish(h, tx, acct, label)

    def _finish(
        self, h: Any, tx: dict[str, Any], acct: LocalAccount | ExternalSigner, label: str
    ) -> Any:
        receipt = self._receipt(h)
        if receipt["status"] != 1:
            raise self._replay_revert(tx, acct, receipt["blockNumber"])
        self._note_gas_price(int(receipt.get("effectiveGasPrice", 0)))
        self.gas_log.append(
            GasRecord(label, int(receipt["gasUsed"]), h.hex(), int(receipt["blockNumber"]))
        )
        return receipt

    def _receipt(self, h: Any) -> Any:
        """Wait for a receipt, polling from 2 ms up (web3's own wait sleeps 100 ms at once)."""
        delay = 0.002
        start = time.monotonic()
        deadline = start + self.config.timeout_s
        while True:
            try:
                return self._retry(partial(self.w3.eth.get_transaction_receipt, h))
            except TransactionNotFound:
                if time.monotonic() > deadline:
                    raise ChainUnavailableError(
                        f"no receipt for {h!r} after {self.config.timeout_s} s"
                    ) from None
                time.sleep(delay)
                # a block can take anvil longer than 0.2 s once its state is large (at 1,000
                # households the day's withdrawals alternated with empty blocks mined on
                # request): ask after 2 s
                if time.monotonic() - start >= 2.0 and self._tester is None:
                    self._nudge_mining(self.w3.provider)
                delay = min(2 * delay, 0.1)

    def _traced_revert(self, tx_hash: str) -> ContractRevert | None:
        """The revert of a mined transaction from the node's trace of it (None: no trace).

        A transaction of a batch may depend on those before it in the same block, which a
        replay on the previous block's state would not see; anvil traces it where it ran.
        """
        resp = self.w3.provider.make_request(RPCEndpoint("debug_traceTransaction"),
                                             [tx_hash, {"tracer": "callTracer"}])
        result = resp.get("result")
        output = str(result.get("output") or "") if isinstance(result, dict) else ""
        if output in ("", "0x"):  # no trace, or no revert data (out of gas): replay instead
            return None
        return decode_revert(bytes.fromhex(output.removeprefix("0x")))

    def _replay_revert(
        self, tx: dict[str, Any], acct: LocalAccount | ExternalSigner, block: int
    ) -> ContractRevert:
        call = {k: v for k, v in tx.items() if k in ("to", "data", "value", "gas")}
        call["from"] = acct.address
        try:
            self.w3.eth.call(cast(TxParams, call), block_identifier=block - 1)
        except Exception as exc:
            data = revert_data(exc)
            if data is None:
                raise
            return decode_revert(data)
        return ContractRevert("reverted (out of gas, or state changed before the replay)")

    def _retry(self, fn: Callable[[], Any]) -> Any:
        delay = 0.2
        for attempt in range(self.config.retries):
            try:
                return fn()
            except _TRANSIENT as exc:
                if attempt + 1 == self.config.retries:
                    raise ChainUnavailableError(f"chain unreachable: {exc}") from exc
                logger.warning("transient RPC error (%s), retrying in %.1f s", exc, delay)
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")


def _name_of(contract: Contract) -> str:
    return str(getattr(contract, "_vdg_name", "Contract"))
