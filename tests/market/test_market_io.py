"""Orders CSV round trip and the result rows."""

import io

import pytest
from hypothesis import given, settings
from market_strategies import orders

from market.auction import huang
from market.errors import OrderError
from market.io import read_orders_csv, result_json, result_rows, write_orders_csv


@settings(deadline=None, max_examples=50)
@given(book=orders(slots=3))
def test_orders_csv_round_trip(book):
    buffer = io.StringIO()
    write_orders_csv(book, buffer)
    buffer.seek(0)
    assert read_orders_csv(buffer) == book


@settings(deadline=None, max_examples=50)
@given(book=orders(slots=2))
def test_result_rows_follow_the_input_order(book):
    c = huang(book)
    rows = result_rows(c)
    assert [r["id"] for r in rows] == [o.id for o in book]
    for row, order in zip(rows, book, strict=True):
        fill = c.fill(order.id)
        assert row["filled_kwh"] == fill.filled_wh / 1000
        assert (row["price_eur_per_kwh"] is None) == (fill.filled_wh == 0)
    data = result_json(c)
    assert data["orders"] == rows
    assert [s["slot"] for s in data["slots"]] == sorted({o.slot for o in book})


def test_read_orders_names_the_source_and_line():
    text = "id,owner,side,quantity_kwh,price_eur_per_kwh,slot\na,h,buy,1,0.1,0\nb,h,buy,-2,0.1,0\n"
    with pytest.raises(OrderError, match=r"book\.csv, line 3: order 'b': quantity_kwh must be"):
        read_orders_csv(io.StringIO(text), name="book.csv")
    with pytest.raises(OrderError, match="missing column"):
        read_orders_csv(io.StringIO(""))
