"""The B-DER study (final report §4.4, Tables 3–5) on a SimBench LV feeder.

Baseline, trade only, grid only and trade + grid, for a summer and a winter week.

Set-up (B-DER §4.2.2.1–4.2.2.2 where it is specified, our choices where it is not — the report
names them):

* feeder ``1-LV-rural1--0-sw`` (13 household connections), hourly day-ahead scheduling, one
  problem per day, weeks 21–27 June and 21–27 December (the report's "21–28");
* household loads: SimBench's 2016 profiles of the feeder's loads for the same calendar days,
  each scaled to a mean of 0.4 kW over the two weeks (≈ 3,500 kWh/a; the feeder's loads
  include farms of up to 14 kW);
* PV (5 kWp) and a battery (5 kWh, 2.5 kW, 95 %/95 %, back to 50 % at midnight) on every other
  household (the prosumers), the feeder's own PV profile per kWp; an EV (3.7 kW, 90 %,
  7 kWh per day, plugged in 18:00–07:00) on every third household;
* import price: the 2018 Netherlands day-ahead price of the same hour plus a retail margin
  (0.12 EUR/kWh), feed-in at 50 % of it; trading coefficients B-DER (26)–(29), χ = 10 ct/kWh.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from grid.admm.engine import AdmmOptions
from grid.der import BatterySpec, EvSpec, PvSpec, ev_window
from grid.feeders import Feeder, load_feeder
from grid.prices import Tariff
from grid.profiles import day_profiles
from market.bilateral import (
    MODES,
    BilateralMarket,
    Household,
    MarketInputs,
    MarketResult,
    peak_mask,
    trading_coefficients,
)

log = logging.getLogger(__name__)

DEFAULT_FEEDER = "1-LV-rural1--0-sw"
SEASONS = {"summer": "2016-06-21", "winter": "2016-12-21"}
SCENARIO = {("summer", "BS"): "BS", ("summer", "TS"): "TS", ("summer", "GS"): "GS",
            ("summer", "TGS"): "TGS", ("winter", "BS"): "BW", ("winter", "TS"): "TW",
            ("winter", "GS"): "GW", ("winter", "TGS"): "TGW"}
"""B-DER Table 3 abbreviations."""

PAPER_TABLE4: dict[str, dict[str, float | None]] = {
    "Prosumer import costs (Eur)": dict(zip(
        ["BS", "GS", "TS", "TGS", "BW", "GW", "TW", "TGW"],
        [90.17, 53.46, 70.84, 60.06, 150.82, 126.56, 132.76, 136.05], strict=True)),
    "Consumer import costs (Eur)": dict(zip(
        ["BS", "GS", "TS", "TGS", "BW", "GW", "TW", "TGW"],
        [92.23, 30.01, 59.59, 58.74, 151.44, 118.19, 148.02, 147.32], strict=True)),
    "Prosumer trade costs (Eur)": {"BS": None, "GS": None, "TS": -37.40, "TGS": -49.37,
                                   "BW": None, "GW": None, "TW": 0.0, "TGW": 0.0},
    "Consumer trade costs (Eur)": {"BS": None, "GS": None, "TS": 37.40, "TGS": 49.37,
                                   "BW": None, "GW": None, "TW": 0.0, "TGW": 0.0},
    "Total import costs (Eur)": dict(zip(
        ["BS", "GS", "TS", "TGS", "BW", "GW", "TW", "TGW"],
        [182.40, 83.47, 130.43, 118.8, 302.26, 244.75, 280.78, 283.37], strict=True)),
    "Total costs (Eur)": dict(zip(
        ["BS", "GS", "TS", "TGS", "BW", "GW", "TW", "TGW"],
        [182.40, 83.47, 167.83, 168.17, 302.26, 244.75, 280.78, 283.37], strict=True)),
}
PAPER_TABLE5: dict[str, dict[str, float | None]] = {
    "Total local energy exchange (kWh)": {"BS": None, "GS": 495, "TS": 291, "TGS": 468,
                                          "BW": None, "GW": 52, "TW": 5, "TGW": 17},
    "Total imports (kWh)": dict(zip(["BS", "GS", "TS", "TGS", "BW", "GW", "TW", "TGW"],
                                    [999, 788, 895, 856, 2638, 2333, 2530, 2455],
                                    strict=True)),
    "Peak imports (kWh)": dict(zip(["BS", "GS", "TS", "TGS", "BW", "GW", "TW", "TGW"],
                                   [731, 273, 620, 302, 1199, 843, 1140, 876], strict=True)),
    "Ratio of peak/total imports": dict(zip(["BS", "GS", "TS", "TGS", "BW", "GW", "TW", "TGW"],
                                            [0.73, 0.34, 0.69, 0.35, 0.45, 0.36, 0.45, 0.35],
                                            strict=True)),
}


@dataclass(frozen=True, slots=True)
class BderConfig:
    """Experiment settings.

    Attributes:
        feeder: SimBench LV feeder code.
        days: days per season (1–7).
        households: use the first this many loads (``None``: all).
        method: ``"central"`` (one problem per day) or ``"admm"`` (every day by ADMM).
        admm_days: with ``method="central"``, also run ADMM on this many first days of each
            trading mode and season and report its gap (0: none).
        margin_eur_per_kwh: retail margin on the day-ahead price.
        chi: χ of the trading coefficients (ct/kWh).
        mean_load_kw: mean household load over the two weeks after scaling.
        pv_kwp: PV size of a prosumer.
        regions: ADMM regions of the grid modes.
        root_quadratic_eur_per_kw2h: grid modes: Münsing's quadratic cost on the substation
            exchange (see :class:`market.bilateral.BilateralMarket`); 0.002 EUR/kW²h adds
            ~0.1 EUR/kWh at a 25 kW community import.
        seasons: which of ``"summer"`` and ``"winter"`` to run (tables and the report need
            both).
    """

    feeder: str = DEFAULT_FEEDER
    days: int = 7
    households: int | None = None
    method: str = "central"
    admm_days: int = 1
    margin_eur_per_kwh: float = 0.12
    chi: float = 10.0
    mean_load_kw: float = 0.4
    pv_kwp: float = 5.0
    regions: int | str = 2
    root_quadratic_eur_per_kw2h: float = 0.002
    seasons: tuple[str, ...] = ("summer", "winter")

    def __post_init__(self) -> None:
        if not 1 <= self.days <= 7:
            raise ValueError(f"days must be in 1..7, got {self.days}")
        if self.households is not None and self.households < 2:
            raise ValueError(f"households must be >= 2, got {self.households}")
        if self.method not in ("central", "admm"):
            raise ValueError(f"method must be 'central' or 'admm', got {self.method!r}")


@dataclass(frozen=True, slots=True)
class Season:
    """A season's households and data."""

    households: tuple[Household, ...]
    days: tuple[MarketInputs, ...]
    starts: tuple[datetime, ...]


