"""An in-memory ledger with the market behaviour of the contracts, for large Mesa runs.

:class:`MemoryLedger` offers the market subset of :class:`ledger.client.Web3Ledger` (households,
Credit, proof of flow, sealed sessions, Huang clearing, settlement, withdrawal) with the same
integer units and the same checks, raising :class:`ledger.errors.ContractRevert` with the
contract's error names. It clears with :func:`market.auction.huang` (the rule the contract's
parity tests hold the chain to) and settles with the contract's arithmetic, so a day run with
either ledger moves the same Wh and nEUR. It lives beside the Mesa runtime because ``ledger``
must not import ``market``; the behaviour tests in ``tests/mas/mesa`` run against both.

No signatures, no gas: an address is only a name here, and any caller may act for any account
(``sender`` arguments are accepted and ignored; role checks are kept only where the market's
outcome depends on them: only registered households trade). It implements the market part of
:class:`ledger.protocol.Ledger`, not the fleet, billing and ADMM contracts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from eth_utils import keccak, to_checksum_address

from ledger.chain import GasRecord
from ledger.errors import ContractRevert, ProtocolError
from ledger.fixedpoint import (
    INT32_MAX,
    WH_PER_KWH,
    eur_to_nano,
    kwh_to_wh,
    penalty_to_nano_per_wh,
)
from ledger.orders import OrderVector, commitment
from ledger.results import Deployment, SessionClearing, SlotClearing
from market.auction import huang
from market.orders import OrderTable

log = logging.getLogger(__name__)

MAX_WH = 2**31 - 1
_EPOCH_S = 1_700_000_000


def order_ids(rows: np.ndarray, slots: np.ndarray, n_rows: int, sep: str) -> list[str]:
    """Ids of a book's orders that sort in (row, slot) order: ``000012<sep>003``.

    The row in at least six digits (as many as ``n_rows`` has), the slot in three.
    """
    if not rows.size:
        return []
    width = max(6, len(str(n_rows)))
    head = [f"{i:0{width}d}{sep}" for i in range(int(rows.max()) + 1)]
    tail = [f"{t:03d}" for t in range(int(slots.max()) + 1)]
    return [head[i] + tail[t] for i, t in zip(rows.tolist(), slots.tolist(), strict=True)]


_PACKED = np.dtype([("qty_wh", ">i4"), ("price_ueur_per_kwh", ">u4")])
"""One slot of an order vector's packed encoding (:meth:`OrderVector.encode`)."""


