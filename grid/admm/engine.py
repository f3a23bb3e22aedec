"""Consensus ADMM over generic nodes, with the aggregator step behind :class:`Aggregator`.

A *node* owns private variables and constraints and exposes a coupling expression
``x̃ᵢ`` of shape ``(m_i, T)``; row ``j`` is a copy of the global variable ``keys[j]`` in every
period. The engine runs the scaled form of consensus ADMM (Boyd et al. 2011, §7.2; Münsing et al.
2017, eqs. (15)–(19); B-DER eqs. (16a)–(16c))::

    x̃ᵢ ← argmin fᵢ(xᵢ) + ρ/2·‖x̃ᵢ − z̃ᵢ + uᵢ‖²        (local, private)
    x̂ᵢ = α·x̃ᵢ + (1 − α)·z̃ᵢ                           (over-relaxation; α = 1 is plain ADMM)
    z_g ← mean of the submitted copies x̂ of g            (aggregator step)
    uᵢ ← uᵢ + x̂ᵢ − z̃ᵢ                                   (dual update; yᵢ = ρ·uᵢ)

Each node's subproblem is built **once** as a DPP-compliant cvxpy problem
(:class:`grid.admm.local.LocalProblem`): the proximal term is expanded to
``ρ/2·‖x̃‖² + ⟨ρ(u − z̃), x̃⟩`` with ``ρ`` and the linear coefficient as parameters. cvxpy maps
the node's data to conic form once per run; between rounds only Clarabel's ``q`` (and ``P`` when
ρ changes) is updated and Clarabel is called directly.

**Per-node and batched paths.** The per-node path updates and solves the nodes one by one. The
batched path (in-process simulation) forms every node's ``q`` in one vectorised update and then
solves each node with its own solver; the arithmetic is the same, so the iterates are identical
to the per-node path, bit for bit (a test checks it).

Stopping (Boyd et al. §3.3.1): ``‖r‖₂ ≤ √p·ε_abs + ε_rel·max(‖x̂‖₂, ‖Bz‖₂)`` and
``‖s‖₂ ≤ √p·ε_abs + ε_rel·‖ρu‖₂`` with ``p`` the number of copies; optionally, for benchmarks
and tests, a target gap against a known optimum together with a consensus bound
``max|x̃ − z̃| ≤ consensus_tol``.

Residual balancing (Boyd et al. §3.4.1): ``ρ ← τρ`` when ``‖r‖ > μ‖s‖``, ``ρ ← ρ/τ`` when
``‖s‖ > μ‖r‖`` (the scaled duals are rescaled so that ``y = ρu`` is unchanged).

Anderson acceleration (:mod:`grid.admm.anderson`, optional): type-II extrapolation of the state
``(z̃, u)`` over the last ``anderson`` rounds, safeguarded by the fixed-point residual in the
norm ``‖B z̃‖² + ‖u‖²``. The aggregator's averages stay as they are; the extrapolated ``z̃`` is
what the nodes use in the next round, and the dual residual is then ``ρ‖B(z⁺ − z̃)‖`` computed by
the engine (the aggregator's ``z_prev`` is its own average).

Faults: a node that misses a round's deadline (its local solve took longer than
``deadline_s``, or the caller's ``missed`` hook says so) raises :class:`NodeTimeoutError` naming
it, or — with ``on_missing="reuse"`` — its last submitted vector is submitted again and the run is
flagged (``AdmmRun.stale``). An aggregator that still reports a missing node always raises.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import cvxpy as cp
import numpy as np

from grid.admm.aggregator import Aggregator, ReferenceAggregator, RoundResult
from grid.admm.anderson import Anderson
from grid.admm.local import LocalProblem, LocalSolution
from grid.errors import GridError

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
        batched: form all nodes' local data in one vectorised update per round (in-process
            simulation); the iterates are identical to the per-node path.
        cost_scale_eur: local objectives are divided by this (duals become O(1)).
        target_gap: with a reference objective given to :meth:`AdmmEngine.run`, stop as soon as
            the relative gap is at most this and the consensus bound holds (the Boyd test is
            then not required).
        consensus_tol: bound on ``max|x̃ − z̃|`` that goes with ``target_gap``.
        deadline_s: a node's local solve slower than this misses the round.
        on_missing: ``"raise"`` (:class:`NodeTimeoutError`) or ``"reuse"`` (last value, flagged).
        solver: cvxpy solver name (``"CLARABEL"`` is driven directly, others through cvxpy).
        solver_options: solver keyword options (default: Clarabel at 1e-9 without iterative
            refinement; a local solve that fails without it is repeated with it).
        anderson: memory of Anderson acceleration (0: off).
        anderson_regularization: its relative Tikhonov weight.
        anderson_safeguard: accept an Anderson step only if the fixed-point residual is at most
            this times the last accepted one.
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
        ("tol_gap_abs", 1e-9), ("tol_gap_rel", 1e-9), ("tol_feas", 1e-9),
        ("iterative_refinement_enable", False))
    anderson: int = 0
    anderson_regularization: float = 1e-8
    anderson_safeguard: float = 1.0

    def __post_init__(self) -> None:
        if not (self.rho > 0 and math.isfinite(self.rho)):
            raise ValueError(f"rho must be finite and > 0, got {self.rho!r}")
        if not 0 < self.alpha < 2:
            raise ValueError(f"alpha must be in (0, 2), got {self.alpha!r}")
        if self.on_missing not in ("raise", "reuse"):
            raise ValueError(f"on_missing must be 'raise' or 'reuse', got {self.on_missing!r}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter}")
        if self.anderson < 0:
            raise ValueError(f"anderson must be >= 0, got {self.anderson}")
        if not self.anderson_regularization >= 0:
            raise ValueError(f"anderson_regularization must be >= 0, got "
                             f"{self.anderson_regularization!r}")
        if not self.anderson_safeguard > 0:
            raise ValueError(f"anderson_safeguard must be > 0, got {self.anderson_safeguard!r}")


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
            ``consensus_inf``, ``gap`` arrays.
        stale: ``(round, node)`` pairs in which a node's last value was reused.
        wall_time_s: wall time of the run (compile excluded; loading the run's data into the
            local solvers included).
        solve_time_s: time spent in local solves.
        anderson_accepted: Anderson steps accepted.
        anderson_rejected: Anderson steps rejected by the safeguard.
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
    anderson_accepted: int = 0
    anderson_rejected: int = 0

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
        self._all_copies = (np.concatenate(self.copies) if self.copies
                            else np.zeros(0, dtype=np.int64))
        self._off = np.concatenate([[0], np.cumsum([c.size for c in self.copies])])
        self._count = np.bincount(self._all_copies, minlength=self.n_global).astype(float)
        opts = dict(self.options.solver_options)
        self._local = [LocalProblem(n.name, c, n.objective, n.constraints,
                                    self.options.cost_scale_eur, self.options.solver, opts)
                       for n, c in zip(self.nodes, couplings, strict=True)]
        self._q0 = np.zeros(0)
        self._q_off = np.zeros(1, dtype=np.int64)
        self._q_cols: np.ndarray | None = None

    # -----------------------------------------------------------------------------------------
    def compile(self, batched: bool | None = None) -> float:
        """Canonicalise the subproblems now (else the first run does it); returns seconds.

        ``batched`` is accepted for compatibility; both paths share the compiled problems.
        """
        del batched
        t0 = time.perf_counter()
        for lp in self._local:
            lp.compile()
        return time.perf_counter() - t0

    def is_dpp(self) -> bool:
        """Whether every local subproblem is DPP."""
        return all(lp.is_dpp() for lp in self._local)

    def objective_eur(self) -> float:
        """Σ of the nodes' own costs at the values cvxpy holds (after a run)."""
        return float(np.sum([np.asarray(n.objective.value, dtype=float) for n in self.nodes]))

    def _local_solves(self, lin: np.ndarray, batched: bool) -> list[LocalSolution]:
        """The x-updates for the linear terms ``lin`` (all copies, flattened)."""
        off = self._off
        if batched and self._q_cols is not None:
            q_all = self._q0.copy()
            q_all[self._q_cols] += lin
            qo = self._q_off
            return [lp.solve_q(q_all[qo[i]:qo[i + 1]]) for i, lp in enumerate(self._local)]
        return [lp.solve(lin[off[i]:off[i + 1]]) for i, lp in enumerate(self._local)]

    def _load(self, rho: float) -> None:
        """Read every node's data for this run; stack the ``q``s for the batched update."""
        for lp in self._local:
            lp.load(rho)
        if all(lp.direct for lp in self._local):
            sizes = [lp.q0.size for lp in self._local]
            self._q_off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            self._q0 = np.concatenate([lp.q0 for lp in self._local])
            self._q_cols = np.concatenate(
                [lp.cols + self._q_off[i] for i, lp in enumerate(self._local)])
        else:
            self._q_cols = None

    def run(self, aggregator: Aggregator | None = None, *,
            reference_objective_eur: float | None = None,
            missed: Callable[[int, int], bool] | None = None,
            batched: bool | None = None,
            on_round: Callable[[int, dict[str, float]], None] | None = None,
            init: Mapping[Hashable, np.ndarray] | None = None,
            init_y: Sequence[np.ndarray] | None = None) -> AdmmRun:
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
            init_y: starting duals ``y = ρu`` per node, shape ``(m_i, T)`` (per unit of scaled
                cost, as :attr:`AdmmRun.y`); their mean over the copies of each global variable
                is removed (the averaging z-update assumes it is zero).

        Raises:
            NodeTimeoutError: a node missed a deadline and ``on_missing`` is ``"raise"``, or the
                aggregator reports a missing node.
            OpfError: a local solve failed.
        """
        o = self.options
        agg = aggregator if aggregator is not None else ReferenceAggregator()
        use_batched = o.batched if batched is None else batched
        T = self.periods
        copies, off, count = self._all_copies, self._off, self._count
        n_nodes = len(self.nodes)
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
        rho = o.rho
        u = np.zeros(copies.size)
        if init_y is not None:
            y0 = np.concatenate([np.asarray(y, dtype=float).reshape(-1) for y in init_y])
            if y0.size != u.size:
                raise ValueError(f"init_y has {y0.size} entries, expected {u.size}")
            mean = np.bincount(copies, weights=y0, minlength=self.n_global) / count
            u = (y0 - mean[copies]) / rho
        t_start = time.perf_counter()
        self._load(rho)
        hist: dict[str, list[float]] = {k: [] for k in
                                         ("primal", "dual", "rho", "objective_eur",
                                          "consensus_inf", "gap")}
        stale: list[tuple[int, int]] = []
        n_copies = copies.size
        solve_s = 0.0
        converged = False
        result: RoundResult | None = None
        zt = z[copies]
        last = zt.copy()
        x = zt.copy()
        cons_inf = math.inf
        accel = (Anderson(o.anderson, o.anderson_regularization, o.anderson_safeguard,
                          weights=np.concatenate([count, np.ones(n_copies)]))
                 if o.anderson > 0 else None)
        proposed = False
        z_out, u_out, rho_out = z, u, rho
        k = -1
        for k in range(o.max_iter):
            zt = z[copies]
            sols = self._local_solves(rho * (u - zt), use_batched)
            solve_s += sum(s.seconds for s in sols)
            x = np.concatenate([s.x.reshape(-1) for s in sols]) if sols else x
            agg.open_round(k, o.deadline_s if math.isfinite(o.deadline_s) else 1e9)
            xhat = o.alpha * x + (1 - o.alpha) * zt
            for i in range(n_nodes):
                late = sols[i].seconds > o.deadline_s or (missed is not None and missed(k, i))
                sl = slice(off[i], off[i + 1])
                if late:
                    if o.on_missing == "raise":
                        raise NodeTimeoutError(i, self.nodes[i].name, k)
                    log.warning("ADMM round %d: node %d (%s) missed the deadline; reusing its "
                                "last value", k, i, self.nodes[i].name)
                    stale.append((k, i))
                    xhat[sl] = last[sl]
                    x[sl] = last[sl]
                agg.submit(i, xhat[sl].tolist())
            result = agg.close_round(rho)
            if result.missing:
                i = result.missing[0]
                raise NodeTimeoutError(i, self.nodes[i].name, k)
            z_new = np.asarray(result.z, dtype=float)
            last = xhat
            zc = z_new[copies]
            u_new = u + xhat - zc
            cons_inf = float(np.max(np.abs(x - zc))) if x.size else 0.0
            obj = float(sum(s.objective_eur for s in sols))
            gap = (abs(obj - reference_objective_eur) / abs(reference_objective_eur)
                   if reference_objective_eur else math.nan)
            dual = (result.dual_residual if accel is None
                    else rho * math.sqrt(float(np.sum(count * (z_new - z) ** 2))))
            stats = {"primal": result.primal_residual, "dual": dual,
                     "rho": rho, "objective_eur": obj, "consensus_inf": cons_inf, "gap": gap}
            for key, stat in stats.items():
                hist[key].append(float(stat))
            if on_round is not None:
                on_round(k, {key: v[-1] for key, v in hist.items()})
            x_norm = float(np.linalg.norm(xhat))
            z_norm = float(np.linalg.norm(zc))
            y_norm = rho * float(np.linalg.norm(u_new))
            eps_pri = math.sqrt(n_copies) * o.eps_abs + o.eps_rel * max(x_norm, z_norm)
            eps_dual = math.sqrt(n_copies) * o.eps_abs + o.eps_rel * y_norm
            if o.target_gap is not None and reference_objective_eur is not None:
                done = gap <= o.target_gap and cons_inf <= o.consensus_tol
            else:
                done = result.primal_residual <= eps_pri and dual <= eps_dual
            z_out, u_out, rho_out = z_new, u_new, rho
            if done:
                converged = True
                break
            if accel is not None:
                state = np.concatenate([z, u])
                nxt, proposed = accel.step(state, np.concatenate([z_new, u_new]), proposed)
                z, u = nxt[:self.n_global], nxt[self.n_global:]
            else:
                z, u = z_new, u_new
            if o.residual_balancing and (k + 1) % o.balance_every == 0:
                r, s = result.primal_residual, dual
                new_rho = rho
                if r > o.balance_mu * s:
                    new_rho = rho * o.balance_tau
                elif s > o.balance_mu * r:
                    new_rho = rho / o.balance_tau
                if new_rho != rho:
                    u = u * (rho / new_rho)
                    rho = new_rho
                    for lp in self._local:
                        lp.set_rho(rho)
                    if accel is not None:
                        accel.reset()
                        proposed = False
        for lp in self._local:
            lp.write_back()
        wall = time.perf_counter() - t_start
        assert result is not None  # max_iter >= 1
        log.info("ADMM: %s after %d rounds, objective %.6g EUR, r %.3g, s %.3g, consensus %.3g",
                 "converged" if converged else "stopped", k + 1, hist["objective_eur"][-1],
                 result.primal_residual, hist["dual"][-1], cons_inf)
        return AdmmRun(
            converged=converged, iterations=k + 1, objective_eur=hist["objective_eur"][-1],
            primal_residual=result.primal_residual, dual_residual=hist["dual"][-1],
            consensus_inf=cons_inf, rho=rho, z=z_out, keys=self.keys,
            x=tuple(x[off[i]:off[i + 1]].reshape(-1, T) for i in range(n_nodes)),
            y=tuple(rho_out * u_out[off[i]:off[i + 1]].reshape(-1, T) for i in range(n_nodes)),
            history={key: np.asarray(v) for key, v in hist.items()}, stale=tuple(stale),
            wall_time_s=wall, solve_time_s=solve_s,
            anderson_accepted=accel.accepted if accel is not None else 0,
            anderson_rejected=accel.rejected if accel is not None else 0)
