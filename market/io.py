"""Reading orders from CSV and writing a clearing as rows (the CLI's file formats).

Input columns: ``id,owner,side,quantity_kwh,price_eur_per_kwh,slot`` (``side`` is ``buy`` or
``sell``; extra columns are ignored). Output: one row per input order, in input order, with
``id,slot,filled_kwh,price_eur_per_kwh`` (the price is empty for an order that traded nothing).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from market.auction import Clearing
from market.errors import OrderError
from market.orders import NEUR_PER_UEUR, UEUR_PER_EUR, WH_PER_KWH, Order

ORDER_COLUMNS = ("id", "owner", "side", "quantity_kwh", "price_eur_per_kwh", "slot")
"""Columns an orders CSV must have."""
RESULT_COLUMNS = ("id", "slot", "filled_kwh", "price_eur_per_kwh")
"""Columns of a clearing written as CSV."""


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text  # Order refuses it and names the field and the text


def _slot(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text


def read_orders_csv(source: TextIO, name: str = "orders") -> list[Order]:
    """Parse and validate orders from CSV text.

    Args:
        source: an open text file.
        name: how to call the source in error messages (e.g. the file name).

    Returns:
        The orders, in file order.

    Raises:
        OrderError: a column is missing or a row is invalid; the message names the line, the
            order, the field and the value.
    """
    reader = csv.DictReader(source)
    missing = [c for c in ORDER_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise OrderError(
            f"{name}: missing column(s) {', '.join(missing)}; expected {','.join(ORDER_COLUMNS)}"
        )
    orders = []
    for row in reader:
        try:
            orders.append(
                Order(
                    id=(row["id"] or "").strip(),
                    owner=(row["owner"] or "").strip(),
                    side=(row["side"] or "").strip().lower(),  # type: ignore[arg-type]
                    quantity_kwh=_number(row["quantity_kwh"] or ""),  # type: ignore[arg-type]
                    price_eur_per_kwh=_number(row["price_eur_per_kwh"] or ""),  # type: ignore[arg-type]
                    slot=_slot(row["slot"] or ""),  # type: ignore[arg-type]
                )
            )
        except OrderError as exc:
            raise OrderError(f"{name}, line {reader.line_num}: {exc}") from None
    return orders


def read_orders_file(path: str | Path) -> list[Order]:
    """Orders from a CSV file (see :func:`read_orders_csv`)."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as source:
        return read_orders_csv(source, name=str(path))


def _kwh(wh: int) -> float:
    return wh / WH_PER_KWH


def _eur_per_kwh(price: int | None) -> float | None:
    return None if price is None else price / UEUR_PER_EUR


def _eur(neur: int) -> float:
    return neur / (NEUR_PER_UEUR * UEUR_PER_EUR)


def result_rows(clearing: Clearing) -> list[dict[str, Any]]:
    """One dict per order (table order) with the :data:`RESULT_COLUMNS`."""
    return [
        {
            "id": f.order_id,
            "slot": f.slot,
            "filled_kwh": _kwh(f.filled_wh),
            "price_eur_per_kwh": _eur_per_kwh(f.price_ueur_per_kwh),
        }
        for f in clearing.fills()
    ]


def write_result_csv(clearing: Clearing, out: TextIO) -> None:
    """Write the clearing as CSV rows (empty price for orders that traded nothing)."""
    writer = csv.DictWriter(out, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in result_rows(clearing):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})


def result_json(clearing: Clearing) -> dict[str, Any]:
    """The clearing as a JSON-ready dict: ``orders`` (the CSV rows) and ``slots`` summaries."""
    return {
        "mechanism": clearing.mechanism,
        "traded_kwh": _kwh(clearing.traded_wh),
        "auctioneer_surplus_eur": _eur(clearing.auctioneer_surplus_neur),
        "slots": [
            {
                "slot": s.slot,
                "traded_kwh": _kwh(s.traded_wh),
                "efficient_kwh": _kwh(s.efficient_wh),
                "buy_price_eur_per_kwh": _eur_per_kwh(s.buy_price_ueur_per_kwh),
                "sell_price_eur_per_kwh": _eur_per_kwh(s.sell_price_ueur_per_kwh),
                "auctioneer_surplus_eur": _eur(s.auctioneer_surplus_neur),
                "break_even_buy": s.break_even_buy,
                "break_even_sell": s.break_even_sell,
            }
            for s in clearing.slots
        ],
        "orders": result_rows(clearing),
    }


def write_orders_csv(orders: Iterable[Order], out: TextIO) -> None:
    """Write orders in the input format (useful to produce example books)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ORDER_COLUMNS)
    for o in orders:
        writer.writerow([o.id, o.owner, o.side.value, o.quantity_kwh, o.price_eur_per_kwh, o.slot])
