"""Clearing mechanisms for a call market with multi-unit orders, one delivery slot at a time.

Every mechanism is a pure function ``OrderTable -> Clearing``; slots are cleared independently.
All arithmetic is on integers (Wh, µEUR/kWh, nEUR), so the rules below are exact and can be
replicated by a smart contract. See ``docs/market.md`` for the properties of each mechanism.

**Priority (the tie rule).** Buyers are sorted by limit price descending, sellers ascending; equal
prices are ordered by order id ascending (Python string order, i.e. by Unicode code point, which
equals the byte order of UTF-8). The order in which orders were submitted never matters.

**Curves and break-even pair.** With ``B_k``, ``S_l`` the cumulative quantities of the first ``k``
buyers / ``l`` sellers in priority order, buyer ``k`` (1-based) is *efficient* if
``b_k >= s(B_{k-1})``, the price of the first seller whose cumulative quantity exceeds
``B_{k-1}``; seller ``l`` is efficient if ``s_l <= b(S_{l-1})``. Curves that meet at an equal price
*do* trade (``>=``). The efficient sets are prefixes; their last members, buyer ``K`` and seller
``L``, form the *break-even pair*, and the efficient volume is ``Q* = min(B_K, S_L)``.

**Huang et al. (2002).** Buyers ``1..K-1`` trade at ``b_K`` and sellers ``1..L-1`` at ``s_L``
(so the break-even pair is excluded). The traded volume is ``V = min(B_{K-1}, S_{L-1})``; the long
side is reduced equally: every member's quantity is reduced by ``r`` Wh, where ``r`` is the
largest integer with ``sum(max(q_i - r, 0)) >= V`` (a member with ``q_i <= r`` drops out), and the
``E = sum(max(q_i - r, 0)) - V`` Wh left over are removed one Wh each from the ``E`` members still
trading with the largest id. The reduction never depends on prices, which keeps the mechanism
strategy-proof with respect to the limit price.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

import numpy as np

from market.errors import MechanismError, UnknownOrderError
from market.orders import (
    MAX_ABS_PRICE_UEUR_PER_KWH,
    UEUR_PER_EUR,
    WH_PER_KWH,
    Order,
    OrderTable,
    Side,
)

logger = logging.getLogger(__name__)

_I64: Final = np.int64
_KEY_OFFSET: Final = MAX_ABS_PRICE_UEUR_PER_KWH


@dataclass(frozen=True, slots=True)
class Fill:
    """The outcome for one order.

    Attributes:
        order_id: the order.
        slot: its delivery slot.
        side: buy or sell.
        filled_wh: energy traded, Wh (0 if excluded).
        price_ueur_per_kwh: unit price paid (buyer) or received (seller); None if not filled.
        money_neur: ``filled_wh * price_ueur_per_kwh``, nEUR, paid by a buyer or received by a
            seller (0 if not filled).
    """

    order_id: str
    slot: int
    side: Side
    filled_wh: int
    price_ueur_per_kwh: int | None
    money_neur: int

    @property
    def filled_kwh(self) -> float:
        """Energy traded, kWh."""
        return self.filled_wh / WH_PER_KWH

    @property
    def price_eur_per_kwh(self) -> float | None:
        """Unit price, EUR/kWh, or None if not filled."""
        return None if self.price_ueur_per_kwh is None else self.price_ueur_per_kwh / UEUR_PER_EUR


@dataclass(frozen=True, slots=True)
class SlotClearing:
    """The clearing of one delivery slot.

    Attributes:
        slot: the delivery slot.
        traded_wh: energy bought (= energy sold), Wh.
        efficient_wh: the welfare-maximising volume ``Q*`` of this slot, Wh.
        buy_price_ueur_per_kwh: the uniform price buyers pay, or None (no trade, or pay-as-bid).
        sell_price_ueur_per_kwh: the uniform price sellers receive, or None.
        auctioneer_surplus_neur: payments of buyers minus receipts of sellers, nEUR (>= 0).
        break_even_buy: id of the break-even (marginal efficient) buyer, or None.
        break_even_sell: id of the break-even seller, or None.
    """

    slot: int
    traded_wh: int
    efficient_wh: int
    buy_price_ueur_per_kwh: int | None
    sell_price_ueur_per_kwh: int | None
    auctioneer_surplus_neur: int
    break_even_buy: str | None
    break_even_sell: str | None


@dataclass(frozen=True, slots=True)
class Clearing:
    """The frozen result of a mechanism on an order table.

    Attributes:
        mechanism: the mechanism's name (``"huang"``, ``"uniform"``, ...).
        table: the cleared orders.
        filled_wh: energy traded per order (table order), Wh, read-only.
        price_ueur_per_kwh: unit price per order, µEUR/kWh, read-only; 0 where nothing was filled.
        slots: the clearing of each slot that had orders, by slot.
    """

    mechanism: str
    table: OrderTable
    filled_wh: np.ndarray
    price_ueur_per_kwh: np.ndarray
    slots: tuple[SlotClearing, ...]

    @property
    def money_neur(self) -> np.ndarray:
        """Money per order, nEUR: paid by buyers, received by sellers (0 where not filled)."""
        return self.filled_wh * self.price_ueur_per_kwh

    @property
    def traded_wh(self) -> int:
        """Energy traded over all slots, Wh."""
        return sum(s.traded_wh for s in self.slots)

    @property
    def auctioneer_surplus_neur(self) -> int:
        """Buyers' payments minus sellers' receipts over all slots, nEUR."""
        return sum(s.auctioneer_surplus_neur for s in self.slots)

    @property
    def excluded(self) -> tuple[str, ...]:
        """Ids of the orders that trade nothing, in table order."""
        ids = self.table.ids
        return tuple(ids[i] for i in np.flatnonzero(self.filled_wh == 0))

    def slot(self, slot: int) -> SlotClearing:
        """The clearing of one slot.

        Raises:
            UnknownOrderError: no order was in that slot.
        """
        for cleared in self.slots:
            if cleared.slot == slot:
                return cleared
        raise UnknownOrderError(f"slot {slot}: no order was cleared in this slot")

    def fill(self, order_id: str) -> Fill:
        """The outcome of one order.

        Raises:
            UnknownOrderError: the id is not in the cleared table.
        """
        return self._fill(self.table.index(order_id))

    def fills(self) -> Iterator[Fill]:
        """The outcome of every order, in table order."""
        for i in range(len(self.table)):
            yield self._fill(i)

    def _fill(self, i: int) -> Fill:
        filled = int(self.filled_wh[i])
        price = int(self.price_ueur_per_kwh[i]) if filled else None
        return Fill(
            order_id=self.table.ids[i],
            slot=int(self.table.slot[i]),
            side=Side.BUY if self.table.is_buy[i] else Side.SELL,
            filled_wh=filled,
            price_ueur_per_kwh=price,
            money_neur=filled * price if price is not None else 0,
        )


@dataclass(frozen=True, slots=True)
class _Curves:
    """One slot's sorted curves and its break-even pair (internal)."""

    buy_rows: np.ndarray  # table rows of buyers, priority order
    sell_rows: np.ndarray
    b: np.ndarray  # buyer prices, descending
    s: np.ndarray  # seller prices, ascending
    qb: np.ndarray
    qs: np.ndarray
    cum_b: np.ndarray  # B_k
    cum_s: np.ndarray  # S_l
    n_k: int  # number of efficient buyers: break-even buyer is n_k - 1 (0-based)
    n_l: int
    q_star: int


