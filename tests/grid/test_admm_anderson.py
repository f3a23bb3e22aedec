"""Anderson acceleration of a fixed-point map."""

from collections.abc import Callable

import numpy as np
import pytest

from grid.admm.anderson import Anderson
from grid.admm.engine import AdmmOptions


def _iterations(g: Callable[[np.ndarray], np.ndarray], s0: np.ndarray,
                accel: Anderson | None, tol: float = 1e-10) -> tuple[int, np.ndarray]:
    s, proposed = s0, False
    for k in range(1, 5000):
        gs = g(s)
        if np.linalg.norm(gs - s) <= tol:
            return k, gs
        if accel is None:
            s = gs
        else:
            s, proposed = accel.step(s, gs, proposed)
    return 5000, s


def test_anderson_solves_a_slow_linear_contraction_in_fewer_steps() -> None:
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    m = q @ np.diag(np.linspace(0.5, 0.97, 8)) @ q.T
    c = rng.normal(size=8)

    def g(s: np.ndarray) -> np.ndarray:
        return m @ s + c

    plain, _ = _iterations(g, np.zeros(8), None)
    accel = Anderson(memory=8, regularization=0.0)
    fast, s = _iterations(g, np.zeros(8), accel)
    assert fast < plain / 5
    assert accel.accepted > 0
    np.testing.assert_allclose(s, np.linalg.solve(np.eye(8) - m, c), atol=1e-8)


def test_a_proposal_that_increases_the_residual_is_rejected() -> None:
    accel = Anderson(memory=3)
    s0 = np.zeros(2)
    nxt, proposed = accel.step(s0, np.array([1.0, 0.0]), proposed=False)
    assert not proposed
    s1 = nxt
    nxt, proposed = accel.step(s1, np.array([1.5, 0.0]), proposed=False)
    assert proposed
    # the proposal's own residual is far larger than the last accepted one: rejected, and the
    # iteration restarts from the last plain iterate
    back, proposed = accel.step(nxt, nxt + np.array([100.0, 0.0]), proposed=True)
    assert not proposed
    np.testing.assert_array_equal(back, [1.5, 0.0])
    assert accel.rejected == 1


def test_memory_must_be_positive() -> None:
    with pytest.raises(ValueError, match="memory"):
        Anderson(memory=0)


def test_admm_options_check_the_anderson_settings() -> None:
    for bad in ({"anderson": -1}, {"anderson_regularization": -1.0},
                {"anderson_safeguard": 0.0}):
        with pytest.raises(ValueError, match="anderson"):
            AdmmOptions(**bad)
