"""The ADMM aggregator step: collect local copies, average them, report residuals.

This is the part of consensus ADMM that Münsing et al. (2017) run in smart contract S1 (their
eqs. (16), (18)) and B-DER runs in its six-step protocol (eqs. (23), (25a)–(25b)). It speaks plain
numbers so that ``ledger`` can implement the same :class:`Aggregator` protocol as a contract
without importing anything of ours; :class:`ReferenceAggregator` is the reference it must agree
with.

Conventions (a contract between the two implementations):

* ``setup(n_global, copies)``: node ``k``'s local coupling vector has ``len(copies[k])``
  entries, entry ``j`` is a copy of global variable ``copies[k][j]``. Every global variable must
  have at least one copy.
* ``open_round(round_index, deadline_s)`` starts a round; ``submit(node, x_local)`` stores a
  node's vector (a second submission in the same round replaces the first);
  ``close_round(rho)`` returns a :class:`RoundResult`:

  - ``z[g]`` = average of the submitted copies of ``g`` (a global without any submitted copy
    keeps its previous value),
  - ``primal_residual`` = ``sqrt(Σ_copies (x_c − z_g)²)`` over the submitted copies,
  - ``dual_residual`` = ``rho · sqrt(Σ_copies (z_g − z_prev_g)²)`` over *all* copies (Boyd et
    al. §7.2: ``s = ρ·B(z − z_prev)``), with ``z_prev`` zero before round 0,
  - ``missing`` = the nodes that did not submit, in increasing order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from grid.errors import GridError


class AggregatorError(GridError, RuntimeError):
    """The aggregator was used out of order or given data of the wrong shape."""


@dataclass(frozen=True, slots=True, eq=False)
class RoundResult:
    """What the aggregator returns at the end of a round.

    Attributes:
        round_index: the round that was closed.
        z: the new global variables, shape ``(n_global,)``.
        primal_residual: ``‖x − Bz‖₂`` over the submitted copies.
        dual_residual: ``ρ·‖B(z − z_prev)‖₂``.
        missing: nodes that did not submit in this round.
    """

    round_index: int
    z: np.ndarray
    primal_residual: float
    dual_residual: float
    missing: tuple[int, ...]


@runtime_checkable
class Aggregator(Protocol):
    """The aggregator step of consensus ADMM.

    Implemented in Python by :class:`ReferenceAggregator` and as a contract in ``ledger``.
    """

    def setup(self, n_global: int, copies: Sequence[Sequence[int]]) -> None:
        """Declare the number of global variables and each node's copy map."""

    def open_round(self, round_index: int, deadline_s: float) -> None:
        """Start collecting round ``round_index``; submissions are due within ``deadline_s``."""

    def submit(self, node: int, x_local: Sequence[float]) -> None:
        """Store node ``node``'s local coupling vector for the open round."""

    def close_round(self, rho: float) -> RoundResult:
        """Average the copies, compute the residuals and close the round."""


class ReferenceAggregator:
    """The Python reference :class:`Aggregator` (vectorised with numpy).

    Deadlines are recorded but not enforced by wall clock here: a node that has not submitted
    when :meth:`close_round` is called is reported in ``missing``. The in-process engine decides
    what a late node means (see :class:`grid.admm.engine.AdmmOptions.on_missing`).
    """

    def __init__(self) -> None:
        self._n_global = -1
        self._copies: list[np.ndarray] = []
        self._z = np.zeros(0)
        self._round = -1
        self._open = False
        self._deadline_s = math.inf
        self._opened_at = 0.0
        self._sub: dict[int, np.ndarray] = {}

    # -----------------------------------------------------------------------------------------
    def setup(self, n_global: int, copies: Sequence[Sequence[int]]) -> None:
        """Declare the problem; resets any previous state.

        Raises:
            AggregatorError: a copy index outside ``[0, n_global)`` or a global without copies.
        """
        if n_global < 1:
            raise AggregatorError(f"n_global must be >= 1, got {n_global}")
        maps = [np.asarray(c, dtype=np.int64).reshape(-1) for c in copies]
        seen = np.zeros(n_global, dtype=bool)
        for k, m in enumerate(maps):
            if m.size and (m.min() < 0 or m.max() >= n_global):
                raise AggregatorError(f"copies[{k}] refers to a global variable outside "
                                      f"[0, {n_global})")
            seen[m] = True
        if not seen.all():
            raise AggregatorError(f"global variable {int(np.argmin(seen))} has no copy")
        self._n_global = n_global
        self._copies = maps
        self._all = np.concatenate(maps) if maps else np.zeros(0, dtype=np.int64)
        self._count_all = np.bincount(self._all, minlength=n_global).astype(float)
        self._z = np.zeros(n_global)
        self._round = -1
        self._open = False
        self._sub = {}

    def open_round(self, round_index: int, deadline_s: float) -> None:
        """Start a round.

        Raises:
            AggregatorError: not set up, a round still open, or a round index that does not
                follow the previous one.
        """
        if self._n_global < 0:
            raise AggregatorError("setup() must be called before open_round()")
        if self._open:
            raise AggregatorError(f"round {self._round} is still open")
        if round_index != self._round + 1:
            raise AggregatorError(f"round {round_index} does not follow round {self._round}")
        if not deadline_s > 0:
            raise AggregatorError(f"deadline_s must be > 0, got {deadline_s!r}")
        self._round = round_index
        self._open = True
        self._deadline_s = deadline_s
        self._opened_at = time.monotonic()
        self._sub = {}

    def submit(self, node: int, x_local: Sequence[float]) -> None:
        """Store a node's vector.

        Raises:
            AggregatorError: no open round, unknown node, wrong length or non-finite values.
        """
        if not self._open:
            raise AggregatorError("submit() needs an open round")
        if not 0 <= node < len(self._copies):
            raise AggregatorError(f"unknown node {node}")
        x = np.asarray(x_local, dtype=float).reshape(-1)
        if x.size != self._copies[node].size:
            raise AggregatorError(f"node {node} submitted {x.size} values, expected "
                                  f"{self._copies[node].size}")
        if not np.all(np.isfinite(x)):
            raise AggregatorError(f"node {node} submitted NaN or infinite values")
        self._sub[node] = x

    def close_round(self, rho: float) -> RoundResult:
        """Average, compute residuals, close.

        Raises:
            AggregatorError: no open round.
        """
        if not self._open:
            raise AggregatorError("close_round() needs an open round")
        nodes = sorted(self._sub)
        if nodes:
            idx = np.concatenate([self._copies[k] for k in nodes])
            vals = np.concatenate([self._sub[k] for k in nodes])
        else:
            idx = np.zeros(0, dtype=np.int64)
            vals = np.zeros(0)
        total = np.bincount(idx, weights=vals, minlength=self._n_global)
        count = np.bincount(idx, minlength=self._n_global)
        z = np.where(count > 0, total / np.maximum(count, 1), self._z)
        primal = float(np.sqrt(np.sum((vals - z[idx]) ** 2)))
        dual = float(rho * np.sqrt(np.sum(self._count_all * (z - self._z) ** 2)))
        missing = tuple(k for k in range(len(self._copies)) if k not in self._sub)
        self._z = z
        self._open = False
        return RoundResult(self._round, z.copy(), primal, dual, missing)
