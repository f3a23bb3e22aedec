"""Consensus ADMM over generic nodes, with the aggregator step behind :class:`Aggregator`.

A *node* owns private variables and constraints and exposes a coupling expression
``x̃ᵢ`` of shape ``(m_i, T)``; row ``j`` is a copy of the global variable ``keys[j]`` in every
period. The engine runs the scaled form of consensus ADMM (Boyd et al. 2011, §7.2; Münsing et al.
2017, eqs. (15)–(19); B-DER eqs. (16a)–(16c))::

    x̃ᵢ ← argmin fᵢ(xᵢ) + ρ/2·‖x̃ᵢ − z̃ᵢ + uᵢ‖²        (local, private)
    x̂ᵢ = α·x̃ᵢ + (1 − α)·z̃ᵢ                           (over-relaxation; α = 1 is plain ADMM)
    z_g ← mean of the submitted copies x̂ of g            (aggregator step)
    uᵢ ← uᵢ + x̂ᵢ − z̃ᵢ                                   (dual update; yᵢ = ρ·uᵢ)

Each node's subproblem is built **once** as a DPP-compliant cvxpy problem: the proximal term is
expanded to ``ρ/2·‖x̃‖² + ⟨ρ(u − z̃), x̃⟩`` with ``ρ`` and the linear coefficient as parameters.
The **batched** path solves all nodes' subproblems as one block-separable cvxpy problem per
round (one canonicalisation, one solver call); the **per-node** path solves them one by one. The
two give the same iterates up to the solver tolerance (a test checks it).

Stopping (Boyd et al. §3.3.1): ``‖r‖₂ ≤ √p·ε_abs + ε_rel·max(‖x̂‖₂, ‖Bz‖₂)`` and
``‖s‖₂ ≤ √p·ε_abs + ε_rel·‖ρu‖₂`` with ``p`` the number of copies; optionally, for benchmarks
and tests, a target gap against a known optimum together with a consensus bound
``max|x̃ − z̃| ≤ consensus_tol``.

Residual balancing (Boyd et al. §3.4.1): ``ρ ← τρ`` when ``‖r‖ > μ‖s‖``, ``ρ ← ρ/τ`` when
``‖s‖ > μ‖r‖`` (the scaled duals are rescaled so that ``y = ρu`` is unchanged).

Faults: a node that misses a round's deadline (its local solve took longer than
``deadline_s``, or the caller's ``missed`` hook says so) raises :class:`NodeTimeoutError` naming
it, or — with ``on_missing="reuse"`` — its last submitted vector is submitted again and the run is
flagged (``AdmmRun.stale``). An aggregator that still reports a missing node always raises.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import cvxpy as cp
import numpy as np

from grid.admm.aggregator import Aggregator, ReferenceAggregator, RoundResult
from grid.errors import GridError, OpfError

log = logging.getLogger(__name__)


class NodeTimeoutError(GridError, TimeoutError):
    """A node did not deliver its local solution before the round's deadline.

    Attributes:
        node: index of the node.
        node_name: its name.
        round_index: the round it missed.
    """

    def __init__(self, node: int, node_name: str, round_index: int) -> None:
        super().__init__(f"ADMM node {node} ({node_name!r}) missed the deadline of round "
                         f"{round_index}")
        self.node = node
        self.node_name = node_name
        self.round_index = round_index


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """One participant's local subproblem.

    Attributes:
        name: a readable name (e.g. ``"bus 7"``).
        coupling: affine cvxpy expression of shape ``(m, T)`` (or ``(m,)`` for ``T = 1``): the
            local copies of the global variables named by ``keys``. Must be parameter-free.
        keys: one hashable global-variable key per row of ``coupling``.
        objective: the node's own cost in EUR (convex, DPP).
        constraints: the node's constraints.
        init: initial guess of each coupling row (used for the first ``z̃``), shape ``(m,)``.
    """

    name: str
    coupling: cp.Expression
    keys: tuple[Hashable, ...]
    objective: cp.Expression
    constraints: list[cp.Constraint]
    init: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class AdmmOptions:
    """Algorithm settings.

    Attributes:
        rho: initial penalty ρ (on the problem scaled by ``cost_scale_eur``).
        alpha: over-relaxation α in (0, 2); 1 is plain ADMM.
        residual_balancing: adapt ρ by residual balancing.
        balance_mu: μ of residual balancing.
        balance_tau: τ of residual balancing.
        balance_every: apply residual balancing at most every this many rounds.
        eps_abs: absolute tolerance ε_abs of Boyd §3.3.1.
        eps_rel: relative tolerance ε_rel.
        max_iter: round limit.
        batched: solve all nodes in one solver call per round (in-process simulation).
        cost_scale_eur: local objectives are divided by this (duals become O(1)).
        target_gap: with a reference objective given to :meth:`AdmmEngine.run`, stop as soon as
            the relative gap is at most this and the consensus bound holds (the Boyd test is
            then not required).
        consensus_tol: bound on ``max|x̃ − z̃|`` that goes with ``target_gap``.
        deadline_s: a node's local solve slower than this misses the round.
        on_missing: ``"raise"`` (:class:`NodeTimeoutError`) or ``"reuse"`` (last value, flagged).
        solver: cvxpy solver name.
        solver_options: solver keyword options.
    """

    rho: float = 1.0
    alpha: float = 1.0
    residual_balancing: bool = False
    balance_mu: float = 10.0
    balance_tau: float = 2.0
    balance_every: int = 1
    eps_abs: float = 1e-5
    eps_rel: float = 1e-4
    max_iter: int = 2000
    batched: bool = True
    cost_scale_eur: float = 1.0
    target_gap: float | None = None
    consensus_tol: float = 1e-3
    deadline_s: float = math.inf
    on_missing: Literal["raise", "reuse"] = "raise"
    solver: str = "CLARABEL"
    solver_options: tuple[tuple[str, object], ...] = (
        ("tol_gap_abs", 1e-9), ("tol_gap_rel", 1e-9), ("tol_feas", 1e-9))

    def __post_init__(self) -> None:
        if not (self.rho > 0 and math.isfinite(self.rho)):
            raise ValueError(f"rho must be finite and > 0, got {self.rho!r}")
        if not 0 < self.alpha < 2:
            raise ValueError(f"alpha must be in (0, 2), got {self.alpha!r}")
        if self.on_missing not in ("raise", "reuse"):
            raise ValueError(f"on_missing must be 'raise' or 'reuse', got {self.on_missing!r}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter}")


@dataclass(frozen=True, slots=True, eq=False)
class AdmmRun:
    """The outcome of an ADMM run.

    Attributes:
        converged: the stopping rule was met within ``max_iter`` rounds.
        iterations: rounds run.
        objective_eur: Σ of the nodes' own costs at the last local solutions.
        primal_residual: ``‖r‖₂`` of the last round (aggregator's value).
        dual_residual: ``‖s‖₂`` of the last round.
        consensus_inf: ``max|x̃ − z̃|`` of the last round (un-relaxed local values).
        rho: final ρ.
        z: final global variables, shape ``(n_global,)``.
        keys: the global variables' keys, one per ``T`` entries of ``z`` (``z`` is laid out
            key-major: ``z[g·T + t]``).
        x: each node's last local coupling values, shape ``(m_i, T)``.
        y: each node's duals ``ρ·u`` (per unit of scaled cost), shape ``(m_i, T)``.
        history: per round ``primal``, ``dual``, ``rho``, ``objective_eur``,
            ``consensus_inf`` arrays.
        stale: ``(round, node)`` pairs in which a node's last value was reused.
        wall_time_s: wall time of the run (set-up excluded).
        solve_time_s: time spent in local solves.
    """

    converged: bool
    iterations: int
    objective_eur: float
    primal_residual: float
    dual_residual: float
    consensus_inf: float
    rho: float
    z: np.ndarray
    keys: tuple[Hashable, ...]
    x: tuple[np.ndarray, ...]
    y: tuple[np.ndarray, ...]
    history: dict[str, np.ndarray] = field(default_factory=dict)
    stale: tuple[tuple[int, int], ...] = ()
    wall_time_s: float = 0.0
    solve_time_s: float = 0.0

    @property
    def flagged(self) -> bool:
        """Whether any node's value was reused after a missed deadline."""
        return bool(self.stale)


