"""Pure-Python reference of the ADMM aggregator step (consensus ADMM, Münsing's S1).

The contract-backed implementation (:class:`ledger.admm.ContractAdmm`) and ``grid``'s ADMM
engine follow the same interface and agree with this reference:

* ``setup(n_global, copies)``: node k's local coupling vector has ``len(copies[k])`` entries;
  entry j is a copy of global variable ``copies[k][j]``.
* ``open_round(round_index, deadline_s)``: rounds are numbered 0, 1, 2, ...; submissions are
  accepted for ``deadline_s`` seconds.
* ``submit(node, x_local)``: the node's current local coupling values.
* ``close_round(rho, eps_primal=None, eps_dual=None) -> RoundResult`` with
  ``z_g`` = mean of the submitted copies of g (the previous z_g when no copy was submitted),
  ``primal_residual`` = sqrt(Σ over submitted copies (x_c − z_g)²),
  ``dual_residual`` = rho·sqrt(Σ over all copies (z_g − z_prev_g)²) (z_prev = 0 before round 0),
  ``missing`` = nodes that did not submit, ``converged`` = both residuals within their eps when
  eps are given, else ``None``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ledger.errors import ProtocolError


@dataclass(frozen=True, slots=True)
class RoundResult:
    """The aggregator step's outcome for one round.

    Attributes:
        round_index: the closed round.
        z: consensus values, shape (n_global,).
        primal_residual: sqrt(Σ over submitted copies (x_c − z_g)²).
        dual_residual: rho·sqrt(Σ over all copies (z_g − z_prev_g)²).
        missing: nodes that did not submit before the round closed.
        converged: both residuals within the given tolerances, or None when none were given.
        gas_used: gas of the round's transactions (0 off chain).
    """

    round_index: int
    z: np.ndarray
    primal_residual: float
    dual_residual: float
    missing: tuple[int, ...]
    converged: bool | None
    gas_used: int = 0


def converged_flag(
    primal: float, dual: float, eps_primal: float | None, eps_dual: float | None
) -> bool | None:
    """Both residuals within tolerance (None when no tolerance was given)."""
    if eps_primal is None and eps_dual is None:
        return None
    return (eps_primal is None or primal <= eps_primal) and (eps_dual is None or dual <= eps_dual)


class ReferenceAdmm:
    """The aggregator step in plain Python (floats, no chain)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._copies: list[np.ndarray] = []
        self._n_global = 0
        self._z_prev = np.zeros(0)
        self._round = 0
        self._open = False
        self._deadline = 0.0
        self._x: dict[int, np.ndarray] = {}

    def setup(self, n_global: int, copies: Sequence[Sequence[int]]) -> None:
        """Declare the global variables and each node's copies of them."""
        if n_global <= 0 or not copies:
            raise ProtocolError("setup needs n_global > 0 and at least one node")
        self._copies = [np.asarray(c, dtype=np.int64) for c in copies]
        for k, c in enumerate(self._copies):
            if c.size and (c.min() < 0 or c.max() >= n_global):
                raise ProtocolError(
                    f"copies[{k}] refers to a global variable outside [0, {n_global})"
                )
        self._n_global = n_global
        self._z_prev = np.zeros(n_global)
        self._round = 0
        self._open = False

    def open_round(self, round_index: int, deadline_s: float) -> None:
        """Open round ``round_index`` for ``deadline_s`` seconds."""
        if self._open:
            raise ProtocolError(f"round {self._round} is still open")
        if round_index != self._round:
            raise ProtocolError(f"expected round {self._round}, got {round_index}")
        self._open = True
        self._deadline = self._clock() + deadline_s
        self._x = {}

    def submit(self, node: int, x_local: Sequence[float]) -> None:
        """Record a node's local coupling values for the open round."""
        if not self._open:
            raise ProtocolError("no round is open")
        if self._clock() > self._deadline:
            raise ProtocolError(f"round {self._round}: node {node} submitted after the deadline")
        if not 0 <= node < len(self._copies):
            raise ProtocolError(f"unknown node {node}")
        if node in self._x:
            raise ProtocolError(f"node {node} already submitted in round {self._round}")
        x = np.asarray(x_local, dtype=float)
        if x.shape != self._copies[node].shape:
            raise ProtocolError(
                f"node {node}: expected {self._copies[node].size} values, got {x.size}"
            )
        self._x[node] = x

    def close_round(
        self, rho: float, eps_primal: float | None = None, eps_dual: float | None = None
    ) -> RoundResult:
        """z-update and residuals over the submissions."""
        if not self._open:
            raise ProtocolError("no round is open")
        sums = np.zeros(self._n_global)
        counts = np.zeros(self._n_global)
        all_counts = np.zeros(self._n_global)
        for k, c in enumerate(self._copies):
            np.add.at(all_counts, c, 1)
            if k in self._x:
                np.add.at(sums, c, self._x[k])
                np.add.at(counts, c, 1)
        z = np.where(counts > 0, sums / np.maximum(counts, 1), self._z_prev)
        primal_sq = sum(
            float(np.sum((self._x[k] - z[c]) ** 2))
            for k, c in enumerate(self._copies)
            if k in self._x
        )
        dual_sq = float(np.sum(all_counts * (z - self._z_prev) ** 2))
        primal, dual = math.sqrt(primal_sq), rho * math.sqrt(dual_sq)
        missing = tuple(k for k in range(len(self._copies)) if k not in self._x)
        result = RoundResult(
            self._round,
            z,
            primal,
            dual,
            missing,
            converged_flag(primal, dual, eps_primal, eps_dual),
        )
        self._z_prev = z
        self._round += 1
        self._open = False
        return result
