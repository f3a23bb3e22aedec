"""The neighbourhood a scenario describes: feeder, households with their assets, profiles, prices.

Built the same way in every process that runs agents (and by the Mesa runtime), so a household
agent started anywhere sees the same data. Asset allocation and trading preferences are drawn
from ``numpy.random.default_rng(seed)``; each household's forecast noise comes from its own
generator, spawned from the same seed (:func:`household_rng`).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from grid.der import BatterySpec, EvSpec, PvSpec
from grid.feeders import Feeder, load_feeder
from grid.prices import Tariff, day_ahead_eur_per_kwh
from grid.profiles import day_profiles
from mas.errors import ScenarioError
from mas.scenario import Scenario

log = logging.getLogger(__name__)

SLOTS = 24
"""Hourly delivery slots of the simulated day."""
STEP_MIN = 60


@dataclass(frozen=True, slots=True)
class HouseholdSpec:
    """One household: where it is, what it owns and how it values energy.

    Attributes:
        id: agent name, ``h000``, ``h001``, ...
        index: position among the households (0-based).
        bus: its feeder bus.
        load_name: the feeder load it stands for.
        load_kw: its true inflexible load per slot, kW.
        load_q_kvar: its true reactive load per slot, kvar.
        pv_avail_kw: true available PV power per slot, kW (zeros without PV).
        pv: its PV system, or ``None``.
        battery: its battery, or ``None``.
        ev: its EV, or ``None``.
        ev_available: 0/1 availability of the EV per slot.
        ev_need_kwh: energy the EV must get over the day (0 without EV).
        buy_value_frac: its buy limit as a share of the retail import price (in [0.9, 1]).
        sell_markup_frac: its sell limit: feed-in plus this share of (import − feed-in).
    """

    id: str
    index: int
    bus: object
    load_name: str
    load_kw: tuple[float, ...]
    load_q_kvar: tuple[float, ...]
    pv_avail_kw: tuple[float, ...]
    pv: PvSpec | None
    battery: BatterySpec | None
    ev: EvSpec | None
    ev_available: tuple[float, ...]
    ev_need_kwh: float
    buy_value_frac: float
    sell_markup_frac: float

    @property
    def is_prosumer(self) -> bool:
        """Owns PV (a prosumer) rather than only consuming."""
        return self.pv is not None


@dataclass(frozen=True, slots=True, eq=False)
class World:
    """Everything the agents of a scenario share.

    Attributes:
        scenario: the scenario.
        feeder: the radial feeder.
        day_start: start of slot 0.
        households: the households, by index.
        import_eur_per_kwh: retail import price per slot.
        export_eur_per_kwh: feed-in price per slot.
        wholesale_eur_per_kwh: wholesale day-ahead price per slot.
    """

    scenario: Scenario
    feeder: Feeder
    day_start: datetime
    households: tuple[HouseholdSpec, ...]
    import_eur_per_kwh: tuple[float, ...]
    export_eur_per_kwh: tuple[float, ...]
    wholesale_eur_per_kwh: tuple[float, ...]

    def household(self, hid: str) -> HouseholdSpec:
        """The household with this id.

        Raises:
            ScenarioError: no such household.
        """
        for h in self.households:
            if h.id == hid:
                return h
        raise ScenarioError(f"household id {hid!r} is not in scenario {self.scenario.name!r}")

    @property
    def ids(self) -> tuple[str, ...]:
        """Household ids in index order."""
        return tuple(h.id for h in self.households)


def household_id(index: int) -> str:
    """The agent name of the household with this index."""
    return f"h{index:03d}"


def household_rng(seed: int, index: int) -> np.random.Generator:
    """The forecast-noise generator of one household, independent of every other one."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, index)))


