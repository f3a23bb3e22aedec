"""Exceptions of the physical layer, and the project's root exception.

``VdgError`` lives here because ``grid`` is the bottom layer that every layer except ``ledger``
may import (``ledger`` keeps its own root, :class:`ledger.errors.LedgerError`, so that it imports
nothing of ours). Each error also inherits the builtin it resembles, so callers that only know
Python's exceptions still catch it.
"""

from __future__ import annotations


class VdgError(Exception):
    """Root of the exceptions raised by vdg's own code (except ``ledger``)."""


class GridError(VdgError):
    """Root of the physical layer's exceptions."""


class FeederError(GridError, ValueError):
    """A feeder cannot be built: unknown name, bad file, impossible impedance, ..."""


class NonRadialError(FeederError):
    """The network graph is not a tree rooted at the substation.

    Attributes:
        cycle: the buses of one cycle found in the graph, in order.
    """

    def __init__(self, message: str, cycle: list[object]) -> None:
        super().__init__(message)
        self.cycle = cycle


class ProfileError(GridError, ValueError):
    """Time series cannot be produced for the requested day, step or horizon."""


class DerError(GridError, ValueError):
    """A device model was given an impossible parameter."""


class OpfError(GridError, RuntimeError):
    """The optimiser did not return an optimal solution.

    Attributes:
        status: the solver status string (cvxpy's, e.g. ``"infeasible"``).
    """

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


class InfeasibleError(OpfError):
    """The problem has no feasible point (solver status infeasible)."""


class UnboundedError(OpfError):
    """The objective is unbounded below (solver status unbounded)."""
