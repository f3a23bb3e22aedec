"""The household's plan problem (HEMS), built once per device structure and solved directly.

One household plans its day (hourly slots) by minimising its energy bill at retail prices plus the
DSO's coordination price ``λ``, plus its battery's degradation cost, optionally plus the proximal
term ``(w/2)·Σ(imp − exp − target)²`` of a coordination round:

    min  Σ_t (c_imp + λ)·imp − (c_exp + λ)·exp + deg·(ch + dis)   [+ (w/2)·‖imp − exp − target‖²]
    s.t. exp − imp = pv + dis − ch − ev − load          (balance, every slot)
         0 ≤ pv ≤ pv_avail;  0 ≤ ch ≤ p_ch;  0 ≤ dis ≤ p_dis
         e_min ≤ e_init + Σ_{s≤t}(η_c·ch − dis/η_d)·Δt ≤ e_max;  end energy within ε of e_init
         p_min·avail ≤ ev ≤ p_max·avail;  η_ev·Δt·Σ ev = e_need
         imp, exp ≥ 0

This is the problem :func:`reference_problem` builds with the ``grid.der`` device builders (a
DPP cvxpy problem, the reference the tests hold this module to). A population of thousands of
households cannot afford a cvxpy problem each (tens of ms to build and compile, milliseconds of
overhead per solve), so :func:`solve_plan`:

* for a household without battery and EV solves the problem in closed form, slot by slot (each
  slot is a one-dimensional convex problem in the net export, with PV curtailment as its only
  freedom);
* otherwise builds the conic data ``(P, q, A, b, cones)`` with numpy/scipy — the matrices once
  per device structure (:func:`structure`, cached), the vectors per solve — and calls Clarabel
  directly, as cvxpy would. One Clarabel solver per structure and proximal weight is built once
  (KKT assembly and symbolic factorisation, the larger part of a fresh solver's cost) and its
  ``q`` and ``b`` are updated before every solve.

Both are deterministic functions of their inputs: the same household with the same inputs gets
the same plan in every runtime, whichever households were solved before it. (Clarabel keeps the
equilibration of the data a solver was built with; the shared solvers are built from the
structure's matrices and constant vectors, never from a household's data, so the scaling does
not depend on which household came first.)
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import Any

import clarabel
import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from grid.der import BatterySpec, EvSpec, PvSpec, build_batteries, build_evs, build_pv
from mas.errors import PlanError

_ACCEPTED = (clarabel.SolverStatus.Solved, clarabel.SolverStatus.AlmostSolved)


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """What one plan solve depends on (arrays of length ``T``).

    Attributes:
        load_kw: forecast inflexible load.
        pv_avail_kw: forecast available PV (zeros without PV).
        import_eur_per_kwh: retail import price.
        export_eur_per_kwh: feed-in price.
        lam_eur_per_kwh: coordination price added to both.
        e_init_kwh: battery energy at the start (0 without battery).
        ev_available: 0/1 EV availability (zeros without EV).
        ev_need_kwh: energy the EV must get (0 without EV).
        prox_eur_per_kw2: weight ``w`` of the proximal term; 0 or ``target_import_kw=None``: none.
        target_import_kw: the point the proximal term pulls the net import towards.
        dt_h: slot length, hours.
    """

    load_kw: np.ndarray
    pv_avail_kw: np.ndarray
    import_eur_per_kwh: np.ndarray
    export_eur_per_kwh: np.ndarray
    lam_eur_per_kwh: np.ndarray
    e_init_kwh: float
    ev_available: np.ndarray
    ev_need_kwh: float
    prox_eur_per_kw2: float
    target_import_kw: np.ndarray | None
    dt_h: float = 1.0

    @property
    def prox(self) -> bool:
        """Whether the proximal term is in the objective."""
        return self.target_import_kw is not None and self.prox_eur_per_kw2 > 0


@dataclass(frozen=True, slots=True)
class PlanSolution:
    """The optimal schedule (kW per slot, unrounded).

    Attributes:
        import_kw, export_kw: grid import and export (both ≥ 0).
        pv_kw: PV output.
        battery_kw: battery injection (discharge positive).
        ev_kw: EV charging power drawn.
        objective_eur: the objective's value (without the proximal term's constant).
    """

    import_kw: np.ndarray
    export_kw: np.ndarray
    pv_kw: np.ndarray
    battery_kw: np.ndarray
    ev_kw: np.ndarray
    objective_eur: float


BatteryKey = tuple[float, float, float, float, float, float, float | None, float]
EvKey = tuple[float, float, float]


def battery_key(b: BatterySpec | None) -> BatteryKey | None:
    """The numbers of a battery that shape the problem's matrices (name and bus do not)."""
    if b is None:
        return None
    return (b.e_max_kwh, b.p_charge_max_kw, b.p_discharge_max_kw, b.eta_charge,
            b.eta_discharge, b.e_min_kwh, b.end_tolerance_frac, b.degradation_eur_per_kwh)


