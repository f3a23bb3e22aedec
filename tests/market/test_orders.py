"""Order validation, the columnar table and the order book: bad input refused, nothing half-done."""

import numpy as np
import pytest

from grid.errors import VdgError
from market.errors import DuplicateOrderError, MarketError, OrderError, UnknownOrderError
from market.orders import Order, OrderBook, OrderTable, Side


def _order(**overrides):
    fields = {"id": "b1", "owner": "h1", "side": "buy", "quantity_kwh": 1.5,
              "price_eur_per_kwh": 0.25, "slot": 3}
    fields.update(overrides)
    return Order(**fields)


def test_order_is_resolved_to_the_integer_grid():
    order = _order(quantity_kwh=1.2345, price_eur_per_kwh=-0.1234567)
    assert order.side is Side.BUY
    assert order.is_buy
    assert order.quantity_wh == 1234  # half to even
    assert order.price_ueur_per_kwh == -123457
    assert isinstance(order.quantity_kwh, float)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("quantity_kwh", float("nan"), "order 'b1': quantity_kwh must be finite and > 0, got nan"),
        ("quantity_kwh", float("inf"), "quantity_kwh must be finite and > 0, got inf"),
        ("quantity_kwh", -1.0, "quantity_kwh must be finite and > 0, got -1.0"),
        ("quantity_kwh", 0, "quantity_kwh must be finite and > 0, got 0"),
        ("quantity_kwh", 0.0004, "quantity_kwh must be at least 0.001 kWh"),
        ("quantity_kwh", 2e6, "quantity_kwh must be at most"),
        ("quantity_kwh", "1", "quantity_kwh must be finite and > 0, got '1'"),
        ("quantity_kwh", True, "quantity_kwh must be finite and > 0, got True"),
        ("price_eur_per_kwh", float("nan"), "price_eur_per_kwh must be a finite number, got nan"),
        ("price_eur_per_kwh", float("-inf"), "price_eur_per_kwh must be a finite number, got -inf"),
        ("price_eur_per_kwh", 5000.0, "price_eur_per_kwh must be within"),
        ("price_eur_per_kwh", None, "price_eur_per_kwh must be a finite number, got None"),
        ("side", "hold", "side must be 'buy' or 'sell', got 'hold'"),
        ("slot", -1, "slot must be an integer >= 0, got -1"),
        ("slot", 1.0, "slot must be an integer >= 0, got 1.0"),
        ("owner", "", "owner must be a non-empty string"),
        ("session", "", "session must be a non-empty string or None"),
        ("id", "", "id must be a non-empty string"),
    ],
)
def test_bad_order_fields_are_refused_with_the_field_named(field, value, message):
    with pytest.raises(OrderError) as info:
        _order(**{field: value})
    assert message in str(info.value)
    assert isinstance(info.value, MarketError)
    assert isinstance(info.value, VdgError)
    assert isinstance(info.value, ValueError)


def test_table_from_orders_and_rank_follows_id_order():
    orders = [_order(id="z"), _order(id="a", side="sell"), _order(id="m")]
    table = OrderTable.from_orders(orders)
    assert table.ids == ("z", "a", "m")
    assert list(table.rank) == [2, 0, 1]
    assert list(table.is_buy) == [True, False, True]
    assert list(table.quantity_wh) == [1500] * 3
    assert table.index("m") == 2
    with pytest.raises(UnknownOrderError, match="'q'"):
        table.index("q")
    with pytest.raises(ValueError, match="read-only"):
        table.price_ueur_per_kwh[0] = 1


def test_table_refuses_duplicate_ids():
    with pytest.raises(DuplicateOrderError, match="order 'a': id is used twice"):
        OrderTable.from_orders([_order(id="a"), _order(id="b"), _order(id="a")])


def test_table_from_arrays_is_validated():
    good = {"is_buy": np.array([True, False]), "quantity_wh": np.array([5, 6]),
            "price_ueur_per_kwh": np.array([100, 90])}
    table = OrderTable.from_arrays(**good)
    assert table.ids == ("o0", "o1")
    assert list(table.slot) == [0, 0]
    with pytest.raises(OrderError, match="order 'o1': quantity_wh must be in"):
        OrderTable.from_arrays(**{**good, "quantity_wh": np.array([5, 0])})
    with pytest.raises(OrderError, match="price_ueur_per_kwh must be in"):
        OrderTable.from_arrays(**{**good, "price_ueur_per_kwh": np.array([10**10, 0])})
    with pytest.raises(OrderError, match="price_ueur_per_kwh: must be integers"):
        OrderTable.from_arrays(**{**good, "price_ueur_per_kwh": np.array([0.1, 0.2])})
    with pytest.raises(OrderError, match="quantity_wh: expected 2 values"):
        OrderTable.from_arrays(**{**good, "quantity_wh": np.array([5])})
    with pytest.raises(OrderError, match="is_buy must be booleans"):
        OrderTable.from_arrays(**{**good, "is_buy": np.array([1, 0])})
    with pytest.raises(DuplicateOrderError):
        OrderTable.from_arrays(**good, ids=["x", "x"])
    with pytest.raises(OrderError, match="slot must be in"):
        OrderTable.from_arrays(**good, slot=np.array([0, -3]))


def test_book_submit_cancel_and_slots():
    book = OrderBook(session="da", slots=range(24))
    book.submit(_order(id="a", session="da"))
    book.submit_many([_order(id="b", slot=0), _order(id="c", side="sell", slot=0)])
    assert len(book) == 3
    assert "a" in book
    assert [o.id for o in book.orders(slot=0)] == ["b", "c"]
    assert book.table(slot=0).ids == ("b", "c")
    assert book.cancel("b", owner="h1").id == "b"
    assert [o.id for o in book] == ["a", "c"]
    assert book.get("c").side is Side.SELL


def test_book_refusals_leave_the_book_unchanged():
    book = OrderBook(session="da", slots=range(24))
    book.submit(_order(id="a"))
    before = book.orders()
    with pytest.raises(DuplicateOrderError, match="order 'a': id is already in the book"):
        book.submit(_order(id="a"))
    with pytest.raises(DuplicateOrderError, match="order 'x'"):
        book.submit_many([_order(id="x"), _order(id="x")])
    with pytest.raises(OrderError, match="order 'late': slot 30 is not traded in session 'da'"):
        book.submit_many([_order(id="ok"), _order(id="late", slot=30)])
    with pytest.raises(OrderError, match="session is 'id1', this book is 'da'"):
        book.submit(_order(id="other", session="id1"))
    with pytest.raises(UnknownOrderError, match="order 'nope': not in the book"):
        book.cancel("nope")
    with pytest.raises(OrderError, match="owner is 'h1', cancel asked by 'h2'"):
        book.cancel("a", owner="h2")
    with pytest.raises(UnknownOrderError):
        book.get("nope")
    with pytest.raises(OrderError, match="expected an Order"):
        book.submit_many([_order(id="fine"), "not an order"])
    assert book.orders() == before