def _priority(price: np.ndarray, rank: np.ndarray, n: int, descending: bool) -> np.ndarray:
    """Argsort by price (descending or ascending), ties by id rank, with one int64 sort key."""
    key = (_KEY_OFFSET - price if descending else price + _KEY_OFFSET) * n + rank
    return np.argsort(key)


def _count_efficient(
    p: np.ndarray, q: np.ndarray, cum: np.ndarray, p_other: np.ndarray, cum_other: np.ndarray,
    *, buyers: bool,
) -> int:
    """Length of the efficient prefix of one side, by bisection (the predicate is monotone).

    Member ``i`` (0-based) is efficient iff the other side's curve starts a step before this
    member's step starts (``cum_other > cum[i] - q[i]``) at a price it accepts (``>=`` for a buyer
    facing a seller, ``<=`` for a seller facing a buyer).
    """
    lo, hi = 0, len(p)
    n_other = len(p_other)
    while lo < hi:
        mid = (lo + hi) // 2
        j = int(cum_other.searchsorted(cum[mid] - q[mid], side="right"))
        ok = j < n_other and (p[mid] >= p_other[j] if buyers else p[mid] <= p_other[j])
        if ok:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _curves(table: OrderTable, rows: np.ndarray | None) -> _Curves:
    if rows is None:
        is_buy = table.is_buy
        buy_rows = np.flatnonzero(is_buy)
        sell_rows = np.flatnonzero(~is_buy)
    else:
        is_buy = table.is_buy[rows]
        buy_rows = rows[is_buy]
        sell_rows = rows[~is_buy]
    n = len(table)
    price, qty, rank = table.price_ueur_per_kwh, table.quantity_wh, table.rank
    buy_rows = buy_rows[_priority(price[buy_rows], rank[buy_rows], n, descending=True)]
    sell_rows = sell_rows[_priority(price[sell_rows], rank[sell_rows], n, descending=False)]
    b, qb = price[buy_rows], qty[buy_rows]
    s, qs = price[sell_rows], qty[sell_rows]
    cum_b, cum_s = np.cumsum(qb), np.cumsum(qs)
    n_k = _count_efficient(b, qb, cum_b, s, cum_s, buyers=True)
    n_l = _count_efficient(s, qs, cum_s, b, cum_b, buyers=False)
    q_star = int(min(cum_b[n_k - 1], cum_s[n_l - 1])) if n_k and n_l else 0
    return _Curves(buy_rows, sell_rows, b, s, qb, qs, cum_b, cum_s, n_k, n_l, q_star)


