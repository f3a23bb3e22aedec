"""The DSO's coordination with the households: consensus ADMM on their net imports.

The day's plan is the solution of one problem (DESIGN "One simulated day", step 4)::

    minimise  Σ_h f_h(x_h) + g(p)   subject to  x_h = p_h  for every household h

``f_h`` is household h's own HEMS problem (retail energy cost and device costs under its
assets' constraints, private to it) over its net import ``x_h`` (kW per slot); ``g`` is the
DSO's DistFlow OPF of the feeder (losses valued at the mean import price; bus voltages within
``[v_min, v_max]``, branch currents within their ratings, substation import within its limit,
each with priced slack)
over its own copy ``p_h`` of every household's net import. Consensus ADMM (Boyd et al. 2011
§7.1, Münsing et al. 2017 eqs. (15)–(17)) splits it between the two kinds of node, with
``ρ`` the households' proximal weight ``prox_eur_per_kw2`` (EUR per kW² and slot)::

    x_h ← argmin f_h(x) + λ_h·x + (ρ/2)‖x − z_h‖²        household h, in its own process
    p   ← argmin g(p) + Σ_h μ_h·p_h + (ρ/2)‖p_h − z_h‖²   the DSO's grid copy
    z_h ← (x_h + p_h)/2                                   aggregator step (grid.admm protocol)
    λ_h ← λ_h + ρ(x_h − z_h),   μ_h ← μ_h + ρ(p_h − z_h)   dual updates

This is the unscaled form of ``argmin f(x) + (ρ/2)‖x − z + u‖²`` with ``λ = ρu``: the
household's step is exactly ``HouseholdBrain.make_plan(λ_h, target_import_kw=z_h)``. ``λ_h``
(EUR/kWh per slot) is the price the grid puts on household h's import; with two copies per
global, ``λ_h = −μ_h`` from the first round on. Round 0 starts from ``z⁰ = x⁰``, the
households' own optimum (they are asked without a target), so the first exchange already is
an ADMM round.

The aggregator step (z-average, residuals) runs behind :class:`grid.admm.aggregator.Aggregator`:
:class:`~grid.admm.aggregator.ReferenceAggregator` off chain, ``ledger.admm.ContractAdmm`` on
chain. Global ``h·24 + t`` is household h's net import in slot t; node ``h`` (a household)
holds the 24 copies of its own, node ``n`` (the DSO) all ``24·n``. The contract's fixed point
(1e-6 kW, z truncated toward zero) is applied to every z, so a run gives the same iterates
whichever implementation aggregates.

Acceleration (``grid.anderson`` = m > 0): a round maps the state ``(z, λ/ρ, μ/ρ)`` it sends to
the one the aggregator step and the dual updates return; the DSO extrapolates the next state
from the last ``m`` rounds (type-II Anderson, :class:`grid.admm.anderson.Anderson`, with its
safeguard on the fixed-point residual) and sends that: targets on the contract's grid, prices
``λ_h``. The aggregator's averages are untouched; the dual residual is then
``‖B(z⁺ − z_sent)‖``, computed by the DSO. On the piecewise-linear household costs the plain
rounds oscillate while they shrink; extrapolation damps that (the default day: 19 rounds instead
of 27 to the same stopping rule, docs/agents.md).

Stopping (Boyd §3.3.1, everything in kW): ``‖r‖ ≤ √p·ε_abs + ε_rel·max(‖x‖, ‖z‖)`` and
``‖s‖/ρ ≤ √p·ε_abs + ε_rel·‖y‖/ρ`` with ``p`` the number of copies, or the round limit.
A household that does not answer a round has its last answer submitted again (the round is
flagged stale); one that never answered is left out and ``z_h`` follows the DSO's copy.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import clarabel
import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import dims_to_solver_cones

from grid.admm.anderson import Anderson
from grid.admm.opf import build_region
from grid.feeders import Feeder
from grid.opf import OpfOptions
from mas.brains.hems import reference_problem
from mas.brains.household import HouseholdBrain
from mas.errors import PlanError, ProtocolStateError
from mas.scenario import GridSpec

log = logging.getLogger(__name__)

FIXED_KW = 1e-6
"""Grid of the submitted vectors and of z (the contract's ``int64`` fixed point)."""
VIOLATION_EUR_PER_KWH = 1.0
"""Price of substation import above the limit (several times any retail price)."""
VIOLATION_EUR_PER_PU2 = 1000.0
"""Price of a squared voltage outside its limits, or a squared current above its rating, per
unit and slot (10 EUR per slot for 1 % of v²)."""
ANDERSON_REGULARIZATION = 1e-8
"""Relative Tikhonov weight of the Anderson step (as ``grid.admm``'s default)."""


class RoundStep(Protocol):
    """What an aggregator step returns (``grid`` and ``ledger`` results both fit)."""

    @property
    def z(self) -> np.ndarray:
        """The new global values."""

    @property
    def primal_residual(self) -> float:
        """``‖x − Bz‖₂`` over the submitted copies."""

    @property
    def dual_residual(self) -> float:
        """``ρ·‖B(z − z_prev)‖₂``."""

    @property
    def missing(self) -> tuple[int, ...]:
        """Nodes that did not submit."""


class AggregatorStep(Protocol):
    """The aggregator step of consensus ADMM (``grid.admm.aggregator.Aggregator``'s calls)."""

    def setup(self, n_global: int, copies: Sequence[Sequence[int]]) -> None:
        """Declare the globals and each node's copies."""

    def open_round(self, round_index: int, deadline_s: float) -> None:
        """Start a round."""

    def submit(self, node: int, x_local: Sequence[float]) -> None:
        """Store a node's vector."""

    def close_round(self, rho: float) -> Any:
        """Average, compute the residuals, close (returns a :class:`RoundStep`)."""


@dataclass(frozen=True, slots=True)
class RoundRequest:
    """What the DSO asks one household at the start of a round.

    Attributes:
        round: round number (0-based).
        lam_eur_per_kwh: the household's coordination price per slot (its scaled dual · ρ).
        target_import_kw: the consensus net import per slot the proximal term pulls towards;
            ``None`` in round 0 (the household answers its own optimum).
        rho_eur_per_kw2: the proximal weight the round assumes.
    """

    round: int
    lam_eur_per_kwh: tuple[float, ...]
    target_import_kw: tuple[float, ...] | None
    rho_eur_per_kw2: float


@dataclass(frozen=True, slots=True)
class RoundOutcome:
    """A closed round.

    Attributes:
        round: round number.
        primal_residual_kw: ``‖x − Bz‖₂`` from the aggregator step.
        dual_residual_kw: ``‖B(z − z_prev)‖₂`` (the aggregator's dual residual over ρ).
        eps_primal_kw: the primal tolerance of the round.
        eps_dual_kw: the dual tolerance of the round.
        consensus_kw: largest ``|x_h − p_h|`` over households and slots.
        converged: both residuals within tolerance.
        answers: households that answered this round.
        stale: households whose previous answer was submitted again.
        peak_import_kw: largest substation import of the DSO's copy.
        gas_used: gas of the round's transactions (0 off chain).
    """

    round: int
    primal_residual_kw: float
    dual_residual_kw: float
    eps_primal_kw: float
    eps_dual_kw: float
    consensus_kw: float
    converged: bool
    answers: int
    stale: tuple[str, ...]
    peak_import_kw: float
    gas_used: int


def fixed_kw(values: np.ndarray) -> np.ndarray:
    """Values on the contract's grid: 1e-6 kW, truncated toward zero (as the z-update)."""
    scaled = np.round(np.asarray(values, dtype=float) / FIXED_KW, 3)  # float noise of a mean
    return np.trunc(scaled) * FIXED_KW + 0.0


def _round_kw(values: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(values, dtype=float), 6) + 0.0


class GridCopy:
    """The DSO's node: the feeder's DistFlow OPF over its copy of every household's import.

    Built once with :func:`grid.admm.opf.build_region` over the whole feeder; the households'
    net imports are withdrawals at their buses, their reactive loads are known to the DSO. Own
    cost ``g``: losses at ``loss_price_eur_per_kwh``, plus priced slack on the limits
    (:data:`VIOLATION_EUR_PER_KWH` per kWh of import above the limit,
    :data:`VIOLATION_EUR_PER_PU2` on voltages and currents): where the households can stay
    within the limits the slack is zero (the prices exceed every multiplier of the limits);
    where the load alone breaks them (a population beyond the feeder's rating) the copy stays
    feasible and comes as close as it can. The physics sees only each bus's total
    ``P_b = Σ_{h at b} p_h``, so the step is solved over the buses: for a given total, the
    proximal term ``(ρ/2)Σ_h‖p_h − c_h‖²`` (``c = z − μ/ρ``) is smallest at
    ``p_h = c_h + (P_b − C_b)/m_b`` (``C_b = Σ c_h``, ``m_b`` households), where it is
    ``(ρ/(2m_b))‖P_b − C_b‖²`` — the problem's size does not grow with the households.

    Args:
        feeder: the feeder.
        buses: each household's bus, in household order.
        q_kvar: each household's reactive load per slot, ``(n, T)``.
        spec: voltage and import limits.
        rho_eur_per_kw2: ADMM penalty ρ.
        loss_price_eur_per_kwh: value of losses.
        step_min: slot length.
    """

    def __init__(self, feeder: Feeder, buses: Sequence[object], q_kvar: np.ndarray,
                 spec: GridSpec, rho_eur_per_kw2: float, loss_price_eur_per_kwh: float,
                 step_min: int = 60) -> None:
        n, T = np.asarray(q_kvar).shape
        self.n, self.periods = n, T
        self.feeder = feeder
        total_kw = sum(abs(a.p_kw) for a in feeder.loads) or feeder.s_base_mva * 1000.0
        self.s_base_kw = 10.0 ** round(math.log10(total_kw))  # per-unit flows near 1
        root = feeder.root
        at: dict[object, list[int]] = {}
        for k, b in enumerate(buses):
            at.setdefault(b, []).append(k)
        self.bus_rows = list(at)  # buses with households, first-seen order
        self.row_of = np.array([self.bus_rows.index(b) for b in buses], dtype=int)
        self.m = np.array([len(at[b]) for b in self.bus_rows], dtype=float)
        nb = len(self.bus_rows)
        self.P = cp.Variable((nb, T), name="bus_import_kw")
        self.lin = cp.Parameter((nb, T), name="admm_linear")
        q = np.asarray(q_kvar, dtype=float)
        extra_p = {b: -self.P[r] for r, b in enumerate(self.bus_rows) if b != root}
        extra_q = {b: cp.Constant(-q[at[b]].sum(axis=0)) for b in self.bus_rows if b != root}
        options = OpfOptions(objective="losses", loss_price_eur_per_kwh=loss_price_eur_per_kwh,
                             voltage_limits=False, current_limits=False)
        parts, _ = build_region(feeder, feeder.buses, T, step_min, self.s_base_kw, None,
                                options, extra_p, extra_q)
        for name in ("load_p_kw", "load_q_kvar"):
            if parts.parameters.get(name) is not None:
                parts.parameters[name].value = np.zeros(parts.parameters[name].shape)
        for name in ("root_load_p_kw", "root_load_q_kvar", "price_import", "price_export"):
            parts.parameters[name].value = np.zeros(T)
        v, ell = parts.variables["v"], parts.variables["l"]
        cons = list(parts.constraints)
        penalty: cp.Expression = cp.Constant(0.0)
        if v is not None:  # limits with priced slack: the copy is feasible whatever the load
            lo = cp.Variable(v.shape, nonneg=True, name="v_low_pu2")
            hi = cp.Variable(v.shape, nonneg=True, name="v_high_pu2")
            cons += [v + lo >= spec.v_min_pu**2, v - hi <= spec.v_max_pu**2]
            penalty = penalty + VIOLATION_EUR_PER_PU2 * cp.sum(lo + hi)
            rescale = self.s_base_kw / (feeder.s_base_mva * 1000.0)
            imax = np.array([feeder.branch(b).i_max_pu for b in feeder.buses if b != root])
            imax = imax / rescale
            rated = np.flatnonzero(np.isfinite(imax) & (imax < 100.0))  # as grid's OPF does
            if rated.size:
                over = cp.Variable((rated.size, T), nonneg=True, name="i_over_pu2")
                cons.append(ell[rated] - over <= np.tile(imax[rated, None] ** 2, (1, T)))
                penalty = penalty + VIOLATION_EUR_PER_PU2 * cp.sum(over)
        self.import_kw = parts.variables["p0"] * self.s_base_kw
        if root in at:  # households at the substation bus draw through the transformer only
            self.import_kw = self.import_kw + self.P[self.bus_rows.index(root)]
        excess = cp.Variable(T, nonneg=True, name="import_excess_kw")
        cons.append(self.import_kw - excess <= spec.import_limit_kw)
        penalty = penalty + VIOLATION_EUR_PER_KWH * cp.sum(excess) * step_min / 60
        self.v_sq = v
        self.excess_kw = excess
        self.cost_eur = parts.objective + penalty
        self.constraints = cons
        self.rho = rho_eur_per_kw2
        # divided by ρ: the proximal term has unit weight, which keeps Clarabel accurate
        self.problem = cp.Problem(cp.Minimize(
            self.cost_eur / self.rho + cp.sum(cp.multiply(self.lin, self.P))
            + cp.sum(cp.multiply(1 / (2 * self.m), cp.sum(cp.square(self.P), axis=1)))), cons)
        self._conic: tuple[Any, ...] | None = None
        self.inaccurate_solves = 0
        """Solves that ended ``AlmostSolved`` (Clarabel's reduced tolerances)."""

    def _compile(self) -> None:
        """Canonicalise once and locate ``lin``'s entries in the conic objective vector.

        Between rounds only the linear term ``lin`` changes, and it enters the conic form
        (``½xᵀPx + qᵀx``, ``Ax + s = b``) only in ``q``, one entry per element. The problem is
        canonicalised twice with the parameters' values (a DPP compilation of the region takes
        minutes): at ``lin = 0`` and at a probe ``1, 2, …`` that identifies every entry's column.

        Raises:
            PlanError: ``lin`` does not map one to one onto conic variables.
        """
        size = self.lin.size
        self.lin.value = np.zeros(self.lin.shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            data, chain, inverse = self.problem.get_problem_data(cp.CLARABEL, ignore_dpp=True)
            self.lin.value = np.arange(1.0, size + 1.0).reshape(self.lin.shape, order="F")
            probe, _, _ = self.problem.get_problem_data(cp.CLARABEL, ignore_dpp=True)
        dq = probe["c"] - data["c"]
        nz = np.flatnonzero(dq)
        if nz.size != size or not np.array_equal(np.sort(dq[nz]), np.arange(1.0, size + 1.0)):
            raise PlanError("DSO grid copy: the ADMM linear term does not map one to one onto "
                            "the conic variables", "invalid")
        cols = np.empty(size, dtype=np.int64)
        cols[dq[nz].astype(np.int64) - 1] = nz
        n = data["c"].size
        P = data.get("P")
        P = sp.csc_matrix((n, n)) if P is None else sp.triu(sp.csc_matrix(P), format="csc")
        P.sort_indices()
        if getattr(inverse[-1], "solver_options", {}) is None:
            inverse[-1].solver_options = {}  # read by cvxpy's Clarabel interface on unpack
        self._conic = (P, np.asarray(data["c"], dtype=float), sp.csc_matrix(data["A"]),
                       np.asarray(data["b"], dtype=float),
                       dims_to_solver_cones(data["dims"]), cols, chain, inverse)

    def solve(self, mu_eur_per_kwh: np.ndarray, z_kw: np.ndarray) -> np.ndarray:
        """The DSO's step: ``argmin g(p) + μ·p + (ρ/2)‖p − z‖²``; returns ``p`` on the kW grid.

        Canonicalised once (:meth:`_compile`); each round sets ``q`` and calls Clarabel
        directly with a fresh solver (its iterates depend on this round's data only), then hands
        the solution back to cvxpy so the variables read as after ``problem.solve()``.

        On populations of thousands of households (the feeder's copies in parallel) Clarabel
        ends ``AlmostSolved`` every round: primal and dual residuals near 1e-11 but the duality
        gap stalls near 1e-2 of the objective over ρ (2·10⁻⁴ EUR; 2,000 households: objective
        2.2·10⁵, relative gap 4·10⁻⁸ against Clarabel's 1e-8), the conic data spanning
        twelve orders of magnitude (branch impedances of the paralleled feeder near 1e-8, the
        slack prices over ρ 5·10⁴). Equilibration, regularisation, refinement and presolve
        settings do not change that, nor does solving for the deviation from the proximal
        centre. The solution is accepted; the first such solve is logged as a warning.

        Raises:
            PlanError: the solver does not reach an optimum.
        """
        c = np.asarray(z_kw, dtype=float) - np.asarray(mu_eur_per_kwh, dtype=float) / self.rho
        c_bus = np.zeros((len(self.bus_rows), self.periods))
        np.add.at(c_bus, self.row_of, c)
        lin = -c_bus / self.m[:, None]
        if self._conic is None:
            self._compile()
        assert self._conic is not None
        P, q0, A, b, cones, cols, chain, inverse = self._conic
        q = q0.copy()
        q[cols] += lin.reshape(-1, order="F")
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        sol = clarabel.DefaultSolver(P, q, A, b, cones, settings).solve()
        status = str(sol.status)
        if status not in ("Solved", "AlmostSolved"):
            raise PlanError(f"DSO grid copy ended with status {status}", status)
        if status == "AlmostSolved":  # the relative duality gap stalls (see above)
            self.inaccurate_solves += 1
            log.log(logging.WARNING if self.inaccurate_solves == 1 else logging.DEBUG,
                    "DSO grid copy: solver reports optimal_inaccurate (duality gap %.2g; "
                    "further ones are logged at DEBUG)", abs(sol.obj_val - sol.obj_val_dual))
        self.lin.value = lin
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # status checked above
            self.problem.unpack_results(sol, chain, inverse)
        shift = (np.asarray(self.P.value) - c_bus) / self.m[:, None]
        return _round_kw(c + shift[self.row_of])

    def peak_import_kw(self) -> float:
        """Largest substation import of the last solution."""
        return float(np.max(np.asarray(self.import_kw.value)))


class ConsensusAdmm:
    """Consensus ADMM between households and the DSO's grid copy, round by round.

    Used by both runtimes: a round is :meth:`open_round` (the requests to send), the
    households' answers through :meth:`submit`, then :meth:`close_round`. The DSO's own step
    (:meth:`grid_step`) needs only ``z`` from round 1 on, so a runtime may run it while the
    households work.

    Args:
        ids: the households, in index order (node ``k`` is ``ids[k]``; node ``n`` the DSO).
        grid: the DSO's grid copy.
        spec: tolerances and the round limit.
        rho_eur_per_kw2: ADMM penalty ρ (the households' proximal weight).
    """

    def __init__(self, ids: Sequence[str], grid: GridCopy, spec: GridSpec,
                 rho_eur_per_kw2: float) -> None:
        self.ids = tuple(ids)
        self.index = {h: k for k, h in enumerate(self.ids)}
        self.grid = grid
        self.spec = spec
        self.rho = rho_eur_per_kw2
        n, T = len(self.ids), grid.periods
        self.n, self.periods = n, T
        self.aggregator: AggregatorStep | None = None
        self.z: np.ndarray | None = None
        self.lam = np.zeros((n, T))  # households' duals λ_h
        self.mu = np.zeros((n, T))  # the grid copy's duals μ_h
        self.x: dict[str, np.ndarray] = {}  # last answer of every household
        self.p: np.ndarray | None = None
        self.round = -1
        self._open = False
        self._fresh: dict[str, np.ndarray] = {}
        self.history: list[RoundOutcome] = []
        self._accel: Anderson | None = None
        self._proposed = False  # the state sent is an Anderson proposal
        self._lam_sent, self._mu_sent = self.lam.copy(), self.mu.copy()  # the round's state
        self.converged = False

    def start(self, aggregator: AggregatorStep) -> None:
        """Declare the problem to the aggregator step and reset the iterates."""
        T = self.periods
        copies = [list(range(k * T, (k + 1) * T)) for k in range(self.n)]
        copies.append(list(range(self.n * T)))
        aggregator.setup(self.n * T, copies)
        self.aggregator = aggregator
        self.z = None
        self.lam[:] = 0.0
        self.mu[:] = 0.0
        self.x = {}
        self._accel = (Anderson(self.spec.anderson, ANDERSON_REGULARIZATION)
                       if self.spec.anderson > 0 else None)
        self._proposed = False
        self.round = -1
        self.history = []
        self.converged = False

    @property
    def done(self) -> bool:
        """Converged, or the round limit reached."""
        return self.converged or (self.round + 1 >= self.spec.max_rounds and not self._open)

    def open_round(self) -> dict[str, RoundRequest]:
        """Open the next round; returns the request of every household.

        Raises:
            ProtocolStateError: not started, or a round is still open.
        """
        if self.aggregator is None:
            raise ProtocolStateError("coordination not started")
        if self._open:
            raise ProtocolStateError(f"round {self.round} is still open")
        self.round += 1
        self._open = True
        self._fresh = {}
        self.p = None
        self._lam_sent, self._mu_sent = self.lam.copy(), self.mu.copy()
        lam = np.round(self.lam, 9).tolist()  # Python floats, as the messages carry them
        z = None if self.z is None else self.z.tolist()
        return {h: RoundRequest(self.round, tuple(lam[k]), None if z is None else tuple(z[k]),
                                self.rho)
                for k, h in enumerate(self.ids)}

    def submit(self, household: str, round_: int, net_import_kw: Sequence[float]) -> bool:
        """Record a household's answer; returns False for a duplicate (ignored).

        Raises:
            ProtocolStateError: unknown household, a round that is not open, a bad vector.
        """
        if household not in self.index:
            raise ProtocolStateError(f"participant {household!r} is not in the coordination")
        if not self._open or round_ != self.round:
            raise ProtocolStateError(f"round {round_} is not open (open: "
                                     f"{self.round if self._open else None})")
        x = np.asarray(net_import_kw, dtype=float)
        if x.shape != (self.periods,) or not np.all(np.isfinite(x)):
            raise ProtocolStateError(f"net_import_kw must be {self.periods} finite numbers, "
                                     f"got shape {x.shape}")
        if household in self._fresh:
            return False
        self._fresh[household] = _round_kw(x)
        return True

    def _z_now(self) -> np.ndarray:
        if self.z is not None:
            return self.z
        z0 = np.zeros((self.n, self.periods))  # round 0: z⁰ = x⁰ of whoever answered
        for h, x in self._fresh.items():
            z0[self.index[h]] = x
        return z0

    def grid_step(self) -> np.ndarray:
        """The DSO's local step of the open round (once per round; round 0 needs the answers).

        Raises:
            ProtocolStateError: no open round.
        """
        if not self._open:
            raise ProtocolStateError("no round is open")
        if self.p is None:
            self.p = self.grid.solve(self.mu, self._z_now())
        return self.p

    def close_round(self) -> RoundOutcome:
        """Submit every vector to the aggregator step, update the duals, test convergence.

        Raises:
            ProtocolStateError: no open round.
        """
        if not self._open:
            raise ProtocolStateError("no round is open")
        assert self.aggregator is not None
        p = self.grid_step()
        z_prev = self._z_now()
        stale = tuple(h for h in self.ids if h not in self._fresh and h in self.x)
        xs = {**{h: self.x[h] for h in stale}, **self._fresh}  # stale first, then the answers
        sub = np.array([self.index[h] for h in xs], dtype=int)
        x_rows = (np.array(list(xs.values()), dtype=float) if xs
                  else np.zeros((0, self.periods)))
        a = self.spec.alpha
        xh = _round_kw(a * x_rows + (1 - a) * z_prev[sub])  # row j: household sub[j]
        ph = _round_kw(a * p + (1 - a) * z_prev)
        agg = self.aggregator
        agg.open_round(self.round, 3600.0)
        rows = xh.tolist()
        for j in np.argsort(sub, kind="stable").tolist():  # in node order
            agg.submit(int(sub[j]), rows[j])
        agg.submit(self.n, ph.reshape(-1).tolist())
        res = agg.close_round(self.rho)
        z = fixed_kw(np.asarray(res.z, dtype=float)).reshape(self.n, self.periods)
        self.lam[sub] += self.rho * (xh - z[sub])
        self.mu += self.rho * (ph - z)
        self.x.update(self._fresh)
        n_copies = self.n * self.periods + len(xs) * self.periods
        x_norm = math.sqrt(float(np.sum(ph**2)) + sum(np.sum(xh**2, axis=1).tolist()))
        z_norm = math.sqrt(float(np.sum(z**2)) + float(np.sum(z[sub] ** 2)))
        y_norm = math.sqrt(float(np.sum(self.mu**2)) + float(np.sum(self.lam[sub] ** 2)))
        sq_p = math.sqrt(n_copies) * self.spec.eps_abs_kw
        eps_pri = sq_p + self.spec.eps_rel * max(x_norm, z_norm)
        eps_dual = sq_p + self.spec.eps_rel * y_norm / self.rho
        primal = float(res.primal_residual)
        dual = float(res.dual_residual) / self.rho
        count = np.ones(self.n)  # copies per household's globals
        count[sub] += 1.0
        if self.round == 0 or self._accel is not None:
            # the aggregator's z_prev is 0 before round 0 (ours is x⁰) and its own average
            # under acceleration (ours is the extrapolated z sent with the round)
            dual = math.sqrt(float(np.sum(count[:, None] * (z - z_prev) ** 2)))
        gap = float(np.max(np.abs(x_rows - p[sub]))) if xs else 0.0
        self.converged = primal <= eps_pri and dual <= eps_dual
        out = RoundOutcome(self.round, round(primal, 6), round(dual, 6), round(eps_pri, 6),
                           round(eps_dual, 6), round(gap, 6), self.converged, len(self._fresh),
                           stale, round(self.grid.peak_import_kw(), 6),
                           int(getattr(res, "gas_used", 0)))
        self.z = z
        if self._accel is not None and not self.converged:
            self._accelerate(z_prev, z, count)
        self._open = False
        self.history.append(out)
        log.info("ADMM round %d: r %.4f kW (eps %.4f), s %.4f kW (eps %.4f), %d answers%s",
                 out.round, primal, eps_pri, dual, eps_dual, out.answers,
                 f", {len(stale)} stale" if stale else "")
        return out

    def _accelerate(self, z_sent: np.ndarray, z: np.ndarray, count: np.ndarray) -> None:
        """Anderson step (:class:`grid.admm.anderson.Anderson`) on the DSO's state.

        A round maps the state ``(z, λ/ρ, μ/ρ)`` it was sent with to the one the aggregator
        step and the dual updates produce; the extrapolated state is what the next round sends
        (targets on the contract's grid). The aggregator's averages are not touched. Its norm
        weighs each ``z`` by its number of copies, as the plain iteration's.
        """
        assert self._accel is not None
        rho = self.rho
        state = np.concatenate([z_sent.ravel(), self._lam_sent.ravel() / rho,
                                self._mu_sent.ravel() / rho])
        image = np.concatenate([z.ravel(), self.lam.ravel() / rho, self.mu.ravel() / rho])
        weights = np.concatenate([np.repeat(count, self.periods), np.ones(2 * z.size)])
        self._accel.w = np.sqrt(weights)
        nxt, self._proposed = self._accel.step(state, image, self._proposed)
        if nxt is image:
            return  # the plain iterate
        size = z.size
        self.z = fixed_kw(nxt[:size].reshape(z.shape))
        self.lam = nxt[size:2 * size].reshape(z.shape) * rho
        self.mu = nxt[2 * size:].reshape(z.shape) * rho

    def plans_import_kw(self) -> dict[str, np.ndarray]:
        """The households' last answers (their plans)."""
        return dict(self.x)


def check_round_rho(brain: HouseholdBrain, request: RoundRequest) -> None:
    """Refuse a round whose ρ is not the household's proximal weight.

    Raises:
        ProtocolStateError: naming the field, the round's ρ and the household's weight.
    """
    if not math.isclose(request.rho_eur_per_kw2, brain.prox, rel_tol=1e-9):
        raise ProtocolStateError(f"field 'rho_eur_per_kw2': the round assumes "
                                 f"{request.rho_eur_per_kw2}, household {brain.spec.id} plans "
                                 f"with a proximal weight of {brain.prox}")


def answer_round(brain: HouseholdBrain, request: RoundRequest) -> list[float]:
    """A household's step of a round: its plan's net import per slot.

    Round 0 (no target) is its own optimum; later rounds ``argmin f + λ·x + (ρ/2)‖x − z‖²``.

    Raises:
        ProtocolStateError: the round's ρ is not the household's proximal weight.
        PlanError: the plan is not solved.
    """
    check_round_rho(brain, request)
    if request.target_import_kw is None:
        plan = brain.make_plan(request.lam_eur_per_kwh)
    else:
        plan = brain.make_plan(request.lam_eur_per_kwh,
                               target_import_kw=request.target_import_kw)
    return [-x for x in plan.net_export_kw]


def run_rounds(admm: ConsensusAdmm,
               answer: Callable[[str, RoundRequest], Sequence[float] | None] | None = None,
               *, answer_all: Callable[[Mapping[str, RoundRequest]],
                                       Mapping[str, Sequence[float]]] | None = None) -> int:
    """Run the rounds synchronously (in-process runtimes and tests); returns the rounds run.

    Give exactly one of ``answer(household, request)``, which returns the household's net
    import or ``None`` when it does not answer, and ``answer_all(requests)``, which returns the
    net imports of the households that answer, by id (a runtime that answers a round at once).

    Raises:
        ValueError: neither or both of ``answer`` and ``answer_all``.
    """
    if (answer is None) == (answer_all is None):
        raise ValueError("run_rounds takes exactly one of answer and answer_all")
    while not admm.done:
        requests = admm.open_round()
        if answer_all is not None:
            answers = answer_all(requests)
        else:
            assert answer is not None
            answers = {h: x for h in admm.ids if (x := answer(h, requests[h])) is not None}
        for h in admm.ids:
            if h in answers:
                admm.submit(h, requests[h].round, answers[h])
        admm.close_round()
    return admm.round + 1


@dataclass(frozen=True, slots=True)
class CentralResult:
    """The same problem solved in one piece (the reference of the ADMM rounds).

    Attributes:
        objective_eur: ``Σ_h f_h(x_h) + g(p)`` at the optimum.
        import_kw: each household's net import per slot, ``(n, T)``.
        peak_import_kw: largest substation import.
    """

    objective_eur: float
    import_kw: np.ndarray
    peak_import_kw: float


def household_cost_eur(brain: HouseholdBrain) -> float:
    """``f_h`` at the household's last plan: retail energy cost plus battery degradation.

    (An optimal plan never charges and discharges, nor imports and exports, in one slot.)
    """
    plan = brain.plan
    if plan is None:
        raise ProtocolStateError(f"household {brain.spec.id} has no plan")
    bat = brain.spec.battery
    wear = bat.degradation_eur_per_kwh * float(np.abs(plan.battery_kw).sum()) if bat else 0.0
    return plan.cost_eur + wear


def central_solve(brains: Sequence[HouseholdBrain], grid: GridCopy) -> CentralResult:
    """Solve ``min Σ f_h(x_h) + g(p)`` with ``x_h = p_h`` as one problem.

    Each household's part is its plan problem as ``mas.brains.hems.reference_problem`` states
    it (zero coordination price, its forecasts); the households' plans are not touched.

    Raises:
        PlanError: the solver does not reach an optimum.
    """
    cost = grid.cost_eur
    cons = list(grid.constraints)
    xs: list[cp.Expression] = []
    for b in brains:
        s = b.spec
        inputs = replace(b.plan_inputs(), lam_eur_per_kwh=np.zeros(grid.periods))
        own, imp, exp = reference_problem(s.pv, s.battery, s.ev, inputs)
        cost = cost + own.objective.args[0]
        cons += own.constraints
        xs.append(imp - exp)
    for r in range(len(grid.bus_rows)):
        rows = np.flatnonzero(grid.row_of == r)
        cons.append(sum((xs[k] for k in rows), cp.Constant(np.zeros(grid.periods)))
                    == grid.P[r])
    problem = cp.Problem(cp.Minimize(cost), cons)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # status checked below
        problem.solve(solver="CLARABEL", ignore_dpp=True)  # solved once: no DPP compilation
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        raise PlanError(f"central solve ended with status {problem.status}", str(problem.status))
    x = np.array([np.asarray(e.value, dtype=float) for e in xs])
    return CentralResult(float(problem.value), _round_kw(x), grid.peak_import_kw())


def admm_objective_eur(brains: Sequence[HouseholdBrain], admm: ConsensusAdmm) -> float:
    """``Σ f_h(x_h) + g(p)`` at the households' last plans and the DSO's last copy."""
    total = sum(household_cost_eur(b) for b in brains)
    return total + float(np.asarray(admm.grid.cost_eur.value))
