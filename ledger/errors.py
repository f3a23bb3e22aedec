"""Exceptions of the ledger layer.

``ledger`` imports nothing else of vdg, so it keeps its own root, :class:`LedgerError`. Each
subclass also inherits the builtin it resembles, so callers that only know Python's exceptions
still catch it.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Root of the ledger layer's exceptions."""


class FixedPointError(LedgerError, ValueError):
    """A value cannot be represented in the contracts' fixed-point encoding.

    Attributes:
        field: the name of the quantity (e.g. ``"qty_kwh"``).
        value: the offending value.
    """

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"{field}={value!r}: {reason}")
        self.field = field
        self.value = value


class ArtifactError(LedgerError, FileNotFoundError):
    """A compiled contract artifact is missing or unreadable."""


class ContractRevert(LedgerError, RuntimeError):  # noqa: N818 (the name other layers use)
    """A contract call reverted.

    Attributes:
        reason: the decoded custom error, e.g. ``"AlreadyAttested(0xab…, 7)"``, or the revert
            string; ``error`` is the bare error name (``"AlreadyAttested"``).
        error: the custom error's name, or ``""`` for a plain revert string.
        args: the custom error's arguments.
    """

    def __init__(self, reason: str, error: str = "", args: tuple[object, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error
        self.error_args = args


class ChainUnavailableError(LedgerError, ConnectionError):
    """The chain backend cannot be reached or started (e.g. anvil not installed)."""


class ProtocolError(LedgerError, ValueError):
    """A ledger call was made out of order or with inconsistent arguments (checked client-side)."""


class RawTxError(LedgerError, ValueError):
    """A pre-signed transaction was refused before sending (nothing reached the chain).

    Attributes:
        field: the part at fault (``"sender"``, ``"to"``, ``"chainId"``, ``"session"``, ...).
        value: the offending value.
    """

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"raw transaction: {field}={value!r}: {reason}")
        self.field = field
        self.value = value