def _reduction_step(quantity_wh: np.ndarray, total: int, target_wh: int, rounds: int = 8) -> int:
    """The largest integer ``r`` with ``sum(max(q - r, 0)) >= target_wh`` (0 < target < total).

    Water-filling by fixed-point iteration on the set of members still trading (``q > r``), which
    settles in a few rounds on realistic books; after ``rounds`` rounds it falls back to the exact
    sort-based formula.
    """
    m = len(quantity_wh)
    active_sum, active_n = total, m
    for _ in range(rounds):
        r = (active_sum - target_wh) // active_n
        active = quantity_wh > r
        n = int(np.count_nonzero(active))
        if n == active_n:
            return r
        active_n = n
        active_sum = int(quantity_wh[active].sum())
    q_sorted = np.sort(quantity_wh)
    suffix = total - np.concatenate(([0], np.cumsum(q_sorted)[:-1]))  # sum(q_sorted[j:])
    at_breakpoints = suffix - (m - np.arange(m)) * q_sorted  # F(q_sorted[j]), non-increasing
    j = int(np.count_nonzero(at_breakpoints >= target_wh))  # members at or below r drop out
    return (int(suffix[j]) - target_wh) // (m - j)


def equal_reduction(quantity_wh: np.ndarray, rank: np.ndarray, target_wh: int) -> np.ndarray:
    """Reduce quantities equally until they sum to ``target_wh`` (Huang et al.'s footnote).

    Every quantity is reduced by the same ``r`` Wh, the largest integer with
    ``sum(max(q - r, 0)) >= target_wh``; a quantity that would fall below zero drops out (0), and
    the remaining ``sum(max(q - r, 0)) - target_wh`` Wh (fewer than the members still trading) are
    removed one Wh each from the members still trading with the largest ``rank``.

    Args:
        quantity_wh: the quantities, Wh, each >= 1.
        rank: a distinct integer per member (the id rank); larger ranks lose the leftover Wh first.
        target_wh: the total to reach, ``0 <= target_wh <= sum(quantity_wh)``.

    Returns:
        The reduced quantities (new array), summing exactly to ``target_wh``.
    """
    total = int(quantity_wh.sum())
    if target_wh >= total:
        return quantity_wh.copy()
    if target_wh <= 0:
        return np.zeros_like(quantity_wh)
    r = _reduction_step(quantity_wh, total, target_wh)
    reduced = np.maximum(quantity_wh - r, 0)
    extra = int(reduced.sum()) - target_wh
    if extra:
        active = np.flatnonzero(reduced > 0)
        last = active[np.argpartition(rank[active], -extra)[-extra:]]
        reduced[last] -= 1
    return reduced


