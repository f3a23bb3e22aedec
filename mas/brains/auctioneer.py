"""The auctioneer brain: the VDG sessions of the day, sealed commitments, canonical books.

Sessions follow the VDG paper §4.4 and the calendar of :class:`market.vdg.MarketCalendar`: one
day-ahead session over the 24 slots; rolling intraday sessions, each trading the slots that are
still open for trade when it closes (every ``intraday_every_h`` hours, an hour before the slots
it trades); real-time sessions over consecutive blocks of slots before they are delivered. Each
session is
commit–reveal: a participant first sends the hash of its order vector (the same
``keccak256(session, address, orders, salt)`` the market contract checks), then the vector and
salt. The auctioneer checks each reveal against its commitment and hands the chain the book in
a canonical order (by participant rank), so the on-chain clearing does not depend on the order
in which messages arrived. :meth:`SessionBook.reference_clearing` clears the same book with
:func:`market.auction.huang` to cross-check the chain.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import numpy as np

from ledger.orders import OrderVector, commitment
from market.auction import huang
from market.orders import Order, Side
from market.vdg import MarketCalendar, SessionKind
from mas.errors import ProtocolStateError
from mas.world import SLOTS

log = logging.getLogger(__name__)


class Phase(StrEnum):
    """Where a session is."""

    COMMIT = "commit"
    REVEAL = "reveal"
    CLOSED = "closed"


CALENDAR = MarketCalendar(datetime(2000, 1, 1, tzinfo=UTC))
"""The calendar's gate closures relative to the day's start (the date itself does not matter):
day-ahead 13 h before the day, intraday an hour before the slots, real time 5 minutes."""

_KIND_OF_PREFIX = {"da": SessionKind.DAY_AHEAD, "id": SessionKind.INTRADAY,
                   "rt": SessionKind.REAL_TIME}


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """One session of the day.

    Attributes:
        name: ``da``, ``id{hour:02d}`` (the calendar's intraday session closing an hour before
            ``hour``) or ``rt{first slot:02d}``.
        kind: ``day-ahead``, ``intraday`` or ``real-time``.
        slots: the delivery slots it trades (consecutive).
    """

    name: str
    kind: str
    slots: tuple[int, ...]

    @property
    def gate_h(self) -> float:
        """Its gate closure in hours from the start of the day (negative: the day before)."""
        hour = timedelta(hours=1)
        if self.kind == SessionKind.DAY_AHEAD:
            return (CALENDAR.day_ahead_gate - CALENDAR.day_start) / hour
        if self.kind == SessionKind.INTRADAY:
            return int(self.name[2:]) - CALENDAR.intraday_lead / hour
        return self.slots[0] - CALENDAR.real_time_lead / hour

    @classmethod
    def from_name(cls, name: str, slots: Sequence[int]) -> SessionPlan:
        """The session named ``name`` trading ``slots`` (as a participant learns of it).

        Raises:
            ProtocolStateError: the name is not one of the day's session names.
        """
        kind = _KIND_OF_PREFIX.get(name[:2])
        if kind is None or (kind is SessionKind.DAY_AHEAD) != (name == "da") or \
                (kind is not SessionKind.DAY_AHEAD and not (name[2:].isdigit()
                                                           and 0 <= int(name[2:]) < SLOTS)):
            raise ProtocolStateError(f"session {name!r} is not a session of the day (da, "
                                     f"idHH or rtHH)")
        return cls(name, kind.value, tuple(int(t) for t in slots))


def day_sessions(real_time_block_h: int, intraday_every_h: int = 0
                 ) -> tuple[SessionPlan, ...]:
    """The sessions of the day in the order they close.

    The day-ahead session, then by first slot traded: the intraday sessions of
    :meth:`market.vdg.MarketCalendar.sessions` with gate closures every ``intraday_every_h``
    hours (0: none) and the real-time sessions of ``real_time_block_h`` slots each. An intraday
    session does not trade slots whose real-time session has already closed: one closing inside
    a real-time block trades from the next block on (and is dropped in the last block).
    """
    real_time = [SessionPlan(f"rt{first:02d}", SessionKind.REAL_TIME.value,
                             tuple(range(first, first + real_time_block_h)))
                 for first in range(0, SLOTS, real_time_block_h)]
    intraday = []
    if intraday_every_h:
        calendar = MarketCalendar(CALENDAR.day_start,
                                  intraday_every=timedelta(hours=intraday_every_h))
        for session in calendar.sessions():
            if session.kind is SessionKind.INTRADAY:
                hour = session.slots[0]
                open_from = -(-hour // real_time_block_h) * real_time_block_h
                slots = tuple(t for t in session.slots if t >= open_from)
                if slots:
                    intraday.append(SessionPlan(f"id{hour:02d}", SessionKind.INTRADAY.value,
                                                slots))
    later = sorted(intraday + real_time,  # stable: intraday in calendar order
                   key=lambda p: (p.slots[0], p.kind == SessionKind.REAL_TIME))
    return (SessionPlan("da", SessionKind.DAY_AHEAD.value, tuple(range(SLOTS))), *later)


@dataclass(slots=True)
class SessionBook:
    """The commitments and reveals of one session.

    Args:
        plan: the session.
        chain_id: the session's id on the chain (part of every commitment).
        addresses: participant -> chain address, in canonical (rank) order.
    """

    plan: SessionPlan
    chain_id: int
    addresses: Mapping[str, str]
    phase: Phase = Phase.COMMIT
    commits: dict[str, bytes] = field(default_factory=dict)
    reveals: dict[str, tuple[OrderVector, bytes]] = field(default_factory=dict)
    abstained: set[str] = field(default_factory=set)

    def commit(self, who: str, digest: bytes | None) -> bool:
        """Record a commitment (``None``: abstains). Returns False for an exact duplicate.

        Raises:
            ProtocolStateError: not in the commit phase, unknown participant, or a second,
                different commitment.
        """
        self._check(who, Phase.COMMIT)
        if digest is None:
            if who in self.commits:
                raise ProtocolStateError(f"{who} abstains after committing in "
                                         f"{self.plan.name}")
            self.abstained.add(who)
            return True
        if len(digest) != 32:
            raise ProtocolStateError(f"commitment of {who} must be 32 bytes, got {len(digest)}")
        if who in self.commits:
            if self.commits[who] == digest:
                return False
            raise ProtocolStateError(f"{who} already committed another hash in "
                                     f"{self.plan.name}")
        self.commits[who] = digest
        return True

    def open_reveal(self) -> None:
        """Close commitments; reveals are accepted from now on."""
        if self.phase is not Phase.COMMIT:
            raise ProtocolStateError(f"session {self.plan.name} is {self.phase}, not commit")
        self.phase = Phase.REVEAL

    def reveal(self, who: str, orders: OrderVector, salt: bytes) -> bool:
        """Record a reveal after checking it against the commitment; False for a duplicate.

        Raises:
            ProtocolStateError: not in the reveal phase, no commitment, wrong number of slots,
                an empty vector, or a vector and salt that do not match the commitment.
        """
        self._check(who, Phase.REVEAL)
        if who not in self.commits:
            raise ProtocolStateError(f"{who} reveals without a commitment in {self.plan.name}")
        if len(orders.slots) != len(self.plan.slots):
            raise ProtocolStateError(f"orders of {who} have {len(orders.slots)} slots, session "
                                     f"{self.plan.name} trades {len(self.plan.slots)}")
        if all(s.qty_wh == 0 for s in orders.slots):
            raise ProtocolStateError(f"orders of {who} are empty")
        digest = commitment(self.chain_id, self.addresses[who], orders.encode(), salt)
        if digest != self.commits[who]:
            raise ProtocolStateError(f"orders of {who} do not match its commitment")
        if who in self.reveals:
            return False
        self.reveals[who] = (orders, salt)
        return True

    def close(self) -> None:
        """No more reveals."""
        self.phase = Phase.CLOSED

    def _check(self, who: str, phase: Phase) -> None:
        if who not in self.addresses:
            raise ProtocolStateError(f"participant {who!r} is not registered")
        if self.phase is not phase:
            raise ProtocolStateError(f"session {self.plan.name} is in phase {self.phase}, "
                                     f"not {phase}")

    def canonical(self) -> list[tuple[str, OrderVector, bytes]]:
        """Revealed participants with their vectors and salts, in rank order."""
        return [(who, *self.reveals[who]) for who in self.addresses if who in self.reveals]

    def reference_clearing(self) -> dict[str, tuple[int, ...]]:
        """Huang clearing of the revealed book by the market layer: Wh per participant and slot."""
        book = self.canonical()
        orders = []
        for rank, (who, vec, _) in enumerate(book):
            for k, s in enumerate(vec.slots):
                if s.qty_wh:
                    orders.append(Order(f"{rank:05d}/{k:03d}", who,
                                        Side.BUY if s.qty_wh > 0 else Side.SELL,
                                        abs(s.qty_wh) / 1000, s.price_ueur_per_kwh / 1e6, k))
        out = {who: [0] * len(self.plan.slots) for who, _, _ in book}
        if not orders:
            return {k: tuple(v) for k, v in out.items()}
        clearing = huang(orders)
        for i, fill in enumerate(clearing.fills()):
            who = clearing.table.owners[i]
            sign = 1 if fill.side is Side.BUY else -1
            out[who][fill.slot] += sign * fill.filled_wh
        return {k: tuple(v) for k, v in out.items()}


def vector_from_intent(qty_kwh: Sequence[float], price_eur_per_kwh: Sequence[float]
                       ) -> OrderVector:
    """The contract's order vector of an order intent (kWh buy > 0, EUR/kWh)."""
    return OrderVector.from_kwh(list(qty_kwh), list(price_eur_per_kwh))


