"""Exceptions of the Mesa runtime (subclasses of the agent layer's errors)."""

from __future__ import annotations

from mas.errors import MasError, RuntimeFailureError, ScenarioError


class MesaRuntimeError(RuntimeFailureError):
    """The Mesa runtime cannot go on: the chain's clearing disagrees with the reference, etc."""


class ModelParameterError(ScenarioError):
    """A model parameter is unknown or its value is invalid (the message names it)."""


__all__ = ["MasError", "MesaRuntimeError", "ModelParameterError"]
