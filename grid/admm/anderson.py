"""Type-II Anderson acceleration of a fixed-point iteration, with a safeguard.

One ADMM round is a map ``s ↦ g(s)`` of the state ``s = (z̃, u)``; a solution is a fixed point.
Anderson acceleration (Walker & Ni 2011; for ADMM: Zhang, Peng, Hou & Deng 2019; Fu, Zhang &
Boyd 2020) keeps the last ``memory`` states and residuals ``f = g(s) − s`` and proposes::

    γ = argmin ‖f_k − ΔF γ‖² + λ‖ΔF‖²_F ‖γ‖²        s_{k+1} = g(s_k) − ΔG γ

with ``ΔF``, ``ΔG`` the differences of successive residuals and map values (type II). ``λ`` is a
Tikhonov term relative to the scale of ``ΔF`` (it keeps the small least-squares problem
well-posed when the differences become nearly collinear near convergence).

**Safeguard.** The plain iteration is nonexpansive in the norm the caller chooses (for consensus
ADMM ``‖B z̃‖² + ‖u‖²``, i.e. each global variable weighted by its number of copies), the
extrapolated one is not. A proposal is accepted only if the residual it produces is at most
``safeguard`` times the last accepted residual; otherwise the caller restarts from the plain
iterate ``g(s_k)`` and the memory is cleared. A rejected proposal costs one round.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class Anderson:
    """Type-II Anderson acceleration with memory, Tikhonov regularisation and a safeguard.

    Args:
        memory: number of past differences kept (``m``).
        regularization: relative Tikhonov weight ``λ``.
        safeguard: accept a proposal only if ``‖f‖`` is at most this times the last accepted
            ``‖f‖``.
        weights: per-entry weights of the norm (``None``: Euclidean).
    """

    def __init__(self, memory: int, regularization: float = 1e-8, safeguard: float = 1.0,
                 weights: np.ndarray | None = None) -> None:
        if memory < 1:
            raise ValueError(f"Anderson memory must be >= 1, got {memory}")
        self.memory = memory
        self.regularization = regularization
        self.safeguard = safeguard
        self.w = None if weights is None else np.sqrt(np.asarray(weights, dtype=float))
        self._dF: deque[np.ndarray] = deque(maxlen=memory)
        self._dG: deque[np.ndarray] = deque(maxlen=memory)
        self._f: np.ndarray | None = None
        self._g: np.ndarray | None = None
        self._accepted_norm = np.inf
        self.accepted = 0
        self.rejected = 0

    def reset(self) -> None:
        """Forget the memory (after ρ changes, a restart or a rejected proposal)."""
        self._dF.clear()
        self._dG.clear()
        self._f = None
        self._g = None
        self._accepted_norm = np.inf

    def _wf(self, v: np.ndarray) -> np.ndarray:
        return v if self.w is None else v * self.w

    def step(self, s: np.ndarray, g: np.ndarray, proposed: bool) -> tuple[np.ndarray, bool]:
        """Take the map value ``g = g(s)`` and return the next state.

        Args:
            s: the state the round started from.
            g: the map's value at ``s``.
            proposed: whether ``s`` was an Anderson proposal (then the safeguard checks it).

        Returns:
            The next state and whether it is an Anderson proposal.
        """
        f = self._wf(g - s)
        norm = float(np.linalg.norm(f))
        if proposed and norm > self.safeguard * self._accepted_norm:
            # rejected: restart from the last plain iterate
            self.rejected += 1
            g_prev = self._g
            self.reset()
            return (g if g_prev is None else g_prev), False
        if proposed:
            self.accepted += 1
        self._accepted_norm = norm
        if self._f is not None and self._g is not None:
            self._dF.append(f - self._f)
            self._dG.append(g - self._g)
        self._f, self._g = f, g
        if not self._dF:
            return g, False
        dF = np.column_stack(self._dF)
        dG = np.column_stack(self._dG)
        gram = dF.T @ dF
        lam = self.regularization * float(np.sum(dF**2))
        try:
            gamma = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), dF.T @ f)
        except np.linalg.LinAlgError:
            self.reset()
            return g, False
        if not np.all(np.isfinite(gamma)):
            self.reset()
            return g, False
        return g - dG @ gamma, True


__all__ = ["Anderson"]
