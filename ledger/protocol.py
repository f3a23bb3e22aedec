"""The ledger client interface other layers program against (structural typing).

:class:`ledger.client.Web3Ledger` implements :class:`Ledger` on any EVM;
:class:`ledger.admm.ContractAdmm` and :class:`ledger.admm_reference.ReferenceAdmm` implement
:class:`AdmmAggregator`. An in-memory ledger may implement :class:`Ledger` only if it passes the
same behaviour suite (``tests/ledger``); none exists yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from ledger.admm_reference import RoundResult
from ledger.chain import GasRecord
from ledger.orders import OrderVector
from ledger.results import Bill, FleetStep, SessionClearing, SignedReading


class Ledger(Protocol):
    """Roles, money, market sessions, proof of flow, fleet and billing."""

    @property
    def gas_log(self) -> list[GasRecord]:
        """Gas of every transaction sent so far."""
        ...

    def grant(self, account: str, role: int, *, sender: str | None = None) -> None:
        """Admin grants role bits."""
        ...

    def add_households(self, n: int, *, credit_eur: float = 0.0) -> list[str]:
        """Register households with meters, approvals and optional credit."""
        ...

    def mint_credit(self, to: str, amount_eur: float, *, sender: str | None = None) -> None:
        """Treasury mints Credit."""
        ...

    def credit_nano(self, account: str) -> int:
        """Credit balance, 1e-9 EUR."""
        ...

    def energy_wh(self, account: str) -> int:
        """Energy-certificate balance, Wh."""
        ...

    def attest(
        self, slot: int, net_export_kwh: Mapping[str, float], *, sender: str | None = None
    ) -> None:
        """DSO attests metered flows; certificates minted for export."""
        ...

    def open_session(
        self,
        start_slot: int,
        n_slots: int,
        *,
        commit_s: int = 600,
        reveal_s: int = 600,
        penalty_eur_per_kwh: float = 0.0,
    ) -> int:
        """Open a market session; returns its id."""
        ...

    def commit(
        self, sid: int, household: str, orders: OrderVector, salt: bytes | None = None
    ) -> bytes:
        """Seal a household's order vector."""
        ...

    def reveal(
        self, sid: int, household: str, orders: OrderVector | None = None, salt: bytes | None = None
    ) -> None:
        """Open it and escrow the maximum payment."""
        ...

    def clear(self, sid: int, *, sorted_book: bytes | None = None) -> SessionClearing:
        """Clear every slot (Huang MDA)."""
        ...

    def settle(self, sid: int, *, sender: str | None = None) -> None:
        """Settle against the attestations."""
        ...

    def withdraw(self, account: str) -> int:
        """Pull what settlement credited."""
        ...

    def fleet_step(
        self, interval: int, soc_frac: Sequence[float], exported_kwh: Sequence[float]
    ) -> FleetStep:
        """One fleet coordination step."""
        ...

    def sign_reading(self, household: str, period: int, net_export_kwh: float) -> SignedReading:
        """The household's meter signs a reading."""
        ...

    def bill(self, reading: SignedReading, *, sender: str | None = None) -> Bill:
        """Bill a signed reading."""
        ...

    def advance_time(self, seconds: int) -> None:
        """Move the chain clock (test chains)."""
        ...


class AdmmAggregator(Protocol):
    """The aggregator step of consensus ADMM (see :mod:`ledger.admm_reference`)."""

    def setup(self, n_global: int, copies: Sequence[Sequence[int]]) -> None:
        """Declare globals and each node's copies."""
        ...

    def open_round(self, round_index: int, deadline_s: float) -> None:
        """Open a round."""
        ...

    def submit(self, node: int, x_local: Sequence[float]) -> None:
        """A node's local coupling values."""
        ...

    def close_round(
        self, rho: float, eps_primal: float | None = None, eps_dual: float | None = None
    ) -> RoundResult:
        """z-update and residuals."""
        ...