def cleared_matches(chain: Mapping[str, Sequence[int]],
                    reference: Mapping[str, Sequence[int]]) -> bool:
    """Whether the chain's clearing equals the market layer's, participant by participant."""
    if set(chain) != set(reference):
        return False
    return all(np.array_equal(np.asarray(chain[k]), np.asarray(reference[k])) for k in chain)


def gains_from_trade_nano(cleared_wh: Mapping[str, Sequence[int]],
                          limits: Mapping[str, Sequence[tuple[int, int]]],
                          buy_price_ueur_per_kwh: Sequence[int],
                          sell_price_ueur_per_kwh: Sequence[int]) -> int:
    """Gains from trade of one cleared session at the revealed limit prices, in nEUR.

    A buyer of ``wh`` gains ``wh × (limit − buyer price)``, a seller ``wh × (seller price −
    limit)`` (Wh × µEUR/kWh = nEUR, exact). Both runtimes report ``welfare_eur`` with this, so
    the figure does not depend on which one ran the day.

    Args:
        cleared_wh: per participant, Wh bought (> 0) or sold (< 0) per slot of the session.
        limits: per participant, (quantity Wh, limit price µEUR/kWh) per slot as revealed.
        buy_price_ueur_per_kwh: buyers' price per slot.
        sell_price_ueur_per_kwh: sellers' price per slot.
    """
    total = 0
    for who, row in cleared_wh.items():
        for k, wh in enumerate(row):
            limit = limits[who][k][1]
            if wh > 0:
                total += wh * (limit - buy_price_ueur_per_kwh[k])
            elif wh < 0:
                total += -wh * (sell_price_ueur_per_kwh[k] - limit)
    return total