@dataclass
class ScenarioOutcome:
    """Per-day results of one scenario, aggregated."""

    name: str
    mode: str
    season: str
    results: list[MarketResult] = field(default_factory=list)
    admm_gaps: list[float] = field(default_factory=list)
    admm_iterations: list[int] = field(default_factory=list)
    admm_time_s: list[float] = field(default_factory=list)
    central_time_s: list[float] = field(default_factory=list)
    price_import: list[np.ndarray] = field(default_factory=list)
    price_export: list[np.ndarray] = field(default_factory=list)


def build_season(feeder: Feeder, cfg: BderConfig, season: str) -> Season:
    """Households and per-day inputs of one season."""
    start = datetime.strptime(SEASONS[season], "%Y-%m-%d")
    loads = feeder.loads[: cfg.households] if cfg.households else feeder.loads
    both = [day_profiles(feeder, SEASONS[s], 24 * cfg.days, 60) for s in SEASONS]
    idx = [feeder.loads.index(a) for a in loads]
    mean = np.mean(np.vstack([p.load_p_kw[:, idx] for p in both]), axis=0)
    scale = cfg.mean_load_kw / np.where(mean > 0, mean, 1.0)
    prof = both[list(SEASONS).index(season)]
    rated = sum(s.p_rated_kw for s in prof.pv)
    per_kwp = prof.pv_p_avail_kw.sum(axis=1) / rated if rated else np.zeros(prof.periods)
    hh = []
    for i, a in enumerate(loads):
        prosumer = i % 2 == 0
        hh.append(Household(
            f"h{i + 1}", a.bus,
            PvSpec(f"pv{i + 1}", a.bus, cfg.pv_kwp) if prosumer else None,
            BatterySpec(f"bat{i + 1}", a.bus, 5.0, 2.5, 2.5) if prosumer else None,
            EvSpec(f"ev{i + 1}", a.bus, 3.7, efficiency=0.9) if i % 3 == 0 else None))
    n = len(hh)
    tariff = Tariff(margin_eur_per_kwh=cfg.margin_eur_per_kwh, export_share=0.5, zone="NL")
    days, starts = [], []
    window = ev_window(24, 18, 7)
    for d in range(cfg.days):
        sl = slice(24 * d, 24 * (d + 1))
        load = prof.load_p_kw[sl][:, idx] * scale
        q = prof.load_q_kvar[sl][:, idx] * scale
        pv = np.column_stack([per_kwp[sl] * cfg.pv_kwp if h.pv else np.zeros(24) for h in hh])
        day_start = start + timedelta(days=d)
        imp, exp = tariff.prices(day_start.replace(year=2018), 24, 60)
        days.append(MarketInputs(
            load, q, pv, imp, exp, ev_available=np.tile(window[:, None], (1, n)),
            ev_e_need_kwh=np.full(n, 7.0),
            gamma_eur_per_kwh=trading_coefficients(pv, load, cfg.chi, 0.01)))
        starts.append(day_start)
    return Season(tuple(hh), tuple(days), tuple(starts))