def book_arrays(vectors: Sequence[OrderVector], n_slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Quantities (Wh) and limit prices (µEUR/kWh) of a book's order vectors, a row each.

    Read from the vectors' packed encodings (each computed once, when it was committed).
    """
    packed = np.frombuffer(b"".join(v.encode() for v in vectors), dtype=_PACKED)
    packed = packed.reshape(len(vectors), n_slots)
    return (packed["qty_wh"].astype(np.int64), packed["price_ueur_per_kwh"].astype(np.int64))


def _revert(name: str, *args: object) -> ContractRevert:
    return ContractRevert(f"{name}({', '.join(str(a) for a in args)})", name, tuple(args))


@dataclass(slots=True)
class _Session:
    start_slot: int
    n_slots: int
    commit_end: int
    reveal_end: int
    penalty_nano_per_wh: int
    state: str = "open"  # open -> cleared -> settled
    seals: dict[str, bytes] = field(default_factory=dict)
    escrow: dict[str, int] = field(default_factory=dict)  # revealed households only
    book: list[tuple[str, OrderVector]] = field(default_factory=list)  # reveal order
    clearing: SessionClearing | None = None


class MemoryLedger:
    """The market contracts' behaviour in plain Python (see the module docstring).

    Args:
        seed: makes the generated addresses differ between ledgers of one process.
    """

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self._n_accounts = 0
        self._now = _EPOCH_S
        self._credit: dict[str, int] = {}
        self._energy: dict[str, int] = {}
        self._owed: dict[str, int] = {}
        self._meters: dict[str, str] = {}  # household -> meter
        self._household_of: dict[str, str] = {}  # meter -> household
        self._attested: dict[tuple[str, int], int] = {}  # (meter, slot) -> net Wh
        self._sessions: dict[int, _Session] = {}
        self._sealed: dict[tuple[int, str], tuple[OrderVector, bytes]] = {}
        self._checksum: dict[str, str] = {}  # address as given -> checksummed (keccak each)
        self.gas_log: list[GasRecord] = []  # no gas in memory; kept for the same interface
        names = ("registry", "credit", "energy", "market", "admm", "fleet", "billing", "admin",
                 "dso", "auctioneer", "aggregator", "treasury")
        self._deployment = Deployment(**{n: self.new_account() for n in names})

    @classmethod
    def deploy(cls, seed: int = 0) -> MemoryLedger:
        """A fresh ledger (the counterpart of :meth:`Web3Ledger.deploy`)."""
        return cls(seed)

    @property
    def deployment(self) -> Deployment:
        """Addresses of the (virtual) contracts and role holders."""
        return self._deployment

    # ------------------------------------------------------------------------ accounts, money

    def new_account(self) -> str:
        """A fresh address, deterministic in the seed and creation order."""
        raw = keccak(text=f"vdg-memory-ledger:{self._seed}:{self._n_accounts}")[-20:]
        self._n_accounts += 1
        return self._addr("0x" + raw.hex())

    def _addr(self, account: str) -> str:
        """The checksummed form of an address (remembered: checksumming hashes)."""
        a = self._checksum.get(account)
        if a is None:
            a = self._checksum[account] = str(to_checksum_address(account))
        return a

    def add_households(self, n: int, *, credit_eur: float = 0.0) -> list[str]:
        """Create ``n`` households with a meter each and, optionally, Credit."""
        out = []
        for _ in range(n):
            h, meter = self.new_account(), self.new_account()
            self._meters[h] = meter
            self._household_of[meter] = h
            if credit_eur > 0:
                self.mint_credit(h, credit_eur)
            out.append(h)
        return out

    def meter_of(self, household: str) -> str:
        """The meter address registered for a household (the zero address if none)."""
        return self._meters.get(self._addr(household), "0x" + "00" * 20)

    def mint_credit(self, to: str, amount_eur: float, *, sender: str | None = None) -> None:
        """Mint Credit (1e-9 EUR) to an account (``sender`` is accepted and ignored)."""
        amount = eur_to_nano("amount_eur", amount_eur)
        if amount == 0:
            raise _revert("ZeroAmount")
        to = self._addr(to)
        self._credit[to] = self._credit.get(to, 0) + amount

    def credit_nano(self, account: str) -> int:
        """Credit balance in 1e-9 EUR."""
        return self._credit.get(self._addr(account), 0)

    def credit_supply_nano(self) -> int:
        """Total Credit supply in 1e-9 EUR."""
        return sum(self._credit.values())

    def energy_wh(self, account: str) -> int:
        """Energy-token balance, Wh."""
        return self._energy.get(self._addr(account), 0)

    def energy_supply_wh(self) -> int:
        """Energy tokens minted in total, Wh."""
        return sum(self._energy.values())

    def _move(self, frm: str, to: str, amount: int) -> None:
        have = self._credit.get(frm, 0)
        if have < amount:
            raise _revert("InsufficientBalance", frm, have, amount)
        self._credit[frm] = have - amount
        self._credit[to] = self._credit.get(to, 0) + amount

    # ------------------------------------------------------------------------ proof of flow

    def attest(self, slot: int, net_export_kwh: Mapping[str, float], *,
               sender: str | None = None) -> None:
        """DSO attests households' metered net export in a slot; mints tokens for export.

        All or nothing: a reading out of range, an unknown meter or a second attestation of a
        (meter, slot) reverts the whole call.
        """
        accounts = list(net_export_kwh)
        kwh = np.fromiter(net_export_kwh.values(), dtype=float, count=len(accounts))
        whs = np.rint(kwh * WH_PER_KWH)
        if not (np.isfinite(kwh).all() and np.abs(whs).max(initial=0) <= INT32_MAX):
            whs = np.array([kwh_to_wh(f"net_export_kwh[{h}]", e)  # raises, naming the reading
                            for h, e in net_export_kwh.items()], dtype=float)
        rows = []
        for h, wh in zip(accounts, whs.astype(np.int64).tolist(), strict=True):
            meter = self._meters.get(self._addr(h))
            if meter is None:
                raise _revert("UnknownMeter", h)
            if (meter, slot) in self._attested:
                raise _revert("AlreadyAttested", meter, slot)
            rows.append((meter, wh))
        if len({m for m, _ in rows}) != len(rows):
            raise _revert("AlreadyAttested", rows[0][0], slot)
        for meter, wh in rows:
            self._attested[(meter, slot)] = wh
            if wh > 0:
                h = self._household_of[meter]
                self._energy[h] = self._energy.get(h, 0) + wh

    def attestation(self, household: str, slot: int) -> tuple[bool, int]:
        """(attested, net export Wh) of a household's meter in a slot."""
        key = (self.meter_of(household), slot)
        return (key in self._attested, self._attested.get(key, 0))

    # ------------------------------------------------------------------------ market

    def now(self) -> int:
        """The ledger's clock, seconds."""
        return self._now

    def advance_time(self, seconds: int) -> None:
        """Move the clock."""
        self._now += int(seconds)

    def open_session(self, start_slot: int, n_slots: int, *, commit_s: int = 600,
                     reveal_s: int = 600, penalty_eur_per_kwh: float = 0.0) -> int:
        """Open a session with gate times relative to now; returns its id (1, 2, ...)."""
        if n_slots <= 0 or commit_s <= 0 or reveal_s <= 0:
            raise _revert("BadGates")
        sid = len(self._sessions) + 1
        self._sessions[sid] = _Session(
            start_slot, n_slots, self._now + commit_s, self._now + commit_s + reveal_s,
            penalty_to_nano_per_wh("penalty_eur_per_kwh", penalty_eur_per_kwh))
        return sid

    def _session(self, sid: int) -> _Session:
        s = self._sessions.get(sid)
        if s is None:
            raise _revert("BadSession", sid)
        return s

    def session(self, sid: int) -> dict[str, Any]:
        """The session's header (the keys of :meth:`Web3Ledger.session` that carry meaning)."""
        s = self._session(sid)
        state = {"open": 1, "cleared": 2, "settled": 3}[s.state]
        return {"startSlot": s.start_slot, "nSlots": s.n_slots, "commitEnd": s.commit_end,
                "revealEnd": s.reveal_end, "state": state,
                "penaltyNanoPerWh": s.penalty_nano_per_wh}

    def commit(self, sid: int, household: str, orders: OrderVector,
               salt: bytes | None = None) -> bytes:
        """Seal a household's order vector; keeps vector and salt for :meth:`reveal`."""
        h = self._addr(household)
        if salt is None:
            salt = keccak(text=f"salt:{self._seed}:{sid}:{h}")
        s = self._session(sid)
        if s.state != "open":
            raise _revert("BadSession", sid)
        if h not in self._meters:
            raise _revert("Unauthorized", h, 16)
        if self._now >= s.commit_end:
            raise _revert("CommitClosed", sid)
        if h in s.seals:
            raise _revert("AlreadyCommitted", h)
        s.seals[h] = commitment(sid, h, orders.encode(), salt)
        self._sealed[(sid, h)] = (orders, salt)
        return salt

    def reveal(self, sid: int, household: str, orders: OrderVector | None = None,
               salt: bytes | None = None) -> None:
        """Open a sealed vector (the stored one unless given).

        Escrows the buys at their limit prices and the sells' penalty bond.
        """
        h = self._addr(household)
        if orders is None or salt is None:
            if (sid, h) not in self._sealed:
                raise ProtocolError(f"no sealed order vector of {h} in session {sid}")
            stored_orders, stored_salt = self._sealed[(sid, h)]
            orders = orders or stored_orders
            salt = salt or stored_salt
        s = self._session(sid)
        if s.state != "open":
            raise _revert("BadSession", sid)
        if self._now < s.commit_end:
            raise _revert("RevealNotOpen", sid)
        if self._now >= s.reveal_end:
            raise _revert("RevealClosed", sid)
        if h not in s.seals:
            raise _revert("NotCommitted", h)
        if h in s.escrow:
            raise _revert("AlreadyRevealed", h)
        if (orders, salt) != self._sealed.get((sid, h)) \
                and commitment(sid, h, orders.encode(), salt) != s.seals[h]:  # else: as sealed
            raise _revert("CommitMismatch", h)
        if len(orders.slots) != s.n_slots:
            raise _revert("BadLength")
        qty = [o.qty_wh for o in orders.slots]
        for t, wh in enumerate(qty):
            if not -INT32_MAX <= wh <= INT32_MAX:
                raise _revert("QuantityOutOfRange", t, wh)
        if not any(qty):
            raise _revert("EmptyOrder")
        escrow = orders.max_payment_nano(s.penalty_nano_per_wh)
        if escrow:
            self._move(h, self._deployment.market, escrow)
        s.escrow[h] = escrow
        s.book.append((h, orders))

    def escrow_of(self, sid: int, household: str) -> tuple[bool, int]:
        """(revealed, escrow in 1e-9 EUR) of a household in a session."""
        s = self._session(sid)
        h = self._addr(household)
        return (h in s.escrow, s.escrow.get(h, 0))

    def revealed_book(self, sid: int) -> tuple[list[str], list[OrderVector]]:
        """Households and order vectors of a session, in reveal order."""
        s = self._session(sid)
        return [h for h, _ in s.book], [v for _, v in s.book]

    def clear(self, sid: int, *, sorted_book: bytes | None = None) -> SessionClearing:
        """Clear every slot with Huang's mechanism (ties by reveal order, as on chain).

        ``sorted_book`` is accepted for the client interface and ignored: the sort is
        recomputed here, so a forged sort cannot be tested against this ledger.
        """
        del sorted_book
        s = self._session(sid)
        if s.state != "open" or self._now < s.reveal_end:
            raise _revert("ClearingNotOpen", sid)
        n, n_slots = len(s.book), s.n_slots
        q, p = book_arrays([v for _, v in s.book], n_slots)
        cleared = np.zeros((n, n_slots), dtype=np.int64)
        slots = {t: SlotClearing(t, 0, 0, 0) for t in range(n_slots)}
        ii, tt = np.nonzero(q)
        if ii.size:
            table = OrderTable.from_arrays(
                is_buy=q[ii, tt] > 0, quantity_wh=np.abs(q[ii, tt]),
                price_ueur_per_kwh=p[ii, tt], slot=tt.astype(np.int64),
                ids=order_ids(ii, tt, n, "-"))
            cl = huang(table)
            filled = np.asarray(cl.filled_wh, dtype=np.int64)
            cleared[ii, tt] = np.where(q[ii, tt] > 0, filled, -filled)
            for sc in cl.slots:
                if sc.traded_wh:
                    slots[sc.slot] = SlotClearing(sc.slot, sc.buy_price_ueur_per_kwh or 0,
                                                  sc.sell_price_ueur_per_kwh or 0, sc.traded_wh)
        out = SessionClearing(sid, tuple(h for h, _ in s.book),
                              tuple(map(tuple, cleared.tolist())),
                              tuple(slots[t] for t in range(n_slots)), b"", b"")
        s.clearing = out
        s.state = "cleared"
        return out

    def settle(self, sid: int, *, sender: str | None = None) -> None:
        """Settle a cleared session against the attestations (the contract's arithmetic).

        Buyers pay the buyer price for what they bought; sellers get the seller price for what
        they delivered and pay the session penalty per Wh short out of their bond; unused escrow
        is refunded; the rest goes to the treasury. All or nothing.
        """
        s = self._session(sid)
        if s.state == "settled":
            raise _revert("AlreadySettled", sid)
        if s.state != "cleared" or s.clearing is None:
            raise _revert("NotCleared", sid)
        cl = s.clearing
        dues: list[tuple[str, int]] = []
        paid_out = escrow_total = 0
        attested = self._attested
        for h, row in zip(cl.households, cl.cleared_wh, strict=True):
            escrow = s.escrow[h]
            meter = self._meters.get(h, "")  # no meter: nothing attested
            debit = gain = 0
            for t, c in enumerate(row):
                if c > 0:
                    debit += c * cl.slots[t].buy_price_ueur_per_kwh
                elif c < 0:
                    net = attested.get((meter, s.start_slot + t))
                    if net is None:
                        raise _revert("NotAttested", h, s.start_slot + t)
                    sc = cl.slots[t]
                    delivered = min(max(net, 0), -c)
                    gain += delivered * sc.sell_price_ueur_per_kwh
                    debit += (-c - delivered) * s.penalty_nano_per_wh
            due = escrow + gain - debit
            dues.append((h, due))
            paid_out += due
            escrow_total += escrow
        for h, due in dues:
            self._owed[h] = self._owed.get(h, 0) + due
        treasury = self._deployment.treasury
        self._owed[treasury] = self._owed.get(treasury, 0) + escrow_total - paid_out
        s.state = "settled"

    def owed_nano(self, account: str) -> int:
        """Credit the market owes an account after settlement, 1e-9 EUR."""
        return self._owed.get(self._addr(account), 0)

    def withdraw(self, account: str) -> int:
        """Pull what the market owes ``account``; returns the amount (1e-9 EUR)."""
        a = self._addr(account)
        amount = self._owed.get(a, 0)
        if amount == 0:
            raise _revert("NothingOwed", a)
        self._owed[a] = 0
        self._move(self._deployment.market, a, amount)
        return amount

    def cleared(self, sid: int) -> SessionClearing:
        """The clearing of a session.

        Raises:
            ProtocolError: the session was not cleared.
        """
        cl = self._session(sid).clearing
        if cl is None:
            raise ProtocolError(f"session {sid} was not cleared")
        return cl
