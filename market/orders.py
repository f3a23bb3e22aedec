"""Orders, their columnar form for clearing, and the order book of one session.

An :class:`Order` is validated on creation. Quantities and prices are given in the user's units
(``quantity_kwh``, ``price_eur_per_kwh``) and resolved once, on creation, to the integer grid every
mechanism and the settlement work on:

* energy in watt-hours, ``quantity_wh = round(1000 * quantity_kwh)`` (at least 1 Wh);
* prices in micro-euro per kilowatt-hour, ``price_ueur_per_kwh = round(1e6 * price_eur_per_kwh)``;
* money in nano-euro: ``Wh * µEUR/kWh = nEUR`` exactly, so no payment is ever rounded.

Rounding is Python's ``round`` (half to even). An :class:`OrderTable` is the frozen, columnar
(numpy) view of many orders that the mechanisms in :mod:`market.auction` clear; an
:class:`OrderBook` collects the orders of one session, refuses duplicates and orders for slots the
session does not trade, and lets owners cancel. Gate closures are enforced one level up, by
:class:`market.vdg.VdgMarket`.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from numbers import Real

import numpy as np

from market.errors import DuplicateOrderError, OrderError, UnknownOrderError

logger = logging.getLogger(__name__)

WH_PER_KWH = 1000
"""Watt-hours per kilowatt-hour."""
UEUR_PER_EUR = 1_000_000
"""Micro-euro per euro; prices are integers in µEUR/kWh."""
NEUR_PER_UEUR = 1000
"""Nano-euro per micro-euro; ``Wh * µEUR/kWh`` is a whole number of nano-euro."""
MAX_QUANTITY_KWH = 1e6
"""Largest accepted order quantity (1 GWh), so that ``Wh * µEUR/kWh`` fits in 64 bits."""
MAX_ABS_PRICE_EUR_PER_KWH = 1e3
"""Largest accepted absolute limit price (EUR/kWh); negative prices are allowed."""
MAX_ABS_PRICE_UEUR_PER_KWH = round(MAX_ABS_PRICE_EUR_PER_KWH * UEUR_PER_EUR)


class Side(StrEnum):
    """Which way an order trades: ``buy`` energy or ``sell`` energy."""

    BUY = "buy"
    SELL = "sell"


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def kwh_to_wh(quantity_kwh: float) -> int:
    """Energy on the 1 Wh grid (round half to even)."""
    return round(float(quantity_kwh) * WH_PER_KWH)


def eur_to_ueur_per_kwh(price_eur_per_kwh: float) -> int:
    """A price on the 1 µEUR/kWh grid (round half to even)."""
    return round(float(price_eur_per_kwh) * UEUR_PER_EUR)


def check_price(price_eur_per_kwh: object, where: str, name: str = "price_eur_per_kwh") -> int:
    """Validate a price in EUR/kWh and return it in µEUR/kWh.

    Args:
        price_eur_per_kwh: the price to check.
        where: what holds the price, for the message (e.g. ``"order 'b3'"``).
        name: the field name used in the message.

    Returns:
        The price on the integer grid, µEUR/kWh.

    Raises:
        OrderError: the price is not a finite number within ±1000 EUR/kWh.
    """
    if not _is_number(price_eur_per_kwh) or not math.isfinite(float(price_eur_per_kwh)):  # type: ignore[arg-type]
        raise OrderError(f"{where}: {name} must be a finite number, got {price_eur_per_kwh!r}")
    if abs(float(price_eur_per_kwh)) > MAX_ABS_PRICE_EUR_PER_KWH:  # type: ignore[arg-type]
        raise OrderError(
            f"{where}: {name} must be within ±{MAX_ABS_PRICE_EUR_PER_KWH:g} EUR/kWh, "
            f"got {price_eur_per_kwh!r}"
        )
    return eur_to_ueur_per_kwh(price_eur_per_kwh)  # type: ignore[arg-type]


def check_quantity(quantity_kwh: object, where: str, name: str = "quantity_kwh") -> int:
    """Validate a positive energy in kWh and return it in Wh.

    Args:
        quantity_kwh: the quantity to check.
        where: what holds the quantity, for the message.
        name: the field name used in the message.

    Returns:
        The quantity on the 1 Wh grid (at least 1 Wh).

    Raises:
        OrderError: not a finite number > 0, above 1 GWh, or below 1 Wh once rounded.
    """
    if (
        not _is_number(quantity_kwh)
        or not math.isfinite(float(quantity_kwh))  # type: ignore[arg-type]
        or float(quantity_kwh) <= 0  # type: ignore[arg-type]
    ):
        raise OrderError(f"{where}: {name} must be finite and > 0, got {quantity_kwh!r}")
    if float(quantity_kwh) > MAX_QUANTITY_KWH:  # type: ignore[arg-type]
        raise OrderError(
            f"{where}: {name} must be at most {MAX_QUANTITY_KWH:g}, got {quantity_kwh!r}"
        )
    quantity_wh = kwh_to_wh(quantity_kwh)  # type: ignore[arg-type]
    if quantity_wh < 1:
        raise OrderError(f"{where}: {name} must be at least 0.001 kWh (1 Wh), got {quantity_kwh!r}")
    return quantity_wh


def check_slot(slot: object, where: str) -> int:
    """Validate a delivery slot index (an int >= 0) and return it.

    Raises:
        OrderError: the slot is not a non-negative integer.
    """
    if isinstance(slot, bool) or not isinstance(slot, int | np.integer) or slot < 0:
        raise OrderError(f"{where}: slot must be an integer >= 0, got {slot!r}")
    return int(slot)


@dataclass(frozen=True, slots=True)
class Order:
    """A limit order to buy or sell energy in one delivery slot, validated on creation.

    Attributes:
        id: unique id within its session (and within an :class:`OrderTable`).
        owner: the participant (household, DSO, aggregator...) that placed it.
        side: :attr:`Side.BUY` or :attr:`Side.SELL` (the strings ``"buy"``/``"sell"`` are accepted).
        quantity_kwh: energy to trade, > 0 and at most 1 GWh.
        price_eur_per_kwh: limit price: the most a buyer pays, the least a seller accepts.
        slot: delivery slot index, >= 0.
        session: id of the market session it belongs to, or None outside any session.
        quantity_wh: ``quantity_kwh`` on the 1 Wh grid (derived).
        price_ueur_per_kwh: ``price_eur_per_kwh`` on the 1 µEUR/kWh grid (derived).

    Raises:
        OrderError: a field is invalid; the message names the order, the field and the value.
    """

    id: str
    owner: str
    side: Side
    quantity_kwh: float
    price_eur_per_kwh: float
    slot: int
    session: str | None = None
    quantity_wh: int = field(init=False, repr=False)
    price_ueur_per_kwh: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise OrderError(f"order: id must be a non-empty string, got {self.id!r}")
        where = f"order {self.id!r}"
        if not isinstance(self.owner, str) or not self.owner:
            raise OrderError(f"{where}: owner must be a non-empty string, got {self.owner!r}")
        try:
            side = Side(self.side)
        except ValueError:
            raise OrderError(f"{where}: side must be 'buy' or 'sell', got {self.side!r}") from None
        quantity_wh = check_quantity(self.quantity_kwh, where)
        price = check_price(self.price_eur_per_kwh, where)
        slot = check_slot(self.slot, where)
        if self.session is not None and (not isinstance(self.session, str) or not self.session):
            raise OrderError(
                f"{where}: session must be a non-empty string or None, got {self.session!r}"
            )
        object.__setattr__(self, "side", side)
        object.__setattr__(self, "slot", slot)
        object.__setattr__(self, "quantity_kwh", float(self.quantity_kwh))
        object.__setattr__(self, "price_eur_per_kwh", float(self.price_eur_per_kwh))
        object.__setattr__(self, "quantity_wh", quantity_wh)
        object.__setattr__(self, "price_ueur_per_kwh", price)

    @property
    def is_buy(self) -> bool:
        """True for a buy order."""
        return self.side is Side.BUY


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@dataclass(frozen=True, slots=True)
class OrderTable:
    """Many orders as frozen columns, the input every mechanism clears.

    Build it with :meth:`from_orders` (from validated :class:`Order` objects) or
    :meth:`from_arrays` (integer columns, validated vectorially; for simulations and benchmarks).
    All arrays are read-only and share the input order.

    Attributes:
        ids: order ids, unique.
        owners: owner of each order.
        is_buy: True for buy orders.
        quantity_wh: quantities, Wh, >= 1.
        price_ueur_per_kwh: limit prices, µEUR/kWh.
        slot: delivery slots, >= 0.
        rank: position of each id in the sorted ids (Python string order, i.e. by code point),
            the deterministic tie-break of every mechanism.
    """

    ids: tuple[str, ...]
    owners: tuple[str, ...]
    is_buy: np.ndarray
    quantity_wh: np.ndarray
    price_ueur_per_kwh: np.ndarray
    slot: np.ndarray
    rank: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_orders(cls, orders: Iterable[Order]) -> OrderTable:
        """Columns of validated orders, in the given order.

        Raises:
            DuplicateOrderError: two orders share an id.
            OrderError: an element is not an :class:`Order`.
        """
        orders = list(orders)
        for order in orders:
            if not isinstance(order, Order):
                raise OrderError(f"orders: expected Order objects, got {type(order).__name__}")
        ids = tuple(o.id for o in orders)
        n = len(orders)
        return cls._build(
            ids=ids,
            owners=tuple(o.owner for o in orders),
            is_buy=np.fromiter((o.is_buy for o in orders), dtype=bool, count=n),
            quantity_wh=np.fromiter((o.quantity_wh for o in orders), dtype=np.int64, count=n),
            price=np.fromiter((o.price_ueur_per_kwh for o in orders), dtype=np.int64, count=n),
            slot=np.fromiter((o.slot for o in orders), dtype=np.int64, count=n),
        )

    @classmethod
    def from_arrays(
        cls,
        *,
        is_buy: Sequence[bool] | np.ndarray,
        quantity_wh: Sequence[int] | np.ndarray,
        price_ueur_per_kwh: Sequence[int] | np.ndarray,
        slot: Sequence[int] | np.ndarray | None = None,
        ids: Sequence[str] | None = None,
        owners: Sequence[str] | None = None,
    ) -> OrderTable:
        """Columns from integer arrays, validated vectorially.

        Args:
            is_buy: True for buy orders.
            quantity_wh: quantities, Wh, integers in [1, 1e9].
            price_ueur_per_kwh: limit prices, µEUR/kWh, integers within ±1e9.
            slot: delivery slots (default: all 0).
            ids: order ids (default ``"o0"``, ``"o1"``, ...).
            owners: owners (default: the order id).

        Raises:
            OrderError: a column has the wrong length, type or an out-of-range value (the message
                names the column and the first offending order).
            DuplicateOrderError: two orders share an id.
        """
        buy = np.asarray(is_buy)
        n = len(buy)
        if buy.dtype != bool:
            raise OrderError(f"is_buy must be booleans, got dtype {buy.dtype}")
        columns = {}
        for name, values, lo, hi in (
            ("quantity_wh", quantity_wh, 1, round(MAX_QUANTITY_KWH * WH_PER_KWH)),
            ("price_ueur_per_kwh", price_ueur_per_kwh, -MAX_ABS_PRICE_UEUR_PER_KWH,
             MAX_ABS_PRICE_UEUR_PER_KWH),
            ("slot", np.zeros(n, dtype=np.int64) if slot is None else slot, 0,
             np.iinfo(np.int64).max),
        ):
            array = np.asarray(values)
            if array.shape != (n,):
                raise OrderError(f"{name}: expected {n} values, got shape {array.shape}")
            if n and not np.issubdtype(array.dtype, np.integer):
                raise OrderError(f"{name}: must be integers, got dtype {array.dtype}")
            array = array.astype(np.int64)
            bad = np.flatnonzero((array < lo) | (array > hi))
            if bad.size:
                i = int(bad[0])
                label = ids[i] if ids is not None else f"o{i}"
                raise OrderError(f"order {label!r}: {name} must be in [{lo}, {hi}], got {array[i]}")
            columns[name] = array
        id_tuple = tuple(f"o{i}" for i in range(n)) if ids is None else tuple(ids)
        if len(id_tuple) != n:
            raise OrderError(f"ids: expected {n} values, got {len(id_tuple)}")
        for order_id in id_tuple:
            if not isinstance(order_id, str) or not order_id:
                raise OrderError(f"ids: every id must be a non-empty string, got {order_id!r}")
        owner_tuple = id_tuple if owners is None else tuple(owners)
        if len(owner_tuple) != n:
            raise OrderError(f"owners: expected {n} values, got {len(owner_tuple)}")
        return cls._build(
            ids=id_tuple,
            owners=owner_tuple,
            is_buy=buy.copy(),
            quantity_wh=columns["quantity_wh"],
            price=columns["price_ueur_per_kwh"],
            slot=columns["slot"],
        )

    @classmethod
    def _build(
        cls,
        *,
        ids: tuple[str, ...],
        owners: tuple[str, ...],
        is_buy: np.ndarray,
        quantity_wh: np.ndarray,
        price: np.ndarray,
        slot: np.ndarray,
    ) -> OrderTable:
        n = len(ids)
        by_id = sorted(range(n), key=ids.__getitem__)
        rank = np.empty(n, dtype=np.int64)
        rank[np.asarray(by_id, dtype=np.int64)] = np.arange(n, dtype=np.int64)
        for a, b in itertools.pairwise(by_id):
            if ids[a] == ids[b]:
                raise DuplicateOrderError(f"order {ids[a]!r}: id is used twice")
        return cls(
            ids=ids,
            owners=owners,
            is_buy=_readonly(is_buy),
            quantity_wh=_readonly(quantity_wh),
            price_ueur_per_kwh=_readonly(price),
            slot=_readonly(slot),
            rank=_readonly(rank),
        )

    def index(self, order_id: str) -> int:
        """Row of an order id.

        Raises:
            UnknownOrderError: the id is not in the table.
        """
        try:
            return self.ids.index(order_id)
        except ValueError:
            raise UnknownOrderError(f"order {order_id!r}: id is not in the table") from None


class OrderBook:
    """The orders of one session, by delivery slot; atomic submit and cancel.

    The book checks what it can know by itself: duplicate ids, the session named on an order, and
    the set of slots the session trades. A refused order (or batch) leaves the book unchanged.

    Args:
        session: id of the session; orders naming another session are refused.
        slots: the delivery slots the session trades (None: any slot).
    """

    def __init__(self, session: str | None = None, slots: Iterable[int] | None = None) -> None:
        self.session = session
        self.slots: frozenset[int] | None = None if slots is None else frozenset(slots)
        self._orders: dict[str, Order] = {}

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def __iter__(self) -> Iterator[Order]:
        return iter(self._orders.values())

    def _check(self, order: Order, seen: set[str]) -> None:
        if not isinstance(order, Order):
            raise OrderError(f"expected an Order, got {type(order).__name__}")
        where = f"order {order.id!r}"
        if order.id in self._orders or order.id in seen:
            raise DuplicateOrderError(
                f"{where}: id is already in the book of session {self.session!r}"
            )
        if self.session is not None and order.session not in (None, self.session):
            raise OrderError(
                f"{where}: session is {order.session!r}, this book is {self.session!r}"
            )
        if self.slots is not None and order.slot not in self.slots:
            lo, hi = (min(self.slots), max(self.slots)) if self.slots else (None, None)
            raise OrderError(
                f"{where}: slot {order.slot} is not traded in session {self.session!r} "
                f"(slots {lo}..{hi})"
            )

    def submit(self, order: Order) -> None:
        """Add one order.

        Raises:
            DuplicateOrderError: the id is already in the book.
            OrderError: the order names another session or a slot the session does not trade.
        """
        self.submit_many([order])

    def check_many(self, orders: Iterable[Order]) -> None:
        """Raise the error :meth:`submit_many` would raise for these orders; change nothing.

        Raises:
            DuplicateOrderError: an id is already in the book or repeated in the batch.
            OrderError: an order names another session or a slot the session does not trade.
        """
        seen: set[str] = set()
        for order in orders:
            self._check(order, seen)
            seen.add(order.id)

    def submit_many(self, orders: Iterable[Order]) -> None:
        """Add several orders, all or none.

        Raises:
            DuplicateOrderError: an id is already in the book or repeated in the batch.
            OrderError: an order names another session or a slot the session does not trade.
        """
        batch = list(orders)
        self.check_many(batch)
        for order in batch:
            self._orders[order.id] = order
        logger.debug(
            "session %s: %d order(s) added, %d in book", self.session, len(batch), len(self)
        )

    def cancel(self, order_id: str, owner: str | None = None) -> Order:
        """Remove an order and return it.

        Args:
            order_id: the order to cancel.
            owner: if given, the order must belong to this owner.

        Raises:
            UnknownOrderError: no such order in the book.
            OrderError: the order belongs to someone else.
        """
        order = self._orders.get(order_id)
        if order is None:
            raise UnknownOrderError(
                f"order {order_id!r}: not in the book of session {self.session!r}"
            )
        if owner is not None and order.owner != owner:
            raise OrderError(
                f"order {order_id!r}: owner is {order.owner!r}, cancel asked by {owner!r}"
            )
        del self._orders[order_id]
        return order

    def get(self, order_id: str) -> Order:
        """The order with this id.

        Raises:
            UnknownOrderError: no such order in the book.
        """
        try:
            return self._orders[order_id]
        except KeyError:
            raise UnknownOrderError(
                f"order {order_id!r}: not in the book of session {self.session!r}"
            ) from None

    def orders(self, slot: int | None = None) -> tuple[Order, ...]:
        """The orders in submission order, optionally only those of one slot."""
        if slot is None:
            return tuple(self._orders.values())
        return tuple(o for o in self._orders.values() if o.slot == slot)

    def table(self, slot: int | None = None) -> OrderTable:
        """A frozen columnar snapshot of the book (or of one slot) for clearing."""
        return OrderTable.from_orders(self.orders(slot))