def _as_2d(expr: cp.Expression) -> cp.Expression:
    return cp.reshape(expr, (expr.shape[0], 1), order="F") if len(expr.shape) == 1 else expr


class AdmmEngine:
    """Consensus ADMM over a fixed set of nodes; build once, run many times.

    Args:
        nodes: the participants.
        options: algorithm settings.

    Raises:
        ValueError: coupling shapes or keys that do not fit.
    """

    def __init__(self, nodes: Sequence[Node], options: AdmmOptions | None = None) -> None:
        self.nodes = tuple(nodes)
        self.options = options or AdmmOptions()
        if not self.nodes:
            raise ValueError("ADMM needs at least one node")
        couplings = [_as_2d(n.coupling) for n in self.nodes]
        periods = {c.shape[1] for c in couplings}
        if len(periods) != 1:
            raise ValueError(f"all couplings must have the same number of periods, got "
                             f"{sorted(periods)}")
        self.periods = periods.pop()
        key_index: dict[Hashable, int] = {}
        for n, c in zip(self.nodes, couplings, strict=True):
            if c.shape[0] != len(n.keys):
                raise ValueError(f"node {n.name!r}: {c.shape[0]} coupling rows but "
                                 f"{len(n.keys)} keys")
            if len(set(n.keys)) != len(n.keys):
                raise ValueError(f"node {n.name!r} holds a global variable twice")
            for k in n.keys:
                key_index.setdefault(k, len(key_index))
        self.keys = tuple(key_index)
        T = self.periods
        self._rows = [np.array([key_index[k] for k in n.keys], dtype=np.int64)
                      for n in self.nodes]
        # copies of node i, flattened row-major over (row, t): global index g·T + t
        self.copies = [(r[:, None] * T + np.arange(T)[None, :]).reshape(-1) for r in self._rows]
        self.n_global = len(self.keys) * T
        self._rho = cp.Parameter(nonneg=True, name="admm_rho", value=self.options.rho)
        self._lin = [cp.Parameter(c.shape, name=f"admm_lin_{k}") for k, c in
                     enumerate(couplings)]
        scale = 1.0 / self.options.cost_scale_eur
        self._couplings = couplings
        objs = [scale * n.objective + self._rho / 2 * cp.sum_squares(c)
                + cp.sum(cp.multiply(lin, c))
                for n, c, lin in zip(self.nodes, couplings, self._lin, strict=True)]
        self._problems = [cp.Problem(cp.Minimize(o), n.constraints)
                          for o, n in zip(objs, self.nodes, strict=True)]
        self._batched = cp.Problem(cp.Minimize(sum(objs, cp.Constant(0.0))),
                                   [c for n in self.nodes for c in n.constraints])

    # -----------------------------------------------------------------------------------------
    def compile(self, batched: bool | None = None) -> float:
        """Canonicalise the subproblems now (else the first round does it); returns seconds."""
        t0 = time.perf_counter()
        use = self.options.batched if batched is None else batched
        for p in [self._batched] if use else self._problems:
            p.get_problem_data(self.options.solver)
        return time.perf_counter() - t0

    def is_dpp(self) -> bool:
        """Whether every subproblem (and the batched one) is DPP."""
        return self._batched.is_dpp() and all(p.is_dpp() for p in self._problems)

    def _solve(self, problem: cp.Problem, what: str) -> None:
        opts = dict(self.options.solver_options)
        try:
            with warnings.catch_warnings():
                # cvxpy warns on "optimal_inaccurate"; the status is checked and logged below
                warnings.simplefilter("ignore", UserWarning)
                problem.solve(solver=self.options.solver, **opts)
        except cp.error.SolverError as exc:
            raise OpfError(f"ADMM local solve of {what} failed: {exc}", "solver_error") from exc
        if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            raise OpfError(f"ADMM local solve of {what} ended with status {problem.status}",
                           problem.status)
        if problem.status == cp.OPTIMAL_INACCURATE:
            log.debug("ADMM local solve of %s: optimal_inaccurate", what)

    def _local_solves(self, batched: bool) -> tuple[list[np.ndarray], list[float]]:
        """Solve the x-updates; returns each node's coupling values and solve times."""
        if batched:
            t0 = time.perf_counter()
            self._solve(self._batched, "all nodes (batched)")
            dt = time.perf_counter() - t0
            return [np.asarray(c.value, dtype=float) for c in self._couplings], \
                [dt] * len(self.nodes)
        xs, times = [], []
        for n, p, c in zip(self.nodes, self._problems, self._couplings, strict=True):
            t0 = time.perf_counter()
            self._solve(p, f"node {n.name!r}")
            times.append(time.perf_counter() - t0)
            xs.append(np.asarray(c.value, dtype=float))
        return xs, times

    def objective_eur(self) -> float:
        """Σ of the nodes' own costs at the current local solutions."""
        return float(np.sum([np.asarray(n.objective.value, dtype=float) for n in self.nodes]))

    def run(self, aggregator: Aggregator | None = None, *,
            reference_objective_eur: float | None = None,
            missed: Callable[[int, int], bool] | None = None,
            batched: bool | None = None,
            on_round: Callable[[int, dict[str, float]], None] | None = None,
            init: Mapping[Hashable, np.ndarray] | None = None) -> AdmmRun:
        """Run ADMM from the nodes' initial guesses.

        Args:
            aggregator: the aggregator step (default: a fresh :class:`ReferenceAggregator`).
            reference_objective_eur: a known optimum; with ``options.target_gap`` it is a
                stopping rule, and the gap is logged either way.
            missed: ``missed(round, node)`` → whether the node misses the round's deadline
                (fault injection for simulations and tests).
            batched: override ``options.batched``.
            on_round: called after each round with its index and the round's statistics.
            init: starting values of global variables by key (scalar or ``(T,)``); overrides
                the nodes' ``init``.

        Raises:
            NodeTimeoutError: a node missed a deadline and ``on_missing`` is ``"raise"``, or the
                aggregator reports a missing node.
            OpfError: a local solve failed.
        """
        o = self.options
        agg = aggregator if aggregator is not None else ReferenceAggregator()
        use_batched = o.batched if batched is None else batched
        T = self.periods
        agg.setup(self.n_global, [c.tolist() for c in self.copies])
        z = np.zeros(self.n_global)
        for n, rows in zip(self.nodes, self._rows, strict=True):
            if n.init is not None:
                z[(rows[:, None] * T + np.arange(T)).reshape(-1)] = np.repeat(
                    np.asarray(n.init, dtype=float), T)
        if init:
            kidx = {key: g for g, key in enumerate(self.keys)}
            for key, val in init.items():
                if key in kidx:
                    g = kidx[key]
                    z[g * T:(g + 1) * T] = np.broadcast_to(np.asarray(val, dtype=float), (T,))
        u = [np.zeros(c.shape) for c in self._couplings]
        last = [z[c].reshape(-1, T) for c in self.copies]
        rho = o.rho
        hist: dict[str, list[float]] = {k: [] for k in
                                         ("primal", "dual", "rho", "objective_eur",
                                          "consensus_inf", "gap")}
        stale: list[tuple[int, int]] = []
        n_copies = sum(c.size for c in self.copies)
        t_start = time.perf_counter()
        solve_s = 0.0
        converged = False
        result: RoundResult | None = None
        xs: list[np.ndarray] = last
        cons_inf = math.inf
        k = -1
        for k in range(o.max_iter):
            zt = [z[c].reshape(-1, T) for c in self.copies]
            self._rho.value = rho
            for lin, ui, zi in zip(self._lin, u, zt, strict=True):
                lin.value = rho * (ui - zi)
            t0 = time.perf_counter()
            xs, times = self._local_solves(use_batched)
            solve_s += time.perf_counter() - t0
            agg.open_round(k, o.deadline_s if math.isfinite(o.deadline_s) else 1e9)
            xhat = [o.alpha * x + (1 - o.alpha) * zi for x, zi in zip(xs, zt, strict=True)]
            for i, (_xh, dt) in enumerate(zip(xhat, times, strict=True)):
                late = dt > o.deadline_s or (missed is not None and missed(k, i))
                if late:
                    if o.on_missing == "raise":
                        raise NodeTimeoutError(i, self.nodes[i].name, k)
                    log.warning("ADMM round %d: node %d (%s) missed the deadline; reusing its "
                                "last value", k, i, self.nodes[i].name)
                    stale.append((k, i))
                    xhat[i] = last[i]
                    xs[i] = last[i]
                agg.submit(i, xhat[i].reshape(-1).tolist())
            result = agg.close_round(rho)
            if result.missing:
                i = result.missing[0]
                raise NodeTimeoutError(i, self.nodes[i].name, k)
            z = np.asarray(result.z, dtype=float)
            last = xhat
            zt_new = [z[c].reshape(-1, T) for c in self.copies]
            for i in range(len(u)):
                u[i] = u[i] + xhat[i] - zt_new[i]
            cons_inf = max(float(np.max(np.abs(x - zi))) if x.size else 0.0
                           for x, zi in zip(xs, zt_new, strict=True))
            obj = self.objective_eur()
            gap = (abs(obj - reference_objective_eur) / abs(reference_objective_eur)
                   if reference_objective_eur else math.nan)
            stats = {"primal": result.primal_residual, "dual": result.dual_residual,
                     "rho": rho, "objective_eur": obj, "consensus_inf": cons_inf, "gap": gap}
            for key, stat in stats.items():
                hist[key].append(float(stat))
            if on_round is not None:
                on_round(k, {key: v[-1] for key, v in hist.items()})
            x_norm = math.sqrt(sum(float(np.sum(x**2)) for x in xhat))
            z_norm = math.sqrt(sum(float(np.sum(zi**2)) for zi in zt_new))
            y_norm = rho * math.sqrt(sum(float(np.sum(ui**2)) for ui in u))
            eps_pri = math.sqrt(n_copies) * o.eps_abs + o.eps_rel * max(x_norm, z_norm)
            eps_dual = math.sqrt(n_copies) * o.eps_abs + o.eps_rel * y_norm
            if o.target_gap is not None and reference_objective_eur is not None:
                done = gap <= o.target_gap and cons_inf <= o.consensus_tol
            else:
                done = result.primal_residual <= eps_pri and result.dual_residual <= eps_dual
            if done:
                converged = True
                break
            if o.residual_balancing and (k + 1) % o.balance_every == 0:
                r, s = result.primal_residual, result.dual_residual
                if r > o.balance_mu * s:
                    rho *= o.balance_tau
                    u = [ui / o.balance_tau for ui in u]
                elif s > o.balance_mu * r:
                    rho /= o.balance_tau
                    u = [ui * o.balance_tau for ui in u]
        wall = time.perf_counter() - t_start
        assert result is not None  # max_iter >= 1
        log.info("ADMM: %s after %d rounds, objective %.6g EUR, r %.3g, s %.3g, consensus %.3g",
                 "converged" if converged else "stopped", k + 1, hist["objective_eur"][-1],
                 result.primal_residual, result.dual_residual, cons_inf)
        return AdmmRun(
            converged=converged, iterations=k + 1, objective_eur=hist["objective_eur"][-1],
            primal_residual=result.primal_residual, dual_residual=result.dual_residual,
            consensus_inf=cons_inf, rho=rho, z=z, keys=self.keys, x=tuple(xs),
            y=tuple(rho * ui for ui in u),
            history={key: np.asarray(v) for key, v in hist.items()}, stale=tuple(stale),
            wall_time_s=wall, solve_time_s=solve_s)