# ----------------------------------------------------------------------------------------------
# slot rules: each returns (buyer fills, buyer prices, seller fills, seller prices, uniform prices)
# in priority order; prices are per order, µEUR/kWh.

_SlotResult = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int | None, int | None]
_SlotRule = Callable[[_Curves, OrderTable], _SlotResult]


def _efficient_fills(c: _Curves) -> tuple[np.ndarray, np.ndarray]:
    """Welfare-maximising quantities: efficient traders in full, the break-even pair partially."""
    fb = np.zeros_like(c.qb)
    fs = np.zeros_like(c.qs)
    if c.q_star:
        fb[: c.n_k] = c.qb[: c.n_k]
        fb[c.n_k - 1] = c.q_star - (int(c.cum_b[c.n_k - 1]) - int(c.qb[c.n_k - 1]))
        fs[: c.n_l] = c.qs[: c.n_l]
        fs[c.n_l - 1] = c.q_star - (int(c.cum_s[c.n_l - 1]) - int(c.qs[c.n_l - 1]))
    return fb, fs


def _uniform_result(fb: np.ndarray, fs: np.ndarray, p_buy: int, p_sell: int) -> _SlotResult:
    return (
        fb,
        np.where(fb > 0, p_buy, 0).astype(_I64),
        fs,
        np.where(fs > 0, p_sell, 0).astype(_I64),
        p_buy,
        p_sell,
    )


def _empty(c: _Curves) -> _SlotResult:
    return (
        np.zeros_like(c.qb),
        np.zeros_like(c.qb),
        np.zeros_like(c.qs),
        np.zeros_like(c.qs),
        None,
        None,
    )


def _trade_reduction(c: _Curves, table: OrderTable) -> _SlotResult:
    """Huang et al.: exclude the break-even pair, reduce the long side equally."""
    if not c.q_star:
        return _empty(c)
    k, ell = c.n_k - 1, c.n_l - 1  # 0-based break-even buyer and seller
    demand = int(c.cum_b[k - 1]) if k else 0
    supply = int(c.cum_s[ell - 1]) if ell else 0
    volume = min(demand, supply)
    if not volume:
        return _empty(c)
    fb = np.zeros_like(c.qb)
    fs = np.zeros_like(c.qs)
    fb[:k] = equal_reduction(c.qb[:k], table.rank[c.buy_rows[:k]], volume)
    fs[:ell] = equal_reduction(c.qs[:ell], table.rank[c.sell_rows[:ell]], volume)
    return _uniform_result(fb, fs, int(c.b[k]), int(c.s[ell]))


def _huang_rule(c: _Curves, table: OrderTable) -> _SlotResult:
    return _trade_reduction(c, table)


def _walrasian_price(c: _Curves) -> int:
    """A market-clearing price of the efficient allocation (midpoint of the interval, floored)."""
    k, ell = c.n_k - 1, c.n_l - 1
    b_k, s_l = int(c.b[k]), int(c.s[ell])
    full_b = c.q_star == int(c.cum_b[k])
    full_s = c.q_star == int(c.cum_s[ell])
    if full_b and not full_s:  # seller L is partially filled: must be indifferent
        return s_l
    if full_s and not full_b:  # buyer K is partially filled
        return b_k
    lo = max(s_l, int(c.b[k + 1])) if k + 1 < len(c.b) else s_l
    hi = min(b_k, int(c.s[ell + 1])) if ell + 1 < len(c.s) else b_k
    return lo + (hi - lo) // 2


def _efficient_rule(c: _Curves, table: OrderTable) -> _SlotResult:
    if not c.q_star:
        return _empty(c)
    fb, fs = _efficient_fills(c)
    p = _walrasian_price(c)
    return _uniform_result(fb, fs, p, p)


