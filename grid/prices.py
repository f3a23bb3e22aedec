"""Day-ahead wholesale prices (SMARD 2018 extract) and simple retail tariffs.

The shipped series is hourly; :func:`day_ahead_eur_per_kwh` holds each hour's price over the
sub-hourly steps of a horizon. See ``grid/data/README.md`` for source and licence.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.resources import files

import numpy as np

from grid.errors import ProfileError

ZONES = {"NL": "nl_eur_per_mwh", "DE": "de_eur_per_mwh"}


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, dict[tuple[int, int, int], float]]:
    text = files("grid").joinpath("data/day_ahead_prices_2018.csv").read_text(encoding="utf-8")
    out: dict[str, dict[tuple[int, int, int], float]] = {z: {} for z in ZONES}
    for row in csv.DictReader(text.splitlines()):
        when = datetime.strptime(row["local_time"], "%Y-%m-%d %H:%M")
        key = (when.month, when.day, when.hour)
        for zone, col in ZONES.items():
            out[zone].setdefault(key, float(row[col]) / 1000.0)  # first of a repeated hour
    return out


def _price(zone: str, month: int, day: int, hour: int) -> float:
    table = _table()[zone]
    if month == 2 and day == 29:
        day = 28
    for h in (hour, hour - 1):  # the hour skipped by the spring clock change takes the one before
        if (month, day, h) in table:
            return table[(month, day, h)]
    raise ProfileError(f"no day-ahead price for {month:02d}-{day:02d} {hour:02d}:00 in zone "
                       f"{zone}")


def day_ahead_eur_per_kwh(start: datetime, periods: int, step_min: int,
                          zone: str = "DE") -> np.ndarray:
    """Wholesale day-ahead price per step in EUR/kWh, paired by month, day and hour of 2018.

    Args:
        start: start of the first step (its year is ignored).
        periods: number of steps.
        step_min: step length in minutes.
        zone: ``"DE"`` or ``"NL"``.

    Raises:
        ProfileError: unknown zone.
    """
    if zone not in ZONES:
        raise ProfileError(f"zone must be one of {sorted(ZONES)}, got {zone!r}")
    out = np.empty(periods)
    for k in range(periods):
        t = start + timedelta(minutes=step_min * k)
        out[k] = _price(zone, t.month, t.day, t.hour)
    return out


@dataclass(frozen=True, slots=True)
class Tariff:
    """Retail prices derived from the wholesale price.

    Import pays ``wholesale + margin_eur_per_kwh``; export earns
    ``export_share × import price`` when ``export_share`` is set (B-DER: 50 %), else the
    wholesale price. Export never earns more than import costs (the OPF relies on it).

    Attributes:
        margin_eur_per_kwh: retail adder (network charges, levies, supplier margin).
        export_share: feed-in price as a share of the import price, or ``None`` for wholesale.
        zone: price zone of the wholesale series.
    """

    margin_eur_per_kwh: float = 0.10
    export_share: float | None = None
    zone: str = "DE"

    def prices(self, start: datetime, periods: int, step_min: int
               ) -> tuple[np.ndarray, np.ndarray]:
        """(import, export) prices per step in EUR/kWh."""
        wholesale = day_ahead_eur_per_kwh(start, periods, step_min, self.zone)
        imp = wholesale + self.margin_eur_per_kwh
        exp = imp * self.export_share if self.export_share is not None else wholesale.copy()
        return imp, np.minimum(exp, imp)
