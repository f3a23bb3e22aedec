"""Rows and files shared by both runtimes' outputs: a household's bill, CSV files, traded energy.

A household's bill has two parts: what the local market moved on the ledger (``market_eur``,
from its Credit change) and what the supplier charges for the rest of its metered flow — the
residual of metered net export minus its net local sale is imported at the import price or fed
in at the feed-in price (``supplier_eur``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mas.world import HouseholdSpec

if TYPE_CHECKING:
    from mas.brains.dso import GridState


def household_row(h: HouseholdSpec, sold_kwh: np.ndarray, metered_kwh: np.ndarray,
                  import_eur_per_kwh: Sequence[float], export_eur_per_kwh: Sequence[float],
                  credit_change_nano: int) -> dict[str, Any]:
    """One row of ``households.csv``.

    Args:
        h: the household.
        sold_kwh: net local sale per slot (kWh; negative: bought).
        metered_kwh: metered net export per slot (kWh; negative: import).
        import_eur_per_kwh: supplier's import price per slot.
        export_eur_per_kwh: feed-in price per slot.
        credit_change_nano: the household's Credit change over the day (1e-9 EUR).
    """
    residual = metered_kwh - sold_kwh
    supplier_eur = float(np.sum(np.clip(-residual, 0, None) * np.asarray(import_eur_per_kwh))
                         - np.sum(np.clip(residual, 0, None) * np.asarray(export_eur_per_kwh)))
    market_eur = -credit_change_nano / 1e9
    return {
        "household": h.id, "bus": h.bus, "pv_kwp": h.pv.p_rated_kw if h.pv else 0.0,
        "battery_kwh": h.battery.e_max_kwh if h.battery else 0.0,
        "ev_kw": h.ev.p_max_kw if h.ev else 0.0,
        "prosumer": h.is_prosumer,
        "sold_local_kwh": round(float(np.clip(sold_kwh, 0, None).sum()), 3),
        "bought_local_kwh": round(float(np.clip(-sold_kwh, 0, None).sum()), 3),
        "import_kwh": round(float(np.clip(-metered_kwh, 0, None).sum()), 3),
        "export_kwh": round(float(np.clip(metered_kwh, 0, None).sum()), 3),
        "market_eur": round(market_eur, 6), "supplier_eur": round(supplier_eur, 6),
        "bill_eur": round(market_eur + supplier_eur, 6),
    }


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` with the first row's keys as the header (an empty file when no rows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not rows:
        path.write_text("")
        return
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def dso_rows(planned: GridState, metered: GridState,
             import_limit_kw: float) -> list[dict[str, Any]]:
    """Rows of ``dso.csv``: planned and metered substation import and voltage range per slot.

    Args:
        planned: the DSO's grid state of the planned injections (``import_kw``, ``v_pu``).
        metered: its grid state of the metered injections.
        import_limit_kw: the substation import limit.
    """
    return [{"slot": t, "planned_import_kw": round(float(planned.import_kw[t]), 3),
             "metered_import_kw": round(float(metered.import_kw[t]), 3),
             "import_limit_kw": import_limit_kw,
             "v_min_pu": round(float(metered.v_pu[t].min()), 5),
             "v_max_pu": round(float(metered.v_pu[t].max()), 5)}
            for t in range(len(metered.import_kw))]


def traded_by_kind(sessions: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Summary fields: energy traded in the day-ahead, intraday and real-time sessions.

    Args:
        sessions: (kind, kWh traded) of each session of the day.

    Returns:
        ``day_ahead_traded_kwh``, ``intraday_traded_kwh`` and ``real_time_traded_kwh``.
    """
    totals = {"day-ahead": 0.0, "intraday": 0.0, "real-time": 0.0}
    for kind, kwh in sessions:
        if kind not in totals:
            raise ValueError(f"session kind must be one of {sorted(totals)}, got {kind!r}")
        totals[kind] += kwh
    return {f"{kind.replace('-', '_')}_traded_kwh": round(v, 3) for kind, v in totals.items()}
