"""Centralised multi-period DistFlow OPF with the SOC relaxation, and DLMPs from its duals.

Branch-flow model of Münsing et al. (2017) §IV-A (eqs. (1a)–(1c), (2), (3)) on a radial feeder,
written with flows measured at the **sending (parent) end** of each branch (Farivar & Low):
for the branch from π(i) to i with impedance ``r + jx``, off-nominal ratio τ, sending-end flow
``P_i + jQ_i`` and squared current ``l_i``, and ``w_i = v_π(i)/τ²``::

    P_i − r_i·l_i − Σ_{k∈δ(i)} P_k + p_i = 0          (real balance at i; dual → DLMP_i)
    Q_i − x_i·l_i − Σ_{k∈δ(i)} Q_k + q_i = 0
    v_i = w_i − 2(r_i·P_i + x_i·Q_i) + (r_i² + x_i²)·l_i
    P_i² + Q_i² ≤ l_i·w_i                              (SOC relaxation of l_i = |S_i|²/w_i)
    v_min² ≤ v_i ≤ v_max²,   l_i ≤ i_max²

``p_i`` is the net injection at bus i (generation positive). The substation imports
``p_0 = Σ_{k∈δ(0)} P_k`` at a time-varying import price and exports at a feed-in price
(``max(c_imp·p_0, c_exp·p_0)`` per period, convex because feed-in never pays more than import).
Münsing's paper writes the flows as leaving node i towards the root; the equations above are the
same model with the flow's sign and reference end made explicit, so that the losses sit on the
right branch.

The problem is built once with cvxpy parameters for everything that changes between days
(loads, PV availability, prices, initial SoC, EV needs), so re-solving with new data skips
canonicalisation (DPP). All network quantities are in per unit of ``feeder.s_base_mva`` and each
bus's nominal voltage; results are reported in kW, kvar, p.u. and EUR/kWh.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cvxpy as cp
import numpy as np

from grid.der import (
    BatterySpec,
    DeferrableSpec,
    DeviceBlock,
    EvSpec,
    GeneratorSpec,
    HvacSpec,
    PvSpec,
    ShiftableSpec,
    build_batteries,
    build_deferrables,
    build_evs,
    build_generators,
    build_hvacs,
    build_pv,
    build_shiftables,
)
from grid.errors import InfeasibleError, OpfError, ProfileError, UnboundedError
from grid.feeders import Feeder, incidence

log = logging.getLogger(__name__)

Objective = Literal["import_cost", "import_cost+losses", "losses"]


@dataclass(frozen=True, slots=True)
class Devices:
    """The controllable devices on a feeder (inflexible loads come with the inputs)."""

    pv: tuple[PvSpec, ...] = ()
    batteries: tuple[BatterySpec, ...] = ()
    evs: tuple[EvSpec, ...] = ()
    deferrables: tuple[DeferrableSpec, ...] = ()
    shiftables: tuple[ShiftableSpec, ...] = ()
    hvacs: tuple[HvacSpec, ...] = ()
    generators: tuple[GeneratorSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class OpfOptions:
    """Model options.

    Attributes:
        objective: ``"import_cost"`` (import cost minus export revenue, plus device costs such
            as quadratic generator costs), ``"import_cost+losses"`` (adds losses valued at
            ``loss_price_eur_per_kwh``) or ``"losses"`` (losses only).
        loss_price_eur_per_kwh: price of losses in the ``+losses`` objectives.
        current_limits: enforce branch current limits (``l ≤ i_max²``).
        voltage_limits: enforce bus voltage limits.
        solver: a cvxpy solver name that handles SOCPs (``"CLARABEL"`` by default).
        s_base_kva: power base of the per-unit system inside the model; ``None`` picks one from
            the feeder's nominal load (keeps per-unit flows near 1, which the solver's accuracy
            needs on LV feeders whose data come on a 1 MVA base). Results are in kW either way.
        canon_backend: cvxpy's canonicalisation backend. ``"COO"`` keeps the DPP parameter
            tensor sparse; the default C++ backend allocates an index array as long as
            (constraints × variables), 10 GiB for a 96-step day on a 129-bus feeder.
        dpp_max_entries: largest (constraint rows × variables) for which the model is compiled
            once as a DPP problem; larger models (a 96-step day on a 129-bus feeder is
            1.4e9) compile at every solve with the parameters' values as constants, because
            cvxpy's DPP tensor needs memory in proportion to that product.
        solver_options: keyword options for the solver. Clarabel's default relative gap of
            1e-8 stalls at 2-3e-8 on some SimBench days ("almost solved"); 1e-7 is far below
            anything the results are used for.
    """

    objective: Objective = "import_cost"
    loss_price_eur_per_kwh: float = 0.1
    current_limits: bool = True
    voltage_limits: bool = True
    solver: str = "CLARABEL"
    s_base_kva: float | None = None
    canon_backend: str = "COO"
    dpp_max_entries: float = 1.0e8
    solver_options: tuple[tuple[str, object], ...] = (
        ("tol_gap_abs", 1e-7), ("tol_gap_rel", 1e-7), ("tol_feas", 1e-8))


@dataclass(frozen=True, slots=True)
class OpfInputs:
    """Data for one solve.

    Attributes:
        load_p_kw: inflexible real load of each of ``feeder.loads``, shape ``(T, n_loads)``.
        load_q_kvar: inflexible reactive load, shape ``(T, n_loads)``.
        price_import_eur_per_kwh: shape ``(T,)``.
        price_export_eur_per_kwh: shape ``(T,)``; must not exceed the import price.
        pv_p_avail_kw: available PV power, shape ``(T, n_pv)``.
        battery_e_init_kwh: initial energy per battery; default half of capacity.
        ev_available: 0/1 per EV and period, shape ``(T, n_ev)``.
        ev_e_need_kwh: energy per EV.
        shiftable_preferred_kw: preferred schedule, shape ``(T, n_shiftable)``.
        t_out_c: outdoor temperature, shape ``(T,)`` (needed with HVAC units).
    """

    load_p_kw: np.ndarray
    load_q_kvar: np.ndarray
    price_import_eur_per_kwh: np.ndarray
    price_export_eur_per_kwh: np.ndarray
    pv_p_avail_kw: np.ndarray | None = None
    battery_e_init_kwh: np.ndarray | None = None
    ev_available: np.ndarray | None = None
    ev_e_need_kwh: np.ndarray | None = None
    shiftable_preferred_kw: np.ndarray | None = None
    t_out_c: np.ndarray | None = None


@dataclass(frozen=True, slots=True, eq=False)
class OpfResult:
    """A solved OPF.

    Arrays are indexed ``[period, bus]`` with buses in ``buses`` order (root first) or
    ``[period, branch]`` with branches in the order of ``buses[1:]`` (a branch by its child).

    Attributes:
        feeder: feeder name.
        status: cvxpy status (``"optimal"`` or ``"optimal_inaccurate"``).
        objective_eur: optimal objective value.
        periods: number of periods.
        step_min: period length in minutes.
        buses: bus ids, root first.
        v_pu: voltage magnitude, ``(T, n_buses)``.
        dlmp_eur_per_kwh: marginal cost of real power at each bus, ``(T, n_buses)``.
        p_inj_kw: net real injection per bus, ``(T, n_buses)``; the root's is the import.
        q_inj_kvar: net reactive injection per bus.
        p_flow_kw: sending-end real flow per branch, ``(T, n_buses-1)``.
        q_flow_kvar: sending-end reactive flow per branch.
        i_sq_pu: squared branch current ``l`` in p.u.
        loss_kw: total losses per period.
        import_kw: substation import per period (negative: export).
        schedules: per device kind, a dict of arrays ``(T, n_devices)`` (e.g.
            ``schedules["battery"]["e_kwh"]``).
        relaxation_gap: max over branches and periods of ``|P² + Q² − l·w|`` in p.u.
        build_time_s: time to build and compile the problem (0 when re-used).
        solve_time_s: wall time of this solve, parameters to results.
        solver_time_s: the solver's own time.
    """

    feeder: str
    status: str
    objective_eur: float
    periods: int
    step_min: int
    buses: tuple[object, ...]
    v_pu: np.ndarray
    dlmp_eur_per_kwh: np.ndarray
    p_inj_kw: np.ndarray
    q_inj_kvar: np.ndarray
    p_flow_kw: np.ndarray
    q_flow_kvar: np.ndarray
    i_sq_pu: np.ndarray
    loss_kw: np.ndarray
    import_kw: np.ndarray
    schedules: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    relaxation_gap: float = math.nan
    build_time_s: float = 0.0
    solve_time_s: float = 0.0
    solver_time_s: float = 0.0


class OpfModel:
    """A DistFlow OPF built once for a feeder, horizon and device set; solved many times.

    Args:
        feeder: the radial feeder.
        periods: number of periods T.
        step_min: period length in minutes.
        devices: controllable devices.
        options: model options.

    Raises:
        ProfileError: a bad horizon.
        DerError: a bad device.
    """

    def __init__(self, feeder: Feeder, periods: int, step_min: int,
                 devices: Devices | None = None, options: OpfOptions | None = None) -> None:
        t0 = time.perf_counter()
        if periods < 1:
            raise ProfileError(f"periods must be >= 1, got {periods}")
        self.feeder = feeder
        self.periods = periods
        self.step_min = step_min
        self.dt_h = step_min / 60.0
        self.devices = devices or Devices()
        self.options = options or OpfOptions()
        self.s_base_kw = self.options.s_base_kva or _auto_base_kw(feeder)
        self._build()
        n_vars = sum(v.size for v in self.problem.variables())
        n_rows = sum(c.size for c in self.problem.constraints)
        # cvxpy's DPP compilation keeps a parameter tensor with one row per entry of the dense
        # constraint matrix (rows × variables); beyond the threshold it costs gigabytes, and
        # compiling per solve (parameters as constants) is both smaller and barely slower.
        self.uses_dpp = n_vars * n_rows <= self.options.dpp_max_entries
        if self.uses_dpp:
            self.problem.get_problem_data(self.options.solver,
                                          canon_backend=self.options.canon_backend)
        self.build_time_s = time.perf_counter() - t0
        self._fresh = True
        log.info("built OPF for %s: %d buses x %d periods in %.3f s (%s)", feeder.name,
                 feeder.n_buses, periods, self.build_time_s,
                 "DPP" if self.uses_dpp else "compiled per solve")

    # ---------------------------------------------------------------------------------------
    def _build(self) -> None:
        f, T = self.feeder, self.periods
        buses = f.buses
        n = len(buses) - 1
        pos = {b: k for k, b in enumerate(buses)}
        branches = f.branches()
        parent_idx = np.array([pos[br.parent] for br in branches])
        m = np.zeros((n, n))
        for j, p in enumerate(parent_idx):
            if p > 0:
                m[j, p - 1] = 1.0
        m0 = (parent_idx == 0).astype(float)
        self._parent_idx = parent_idx
        rescale = self.s_base_kw / (f.s_base_mva * 1000.0)  # branch data come on the feeder base
        r = np.array([br.r_pu for br in branches]) * rescale
        x = np.array([br.x_pu for br in branches]) * rescale
        tau2 = np.array([br.tau for br in branches]) ** 2
        tile = lambda a: np.tile(np.asarray(a, dtype=float).reshape(-1, 1), (1, T))  # noqa: E731
        self._r, self._x, self._tau2 = r, x, tau2

        P = cp.Variable((n, T), name="P")
        Q = cp.Variable((n, T), name="Q")
        ell = cp.Variable((n, T), nonneg=True, name="l")
        v = cp.Variable((n, T), name="v")
        p0 = cp.Variable(T, name="p0")
        q0 = cp.Variable(T, name="q0")
        self.v0 = cp.Parameter(nonneg=True, name="v0", value=f.v_root_pu**2)
        self.load_p = cp.Parameter((n, T), name="load_p_pu")
        self.load_q = cp.Parameter((n, T), name="load_q_pu")
        self.root_load_p = cp.Parameter(T, name="root_load_p_pu")
        self.root_load_q = cp.Parameter(T, name="root_load_q_pu")
        self.price_imp = cp.Parameter(T, name="price_import")
        self.price_exp = cp.Parameter(T, name="price_export")
        self._load_map = incidence(f, [a.bus for a in f.loads])
        self._root_loads = np.array([a.bus == f.root for a in f.loads], dtype=float)

        # devices
        self.blocks, _ = device_blocks(self.devices, None, T, self.dt_h)
        blocks = list(self.blocks.values())
        for b in blocks:
            if any(bus == f.root for bus in b.buses):
                raise OpfError(f"{b.kind} devices {list(b.names)} sit at the substation bus "
                               f"{f.root!r}; attach them to a feeder bus", "invalid")
            if any(bus not in pos for bus in b.buses):
                missing = [bus for bus in b.buses if bus not in pos]
                raise OpfError(f"{b.kind} devices refer to buses {missing} that are not on "
                               f"feeder {f.name!r}", "invalid")

        inj_p = -self.load_p
        inj_q = -self.load_q
        for b in blocks:
            a = incidence(f, list(b.buses)) / self.s_base_kw
            inj_p = inj_p + a @ b.p_kw
            if b.q_kvar is not None:
                inj_q = inj_q + a @ b.q_kvar

        w = cp.multiply(tile(1 / tau2), m @ v + np.outer(m0, np.ones(T)) * self.v0)
        cons: list[cp.Constraint] = []
        self.bal_p = P - cp.multiply(tile(r), ell) - m.T @ P + inj_p == 0
        self.bal_root = p0 - m0 @ P == self.root_load_p
        cons += [
            self.bal_p,
            Q - cp.multiply(tile(x), ell) - m.T @ Q + inj_q == 0,
            self.bal_root,
            q0 - m0 @ Q == self.root_load_q,
            v == w - 2 * (cp.multiply(tile(r), P) + cp.multiply(tile(x), Q))
            + cp.multiply(tile(r**2 + x**2), ell),
            cp.SOC(cp.vec(ell + w, order="F"),
                   cp.vstack([cp.vec(2 * P, order="F"), cp.vec(2 * Q, order="F"),
                              cp.vec(ell - w, order="F")]), axis=0),
        ]
        if self.options.voltage_limits:
            lims = np.array([f.v_limits_pu(b) for b in buses[1:]])
            cons += [v >= tile(lims[:, 0] ** 2), v <= tile(lims[:, 1] ** 2)]
        if self.options.current_limits:
            imax = np.array([br.i_max_pu for br in branches]) / rescale
            # Placeholder ratings (case33bw's 99,999 kA) are no limit, and their squares would
            # wreck the solver's scaling: anything above 100 p.u. is dropped.
            fin = np.isfinite(imax) & (imax < 100.0)
            if fin.any():
                cons.append(ell[np.flatnonzero(fin), :] <= tile(imax[fin] ** 2))
        for b in blocks:
            cons += b.constraints

        scale = self.dt_h * self.s_base_kw
        import_cost = cp.sum(cp.maximum(cp.multiply(self.price_imp, p0),
                                        cp.multiply(self.price_exp, p0))) * scale
        losses = cp.sum(cp.multiply(tile(r), ell)) * scale * self.options.loss_price_eur_per_kwh
        device_cost = sum((b.cost_eur for b in blocks), cp.Constant(0.0))
        obj = {"import_cost": import_cost + device_cost,
               "import_cost+losses": import_cost + device_cost + losses,
               "losses": losses}[self.options.objective]
        self.problem = cp.Problem(cp.Minimize(obj), cons)
        self.P, self.Q, self.ell, self.v, self.p0, self.q0, self.w = P, Q, ell, v, p0, q0, w

    # ---------------------------------------------------------------------------------------
    def _set(self, inputs: OpfInputs) -> None:
        f, T = self.feeder, self.periods

        def arr(name: str, value: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
            if value is None:
                raise ProfileError(f"inputs.{name} is required for this model")
            a = np.asarray(value, dtype=float)
            if a.shape != shape:
                raise ProfileError(f"inputs.{name} must have shape {shape}, got {a.shape}")
            if not np.all(np.isfinite(a)):
                raise ProfileError(f"inputs.{name} contains NaN or infinite values")
            return a

        nl = len(f.loads)
        lp = arr("load_p_kw", inputs.load_p_kw, (T, nl))
        lq = arr("load_q_kvar", inputs.load_q_kvar, (T, nl))
        imp = arr("price_import_eur_per_kwh", inputs.price_import_eur_per_kwh, (T,))
        exp = arr("price_export_eur_per_kwh", inputs.price_export_eur_per_kwh, (T,))
        if np.any(exp > imp + 1e-12):
            k = int(np.argmax(exp - imp))
            raise ProfileError(f"inputs.price_export_eur_per_kwh[{k}] = {exp[k]} exceeds the "
                               f"import price {imp[k]}: the problem would be unbounded")
        self.load_p.value = self._load_map @ lp.T / self.s_base_kw
        self.load_q.value = self._load_map @ lq.T / self.s_base_kw
        self.root_load_p.value = lp @ self._root_loads / self.s_base_kw
        self.root_load_q.value = lq @ self._root_loads / self.s_base_kw
        self.price_imp.value = imp
        self.price_exp.value = exp
        d = self.devices
        if d.pv:
            pv = arr("pv_p_avail_kw", inputs.pv_p_avail_kw, (T, len(d.pv)))
            if np.any(pv < 0):
                raise ProfileError("inputs.pv_p_avail_kw must be >= 0")
            self.blocks["pv"].parameters["p_avail_kw"].value = pv.T
        if d.batteries:
            e0 = (np.array([0.5 * s.e_max_kwh for s in d.batteries])
                  if inputs.battery_e_init_kwh is None
                  else arr("battery_e_init_kwh", inputs.battery_e_init_kwh, (len(d.batteries),)))
            for k, s in enumerate(d.batteries):
                if not (s.e_min_kwh - 1e-9 <= e0[k] <= s.e_max_kwh + 1e-9):
                    raise ProfileError(f"inputs.battery_e_init_kwh[{k}] = {e0[k]} is outside "
                                       f"[{s.e_min_kwh}, {s.e_max_kwh}] of {s.name!r}")
            self.blocks["battery"].parameters["e_init_kwh"].value = e0
        if d.evs:
            avail = arr("ev_available", inputs.ev_available, (T, len(d.evs)))
            need = arr("ev_e_need_kwh", inputs.ev_e_need_kwh, (len(d.evs),))
            if np.any(need < 0):
                raise ProfileError("inputs.ev_e_need_kwh must be >= 0")
            self.blocks["ev"].parameters["available"].value = avail.T
            self.blocks["ev"].parameters["e_need_kwh"].value = need
        if d.shiftables:
            pref = arr("shiftable_preferred_kw", inputs.shiftable_preferred_kw,
                       (T, len(d.shiftables)))
            self.blocks["shiftable"].parameters["preferred_kw"].value = np.clip(pref.T, 0, None)
        if d.hvacs:
            self.blocks["hvac"].parameters["t_out_c"].value = arr("t_out_c", inputs.t_out_c,
                                                                  (T,))

    def solve(self, inputs: OpfInputs, **solver_kwargs: object) -> OpfResult:
        """Set the parameters from ``inputs`` and solve.

        Raises:
            ProfileError: inputs of the wrong shape or with NaN.
            InfeasibleError: no feasible point (e.g. a voltage limit that cannot be met).
            UnboundedError: unbounded objective.
            OpfError: any other non-optimal status.
        """
        t0 = time.perf_counter()
        self._set(inputs)
        try:
            opts = dict(self.options.solver_options) if self.options.solver == "CLARABEL" else {}
            opts.update(solver_kwargs)
            self.problem.solve(solver=self.options.solver, ignore_dpp=not self.uses_dpp,
                               canon_backend=self.options.canon_backend, **opts)
        except cp.error.SolverError as exc:
            raise OpfError(f"OPF on {self.feeder.name!r}: solver failed: {exc}",
                           "solver_error") from exc
        status = self.problem.status
        if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            raise InfeasibleError(f"OPF on {self.feeder.name!r} is infeasible (status "
                                  f"{status}): limits cannot all be met", status)
        if status in (cp.UNBOUNDED, cp.UNBOUNDED_INACCURATE):
            raise UnboundedError(f"OPF on {self.feeder.name!r} is unbounded (status {status})",
                                 status)
        if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            raise OpfError(f"OPF on {self.feeder.name!r} ended with status {status}", status)
        if status == cp.OPTIMAL_INACCURATE:
            log.warning("OPF on %s: solver reports optimal_inaccurate", self.feeder.name)
        result = self._result(status, time.perf_counter() - t0)
        self._fresh = False
        return result

    def _result(self, status: str, wall_s: float) -> OpfResult:
        T, sb = self.periods, self.s_base_kw
        P, Q, ell = (np.asarray(x.value) for x in (self.P, self.Q, self.ell))
        v = np.vstack([np.full(T, self.v0.value), np.asarray(self.v.value)])  # (n_buses, T)
        w = v[self._parent_idx] / self._tau2[:, None]
        gap = float(np.max(np.abs(P**2 + Q**2 - ell * w))) if P.size else 0.0
        price_scale = self.dt_h * sb
        dl = -np.asarray(self.bal_p.dual_value) / price_scale
        dl_root = -np.asarray(self.bal_root.dual_value) / price_scale
        dlmp = np.vstack([dl_root.reshape(1, T), dl]).T
        inj_p = -np.asarray(self.load_p.value) * sb
        inj_q = -np.asarray(self.load_q.value) * sb
        schedules: dict[str, dict[str, np.ndarray]] = {}
        for kind, b in self.blocks.items():
            a = incidence(self.feeder, list(b.buses))
            inj_p = inj_p + a @ np.asarray(b.p_kw.value)
            if b.q_kvar is not None:
                inj_q = inj_q + a @ np.asarray(b.q_kvar.value)
            schedules[kind] = {name: np.asarray(var.value).T for name, var in b.variables.items()}
            schedules[kind]["p_kw"] = np.asarray(b.p_kw.value).T
        p0 = np.asarray(self.p0.value) * sb
        q0 = np.asarray(self.q0.value) * sb
        stats = self.problem.solver_stats
        return OpfResult(
            feeder=self.feeder.name, status=status, objective_eur=float(self.problem.value),
            periods=T, step_min=self.step_min, buses=self.feeder.buses,
            v_pu=np.sqrt(np.clip(v, 0, None)).T, dlmp_eur_per_kwh=dlmp,
            p_inj_kw=np.vstack([p0.reshape(1, T), inj_p]).T,
            q_inj_kvar=np.vstack([q0.reshape(1, T), inj_q]).T,
            p_flow_kw=(P * sb).T, q_flow_kvar=(Q * sb).T, i_sq_pu=ell.T,
            loss_kw=(self._r @ ell) * sb, import_kw=p0, schedules=schedules,
            relaxation_gap=gap, build_time_s=self.build_time_s if self._fresh else 0.0,
            solve_time_s=wall_s,
            solver_time_s=float(stats.solve_time) if stats and stats.solve_time else math.nan,
        )


def device_blocks(devices: Devices, buses: set[object] | None, periods: int, dt_h: float
                  ) -> tuple[dict[str, DeviceBlock], dict[str, list[int]]]:
    """Device blocks of the devices on ``buses`` (all when ``None``) and their indices.

    Returns each kind's block and its indices into ``devices``; the centralised OPF and the
    ADMM regions both build their devices through this.
    """
    builders = {
        "pv": lambda s: build_pv(s, periods),
        "battery": lambda s: build_batteries(s, periods, dt_h),
        "ev": lambda s: build_evs(s, periods, dt_h),
        "deferrable": lambda s: build_deferrables(s, periods),
        "shiftable": lambda s: build_shiftables(s, periods),
        "hvac": lambda s: build_hvacs(s, periods, dt_h),
        "generator": lambda s: build_generators(s, periods, dt_h),
    }
    groups: dict[str, Any] = {"pv": devices.pv, "battery": devices.batteries, "ev": devices.evs,
              "deferrable": devices.deferrables, "shiftable": devices.shiftables,
              "hvac": devices.hvacs, "generator": devices.generators}
    blocks, index = {}, {}
    for kind, specs in groups.items():
        idx = [k for k, s in enumerate(specs) if buses is None or s.bus in buses]
        if idx:
            blocks[kind] = builders[kind]([specs[k] for k in idx])
            index[kind] = idx
    return blocks, index


def _auto_base_kw(feeder: Feeder) -> float:
    """A power base near the feeder's total nominal load, rounded to 1, 2 or 5 × 10^k kVA."""
    total = sum(abs(a.p_kw) for a in feeder.loads) or feeder.s_base_mva * 1000.0
    k = math.floor(math.log10(total))
    return min((m * 10.0**k for m in (1, 2, 5, 10)), key=lambda b: abs(math.log(b / total)))


def devices_from_profiles(pv: Sequence[PvSpec], batteries: Sequence[BatterySpec]) -> Devices:
    """The device set implied by a day's profiles (PV and storage of the feeder)."""
    return Devices(pv=tuple(pv), batteries=tuple(batteries))
