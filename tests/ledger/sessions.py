"""A market session driven through its phases by the tests (used by the fixtures)."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.client import Web3Ledger
from ledger.orders import OrderVector


@dataclass
class Session:
    """A market session driven through its phases in a test."""

    led: Web3Ledger
    sid: int
    households: list[str]
    vectors: list[OrderVector]
    start_slot: int


SESSION_VECTORS = [
    # two slots; qty kWh (buy > 0, sell < 0), price EUR/kWh
    OrderVector.from_kwh([1.0, -0.5], [0.30, 0.10]),
    OrderVector.from_kwh([2.0, 1.0], [0.25, 0.40]),
    OrderVector.from_kwh([-1.5, -2.0], [0.05, 0.10]),
    OrderVector.from_kwh([-1.0, 0.0], [0.20, 0.0]),
]