def run(cfg: BderConfig, progress: Callable[[str], None] | None = None
        ) -> dict[str, ScenarioOutcome]:
    """Run every scenario; returns outcomes keyed by the Table 3 abbreviation."""
    feeder = load_feeder(cfg.feeder)
    out: dict[str, ScenarioOutcome] = {}
    for season in cfg.seasons:
        data = build_season(feeder, cfg, season)
        for mode in MODES:
            name = SCENARIO[(season, mode)]
            oc = ScenarioOutcome(name, mode, season)
            market = BilateralMarket(data.households, 24, 60, mode,
                                     feeder if mode in ("GS", "TGS") else None,
                                     regions=cfg.regions,
                                     root_quadratic_eur_per_kw2h=cfg.root_quadratic_eur_per_kw2h,
                                     # stop at a 0.1 % gap with consensus <= 1e-3 (units of
                                     # 10 kW): on these degenerate LPs Boyd's residual test
                                     # stalls long after the objective has converged
                                     admm=AdmmOptions(alpha=1.6, max_iter=1500,
                                                      cost_scale_eur=0.0, target_gap=1e-3,
                                                      consensus_tol=1e-3))
            for d, inputs in enumerate(data.days):
                t0 = time.perf_counter()
                central = market.solve(inputs, "central")
                oc.central_time_s.append(time.perf_counter() - t0)
                oc.price_import.append(np.asarray(inputs.price_import_eur_per_kwh))
                oc.price_export.append(np.asarray(inputs.price_export_eur_per_kwh))
                use_admm = mode != "BS" and (cfg.method == "admm" or d < cfg.admm_days)
                if use_admm:
                    res = market.solve(inputs, "admm",
                                       reference_objective_eur=central.objective_eur)
                    assert res.run is not None
                    oc.admm_gaps.append(abs(res.objective_eur - central.objective_eur)
                                        / abs(central.objective_eur))
                    oc.admm_iterations.append(res.run.iterations)
                    oc.admm_time_s.append(res.solve_time_s)
                    if not res.run.converged:
                        log.warning("%s day %d: ADMM stopped at the round limit", name, d + 1)
                oc.results.append(res if (use_admm and cfg.method == "admm") else central)
                if progress is not None:
                    progress(f"{name} day {d + 1}/{cfg.days}")
            out[name] = oc
    return out


# ------------------------------------------------------------------------------------------
# tables


