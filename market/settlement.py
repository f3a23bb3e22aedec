"""Settlement of what was delivered against what was contracted, in Wh and nEUR, exactly.

Pure functions on records. Per order and slot, the contracted energy (from a clearing) meets the
metered energy (consumption of a buyer, injection of a seller, attributed per order):

* **Buyer** with contract ``C`` at ``p`` and metered ``M``: pays ``C * p`` to the market; the
  deviation is balanced by the supplier at retail prices: ``M > C`` buys ``M - C`` at the retail
  import price, ``M < C`` sells the unused ``C - M`` at the feed-in price.
* **Seller** with contract ``C`` at ``p`` and metered ``M``: ``delivered = min(M, C)`` is paid at
  ``p`` and earns as many Wh of energy tokens (proof of flow). The supplier delivers the shortfall
  ``C - delivered`` to the buyers, paid by the market at the retail import price, and the seller
  pays the price gap ``max(retail - p, 0)`` per shortfall kWh (VDG paper §5.1.1); an excess
  ``M - C`` is sold to the supplier at the feed-in price.

Every payment is a :class:`Transfer` between two accounts (owners, :data:`MARKET`,
:data:`SUPPLIER`), so the balances sum to zero exactly; per slot, metered injection plus the
supplier's net supply equals metered consumption exactly.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from market.auction import Clearing
from market.errors import SettlementError
from market.orders import Side
from market.vdg import Tariff

logger = logging.getLogger(__name__)

MARKET = "@market"
"""Account of the market (auctioneer / escrow): collects buyers' payments, pays sellers."""
SUPPLIER = "@supplier"
"""Account of the retail supplier that balances every deviation."""


class Reason(StrEnum):
    """Why money moves."""

    CONTRACT = "contract"  # buyer -> market, contracted energy
    DELIVERY = "delivery"  # market -> seller, delivered energy
    SHORTFALL_PENALTY = "shortfall-penalty"  # seller -> market, price gap on the shortfall
    REPLACEMENT = "replacement"  # market -> supplier, energy replacing a seller's shortfall
    IMPORT = "import"  # buyer -> supplier, consumption above the contract
    UNUSED = "unused"  # supplier -> buyer, contracted energy not consumed
    FEED_IN = "feed-in"  # supplier -> seller, injection above the contract


