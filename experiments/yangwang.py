"""The Yang-Wang study: 10 prosumers, one week hourly, ADMM (16)-(17) against the central DCM.

Writes convergence curves (gap to the central optimum and residuals per iteration), the
schedules of both solutions, the trades of two prosumers and a summary.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from market.yangwang import YangWang, YwResult, synthetic_week

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class YwConfig:
    """Settings.

    Attributes:
        prosumers: N.
        days: horizon in days.
        rho: ADMM penalty.
        max_iter: iteration limit.
        tol_kw: stopping tolerance on ``max|p̂ − p|`` and ``max|p̂ − p̂_prev|``.
        seed: seed of the synthetic data.
    """

    prosumers: int = 10
    days: int = 7
    rho: float = 1.0
    max_iter: int = 300
    tol_kw: float = 1e-3
    seed: int = 7


def run(cfg: YwConfig) -> tuple[YwResult, YwResult]:
    """Central and ADMM solutions of the synthetic week."""
    pros, inputs = synthetic_week(cfg.prosumers, cfg.days, np.random.default_rng(cfg.seed))
    model = YangWang(pros, 24 * cfg.days)
    central = model.solve_central(inputs)
    admm = model.solve_admm(inputs, rho=cfg.rho, max_iter=cfg.max_iter, tol_kw=cfg.tol_kw,
                            reference_objective_eur=central.objective_eur)
    return central, admm


def write(central: YwResult, admm: YwResult, cfg: YwConfig, out_dir: Path) -> dict[str, object]:
    """Write ``summary.json``, ``convergence.csv``, ``schedules.csv`` and plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    gap = abs(admm.objective_eur - central.objective_eur) / abs(central.objective_eur)
    summary: dict[str, object] = {
        "prosumers": cfg.prosumers, "periods": 24 * cfg.days, "rho": cfg.rho,
        "central_objective_eur": central.objective_eur,
        "admm_objective_eur": admm.objective_eur, "gap_vs_central": gap,
        "iterations": admm.iterations, "converged": admm.converged,
        "first_iteration_within_1pct": int(np.argmax(admm.history["gap"] <= 0.01)) + 1
        if np.any(admm.history["gap"] <= 0.01) else None,
        "central_time_s": central.solve_time_s, "admm_time_s": admm.solve_time_s,
        "traded_kwh": float(np.clip(admm.trades_kw, 0, None).sum()),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n",
                                          encoding="utf-8")
    with (out_dir / "convergence.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["iteration", "objective_eur", "gap", "primal", "dual"])
        h = admm.history
        for k in range(admm.iterations):
            w.writerow([k + 1, f"{h['objective_eur'][k]:.8g}", f"{h['gap'][k]:.6g}",
                        f"{h['primal'][k]:.6g}", f"{h['dual'][k]:.6g}"])
    with (out_dir / "schedules.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        keys = sorted(admm.schedules)
        n = admm.schedules[keys[0]].shape[1]
        w.writerow(["method", "hour", *[f"{k}_{i + 1}" for k in keys for i in range(n)]])
        for res in (central, admm):
            for t in range(admm.schedules[keys[0]].shape[0]):
                w.writerow([res.method, t, *(f"{res.schedules[k][t, i]:.6g}" for k in keys
                                             for i in range(n))])
    _plots(central, admm, out_dir)
    return summary


def _plots(central: YwResult, admm: YwResult, out_dir: Path) -> None:
    import matplotlib as mpl  # noqa: PLC0415 - only when plotting

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    h = admm.history
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.5))
    ax[0].semilogy(np.arange(1, admm.iterations + 1), h["gap"])
    ax[0].axhline(0.01, color="k", ls="--", lw=0.8)
    ax[0].set_xlabel("iteration")
    ax[0].set_ylabel("relative gap to the central optimum")
    ax[1].semilogy(h["primal"], label="‖p̂ − p‖")
    ax[1].semilogy(h["dual"], label="ρ‖p̂ − p̂_prev‖")
    ax[1].set_xlabel("iteration")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(out_dir / "convergence.png", dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(2, 2, figsize=(12, 6), sharex=True)
    for ax_, key, title in zip(axes.flat, ["grid_kw", "renewable_kw", "shiftable_kw", "hvac_kw"],
                               ["(a) grid supply", "(b) renewable used", "(c) shiftable load",
                                "(d) HVAC load"], strict=True):
        ax_.plot(admm.schedules[key], lw=0.8)
        ax_.set_title(title)
    fig.tight_layout()
    fig.savefig(out_dir / "schedules.png", dpi=110)
    plt.close(fig)
    del central
