"""The ADMM aggregator step on chain, behind the interface of :mod:`ledger.admm_reference`.

The ``AdmmCoordinator`` contract does the work.
Each node submits from its own account (one transaction per node per round, the coupling
vector as packed ``int64`` in calldata, only its hash stored); the aggregator closes the round
in pages: ``closePage`` over consecutive nodes (their submitted vectors in calldata, checked
against the stored hashes and accumulated per global variable in storage), then
``finalisePage`` over consecutive global variables (z stored and emitted; the last page emits
the residual sums). A node's vector may span pages: its hash is chained over segments of
:data:`SEGMENT` values. Every transaction's gas is bounded by the page sizes, not by the
population (a node's own ``submit`` grows with its vector).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from web3.contract import Contract
from web3.logs import DISCARD

from ledger.admm_reference import RoundResult
from ledger.errors import ProtocolError
from ledger.fixedpoint import ADMM_SCALE, admm_pack, admm_to_fixed, admm_unpack

if TYPE_CHECKING:
    from ledger.client import Web3Ledger

logger = logging.getLogger(__name__)

RHO_SCALE = 1_000_000
SUBMIT_BATCH = 500
"""Submissions per JSON-RPC batch request (``batch_submits``)."""
ONE_TX_CLOSE_GAS = 20_000_000
"""Largest estimated gas of a one-transaction close; larger problems are closed in pages."""
PAGE_COPIES = 1_000
SEGMENT = 64
"""Values per segment of a submission's hash chain (the contract's ``SEGMENT``)."""
"""Coupling values per close page (a node larger than this gets a page of its own)."""
PAGE_GLOBALS = 2_000
"""Global variables per finalise page."""
MAX_GLOBAL = 2**32
"""Global variables the contract holds at most (``uint32`` indices in its copy map)."""
MAX_NODES = 65_535
"""Nodes the contract holds at most (``uint16`` node numbers in its ``missing`` lists)."""

# Gas of the paged transactions, upper bounds from their storage work: a copy costs a cold
# load and a store of its global's word (22,100 the first time the word is written, 5,000
# after) plus calldata and arithmetic; a node its submission word and hash; a finalised global
# a cold load, a store and 8 bytes of log.
_GAS_BASE = 120_000
_GAS_PER_COPY = 24_000
_GAS_PER_NODE = 6_000
_GAS_PER_GLOBAL = 6_500
_GAS_SETUP = 400_000  # the header words and a data contract's creation
_GAS_SETUP_PER_NODE = 60_000
_GAS_SETUP_PER_BYTE = 260  # calldata, code deposit (200 a byte) and memory
_GAS_SETUP_PER_CHUNK = 60_000
# one-transaction close: per copy two passes over memory and calldata (x: 16 a byte), per global
# the z-update and zPrev in calldata, memory expansion (3 a word plus words² / 512)
_GAS_ONE_TX_PER_COPY = 1_200
_GAS_ONE_TX_PER_GLOBAL = 600


def _submit_gas(n_bytes: int) -> int:
    # calldata (16 a byte), the hash chain, one fresh storage word
    return 80_000 + 40 * n_bytes


def _memory_gas(n_bytes: int) -> int:
    words = n_bytes // 32 + 64
    return 3 * words + words * words // 512


def one_tx_close_gas(n_global: int, counts: Sequence[int]) -> int:
    """Upper estimate of the gas of closing a round in one ``closeRound`` transaction."""
    n_copies = sum(counts)
    return (
        _GAS_BASE
        + _GAS_ONE_TX_PER_COPY * n_copies
        + _GAS_ONE_TX_PER_GLOBAL * n_global
        + _memory_gas(40 * n_global + 4 * len(counts) + 10 * n_copies)
    )


def close_pages(
    counts: Sequence[int], page_copies: int, segment: int = SEGMENT
) -> list[list[tuple[int, int, int]]]:
    """The close pages: each a list of ``(node, first value, values)`` parts in node order.

    A page holds at most ``page_copies`` values, or one segment when a segment is larger; it
    ends at a node's end or at a segment boundary inside a node (the contract checks a node's
    hash chain segment by segment).
    """
    pages: list[list[tuple[int, int, int]]] = []
    page: list[tuple[int, int, int]] = []
    size = 0
    for k, cnt in enumerate(counts):
        if cnt == 0:
            page.append((k, 0, 0))
        for j in range(0, cnt, segment):
            m = min(segment, cnt - j)
            if size and size + m > page_copies:
                pages.append(page)
                page, size = [], 0
            if page and page[-1][0] == k:
                page[-1] = (k, page[-1][1], page[-1][2] + m)
            else:
                page.append((k, j, m))
            size += m
    if size or not pages:
        pages.append(page)
    else:
        pages[-1] += page  # trailing nodes without copies
    return pages


class ContractAdmm:
    """Consensus-ADMM aggregator step on the ``AdmmCoordinator`` contract.

    Args:
        ledger: a deployed ledger; its aggregator account opens and closes rounds.
        page_copies: coupling values per close page (a larger node gets a page of its own).
        page_globals: global variables per finalise page.
        paged: close rounds in pages; ``None`` (default) pages when a one-transaction close
            would need more than :data:`ONE_TX_CLOSE_GAS` (or the block gas limit).
        batch_submits: sign each submission at :meth:`submit` and send them together (JSON-RPC
            batch requests on a node) when the round closes; a submission's revert is then
            raised by :meth:`close_round`.
    """

    def __init__(
        self,
        ledger: Web3Ledger,
        page_copies: int = PAGE_COPIES,
        page_globals: int = PAGE_GLOBALS,
        paged: bool | None = None,
        batch_submits: bool = False,
    ) -> None:
        if page_copies < 1 or page_globals < 1:
            raise ProtocolError(
                f"page_copies={page_copies}, page_globals={page_globals}: both must be >= 1"
            )
        self._page_copies = page_copies
        self._page_globals = page_globals
        self._paged_choice = paged
        self._batch = batch_submits
        self._queued: list[Any] = []
        self.paged = False
        self._one_tx_gas = 0
        self._z_prev = np.zeros(0, dtype=np.int64)
        self._gas_cap = 0
        self._pages: list[list[tuple[int, int, int]]] = []
        self._ledger = ledger
        self._chain = ledger.chain
        self._aggregator: LocalAccount = ledger.roles["aggregator"]
        self._contract: Contract | None = None
        self._nodes: list[LocalAccount] = []
        self._n_global = 0
        self._x: dict[int, bytes] = {}
        self._round = 0
        self._gas_mark = 0

    @property
    def contract(self) -> Contract:
        """The coordinator contract of the current setup."""
        if self._contract is None:
            raise ProtocolError("setup() has not been called")
        return self._contract

    def setup(self, n_global: int, copies: Sequence[Sequence[int]]) -> None:
        """Deploy a coordinator for this problem and register one account per node."""
        if not 0 < n_global <= MAX_GLOBAL:
            raise ProtocolError(
                f"n_global={n_global}: the contract holds 1..{MAX_GLOBAL:,} global variables"
            )
        if not 0 < len(copies) <= MAX_NODES:
            raise ProtocolError(
                f"{len(copies)} nodes (copies): the contract holds 1..{MAX_NODES:,} nodes"
            )
        counts = [len(c) for c in copies]
        flat = [int(g) for c in copies for g in c]
        if any(not 0 <= g < n_global for g in flat):
            raise ProtocolError(f"copies refer to a global variable outside [0, {n_global})")
        self._contract = self._chain.deploy(
            "AdmmCoordinator", self._aggregator, self._ledger.c["registry"].address
        )
        self._nodes = [self._chain.new_account(fund=False) for _ in copies]
        self._chain.fund([a.address for a in self._nodes])
        self._gas_cap = int(self._chain.w3.eth.get_block("latest")["gasLimit"])
        self._one_tx_gas = one_tx_close_gas(n_global, counts)
        self.paged = (
            self._one_tx_gas > min(ONE_TX_CLOSE_GAS, self._gas_cap)
            if self._paged_choice is None
            else self._paged_choice
        )
        blob_bytes = 4 * len(counts) + 4 * len(flat)
        setup_gas = (
            _GAS_SETUP
            + _GAS_SETUP_PER_NODE * len(counts)
            + _GAS_SETUP_PER_BYTE * blob_bytes
            + _GAS_SETUP_PER_CHUNK * (blob_bytes // 24_000 + 1)
            + (0 if self.paged else _memory_gas(blob_bytes + 8 * n_global))  # hash of z = 0
        )
        self._check_gas("setup", f"{len(counts)} nodes, {len(flat)} copies", setup_gas)
        self._chain.transact(
            self._contract,
            "setup",
            [
                n_global,
                counts,
                np.asarray(flat, dtype=">u4").tobytes(),
                [a.address for a in self._nodes],
                self.paged,
            ],
            self._aggregator,
            setup_gas,
        )
        self._n_global = n_global
        # the previous z goes back in calldata only to a one-transaction close
        self._z_prev = np.zeros(0 if self.paged else n_global, dtype=np.int64)
        self._round = 0
        if not self.paged:
            self._check_gas("closeRound", f"{len(counts)} nodes", self._one_tx_gas)
            return
        self._pages = close_pages(counts, self._page_copies)
        for page in self._pages:
            what = f"nodes {page[0][0]}..{page[-1][0]}"
            self._check_gas("closePage", what, self._close_gas(page))
        self._check_gas(
            "finalisePage",
            f"{self._page_globals} global variables",
            _GAS_BASE + _GAS_PER_GLOBAL * min(self._page_globals, n_global),
        )

    def open_round(self, round_index: int, deadline_s: float) -> None:
        """Open a round; nodes may submit until ``deadline_s`` seconds from now (chain time)."""
        deadline = self._chain.now() + max(1, math.ceil(deadline_s))
        self._gas_mark = len(self._chain.gas_log)
        self._chain.transact(self.contract, "openRound", [round_index, deadline], self._aggregator)
        self._x = {}
        self._round = round_index

    def submit(self, node: int, x_local: Sequence[float]) -> None:
        """Node ``node`` submits its local coupling values (fixed point, ``ADMM_SCALE``)."""
        if not 0 <= node < len(self._nodes):
            raise ProtocolError(f"unknown node {node}")
        blob = admm_pack(admm_to_fixed(f"x_local[node {node}]", x_local))
        if self._batch:
            data = self.contract.encode_abi("submit", args=[self._round, blob])
            tx = {"to": self.contract.address, "data": data, "gas": _submit_gas(len(blob))}
            self._queued += self._chain.sign_batch(
                [(self._nodes[node], tx, "AdmmCoordinator.submit")]
            )
        else:
            self._chain.transact(self.contract, "submit", [self._round, blob], self._nodes[node])
        self._x[node] = blob

    def _check_gas(self, call: str, what: str, gas: int) -> None:
        if gas > self._gas_cap:
            raise ProtocolError(
                f"AdmmCoordinator.{call} over {what} needs up to {gas:,} gas, more than the "
                f"node's block gas limit of {self._gas_cap:,}"
            )

    @staticmethod
    def _close_gas(page: Sequence[tuple[int, int, int]]) -> int:
        return _GAS_BASE + _GAS_PER_NODE * len(page) + _GAS_PER_COPY * sum(m for *_, m in page)

    def close_round(
        self, rho: float, eps_primal: float | None = None, eps_dual: float | None = None
    ) -> RoundResult:
        """Close the round on chain; z and the residuals as the contract computed them."""
        s2 = ADMM_SCALE * ADMM_SCALE
        eps = (
            2**256 - 1 if eps_primal is None else round(eps_primal * eps_primal * s2),
            round(rho * rho * RHO_SCALE),
            2**256 - 1 if eps_dual is None else round(eps_dual * eps_dual * s2 * RHO_SCALE),
        )
        for i in range(0, len(self._queued), SUBMIT_BATCH):
            self._chain.send_batch(self._queued[i : i + SUBMIT_BATCH])
        self._queued = []
        receipts = self._close_paged(eps) if self.paged else [self._close_one(eps)]
        events = self.contract.events
        missing: list[int] = []
        z_parts: list[np.ndarray] = []
        for receipt in receipts:
            for e in events.PageClosed().process_receipt(receipt, errors=DISCARD):
                blob = bytes(e["args"]["missing"])
                missing += [int.from_bytes(blob[i : i + 2], "big") for i in range(0, len(blob), 2)]
            for e in events.ZPage().process_receipt(receipt, errors=DISCARD):
                z_parts.append(admm_unpack(bytes(e["args"]["z"])))
        ev = events.RoundClosed().process_receipt(receipts[-1], errors=DISCARD)[0]["args"]
        z_fixed = np.concatenate(z_parts)
        self._z_prev = z_fixed
        gas = sum(r.gas_used for r in self._chain.gas_log[self._gas_mark :])
        primal = math.sqrt(int(ev["primalSq"])) / ADMM_SCALE
        dual = rho * math.sqrt(int(ev["dualSq"])) / ADMM_SCALE
        converged = None if eps_primal is None and eps_dual is None else bool(ev["converged"])
        self._round += 1
        return RoundResult(
            round_index=int(ev["round"]),
            z=z_fixed.astype(float) / ADMM_SCALE,
            primal_residual=primal,
            dual_residual=dual,
            missing=tuple(missing),
            converged=converged,
            gas_used=gas,
        )

    def _close_one(self, eps: tuple[int, int, int]) -> Any:
        xs = b"".join(self._x[k] for k in sorted(self._x))
        args = [xs, admm_pack(self._z_prev), *eps]
        return self._chain.transact(
            self.contract, "closeRound", args, self._aggregator, self._one_tx_gas
        )

    def _close_paged(self, eps: tuple[int, int, int]) -> list[Any]:
        """Send the close and finalise pages together; their receipts in page order.

        They are signed in order by one sender, so their nonces keep that order however the
        node mines them.
        """
        c = self.contract
        items = []
        for page in self._pages:
            xs = b"".join(self._x[k][8 * j : 8 * (j + m)] for k, j, m in page if k in self._x)
            data = c.encode_abi("closePage", args=[xs, sum(m for *_, m in page)])
            items.append((self._aggregator, {"to": c.address, "data": data,
                                             "gas": self._close_gas(page)},
                          "AdmmCoordinator.closePage"))
        for g0 in range(0, self._n_global, self._page_globals):
            count = min(self._page_globals, self._n_global - g0)
            data = c.encode_abi("finalisePage", args=[count, *eps])
            items.append((self._aggregator, {"to": c.address, "data": data,
                                             "gas": _GAS_BASE + _GAS_PER_GLOBAL * count},
                          "AdmmCoordinator.finalisePage"))
        records = self._chain.send_batch(items)
        return [self._chain.w3.eth.get_transaction_receipt(HexStr(r.tx_hash)) for r in records]
