"""The browser view of the Mesa model: a SolaraViz page.

:class:`VdgPage` is the page for a scenario: the feeder as a tree hanging from the substation,
each bus a dot coloured by its voltage inside a ring coloured by its net injection in the
current slot (metered once delivered, planned before); time series of clearing prices, traded
volume, battery state of charge and substation import; controls for the main scenario
parameters; Mesa's step, play and reset buttons. Figures use Matplotlib's object API (no
pyplot, no global backend).

Mesa's reset re-creates the model with its own ``scenario`` keyword (a Mesa scenario), so the
page runs :class:`VizModel`, which takes the vdg scenario as ``vdg_scenario``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import solara
from matplotlib.figure import Figure
from mesa.visualization import Slider, SolaraViz, make_plot_component
from mesa.visualization.utils import update_counter

from mas.mesa.model import TICKS_PER_SLOT, LedgerKind, VdgModel
from mas.mesa.params import population_world
from mas.scenario import Scenario

log = logging.getLogger(__name__)

FEEDER_CLASS = "vdg-feeder"
"""CSS class of the feeder drawing (the browser test finds it by this)."""


class VizModel(VdgModel):
    """:class:`VdgModel` as the page re-creates it (Mesa's own ``scenario`` is ignored).

    Args:
        scenario: Mesa's scenario object, passed by the page's reset; unused.
        vdg_scenario: the vdg scenario.
        ledger: ``memory`` or ``evm``.
        **params: scenario parameters by flat name (the page's controls).
    """

    def __init__(self, scenario: Any = None, *, vdg_scenario: Scenario | None = None,
                 ledger: LedgerKind = "memory", **params: Any) -> None:
        del scenario
        super().__init__(vdg_scenario, ledger=ledger, **params)


def _draw_feeder(model: VdgModel) -> Figure:
    """The feeder as a tree: inner dot = bus voltage, outer ring = net injection."""
    feeder = model.world.feeder
    pos = model.layout
    v, p = model.bus_values()
    fig = Figure(figsize=(6.4, 5.0))
    ax = fig.subplots()
    xy = np.array([pos[b] for b in feeder.buses])
    for a, b in feeder.graph.edges:
        ax.plot([pos[a][0], pos[b][0]], [pos[a][1], pos[b][1]], color="0.6", lw=1, zorder=1)
    lim = max([abs(x) for x in p.values()] + [1.0])
    ring = ax.scatter(xy[:, 0], xy[:, 1], c=[p[b] for b in feeder.buses], cmap="coolwarm",
                      vmin=-lim, vmax=lim, s=170, zorder=2)
    dot = ax.scatter(xy[:, 0], xy[:, 1], c=[v[b] for b in feeder.buses], cmap="viridis",
                     vmin=model.vdg.grid.v_min_pu, vmax=model.vdg.grid.v_max_pu, s=45,
                     edgecolors="k", linewidths=0.4, zorder=3)
    root = pos[feeder.root]
    ax.scatter([root[0]], [root[1]], marker="s", s=110, c="k", zorder=4)
    ax.annotate("substation", root, xytext=(7, 3), textcoords="offset points", fontsize=8)
    fig.colorbar(dot, ax=ax, label="voltage (p.u.), dot", shrink=0.8, pad=0.01)
    fig.colorbar(ring, ax=ax, label="net injection (kW, + export), ring", shrink=0.8,
                 pad=0.02)
    ax.set_axis_off()
    hh, mm = divmod(max(model.tick, 0) * 60 // TICKS_PER_SLOT, 60)
    phase = "metered" if model.delivered > model.slot else "planned"
    ax.set_title(f"{feeder.name} - {hh:02d}:{mm:02d}, slot {model.slot} ({phase}), "
                 f"{len(model.households)} households", fontsize=9)
    fig.tight_layout()
    return fig


@solara.component
def FeederView(model: VdgModel) -> None:  # noqa: N802 - Solara components are capitalised
    """The feeder drawn as a tree from the substation, coloured by voltage and injection."""
    update_counter.get()
    with solara.Column(classes=[FEEDER_CLASS]):
        solara.FigureMatplotlib(_draw_feeder(model), format="png")


@solara.component
def DayStatus(model: VdgModel) -> None:  # noqa: N802 - Solara components are capitalised
    """A line of text: clock, sessions cleared, traded energy, coordination rounds."""
    update_counter.get()
    traded = sum(sum(r.volume_kwh) for r in model.sessions)
    hh, mm = divmod(max(model.tick, 0) * 60 // TICKS_PER_SLOT, 60)
    clock = f"{hh:02d}:{mm:02d}" if model.tick >= 0 else "before the day"
    text = (f"clock {clock} - sessions cleared: {len(model.sessions)} - traded "
            f"{traded:.1f} kWh - coordination rounds: {model.rounds} - slots delivered: "
            f"{model.delivered}/24")
    if model.summary is not None:
        s = model.summary
        text += (f" - day done: welfare {s['welfare_eur']:.2f} EUR, peak import "
                 f"{s['peak_import_kw']:.1f} kW")
    with solara.Div(classes=["vdg-status"]):  # plain text: Markdown pulls KaTeX from the CDN
        solara.Text(text, style={"font-weight": "bold"})


def _tick_axis(ax: Any) -> None:
    """Grid and point markers (a series of one tick is still visible); Mesa labels x "Step"."""
    for line in ax.get_lines():
        line.set_marker(".")
    ax.grid(alpha=0.3)


def model_params(scenario: Scenario, households: int,
                 ledger: LedgerKind = "memory") -> dict[str, Any]:
    """The page's controls (main scenario parameters, starting at ``households``) and fixed ones."""
    der, grid, market = scenario.der, scenario.grid, scenario.market
    return {
        "vdg_scenario": scenario,
        "ledger": ledger,
        "households": Slider("households", households, 2, max(4 * households, 8), 1),
        "pv_share": Slider("PV share", der.pv_share, 0.0, 1.0, 0.05),
        "battery_share": Slider("battery share", der.battery_share, 0.0, 1.0, 0.05),
        "ev_share": Slider("EV share", der.ev_share, 0.0, 1.0, 0.05),
        "import_limit_kw": Slider("import limit (kW)", grid.import_limit_kw, 5.0,
                                  max(4 * grid.import_limit_kw, 50.0), 5.0),
        "penalty_eur_per_kwh": Slider("shortfall penalty (EUR/kWh)",
                                      market.penalty_eur_per_kwh, 0.0, 0.5, 0.01),
        "real_time_block_h": {"type": "Select", "value": market.real_time_block_h,
                              "values": [1, 2, 3, 4, 6, 8, 12, 24],
                              "label": "real-time block (h)"},
    }


@solara.component
def VdgPage(scenario: Scenario, ledger: LedgerKind = "memory") -> None:  # noqa: N802 - Solara components are capitalised
    """The SolaraViz page of a scenario; the first model is built once per browser session."""
    n = solara.use_memo(lambda: len(population_world(scenario).households), [])
    params = solara.use_memo(lambda: model_params(scenario, n, ledger), [])
    model = solara.use_memo(lambda: VizModel(**initial_values(params)), [])
    components = [
        (FeederView, 0),
        (DayStatus, 0),
        make_plot_component({"da_price_eur_per_kwh": "tab:blue",
                             "rt_price_eur_per_kwh": "tab:orange"}, post_process=_tick_axis),
        make_plot_component({"slot_traded_kwh": "tab:green"}, post_process=_tick_axis),
        make_plot_component({"battery_soc_frac": "tab:purple"}, post_process=_tick_axis),
        make_plot_component({"substation_import_kw": "tab:red"}, post_process=_tick_axis),
    ]
    SolaraViz(model, components=components, model_params=params,
              name=f"vdg - {scenario.name}", play_interval=200)


def initial_values(params: dict[str, Any]) -> dict[str, Any]:
    """The model keywords of the page's controls at their initial values."""
    return {k: (v.value if isinstance(v, Slider) else v["value"] if isinstance(v, dict) else v)
            for k, v in params.items()}
