"""The DSO's coordination rounds through an aggregator-step interface.

The interface (``setup`` / ``open_round`` / ``submit`` / ``close_round``) is the one the
consensus ADMM engine of ``grid.admm`` exposes for its aggregator step, so the DSO can run either
behind the same protocol messages. :class:`ImportLimitStep` is the step used here: dual ascent on
the substation's import limit (the z-update is the sum of the households' net imports, the dual
update ``λ ← max(0, λ + ρ·(Σp − P_max))`` per slot, the primal residual the largest excess over
the limit). Households answer each round by re-optimising against ``price + λ``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mas.errors import ProtocolStateError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RoundSignal:
    """What the aggregator step broadcasts at the start of a round.

    Attributes:
        round: round number (0-based).
        lam_eur_per_kwh: coordination price per slot added to the households' energy price.
    """

    round: int
    lam_eur_per_kwh: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class RoundResult:
    """The outcome of a closed round.

    Attributes:
        round: round number.
        total_import_kw: sum of the submitted net imports per slot.
        residual_kw: largest excess of the total over the limit (0 when within it).
        converged: the residual is within tolerance.
        n_submitted: how many participants answered.
    """

    round: int
    total_import_kw: tuple[float, ...]
    residual_kw: float
    converged: bool
    n_submitted: int


class AggregatorStep(Protocol):
    """The aggregator step of a coordination algorithm, round by round."""

    def setup(self, participants: Sequence[str], periods: int) -> None:
        """Start over with these participants and horizon."""

    def open_round(self) -> RoundSignal:
        """Open the next round and return what to broadcast."""

    def submit(self, participant: str, round_: int, net_import_kw: Sequence[float]) -> bool:
        """Record a participant's answer; returns False for a duplicate (ignored)."""

    def close_round(self) -> RoundResult:
        """Close the open round (missing participants keep their last answer)."""


class ImportLimitStep:
    """Dual ascent on a substation import limit.

    Args:
        limit_kw: the import limit per slot.
        rho_eur_per_kwh_per_kw: price step per kW of excess.
        tol_kw: convergence tolerance on the excess.
    """

    def __init__(self, limit_kw: float, rho_eur_per_kwh_per_kw: float, tol_kw: float) -> None:
        self.limit_kw = limit_kw
        self.rho = rho_eur_per_kwh_per_kw
        self.tol_kw = tol_kw
        self.participants: tuple[str, ...] = ()
        self.periods = 0
        self.lam = np.zeros(0)
        self.round = -1
        self._open = False
        self._answers: dict[str, np.ndarray] = {}
        self._fresh: set[str] = set()
        self.history: list[RoundResult] = []

    def setup(self, participants: Sequence[str], periods: int) -> None:
        """Start over with these participants and horizon."""
        self.participants = tuple(participants)
        self.periods = periods
        self.lam = np.zeros(periods)
        self.round = -1
        self._open = False
        self._answers = {}
        self.history = []

    def open_round(self) -> RoundSignal:
        """Open the next round and return the price to broadcast."""
        if self._open:
            raise ProtocolStateError(f"round {self.round} is still open")
        self.round += 1
        self._open = True
        self._fresh = set()
        return RoundSignal(self.round, tuple(float(x) for x in self.lam))

    def submit(self, participant: str, round_: int, net_import_kw: Sequence[float]) -> bool:
        """Record an answer of the open round.

        Raises:
            ProtocolStateError: unknown participant, no open round, a stale round, wrong length.
        """
        if participant not in self.participants:
            raise ProtocolStateError(f"participant {participant!r} is not in the coordination")
        if not self._open or round_ != self.round:
            raise ProtocolStateError(f"round {round_} is not open (open: "
                                     f"{self.round if self._open else None})")
        values = np.asarray(net_import_kw, dtype=float)
        if values.shape != (self.periods,) or not np.all(np.isfinite(values)):
            raise ProtocolStateError(f"net_import_kw must be {self.periods} finite numbers, "
                                     f"got shape {values.shape}")
        if participant in self._fresh:
            return False
        self._fresh.add(participant)
        self._answers[participant] = values
        return True

    def close_round(self) -> RoundResult:
        """Close the round: total, residual, dual update."""
        if not self._open:
            raise ProtocolStateError("no round is open")
        self._open = False
        total = np.zeros(self.periods)
        for p in self.participants:  # fixed order: the sum is the same whatever the arrival
            if p in self._answers:
                total += self._answers[p]
        excess = total - self.limit_kw
        residual = float(max(excess.max(initial=0.0), 0.0))
        converged = residual <= self.tol_kw
        if not converged:
            self.lam = np.maximum(0.0, self.lam + self.rho * excess)
            self.lam = np.round(self.lam, 9)
        result = RoundResult(self.round, tuple(float(x) for x in np.round(total, 6)),
                             round(residual, 6), converged, len(self._fresh))
        self.history.append(result)
        log.info("coordination round %d: residual %.3f kW (%d answers)", self.round, residual,
                 len(self._fresh))
        return result