def _k_price(c: _Curves, k: Fraction) -> int:
    b_k, s_l = int(c.b[c.n_k - 1]), int(c.s[c.n_l - 1])
    return s_l + int((k * (b_k - s_l)) // 1)


def _uniform_rule(k: Fraction) -> _SlotRule:
    def rule(c: _Curves, table: OrderTable) -> _SlotResult:
        if not c.q_star:
            return _empty(c)
        fb, fs = _efficient_fills(c)
        p = _k_price(c, k)
        return _uniform_result(fb, fs, p, p)

    return rule


def _pay_as_bid_rule(c: _Curves, table: OrderTable) -> _SlotResult:
    if not c.q_star:
        return _empty(c)
    fb, fs = _efficient_fills(c)
    return fb, np.where(fb > 0, c.b, 0), fs, np.where(fs > 0, c.s, 0), None, None


def _mcafee_rule(c: _Curves, table: OrderTable) -> _SlotResult:
    if not c.q_star:
        return _empty(c)
    k, ell = c.n_k - 1, c.n_l - 1
    if k + 1 < len(c.b) and ell + 1 < len(c.s):
        p0 = (int(c.b[k + 1]) + int(c.s[ell + 1])) // 2
        if int(c.s[ell]) <= p0 <= int(c.b[k]):
            fb, fs = _efficient_fills(c)
            return _uniform_result(fb, fs, p0, p0)
    return _trade_reduction(c, table)


# ----------------------------------------------------------------------------------------------


def _dot(filled: np.ndarray, price: np.ndarray, traded: int) -> int:
    """``sum(filled * price)`` exactly: int64 when it cannot overflow, Python ints otherwise."""
    if traded * MAX_ABS_PRICE_UEUR_PER_KWH < 2**63:
        return int(filled @ price)
    return sum(int(f) * int(p) for f, p in zip(filled, price, strict=True) if f)


def _slot_groups(table: OrderTable) -> Iterator[tuple[int, np.ndarray | None]]:
    n = len(table)
    if not n:
        return
    slot = table.slot
    first, last = int(slot.min()), int(slot.max())
    if first == last:
        yield first, None
        return
    order = np.argsort(slot, kind="stable")
    cuts = np.flatnonzero(np.diff(slot[order])) + 1
    for rows in np.split(order, cuts):
        yield int(slot[rows[0]]), rows


def _as_table(orders: OrderTable | Iterable[Order]) -> OrderTable:
    return orders if isinstance(orders, OrderTable) else OrderTable.from_orders(orders)


def _run(name: str, rule: _SlotRule, orders: OrderTable | Iterable[Order]) -> Clearing:
    table = _as_table(orders)
    n = len(table)
    filled = np.zeros(n, dtype=_I64)
    price = np.zeros(n, dtype=_I64)
    slots = []
    for slot, rows in _slot_groups(table):
        c = _curves(table, rows)
        fb, pb, fs, ps, p_buy, p_sell = rule(c, table)
        filled[c.buy_rows] = fb
        price[c.buy_rows] = pb
        filled[c.sell_rows] = fs
        price[c.sell_rows] = ps
        traded = int(fb.sum())
        if p_buy is not None and p_sell is not None:
            surplus = traded * (p_buy - p_sell)
        else:
            surplus = _dot(fb, pb, traded) - _dot(fs, ps, traded) if traded else 0
        has = c.q_star > 0
        slots.append(
            SlotClearing(
                slot=slot,
                traded_wh=traded,
                efficient_wh=c.q_star,
                buy_price_ueur_per_kwh=p_buy if traded else None,
                sell_price_ueur_per_kwh=p_sell if traded else None,
                auctioneer_surplus_neur=surplus,
                break_even_buy=table.ids[int(c.buy_rows[c.n_k - 1])] if has else None,
                break_even_sell=table.ids[int(c.sell_rows[c.n_l - 1])] if has else None,
            )
        )
    filled.flags.writeable = False
    price.flags.writeable = False
    logger.debug("%s: %d order(s), %d slot(s) cleared", name, n, len(slots))
    return Clearing(name, table, filled, price, tuple(slots))


def huang(orders: OrderTable | Iterable[Order]) -> Clearing:
    """Huang, Scheller-Wolf & Sycara (2002) multi-unit double auction.

    Strategy-proof with respect to limit prices, individually rational, weakly budget balanced,
    asymptotically efficient; the break-even pair never trades (so one buyer facing one seller
    never trades).

    Args:
        orders: the orders (any slots).

    Returns:
        The clearing; buyers pay the break-even buyer's price, sellers receive the break-even
        seller's price.
    """
    return _run("huang", _huang_rule, orders)


def uniform(orders: OrderTable | Iterable[Order], k: float = 0.5) -> Clearing:
    """Uniform-price k-double auction (pay as clear) on the efficient allocation.

    The efficient volume ``Q*`` trades in priority order (the break-even pair partially) at one
    price ``p = s_L + floor(k * (b_K - s_L))`` for buyers and sellers alike. Efficient, individually
    rational, budget balanced; not strategy-proof.

    Args:
        orders: the orders (any slots).
        k: where the price lies between the break-even seller's (0) and buyer's (1) price.

    Raises:
        MechanismError: ``k`` is not a finite number in [0, 1].
    """
    return _run("uniform", _uniform_rule(_check_k(k)), orders)


def efficient(orders: OrderTable | Iterable[Order]) -> Clearing:
    """The welfare-maximising allocation at a competitive (Walrasian) price: the benchmark.

    The efficient volume trades in priority order at a price that clears the market: the partially
    filled marginal trader's own price, or the midpoint (floored) of the clearing interval
    ``[max(s_L, b_{K+1}), min(b_K, s_{L+1})]`` when both marginal traders are filled exactly.
    Efficient, individually rational, budget balanced; not strategy-proof.
    """
    return _run("efficient", _efficient_rule, orders)


def pay_as_bid(orders: OrderTable | Iterable[Order]) -> Clearing:
    """Discriminatory pricing: the efficient allocation, each order at its own limit price.

    Efficient at truthful bids, individually rational (every trader's utility is zero), weakly
    budget balanced (the auctioneer keeps all the gains from trade); far from strategy-proof.
    """
    return _run("pay-as-bid", _pay_as_bid_rule, orders)


def mcafee(orders: OrderTable | Iterable[Order]) -> Clearing:
    """McAfee (1992) trade reduction, extended to multi-unit orders.

    With ``p0 = floor((b_{K+1} + s_{L+1}) / 2)`` from the first excluded buyer and seller: if
    ``s_L <= p0 <= b_K`` the efficient allocation trades at ``p0``; otherwise the break-even pair
    is dropped exactly as in :func:`huang`. Individually rational, weakly budget balanced;
    truthful for unit orders, not guaranteed with multi-unit orders.
    """
    return _run("mcafee", _mcafee_rule, orders)


def _check_k(k: float) -> Fraction:
    if isinstance(k, bool) or not isinstance(k, int | float) or not 0 <= k <= 1:
        raise MechanismError(f"k must be a number in [0, 1], got {k!r}")
    return Fraction(k)


MECHANISMS: Final[tuple[str, ...]] = ("huang", "uniform", "pay-as-bid", "mcafee", "efficient")
"""Names accepted by :func:`clear` (and the CLI's ``--mechanism``)."""


def clear(
    orders: OrderTable | Iterable[Order], mechanism: str = "huang", *, k: float = 0.5
) -> Clearing:
    """Clear orders with a mechanism chosen by name.

    Args:
        orders: the orders (any slots).
        mechanism: one of :data:`MECHANISMS`.
        k: the k of the uniform-price k-double auction (ignored by the other mechanisms).

    Raises:
        MechanismError: unknown mechanism or bad ``k``.
    """
    if mechanism == "huang":
        return huang(orders)
    if mechanism == "uniform":
        return uniform(orders, k)
    if mechanism == "pay-as-bid":
        return pay_as_bid(orders)
    if mechanism == "mcafee":
        return mcafee(orders)
    if mechanism == "efficient":
        return efficient(orders)
    raise MechanismError(f"mechanism must be one of {', '.join(MECHANISMS)}; got {mechanism!r}")
