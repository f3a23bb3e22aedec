"""VDG market sessions, DSO flexibility calls, the supplier fallback, VDGs per feeder or subtree.

A calendar of day-ahead, intraday and real-time sessions with gate closures; DSO flexibility calls;
the supplier taking up energy not matched locally; one VDG per feeder or per subtree.

Following the VDG paper (§4.4, §5.1): the day-ahead local session covers every slot of the next day
and closes before the wholesale day-ahead gate, so that unmatched energy can still go to the
wholesale market; intraday sessions close on a rolling basis, each covering the slots that have not
yet started; a real-time session per slot trades the last deviations. Energy not matched locally is
bought from / sold to the supplier at retail import / feed-in prices.

All times are timezone-aware :class:`datetime.datetime`; an order is accepted strictly before its
session's gate closure, and a session is cleared at or after it.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import numpy as np

from market.auction import MECHANISMS, Clearing, clear
from market.errors import (
    DuplicateOrderError,
    GateClosedError,
    MechanismError,
    OrderError,
    SessionError,
    UnknownSessionError,
)
from market.orders import (
    WH_PER_KWH,
    Order,
    OrderBook,
    Side,
    check_price,
    check_slot,
)

logger = logging.getLogger(__name__)


class SessionKind(StrEnum):
    """The timescale of a session (VDG paper §4.4) or a DSO flexibility call."""

    DAY_AHEAD = "day-ahead"
    INTRADAY = "intraday"
    REAL_TIME = "real-time"
    FLEXIBILITY = "flexibility"


def _check_aware(value: object, name: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise SessionError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value


def _check_mechanism(mechanism: str, k: float, where: str) -> None:
    if mechanism not in MECHANISMS:
        raise MechanismError(f"{where}: mechanism must be one of {', '.join(MECHANISMS)}, "
                             f"got {mechanism!r}")
    if isinstance(k, bool) or not isinstance(k, int | float) or not 0 <= k <= 1:
        raise MechanismError(f"{where}: k must be a number in [0, 1], got {k!r}")


@dataclass(frozen=True, slots=True)
class Session:
    """One market session: which slots it trades and when its gate closes.

    Attributes:
        id: unique id within a :class:`VdgMarket`.
        kind: day-ahead, intraday, real-time or flexibility.
        slots: the delivery slots traded (sorted, unique, >= 0).
        gate_closure: orders are accepted strictly before this instant; clearing at or after it.
        mechanism: clearing mechanism name (default Huang et al.'s MDA).
        k: the uniform mechanism's k.
    """

    id: str
    kind: SessionKind
    slots: tuple[int, ...]
    gate_closure: datetime
    mechanism: str = "huang"
    k: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise SessionError(f"session: id must be a non-empty string, got {self.id!r}")
        where = f"session {self.id!r}"
        try:
            object.__setattr__(self, "kind", SessionKind(self.kind))
        except ValueError:
            raise SessionError(f"{where}: kind must be one of {[k.value for k in SessionKind]}, "
                               f"got {self.kind!r}") from None
        slots = tuple(sorted({check_slot(s, where) for s in self.slots}))
        if not slots:
            raise SessionError(f"{where}: slots must not be empty")
        object.__setattr__(self, "slots", slots)
        _check_aware(self.gate_closure, f"{where}: gate_closure")
        _check_mechanism(self.mechanism, self.k, where)


@dataclass(frozen=True, slots=True)
class MarketCalendar:
    """The sessions of one delivery day.

    Attributes:
        day_start: start of the delivery day (aware), the start of slot 0.
        slot_minutes: 60 (24 slots) or 15 (96 slots).
        wholesale_gate: the wholesale day-ahead gate closure, relative to ``day_start``
            (default D-1 12:00: ``-12 h``).
        day_ahead_lead: the local day-ahead session closes this long before the wholesale gate.
        intraday_every: spacing of intraday gate closures.
        intraday_lead: an intraday session closes this long before the first slot it trades.
        real_time_lead: the real-time session of a slot closes this long before the slot starts.
    """

    day_start: datetime
    slot_minutes: int = 60
    wholesale_gate: timedelta = timedelta(hours=-12)
    day_ahead_lead: timedelta = timedelta(hours=1)
    intraday_every: timedelta = timedelta(hours=1)
    intraday_lead: timedelta = timedelta(hours=1)
    real_time_lead: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        _check_aware(self.day_start, "calendar: day_start")
        if self.slot_minutes not in (15, 60):
            raise SessionError(
                f"calendar: slot_minutes must be 15 or 60, got {self.slot_minutes!r}"
            )
        for name in ("day_ahead_lead", "intraday_every", "intraday_lead", "real_time_lead"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value <= timedelta(0):
                raise SessionError(f"calendar: {name} must be a positive timedelta, got {value!r}")
        if self.wholesale_gate >= timedelta(0):
            raise SessionError(
                f"calendar: wholesale_gate must be before day_start, got {self.wholesale_gate!r}"
            )
        if self.intraday_lead < self.real_time_lead:
            raise SessionError("calendar: intraday_lead must be >= real_time_lead, got "
                               f"{self.intraday_lead!r} < {self.real_time_lead!r}")

    @property
    def n_slots(self) -> int:
        """Slots in the day: 24 or 96."""
        return 24 * 60 // self.slot_minutes

    @property
    def slot_hours(self) -> float:
        """Duration of one slot, hours."""
        return self.slot_minutes / 60

    def slot_start(self, slot: int) -> datetime:
        """Start of a delivery slot.

        Raises:
            OrderError: the slot is not in the day.
        """
        if not 0 <= slot < self.n_slots:
            raise OrderError(f"slot must be in 0..{self.n_slots - 1}, got {slot!r}")
        return self.day_start + timedelta(minutes=self.slot_minutes * slot)

    @property
    def day_ahead_gate(self) -> datetime:
        """Gate closure of the local day-ahead session (before the wholesale gate)."""
        return self.day_start + self.wholesale_gate - self.day_ahead_lead

    def sessions(self, prefix: str = "vdg", mechanism: str = "huang", k: float = 0.5,
                 ) -> tuple[Session, ...]:
        """Day-ahead, rolling intraday and per-slot real-time sessions of the day.

        Ids are ``{prefix}-da``, ``{prefix}-id{j:02d}`` and ``{prefix}-rt{slot:02d}``. Intraday
        session ``j`` trades every slot starting at or after ``day_start + j * intraday_every``
        and closes ``intraday_lead`` before that instant.
        """
        day = timedelta(days=1)
        result = [Session(f"{prefix}-da", SessionKind.DAY_AHEAD, tuple(range(self.n_slots)),
                          self.day_ahead_gate, mechanism, k)]
        n_intraday = math.ceil(day / self.intraday_every)
        for j in range(n_intraday):
            first = self.day_start + j * self.intraday_every
            slots = tuple(s for s in range(self.n_slots) if self.slot_start(s) >= first)
            if slots:
                result.append(Session(f"{prefix}-id{j:02d}", SessionKind.INTRADAY, slots,
                                      first - self.intraday_lead, mechanism, k))
        result.extend(
            Session(f"{prefix}-rt{s:02d}", SessionKind.REAL_TIME, (s,),
                    self.slot_start(s) - self.real_time_lead, mechanism, k)
            for s in range(self.n_slots)
        )
        return tuple(result)


@dataclass(slots=True)
class _Open:
    session: Session
    book: OrderBook
    clearing: Clearing | None = None


class VdgMarket:
    """The sessions of one VDG: submit and cancel before the gate, clear after it.

    Args:
        vdg_id: name of the VDG (e.g. the feeder or subtree it covers).
        buses: the buses it covers (informative; see :func:`partition_buses`).
    """

    def __init__(self, vdg_id: str = "vdg", buses: Iterable[Hashable] = ()) -> None:
        self.vdg_id = vdg_id
        self.buses = frozenset(buses)
        self._sessions: dict[str, _Open] = {}

    def open_session(self, session: Session) -> None:
        """Add a session.

        Raises:
            SessionError: a session with that id exists.
        """
        if session.id in self._sessions:
            raise SessionError(f"session {session.id!r}: already open in VDG {self.vdg_id!r}")
        self._sessions[session.id] = _Open(session, OrderBook(session.id, session.slots))

    def open_sessions(self, sessions: Iterable[Session]) -> None:
        """Add several sessions (e.g. :meth:`MarketCalendar.sessions`), all or none."""
        batch = list(sessions)
        ids = [s.id for s in batch]
        clash = [i for i in ids if i in self._sessions] or [i for i in ids if ids.count(i) > 1]
        if clash:
            raise SessionError(f"session {clash[0]!r}: already open in VDG {self.vdg_id!r}")
        for session in batch:
            self.open_session(session)

    def _open(self, session_id: str) -> _Open:
        try:
            return self._sessions[session_id]
        except KeyError:
            raise UnknownSessionError(
                f"session {session_id!r}: no such session in VDG {self.vdg_id!r}"
            ) from None

    def session(self, session_id: str) -> Session:
        """The session with this id.

        Raises:
            UnknownSessionError: no such session.
        """
        return self._open(session_id).session

    @property
    def session_ids(self) -> tuple[str, ...]:
        """Ids of the sessions, in opening order."""
        return tuple(self._sessions)

    def book(self, session_id: str) -> OrderBook:
        """The order book of a session (read it; submit through :meth:`submit`)."""
        return self._open(session_id).book

    def _gate(self, entry: _Open, now: datetime, what: str) -> None:
        _check_aware(now, "now")
        if now >= entry.session.gate_closure:
            raise GateClosedError(
                f"{what}: session {entry.session.id!r} closed at "
                f"{entry.session.gate_closure.isoformat()}, now is {now.isoformat()}"
            )

    def submit(self, order: Order, now: datetime) -> None:
        """Submit an order to the session it names.

        Raises:
            OrderError: the order names no session, or a slot its session does not trade.
            UnknownSessionError: the session does not exist.
            GateClosedError: ``now`` is at or after the session's gate closure.
            DuplicateOrderError: the id is already in the session.
        """
        self.submit_many([order], now)

    def submit_many(self, orders: Iterable[Order], now: datetime) -> None:
        """Submit several orders (any sessions), all or none."""
        batch = list(orders)
        by_session: dict[str, list[Order]] = {}
        for order in batch:
            if not isinstance(order, Order):
                raise OrderError(f"expected an Order, got {type(order).__name__}")
            if order.session is None:
                raise OrderError(f"order {order.id!r}: session must name a session of "
                                 f"VDG {self.vdg_id!r}, got None")
            entry = self._open(order.session)
            self._gate(entry, now, f"order {order.id!r}")
            by_session.setdefault(order.session, []).append(order)
        for session_id, mine in by_session.items():  # check every book before touching any
            self._open(session_id).book.check_many(mine)
        for session_id, mine in by_session.items():
            self._open(session_id).book.submit_many(mine)

    def cancel(self, session_id: str, order_id: str, now: datetime,
               owner: str | None = None) -> Order:
        """Cancel an order before its session's gate closure.

        Raises:
            UnknownSessionError: no such session.
            GateClosedError: the gate has closed.
            UnknownOrderError: no such order in the session.
            OrderError: the order belongs to another owner.
        """
        entry = self._open(session_id)
        self._gate(entry, now, f"cancel of order {order_id!r}")
        return entry.book.cancel(order_id, owner)

    def clear(self, session_id: str, now: datetime) -> Clearing:
        """Clear a session at or after its gate closure (again: the same, stored result).

        Raises:
            UnknownSessionError: no such session.
            SessionError: the gate has not closed yet.
        """
        entry = self._open(session_id)
        _check_aware(now, "now")
        if now < entry.session.gate_closure:
            raise SessionError(
                f"session {session_id!r}: cannot clear before gate closure "
                f"{entry.session.gate_closure.isoformat()}, now is {now.isoformat()}"
            )
        if entry.clearing is None:
            entry.clearing = clear(entry.book.table(), entry.session.mechanism, k=entry.session.k)
            logger.info("VDG %s session %s cleared: %d orders, %d Wh traded", self.vdg_id,
                        session_id, len(entry.book), entry.clearing.traded_wh)
        return entry.clearing

    def due(self, now: datetime) -> tuple[str, ...]:
        """Ids of the sessions whose gate has closed at ``now`` and that are not cleared yet."""
        _check_aware(now, "now")
        return tuple(
            sid for sid, entry in self._sessions.items()
            if entry.clearing is None and now >= entry.session.gate_closure
        )

    def clear_due(self, now: datetime) -> dict[str, Clearing]:
        """Clear every session that is due at ``now`` (the auctioneer's periodic step).

        Returns:
            session id -> clearing, for the sessions cleared by this call.
        """
        return {sid: self.clear(sid, now) for sid in self.due(now)}

    def open_for(self, slot: int, now: datetime) -> tuple[str, ...]:
        """Ids of the sessions that trade ``slot`` and still accept orders at ``now``."""
        _check_aware(now, "now")
        return tuple(
            sid for sid, entry in self._sessions.items()
            if slot in entry.session.slots and now < entry.session.gate_closure
        )

    def result(self, session_id: str) -> Clearing | None:
        """The stored clearing of a session, or None if not cleared yet."""
        return self._open(session_id).clearing


# --- supplier fallback ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tariff:
    """The supplier's retail prices.

    Attributes:
        retail_import_eur_per_kwh: price a household pays the supplier for energy.
        feed_in_eur_per_kwh: price the supplier pays for energy fed in.
        retail_import_ueur_per_kwh: the former on the µEUR/kWh grid (derived).
        feed_in_ueur_per_kwh: the latter on the µEUR/kWh grid (derived).
    """

    retail_import_eur_per_kwh: float
    feed_in_eur_per_kwh: float
    retail_import_ueur_per_kwh: int = field(init=False, repr=False)
    feed_in_ueur_per_kwh: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "retail_import_ueur_per_kwh", check_price(
            self.retail_import_eur_per_kwh, "tariff", "retail_import_eur_per_kwh"))
        object.__setattr__(self, "feed_in_ueur_per_kwh", check_price(
            self.feed_in_eur_per_kwh, "tariff", "feed_in_eur_per_kwh"))


@dataclass(frozen=True, slots=True)
class SupplierTrade:
    """Energy of one order not matched locally, taken up by the supplier.

    Attributes:
        order_id: the order.
        owner: its owner.
        slot: delivery slot.
        side: buy (the supplier sells to the owner) or sell (the supplier buys).
        e_wh: unmatched energy, Wh.
        price_ueur_per_kwh: retail import (buy) or feed-in (sell) price.
        money_neur: paid by the owner (buy) or to the owner (sell), nEUR.
    """

    order_id: str
    owner: str
    slot: int
    side: Side
    e_wh: int
    price_ueur_per_kwh: int
    money_neur: int


def residual_to_supplier(clearing: Clearing, tariff: Tariff) -> tuple[SupplierTrade, ...]:
    """The unmatched part of every order, bought from / sold to the supplier at retail prices."""
    table = clearing.table
    unmatched = table.quantity_wh - clearing.filled_wh
    trades = []
    for i in np.flatnonzero(unmatched > 0):
        buy = bool(table.is_buy[i])
        price = tariff.retail_import_ueur_per_kwh if buy else tariff.feed_in_ueur_per_kwh
        e_wh = int(unmatched[i])
        trades.append(SupplierTrade(table.ids[i], table.owners[i], int(table.slot[i]),
                                    Side.BUY if buy else Side.SELL, e_wh, price, e_wh * price))
    return tuple(trades)


# --- DSO flexibility calls -----------------------------------------------------------------------


class Direction(StrEnum):
    """Direction of a flexibility call.

    ``up``: more injection or less consumption; ``down``: less injection or more consumption.
    """

    UP = "up"
    DOWN = "down"


def _positive_kw(value: object, where: str, name: str) -> float:
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or value <= 0):
        raise OrderError(f"{where}: {name} must be finite and > 0, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class FlexibilityCall:
    """A DSO's call for flexibility: direction, power, slot, buses and a price cap.

    The DSO is a single buyer of ``p_kw * slot_hours`` kWh of flexibility at most at the price cap;
    households on the listed buses offer. Huang et al.'s mechanism never trades with a single
    buyer (the break-even buyer is excluded), so calls default to a uniform price at the marginal
    accepted offer (``mechanism="uniform"``, ``k=0``).

    Attributes:
        id: unique id of the call.
        dso: owner id of the DSO.
        direction: up or down.
        p_kw: power asked for, kW, > 0.
        slot: delivery slot.
        buses: the buses whose households may offer.
        price_cap_eur_per_kwh: the most the DSO pays.
        slot_hours: duration of the slot, hours.
        mechanism: clearing mechanism.
        k: the uniform mechanism's k (0: the marginal offer's price).
    """

    id: str
    dso: str
    direction: Direction
    p_kw: float
    slot: int
    buses: frozenset[Hashable]
    price_cap_eur_per_kwh: float
    slot_hours: float = 1.0
    mechanism: str = "uniform"
    k: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise OrderError(f"flexibility call: id must be a non-empty string, got {self.id!r}")
        where = f"flexibility call {self.id!r}"
        try:
            object.__setattr__(self, "direction", Direction(self.direction))
        except ValueError:
            raise OrderError(f"{where}: direction must be 'up' or 'down', "
                             f"got {self.direction!r}") from None
        _positive_kw(self.p_kw, where, "p_kw")
        _positive_kw(self.slot_hours, where, "slot_hours")
        check_slot(self.slot, where)
        object.__setattr__(self, "buses", frozenset(self.buses))
        if not self.buses:
            raise OrderError(f"{where}: buses must not be empty")
        check_price(self.price_cap_eur_per_kwh, where, "price_cap_eur_per_kwh")
        _check_mechanism(self.mechanism, self.k, where)

    def order(self) -> Order:
        """The DSO's buy order for the call."""
        return Order(self.id, self.dso, Side.BUY, self.p_kw * self.slot_hours,
                     self.price_cap_eur_per_kwh, self.slot, self.id)


@dataclass(frozen=True, slots=True)
class FlexOffer:
    """A household's offer to a flexibility call.

    Attributes:
        id: unique id among the call's offers.
        owner: the household.
        bus: the bus it is connected to (must be one of the call's buses).
        p_kw: power offered, kW, > 0.
        price_eur_per_kwh: the least it accepts.
    """

    id: str
    owner: str
    bus: Hashable
    p_kw: float
    price_eur_per_kwh: float


@dataclass(frozen=True, slots=True)
class FlexibilityResult:
    """The outcome of a flexibility call.

    Attributes:
        call: the call.
        clearing: the clearing of the DSO's order against the offers.
        accepted_kw: power accepted per offer id (offers not accepted are absent).
    """

    call: FlexibilityCall
    clearing: Clearing
    accepted_kw: Mapping[str, float]

    @property
    def procured_kw(self) -> float:
        """Total power procured, kW."""
        return sum(self.accepted_kw.values())


def clear_flexibility_call(call: FlexibilityCall, offers: Iterable[FlexOffer]) -> FlexibilityResult:
    """Clear a flexibility call against households' offers with the call's mechanism.

    Raises:
        OrderError: an offer is invalid, from a bus outside the call, or reuses the call's id.
        DuplicateOrderError: two offers share an id.
    """
    orders = [call.order()]
    for offer in offers:
        where = f"offer {offer.id!r} to call {call.id!r}"
        if offer.bus not in call.buses:
            raise OrderError(f"{where}: bus {offer.bus!r} is not in the call's buses")
        p_kw = _positive_kw(offer.p_kw, where, "p_kw")
        if offer.id == call.id:
            raise DuplicateOrderError(f"{where}: id is the call's own id")
        orders.append(Order(offer.id, offer.owner, Side.SELL, p_kw * call.slot_hours,
                            offer.price_eur_per_kwh, call.slot, call.id))
    clearing = clear(orders, call.mechanism, k=call.k)
    kw_per_wh = 1 / (WH_PER_KWH * call.slot_hours)
    accepted = {
        f.order_id: f.filled_wh * kw_per_wh
        for f in clearing.fills()
        if f.side is Side.SELL and f.filled_wh
    }
    return FlexibilityResult(call, clearing, accepted)


# --- one VDG per feeder or per subtree -----------------------------------------------------------


def partition_buses(
    edges: Iterable[tuple[Hashable, Hashable]], root: Hashable, heads: Iterable[Hashable] = (),
) -> dict[Hashable, Hashable]:
    """Assign every bus of a radial feeder to a VDG, named by its head bus.

    With no ``heads`` the whole feeder is one VDG (named by ``root``); otherwise every bus belongs
    to its nearest ancestor (itself included) among ``heads``, and buses with no such ancestor to
    ``root``.

    Args:
        edges: the feeder's lines as (bus, bus) pairs; must form a tree containing ``root``.
        root: the substation bus.
        heads: buses that start a subtree VDG.

    Returns:
        bus -> head (or ``root``).

    Raises:
        SessionError: a head is not a bus of the feeder, or the edges do not form a tree.
    """
    adjacency: dict[Hashable, list[Hashable]] = {root: []}
    n_edges = 0
    for a, b in edges:
        adjacency.setdefault(a, []).append(b)
        adjacency.setdefault(b, []).append(a)
        n_edges += 1
    head_set = set(heads)
    unknown = head_set - adjacency.keys()
    if unknown:
        raise SessionError(f"heads: bus(es) {sorted(map(str, unknown))} are not on the feeder")
    owner: dict[Hashable, Hashable] = {root: root}
    queue = deque([root])
    while queue:
        bus = queue.popleft()
        for nxt in adjacency[bus]:
            if nxt not in owner:
                owner[nxt] = nxt if nxt in head_set else owner[bus]
                queue.append(nxt)
    if len(owner) != len(adjacency) or n_edges != len(adjacency) - 1:
        raise SessionError(
            f"edges: not a tree rooted at {root!r} ({len(adjacency)} buses, {n_edges} edges, "
            f"{len(owner)} reachable)"
        )
    return owner
