"""The unified prosumer market with bilateral trading coefficients (B-DER §4.2.2.4–4.2.2.5).

Households own a load, and some of them PV, a battery and an EV (the device models of
:mod:`grid.der`). Each household ``i`` has a grid account (import ``imp_i`` at the import price
``κ_t``, export ``exp_i`` at the feed-in price, 50 % of ``κ_t`` in B-DER) and trades ``d_ij`` with
every other household (``d_ij > 0``: ``i`` sells to ``j``). Its balance (B-DER (13c)) is::

    n_i + imp_i − exp_i = Σ_j d_ij,          n_i = pv_i + battery_i − load_i − ev_i

and its cost (B-DER (13a)) ``Σ_t κ·imp − κ_exp·exp + Σ_j γ_ij·|d_ij|`` with the bilateral trading
coefficients ``γ`` of eqs. (26)–(29). Reciprocity ``d_ij = −d_ji`` (13b) is a consensus
constraint: ``i`` holds ``d_ij`` and ``j`` holds ``−d_ji`` as copies of one global variable, so
the same engine (:mod:`grid.admm.engine`) and aggregator step that run the distributed OPF run the
market — B-DER (20)–(24a) is consensus ADMM on these copies, with the trade price the dual of
reciprocity. One engine, four modes:

* ``BS`` baseline — no trades, no network: each household alone against the grid;
* ``TS`` trade only — trades with coefficients ``γ``; no network model;
* ``GS`` grid only — the households sit on the buses of a feeder and the DistFlow network of
  :mod:`grid.admm.opf` carries their injections ``n_i``; exchange between households is free
  (``γ = 0``), its price is still the dual;
* ``TGS`` trade + grid — both (B-DER (22)).

In the grid modes the network losses are bought at the import price by the network's nodes
(``κ_t·r_i·l_i`` on every branch), so that the community's grid accounts plus losses equal the
substation import. The centralised reference solves the same parts as one cvxpy problem with
every copy of a global variable forced equal.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import cvxpy as cp
import numpy as np

from grid.admm.aggregator import Aggregator
from grid.admm.engine import AdmmEngine, AdmmOptions, AdmmRun, Node
from grid.admm.opf import RegionParts, build_region, partition
from grid.der import BatterySpec, EvSpec, PvSpec, build_batteries, build_evs, build_pv
from grid.feeders import Feeder
from grid.opf import OpfOptions
from market.errors import MarketError

log = logging.getLogger(__name__)

Mode = Literal["BS", "TS", "GS", "TGS"]
MODES: tuple[Mode, ...] = ("BS", "TS", "GS", "TGS")
RootBase = Literal["exchange", "purchases"]
ROOT_BASES: tuple[RootBase, ...] = ("exchange", "purchases")


@dataclass(frozen=True, slots=True)
class Household:
    """A market participant and its devices.

    Attributes:
        name: unique name.
        bus: the feeder bus it is connected to (used in the grid modes).
        pv: its PV system, if any (a household with PV is a prosumer).
        battery: its battery, if any.
        ev: its EV, if any.
    """

    name: str
    bus: object
    pv: PvSpec | None = None
    battery: BatterySpec | None = None
    ev: EvSpec | None = None

    @property
    def prosumer(self) -> bool:
        """Whether it owns PV."""
        return self.pv is not None


@dataclass(frozen=True, slots=True, eq=False)
class MarketInputs:
    """One horizon's data; arrays are ``(T, H)`` per household unless noted.

    Attributes:
        load_p_kw: inflexible load.
        load_q_kvar: reactive load (grid modes).
        pv_p_avail_kw: available PV power (0 for households without PV).
        price_import_eur_per_kwh: ``(T,)``.
        price_export_eur_per_kwh: ``(T,)``, not above the import price.
        ev_available: 0/1 availability of each household's EV (ignored without EV).
        ev_e_need_kwh: ``(H,)`` energy each EV needs over the horizon.
        battery_e_init_kwh: ``(H,)`` initial battery energy (default half capacity).
        gamma_eur_per_kwh: ``(T, H, H)`` bilateral trading coefficients (``TS``/``TGS``).
    """

    load_p_kw: np.ndarray
    load_q_kvar: np.ndarray
    pv_p_avail_kw: np.ndarray
    price_import_eur_per_kwh: np.ndarray
    price_export_eur_per_kwh: np.ndarray
    ev_available: np.ndarray | None = None
    ev_e_need_kwh: np.ndarray | None = None
    battery_e_init_kwh: np.ndarray | None = None
    gamma_eur_per_kwh: np.ndarray | None = None


def trading_coefficients(pv_kw: np.ndarray, load_kw: np.ndarray, chi: float = 10.0,
                         eur_per_unit: float = 0.01) -> np.ndarray:
    """Bilateral trading coefficients γ of B-DER eqs. (26)–(29).

    ``P_net = P_pv − P_load`` (26); buy and sell parts (27); each normalised by its household's
    maximum over the horizon, times ``χ/2`` (28); then ``γ_ij = χ`` when both want to sell or
    both want to buy, else ``χ − (γ^b_i + γ^b_j + γ^s_i + γ^s_j)`` (29). The report does not
    state the unit of χ = 10; read as euro cents per kWh (``eur_per_unit = 0.01``), γ stays
    below the gap between import and feed-in price, so trades can pay.

    Args:
        pv_kw: ``(T, H)`` PV generation.
        load_kw: ``(T, H)`` load.
        chi: χ, the largest coefficient.
        eur_per_unit: EUR per unit of χ.

    Returns:
        ``(T, H, H)`` coefficients in EUR/kWh, zero on the diagonal.
    """
    net = np.asarray(pv_kw, dtype=float) - np.asarray(load_kw, dtype=float)
    buy = np.where(net < 0, net, 0.0)
    sell = np.where(net > 0, net, 0.0)
    max_buy = np.min(buy, axis=0, keepdims=True)   # most negative
    max_sell = np.max(sell, axis=0, keepdims=True)
    gb = np.divide(chi * buy, 2 * max_buy, out=np.zeros_like(buy), where=max_buy < 0)
    gs = np.divide(chi * sell, 2 * max_sell, out=np.zeros_like(sell), where=max_sell > 0)
    both_sell = (gs[:, :, None] > 0) & (gs[:, None, :] > 0)
    both_buy = (gb[:, :, None] > 0) & (gb[:, None, :] > 0)
    other = chi - (gb[:, :, None] + gb[:, None, :] + gs[:, :, None] + gs[:, None, :])
    gamma = np.where(both_sell | both_buy, chi, other)
    h = net.shape[1]
    gamma[:, np.arange(h), np.arange(h)] = 0.0
    return np.clip(gamma, 0.0, chi) * eur_per_unit


@dataclass(frozen=True, slots=True, eq=False)
class MarketResult:
    """A solved market horizon.

    Attributes:
        mode: ``BS``, ``TS``, ``GS`` or ``TGS``.
        method: ``"central"`` or ``"admm"``.
        households: household names.
        prosumer: ``(H,)`` whether each household has PV.
        import_kw: ``(T, H)`` grid purchases.
        export_kw: ``(T, H)`` grid feed-in.
        trades_kw: ``(T, H, H)`` ``d_ij`` (``i`` sells to ``j`` when positive).
        trade_price_eur_per_kwh: ``(T, H, H)`` price of each trade (NaN without trading).
        import_cost_eur: ``(H,)`` import cost minus feed-in revenue.
        trade_cost_eur: ``(H,)`` payments for trades (negative: income).
        objective_eur: the optimised objective (with γ penalties and losses).
        substation_import_kw: ``(T,)`` import at the root (grid modes) or Σ of the accounts.
        network_cost_eur: losses at the import price plus the root's quadratic cost (grid
            modes).
        losses_kw: ``(T,)`` network losses (grid modes; zeros otherwise).
        v_pu: ``(T, n_buses)`` voltages (grid modes) or ``None``.
        run: the ADMM run, or ``None`` for central solves.
        solve_time_s: wall time.
        reciprocity_kw: ``max|d_ij + d_ji|`` over the households' own (unaveraged) trades.
    """

    mode: str
    method: str
    households: tuple[str, ...]
    prosumer: np.ndarray
    import_kw: np.ndarray
    export_kw: np.ndarray
    trades_kw: np.ndarray
    trade_price_eur_per_kwh: np.ndarray
    import_cost_eur: np.ndarray
    trade_cost_eur: np.ndarray
    objective_eur: float
    substation_import_kw: np.ndarray
    losses_kw: np.ndarray
    network_cost_eur: float = 0.0
    v_pu: np.ndarray | None = None
    run: AdmmRun | None = None
    solve_time_s: float = 0.0
    reciprocity_kw: float = 0.0


@dataclass(eq=False)
class _Piece:
    """Variables, constraints and coupling of one ADMM node under construction."""

    name: str
    rows: list[cp.Expression] = field(default_factory=list)
    keys: list[Hashable] = field(default_factory=list)
    objective: cp.Expression = field(default_factory=lambda: cp.Constant(0.0))
    constraints: list[cp.Constraint] = field(default_factory=list)
    trade_rows: dict[int, tuple[tuple[str, int, int], float]] = field(default_factory=dict)
    internal: list[tuple[tuple[str, int, int], cp.Constraint]] = field(default_factory=list)


class BilateralMarket:
    """The unified prosumer market in one of its four modes, built once per horizon length.

    Args:
        households: the participants.
        periods: T.
        step_min: period length.
        mode: ``BS``, ``TS``, ``GS`` or ``TGS``.
        feeder: the feeder the households sit on (grid modes).
        regions: how the feeder is split into ADMM nodes in the grid modes (``"bus"``: every
            bus with its households is a node; a number: that many subtree regions, whose
            households share a node and trade inside it under a local reciprocity constraint).
            The default, 2 regions, needs ~95 rounds where per-bus nodes need ~1,400 on the
            test feeder (see ``docs/admm.md``).
        admm: ADMM settings (``cost_scale_eur`` is set from the prices at solve time when 0).
        base_kw: unit of the coupling variables (trades and, in grid modes, the per-unit power
            base of the network), chosen near a household's size so that one ρ suits both.
        root_quadratic_eur_per_kw2h: grid modes: a cost ``α_t·p₀²`` per hour on the substation
            exchange ``p₀`` — Münsing's quadratic, possibly time-varying cost of the root
            "generator" (his eq. (6)), which B-DER's grid modes inherit (the grid connection at
            "feeder 0" is its "thermal generator", §4.3.2); it stands for upstream network
            losses and congestion and is paid by the network, not by the households' accounts.
            One value for every period, or ``(T,)`` values. 0 disables it.
        root_base: what that cost is charged on. ``"exchange"``: the net substation
            exchange ``p₀`` (physical flow; a feed-in cancels a neighbour's import).
            ``"purchases"``: the households' grid purchases ``Σᵢ imp_i`` — B-DER's reading, in
            which the power "imported from the utility grid at the root of the network" is the
            households' ``p^g_i`` of (1), (8) and feed-in is sold to the utility separately
            (§4.4); then a trade lowers the root's output and a feed-in does not. The region
            holding the root keeps a copy of every other region's purchases (consensus keys
            ``("g", region)``), so the cost stays local to one ADMM node.

    Raises:
        MarketError: a grid mode without feeder, a household on an unknown bus, duplicate names.
    """

    def __init__(self, households: Sequence[Household], periods: int, step_min: int,
                 mode: Mode, feeder: Feeder | None = None, regions: str | int = 2,
                 admm: AdmmOptions | None = None, base_kw: float = 10.0,
                 root_quadratic_eur_per_kw2h: float | Sequence[float] | np.ndarray = 0.0,
                 root_base: RootBase = "exchange") -> None:
        if mode not in MODES:
            raise MarketError(f"mode must be one of {MODES}, got {mode!r}")
        if root_base not in ROOT_BASES:
            raise MarketError(f"root_base must be one of {ROOT_BASES}, got {root_base!r}")
        self.root_base = root_base
        self.households = tuple(households)
        names = [h.name for h in self.households]
        if len(set(names)) != len(names):
            raise MarketError("household names must be unique")
        if len(self.households) < 2 and mode != "BS":
            raise MarketError("trading needs at least two households")
        self.grid = mode in ("GS", "TGS")
        self.trading = mode != "BS"
        if self.grid and feeder is None:
            raise MarketError(f"mode {mode} needs a feeder")
        if self.grid:
            assert feeder is not None
            unknown = [h.bus for h in self.households if h.bus not in feeder.graph]
            if unknown or any(h.bus == feeder.root for h in self.households):
                raise MarketError(f"households must sit on non-root buses of {feeder.name!r}; "
                                  f"bad buses: {unknown or [feeder.root]}")
        self.mode, self.periods, self.step_min = mode, periods, step_min
        self.dt_h = step_min / 60.0
        self.feeder = feeder
        self.base_kw = base_kw
        alpha = np.broadcast_to(np.asarray(root_quadratic_eur_per_kw2h, dtype=float),
                                (periods,)).copy()
        if not np.all(np.isfinite(alpha)) or np.any(alpha < 0):
            raise MarketError("root_quadratic_eur_per_kw2h must be finite and >= 0")
        self.root_alpha = alpha
        self.admm_options = admm or AdmmOptions(cost_scale_eur=0.0)
        T, H = periods, len(self.households)
        self.p_imp = cp.Parameter(T, nonneg=True, name="price_import")
        self.p_exp = cp.Parameter(T, nonneg=True, name="price_export")
        self.gamma = [cp.Parameter((H - 1, T), nonneg=True, name=f"gamma_{i}")
                      if self.trading and H > 1 else None for i in range(H)]
        self._build_households()
        self._pieces = self._assemble(regions)
        self._engine: AdmmEngine | None = None
        self._central: cp.Problem | None = None
        self._central_eq: list[tuple[Any, float, cp.Constraint]] = []

    # -----------------------------------------------------------------------------------------
    def _build_households(self) -> None:
        T, dt = self.periods, self.dt_h
        H = len(self.households)
        self.load = cp.Parameter((T, H), nonneg=True, name="load_p_kw")
        self.load_q = cp.Parameter((T, H), name="load_q_kvar")
        self.hh: list[dict[str, Any]] = []
        self.parts: list[RegionParts] = []
        for i, h in enumerate(self.households):
            imp = cp.Variable(T, nonneg=True, name=f"imp_{i}")
            exp = cp.Variable(T, nonneg=True, name=f"exp_{i}")
            cons: list[cp.Constraint] = []
            net = -self.load[:, i]
            blocks = {}
            if h.pv is not None:
                b = build_pv([h.pv], T)
                blocks["pv"] = b
                net = net + b.p_kw[0]
                cons += b.constraints
            if h.battery is not None:
                b = build_batteries([h.battery], T, dt)
                blocks["battery"] = b
                net = net + b.p_kw[0]
                cons += b.constraints
            if h.ev is not None:
                b = build_evs([h.ev], T, dt)
                blocks["ev"] = b
                net = net + b.p_kw[0]
                cons += b.constraints
            cost = dt * (self.p_imp @ imp - self.p_exp @ exp)
            for b in blocks.values():
                cost = cost + b.cost_eur
            others = [j for j in range(H) if j != i]
            d = cp.Variable((len(others), T), name=f"d_{i}") if self.trading else None
            sold = cp.sum(d, axis=0) if d is not None else 0
            cons.append(net + imp - exp == sold)
            if d is not None:
                cost = cost + dt * cp.sum(cp.multiply(self.gamma[i], cp.abs(d)))
            self.hh.append({"imp": imp, "exp": exp, "net": net, "d": d, "others": others,
                            "blocks": blocks, "cost": cost, "cons": cons})

    def _trade_rows(self, i: int, piece: _Piece, members: set[int]) -> None:
        d = self.hh[i]["d"]
        if d is None:
            return
        for k, j in enumerate(self.hh[i]["others"]):
            a, b = min(i, j), max(i, j)
            sign = 1.0 if i == a else -1.0
            if j in members:  # both in this node: reciprocity is a local constraint
                if i == a:
                    kb = self.hh[b]["others"].index(a)
                    con = d[k] + self.hh[b]["d"][kb] == 0
                    piece.internal.append((("d", a, b), con))
                    piece.constraints.append(con)
                continue
            piece.trade_rows[len(piece.rows)] = (("d", a, b), sign)
            piece.rows.append(sign * d[k] / self.base_kw)
            piece.keys.append(("d", a, b))

    def _assemble(self, regions: str | int) -> list[_Piece]:
        pieces: list[_Piece] = []
        if not self.grid:
            for i, h in enumerate(self.households):
                p = _Piece(h.name, objective=self.hh[i]["cost"],
                           constraints=list(self.hh[i]["cons"]))
                self._trade_rows(i, p, {i})
                pieces.append(p)
            return pieces
        f = self.feeder
        assert f is not None
        at_bus: dict[object, list[int]] = {}
        for i, h in enumerate(self.households):
            at_bus.setdefault(h.bus, []).append(i)
        opts = OpfOptions(objective="losses", loss_price_eur_per_kwh=0.0,
                          s_base_kva=self.base_kw)
        rescale = self.base_kw / (f.s_base_mva * 1000.0)
        root_piece: tuple[_Piece, list[int]] | None = None
        bought: list[tuple[str, list[int]]] = []   # other regions' households
        for region in partition(f, regions):
            members = [i for b in region for i in at_bus.get(b, [])]
            extra_p = {b: sum((self.hh[i]["net"] for i in at_bus[b]), cp.Constant(0.0))
                       for b in region if b in at_bus}
            extra_q = {b: -sum((self.load_q[:, i] for i in at_bus[b]), cp.Constant(0.0))
                       for b in region if b in at_bus}
            parts, _ = build_region(f, region, self.periods, self.step_min, self.base_kw,
                                    None, opts, extra_p, extra_q)
            self.parts.append(parts)
            p = _Piece(parts.name, list(parts.coupling), list(parts.keys), parts.objective,
                       list(parts.constraints))
            ell = parts.variables["l"]
            nr = [b for b in region if b != f.root]
            if ell is not None:
                r = np.array([f.branch(b).r_pu * rescale for b in nr])
                p.objective = p.objective + self.dt_h * self.base_kw * cp.sum(
                    cp.multiply(self.p_imp, r @ ell))
            p0 = parts.variables.get("p0")
            if p0 is not None:
                root_piece = (p, members)
                if self.root_base == "exchange" and np.any(self.root_alpha > 0):
                    p.objective = p.objective + self.dt_h * self.base_kw**2 * cp.sum(
                        cp.multiply(self.root_alpha, cp.square(p0)))
            elif members:
                bought.append((parts.name, members))
            for i in members:
                p.objective = p.objective + self.hh[i]["cost"]
                p.constraints += self.hh[i]["cons"]
                self._trade_rows(i, p, set(members))
            pieces.append(p)
        if self.root_base == "purchases" and np.any(self.root_alpha > 0):
            assert root_piece is not None
            self._purchases_cost(root_piece, bought, {p.name: p for p in pieces})
        return pieces

    def _purchases_cost(self, root: tuple[_Piece, list[int]], bought: list[tuple[str, list[int]]],
                        by_name: dict[str, _Piece]) -> None:
        """``α_t·(Σᵢ imp_i)²`` at the root's node; other regions' purchases reach it as copies."""
        piece, own = root
        total = sum((self.hh[i]["imp"] for i in own), cp.Constant(np.zeros(self.periods)))
        for name, members in bought:
            key = ("g", name)
            other = by_name[name]
            other.rows.append(sum((self.hh[i]["imp"] for i in members),
                                  cp.Constant(np.zeros(self.periods))) / self.base_kw)
            other.keys.append(key)
            copy = cp.Variable(self.periods, nonneg=True, name=f"purchases_{name}")
            piece.rows.append(copy / self.base_kw)
            piece.keys.append(key)
            total = total + copy
        piece.objective = piece.objective + self.dt_h * cp.sum(
            cp.multiply(self.root_alpha, cp.square(total)))

    # -----------------------------------------------------------------------------------------
    def _set(self, inputs: MarketInputs) -> None:
        T, H = self.periods, len(self.households)

        def arr(name: str, shape: tuple[int, ...]) -> np.ndarray:
            a = getattr(inputs, name)
            if a is None:
                raise MarketError(f"inputs.{name} is required")
            a = np.asarray(a, dtype=float)
            if a.shape != shape or not np.all(np.isfinite(a)):
                raise MarketError(f"inputs.{name} must be finite with shape {shape}, got "
                                  f"{a.shape}")
            return a

        imp = arr("price_import_eur_per_kwh", (T,))
        exp = arr("price_export_eur_per_kwh", (T,))
        if np.any(exp > imp + 1e-12) or np.any(exp < 0):
            raise MarketError("inputs.price_export_eur_per_kwh must lie in [0, import price]")
        self.p_imp.value, self.p_exp.value = imp, exp
        self.load.value = np.clip(arr("load_p_kw", (T, H)), 0, None)
        self.load_q.value = arr("load_q_kvar", (T, H))
        pv = arr("pv_p_avail_kw", (T, H))
        ev_av = inputs.ev_available
        need = inputs.ev_e_need_kwh
        gamma = None
        if self.trading:
            gamma = (np.zeros((T, H, H)) if self.mode == "GS"
                     else arr("gamma_eur_per_kwh", (T, H, H)))
        for i, (h, d) in enumerate(zip(self.households, self.hh, strict=True)):
            blocks = d["blocks"]
            if "pv" in blocks:
                blocks["pv"].parameters["p_avail_kw"].value = np.clip(pv[:, i], 0, None)[None]
            if "battery" in blocks:
                assert h.battery is not None
                e0 = (0.5 * h.battery.e_max_kwh if inputs.battery_e_init_kwh is None
                      else float(inputs.battery_e_init_kwh[i]))
                blocks["battery"].parameters["e_init_kwh"].value = np.array([e0])
            if "ev" in blocks:
                if ev_av is None or need is None:
                    raise MarketError("inputs.ev_available and ev_e_need_kwh are required "
                                      "with EVs")
                blocks["ev"].parameters["available"].value = np.asarray(ev_av)[:, i][None]
                blocks["ev"].parameters["e_need_kwh"].value = np.array([float(need[i])])
            g_par = self.gamma[i]
            if gamma is not None and g_par is not None:
                g_par.value = gamma[:, i, d["others"]].T
        if self.grid:
            for parts in self.parts:
                prm = parts.parameters
                if prm.get("load_p_kw") is not None:
                    prm["load_p_kw"].value = np.zeros(prm["load_p_kw"].shape)
                    prm["load_q_kvar"].value = np.zeros(prm["load_q_kvar"].shape)
                if "root_load_p_kw" in prm:
                    for k in ("root_load_p_kw", "root_load_q_kvar"):
                        prm[k].value = np.zeros(T)
                    prm["price_import"].value = imp
                    prm["price_export"].value = exp

    # -----------------------------------------------------------------------------------------
    def solve(self, inputs: MarketInputs, method: Literal["central", "admm"] = "admm",
              aggregator: Aggregator | None = None,
              reference_objective_eur: float | None = None) -> MarketResult:
        """Solve one horizon.

        Args:
            inputs: the data.
            method: ``"central"`` (one cvxpy problem with all copies equal) or ``"admm"``.
                ``BS`` has no coupling and is always solved centrally.
            aggregator: the ADMM aggregator step.
            reference_objective_eur: the central optimum (logged as the gap).

        Raises:
            MarketError: bad inputs or a failed solve.
        """
        t0 = time.perf_counter()
        self._set(inputs)
        if method == "admm" and self.trading:
            run = self._solve_admm(inputs, aggregator, reference_objective_eur)
            prices = self._prices_admm(run)
        else:
            run = None
            prices = self._solve_central()
        return self._result(method if run else "central", run, prices,
                            time.perf_counter() - t0)

    def _solve_central(self) -> np.ndarray:
        if self._central is None:
            copies: dict[Hashable, list[tuple[cp.Expression, float]]] = {}
            for p in self._pieces:
                for r, (row, key) in enumerate(zip(p.rows, p.keys, strict=True)):
                    sign = p.trade_rows[r][1] if r in p.trade_rows else 0.0
                    copies.setdefault(key, []).append((row, sign))
            eq = []
            for key, rows in copies.items():
                for other, _ in rows[1:]:
                    eq.append((key, rows[0][1], rows[0][0] == other))
            self._central_eq = eq
            self._central = cp.Problem(
                cp.Minimize(sum((p.objective for p in self._pieces), cp.Constant(0.0))),
                [c for p in self._pieces for c in p.constraints] + [c for _, _, c in eq])
        try:
            self._central.solve(solver="CLARABEL")
        except cp.error.SolverError as exc:
            raise MarketError(f"market {self.mode}: solver failed: {exc}") from exc
        if self._central.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            raise MarketError(f"market {self.mode}: solver status {self._central.status}")
        T, H = self.periods, len(self.households)
        prices = np.full((T, H, H), np.nan)
        for key, sign, con in self._central_eq:
            if sign:
                _, a, b = key
                # ν of (first copy − other copy = 0): a's marginal cost of selling d_ab is
                # −ν/base per kW when a holds the first copy (+d_ab), +ν/base when b does
                price = -sign * np.asarray(con.dual_value) / (self.dt_h * self.base_kw)
                prices[:, a, b] = prices[:, b, a] = price
        self._internal_prices(prices, 1.0)
        return prices

    def _internal_prices(self, prices: np.ndarray, cost_scale: float) -> None:
        """Prices of trades inside one node: ν of ``d_ab + d_ba = 0`` is −(a's marginal cost)."""
        for p in self._pieces:
            for (_, a, b), con in p.internal:
                if con.dual_value is not None:
                    prices[:, a, b] = prices[:, b, a] = (
                        -np.asarray(con.dual_value) * cost_scale / self.dt_h)

    def _solve_admm(self, inputs: MarketInputs, aggregator: Aggregator | None,
                    reference: float | None) -> AdmmRun:
        opts = self.admm_options
        if opts.cost_scale_eur <= 0 or self._engine is None:
            scale = opts.cost_scale_eur if opts.cost_scale_eur > 0 else float(
                np.mean(inputs.price_import_eur_per_kwh)) * self.dt_h * self.base_kw
            nodes = [Node(p.name, cp.vstack(p.rows) if p.rows else cp.Constant(
                np.zeros((0, self.periods))), tuple(p.keys), p.objective, p.constraints)
                for p in self._pieces]
            self._engine = AdmmEngine(nodes, replace(opts, cost_scale_eur=scale))
        return self._engine.run(aggregator, reference_objective_eur=reference)

    def _prices_admm(self, run: AdmmRun) -> np.ndarray:
        assert self._engine is not None
        T, H = self.periods, len(self.households)
        prices = np.full((T, H, H), np.nan)
        scale = self._engine.options.cost_scale_eur / (self.dt_h * self.base_kw)
        for piece, y in zip(self._pieces, run.y, strict=True):
            for row, (key, sign) in piece.trade_rows.items():
                # y = −∂f̃/∂row at consensus; the seller's marginal cost of d_ab per kWh is
                # −y·scale on a's copy (+d_ab) and +y·scale on b's copy (−d_ba)
                _, a, b = key
                prices[:, a, b] = prices[:, b, a] = -sign * y[row] * scale
        self._internal_prices(prices, self._engine.options.cost_scale_eur)
        return prices

    # -----------------------------------------------------------------------------------------
    def _result(self, method: str, run: AdmmRun | None, prices: np.ndarray,
                wall_s: float) -> MarketResult:
        T, H, dt = self.periods, len(self.households), self.dt_h
        imp = np.column_stack([np.asarray(d["imp"].value) for d in self.hh])
        exp = np.column_stack([np.asarray(d["exp"].value) for d in self.hh])
        trades = np.zeros((T, H, H))
        for i, d in enumerate(self.hh):
            if d["d"] is not None:
                trades[:, i, d["others"]] = np.asarray(d["d"].value).T
        recip = float(np.max(np.abs(trades + np.transpose(trades, (0, 2, 1)))))
        if self.trading:  # report reciprocal trades: the average of the two copies
            trades = 0.5 * (trades - np.transpose(trades, (0, 2, 1)))
        pi = np.asarray(self.p_imp.value, dtype=float)
        pe = np.asarray(self.p_exp.value, dtype=float)
        import_cost = dt * (pi @ imp - pe @ exp)
        pay = np.where(np.isnan(prices), 0.0, prices) * trades
        trade_cost = -dt * pay.sum(axis=(0, 2))
        traded = np.abs(trades) > 1e-6
        prices = np.where(traded, prices, np.nan)
        sub = (imp - exp).sum(axis=1)
        charged = imp.sum(axis=1)   # root_base "purchases"
        losses = np.zeros(T)
        v = None
        if self.grid:
            f = self.feeder
            assert f is not None
            rescale = self.base_kw / (f.s_base_mva * 1000.0)
            bpos = {b: k for k, b in enumerate(f.buses)}
            v = np.zeros((T, f.n_buses))
            for parts in self.parts:
                var = parts.variables
                nr = [b for b in parts.buses if b != f.root]
                if var["l"] is not None:
                    r = np.array([f.branch(b).r_pu * rescale for b in nr])
                    losses += (r @ var["l"].value) * self.base_kw
                    for k, b in enumerate(nr):
                        v[:, bpos[b]] = np.sqrt(np.clip(var["v"].value[k], 0, None))
                if var.get("p0") is not None:
                    sub = np.asarray(var["p0"].value) * self.base_kw
                    v[:, 0] = np.sqrt(np.asarray(var["v_root"].value))
            if self.root_base == "exchange":
                charged = sub
        objective = (float(self._central.value) if run is None and self._central is not None
                     else run.objective_eur if run is not None
                     else float(np.sum([np.asarray(p.objective.value, dtype=float)
                                       for p in self._pieces])))
        return MarketResult(
            mode=self.mode, method=method, households=tuple(h.name for h in self.households),
            prosumer=np.array([h.prosumer for h in self.households]), import_kw=imp,
            export_kw=exp, trades_kw=trades, trade_price_eur_per_kwh=prices,
            import_cost_eur=import_cost, trade_cost_eur=trade_cost, objective_eur=objective,
            substation_import_kw=sub, losses_kw=losses,
            network_cost_eur=float(dt * (pi @ losses) + dt * float(self.root_alpha @ charged**2))
            if self.grid else 0.0, v_pu=v, run=run, solve_time_s=wall_s,
            reciprocity_kw=recip)


def peak_mask(periods: int, step_min: int, start_hour: float = 0.0,
              peaks: Sequence[tuple[float, float]] = ((6, 9), (17, 20))) -> np.ndarray:
    """Periods inside the peak hours (B-DER Table 5: 6–9 AM and 5–8 PM)."""
    hours = (start_hour + np.arange(periods) * step_min / 60.0) % 24
    return np.any([(hours >= a) & (hours < b) for a, b in peaks], axis=0)


__all__ = ["MODES", "ROOT_BASES", "BilateralMarket", "Household", "MarketInputs", "MarketResult",
           "peak_mask", "trading_coefficients"]
del math
