"""The scenario of a simulated day: a validated, frozen description of feeder, assets and market.

A :class:`Scenario` is built from a plain mapping (a parsed TOML file) by
:meth:`Scenario.from_dict`, which refuses unknown keys and values out of range with an error
naming the field. Everything random in a run derives from ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any

from mas.errors import ScenarioError


def _num(where: str, value: object, lo: float, hi: float, *, integer: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    number = float(value) if isinstance(value, int | float) else math.nan
    if ok and integer and not (isinstance(value, int) or number.is_integer()):
        ok = False
    if not ok or not math.isfinite(number) or not lo <= number <= hi:
        kind = "an integer" if integer else "a number"
        raise ScenarioError(f"{where} must be {kind} in [{lo}, {hi}], got {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class DerShares:
    """Which households get which assets, and their sizes.

    Attributes:
        pv_share: share of households with PV.
        pv_kwp_per_kw_load: PV peak power per kW of the household's nominal load.
        battery_share: share of households with a battery (chosen among the PV households first).
        battery_kwh: usable battery capacity.
        battery_kw: battery charge/discharge power limit.
        ev_share: share of households with an EV.
        ev_kw: EV charging power limit.
        ev_kwh: energy each EV needs over the day.
        ev_arrive_h: hour the EV arrives (window start).
        ev_leave_h: hour the EV leaves (window end, may wrap past midnight).
    """

    pv_share: float = 0.4
    pv_kwp_per_kw_load: float = 1.5
    battery_share: float = 0.25
    battery_kwh: float = 8.0
    battery_kw: float = 3.0
    ev_share: float = 0.2
    ev_kw: float = 7.4
    ev_kwh: float = 12.0
    ev_arrive_h: int = 18
    ev_leave_h: int = 7

    def __post_init__(self) -> None:
        for name in ("pv_share", "battery_share", "ev_share"):
            _num(f"der.{name}", getattr(self, name), 0, 1)
        for name in ("pv_kwp_per_kw_load", "battery_kwh", "battery_kw", "ev_kw", "ev_kwh"):
            _num(f"der.{name}", getattr(self, name), 1e-6, 1e4)
        for name in ("ev_arrive_h", "ev_leave_h"):
            _num(f"der.{name}", getattr(self, name), 0, 23, integer=True)


@dataclass(frozen=True, slots=True)
class Forecast:
    """The households' forecast error model: multiplicative Gaussian noise per period.

    Attributes:
        load_sigma_frac: standard deviation of the relative load forecast error.
        pv_sigma_frac: standard deviation of the relative PV forecast error.
    """

    load_sigma_frac: float = 0.15
    pv_sigma_frac: float = 0.2

    def __post_init__(self) -> None:
        _num("forecast.load_sigma_frac", self.load_sigma_frac, 0, 2)
        _num("forecast.pv_sigma_frac", self.pv_sigma_frac, 0, 2)


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """The local market and the retail tariff.

    Attributes:
        mechanism: clearing mechanism of the local sessions (the chain clears ``huang``).
        real_time_block_h: each real-time session trades this many consecutive hourly slots.
        intraday_every_h: hours between the gate closures of the intraday sessions (0: no
            intraday session). Following :class:`market.vdg.MarketCalendar`, the session
            closing at ``j·intraday_every_h − 1`` h trades every slot from hour
            ``j·intraday_every_h`` on whose real-time session has not closed yet.
        penalty_eur_per_kwh: a seller's penalty per kWh contracted but not delivered.
        margin_eur_per_kwh: retail adder on the wholesale price (import price).
        export_share: feed-in price as a share of the import price; ``None``: wholesale.
        credit_eur: Credit each participant starts with on the chain.
    """

    mechanism: str = "huang"
    real_time_block_h: int = 6
    intraday_every_h: int = 6
    penalty_eur_per_kwh: float = 0.05
    margin_eur_per_kwh: float = 0.10
    export_share: float | None = None
    credit_eur: float = 200.0

    def __post_init__(self) -> None:
        if self.mechanism != "huang":
            raise ScenarioError(f"market.mechanism must be 'huang' (the chain's mechanism), "
                                f"got {self.mechanism!r}")
        _num("market.real_time_block_h", self.real_time_block_h, 1, 24, integer=True)
        if 24 % int(self.real_time_block_h):
            raise ScenarioError(f"market.real_time_block_h must divide 24, got "
                                f"{self.real_time_block_h!r}")
        _num("market.intraday_every_h", self.intraday_every_h, 0, 24, integer=True)
        _num("market.penalty_eur_per_kwh", self.penalty_eur_per_kwh, 0, 10)
        _num("market.margin_eur_per_kwh", self.margin_eur_per_kwh, 0, 10)
        if self.export_share is not None:
            _num("market.export_share", self.export_share, 0, 1)
        _num("market.credit_eur", self.credit_eur, 1, 1e6)


@dataclass(frozen=True, slots=True)
class GridSpec:
    """The DSO's limits and its ADMM rounds with the households.

    Attributes:
        import_limit_kw: substation import limit (a constraint of the DSO's OPF).
        v_min_pu: lower voltage limit.
        v_max_pu: upper voltage limit.
        rho_eur_per_kw2: ADMM penalty ρ; households plan with it as their proximal weight.
        max_rounds: most ADMM rounds (each costs a contract round on chain, about 1.3 s on the
            embedded chain; the default day meets the stopping rule after 19, 27 without
            Anderson acceleration).
        eps_abs_kw: absolute tolerance of the ADMM stopping rule (kW per copy and slot).
        eps_rel: relative tolerance of the stopping rule.
        alpha: over-relaxation of the submitted vectors, in (0, 2); 1 is plain ADMM.
        anderson: memory of the DSO's Anderson acceleration of the rounds (0: off; see
            :mod:`mas.brains.coordination`).
        tol_kw: an import above the limit by more than this after the rounds gets a
            flexibility call.
    """

    import_limit_kw: float = 60.0
    v_min_pu: float = 0.94
    v_max_pu: float = 1.06
    rho_eur_per_kw2: float = 0.02
    max_rounds: int = 40
    eps_abs_kw: float = 0.01
    eps_rel: float = 1e-3
    alpha: float = 1.0
    anderson: int = 3
    tol_kw: float = 0.5

    def __post_init__(self) -> None:
        _num("grid.import_limit_kw", self.import_limit_kw, 1e-3, 1e6)
        _num("grid.v_min_pu", self.v_min_pu, 0.5, 1.0)
        _num("grid.v_max_pu", self.v_max_pu, 1.0, 1.5)
        _num("grid.rho_eur_per_kw2", self.rho_eur_per_kw2, 1e-6, 10)
        _num("grid.max_rounds", self.max_rounds, 1, 1000, integer=True)
        _num("grid.eps_abs_kw", self.eps_abs_kw, 0, 1e3)
        _num("grid.eps_rel", self.eps_rel, 0, 1)
        _num("grid.alpha", self.alpha, 0.1, 1.9)
        _num("grid.anderson", self.anderson, 0, 50, integer=True)
        _num("grid.tol_kw", self.tol_kw, 0, 1e3)


@dataclass(frozen=True, slots=True)
class RuntimeSpec:
    """Deadlines of the agent runtime (wall-clock seconds; the simulated clock is event-driven).

    Attributes:
        reply_timeout_s: how long an initiator waits for the replies of one protocol step.
        day_deadline_s: the whole day is abandoned after this long.
        household_processes: agent processes the households are spread over.
    """

    reply_timeout_s: float = 20.0
    day_deadline_s: float = 900.0
    household_processes: int = 2

    def __post_init__(self) -> None:
        _num("runtime.reply_timeout_s", self.reply_timeout_s, 0.1, 3600)
        _num("runtime.day_deadline_s", self.day_deadline_s, 1, 86400)
        _num("runtime.household_processes", self.household_processes, 1, 64, integer=True)


_SECTIONS = {"der": DerShares, "forecast": Forecast, "market": MarketSpec, "grid": GridSpec,
             "runtime": RuntimeSpec}


@dataclass(frozen=True, slots=True)
class Scenario:
    """One simulated day of a VDG neighbourhood.

    Attributes:
        name: the scenario's name.
        feeder: a feeder name :func:`grid.feeders.load_feeder` knows (SimBench LV by default).
        day: the delivery day, ``YYYY-MM-DD``.
        households: number of households (the first loads of the feeder); ``None``: all loads.
        seed: seed of every random draw of the run.
        der: asset shares and sizes.
        forecast: forecast error model.
        market: local market and tariff.
        grid: DSO limits and coordination.
        runtime: deadlines of the agent runtime.
    """

    name: str = "default"
    feeder: str = "1-LV-semiurb4--0-sw"
    day: str = "2016-06-21"
    households: int | None = None
    seed: int = 1
    der: DerShares = field(default_factory=DerShares)
    forecast: Forecast = field(default_factory=Forecast)
    market: MarketSpec = field(default_factory=MarketSpec)
    grid: GridSpec = field(default_factory=GridSpec)
    runtime: RuntimeSpec = field(default_factory=RuntimeSpec)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ScenarioError(f"name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.feeder, str) or not self.feeder:
            raise ScenarioError(f"feeder must be a non-empty string, got {self.feeder!r}")
        try:
            date.fromisoformat(self.day)
        except (TypeError, ValueError):
            raise ScenarioError(f"day must be YYYY-MM-DD, got {self.day!r}") from None
        if self.households is not None:
            _num("households", self.households, 1, 100_000, integer=True)
            object.__setattr__(self, "households", int(self.households))
        _num("seed", self.seed, 0, 2**63 - 1, integer=True)
        object.__setattr__(self, "seed", int(self.seed))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        """Build from a mapping (a parsed TOML file), refusing unknown keys.

        Raises:
            ScenarioError: an unknown key, a wrong type or a value out of range (named).
        """
        if not isinstance(data, Mapping):
            raise ScenarioError(f"scenario must be a table, got {type(data).__name__}")
        top = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in top:
                raise ScenarioError(f"unknown key {key!r} (expected one of {sorted(top)})")
            if key in _SECTIONS:
                kwargs[key] = _section(key, _SECTIONS[key], value)
            else:
                kwargs[key] = value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The scenario as a plain mapping (``from_dict`` of it gives an equal scenario)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECTIONS:
                out[f.name] = {g.name: getattr(value, g.name) for g in fields(value)
                               if getattr(value, g.name) is not None}
            elif value is not None:
                out[f.name] = value
        return out

    def with_overrides(self, *, households: int | None = None, seed: int | None = None
                       ) -> Scenario:
        """A copy with the number of households and/or the seed replaced."""
        data = self.to_dict()
        if households is not None:
            data["households"] = households
        if seed is not None:
            data["seed"] = seed
        return Scenario.from_dict(data)


def _section(name: str, cls: type, value: object) -> object:
    if not isinstance(value, Mapping):
        raise ScenarioError(f"{name} must be a table, got {value!r}")
    known = {f.name for f in fields(cls)}
    for key in value:
        if key not in known:
            raise ScenarioError(f"unknown key {name}.{key} (expected one of {sorted(known)})")
    return cls(**value)
