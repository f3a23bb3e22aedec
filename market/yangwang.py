"""Yang & Wang's prosumer coordination: the DCM problem (1)–(13) and its ADMM (14)–(17).

Each prosumer ``i`` buys ``p^G`` from the grid (energy charge ``π_E`` per kWh plus a demand charge
``π_D`` on its peak purchase, capacity ``P^G`` (1)), runs an HVAC unit with first-order thermal
dynamics and a quadratic discomfort cost ((2)–(3), :func:`grid.der.build_hvacs`), shiftable loads
with a discomfort cost on deviations from the preferred schedule ((4), :func:`build_shiftables`),
uses its renewable generation up to the available power (5), runs a battery with a degradation
cost ((6)–(9), :func:`build_batteries`), trades ``p^ET_ij`` with every other prosumer under the
clearing constraint ``p^ET_ij + p^ET_ji = 0`` (10), feeds unused renewable energy in at the FIT
(11) and is paid ``π^DR`` for load reduction ``p^DR ≤ p^G`` (12); its balance is (13)::

    p^AC + p^S + p^CH + Σ_j p^ET_ij + p^base = p^RE + p^G − p^DR + p^DIS

(``p^base``, an inflexible base load, is an addition: the paper's balance has none; set it to
zero to get the printed model). Trade payments cancel in the sum over prosumers, so DCM
minimises ``Σ_i C^H_i − R^FIT_i − R^DR_i``.

ADMM (14)–(17): auxiliary variables ``p̂_ij = p_ij`` (14) carry the clearing constraint
(15). Each prosumer solves **PLT_i** — its own cost plus ``Σ ρ/2·(p̂_ij − p_ij)² − λ_ij·p_ij``
— and the contract task **SCT** sets ``p̂_ij = [ρ(p_ij − p_ji) − (λ_ij − λ_ji)] / (2ρ)`` (16) and
``λ_ij ← λ_ij + ρ(p̂_ij − p_ij)`` (17). The PLTs are built once as DPP problems (``p̂`` and
``λ`` enter only through one linear-coefficient parameter) and solved as one batched problem.
The centralised reference solves DCM with (10) directly.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np

from grid.der import (
    BatterySpec,
    HvacSpec,
    ShiftableSpec,
    build_batteries,
    build_hvacs,
    build_shiftables,
)
from market.errors import MarketError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Prosumer:
    """One prosumer's devices and limits.

    Attributes:
        name: unique name.
        grid_cap_kw: ``P^G``.
        hvac: its HVAC unit.
        shiftables: its shiftable loads (one per window).
        battery: its battery (degradation cost ``β^B`` in ``degradation_eur_per_kwh``).
    """

    name: str
    grid_cap_kw: float
    hvac: HvacSpec | None = None
    shiftables: tuple[ShiftableSpec, ...] = ()
    battery: BatterySpec | None = None


@dataclass(frozen=True, slots=True, eq=False)
class YwInputs:
    """One horizon's data.

    Attributes:
        renewable_kw: ``P^RE``, shape ``(T, N)``.
        base_load_kw: inflexible load, shape ``(T, N)`` (zeros for the printed model).
        shiftable_preferred_kw: ``P^S`` per shiftable load, a list of ``(T, n_i)`` arrays.
        t_out_c: outdoor temperature ``(T,)``.
        price_energy_eur_per_kwh: ``π_E`` per period ``(T,)``.
        price_demand_eur_per_kw: ``π_D``.
        price_fit_eur_per_kwh: ``π^FIT`` ``(T,)``.
        price_dr_eur_per_kwh: ``π^DR`` ``(T,)``.
    """

    renewable_kw: np.ndarray
    base_load_kw: np.ndarray
    shiftable_preferred_kw: Sequence[np.ndarray]
    t_out_c: np.ndarray
    price_energy_eur_per_kwh: np.ndarray
    price_demand_eur_per_kw: float
    price_fit_eur_per_kwh: np.ndarray
    price_dr_eur_per_kwh: np.ndarray


@dataclass(frozen=True, slots=True, eq=False)
class YwResult:
    """A solved DCM.

    Attributes:
        method: ``"central"`` or ``"admm"``.
        objective_eur: total cost of all prosumers.
        schedules: per quantity (``grid_kw``, ``renewable_kw``, ``fit_kw``, ``dr_kw``,
            ``hvac_kw``, ``t_in_c``, ``shiftable_kw``, ``charge_kw``, ``discharge_kw``,
            ``energy_kwh``) a ``(T, N)`` array.
        trades_kw: ``(T, N, N)`` ``p^ET_ij`` (``i`` sells to ``j`` when positive).
        trade_price_eur_per_kwh: ``(T, N, N)`` the multipliers λ_ij (ADMM) or the duals of
            (10) (central), per kWh.
        iterations: ADMM iterations (0 for central).
        converged: whether the ADMM stopping rule was met.
        history: per iteration ``objective_eur``, ``gap``, ``primal`` (‖p̂ − p‖₂),
            ``dual`` (ρ‖p̂ − p̂_prev‖₂) arrays (ADMM only).
        solve_time_s: wall time.
    """

    method: str
    objective_eur: float
    schedules: dict[str, np.ndarray]
    trades_kw: np.ndarray
    trade_price_eur_per_kwh: np.ndarray
    iterations: int = 0
    converged: bool = True
    history: dict[str, np.ndarray] = field(default_factory=dict)
    solve_time_s: float = 0.0


class YangWang:
    """DCM for a group of prosumers over a horizon; build once, solve centrally or by ADMM.

    Args:
        prosumers: the prosumers.
        periods: T.
        step_min: period length.

    Raises:
        MarketError: fewer than two prosumers or duplicate names.
    """

    def __init__(self, prosumers: Sequence[Prosumer], periods: int, step_min: int = 60) -> None:
        self.prosumers = tuple(prosumers)
        if len(self.prosumers) < 2:
            raise MarketError("Yang-Wang coordination needs at least two prosumers")
        if len({p.name for p in self.prosumers}) != len(self.prosumers):
            raise MarketError("prosumer names must be unique")
        self.periods, self.step_min, self.dt_h = periods, step_min, step_min / 60.0
        T, N = periods, len(self.prosumers)
        self.p_energy = cp.Parameter(T, nonneg=True, name="pi_E")
        self.p_demand = cp.Parameter(nonneg=True, name="pi_D")
        self.p_fit = cp.Parameter(T, nonneg=True, name="pi_FIT")
        self.p_dr = cp.Parameter(T, nonneg=True, name="pi_DR")
        self.rho = cp.Parameter(nonneg=True, name="rho", value=1.0)
        self.local: list[dict[str, Any]] = []
        for i, pr in enumerate(self.prosumers):
            self.local.append(self._prosumer(i, pr, T, N))
        cost = sum((d["cost"] for d in self.local), cp.Constant(0.0))
        cons = [c for d in self.local for c in d["cons"]]
        # (10): p_ij + p_ji = 0 for i < j
        self._clearing = []
        for i in range(N):
            for j in range(i + 1, N):
                c = self._et(i, j) + self._et(j, i) == 0
                self._clearing.append(((i, j), c))
        self.central = cp.Problem(cp.Minimize(cost), cons + [c for _, c in self._clearing])
        # PLT_i, batched: Σ_i [cost_i + ρ/2‖p_i‖² + ⟨lin_i, p_i⟩]
        plt = []
        for d in self.local:
            et = d["et"]
            plt.append(d["cost"] + self.rho / 2 * cp.sum_squares(et)
                       + cp.sum(cp.multiply(d["lin"], et)))
        self.plt = cp.Problem(cp.Minimize(sum(plt, cp.Constant(0.0))), cons)

    def _et(self, i: int, j: int) -> cp.Expression:
        d = self.local[i]
        return d["et"][d["others"].index(j)]

    def _prosumer(self, i: int, pr: Prosumer, T: int, N: int  # noqa: N803 - paper notation
                  ) -> dict[str, Any]:
        dt = self.dt_h
        g = cp.Variable(T, nonneg=True, name=f"pG_{i}")
        re = cp.Variable(T, nonneg=True, name=f"pRE_{i}")
        fit = cp.Variable(T, nonneg=True, name=f"pFIT_{i}")
        dr = cp.Variable(T, nonneg=True, name=f"pDR_{i}")
        others = [j for j in range(N) if j != i]
        et = cp.Variable((N - 1, T), name=f"pET_{i}")
        re_avail = cp.Parameter(T, nonneg=True, name=f"PRE_{i}")
        base = cp.Parameter(T, nonneg=True, name=f"base_{i}")
        lin = cp.Parameter((N - 1, T), name=f"lin_{i}")
        cons: list[cp.Constraint] = [g <= pr.grid_cap_kw, re <= re_avail,
                                     fit <= re_avail - re, dr <= g]
        demand = base + cp.sum(et, axis=0)
        supply = re + g - dr
        cost = (dt * (self.p_energy @ g) + self.p_demand * cp.max(g)
                - dt * (self.p_fit @ fit) - dt * (self.p_dr @ dr))
        blocks = {}
        if pr.hvac is not None:
            b = build_hvacs([pr.hvac], T, dt)
            blocks["hvac"] = b
            demand = demand - b.p_kw[0]
            cons += b.constraints
            cost = cost + b.cost_eur
        if pr.shiftables:
            b = build_shiftables(list(pr.shiftables), T)
            blocks["shiftable"] = b
            demand = demand - cp.sum(b.p_kw, axis=0)
            cons += b.constraints
            cost = cost + b.cost_eur
        if pr.battery is not None:
            b = build_batteries([pr.battery], T, dt)
            blocks["battery"] = b
            supply = supply + b.p_kw[0]  # discharge − charge
            cons += b.constraints
            cost = cost + b.cost_eur
        cons.append(demand == supply)
        return {"g": g, "re": re, "fit": fit, "dr": dr, "et": et, "others": others,
                "re_avail": re_avail, "base": base, "lin": lin, "blocks": blocks,
                "cons": cons, "cost": cost}

    # -----------------------------------------------------------------------------------------
    def _set(self, inputs: YwInputs) -> None:
        T, N = self.periods, len(self.prosumers)

        def arr(name: str, value: object, shape: tuple[int, ...]) -> np.ndarray:
            a = np.asarray(value, dtype=float)
            if a.shape != shape or not np.all(np.isfinite(a)):
                raise MarketError(f"inputs.{name} must be finite with shape {shape}, got "
                                  f"{a.shape}")
            return a

        self.p_energy.value = arr("price_energy_eur_per_kwh", inputs.price_energy_eur_per_kwh,
                                  (T,))
        self.p_demand.value = float(inputs.price_demand_eur_per_kw)
        self.p_fit.value = arr("price_fit_eur_per_kwh", inputs.price_fit_eur_per_kwh, (T,))
        self.p_dr.value = arr("price_dr_eur_per_kwh", inputs.price_dr_eur_per_kwh, (T,))
        re = np.clip(arr("renewable_kw", inputs.renewable_kw, (T, N)), 0, None)
        base = np.clip(arr("base_load_kw", inputs.base_load_kw, (T, N)), 0, None)
        t_out = arr("t_out_c", inputs.t_out_c, (T,))
        if len(inputs.shiftable_preferred_kw) != N:
            raise MarketError("inputs.shiftable_preferred_kw needs one array per prosumer")
        for i, (pr, d) in enumerate(zip(self.prosumers, self.local, strict=True)):
            d["re_avail"].value = re[:, i]
            d["base"].value = base[:, i]
            blocks = d["blocks"]
            if "hvac" in blocks:
                blocks["hvac"].parameters["t_out_c"].value = t_out
            if "shiftable" in blocks:
                pref = arr(f"shiftable_preferred_kw[{i}]", inputs.shiftable_preferred_kw[i],
                           (T, len(pr.shiftables)))
                blocks["shiftable"].parameters["preferred_kw"].value = np.clip(pref.T, 0, None)
            if "battery" in blocks:
                assert pr.battery is not None
                blocks["battery"].parameters["e_init_kwh"].value = np.array(
                    [0.5 * (pr.battery.e_min_kwh + pr.battery.e_max_kwh)])

    def _solve(self, problem: cp.Problem, what: str) -> None:
        try:
            problem.solve(solver="CLARABEL")
        except cp.error.SolverError as exc:
            raise MarketError(f"Yang-Wang {what}: solver failed: {exc}") from exc
        if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            raise MarketError(f"Yang-Wang {what}: solver status {problem.status}")

    def objective_eur(self) -> float:
        """Σ of the prosumers' costs at the current variable values."""
        return float(sum(float(d["cost"].value) for d in self.local))

    def solve_central(self, inputs: YwInputs) -> YwResult:
        """Solve DCM as one problem (the reference)."""
        t0 = time.perf_counter()
        self._set(inputs)
        self._solve(self.central, "central")
        T, N = self.periods, len(self.prosumers)
        price = np.full((T, N, N), np.nan)
        for (i, j), c in self._clearing:
            price[:, i, j] = price[:, j, i] = np.asarray(c.dual_value) / self.dt_h
        return self._result("central", price, 0, True, {}, time.perf_counter() - t0)

    def solve_admm(self, inputs: YwInputs, rho: float = 1.0, max_iter: int = 500,
                   tol_kw: float = 1e-3, reference_objective_eur: float | None = None,
                   target_gap: float | None = None) -> YwResult:
        """Solve DCM by ADMM with the PLT/SCT updates (16)–(17).

        Args:
            inputs: data.
            rho: ρ (per kW², in EUR per period).
            max_iter: iteration limit.
            tol_kw: stop when ``max|p̂ − p|`` and ``max|p̂ − p̂_prev|`` are below this (kW).
            reference_objective_eur: the central optimum, for the gap history.
            target_gap: with a reference, stop once the gap is at most this (and the primal
                tolerance holds).
        """
        t0 = time.perf_counter()
        self._set(inputs)
        T, N = self.periods, len(self.prosumers)
        self.rho.value = rho
        p = np.zeros((N, N, T))          # p[i, j] = p^ET_ij (diagonal unused)
        phat = np.zeros((N, N, T))
        lam = np.zeros((N, N, T))
        off = ~np.eye(N, dtype=bool)
        hist: dict[str, list[float]] = {"objective_eur": [], "gap": [], "primal": [],
                                        "dual": []}
        converged = False
        k = 0
        for _ in range(max_iter):
            k += 1
            for i, d in enumerate(self.local):
                o = d["others"]
                # PLT_i: ρ/2 (p̂ − p)² − λ p = ρ/2 p² − (ρ p̂ + λ) p + const
                d["lin"].value = -(rho * phat[i, o] + lam[i, o])
            self._solve(self.plt, "PLT (batched)")
            for i, d in enumerate(self.local):
                p[i, d["others"]] = np.asarray(d["et"].value)
            prev = phat.copy()
            # SCT (16)–(17)
            pt, lt = np.transpose(p, (1, 0, 2)), np.transpose(lam, (1, 0, 2))
            phat = np.where(off[:, :, None], (rho * (p - pt) - (lam - lt)) / (2 * rho), 0.0)
            lam = np.where(off[:, :, None], lam + rho * (phat - p), 0.0)
            obj = self.objective_eur()
            gap = (abs(obj - reference_objective_eur) / abs(reference_objective_eur)
                   if reference_objective_eur else math.nan)
            r_inf = float(np.max(np.abs(phat - p)))
            s_inf = float(np.max(np.abs(phat - prev)))
            hist["objective_eur"].append(obj)
            hist["gap"].append(gap)
            hist["primal"].append(float(np.linalg.norm(phat - p)))
            hist["dual"].append(float(rho * np.linalg.norm(phat - prev)))
            if target_gap is not None and reference_objective_eur is not None:
                done = gap <= target_gap and r_inf <= tol_kw
            else:
                done = r_inf <= tol_kw and s_inf <= tol_kw
            if done:
                converged = True
                break
        price = np.transpose(lam, (2, 0, 1)) / self.dt_h
        price[:, ~off] = np.nan
        log.info("Yang-Wang ADMM: %s after %d iterations, objective %.6g EUR",
                 "converged" if converged else "stopped", k, hist["objective_eur"][-1])
        return self._result("admm", price, k, converged,
                            {key: np.asarray(v) for key, v in hist.items()},
                            time.perf_counter() - t0)

    def _result(self, method: str, price: np.ndarray, iterations: int, converged: bool,
                history: dict[str, np.ndarray], wall_s: float) -> YwResult:
        T, N = self.periods, len(self.prosumers)

        def col(name: str) -> np.ndarray:
            return np.column_stack([np.asarray(d[name].value) for d in self.local])

        sched = {"grid_kw": col("g"), "renewable_kw": col("re"), "fit_kw": col("fit"),
                 "dr_kw": col("dr")}
        zeros = np.zeros((T, N))
        for key in ("hvac_kw", "t_in_c", "shiftable_kw", "charge_kw", "discharge_kw",
                    "energy_kwh"):
            sched[key] = zeros.copy()
        for i, d in enumerate(self.local):
            b = d["blocks"]
            if "hvac" in b:
                sched["hvac_kw"][:, i] = -np.asarray(b["hvac"].p_kw.value)[0]
                sched["t_in_c"][:, i] = np.asarray(b["hvac"].variables["t_in_c"].value)[0]
            if "shiftable" in b:
                sched["shiftable_kw"][:, i] = -np.asarray(b["shiftable"].p_kw.value).sum(0)
            if "battery" in b:
                v = b["battery"].variables
                sched["charge_kw"][:, i] = np.asarray(v["c_kw"].value)[0]
                sched["discharge_kw"][:, i] = np.asarray(v["d_kw"].value)[0]
                sched["energy_kwh"][:, i] = np.asarray(v["e_kwh"].value)[0]
        trades = np.zeros((T, N, N))
        for i, d in enumerate(self.local):
            trades[:, i, d["others"]] = np.asarray(d["et"].value).T
        return YwResult(method, self.objective_eur(), sched, trades, price, iterations,
                        converged, history, wall_s)


