"""Fixed-point conversion: exact units, bounds, and errors that name the field."""

from __future__ import annotations

import math

import pytest
from eth_utils import keccak
from hypothesis import given
from hypothesis import strategies as st

from ledger import fixedpoint as fp
from ledger.errors import FixedPointError, LedgerError
from ledger.orders import OrderVector, SlotOrder, commitment, sort_book


def test_units() -> None:
    assert fp.kwh_to_wh("e", 1.2344) == 1234
    assert fp.kwh_to_wh("e", -1.2346) == -1235  # nearest Wh
    assert fp.price_to_micro("p", 0.25) == 250_000
    assert fp.eur_to_nano("m", 1.5) == 1_500_000_000
    # Wh x µEUR/kWh = nEUR: 1 kWh at 0.25 EUR/kWh is 0.25 EUR
    assert fp.kwh_to_wh("e", 1.0) * fp.price_to_micro("p", 0.25) == fp.eur_to_nano("m", 0.25)
    assert fp.soc_to_fixed("s", 0.5) == 5000


@pytest.mark.parametrize(
    ("fn", "value"),
    [
        (fp.kwh_to_wh, 2.2e6),
        (fp.kwh_to_wh, math.nan),
        (fp.kwh_to_wh, math.inf),
        (fp.price_to_micro, -0.01),
        (fp.price_to_micro, 5000.0),
        (fp.eur_to_nano, -1.0),
        (fp.soc_to_fixed, 1.01),
        (fp.soc_to_fixed, -0.01),
    ],
)
def test_out_of_range_values_name_their_field(fn: object, value: float) -> None:
    with pytest.raises(FixedPointError) as err:
        fn("the_field", value)  # type: ignore[operator]
    assert err.value.field == "the_field"
    assert "the_field" in str(err.value)
    assert isinstance(err.value, ValueError)
    assert isinstance(err.value, LedgerError)


def test_negative_energy_can_be_refused() -> None:
    with pytest.raises(FixedPointError):
        fp.kwh_to_wh("e", -1.0, allow_negative=False)


@given(st.lists(st.integers(-(2**62), 2**62), max_size=50))
def test_admm_packing_round_trips(values: list[int]) -> None:
    assert fp.admm_unpack(fp.admm_pack(values)).tolist() == values


SLOT_ORDERS = st.tuples(st.integers(-fp.INT32_MAX, fp.INT32_MAX), st.integers(0, fp.UINT32_MAX))
"""(qty_wh, price_ueur_per_kwh) of one slot, over the whole range the encoding takes."""


@given(st.lists(SLOT_ORDERS, min_size=1))
def test_order_vector_round_trips(entries: list[tuple[int, int]]) -> None:
    v = OrderVector(tuple(SlotOrder(q, p) for q, p in entries))
    assert OrderVector.decode(v.encode()) == v


@given(st.lists(SLOT_ORDERS, max_size=30))
def test_order_vector_packs_int32_and_uint32_big_endian(entries: list[tuple[int, int]]) -> None:
    v = OrderVector(tuple(SlotOrder(q, p) for q, p in entries))
    assert v.encode() == b"".join(
        q.to_bytes(4, "big", signed=True) + p.to_bytes(4, "big") for q, p in entries
    )


def test_order_vector_encodes_once_and_stays_a_value() -> None:
    v = OrderVector((SlotOrder(5, 7), SlotOrder(-3, 0)))
    packed = v.encode()
    assert v.encode() is packed  # committed and revealed: encoded once
    fresh = OrderVector((SlotOrder(5, 7), SlotOrder(-3, 0)))
    assert fresh == v
    assert hash(fresh) == hash(v)
    assert "packed" not in repr(v)


def test_order_vector_refuses_int32_min() -> None:
    with pytest.raises(FixedPointError):
        OrderVector((SlotOrder(-(2**31), 1),)).encode()


@pytest.mark.parametrize(
    ("slots", "field"),
    [
        ([(5, 1), (2**31, 1)], r"qty_wh\[1\]"),
        ([(5, -1), (1, 1)], r"price_ueur_per_kwh\[0\]"),
        ([(5, 1), (1, 2**32)], r"price_ueur_per_kwh\[1\]"),
    ],
)
def test_order_vector_names_the_value_it_cannot_pack(slots, field) -> None:
    with pytest.raises(FixedPointError, match=field):
        OrderVector(tuple(SlotOrder(q, p) for q, p in slots)).encode()


def test_commitment_binds_session_household_orders_and_salt() -> None:
    h = "0x" + "11" * 20
    base = commitment(1, h, b"\x00" * 8, b"\x01" * 32)
    assert base == keccak((1).to_bytes(32, "big") + b"\x11" * 20 + b"\x00" * 8 + b"\x01" * 32)
    mixed = "0x" + "aB" * 20  # the address's case does not matter, as on chain
    salt = b"\x01" * 32
    assert commitment(1, mixed, b"", salt) == commitment(1, mixed.lower(), b"", salt)
    assert commitment(2, h, b"\x00" * 8, b"\x01" * 32) != base
    assert commitment(1, "0x" + "12" * 20, b"\x00" * 8, b"\x01" * 32) != base
    assert commitment(1, h, b"\x00" * 7 + b"\x01", b"\x01" * 32) != base
    assert commitment(1, h, b"\x00" * 8, b"\x02" * 32) != base


def test_sort_book_orders_by_price_then_index() -> None:
    vs = [
        OrderVector((SlotOrder(10, 5),)),
        OrderVector((SlotOrder(10, 7),)),
        OrderVector((SlotOrder(-10, 3),)),
        OrderVector((SlotOrder(10, 7),)),
        OrderVector((SlotOrder(-10, 1),)),
    ]
    blob = sort_book(vs, 1)
    idx = [int.from_bytes(blob[i : i + 2], "big") for i in range(0, len(blob), 2)]
    assert idx == [3, 2, 1, 3, 0, 4, 2]
