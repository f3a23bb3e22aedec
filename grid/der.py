"""DER device models as cvxpy constraint builders.

Each ``build_*`` function takes the specs of several devices of one kind and returns a
:class:`DeviceBlock` whose ``p_kw`` (and ``q_kvar``) expressions have shape ``(n_devices, T)``:
the power each device injects into its bus in each period, generation positive. Data that change
from day to day (profiles, initial state of charge, energy needs) are cvxpy ``Parameter`` s, so a
problem built once re-solves with new values without recompiling (DPP). The same builders serve
the centralised OPF, the per-bus ADMM subproblems and the prosumer models.

Notation follows Münsing et al. (2017) §IV-B and Yang & Wang §II; where a printed equation has a
typo the docstring says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np

from grid.errors import DerError


def _positive(owner: str, name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise DerError(f"{owner}: {name} must be finite and {bound}, got {value!r}")


def _fraction(owner: str, name: str, value: float) -> None:
    if not (math.isfinite(value) and 0 < value <= 1):
        raise DerError(f"{owner}: {name} must be in (0, 1], got {value!r}")


@dataclass(frozen=True, slots=True)
class DeviceBlock:
    """The cvxpy pieces of a group of devices of one kind.

    Attributes:
        kind: device kind (``"pv"``, ``"battery"``, ...).
        names: one name per device, in row order.
        buses: the bus of each device.
        p_kw: real power injected into the bus, shape ``(n, T)``, generation positive.
        q_kvar: reactive power injected, shape ``(n, T)``, or ``None`` when the kind has none.
        constraints: the device constraints.
        cost_eur: the devices' own cost over the horizon (scalar expression, 0 if none).
        variables: the decision variables by name.
        parameters: the parameters by name (set ``.value`` before solving).
    """

    kind: str
    names: tuple[str, ...]
    buses: tuple[object, ...]
    p_kw: cp.Expression
    q_kvar: cp.Expression | None
    constraints: list[cp.Constraint]
    cost_eur: cp.Expression
    variables: dict[str, cp.Expression] = field(default_factory=dict)
    parameters: dict[str, cp.Parameter] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# PV


@dataclass(frozen=True, slots=True)
class PvSpec:
    """A curtailable PV system.

    Attributes:
        name: unique name.
        bus: the bus it feeds.
        p_rated_kw: rated (peak) real power.
        s_rated_kva: inverter rating; reactive capability is ``|q| <= sqrt(s² - p²)``.
        q_capable: whether the inverter may inject or absorb reactive power.
    """

    name: str
    bus: object
    p_rated_kw: float
    s_rated_kva: float | None = None
    q_capable: bool = False

    def __post_init__(self) -> None:
        _positive(f"pv {self.name!r}", "p_rated_kw", self.p_rated_kw)
        if self.s_rated_kva is not None:
            _positive(f"pv {self.name!r}", "s_rated_kva", self.s_rated_kva)
            if self.s_rated_kva < self.p_rated_kw:
                raise DerError(
                    f"pv {self.name!r}: s_rated_kva ({self.s_rated_kva}) must be >= "
                    f"p_rated_kw ({self.p_rated_kw})"
                )


def build_pv(specs: Sequence[PvSpec], periods: int) -> DeviceBlock:
    """Curtailable PV: ``0 <= p <= p_avail`` with the availability as parameter ``p_avail_kw``.

    With ``q_capable``, a reactive-power variable joins with ``p² + q² <= s_rated²``.
    """
    n = len(specs)
    p_avail = cp.Parameter((n, periods), nonneg=True, name="pv_p_avail_kw")
    p = cp.Variable((n, periods), nonneg=True, name="pv_p_kw")
    cons: list[cp.Constraint] = [p <= p_avail]
    q_expr: cp.Expression | None = None
    variables: dict[str, cp.Expression] = {"p_kw": p}
    q_rows = [k for k, s in enumerate(specs) if s.q_capable]
    if q_rows:
        q = cp.Variable((n, periods), name="pv_q_kvar")
        mask = np.zeros((n, 1))
        mask[q_rows] = 1.0
        s_max = np.array([[s.s_rated_kva or s.p_rated_kw] for s in specs]).repeat(periods, 1)
        cons += [
            cp.multiply(1.0 - mask, q) == 0,
            cp.SOC(cp.vec(s_max, order="F"), cp.vstack([cp.vec(p, order="F"),
                                                        cp.vec(q, order="F")]), axis=0),
        ]
        q_expr = q
        variables["q_kvar"] = q
    return DeviceBlock("pv", tuple(s.name for s in specs), tuple(s.bus for s in specs), p, q_expr,
                       cons, cp.Constant(0.0), variables, {"p_avail_kw": p_avail})


# --------------------------------------------------------------------------------------------
# Battery


@dataclass(frozen=True, slots=True)
class BatterySpec:
    """A stationary battery, Münsing (7a)–(7f) / Yang–Wang (6)–(9).

    Attributes:
        name: unique name.
        bus: the bus it is connected to.
        e_max_kwh: usable capacity (upper SoC bound).
        p_charge_max_kw: charge power limit.
        p_discharge_max_kw: discharge power limit.
        eta_charge: charging efficiency in (0, 1].
        eta_discharge: discharging efficiency in (0, 1].
        e_min_kwh: lower SoC bound.
        end_tolerance_frac: ε of Münsing (7f): the final energy stays within
            ``[(1-ε)·e_init, (1+ε)·e_init]``. (The paper prints the bounds the wrong way round,
            which would be infeasible for ε > 0.) ``None`` drops the condition.
        degradation_eur_per_kwh: cost per kWh charged plus discharged (Yang–Wang C_i^B).
    """

    name: str
    bus: object
    e_max_kwh: float
    p_charge_max_kw: float
    p_discharge_max_kw: float
    eta_charge: float = 0.95
    eta_discharge: float = 0.95
    e_min_kwh: float = 0.0
    end_tolerance_frac: float | None = 0.0
    degradation_eur_per_kwh: float = 0.0

    def __post_init__(self) -> None:
        owner = f"battery {self.name!r}"
        _positive(owner, "e_max_kwh", self.e_max_kwh)
        _positive(owner, "p_charge_max_kw", self.p_charge_max_kw, allow_zero=True)
        _positive(owner, "p_discharge_max_kw", self.p_discharge_max_kw, allow_zero=True)
        _fraction(owner, "eta_charge", self.eta_charge)
        _fraction(owner, "eta_discharge", self.eta_discharge)
        _positive(owner, "e_min_kwh", self.e_min_kwh, allow_zero=True)
        _positive(owner, "degradation_eur_per_kwh", self.degradation_eur_per_kwh,
                  allow_zero=True)
        if self.e_min_kwh > self.e_max_kwh:
            raise DerError(f"{owner}: e_min_kwh ({self.e_min_kwh}) exceeds e_max_kwh "
                           f"({self.e_max_kwh})")
        if self.end_tolerance_frac is not None and not (0 <= self.end_tolerance_frac < 1):
            raise DerError(f"{owner}: end_tolerance_frac must be in [0, 1), got "
                           f"{self.end_tolerance_frac!r}")


def build_batteries(specs: Sequence[BatterySpec], periods: int, dt_h: float) -> DeviceBlock:
    """Batteries with separate charge ``c`` and discharge ``d`` powers.

    ``e[t] = e[t-1] + η_c·c[t]·Δt − d[t]·Δt/η_d`` from the parameter ``e_init_kwh``; ``e[t]``
    is the energy at the *end* of period t. Injection ``p = d − c``. The LP may charge and
    discharge at once only when that lowers cost (negative prices); it never does otherwise.
    """
    n = len(specs)
    col = lambda vals: np.array(vals, dtype=float).reshape(n, 1)  # noqa: E731
    c = cp.Variable((n, periods), nonneg=True, name="bat_c_kw")
    d = cp.Variable((n, periods), nonneg=True, name="bat_d_kw")
    e_init = cp.Parameter(n, nonneg=True, name="bat_e_init_kwh")
    eta_c = col([s.eta_charge for s in specs])
    eta_d = col([s.eta_discharge for s in specs])
    flow = cp.multiply(eta_c * dt_h, c) - cp.multiply(dt_h / eta_d, d)
    e = cp.reshape(e_init, (n, 1), order="F") @ np.ones((1, periods)) + cp.cumsum(flow, axis=1)
    cons: list[cp.Constraint] = [
        c <= col([s.p_charge_max_kw for s in specs]),
        d <= col([s.p_discharge_max_kw for s in specs]),
        e <= col([s.e_max_kwh for s in specs]),
        e >= col([s.e_min_kwh for s in specs]),
    ]
    rows = [k for k, s in enumerate(specs) if s.end_tolerance_frac is not None]
    if rows:
        eps = np.array([specs[k].end_tolerance_frac for k in rows], dtype=float)
        e_end = e[rows, periods - 1]
        cons += [e_end >= cp.multiply(1 - eps, e_init[rows]),
                 e_end <= cp.multiply(1 + eps, e_init[rows])]
    deg = col([s.degradation_eur_per_kwh for s in specs])
    cost = cp.sum(cp.multiply(deg * dt_h, c + d)) if np.any(deg) else cp.Constant(0.0)
    return DeviceBlock("battery", tuple(s.name for s in specs), tuple(s.bus for s in specs),
                       d - c, None, cons, cost, {"c_kw": c, "d_kw": d, "e_kwh": e},
                       {"e_init_kwh": e_init})


# --------------------------------------------------------------------------------------------
# EV (shapable load)


@dataclass(frozen=True, slots=True)
class EvSpec:
    """An EV as a shapable load, Münsing (8) / B-DER (4)–(5).

    Attributes:
        name: unique name.
        bus: the bus it charges at.
        p_max_kw: charging power limit.
        p_min_kw: minimum charging power while available (usually 0).
        efficiency: charging efficiency η^ev: ``Σ η·p·Δt = e_need``.
    """

    name: str
    bus: object
    p_max_kw: float
    p_min_kw: float = 0.0
    efficiency: float = 1.0

    def __post_init__(self) -> None:
        owner = f"ev {self.name!r}"
        _positive(owner, "p_max_kw", self.p_max_kw)
        _positive(owner, "p_min_kw", self.p_min_kw, allow_zero=True)
        _fraction(owner, "efficiency", self.efficiency)
        if self.p_min_kw > self.p_max_kw:
            raise DerError(f"{owner}: p_min_kw ({self.p_min_kw}) exceeds p_max_kw "
                           f"({self.p_max_kw})")


def build_evs(specs: Sequence[EvSpec], periods: int, dt_h: float) -> DeviceBlock:
    """EV charging within an availability window with a fixed energy need.

    Parameters: ``available`` (0/1 per period, the ω of B-DER (5); outside it the EV draws
    nothing, Münsing (8c)–(8d)) and ``e_need_kwh`` (energy delivered to the battery).
    """
    n = len(specs)
    col = lambda vals: np.array(vals, dtype=float).reshape(n, 1)  # noqa: E731
    p = cp.Variable((n, periods), nonneg=True, name="ev_p_kw")
    avail = cp.Parameter((n, periods), nonneg=True, name="ev_available")
    e_need = cp.Parameter(n, nonneg=True, name="ev_e_need_kwh")
    eff = np.array([s.efficiency for s in specs], dtype=float)
    cons: list[cp.Constraint] = [
        p <= cp.multiply(col([s.p_max_kw for s in specs]), avail),
        p >= cp.multiply(col([s.p_min_kw for s in specs]), avail),
        cp.multiply(eff * dt_h, cp.sum(p, axis=1)) == e_need,
    ]
    return DeviceBlock("ev", tuple(s.name for s in specs), tuple(s.bus for s in specs), -p, None,
                       cons, cp.Constant(0.0), {"p_kw": p}, {"available": avail,
                                                             "e_need_kwh": e_need})


def ev_window(periods: int, start: int, end: int) -> np.ndarray:
    """0/1 availability vector that is 1 for ``start <= t < end`` (wrapping past midnight)."""
    if not (0 <= start < periods and 0 <= end <= periods):
        raise DerError(f"ev window: start {start} and end {end} must lie in [0, {periods}]")
    t = np.arange(periods)
    return ((t >= start) & (t < end) if start < end else (t >= start) | (t < end)).astype(float)


# --------------------------------------------------------------------------------------------
# Deferrable load


@dataclass(frozen=True, slots=True)
class DeferrableSpec:
    """An appliance with a fixed cycle that may start late, Münsing (9), LP relaxation.

    Attributes:
        name: unique name.
        bus: its bus.
        cycle_kw: power drawn in each step of the cycle once started.
        arrival_step: first step at which it may start (the arrival process a(t) jumps there).
        max_delay_steps: ζ: it must have started by ``arrival_step + max_delay_steps``.
    """

    name: str
    bus: object
    cycle_kw: tuple[float, ...]
    arrival_step: int
    max_delay_steps: int

    def __post_init__(self) -> None:
        owner = f"deferrable {self.name!r}"
        if not self.cycle_kw:
            raise DerError(f"{owner}: cycle_kw must not be empty")
        for k, v in enumerate(self.cycle_kw):
            _positive(owner, f"cycle_kw[{k}]", v, allow_zero=True)
        if self.arrival_step < 0:
            raise DerError(f"{owner}: arrival_step must be >= 0, got {self.arrival_step}")
        if self.max_delay_steps < 0:
            raise DerError(f"{owner}: max_delay_steps must be >= 0, got {self.max_delay_steps}")


def build_deferrables(specs: Sequence[DeferrableSpec], periods: int) -> DeviceBlock:
    """Deferrable loads via a departure process ``d`` (fraction started by step t).

    ``0 <= d[t-1] <= d[t] <= a[t]`` and ``a[t-ζ] <= d[t]`` (Münsing (9a)–(9b)); the binary
    (9c) is relaxed to ``[0, 1]``. Power is ``Φ·d``: the start increments convolved with the
    cycle. The cycle must finish inside the horizon.
    """
    n = len(specs)
    for s in specs:
        if s.arrival_step + s.max_delay_steps + len(s.cycle_kw) > periods:
            raise DerError(
                f"deferrable {s.name!r}: arrival_step {s.arrival_step} + max_delay_steps "
                f"{s.max_delay_steps} + cycle length {len(s.cycle_kw)} exceeds the horizon of "
                f"{periods} periods"
            )
    d = cp.Variable((n, periods), name="def_started")
    arrival = np.zeros((n, periods))
    latest = np.zeros((n, periods))
    for k, s in enumerate(specs):
        arrival[k, s.arrival_step:] = 1.0
        latest[k, s.arrival_step + s.max_delay_steps:] = 1.0
    # Φ·d: power at t is Σ_j cycle[j]·(d[t-j] − d[t-j-1]), the start increments convolved.
    inc = cp.hstack([d[:, :1], d[:, 1:] - d[:, :-1]]) if periods > 1 else d
    rows = []
    for k, s in enumerate(specs):
        conv = np.zeros((periods, periods))
        for j, pw in enumerate(s.cycle_kw):
            conv += pw * np.eye(periods, k=-j)
        rows.append(inc[k, :] @ conv.T)
    p = cp.vstack(rows) if n > 1 else cp.reshape(rows[0], (1, periods), order="F")
    cons: list[cp.Constraint] = [d >= 0, d <= arrival, d >= latest]
    if periods > 1:
        cons.append(d[:, 1:] >= d[:, :-1])
    return DeviceBlock("deferrable", tuple(s.name for s in specs), tuple(s.bus for s in specs),
                       -p, None, cons, cp.Constant(0.0), {"started": d, "p_kw": p}, {})


# --------------------------------------------------------------------------------------------
# Shiftable load and HVAC (Yang & Wang)


@dataclass(frozen=True, slots=True)
class ShiftableSpec:
    """A shiftable load, Yang–Wang (4): the preferred energy moved within a window.

    Attributes:
        name: unique name.
        bus: its bus.
        window: (first, last+1) steps in which it may run.
        p_max_kw: power limit.
        discomfort_eur_per_kw2: ω_S, cost of deviating from the preferred schedule.
    """

    name: str
    bus: object
    window: tuple[int, int]
    p_max_kw: float
    discomfort_eur_per_kw2: float = 0.0

    def __post_init__(self) -> None:
        owner = f"shiftable {self.name!r}"
        _positive(owner, "p_max_kw", self.p_max_kw)
        _positive(owner, "discomfort_eur_per_kw2", self.discomfort_eur_per_kw2, allow_zero=True)
        if not (0 <= self.window[0] < self.window[1]):
            raise DerError(f"{owner}: window must be (first, end) with 0 <= first < end, "
                           f"got {self.window!r}")


def build_shiftables(specs: Sequence[ShiftableSpec], periods: int) -> DeviceBlock:
    """Shiftable loads with the preferred schedule as parameter ``preferred_kw``.

    ``Σ_window p = Σ_window preferred``; nothing outside the window; cost
    ``ω_S Σ (p − preferred)²``.
    """
    n = len(specs)
    p = cp.Variable((n, periods), nonneg=True, name="shift_p_kw")
    pref = cp.Parameter((n, periods), nonneg=True, name="shift_preferred_kw")
    mask = np.zeros((n, periods))
    for k, s in enumerate(specs):
        if s.window[1] > periods:
            raise DerError(f"shiftable {s.name!r}: window end {s.window[1]} exceeds the "
                           f"horizon of {periods} periods")
        mask[k, s.window[0]:s.window[1]] = 1.0
    pmax = np.array([[s.p_max_kw] for s in specs]) * mask
    w = np.array([[s.discomfort_eur_per_kw2] for s in specs])
    cons: list[cp.Constraint] = [
        p <= pmax,
        cp.sum(p, axis=1) == cp.sum(cp.multiply(mask, pref), axis=1),
    ]
    cost = cp.sum(cp.multiply(w, cp.square(p - pref))) if np.any(w) else cp.Constant(0.0)
    return DeviceBlock("shiftable", tuple(s.name for s in specs), tuple(s.bus for s in specs),
                       -p, None, cons, cost, {"p_kw": p}, {"preferred_kw": pref})


@dataclass(frozen=True, slots=True)
class HvacSpec:
    """An HVAC unit with first-order thermal dynamics, Yang–Wang (2)–(3).

    ``τ_in[t] = τ_out[t] − (τ_out[t] − τ_in[t-1])·a + γ·p[t-1]`` with ``a = exp(−Δt/(R·C))``.
    (The paper prints ``e^{1/RC}``; the decay factor must be below one.) ``γ`` is negative for
    cooling, positive for heating, in °C per kW per step.

    Attributes:
        name: unique name.
        bus: its bus.
        r_c_h: the building's time constant R·C in hours.
        gamma_c_per_kw: γ.
        p_max_kw: electrical power limit.
        t_min_c: lowest accepted indoor temperature.
        t_max_c: highest accepted indoor temperature.
        t_ref_c: preferred indoor temperature.
        t_init_c: indoor temperature before the first period.
        discomfort_eur_per_c2: ω_AC.
    """

    name: str
    bus: object
    r_c_h: float
    gamma_c_per_kw: float
    p_max_kw: float
    t_min_c: float
    t_max_c: float
    t_ref_c: float
    t_init_c: float
    discomfort_eur_per_c2: float = 0.0

    def __post_init__(self) -> None:
        owner = f"hvac {self.name!r}"
        _positive(owner, "r_c_h", self.r_c_h)
        _positive(owner, "p_max_kw", self.p_max_kw)
        _positive(owner, "discomfort_eur_per_c2", self.discomfort_eur_per_c2, allow_zero=True)
        if not (self.t_min_c <= self.t_ref_c <= self.t_max_c):
            raise DerError(f"{owner}: need t_min_c <= t_ref_c <= t_max_c, got "
                           f"{self.t_min_c}, {self.t_ref_c}, {self.t_max_c}")
        if not math.isfinite(self.gamma_c_per_kw) or self.gamma_c_per_kw == 0:
            raise DerError(f"{owner}: gamma_c_per_kw must be finite and non-zero, got "
                           f"{self.gamma_c_per_kw!r}")


def build_hvacs(specs: Sequence[HvacSpec], periods: int, dt_h: float) -> DeviceBlock:
    """HVAC units; the outdoor temperature is the parameter ``t_out_c`` (shape ``(T,)``)."""
    n = len(specs)
    col = lambda vals: np.array(vals, dtype=float).reshape(n, 1)  # noqa: E731
    p = cp.Variable((n, periods), nonneg=True, name="hvac_p_kw")
    t_in = cp.Variable((n, periods), name="hvac_t_in_c")
    t_out = cp.Parameter(periods, name="hvac_t_out_c")
    a = col([math.exp(-dt_h / s.r_c_h) for s in specs])
    gamma = col([s.gamma_c_per_kw for s in specs])
    ones = np.ones((n, 1))
    t_out_row = ones @ cp.reshape(t_out, (1, periods), order="F")
    t_prev = cp.hstack([col([s.t_init_c for s in specs]), t_in[:, :-1]])
    p_prev = cp.hstack([np.zeros((n, 1)), p[:, :-1]])
    cons: list[cp.Constraint] = [
        t_in == t_out_row - cp.multiply(a, t_out_row - t_prev) + cp.multiply(gamma, p_prev),
        t_in >= col([s.t_min_c for s in specs]),
        t_in <= col([s.t_max_c for s in specs]),
        p <= col([s.p_max_kw for s in specs]),
    ]
    w = col([s.discomfort_eur_per_c2 for s in specs])
    ref = col([s.t_ref_c for s in specs])
    cost = cp.sum(cp.multiply(w, cp.square(t_in - ref))) if np.any(w) else cp.Constant(0.0)
    return DeviceBlock("hvac", tuple(s.name for s in specs), tuple(s.bus for s in specs), -p,
                       None, cons, cost, {"p_kw": p, "t_in_c": t_in}, {"t_out_c": t_out})


# --------------------------------------------------------------------------------------------
# Dispatchable generator


@dataclass(frozen=True, slots=True)
class GeneratorSpec:
    """A dispatchable generator with cost ``α·p² + β·p`` per hour, Münsing (6).

    Attributes:
        name: unique name.
        bus: its bus.
        p_min_kw: lower output limit.
        p_max_kw: upper output limit.
        alpha_eur_per_kw2h: α.
        beta_eur_per_kwh: β.
    """

    name: str
    bus: object
    p_min_kw: float
    p_max_kw: float
    alpha_eur_per_kw2h: float = 0.0
    beta_eur_per_kwh: float = 0.0

    def __post_init__(self) -> None:
        owner = f"generator {self.name!r}"
        _positive(owner, "p_max_kw", self.p_max_kw)
        _positive(owner, "p_min_kw", self.p_min_kw, allow_zero=True)
        _positive(owner, "alpha_eur_per_kw2h", self.alpha_eur_per_kw2h, allow_zero=True)
        if self.p_min_kw > self.p_max_kw:
            raise DerError(f"{owner}: p_min_kw exceeds p_max_kw")


def build_generators(specs: Sequence[GeneratorSpec], periods: int, dt_h: float) -> DeviceBlock:
    """Dispatchable generators with quadratic cost."""
    n = len(specs)
    col = lambda vals: np.array(vals, dtype=float).reshape(n, 1)  # noqa: E731
    p = cp.Variable((n, periods), name="gen_p_kw")
    alpha = col([s.alpha_eur_per_kw2h for s in specs])
    beta = col([s.beta_eur_per_kwh for s in specs])
    cost = cp.sum(cp.multiply(beta * dt_h, p))
    if np.any(alpha):
        cost = cost + cp.sum(cp.multiply(alpha * dt_h, cp.square(p)))
    cons: list[cp.Constraint] = [p >= col([s.p_min_kw for s in specs]),
                                 p <= col([s.p_max_kw for s in specs])]
    return DeviceBlock("generator", tuple(s.name for s in specs), tuple(s.bus for s in specs),
                       p, None, cons, cost, {"p_kw": p}, {})
