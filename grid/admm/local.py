"""One node's ADMM subproblem, built once in cvxpy and re-solved through Clarabel directly.

The local problem of node ``i`` is::

    minimise  fᵢ(x)/c + ρ/2·‖x̃‖² + ⟨l, x̃⟩   subject to the node's constraints and x̃ = coupling

with ``x̃`` a cvxpy variable of its own and ``ρ``, ``l = ρ(u − z̃)`` parameters (DPP). In the conic
form that cvxpy hands to Clarabel (``½xᵀPx + qᵀx`` subject to ``Ax + s = b``, ``s`` in cones)
``l`` enters only ``q``, at the columns of ``x̃``, and ``ρ`` only ``P``, so between rounds::

    q(l) = q₀ + scatter(l),        P(ρ) = P₀ + ρ·D

with ``q₀``, ``P₀`` the data at ``ρ = 0``, ``l = 0``. :meth:`LocalProblem.compile` finds the
columns of ``x̃`` and ``D`` once (by comparing the data at two parameter values);
:meth:`LocalProblem.load` asks cvxpy for ``q₀``, ``P₀``, ``A``, ``b`` once per run (the node's own
parameters — loads, prices — are fixed during a run) and sets up a fresh Clarabel solver; each
round then costs one ``q`` update and
one Clarabel solve (``P`` is updated only when ρ changes). At the end of a run
:meth:`LocalProblem.write_back` hands the last solution to cvxpy (``Problem.unpack_results``), so
variable values and constraint duals read as after ``problem.solve()``.

Any other solver name goes through ``problem.solve`` each round (slower, same problem).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any

import clarabel
import cvxpy as cp
import cvxpy.settings as cps
import numpy as np
import scipy.sparse as sp
from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import dims_to_solver_cones

from grid.errors import OpfError

log = logging.getLogger(__name__)

_CLARABEL_OK = ("Solved", "AlmostSolved")


@dataclass(frozen=True, slots=True)
class LocalSolution:
    """One local solve.

    Attributes:
        x: the coupling values ``x̃``, shape ``(m, T)``.
        objective_eur: the node's own cost ``fᵢ`` at the solution (EUR).
        seconds: wall time of the solve.
    """

    x: np.ndarray
    objective_eur: float
    seconds: float


class LocalProblem:
    """A node's proximal subproblem (see the module docstring).

    Args:
        name: the node's name (for messages).
        coupling: the node's coupling expression, shape ``(m, T)``.
        objective: the node's own cost in EUR.
        constraints: the node's constraints.
        cost_scale_eur: ``c``; the own cost enters as ``fᵢ/c``.
        solver: cvxpy solver name; ``"CLARABEL"`` is driven directly.
        solver_options: solver settings.
    """

    def __init__(self, name: str, coupling: cp.Expression, objective: cp.Expression,
                 constraints: list[cp.Constraint], cost_scale_eur: float, solver: str,
                 solver_options: dict[str, Any]) -> None:
        self.name = name
        self.shape: tuple[int, int] = (int(coupling.shape[0]), int(coupling.shape[1]))
        self.size = self.shape[0] * self.shape[1]
        self.cost_scale_eur = cost_scale_eur
        self.solver = solver
        self.solver_options = solver_options
        self.own_objective = objective
        self.rho = cp.Parameter(nonneg=True, name="admm_rho", value=1.0)
        cons = list(constraints)
        self.xc: cp.Variable | None = None
        self.lin: cp.Parameter | None = None
        obj: cp.Expression = objective / cost_scale_eur
        if self.size:
            self.xc = cp.Variable(self.shape, name="admm_x")
            self.lin = cp.Parameter(self.shape, name="admm_lin", value=np.zeros(self.shape))
            obj = (obj + self.rho / 2 * cp.sum_squares(self.xc)
                   + cp.sum(cp.multiply(self.lin, self.xc)))
            cons.append(self.xc == coupling)
        self.problem = cp.Problem(cp.Minimize(obj), cons)
        self.direct = solver.upper() == "CLARABEL"
        # structure (compile) and per-run data (load)
        self.cols = np.zeros(0, dtype=np.int64)
        self._D: sp.csc_array | None = None
        self._D_upper: sp.csc_matrix | None = None
        self._P0: Any = None
        self._P0_csr: sp.csr_matrix | None = None
        self.q0 = np.zeros(0)
        self._d0 = 0.0
        self._chain: Any = None
        self._inverse: Any = None
        self._solver: Any = None
        self._p_pattern: tuple[np.ndarray, ...] = (np.zeros(0), np.zeros(0))
        self._rho_loaded = -1.0
        self._last: Any = None
        self._refining = True

    # -----------------------------------------------------------------------------------------
    def is_dpp(self) -> bool:
        """Whether the cvxpy problem is DPP."""
        return bool(self.problem.is_dpp())

    def compile(self) -> None:
        """Canonicalise and locate ``x̃``'s columns and ρ's part of ``P`` (once)."""
        if self._D is not None or not self.direct:
            if not self.direct:
                self.problem.get_problem_data(self.solver)
            return
        unset = [p for p in self.problem.parameters() if p.value is None]
        for p in unset:  # structure does not depend on the values
            p.value = np.zeros(p.shape)
        try:
            d0, _, _ = self._data(0.0, None)
            if self.size:
                probe = np.arange(1.0, self.size + 1.0).reshape(self.shape)
                d1, _, _ = self._data(1.0, probe)
                dq = d1["c"] - d0["c"]
                nz = np.flatnonzero(dq)
                if nz.size != self.size or not np.array_equal(
                        np.sort(dq[nz]), np.arange(1.0, self.size + 1.0)):
                    raise OpfError(f"ADMM node {self.name!r}: the linear term does not map "
                                   f"one to one onto the conic variables", "invalid")
                cols = np.empty(self.size, dtype=np.int64)
                cols[dq[nz].astype(np.int64) - 1] = nz
                self.cols = cols
                self._D = sp.csc_array(_full_p(d1, dq.size) - _full_p(d0, dq.size))
            else:
                self._D = sp.csc_array((d0["c"].size, d0["c"].size))
        finally:
            for p in unset:
                p.value = None

    def _data(self, rho: float, lin: np.ndarray | None) -> tuple[dict[str, Any], Any, Any]:
        # (setting a cvxpy parameter validates it; skip when unchanged — most runs)
        if self.rho.value != rho:
            self.rho.value = rho
        if self.lin is not None and (lin is not None or np.any(self.lin.value)):
            self.lin.value = np.zeros(self.shape) if lin is None else lin
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            data, chain, inverse = self.problem.get_problem_data(self.solver)
        return data, chain, inverse

    def load(self, rho: float) -> None:
        """Read the node's current parameter values into the solver (once per run)."""
        if not self.direct:
            self.rho.value = rho
            return
        self.compile()
        data, self._chain, self._inverse = self._data(0.0, None)
        n = data["c"].size
        self._P0 = _full_p(data, n)
        self._P0_csr = sp.csr_matrix(self._P0) if self._P0.nnz else None
        self.q0 = np.asarray(data["c"], dtype=float)
        solver_inverse = self._inverse[-1]
        if getattr(solver_inverse, "solver_options", {}) is None:
            solver_inverse.solver_options = {}  # read by cvxpy's Clarabel interface on unpack
        self._d0 = float(solver_inverse[cps.OFFSET])
        P = self._p_upper(rho)
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        for key, val in self.solver_options.items():
            setattr(settings, key, val)
        # A fresh solver each run (about a millisecond): updating A and b of an existing one
        # re-scales them differently from a fresh set-up, and a run's iterates must depend on
        # its own data only (the batched and per-node paths are compared bit for bit).
        self._solver = clarabel.DefaultSolver(P, self.q0, sp.csc_matrix(data["A"]),
                                              np.asarray(data["b"], dtype=float),
                                              dims_to_solver_cones(data["dims"]), settings)
        self._p_pattern = (P.indptr.copy(), P.indices.copy())
        self._refining = bool(settings.iterative_refinement_enable)
        self._rho_loaded = rho

    def _p_upper(self, rho: float) -> sp.csc_matrix:
        """The upper triangle of ``P₀ + ρ·D`` (Clarabel's form)."""
        assert self._D is not None
        if self._P0_csr is None:  # no quadratic cost of its own: scale the compiled pattern
            if self._D_upper is None:
                self._D_upper = sp.csc_matrix(sp.triu(self._D, format="csc"))
                self._D_upper.sort_indices()
            P = self._D_upper.copy()
            P.data *= rho
            return P
        P = sp.triu(self._P0 + rho * self._D, format="csc")
        P.sort_indices()
        return sp.csc_matrix(P)

    def set_rho(self, rho: float) -> None:
        """Change ρ (updates ``P``; the symbolic factorisation is kept)."""
        if not self.direct:
            self.rho.value = rho
            return
        if rho != self._rho_loaded:
            P = self._p_upper(rho)
            if self._solver.is_data_update_allowed() and \
                    np.array_equal(P.indptr, self._p_pattern[0]) and \
                    np.array_equal(P.indices, self._p_pattern[1]):
                self._solver.update(P=P)
            else:
                self._rho_loaded = -1.0
                self.load(rho)
            self._rho_loaded = rho

    # -----------------------------------------------------------------------------------------
    def q_of(self, lin_flat: np.ndarray) -> np.ndarray:
        """``q₀ + scatter(l)`` for the linear term ``l`` flattened row-major."""
        q = self.q0.copy()
        q[self.cols] += lin_flat
        return q

    def solve(self, lin_flat: np.ndarray) -> LocalSolution:
        """Solve for the linear term ``l`` (flattened row-major)."""
        if not self.direct:
            return self._solve_cvxpy(lin_flat)
        return self.solve_q(self.q_of(lin_flat))

    def solve_q(self, q: np.ndarray) -> LocalSolution:
        """Solve with the conic objective vector ``q`` (from :meth:`q_of` or a batched update).

        Raises:
            OpfError: Clarabel did not solve the problem.
        """
        t0 = time.perf_counter()
        self._solver.update(q=q)
        sol = self._solver.solve()
        status = str(sol.status)
        if status not in _CLARABEL_OK and not self._refining:
            # without iterative refinement (the default: it costs about 40 % of a local solve
            # here and changes the solution by ~1e-9) a hard solve may stall; solve again with it
            log.info("ADMM local solve of %s: %s without iterative refinement; solving again "
                     "with it", self.name, status)
            settings = self._solver.get_settings()
            settings.iterative_refinement_enable = True
            self._solver.update(settings=settings)
            self._refining = True
            sol = self._solver.solve()
            status = str(sol.status)
        dt = time.perf_counter() - t0
        if status not in _CLARABEL_OK:
            raise OpfError(f"ADMM local solve of node {self.name!r} ended with status "
                           f"{status}", status)
        if status != "Solved":
            log.debug("ADMM local solve of %s: %s", self.name, status)
        self._last = sol
        x = np.asarray(sol.x, dtype=float)
        quad = 0.5 * float(x @ (self._P0_csr @ x)) if self._P0_csr is not None else 0.0
        own = (quad + float(self.q0 @ x) + self._d0) * self.cost_scale_eur
        return LocalSolution(x[self.cols].reshape(self.shape), own, dt)

    def _solve_cvxpy(self, lin_flat: np.ndarray) -> LocalSolution:
        if self.lin is not None:
            self.lin.value = lin_flat.reshape(self.shape)
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # cvxpy warns on "optimal_inaccurate"; the status is checked below
                warnings.simplefilter("ignore", UserWarning)
                self.problem.solve(solver=self.solver, **self.solver_options)
        except cp.error.SolverError as exc:
            raise OpfError(f"ADMM local solve of node {self.name!r} failed: {exc}",
                           "solver_error") from exc
        dt = time.perf_counter() - t0
        if self.problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            raise OpfError(f"ADMM local solve of node {self.name!r} ended with status "
                           f"{self.problem.status}", str(self.problem.status))
        x = (np.asarray(self.xc.value, dtype=float) if self.xc is not None
             else np.zeros(self.shape))
        return LocalSolution(x, float(np.asarray(self.own_objective.value, dtype=float)), dt)

    def write_back(self) -> None:
        """Give the last solution to cvxpy (variable values and constraint duals)."""
        if self.direct and self._last is not None:
            with warnings.catch_warnings():
                # cvxpy warns on "optimal_inaccurate"; solve_q checked and logged the status
                warnings.simplefilter("ignore", UserWarning)
                self.problem.unpack_results(self._last, self._chain, self._inverse)


def _full_p(data: dict[str, Any], n: int) -> sp.csc_array:
    """The symmetric ``P`` of cvxpy's conic data (zero when the objective is linear)."""
    P = data.get("P")
    if P is None:
        return sp.csc_array((n, n))
    return sp.csc_array(P)


__all__ = ["LocalProblem", "LocalSolution"]