def table4(out: dict[str, ScenarioOutcome]) -> dict[str, dict[str, float | None]]:
    """Economic indicators shaped like B-DER Table 4 (EUR over the simulated days)."""
    rows: dict[str, dict[str, float | None]] = {}

    def put(row: str, name: str, value: float | None) -> None:
        rows.setdefault(row, {})[name] = value

    for name, oc in out.items():
        pro = oc.results[0].prosumer
        imp = np.sum([r.import_cost_eur for r in oc.results], axis=0)
        trade = np.sum([r.trade_cost_eur for r in oc.results], axis=0)
        trading = oc.mode != "BS"
        put("Prosumer import costs (Eur)", name, float(imp[pro].sum()))
        put("Consumer import costs (Eur)", name, float(imp[~pro].sum()))
        put("Prosumer trade costs (Eur)", name, float(trade[pro].sum()) if trading else None)
        put("Consumer trade costs (Eur)", name, float(trade[~pro].sum()) if trading else None)
        put("Total prosumer costs (Eur)", name, float((imp + trade)[pro].sum()))
        put("Total consumer costs (Eur)", name, float((imp + trade)[~pro].sum()))
        put("Total import costs (Eur)", name, float(imp.sum()))
        # the report's "total trade costs" are what the buyers pay (money stays inside)
        paid = float(np.clip(trade, 0, None).sum()) if trading else None
        put("Total trade costs (Eur)", name, paid)
        put("Total costs (Eur)", name, float(imp.sum()) + (paid or 0.0))
        put("Network losses (kWh)", name, float(sum(r.losses_kw.sum() for r in oc.results)))
        put("Network cost (Eur)", name, float(sum(r.network_cost_eur for r in oc.results)))
    for season, base in (("summer", "BS"), ("winter", "BW")):
        names = [n for n, oc in out.items() if oc.season == season]
        for row in ("Prosumer import costs (Eur)", "Consumer import costs (Eur)",
                    "Total import costs (Eur)", "Total costs (Eur)"):
            for n in names:
                ref = rows.get(row, {}).get(base)
                val = rows[row].get(n)
                put("Relative " + row.split(" (")[0].lower(), n,
                    val / ref if ref and val is not None else None)
    return rows


def table5(out: dict[str, ScenarioOutcome]) -> dict[str, dict[str, float | None]]:
    """Energy indicators shaped like B-DER Table 5 (kWh over the simulated days)."""
    rows: dict[str, dict[str, float | None]] = {}
    for name, oc in out.items():
        peak = peak_mask(24, 60)
        exchange = sum(float(np.clip(r.trades_kw.sum(axis=2), 0, None).sum())
                       for r in oc.results)
        total = sum(float(r.import_kw.sum()) for r in oc.results)
        peak_imp = sum(float(r.import_kw[peak].sum()) for r in oc.results)
        sub_peak = max(float(np.max(r.substation_import_kw)) for r in oc.results)
        rows.setdefault("Total local energy exchange (kWh)", {})[name] = (
            exchange if oc.mode != "BS" else None)
        rows.setdefault("Total imports (kWh)", {})[name] = total
        rows.setdefault("Peak imports (kWh)", {})[name] = peak_imp
        rows.setdefault("Ratio of peak/total imports", {})[name] = (
            peak_imp / total if total else math.nan)
        rows.setdefault("Highest hourly community import (kW)", {})[name] = sub_peak
    return rows


