"""Load, PV and storage data for one horizon of a feeder.

SimBench feeders carry 15-minute absolute profiles for every load, static generator and storage
unit for the 366 days of 2016 (``simbench.get_absolute_values``). Feeders without time series
(``case33bw``, Kerber, CIGRE LV, user files) get the **default day**:

* each load's nominal P and Q scaled by the BDEW H0 standard household profile of that day
  (``demandlib``), normalised so that the year's H0 peak equals the nominal value;
* PV on 40 % of the load buses — those whose rank in breadth-first order is 0 or 2 modulo 5 —
  rated at the bus's nominal load, producing ``rated × clear-sky GHI / 1000 W/m²`` from pvlib's
  Ineichen clear-sky model at Berlin (52.52 °N, 13.40 °E, 34 m); static generators the network
  itself carries are used as they are, with the same clear-sky shape.

Any step that divides the hour works: the 15-minute data are held constant within each quarter
hour and averaged over each step.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from grid.der import BatterySpec, PvSpec
from grid.errors import ProfileError
from grid.feeders import Feeder

SIMBENCH_YEAR = 2016
PV_SITE = {"latitude": 52.52, "longitude": 13.40, "altitude": 34.0, "tz": "Etc/GMT-1"}
PV_BUS_SHARE_RULE = (5, (0, 2))  # rank % 5 in {0, 2}: 40 % of the load buses


@dataclass(frozen=True, slots=True)
class DayProfiles:
    """What a feeder's devices do over one horizon.

    Attributes:
        feeder: the feeder's name.
        start: start of the first period.
        step_min: period length in minutes.
        periods: number of periods.
        load_p_kw: real power of each of ``feeder.loads``, shape ``(T, n_loads)``.
        load_q_kvar: reactive power of each load, shape ``(T, n_loads)``.
        pv: the PV systems.
        pv_p_avail_kw: available PV power, shape ``(T, n_pv)``.
        batteries: the storage units.
        source: ``"simbench"`` or ``"default day"``.
    """

    feeder: str
    start: datetime
    step_min: int
    periods: int
    load_p_kw: np.ndarray
    load_q_kvar: np.ndarray
    pv: tuple[PvSpec, ...]
    pv_p_avail_kw: np.ndarray
    batteries: tuple[BatterySpec, ...]
    source: str

    @property
    def dt_h(self) -> float:
        """Period length in hours."""
        return self.step_min / 60.0


def check_horizon(hours: float, step_min: int) -> int:
    """Validate a horizon and return its number of periods.

    Raises:
        ProfileError: a step that does not divide the hour, or hours not a whole number of steps.
    """
    if isinstance(step_min, bool) or not isinstance(step_min, int | np.integer) or not (
            1 <= step_min <= 60) or 60 % step_min:
        raise ProfileError(f"step_min must be a whole number of minutes that divides 60 "
                           f"(1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60), got {step_min!r}")
    if not (isinstance(hours, int | float) and math.isfinite(hours) and hours > 0):
        raise ProfileError(f"hours must be a finite number > 0, got {hours!r}")
    minutes = hours * 60
    if abs(minutes / step_min - round(minutes / step_min)) > 1e-9:
        raise ProfileError(f"hours ({hours}) must be a whole number of {step_min}-minute steps")
    return round(minutes / step_min)


def _resample(quarters: np.ndarray, offset_min: int, periods: int, step_min: int) -> np.ndarray:
    """Hold 15-minute values per minute and average them over each step."""
    minutes = np.repeat(quarters, 15, axis=0)[offset_min:offset_min + periods * step_min]
    return minutes.reshape(periods, step_min, -1).mean(axis=1)


def _as_datetime(day: date | datetime | str) -> datetime:
    if isinstance(day, str):
        try:
            return datetime.strptime(day, "%Y-%m-%d")
        except ValueError as exc:
            raise ProfileError(f"day must be YYYY-MM-DD, got {day!r}") from exc
    if isinstance(day, datetime):
        return day
    return datetime(day.year, day.month, day.day)


def day_profiles(feeder: Feeder, day: date | datetime | str, hours: float = 24,
                 step_min: int = 15) -> DayProfiles:
    """The feeder's load, PV and storage data from ``day`` 00:00 for ``hours``.

    Raises:
        ProfileError: bad step or horizon; a SimBench day outside 2016.
    """
    periods = check_horizon(hours, step_min)
    start = _as_datetime(day)
    if feeder.has_profiles:
        return _simbench(feeder, start, periods, step_min)
    return _default_day(feeder, start, periods, step_min)


# --------------------------------------------------------------------------------------------
# SimBench


@functools.lru_cache(maxsize=8)
def _simbench_tables(code: str) -> dict[tuple[str, str], Any]:
    import simbench  # noqa: PLC0415 - heavy import, only on demand

    from grid.feeders import _simbench_net  # noqa: PLC0415 - shares the cached network

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning))
        tables = simbench.get_absolute_values(_simbench_net(code), True)
    return dict(tables)


def _simbench(feeder: Feeder, start: datetime, periods: int, step_min: int) -> DayProfiles:
    year_start = datetime(SIMBENCH_YEAR, 1, 1)
    year_end = datetime(SIMBENCH_YEAR + 1, 1, 1)
    end = start + timedelta(minutes=periods * step_min)
    if start < year_start or end > year_end:
        raise ProfileError(f"feeder {feeder.name!r} has profiles for {SIMBENCH_YEAR} only: day "
                           f"{start:%Y-%m-%d} with {periods * step_min / 60:g} h ends outside it")
    tables = _simbench_tables(feeder.name)
    offset = int((start - year_start).total_seconds() // 60)
    first_q, off_min = divmod(offset, 15)
    n_q = math.ceil((off_min + periods * step_min) / 15)

    def block(key: tuple[str, str], items: tuple) -> np.ndarray:
        df = tables[key]
        cols = [a.index for a in items]
        arr = df.loc[:, cols].to_numpy(dtype=float)[first_q:first_q + n_q] * 1000.0
        return _resample(arr, off_min, periods, step_min)

    load_p = block(("load", "p_mw"), feeder.loads)
    load_q = block(("load", "q_mvar"), feeder.loads)
    pv_items = tuple(a for a in feeder.sgens if a.p_kw > 0)
    pv_avail = block(("sgen", "p_mw"), pv_items) if pv_items else np.zeros((periods, 0))
    pv = tuple(PvSpec(name=a.name, bus=a.bus, p_rated_kw=a.p_kw) for a in pv_items)
    return DayProfiles(feeder.name, start, step_min, periods, load_p, load_q, pv,
                       np.clip(pv_avail, 0.0, None), _storage_specs(feeder), "simbench")


def _storage_specs(feeder: Feeder) -> tuple[BatterySpec, ...]:
    """Storage units as batteries.

    SimBench gives ``efficiency_percent`` 0.95, read as a 95 % round trip split evenly between
    charging and discharging.
    """
    net = feeder.net
    out = []
    for a in feeder.storages:
        if a.e_max_kwh <= 0:
            continue
        row = net.storage.loc[a.index]
        p_kw = abs(float(row.sn_mva)) * 1000 or abs(a.p_kw)
        eff = float(row.get("efficiency_percent", 0.95))
        eff = eff / 100 if eff > 1 else eff
        eta = math.sqrt(eff)
        out.append(BatterySpec(name=a.name, bus=a.bus, e_max_kwh=a.e_max_kwh,
                               p_charge_max_kw=p_kw, p_discharge_max_kw=p_kw, eta_charge=eta,
                               eta_discharge=eta, end_tolerance_frac=0.0))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# default day


@functools.lru_cache(maxsize=4)
def _h0_year(year: int) -> np.ndarray:
    from demandlib import bdew  # noqa: PLC0415 - heavy import, only on demand

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning))
        prof = bdew.ElecSlp(year).get_scaled_profiles({"h0": 1.0})["h0"].to_numpy(dtype=float)
    return prof / prof.max()


def _clear_sky_shape(start: datetime, n_quarters: int) -> np.ndarray:
    import pandas as pd  # noqa: PLC0415
    import pvlib  # noqa: PLC0415 - heavy import, only on demand

    site = pvlib.location.Location(PV_SITE["latitude"], PV_SITE["longitude"],
                                   tz=PV_SITE["tz"], altitude=PV_SITE["altitude"])
    # mid-point of each quarter hour, in standard time (no clock changes in the profiles)
    times = pd.date_range(start + timedelta(minutes=7.5), periods=n_quarters, freq="15min",
                          tz=PV_SITE["tz"])
    ghi = site.get_clearsky(times, model="ineichen")["ghi"].to_numpy(dtype=float)
    return np.clip(ghi / 1000.0, 0.0, None)


def _default_day(feeder: Feeder, start: datetime, periods: int, step_min: int) -> DayProfiles:
    year_start = datetime(start.year, 1, 1)
    offset = int((start - year_start).total_seconds() // 60)
    first_q, off_min = divmod(offset, 15)
    n_q = math.ceil((off_min + periods * step_min) / 15)
    h0 = np.concatenate([_h0_year(start.year), _h0_year(start.year + 1)])
    shape = h0[first_q:first_q + n_q].reshape(-1, 1)
    p_nom = np.array([[a.p_kw for a in feeder.loads]])
    q_nom = np.array([[a.q_kvar for a in feeder.loads]])
    load_p = _resample(shape * p_nom, off_min, periods, step_min)
    load_q = _resample(shape * q_nom, off_min, periods, step_min)
    sun = _clear_sky_shape(start - timedelta(minutes=off_min), n_q).reshape(-1, 1)

    pv: list[PvSpec] = [PvSpec(a.name, a.bus, a.p_kw) for a in feeder.sgens if a.p_kw > 0]
    bus_load: dict[object, float] = {}
    for a in feeder.loads:
        bus_load[a.bus] = bus_load.get(a.bus, 0.0) + a.p_kw
    modulus, picks = PV_BUS_SHARE_RULE
    load_buses = [b for b in feeder.buses if bus_load.get(b, 0.0) > 0]
    for rank, b in enumerate(load_buses):
        if rank % modulus in picks:
            pv.append(PvSpec(f"pv@{b}", b, round(bus_load[b], 3)))
    rated = np.array([[s.p_rated_kw for s in pv]]) if pv else np.zeros((1, 0))
    pv_avail = _resample(sun * rated, off_min, periods, step_min)
    return DayProfiles(feeder.name, start, step_min, periods, load_p, load_q, tuple(pv),
                       pv_avail, (), "default day")
