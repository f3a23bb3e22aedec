"""Frozen results returned by the ledger client."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.fixedpoint import WEIGHT_SCALE, micro_to_price, wh_to_kwh


@dataclass(frozen=True, slots=True)
class Deployment:
    """Addresses of a deployed ledger and its role holders."""

    registry: str
    credit: str
    energy: str
    market: str
    admm: str
    fleet: str
    billing: str
    admin: str
    dso: str
    auctioneer: str
    aggregator: str
    treasury: str


@dataclass(frozen=True, slots=True)
class SlotClearing:
    """The on-chain clearing of one slot (Huang MDA).

    Attributes:
        slot: slot index within the session (0-based).
        buy_price_ueur_per_kwh: price buyers pay, µEUR/kWh (0 when nothing trades).
        sell_price_ueur_per_kwh: price sellers receive, µEUR/kWh (0 when nothing trades).
        volume_wh: energy traded, Wh.
    """

    slot: int
    buy_price_ueur_per_kwh: int
    sell_price_ueur_per_kwh: int
    volume_wh: int

    @property
    def buy_price_eur_per_kwh(self) -> float:
        """Buyer price, EUR/kWh."""
        return micro_to_price(self.buy_price_ueur_per_kwh)

    @property
    def sell_price_eur_per_kwh(self) -> float:
        """Seller price, EUR/kWh."""
        return micro_to_price(self.sell_price_ueur_per_kwh)

    @property
    def volume_kwh(self) -> float:
        """Traded energy, kWh."""
        return wh_to_kwh(self.volume_wh)


@dataclass(frozen=True, slots=True)
class SessionClearing:
    """A cleared session as the contract emitted it.

    Attributes:
        session: session id.
        households: households in reveal order.
        cleared_wh: per household, per slot: Wh bought (> 0) or sold (< 0).
        slots: per-slot prices and volumes.
        prices_blob: the packed prices as emitted (input of settlement).
        results_blob: the packed results as emitted (input of settlement).
    """

    session: int
    households: tuple[str, ...]
    cleared_wh: tuple[tuple[int, ...], ...]
    slots: tuple[SlotClearing, ...]
    prices_blob: bytes
    results_blob: bytes


@dataclass(frozen=True, slots=True)
class FleetStep:
    """One fleet step as emitted (Couraud eqs. 10–12).

    Attributes:
        interval: market interval t.
        step: communication step within the interval (1-based).
        remaining_export_wh: RE_t,A = Ec_t − Σ Ee_t,k.
        state: battery state indicator S_t.
        weights_export_ppm: we_k in 1e-6.
        weights_import_ppm: wi_k in 1e-6.
    """

    interval: int
    step: int
    remaining_export_wh: int
    state: int
    weights_export_ppm: tuple[int, ...]
    weights_import_ppm: tuple[int, ...]

    @property
    def weights_export(self) -> tuple[float, ...]:
        """we_k as fractions."""
        return tuple(w / WEIGHT_SCALE for w in self.weights_export_ppm)

    @property
    def weights_import(self) -> tuple[float, ...]:
        """wi_k as fractions."""
        return tuple(w / WEIGHT_SCALE for w in self.weights_import_ppm)


@dataclass(frozen=True, slots=True)
class SignedReading:
    """A meter reading signed by the meter's key (EIP-191 over the billing contract's digest)."""

    household: str
    period: int
    net_export_wh: int
    v: int
    r: bytes
    s: bytes


@dataclass(frozen=True, slots=True)
class Bill:
    """A billed reading.

    Attributes:
        amount_nano: Credit units the household paid (> 0) or received (< 0).
    """

    household: str
    period: int
    net_export_wh: int
    schedule_wh: int
    amount_nano: int