def write_csv(path: Path, rows: dict[str, dict[str, float | None]], names: list[str]) -> None:
    """Write a table with the scenarios as columns."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Scenario", *names])
        for row, vals in rows.items():
            w.writerow([row, *("" if vals.get(n) is None else f"{vals[n]:.4g}" for n in names)])


def write_plots(out: dict[str, ScenarioOutcome], out_dir: Path) -> list[str]:
    """Daily exchange (first summer day), trade and grid prices, household cost boxplots."""
    import matplotlib as mpl  # noqa: PLC0415 - only when plotting

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    files = []
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.5), sharey=True)
    for ax, name in zip(axes, ["BS", "GS", "TS", "TGS"], strict=True):
        r = out[name].results[0]
        ax.plot(np.clip(r.trades_kw.sum(axis=2), 0, None).sum(axis=1), label="exchanged")
        ax.plot(r.import_kw.sum(axis=1), label="grid imports")
        ax.plot(r.export_kw.sum(axis=1), label="feed-in")
        ax.set_title(name)
        ax.set_xlabel("hour")
    axes[0].set_ylabel("kW (all households)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "daily_exchange.png", dpi=110)
    plt.close(fig)
    files.append("daily_exchange.png")

    fig, axes = plt.subplots(2, 1, figsize=(12, 6))
    for ax, season, names in ((axes[0], "summer", ["TS", "TGS", "GS"]),
                              (axes[1], "winter", ["TW", "TGW", "GW"])):
        base = out[names[0]]
        ax.plot(np.concatenate(base.price_import), "k-", lw=1, label="import price")
        ax.plot(np.concatenate(base.price_export), "k--", lw=1, label="feed-in price")
        for name in names:
            prices = []
            for r in out[name].results:
                p = r.trade_price_eur_per_kwh
                seen = np.any(~np.isnan(p), axis=(1, 2))
                mean = np.full(p.shape[0], np.nan)
                mean[seen] = np.nanmean(p[seen], axis=(1, 2))
                prices.append(mean)
            ax.plot(np.concatenate(prices), label=f"{name} trade price")
        ax.set_title(f"{season}: mean trade price (where trades occur)")
        ax.set_ylabel("EUR/kWh")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "prices.png", dpi=110)
    plt.close(fig)
    files.append("prices.png")

    fig, ax = plt.subplots(figsize=(12, 4))
    data, labels = [], []
    for name, oc in out.items():
        pro = oc.results[0].prosumer
        cost = sum(r.import_cost_eur + r.trade_cost_eur for r in oc.results)
        data += [cost[pro], cost[~pro]]
        labels += [f"{name} p", f"{name} c"]
    ax.boxplot(data, tick_labels=labels)
    ax.set_ylabel("EUR per household over the simulated days")
    fig.tight_layout()
    fig.savefig(out_dir / "household_costs.png", dpi=110)
    plt.close(fig)
    files.append("household_costs.png")
    return files


def _fmt(v: float | None, ratio: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.0%}" if ratio else f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"


def _side_by_side(ours: dict[str, dict[str, float | None]],
                  paper: dict[str, dict[str, float | None]], names: list[str]) -> str:
    lines = ["| indicator | " + " | ".join(f"{n} ours | {n} paper" for n in names) + " |",
             "|---|" + "---|" * (2 * len(names))]
    for row, vals in ours.items():
        ratio = row.startswith("Relative")
        ref = paper.get(row, {})
        cells = []
        for n in names:
            cells += [_fmt(vals.get(n), ratio), _fmt(ref.get(n), ratio) if ref else ""]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def findings(t4: dict[str, dict[str, float | None]], t5: dict[str, dict[str, float | None]]
             ) -> dict[str, float]:
    """The qualitative findings of B-DER §4.4 as numbers."""
    peak = t5["Peak imports (kWh)"]
    imp = t4["Total import costs (Eur)"]
    tot_w = [t4["Total costs (Eur)"][n] or 0.0 for n in ("BW", "GW", "TW", "TGW")]
    tot_s = [t4["Total costs (Eur)"][n] or 0.0 for n in ("BS", "GS", "TS", "TGS")]
    power = t5["Highest hourly community import (kW)"]
    return {
        "power_GS_vs_BS": (power["GS"] or 0) / (power["BS"] or 1) - 1,
        "power_TGS_vs_BS": (power["TGS"] or 0) / (power["BS"] or 1) - 1,
        "power_TGS_vs_TS": (power["TGS"] or 0) / (power["TS"] or 1) - 1,
        "peak_GS_vs_BS": (peak["GS"] or 0) / (peak["BS"] or 1) - 1,
        "peak_TGS_vs_BS": (peak["TGS"] or 0) / (peak["BS"] or 1) - 1,
        "peak_TGS_vs_TS": (peak["TGS"] or 0) / (peak["TS"] or 1) - 1,
        "peak_GS_vs_TS": (peak["GS"] or 0) / (peak["TS"] or 1) - 1,
        "import_cost_TGS_minus_TS_eur": (imp["TGS"] or 0) - (imp["TS"] or 0),
        "winter_spread": (max(tot_w) - min(tot_w)) / max(tot_w),
        "summer_spread": (max(tot_s) - min(tot_s)) / max(tot_s),
    }


def write_report(out: dict[str, ScenarioOutcome], cfg: BderConfig, out_dir: Path,
                 runtime_s: float, plots: list[str]) -> Path:
    """The markdown report: our tables beside the paper's, findings, differences explained."""
    names = list(out)
    t4, t5 = table4(out), table5(out)
    f = findings(t4, t5)
    admm = [(n, g, it, t) for n, oc in out.items()
            for g, it, t in zip(oc.admm_gaps, oc.admm_iterations, oc.admm_time_s, strict=True)]
    lines = [
        "# B-DER study: baseline, trade only, grid only, trade + grid",
        "",
        f"Feeder `{cfg.feeder}`, {len(out['BS'].results[0].households)} households, "
        f"{cfg.days} day(s) per season from 21 June and 21 December, hourly day-ahead "
        f"schedules, NL 2018 day-ahead prices + {cfg.margin_eur_per_kwh:.2f} EUR/kWh, feed-in "
        f"at 50 %, χ = {cfg.chi:g} ct/kWh. Method: {cfg.method}. Run time {runtime_s:.0f} s.",
        "The paper's figures are for its own Amsterdam community and a full week; compare "
        "shapes and ratios, not euros.",
        "",
        "## Findings of the report, checked",
        "",
        f"* GS and TGS cut the community's peak import power against BS: GS "
        f"{f['power_GS_vs_BS']:+.0%}, TGS {f['power_TGS_vs_BS']:+.0%}; TGS against TS "
        f"{f['power_TGS_vs_TS']:+.0%} (paper, peak imports: ≈ −60 %).",
        f"* Energy imported in the peak hours 6–9 and 17–20 h, the report's measure: GS "
        f"{f['peak_GS_vs_BS']:+.0%}, TGS {f['peak_TGS_vs_BS']:+.0%} against BS; GS "
        f"{f['peak_GS_vs_TS']:+.0%}, TGS {f['peak_TGS_vs_TS']:+.0%} against TS (paper: −63 %, "
        "−59 %; −56 %, −51 %). Not reproduced: see 'Peak imports' below.",
        f"* TGS import cost minus TS import cost: {f['import_cost_TGS_minus_TS_eur']:+.2f} EUR "
        "(paper: −11.63 EUR, TGS below TS).",
        f"* Spread of total costs across scenarios: winter {f['winter_spread']:.0%}, summer "
        f"{f['summer_spread']:.0%} (paper: 19 % and 54 %: small winter differences).",
        "",
        "## Table 4 — economic indicators (EUR over the simulated days)",
        "",
        _side_by_side(t4, PAPER_TABLE4, names),
        "",
        "## Table 5 — energy (kWh over the simulated days; peak hours 6–9 and 17–20)",
        "",
        _side_by_side(t5, PAPER_TABLE5, names),
        "",
        "## ADMM against the central solve of the same formulation",
        "",
    ]
    if admm:
        lines += ["| scenario | gap | iterations | ADMM time (s) |", "|---|---|---|---|"]
        lines += [f"| {n} | {g:.2e} | {it} | {t:.1f} |" for n, g, it, t in admm]
    else:
        lines.append("No ADMM runs requested (`--admm-days 0`).")
    lines += [
        "",
        "## Why our figures differ",
        "",
        "* **Data.** The report uses metered Amsterdam households (PARENT project) that are not "
        "public; we use SimBench 2016 load and PV profiles of the same calendar days, scaled to "
        f"{cfg.mean_load_kw} kW mean load, {cfg.pv_kwp:g} kWp PV with a 5 kWh battery on every "
        "other household and an EV on every third. Absolute euros and kWh therefore differ; the "
        "community is also smaller or larger than the report's, which does not state its size.",
        "* **Peak imports.** The report's baseline buys 73 % of its energy in the six peak "
        "hours, so its households evidently did not shift load against the price. Ours "
        "optimise their batteries and EVs against the hourly NL price in every scenario, and "
        "that price peaks in exactly those hours: the baseline already avoids them (peak share "
        "≈ 20 %), leaving nothing for the grid modes to remove. What the grid modes do cut, "
        "as in the report, is the community's peak import power (row 'Highest hourly community "
        "import'); flattening it moves some energy *into* the peak hours.",
        "* **TGS against TS.** The report finds more trading and lower import costs in TGS "
        "than in TS; here the two trade about the same volume and TGS pays the substation "
        "flattening with slightly higher household import costs.",
        "* **Grid only (GS).** The report prices nothing for the exchange in GS, which leaves "
        "household costs undetermined; we settle the (free, γ = 0) exchange at its dual price, "
        "so GS shows trade payments where the report shows none, and 'import costs' are the "
        "households' own grid accounts.",
        "* **Losses and the substation cost.** In GS/TGS the network's losses are bought at the "
        "import price by the network nodes, and the substation exchange carries Münsing's "
        f"quadratic root cost ({cfg.root_quadratic_eur_per_kw2h:g} EUR/kW²h; the report's "
        "'thermal generator' at feeder 0); both are paid by the network (row 'Network cost'), "
        "not by the households. This quadratic term is what makes the grid modes flatten the "
        "community's import; with it set to 0 (`--root-quadratic 0`) the grid modes only add "
        "voltage and current limits, which do not bind on this feeder, and GS/TGS then cut "
        "peak imports by much less than the report's ≈ 60 %.",
        "* **Trading coefficients.** χ = 10 is read as ct/kWh (the report gives no unit); with "
        "EUR/kWh no trade could ever pay against a 50 % feed-in price.",
        "* **Winter.** With little PV there is little to trade, so TW/TGW differ little from BW, "
        "as in the report.",
        "",
        "## Plots",
        "",
        *[f"![{p}]({p})" for p in plots],
        "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    write_csv(out_dir / "table4_economics.csv", t4, names)
    write_csv(out_dir / "table5_energy.csv", t5, names)
    return path
