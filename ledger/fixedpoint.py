"""Fixed-point conversion between the client's floats and the contracts' integers.

This module is the only place where units are scaled. Every converter checks its bounds and
raises :class:`~ledger.errors.FixedPointError` naming the field and the value.

Encodings used by the contracts:

* energy: integer Wh (``int32``, ``|e| < 2**31``); 1 kWh = 1000 units.
* price: integer µEUR/kWh (``uint32``).
* money: Credit units of 1e-9 EUR (Credit has 9 decimals), so Wh × µEUR/kWh is exact.
* ADMM coupling values: ``int64`` with :data:`ADMM_SCALE` units per 1.
* state of charge: 1e-4 (``uint16``, 0..10000); fleet weights: 1e-6.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from ledger.errors import FixedPointError

WH_PER_KWH = 1000
MICRO_EUR_PER_EUR = 1_000_000
NANO_EUR_PER_EUR = 1_000_000_000
ADMM_SCALE = 1_000_000
SOC_SCALE = 10_000
WEIGHT_SCALE = 1_000_000

INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1
INT64_MAX = 2**63 - 1


def _finite(field: str, value: float) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError) as exc:
        raise FixedPointError(field, value, "not a number") from exc
    if not math.isfinite(f):
        raise FixedPointError(field, value, "not finite")
    return f


def _check_range(field: str, value: object, n: int, lo: int, hi: int) -> int:
    if not lo <= n <= hi:
        raise FixedPointError(field, value, f"outside [{lo}, {hi}] after scaling")
    return n


def kwh_to_wh(field: str, e_kwh: float, *, allow_negative: bool = True) -> int:
    """Energy in kWh to integer Wh (rounded to nearest), bounded to ``int32`` magnitude."""
    f = _finite(field, e_kwh)
    if not allow_negative and f < 0:
        raise FixedPointError(field, e_kwh, "must not be negative")
    return _check_range(field, e_kwh, round(f * WH_PER_KWH), -INT32_MAX, INT32_MAX)


def wh_to_kwh(e_wh: int) -> float:
    """Integer Wh to kWh."""
    return e_wh / WH_PER_KWH


def price_to_micro(field: str, price_eur_per_kwh: float) -> int:
    """Price in EUR/kWh to integer µEUR/kWh (``uint32``)."""
    f = _finite(field, price_eur_per_kwh)
    if f < 0:
        raise FixedPointError(field, price_eur_per_kwh, "must not be negative")
    return _check_range(field, price_eur_per_kwh, round(f * MICRO_EUR_PER_EUR), 0, UINT32_MAX)


def micro_to_price(p_micro: int) -> float:
    """Integer µEUR/kWh to EUR/kWh."""
    return p_micro / MICRO_EUR_PER_EUR


def eur_to_nano(field: str, amount_eur: float) -> int:
    """Money in EUR to Credit units (1e-9 EUR), non-negative."""
    f = _finite(field, amount_eur)
    if f < 0:
        raise FixedPointError(field, amount_eur, "must not be negative")
    return _check_range(field, amount_eur, round(f * NANO_EUR_PER_EUR), 0, 2**255)


def nano_to_eur(amount_nano: int) -> float:
    """Credit units to EUR."""
    return amount_nano / NANO_EUR_PER_EUR


def penalty_to_nano_per_wh(field: str, penalty_eur_per_kwh: float) -> int:
    """Penalty in EUR/kWh to Credit units per Wh (1e-9 EUR/Wh = 1e-6 EUR/kWh)."""
    return price_to_micro(field, penalty_eur_per_kwh)


def soc_to_fixed(field: str, soc_frac: float) -> int:
    """State of charge in [0, 1] to 1e-4 units."""
    f = _finite(field, soc_frac)
    return _check_range(field, soc_frac, round(f * SOC_SCALE), 0, SOC_SCALE)


def admm_to_fixed(field: str, values: Iterable[float]) -> list[int]:
    """ADMM coupling values to ``int64`` fixed point (``ADMM_SCALE`` per unit)."""
    out = []
    for v in values:
        f = _finite(field, v)
        out.append(_check_range(field, v, round(f * ADMM_SCALE), -INT64_MAX, INT64_MAX))
    return out


def pack_int(values: Sequence[int], width: int, *, signed: bool) -> bytes:
    """Pack integers big-endian, ``width`` bytes each (two's complement when signed)."""
    return b"".join(int(v).to_bytes(width, "big", signed=signed) for v in values)


def unpack_int(data: bytes, width: int, *, signed: bool) -> list[int]:
    """Inverse of :func:`pack_int`."""
    if len(data) % width:
        raise FixedPointError("data", len(data), f"length is not a multiple of {width}")
    return [
        int.from_bytes(data[i : i + width], "big", signed=signed)
        for i in range(0, len(data), width)
    ]


def admm_pack(values_fixed: Sequence[int] | np.ndarray) -> bytes:
    """``int64`` big-endian packing of ADMM values."""
    return np.asarray(values_fixed, dtype=">i8").tobytes()


def admm_unpack(data: bytes) -> np.ndarray:
    """Inverse of :func:`admm_pack` (returns int64 array)."""
    return np.frombuffer(data, dtype=">i8").astype(np.int64)
