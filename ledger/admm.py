"""The ADMM aggregator step on chain, behind the interface of :mod:`ledger.admm_reference`.

The ``AdmmCoordinator`` contract does the work.
Each node submits from its own account (one transaction per node per round, the coupling
vector as packed ``int64`` in calldata, only its hash stored); the aggregator closes the round
with all submitted vectors and the previous z in calldata, and the contract computes z and the
residual sums in memory and emits them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.logs import DISCARD

from ledger.admm_reference import RoundResult
from ledger.errors import ProtocolError
from ledger.fixedpoint import ADMM_SCALE, admm_pack, admm_to_fixed, admm_unpack

if TYPE_CHECKING:
    from ledger.client import Web3Ledger

logger = logging.getLogger(__name__)

CLOSE_GAS = 29_000_000
RHO_SCALE = 1_000_000


class ContractAdmm:
    """Consensus-ADMM aggregator step on the ``AdmmCoordinator`` contract.

    Args:
        ledger: a deployed ledger; its aggregator account opens and closes rounds.
    """

    def __init__(self, ledger: Web3Ledger) -> None:
        self._ledger = ledger
        self._chain = ledger.chain
        self._aggregator: LocalAccount = ledger.roles["aggregator"]
        self._contract: Contract | None = None
        self._nodes: list[LocalAccount] = []
        self._counts: list[int] = []
        self._n_global = 0
        self._z_prev = np.zeros(0, dtype=np.int64)
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
        if not 0 < n_global <= 65536:
            raise ProtocolError(
                f"n_global={n_global}: the contract holds 1..65536 global variables"
            )
        counts = [len(c) for c in copies]
        flat = [int(g) for c in copies for g in c]
        if any(not 0 <= g < n_global for g in flat):
            raise ProtocolError(f"copies refer to a global variable outside [0, {n_global})")
        self._contract = self._chain.deploy(
            "AdmmCoordinator", self._aggregator, self._ledger.c["registry"].address
        )
        self._nodes = [self._chain.new_account() for _ in copies]
        self._chain.transact(
            self._contract,
            "setup",
            [
                n_global,
                counts,
                np.asarray(flat, dtype=">u2").tobytes(),
                [a.address for a in self._nodes],
            ],
            self._aggregator,
            CLOSE_GAS,
        )
        self._counts = counts
        self._n_global = n_global
        self._z_prev = np.zeros(n_global, dtype=np.int64)
        self._round = 0

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
        self._chain.transact(self.contract, "submit", [self._round, blob], self._nodes[node])
        self._x[node] = blob

    def close_round(
        self, rho: float, eps_primal: float | None = None, eps_dual: float | None = None
    ) -> RoundResult:
        """Close the round on chain and return z and the residuals the contract computed."""
        xs = b"".join(self._x[k] for k in sorted(self._x))
        s2 = ADMM_SCALE * ADMM_SCALE
        eps_p_sq = 2**256 - 1 if eps_primal is None else round(eps_primal * eps_primal * s2)
        rho_sq = round(rho * rho * RHO_SCALE)
        eps_d_sq = 2**256 - 1 if eps_dual is None else round(eps_dual * eps_dual * s2 * RHO_SCALE)
        receipt = self._chain.transact(
            self.contract,
            "closeRound",
            [xs, admm_pack(self._z_prev), eps_p_sq, rho_sq, eps_d_sq],
            self._aggregator,
            CLOSE_GAS,
        )
        ev = self.contract.events.RoundClosed().process_receipt(receipt, errors=DISCARD)[0]["args"]
        z_fixed = admm_unpack(bytes(ev["z"]))
        missing_blob = bytes(ev["missing"])
        missing = tuple(
            int.from_bytes(missing_blob[i : i + 2], "big") for i in range(0, len(missing_blob), 2)
        )
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
            missing=missing,
            converged=converged,
            gas_used=gas,
        )