def ev_key(e: EvSpec | None) -> EvKey | None:
    """The numbers of an EV that shape the problem's matrices."""
    if e is None:
        return None
    return (e.p_max_kw, e.p_min_kw, e.efficiency)


@dataclass(frozen=True)
class Structure:
    """The constant part of the conic data of one device structure.

    Variables ``x = [imp, exp, pv?, ch?, dis?, e?, ev?]`` (each ``T`` long; ``e`` the battery's
    energy at the end of each slot); rows: the balance, the battery's energy recursion and the
    EV's energy (zero cone), then the bounds (nonnegative cone), in Clarabel's form
    ``A·x + s = b`` (sparse: the recursion keeps the KKT system banded).
    """

    periods: int
    dt_h: float
    has_pv: bool
    battery: BatteryKey | None
    ev: EvKey | None
    n_var: int
    col: dict[str, slice]
    a: sp.csc_matrix
    n_zero: int
    n_nonneg: int
    rows: dict[str, slice]
    p_prox: sp.csc_matrix
    p_none: sp.csc_matrix
    q_fixed: np.ndarray = field(compare=False, repr=False)
    b_fixed: np.ndarray = field(compare=False, repr=False)
    _p_by_weight: dict[float, sp.csc_matrix] = field(default_factory=dict, compare=False,
                                                     repr=False)
    _solvers: dict[float, _SharedSolver] = field(default_factory=dict, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def p_weighted(self, weight: float) -> sp.csc_matrix:
        """``p_prox * weight``, built once per weight (every round of a day uses one ρ)."""
        p = self._p_by_weight.get(weight)
        if p is None:
            p = self._p_by_weight[weight] = self.p_prox * weight
        return p

    def cones(self) -> list[object]:
        """Clarabel's cones of the rows: the equalities, then the bounds."""
        return [clarabel.ZeroConeT(self.n_zero), clarabel.NonnegativeConeT(self.n_nonneg)]

    def solver(self, weight: float) -> _SharedSolver:
        """The solver of this structure with proximal weight ``weight`` (0: none), built once."""
        solver = self._solvers.get(weight)
        if solver is None:
            with self._lock:
                solver = self._solvers.get(weight)
                if solver is None:
                    p = self.p_weighted(weight) if weight else self.p_none
                    solver = self._solvers[weight] = _SharedSolver(self, p)
        return solver


CANONICAL_COST_EUR = 0.05
"""Every entry of ``q`` in the data a shared solver is built with (``b`` is zero).

Clarabel scales the objective by a factor set from ``P`` and ``q`` when a solver is built and
keeps it through updates; a cost of the order of the problems' own (prices of cents per kWh)
takes the interior-point method to the tolerances in fewer iterations than a zero ``q``
(≈ 9.2 against 11.1 on average for a battery household's proximal step; no effect on an LP).
"""


class _SharedSolver:
    """A Clarabel solver of one structure, whose ``q`` and ``b`` are replaced before every solve.

    Built from the structure's matrices and constant vectors (the canonical data: its
    equilibration is a function of the structure alone). Thread-safe: one solve at a time.
    """

    def __init__(self, s: Structure, p: sp.csc_matrix) -> None:
        m = s.n_zero + s.n_nonneg
        self._solver = clarabel.DefaultSolver(p, np.full(s.n_var, CANONICAL_COST_EUR), s.a,
                                              np.zeros(m), s.cones(), _settings())
        if not self._solver.is_data_update_allowed():  # presolve or dropped zeros: never here
            raise PlanError("plan solver: Clarabel refuses data updates", "solver_error")
        self._lock = threading.Lock()

    def solve(self, q: np.ndarray, b: np.ndarray) -> Any:
        """Clarabel's solution of the structure's problem with this ``q`` and ``b``."""
        with self._lock:  # lists: Clarabel reads a list several times faster than an array
            self._solver.update(q=q.tolist(), b=b.tolist())
            return self._solver.solve()


@functools.lru_cache(maxsize=64)
def structure(periods: int, dt_h: float, has_pv: bool, battery: BatteryKey | None,
              ev: EvKey | None) -> Structure:
    """The matrices of one device structure (cached: every household of a kind shares them)."""
    T = periods
    names = ["imp", "exp"] + (["pv"] if has_pv else []) + (["ch", "dis", "e"] if battery else []) \
        + (["ev"] if ev else [])
    col = {n: slice(k * T, (k + 1) * T) for k, n in enumerate(names)}
    n_var = len(names) * T
    eye = sp.identity(T, format="csc")
    zero_rows: list[sp.spmatrix] = []
    ineq_rows: list[sp.spmatrix] = []
    rows: dict[str, slice] = {}

    def block(parts: dict[str, sp.spmatrix], m: int) -> sp.spmatrix:
        cols = [parts.get(n, sp.csc_matrix((m, T))) for n in names]
        return sp.hstack(cols, format="csc")

    # zero cone: balance  exp − imp − pv − dis + ch + ev = −load
    bal = {"imp": -eye, "exp": eye}
    if has_pv:
        bal["pv"] = -eye
    if battery:
        bal["ch"], bal["dis"] = eye, -eye
    if ev:
        bal["ev"] = eye
    zero_rows.append(block(bal, T))
    rows["balance"] = slice(0, T)
    n_zero = T
    if battery:  # e[t] − e[t−1] − η_c·Δt·ch[t] + Δt/η_d·dis[t] = 0, with e[−1] = e_init
        eta_c, eta_d = battery[3], battery[4]
        diff = sp.identity(T, format="csc") - sp.eye(T, k=-1, format="csc")
        zero_rows.append(block({"e": diff, "ch": -eta_c * dt_h * eye,
                                "dis": dt_h / eta_d * eye}, T))
        rows["energy"] = slice(n_zero, n_zero + T)
        n_zero += T
    if ev:
        zero_rows.append(block({"ev": sp.csc_matrix(np.full((1, T), ev[2] * dt_h))}, 1))
        rows["ev_energy"] = slice(n_zero, n_zero + 1)
        n_zero += 1

    # nonnegative cone: bounds, A·x <= b
    k = 0

    def add(name: str, parts: dict[str, sp.spmatrix], m: int) -> None:
        nonlocal k
        ineq_rows.append(block(parts, m))
        rows[name] = slice(n_zero + k, n_zero + k + m)
        k += m

    add("imp_lo", {"imp": -eye}, T)
    add("exp_lo", {"exp": -eye}, T)
    if has_pv:
        add("pv_lo", {"pv": -eye}, T)
        add("pv_hi", {"pv": eye}, T)
    if battery:
        add("ch_lo", {"ch": -eye}, T)
        add("ch_hi", {"ch": eye}, T)
        add("dis_lo", {"dis": -eye}, T)
        add("dis_hi", {"dis": eye}, T)
        add("e_hi", {"e": eye}, T)
        add("e_lo", {"e": -eye}, T)
        if battery[6] is not None:
            last = sp.csc_matrix(([1.0], ([0], [T - 1])), shape=(1, T))
            add("end_lo", {"e": -last}, 1)
            add("end_hi", {"e": last}, 1)
    if ev:
        add("ev_lo", {"ev": -eye}, T)
        add("ev_hi", {"ev": eye}, T)
    a = sp.vstack(zero_rows + ineq_rows, format="csc")
    w = sp.lil_matrix((n_var, n_var))
    for t in range(T):  # (w/2)·‖imp − exp‖² with w = 1; upper triangle for Clarabel
        w[t, t] = 1.0
        w[T + t, T + t] = 1.0
        w[t, T + t] = -1.0
    q = np.zeros(n_var)  # the parts of q and b that are the same for every solve
    b = np.zeros(n_zero + k)
    if battery:
        if battery[7]:
            q[col["ch"]] = battery[7] * dt_h
            q[col["dis"]] = battery[7] * dt_h
        b[rows["ch_hi"]] = battery[1]
        b[rows["dis_hi"]] = battery[2]
        b[rows["e_hi"]] = battery[0]
        b[rows["e_lo"]] = -battery[5]
    return Structure(T, dt_h, has_pv, battery, ev, n_var, col, a, n_zero, k, rows,
                     sp.csc_matrix(w), sp.csc_matrix((n_var, n_var)), q, b)


@functools.cache
def _settings() -> clarabel.DefaultSettings:
    """The solver settings (one object: Clarabel copies them into each solver)."""
    s = clarabel.DefaultSettings()
    s.verbose = False
    s.max_threads = 1  # small problems: threads cost more than they save
    s.iterative_refinement_enable = False  # ~40 % faster here; residuals still meet the tolerances
    return s


def solve_plan(pv: PvSpec | None, battery: BatterySpec | None, ev: EvSpec | None,
               inputs: PlanInputs, *, owner: str = "household") -> PlanSolution:
    """The optimal plan of a household with these devices.

    Raises:
        PlanError: the problem is not solved (infeasible, unbounded, solver failure).
    """
    if battery is None and ev is None and np.all(inputs.import_eur_per_kwh
                                                 >= inputs.export_eur_per_kwh):
        return _closed_form(inputs)
    return _conic(structure(len(inputs.load_kw), inputs.dt_h, pv is not None,
                            battery_key(battery), ev_key(ev)), inputs, owner)


def _closed_form(x: PlanInputs) -> PlanSolution:
    imp, exp, pv, obj = closed_form_arrays(x)
    zeros = np.zeros_like(imp)
    return PlanSolution(imp, exp, pv, zeros, zeros.copy(), float(obj))


def closed_form_arrays(x: PlanInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The plan without battery and EV: PV curtailment is the only freedom.

    Per slot, minimise a convex function of the net export ``n``: the cost is ``−(c_exp+λ)·n``
    for ``n ≥ 0`` and ``−(c_imp+λ)·n`` for ``n ≤ 0`` (convex, as ``c_imp ≥ c_exp``),
    ``n ∈ [−load, pv_avail − load]``. Without the proximal term the minimiser is an end of the
    interval or 0; with it, the stationary point of the piece it falls on, clipped to the
    interval.

    Elementwise: the arrays of ``x`` may be ``(T,)`` or ``(n, T)`` (``n`` households with one
    proximal weight, solved at once); a household's row is bitwise its own solve.

    Returns:
        import, export and PV output (``x``'s shape) and the objective (one per household).
    """
    dt = x.dt_h
    lo = -x.load_kw
    hi = x.pv_avail_kw - x.load_kw
    slope_imp = -(x.import_eur_per_kwh + x.lam_eur_per_kwh) * dt  # d cost / d n, n < 0
    slope_exp = -(x.export_eur_per_kwh + x.lam_eur_per_kwh) * dt  # n > 0
    if x.prox:
        assert x.target_import_kw is not None
        w, tgt = x.prox_eur_per_kw2, x.target_import_kw
        n_exp = -tgt - slope_exp / w
        n_imp = -tgt - slope_imp / w
        n = np.where(n_exp > 0, n_exp, np.where(n_imp < 0, n_imp, 0.0))
    else:
        n = np.where(slope_imp >= 0, lo, np.where(slope_exp <= 0, hi, 0.0))
    n = np.clip(n, lo, hi)
    imp = np.clip(-n, 0, None)
    exp = np.clip(n, 0, None)
    obj = np.sum(-slope_imp * imp + slope_exp * exp, axis=-1)
    if x.prox:
        assert x.target_import_kw is not None
        obj = obj + x.prox_eur_per_kw2 / 2 * np.sum((imp - exp - x.target_import_kw) ** 2,
                                                    axis=-1)
    return imp, exp, n + x.load_kw, obj


def _conic(s: Structure, x: PlanInputs, owner: str) -> PlanSolution:
    T, dt = s.periods, s.dt_h
    q = s.q_fixed.copy()
    q[s.col["imp"]] = (x.import_eur_per_kwh + x.lam_eur_per_kwh) * dt
    q[s.col["exp"]] = -(x.export_eur_per_kwh + x.lam_eur_per_kwh) * dt
    weight = 0.0
    const = 0.0
    if x.prox:
        assert x.target_import_kw is not None
        w, tgt = x.prox_eur_per_kw2, x.target_import_kw
        weight = w
        q[s.col["imp"]] -= w * tgt
        q[s.col["exp"]] += w * tgt
        const = w / 2 * float(tgt @ tgt)
    b = s.b_fixed.copy()
    r = s.rows
    b[r["balance"]] = -x.load_kw
    if s.has_pv:
        b[r["pv_hi"]] = x.pv_avail_kw
    if s.battery:
        e0, eps = x.e_init_kwh, s.battery[6]
        b[r["energy"].start] = e0
        if eps is not None:
            b[r["end_lo"]] = -(1 - eps) * e0
            b[r["end_hi"]] = (1 + eps) * e0
    if s.ev:
        p_max, p_min, _ = s.ev
        b[r["ev_energy"]] = x.ev_need_kwh
        b[r["ev_lo"]] = -p_min * x.ev_available
        b[r["ev_hi"]] = p_max * x.ev_available
    try:
        sol = s.solver(weight).solve(q, b)
    except BaseException as exc:  # the Rust solver raises PanicException (a BaseException)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise PlanError(f"{owner}: solver failed: {exc}", "solver_error") from exc
    if sol.status not in _ACCEPTED:
        raise PlanError(f"{owner}: plan ended with status {sol.status}", str(sol.status))
    v = np.asarray(sol.x)
    zeros = np.zeros(T)
    pv = v[s.col["pv"]] if s.has_pv else zeros
    bat = v[s.col["dis"]] - v[s.col["ch"]] if s.battery else zeros
    ev = v[s.col["ev"]] if s.ev else zeros
    return PlanSolution(v[s.col["imp"]], v[s.col["exp"]], pv, bat, ev,
                        float(sol.obj_val) + const)


def reference_problem(pv: PvSpec | None, battery: BatterySpec | None, ev: EvSpec | None,
                      inputs: PlanInputs) -> tuple[cp.Problem, cp.Variable, cp.Variable]:
    """The same problem as a cvxpy problem built with the ``grid.der`` builders (the reference).

    Returns the problem (DPP, parameters set) and its import and export variables.
    """
    T, dt = len(inputs.load_kw), inputs.dt_h
    load = cp.Parameter(T, nonneg=True, name="load_kw")
    price_imp = cp.Parameter(T, name="price_import")
    price_exp = cp.Parameter(T, name="price_export")
    lam = cp.Parameter(T, name="lam")
    inj: cp.Expression = -load
    cons: list[cp.Constraint] = []
    cost: cp.Expression = cp.Constant(0.0)
    blocks = []
    if pv is not None:
        blk = build_pv([pv], T)
        blk.parameters["p_avail_kw"].value = inputs.pv_avail_kw.reshape(1, T)
        blocks.append(blk)
    if battery is not None:
        blk = build_batteries([battery], T, dt)
        blk.parameters["e_init_kwh"].value = np.array([inputs.e_init_kwh])
        blocks.append(blk)
    if ev is not None:
        blk = build_evs([ev], T, dt)
        blk.parameters["available"].value = inputs.ev_available.reshape(1, T)
        blk.parameters["e_need_kwh"].value = np.array([inputs.ev_need_kwh])
        blocks.append(blk)
    for blk in blocks:
        inj = inj + cp.sum(blk.p_kw, axis=0)
        cons += blk.constraints
        cost = cost + blk.cost_eur
    imp = cp.Variable(T, nonneg=True, name="import_kw")
    exp = cp.Variable(T, nonneg=True, name="export_kw")
    cons.append(exp - imp == inj)
    objective = cp.sum(cp.multiply(price_imp + lam, imp)
                       - cp.multiply(price_exp + lam, exp)) * dt + cost
    if inputs.prox:
        target = cp.Parameter(T, name="target_import_kw")
        target.value = inputs.target_import_kw
        objective = objective + inputs.prox_eur_per_kw2 / 2 * cp.sum_squares(imp - exp - target)
    load.value = inputs.load_kw
    price_imp.value = inputs.import_eur_per_kwh
    price_exp.value = inputs.export_eur_per_kwh
    lam.value = inputs.lam_eur_per_kwh
    return cp.Problem(cp.Minimize(objective), cons), imp, exp
