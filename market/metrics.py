"""Market metrics of a clearing: welfare, efficiency, volume, prices, per-participant results.

Limit prices are taken as the participants' true values (as they are under a truthful mechanism):
a buyer's benefit is ``(limit - price) * Wh``, a seller's ``(price - limit) * Wh``. Welfare counts
all gains from trade (participants' benefits plus the auctioneer's surplus). Money in nEUR, energy
in Wh, prices in µEUR/kWh.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from market.auction import Clearing, efficient


@dataclass(frozen=True, slots=True)
class ParticipantResult:
    """One owner's result over all its orders.

    Attributes:
        owner: the participant.
        prosumer: True if it placed any sell order (a consumer only buys).
        bought_wh: energy bought.
        sold_wh: energy sold.
        cost_neur: money paid for energy bought.
        revenue_neur: money received for energy sold.
        benefit_neur: gains at its limit prices (>= 0 under an individually rational mechanism).
    """

    owner: str
    prosumer: bool
    bought_wh: int
    sold_wh: int
    cost_neur: int
    revenue_neur: int
    benefit_neur: int


@dataclass(frozen=True, slots=True)
class MarketMetrics:
    """Summary of a clearing.

    Attributes:
        mechanism: the mechanism's name.
        welfare_neur: gains from trade at limit prices, auctioneer surplus included.
        max_welfare_neur: welfare of the efficient allocation of the same orders.
        efficiency: ``welfare / max_welfare`` (1.0 when no gain is possible).
        traded_wh: energy traded.
        efficient_wh: energy the efficient allocation trades.
        auctioneer_surplus_neur: buyers' payments minus sellers' receipts.
        price_min_ueur_per_kwh: lowest unit price of a fill (None without trade).
        price_max_ueur_per_kwh: highest unit price of a fill.
        price_vwap_ueur_per_kwh: volume-weighted mean price over buyers' fills.
        participants: per owner, sorted by owner.
        prosumer_benefit_neur: total benefit of prosumers.
        consumer_benefit_neur: total benefit of consumers.
        gini_benefit: Gini coefficient of the owners' benefits (0 = equal).
    """

    mechanism: str
    welfare_neur: int
    max_welfare_neur: int
    efficiency: float
    traded_wh: int
    efficient_wh: int
    auctioneer_surplus_neur: int
    price_min_ueur_per_kwh: int | None
    price_max_ueur_per_kwh: int | None
    price_vwap_ueur_per_kwh: float | None
    participants: tuple[ParticipantResult, ...]
    prosumer_benefit_neur: int
    consumer_benefit_neur: int
    gini_benefit: float


def welfare_neur(clearing: Clearing) -> int:
    """Gains from trade at the limit prices, nEUR (auctioneer surplus included)."""
    t = clearing.table
    return sum(
        int(f) * int(p) * (1 if b else -1)
        for f, p, b in zip(clearing.filled_wh, t.price_ueur_per_kwh, t.is_buy, strict=True)
        if f
    )


def gini(values: list[int] | list[float]) -> float:
    """Gini coefficient of non-negative values (0 if they are all zero or there are none).

    Raises:
        ValueError: a value is negative.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.size and x[0] < 0:
        raise ValueError(f"gini: values must be >= 0, got {x[0]!r}")
    total = x.sum()
    if not x.size or total == 0:
        return 0.0
    n = x.size
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(2 * (ranks @ x) / (n * total) - (n + 1) / n)


def market_metrics(clearing: Clearing, reference: Clearing | None = None) -> MarketMetrics:
    """Metrics of a clearing.

    Args:
        clearing: the clearing to measure.
        reference: the efficient clearing of the same table (computed if omitted).

    Returns:
        The metrics.
    """
    t = clearing.table
    best = reference if reference is not None else efficient(t)
    welfare, max_welfare = welfare_neur(clearing), welfare_neur(best)
    acc: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    prosumers: set[str] = set()
    prices: list[int] = []
    paid = bought = 0
    for i, owner in enumerate(t.owners):
        filled, price, limit = int(clearing.filled_wh[i]), int(clearing.price_ueur_per_kwh[i]), int(
            t.price_ueur_per_kwh[i])
        a = acc[owner]
        if t.is_buy[i]:
            a[0] += filled
            a[2] += filled * price
            a[4] += filled * (limit - price)
            paid += filled * price
            bought += filled
        else:
            prosumers.add(owner)
            a[1] += filled
            a[3] += filled * price
            a[4] += filled * (price - limit)
        if filled:
            prices.append(price)
    participants = tuple(
        ParticipantResult(owner, owner in prosumers, *acc[owner]) for owner in sorted(acc)
    )
    benefits = [p.benefit_neur for p in participants]
    return MarketMetrics(
        mechanism=clearing.mechanism,
        welfare_neur=welfare,
        max_welfare_neur=max_welfare,
        efficiency=welfare / max_welfare if max_welfare else 1.0,
        traded_wh=clearing.traded_wh,
        efficient_wh=best.traded_wh,
        auctioneer_surplus_neur=clearing.auctioneer_surplus_neur,
        price_min_ueur_per_kwh=min(prices) if prices else None,
        price_max_ueur_per_kwh=max(prices) if prices else None,
        price_vwap_ueur_per_kwh=paid / bought if bought else None,
        participants=participants,
        prosumer_benefit_neur=sum(p.benefit_neur for p in participants if p.prosumer),
        consumer_benefit_neur=sum(p.benefit_neur for p in participants if not p.prosumer),
        gini_benefit=gini([max(b, 0) for b in benefits]),
    )
