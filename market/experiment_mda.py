"""The MDA study: efficiency, auctioneer surplus and misreport gains against market size.

For each number of traders and each mechanism, random single-slot books are drawn (truthful
limit prices are the traders' values), cleared, and compared with the welfare-maximising
allocation. Some traders are then picked to misreport their price unilaterally over a grid of
shifts; the best gain over truthful reporting is recorded. Pure and seeded: the same ``seed``
gives the same numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from market.auction import MECHANISMS, Clearing, clear
from market.errors import MechanismError
from market.metrics import welfare_neur
from market.orders import MAX_ABS_PRICE_UEUR_PER_KWH, NEUR_PER_UEUR, UEUR_PER_EUR, OrderTable

logger = logging.getLogger(__name__)

DEFAULT_TRADERS: tuple[int, ...] = (4, 8, 16, 32, 64, 128, 256)
MISREPORT_SHIFTS_EUR_PER_KWH: tuple[float, ...] = (
    -0.10, -0.05, -0.02, -0.01, -0.005, -0.001, 0.001, 0.005, 0.01, 0.02, 0.05, 0.10,
)
"""Price shifts a deviator tries (EUR/kWh), in the direction that could help it or not."""


@dataclass(frozen=True, slots=True)
class MdaPoint:
    """Averages over the replicates for one mechanism and one market size.

    Attributes:
        mechanism: the mechanism's name.
        n_traders: orders per book (buyers and sellers together).
        replicates: number of random books.
        efficiency: mean of welfare / largest welfare (books with no possible gain excluded).
        surplus_share: mean of auctioneer surplus / largest welfare.
        traded_share: mean of traded volume / efficient volume.
        misreport_gain_eur: mean over sampled deviators of the best gain from a misreport, EUR.
        misreport_gain_rate: share of sampled deviators for which some misreport pays.
    """

    mechanism: str
    n_traders: int
    replicates: int
    efficiency: float
    surplus_share: float
    traded_share: float
    misreport_gain_eur: float
    misreport_gain_rate: float


def random_book(n_traders: int, rng: np.random.Generator) -> OrderTable:
    """A single-slot book: random sides, values 0.00-0.40 EUR/kWh, 0.5-5 kWh per order.

    Buyers' values are drawn from 0.05-0.40 EUR/kWh and sellers' costs from 0.00-0.30 EUR/kWh, on
    the 1 µEUR/kWh grid.
    """
    is_buy = rng.random(n_traders) < 0.5
    price = np.where(
        is_buy,
        rng.integers(50_000, 400_001, n_traders),
        rng.integers(0, 300_001, n_traders),
    ).astype(np.int64)
    quantity = rng.integers(500, 5001, n_traders).astype(np.int64)
    return OrderTable.from_arrays(
        is_buy=is_buy, quantity_wh=quantity, price_ueur_per_kwh=price,
        ids=[f"t{i:04d}" for i in range(n_traders)],
    )


def _utility(truth: OrderTable, clearing: Clearing, i: int) -> int:
    filled = int(clearing.filled_wh[i])
    gap = int(truth.price_ueur_per_kwh[i]) - int(clearing.price_ueur_per_kwh[i])
    return filled * (gap if truth.is_buy[i] else -gap)


def _with_price(table: OrderTable, i: int, price: int) -> OrderTable:
    prices = table.price_ueur_per_kwh.copy()
    prices[i] = price
    return OrderTable.from_arrays(
        is_buy=table.is_buy, quantity_wh=table.quantity_wh, price_ueur_per_kwh=prices,
        slot=table.slot, ids=table.ids, owners=table.owners,
    )


def best_misreport_gain_neur(table: OrderTable, mechanism: str, i: int, k: float = 0.5) -> int:
    """The largest gain (>= 0) trader ``i`` gets from one of the misreport shifts, nEUR."""
    truthful = _utility(table, clear(table, mechanism, k=k), i)
    best = 0
    for shift in MISREPORT_SHIFTS_EUR_PER_KWH:
        price = int(table.price_ueur_per_kwh[i]) + round(shift * UEUR_PER_EUR)
        price = max(-MAX_ABS_PRICE_UEUR_PER_KWH, min(MAX_ABS_PRICE_UEUR_PER_KWH, price))
        lie = _with_price(table, i, price)
        best = max(best, _utility(table, clear(lie, mechanism, k=k), i) - truthful)
    return best


def run_mda_experiment(
    *,
    n_traders: Sequence[int] = DEFAULT_TRADERS,
    mechanisms: Sequence[str] = MECHANISMS,
    replicates: int = 20,
    deviators: int = 3,
    k: float = 0.5,
    seed: int = 0,
) -> tuple[MdaPoint, ...]:
    """Run the study.

    Args:
        n_traders: market sizes (orders per book), each >= 2.
        mechanisms: names from :data:`market.auction.MECHANISMS`.
        replicates: random books per market size (the same books for every mechanism).
        deviators: traders per book that try misreports.
        k: the uniform mechanism's k.
        seed: seed of the random books and of the choice of deviators.

    Returns:
        One point per (mechanism, market size), mechanisms in the given order.

    Raises:
        MechanismError: an unknown mechanism, or a size / count out of range.
    """
    for name in mechanisms:
        if name not in MECHANISMS:
            raise MechanismError(f"mechanisms: unknown mechanism {name!r}; known: {MECHANISMS}")
    if any(n < 2 for n in n_traders) or replicates < 1 or deviators < 0:
        raise MechanismError(
            f"n_traders must be >= 2, replicates >= 1 and deviators >= 0; got {list(n_traders)}, "
            f"{replicates}, {deviators}"
        )
    rng = np.random.default_rng(seed)
    books = {n: [random_book(n, rng) for _ in range(replicates)] for n in n_traders}
    picks = {n: [rng.choice(n, size=min(deviators, n), replace=False) for _ in range(replicates)]
             for n in n_traders}
    neur_per_eur = NEUR_PER_UEUR * UEUR_PER_EUR
    points = []
    for name in mechanisms:
        for n in n_traders:
            eff: list[float] = []
            share: list[float] = []
            traded: list[float] = []
            gains: list[int] = []
            for table, chosen in zip(books[n], picks[n], strict=True):
                best = clear(table, "efficient")
                c = clear(table, name, k=k)
                w_max = welfare_neur(best)
                if w_max > 0:
                    eff.append(welfare_neur(c) / w_max)
                    share.append(c.auctioneer_surplus_neur / w_max)
                if best.traded_wh:
                    traded.append(c.traded_wh / best.traded_wh)
                gains.extend(best_misreport_gain_neur(table, name, int(i), k) for i in chosen)
            gains_eur = np.array([g / neur_per_eur for g in gains], dtype=np.float64)
            points.append(
                MdaPoint(
                    mechanism=name,
                    n_traders=n,
                    replicates=replicates,
                    efficiency=float(np.mean(eff)) if eff else float("nan"),
                    surplus_share=float(np.mean(share)) if share else float("nan"),
                    traded_share=float(np.mean(traded)) if traded else float("nan"),
                    misreport_gain_eur=float(gains_eur.mean()) if gains else 0.0,
                    misreport_gain_rate=float((gains_eur > 0).mean()) if gains else 0.0,
                )
            )
            logger.info("mda %s n=%d efficiency %.3f", name, n, points[-1].efficiency)
    return tuple(points)
