"""Exceptions of the market layer.

Every error subclasses :class:`MarketError`, which is both a :class:`grid.errors.VdgError` (the
project's root) and a :class:`ValueError`, so callers that only know Python's builtins still catch
it. Messages name the field and the offending value, e.g.
``order 'b3': quantity_kwh must be finite and > 0, got nan``.
"""

from __future__ import annotations

from grid.errors import VdgError


class MarketError(VdgError, ValueError):
    """Root of the market layer's exceptions."""


class OrderError(MarketError):
    """An order (or a flexibility offer) has an invalid field, or does not fit its session."""


class DuplicateOrderError(OrderError):
    """An order id is already in use in the session."""


class UnknownOrderError(OrderError, KeyError):
    """An order id is not in the book (e.g. cancelling an order that was never submitted)."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class GateClosedError(MarketError):
    """An order was submitted or cancelled after the gate closure of its session or slot."""


class UnknownSessionError(MarketError, KeyError):
    """No session with the given id exists in the market."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class SessionError(MarketError):
    """A session or calendar is inconsistent (bad gate times, slots, clearing too early, ...)."""


class MechanismError(MarketError):
    """An unknown clearing mechanism or a bad mechanism parameter (e.g. ``k`` outside [0, 1])."""


class SettlementError(MarketError):
    """Settlement records are inconsistent (unknown order, negative meter reading, ...)."""