@dataclass(frozen=True, slots=True)
class Contract:
    """What one order is due to deliver or take in one slot.

    Attributes:
        order_id: the order.
        owner: its owner.
        side: buy or sell.
        slot: delivery slot.
        contracted_wh: energy contracted, Wh (0 for an order that traded nothing).
        price_ueur_per_kwh: unit price of the contract (0 if nothing was contracted).
    """

    order_id: str
    owner: str
    side: Side
    slot: int
    contracted_wh: int
    price_ueur_per_kwh: int

    def __post_init__(self) -> None:
        where = f"contract {self.order_id!r}"
        try:
            object.__setattr__(self, "side", Side(self.side))
        except ValueError:
            raise SettlementError(
                f"{where}: side must be 'buy' or 'sell', got {self.side!r}"
            ) from None
        for name in ("slot", "contracted_wh", "price_ueur_per_kwh"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SettlementError(f"{where}: {name} must be an integer, got {value!r}")
        if self.contracted_wh < 0:
            raise SettlementError(
                f"{where}: contracted_wh must be >= 0, got {self.contracted_wh}"
            )


@dataclass(frozen=True, slots=True)
class Transfer:
    """Money moving from ``payer`` to ``payee`` (``money_neur`` >= 0)."""

    payer: str
    payee: str
    money_neur: int
    order_id: str
    reason: Reason


@dataclass(frozen=True, slots=True)
class OrderSettlement:
    """The settled energy of one order.

    Attributes:
        order_id: the order.
        owner: its owner.
        side: buy or sell.
        slot: delivery slot.
        contracted_wh: contracted energy.
        metered_wh: metered energy (consumption for a buyer, injection for a seller).
        delivered_wh: ``min(contracted, metered)``.
        shortfall_wh: seller: contracted energy not injected (0 for buyers).
        excess_wh: seller: injection above the contract (0 for buyers).
        over_wh: buyer: consumption above the contract (0 for sellers).
        under_wh: buyer: contracted energy not consumed (0 for sellers).
        token_wh: energy tokens earned by verified delivery (sellers: ``delivered_wh``).
    """

    order_id: str
    owner: str
    side: Side
    slot: int
    contracted_wh: int
    metered_wh: int
    delivered_wh: int
    shortfall_wh: int
    excess_wh: int
    over_wh: int
    under_wh: int
    token_wh: int


@dataclass(frozen=True, slots=True)
class Settlement:
    """All settled orders and the transfers between accounts.

    Attributes:
        orders: per order, in input order.
        transfers: every payment (zero payments omitted).
    """

    orders: tuple[OrderSettlement, ...]
    transfers: tuple[Transfer, ...]

    def balances(self) -> dict[str, int]:
        """Net money received (+) or paid (-) per account, nEUR; the values sum to zero."""
        net: dict[str, int] = defaultdict(int)
        for t in self.transfers:
            net[t.payer] -= t.money_neur
            net[t.payee] += t.money_neur
        return dict(net)

    def tokens(self) -> dict[str, int]:
        """Energy-token entitlements per owner, Wh (proof of flow)."""
        out: dict[str, int] = defaultdict(int)
        for o in self.orders:
            if o.token_wh:
                out[o.owner] += o.token_wh
        return dict(out)

    def supplier_net_supply_wh(self) -> dict[int, int]:
        """Per slot, energy the supplier supplies minus what it absorbs, Wh."""
        out: dict[int, int] = defaultdict(int)
        for o in self.orders:
            out[o.slot] += o.shortfall_wh + o.over_wh - o.excess_wh - o.under_wh
        return dict(out)


def contracts_from_clearing(clearing: Clearing) -> tuple[Contract, ...]:
    """One contract per cleared order (orders that traded nothing get a zero contract)."""
    return tuple(
        Contract(f.order_id, clearing.table.owners[i], f.side, f.slot, f.filled_wh,
                 f.price_ueur_per_kwh or 0)
        for i, f in enumerate(clearing.fills())
    )


def _check(contracts: tuple[Contract, ...], metered_wh: Mapping[str, int]) -> None:
    ids = {c.order_id for c in contracts}
    if len(ids) != len(contracts):
        raise SettlementError("contracts: an order id appears twice")
    unknown = sorted(set(metered_wh) - ids)
    if unknown:
        raise SettlementError(f"metered_wh: order {unknown[0]!r} has no contract")
    balance: dict[int, int] = defaultdict(int)
    for c in contracts:
        if c.order_id not in metered_wh:
            raise SettlementError(f"metered_wh: no reading for order {c.order_id!r}")
        m = metered_wh[c.order_id]
        if isinstance(m, bool) or not isinstance(m, int) or m < 0:
            raise SettlementError(
                f"metered_wh: order {c.order_id!r} must be an integer >= 0 Wh, got {m!r}"
            )
        balance[c.slot] += c.contracted_wh if c.side is Side.BUY else -c.contracted_wh
    for slot, gap in sorted(balance.items()):
        if gap:
            raise SettlementError(
                f"contracts: slot {slot} buys {gap:+d} Wh more than it sells; they must balance"
            )


def settle_contracts(
    contracts: Iterable[Contract], metered_wh: Mapping[str, int], tariff: Tariff
) -> Settlement:
    """Settle contracts against meter readings.

    Args:
        contracts: one per order; per slot, contracted buying must equal contracted selling.
        metered_wh: per order id, metered energy in Wh (consumption for buy orders, injection
            for sell orders), an integer >= 0.
        tariff: the supplier's retail import and feed-in prices.

    Returns:
        The settlement.

    Raises:
        SettlementError: a reading is missing, negative, not an integer or for an unknown order;
            contracts are duplicated or do not balance per slot.
    """
    records = tuple(contracts)
    _check(records, metered_wh)
    retail, feed_in = tariff.retail_import_ueur_per_kwh, tariff.feed_in_ueur_per_kwh
    settled: list[OrderSettlement] = []
    transfers: list[Transfer] = []

    def pay(payer: str, payee: str, money: int, order_id: str, reason: Reason) -> None:
        if money:
            transfers.append(Transfer(payer, payee, money, order_id, reason))

    for c in records:
        m = metered_wh[c.order_id]
        delivered = min(m, c.contracted_wh)
        if c.side is Side.BUY:
            over, under = max(m - c.contracted_wh, 0), max(c.contracted_wh - m, 0)
            shortfall = excess = tokens = 0
            pay(c.owner, MARKET, c.contracted_wh * c.price_ueur_per_kwh, c.order_id,
                Reason.CONTRACT)
            pay(c.owner, SUPPLIER, over * retail, c.order_id, Reason.IMPORT)
            pay(SUPPLIER, c.owner, under * feed_in, c.order_id, Reason.UNUSED)
        else:
            shortfall, excess = c.contracted_wh - delivered, m - delivered
            over = under = 0
            tokens = delivered
            pay(MARKET, c.owner, delivered * c.price_ueur_per_kwh, c.order_id, Reason.DELIVERY)
            pay(c.owner, MARKET, shortfall * max(retail - c.price_ueur_per_kwh, 0), c.order_id,
                Reason.SHORTFALL_PENALTY)
            pay(MARKET, SUPPLIER, shortfall * retail, c.order_id, Reason.REPLACEMENT)
            pay(SUPPLIER, c.owner, excess * feed_in, c.order_id, Reason.FEED_IN)
        settled.append(OrderSettlement(
            c.order_id, c.owner, c.side, c.slot, c.contracted_wh, m, delivered, shortfall,
            excess, over, under, tokens,
        ))
    logger.debug("settled %d orders with %d transfers", len(settled), len(transfers))
    return Settlement(tuple(settled), tuple(transfers))


def settle(clearing: Clearing, metered_wh: Mapping[str, int], tariff: Tariff) -> Settlement:
    """Settle a clearing against meter readings (see :func:`settle_contracts`)."""
    return settle_contracts(contracts_from_clearing(clearing), metered_wh, tariff)
