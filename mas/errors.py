"""Exceptions of the agent layer.

Every error names the field and the value at fault. Each also inherits the builtin it resembles,
so callers that only know Python's exceptions still catch it.
"""

from __future__ import annotations

from grid.errors import VdgError


class MasError(VdgError):
    """Root of the agent layer's exceptions."""


class ScenarioError(MasError, ValueError):
    """A scenario is invalid: unknown key, wrong type, value out of range."""


class MessageError(MasError, ValueError):
    """A message body is malformed: not JSON, wrong version, missing or invalid field."""


class ProtocolStateError(MasError, RuntimeError):
    """A message is well formed but does not fit the protocol's state (unknown session, late)."""


class PlanError(MasError, RuntimeError):
    """A household's optimisation did not return an optimal plan.

    Attributes:
        status: the solver status.
    """

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


class RuntimeFailureError(MasError, RuntimeError):
    """The agent runtime cannot go on: server unreachable, an agent process died, deadline."""