def synthetic_week(n_prosumers: int = 10, days: int = 7, rng: np.random.Generator | None = None,
                   ) -> tuple[list[Prosumer], YwInputs]:
    """A reproducible stand-in for the paper's Pecan Street data (not redistributable).

    Summer week, hourly: outdoor temperature 24–36 °C with a daily cycle and day-to-day
    variation; rooftop PV of 2–8 kWp on every prosumer (clear-sky bell × random cloudiness);
    base load 0.3–0.8 kW with morning and evening bumps; one shiftable load per day (a 1.5 kWh
    appliance preferred at 18:00–20:00, movable within 08:00–23:00); a cooling HVAC unit
    (R·C = 3 h, γ = −1.5 °C/kW, 3 kW, 21–27 °C, preferred 24 °C); batteries of 6–13.5 kWh on
    every other prosumer. Time-of-use energy price 0.12/0.28 EUR/kWh (peak 14:00–20:00), demand
    charge 1.00 EUR/kW for the week, FIT 0.05 EUR/kWh, DR pays 0.35 EUR/kWh in 17:00–19:00 on
    weekdays.

    Args:
        n_prosumers: N.
        days: horizon in days.
        rng: randomness (default: seed 7).
    """
    rng = rng if rng is not None else np.random.default_rng(7)
    T = 24 * days
    hour = np.arange(T) % 24
    day = np.arange(T) // 24
    daily = 30 + rng.uniform(-2, 2, days)
    t_out = daily[day] + 6 * np.sin(2 * np.pi * (hour - 9) / 24)
    bell = np.clip(np.sin(np.pi * (hour - 6) / 13), 0, None)
    prosumers, pv, base, prefs = [], [], [], []
    for i in range(N := n_prosumers):
        kwp = rng.uniform(2, 8)
        cloud = rng.uniform(0.6, 1.0, days)[day]
        pv.append(kwp * 0.8 * bell * cloud)
        level = rng.uniform(0.3, 0.8)
        base.append(level * (1 + 0.6 * np.exp(-((hour - 7.5) ** 2) / 2)
                             + 0.9 * np.exp(-((hour - 19.5) ** 2) / 3))
                    * rng.uniform(0.9, 1.1, T))
        shifts, pref = [], np.zeros((T, days))
        for dd in range(days):
            shifts.append(ShiftableSpec(f"s{i}-{dd}", i, (24 * dd + 8, 24 * dd + 23), 2.0,
                                        discomfort_eur_per_kw2=0.02))
            pref[24 * dd + 18:24 * dd + 20, dd] = 0.75
        prefs.append(pref)
        hvac = HvacSpec(f"ac{i}", i, r_c_h=3.0, gamma_c_per_kw=-1.5, p_max_kw=3.0,
                        t_min_c=21.0, t_max_c=27.0, t_ref_c=24.0, t_init_c=25.0,
                        discomfort_eur_per_c2=0.01 * rng.uniform(0.5, 1.5))
        bat = (BatterySpec(f"b{i}", i, e_max_kwh=float(rng.uniform(6, 13.5)),
                           p_charge_max_kw=3.3, p_discharge_max_kw=3.3, eta_charge=0.95,
                           eta_discharge=0.95, degradation_eur_per_kwh=0.02)
               if i % 2 == 0 else None)
        if bat is not None:
            bat = BatterySpec(bat.name, bat.bus, bat.e_max_kwh, bat.p_charge_max_kw,
                              bat.p_discharge_max_kw, bat.eta_charge, bat.eta_discharge,
                              e_min_kwh=0.1 * bat.e_max_kwh, end_tolerance_frac=0.0,
                              degradation_eur_per_kwh=0.02)
        prosumers.append(Prosumer(f"prosumer {i + 1}", 10.0, hvac, tuple(shifts), bat))
    del N
    peak = (hour >= 14) & (hour < 20)
    weekday = day % 7 < 5
    inputs = YwInputs(
        renewable_kw=np.column_stack(pv), base_load_kw=np.column_stack(base),
        shiftable_preferred_kw=prefs, t_out_c=t_out,
        price_energy_eur_per_kwh=np.where(peak, 0.28, 0.12), price_demand_eur_per_kw=1.0,
        price_fit_eur_per_kwh=np.full(T, 0.05),
        price_dr_eur_per_kwh=np.where((hour >= 17) & (hour < 19) & weekday, 0.35, 0.0))
    return prosumers, inputs


__all__ = ["Prosumer", "YangWang", "YwInputs", "YwResult", "synthetic_week"]