@functools.lru_cache(maxsize=4)
def build_world(scenario: Scenario) -> World:
    """Build the neighbourhood of a scenario (deterministic in ``scenario.seed``).

    Raises:
        ScenarioError: more households asked for than the feeder has loads.
        FeederError, ProfileError: from the grid layer.
    """
    feeder = load_feeder(scenario.feeder)
    prof = day_profiles(feeder, scenario.day, hours=24, step_min=STEP_MIN)
    n_loads = len(feeder.loads)
    n = scenario.households if scenario.households is not None else n_loads
    if n > n_loads:
        raise ScenarioError(f"households must be at most {n_loads} (the loads of feeder "
                            f"{feeder.name!r}), got {n}")
    rng = np.random.default_rng(np.random.SeedSequence(scenario.seed, spawn_key=(0,)))
    der = scenario.der
    order = rng.permutation(n)
    n_pv = round(der.pv_share * n)
    n_bat = round(der.battery_share * n)
    n_ev = round(der.ev_share * n)
    pv_set = set(order[:n_pv].tolist())
    bat_set = set(order[:n_bat].tolist())  # batteries go to PV households first
    ev_set = set(rng.permutation(n)[:n_ev].tolist())
    buy_value = rng.uniform(0.9, 1.0, n)
    sell_markup = rng.uniform(0.0, 0.3, n)
    sun = _sun_shape(prof.pv_p_avail_kw, prof.periods)
    from grid.der import ev_window  # noqa: PLC0415 - keeps the import list short

    ev_avail = ev_window(SLOTS, der.ev_arrive_h, der.ev_leave_h)
    households = []
    for i in range(n):
        load = feeder.loads[i]
        hid = household_id(i)
        load_kw = np.clip(prof.load_p_kw[:, i], 0.0, None)
        p_nom = max(load.p_kw, 0.5)
        pv = PvSpec(f"pv-{hid}", load.bus, round(der.pv_kwp_per_kw_load * p_nom, 3)) \
            if i in pv_set else None
        pv_avail = sun * pv.p_rated_kw if pv else np.zeros(SLOTS)
        bat = BatterySpec(f"bat-{hid}", load.bus, der.battery_kwh, der.battery_kw,
                          der.battery_kw, end_tolerance_frac=0.0,
                          degradation_eur_per_kwh=0.01) if i in bat_set else None
        ev = EvSpec(f"ev-{hid}", load.bus, der.ev_kw) if i in ev_set else None
        households.append(HouseholdSpec(
            id=hid, index=i, bus=load.bus, load_name=load.name,
            load_kw=tuple(float(x) for x in load_kw),
            load_q_kvar=tuple(float(x) for x in prof.load_q_kvar[:, i]),
            pv_avail_kw=tuple(float(x) for x in pv_avail), pv=pv, battery=bat, ev=ev,
            ev_available=tuple(float(x) for x in ev_avail) if ev else (0.0,) * SLOTS,
            ev_need_kwh=min(der.ev_kwh, 0.8 * float(ev_avail.sum()) * der.ev_kw) if ev else 0.0,
            buy_value_frac=float(buy_value[i]), sell_markup_frac=float(sell_markup[i]),
        ))
    ms = scenario.market
    imp, exp = Tariff(ms.margin_eur_per_kwh, ms.export_share).prices(prof.start, SLOTS, STEP_MIN)
    wholesale = day_ahead_eur_per_kwh(prof.start, SLOTS, STEP_MIN)
    log.info("world %s: %d households on %s (%d PV, %d batteries, %d EVs)", scenario.name, n,
             feeder.name, n_pv, n_bat, n_ev)
    return World(scenario, feeder, prof.start, tuple(households),
                 tuple(float(x) for x in imp), tuple(float(x) for x in np.maximum(exp, 0.0)),
                 tuple(float(x) for x in wholesale))


def _sun_shape(pv_avail_kw: np.ndarray, periods: int) -> np.ndarray:
    """Per-kWp PV shape of the day: the feeder's own PV profile normalised, else clear sky."""
    if pv_avail_kw.size and pv_avail_kw.max() > 0:
        total = pv_avail_kw.sum(axis=1)
        return total / total.max()
    hours = np.arange(periods) + 0.5
    return np.clip(np.sin(np.pi * (hours - 5.0) / 16.0), 0.0, None)
