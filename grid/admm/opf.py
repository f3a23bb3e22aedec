"""The DistFlow OPF of :mod:`grid.opf` split into consensus-ADMM nodes.

A *region* is a connected set of buses; the per-bus split of Münsing et al. (2017) §IV-D makes
every bus a region, the subtree split cuts the feeder into a few connected pieces. Inside a
region the branch-flow equations of :mod:`grid.opf` hold on the region's own variables; across a
cut branch from bus ``a`` (in region A) to bus ``b`` (in region B) both regions hold copies of
``P_b``, ``Q_b`` (B's own flow, A's child flow) and ``v_a`` (A's own voltage, B's parent
voltage). With every bus its own region the coupling vector of bus ``i`` is exactly Münsing's
``x̃ᵢ = [Pᵢ, Qᵢ, vᵢ, P_δ(i), Q_δ(i), v_π(i)]`` per period.

Global-variable keys are ``("P", bus)``, ``("Q", bus)`` and ``("v", bus)``; values are in the
same per unit as :class:`grid.opf.OpfModel` (power base ``s_base_kw``, squared voltages).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import cvxpy as cp
import numpy as np

from grid.admm.aggregator import Aggregator
from grid.admm.engine import AdmmEngine, AdmmOptions, AdmmRun, Node
from grid.der import (
    DeviceBlock,
)
from grid.errors import OpfError
from grid.feeders import Feeder
from grid.opf import Devices, OpfInputs, OpfModel, OpfOptions, OpfResult, device_blocks

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# partitions


def partition(feeder: Feeder, kind: str | int = "bus") -> tuple[tuple[object, ...], ...]:
    """Split the feeder's buses into connected regions.

    Args:
        feeder: the feeder.
        kind: ``"bus"`` (one region per bus) or a number of regions ``n``: the largest region
            is split ``n − 1`` times at the branch that halves it best.

    Returns:
        The regions, each a tuple of buses in the feeder's breadth-first order; the root's
        region first.
    """
    buses = feeder.buses
    if kind == "bus":
        return tuple((b,) for b in buses)
    n = int(kind)
    if n < 1:
        raise OpfError(f"a partition needs at least 1 region, got {kind!r}", "invalid")
    order = {b: k for k, b in enumerate(buses)}
    regions: list[set[object]] = [set(buses)]
    # Split the largest region n-1 times at the branch whose downstream part (inside the
    # region) is closest to half of it: balanced, connected pieces.
    for _ in range(min(n, len(buses)) - 1):
        big = max(regions, key=len)
        size: dict[object, int] = {}
        for b in sorted(big, key=order.__getitem__, reverse=True):
            size[b] = 1 + sum(size[c] for c in feeder.children(b) if c in big)
        top = min(big, key=order.__getitem__)
        cands = [b for b in big if b != top]
        if not cands:
            break
        cut = min(cands, key=lambda b: (abs(2 * size[b] - len(big)), order[b]))
        below = {b for b in big if _under(feeder, b, cut, big)}
        regions.remove(big)
        regions += [big - below, below]
    out = [tuple(sorted(r, key=order.__getitem__)) for r in regions]
    out.sort(key=lambda r: order[r[0]])
    return tuple(out)


def _under(feeder: Feeder, bus: object, top: object, region: set[object]) -> bool:
    """Whether ``bus`` lies at or below ``top`` without leaving ``region``."""
    while bus is not None and bus in region:
        if bus == top:
            return True
        bus = feeder.parent(bus)
    return False


# --------------------------------------------------------------------------------------------
# one region


@dataclass(eq=False)
class RegionParts:
    """The cvxpy pieces of one region before it becomes a :class:`Node`.

    Callers such as a market may add their own variables, costs, constraints and coupling rows.

    Attributes:
        name: readable name.
        buses: the region's buses (breadth-first order).
        coupling: coupling rows, each of shape ``(T,)``.
        keys: one global key per coupling row.
        objective: cost in EUR.
        constraints: constraints.
        balance_p: per non-root bus of the region, its real-power balance constraint (its dual
            gives the DLMP); for the root, the substation balance.
        parameters: parameters to set per solve, by name.
        init: initial value per coupling row (``(T,)`` arrays) or ``None``.
    """

    name: str
    buses: tuple[object, ...]
    coupling: list[cp.Expression] = field(default_factory=list)
    keys: list[Hashable] = field(default_factory=list)
    objective: cp.Expression = field(default_factory=lambda: cp.Constant(0.0))
    constraints: list[cp.Constraint] = field(default_factory=list)
    balance_p: dict[object, cp.Constraint] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    blocks: dict[str, DeviceBlock] = field(default_factory=dict)

    def to_node(self) -> Node:
        """The region as an ADMM node."""
        coupling = cp.vstack(self.coupling) if self.coupling else cp.Constant(np.zeros((0, 1)))
        return Node(self.name, coupling, tuple(self.keys), self.objective, self.constraints)


def build_region(feeder: Feeder, region: Sequence[object], periods: int, step_min: int,
                 s_base_kw: float, devices: Devices | None = None,
                 options: OpfOptions | None = None,
                 extra_p_kw: Mapping[object, cp.Expression] | None = None,
                 extra_q_kvar: Mapping[object, cp.Expression] | None = None,
                 region_of: Mapping[object, int] | None = None,
                 ) -> tuple[RegionParts, dict[str, list[int]]]:
    """Build one region's DistFlow subproblem.

    Args:
        feeder: the feeder.
        region: the region's buses (connected).
        periods: T.
        step_min: period length.
        s_base_kw: per-unit power base (as :class:`grid.opf.OpfModel` picks it).
        devices: all devices of the feeder; those on the region's buses are built here.
        options: model options (objective, limits).
        extra_p_kw: extra real injection per bus of the region, shape ``(T,)`` expressions in
            kW (a market's households).
        extra_q_kvar: extra reactive injection per bus.
        region_of: region index of every bus (to know which neighbours are outside).

    Returns:
        The region's parts and, per device kind, the indices of its devices in ``devices``.
    """
    opts = options or OpfOptions()
    devices = devices or Devices()
    T, dt_h = periods, step_min / 60.0
    S = tuple(region)
    members = set(S)
    root = feeder.root
    has_root = root in members
    nr = [b for b in S if b != root]
    pos = {b: k for k, b in enumerate(nr)}
    n = len(nr)
    rescale = s_base_kw / (feeder.s_base_mva * 1000.0)
    parts = RegionParts(name=f"bus {S[0]}" if len(S) == 1 else f"region {S[0]} (+{len(S)-1})",
                        buses=S)
    ext_children = [c for b in S for c in feeder.children(b) if c not in members]
    epos = {c: k for k, c in enumerate(ext_children)}
    top = S[0]
    top_parent = feeder.parent(top) if top != root else None

    P: Any = cp.Variable((n, T), name="P") if n else None
    Q: Any = cp.Variable((n, T), name="Q") if n else None
    ell: Any = cp.Variable((n, T), nonneg=True, name="l") if n else None
    v: Any = cp.Variable((n, T), name="v") if n else None
    Pe: Any = cp.Variable((len(ext_children), T), name="P_child") if ext_children else None
    Qe: Any = cp.Variable((len(ext_children), T), name="Q_child") if ext_children else None
    vpar: Any = cp.Variable(T, name="v_parent") if top_parent is not None else None
    vroot: Any = cp.Variable(T, name="v_root") if has_root else None
    parts.variables.update(P=P, Q=Q, l=ell, v=v, P_child=Pe, Q_child=Qe, v_parent=vpar,
                           v_root=vroot)

    def p_of(bus: object) -> cp.Expression:
        return P[pos[bus]] if bus in pos else Pe[epos[bus]]

    def q_of(bus: object) -> cp.Expression:
        return Q[pos[bus]] if bus in pos else Qe[epos[bus]]

    def v_of(bus: object) -> cp.Expression:
        if bus == root and has_root:
            return vroot
        if bus in pos:
            return v[pos[bus]]
        return vpar

    load_p: Any = cp.Parameter((n, T), name="load_p_kw") if n else None
    load_q: Any = cp.Parameter((n, T), name="load_q_kvar") if n else None
    parts.parameters.update(load_p_kw=load_p, load_q_kvar=load_q)
    blocks, index = device_blocks(devices, members, T, dt_h)
    if any(bus == root for b in blocks.values() for bus in b.buses):
        raise OpfError("devices at the substation bus are not supported", "invalid")
    parts.blocks = blocks
    inj_p: dict[object, list[cp.Expression]] = {b: [] for b in nr}
    inj_q: dict[object, list[cp.Expression]] = {b: [] for b in nr}
    for blk in blocks.values():
        for k, bus in enumerate(blk.buses):
            inj_p[bus].append(blk.p_kw[k])
            if blk.q_kvar is not None:
                inj_q[bus].append(blk.q_kvar[k])
        parts.constraints += blk.constraints
    for bus, e in (extra_p_kw or {}).items():
        if bus in inj_p:
            inj_p[bus].append(e)
    for bus, e in (extra_q_kvar or {}).items():
        if bus in inj_q:
            inj_q[bus].append(e)

    cons = parts.constraints
    cost = cp.Constant(0.0)
    scale = dt_h * s_base_kw
    for b in nr:
        k = pos[b]
        br = feeder.branch(b)
        r, x, tau2 = br.r_pu * rescale, br.x_pu * rescale, br.tau**2
        kids = feeder.children(b)
        flow_out_p = sum((p_of(c) for c in kids), cp.Constant(np.zeros(T)))
        flow_out_q = sum((q_of(c) for c in kids), cp.Constant(np.zeros(T)))
        ip = sum(inj_p[b], cp.Constant(np.zeros(T))) / s_base_kw - load_p[k] / s_base_kw
        iq = sum(inj_q[b], cp.Constant(np.zeros(T))) / s_base_kw - load_q[k] / s_base_kw
        bal = P[k] - r * ell[k] - flow_out_p + ip == 0
        parts.balance_p[b] = bal
        w = v_of(br.parent) / tau2
        cons += [
            bal,
            Q[k] - x * ell[k] - flow_out_q + iq == 0,
            v[k] == w - 2 * (r * P[k] + x * Q[k]) + (r**2 + x**2) * ell[k],
            cp.SOC(ell[k] + w, cp.vstack([2 * P[k], 2 * Q[k], ell[k] - w]), axis=0),
        ]
        if opts.voltage_limits:
            lo, hi = feeder.v_limits_pu(b)
            cons += [v[k] >= lo**2, v[k] <= hi**2]
        imax = br.i_max_pu / rescale
        if opts.current_limits and math.isfinite(imax) and imax < 100.0:
            cons.append(ell[k] <= imax**2)
        if opts.objective != "import_cost":
            cost = cost + cp.sum(r * ell[k]) * scale * opts.loss_price_eur_per_kwh
    if has_root:
        p0 = cp.Variable(T, name="p0")
        q0 = cp.Variable(T, name="q0")
        v0 = cp.Parameter(nonneg=True, name="v0", value=feeder.v_root_pu**2)
        root_p = cp.Parameter(T, name="root_load_p_kw")
        root_q = cp.Parameter(T, name="root_load_q_kvar")
        price_imp = cp.Parameter(T, name="price_import")
        price_exp = cp.Parameter(T, name="price_export")
        parts.parameters.update(v0=v0, root_load_p_kw=root_p, root_load_q_kvar=root_q,
                                price_import=price_imp, price_export=price_exp)
        parts.variables.update(p0=p0, q0=q0)
        kids = feeder.children(root)
        bal0 = p0 - sum((p_of(c) for c in kids), cp.Constant(np.zeros(T))) == root_p / s_base_kw
        parts.balance_p[root] = bal0
        cons += [bal0,
                 q0 - sum((q_of(c) for c in kids), cp.Constant(np.zeros(T)))
                 == root_q / s_base_kw,
                 vroot == v0]
        if opts.objective != "losses":
            cost = cost + cp.sum(cp.maximum(cp.multiply(price_imp, p0),
                                            cp.multiply(price_exp, p0))) * scale
    if opts.objective != "losses":
        for blk in blocks.values():
            cost = cost + blk.cost_eur
    parts.objective = cost

    # coupling rows
    if top_parent is not None:
        parts.coupling += [P[pos[top]], Q[pos[top]], vpar]
        parts.keys += [("P", top), ("Q", top), ("v", top_parent)]
    for c in ext_children:
        parts.coupling += [Pe[epos[c]], Qe[epos[c]]]
        parts.keys += [("P", c), ("Q", c)]
    for b in S:
        if any(c not in members for c in feeder.children(b)):
            parts.coupling.append(v_of(b))
            parts.keys.append(("v", b))
    del region_of
    return parts, index


# --------------------------------------------------------------------------------------------
# the distributed OPF


@dataclass(frozen=True, slots=True, eq=False)
class AdmmOpfResult:
    """An ADMM OPF solve.

    Attributes:
        opf: the solution in the form of the centralised one (flows and voltages are the
            regions' own values; DLMPs from the duals of the local balance constraints).
        run: the ADMM run (iterations, residuals, history).
        regions: the regions used.
    """

    opf: OpfResult
    run: AdmmRun
    regions: tuple[tuple[object, ...], ...]


VARIANTS: dict[str, dict[str, Any]] = {
    # one node per bus (Münsing et al. §IV-D); "plain" is the papers' set-up (zero start duals)
    "plain": {"partition": "bus", "rho": 1.0, "alpha": 1.0, "residual_balancing": False,
              "anderson": 0, "warm_duals": False},
    "warm": {"partition": "bus", "rho": 1.0, "alpha": 1.0, "residual_balancing": False,
             "anderson": 0, "warm_duals": True},
    "balanced": {"partition": "bus", "rho": 1.0, "alpha": 1.0, "residual_balancing": True,
                 "anderson": 0, "warm_duals": True},
    "relaxed": {"partition": "bus", "rho": 1.0, "alpha": 1.6, "residual_balancing": True,
                "anderson": 0, "warm_duals": True},
    "anderson": {"partition": "bus", "rho": 1.0, "alpha": 1.0, "residual_balancing": False,
                 "anderson": 5, "warm_duals": True},
    # fewer, larger nodes: subtrees of the feeder
    "subtree4": {"partition": 4, "rho": 1.0, "alpha": 1.0, "residual_balancing": True,
                 "anderson": 10, "warm_duals": True},
    "subtree2": {"partition": 2, "rho": 1.0, "alpha": 1.0, "residual_balancing": True,
                 "anderson": 10, "warm_duals": True},
}
"""Named algorithm variants (see ``docs/admm.md`` for the measurements behind the default).

Keys: ``partition`` (``"bus"`` or a number of subtree regions), ``rho``, ``alpha``
(over-relaxation), ``residual_balancing``, ``anderson`` (memory; 0 = off) and ``warm_duals``
(start duals from :meth:`AdmmOpf.initial_duals`, else zero).
"""

DEFAULT_VARIANT = "subtree2"


class AdmmOpf:
    """The DistFlow OPF of a feeder solved by consensus ADMM over regions.

    Args:
        feeder: the feeder.
        periods: T.
        step_min: period length.
        devices: controllable devices.
        options: model options (as for the centralised OPF).
        admm: algorithm settings; ``rho`` is on costs scaled to O(1) per p.u.
        regions: ``"bus"``, a number of subtree regions, or explicit regions.
        warm_duals: start the duals from :meth:`initial_duals` (tariff and LinDistFlow)
            instead of zero.
    """

    def __init__(self, feeder: Feeder, periods: int, step_min: int,
                 devices: Devices | None = None, options: OpfOptions | None = None,
                 admm: AdmmOptions | None = None,
                 regions: str | int | Sequence[Sequence[object]] = "bus",
                 warm_duals: bool = True) -> None:
        t0 = time.perf_counter()
        self.warm_duals = warm_duals
        self.feeder = feeder
        self.periods = periods
        self.step_min = step_min
        self.devices = devices or Devices()
        self.options = options or OpfOptions()
        self.s_base_kw = self.options.s_base_kva or _auto_base(feeder)
        self.regions = (partition(feeder, regions) if isinstance(regions, str | int)
                        else tuple(tuple(r) for r in regions))
        covered = [b for r in self.regions for b in r]
        if sorted(map(str, covered)) != sorted(map(str, feeder.buses)):
            raise OpfError("regions must cover every bus exactly once", "invalid")
        self.parts: list[RegionParts] = []
        self.index: list[dict[str, list[int]]] = []
        for r in self.regions:
            p, idx = build_region(feeder, r, periods, step_min, self.s_base_kw, self.devices,
                                  self.options)
            self.parts.append(p)
            self.index.append(idx)
        base = admm or AdmmOptions()
        self.engine = AdmmEngine([p.to_node() for p in self.parts], base)
        self.build_time_s = time.perf_counter() - t0
        self._load_rows = {b: [k for k, a in enumerate(feeder.loads) if a.bus == b]
                           for b in feeder.buses}

    def set_rho_scale(self, cost_scale_eur: float) -> None:
        """Change the cost scale of the local objectives (rebuilds the engine's problems)."""
        self.engine = AdmmEngine(self.engine.nodes,
                                 replace(self.engine.options, cost_scale_eur=cost_scale_eur))

    # -----------------------------------------------------------------------------------------
    def _set(self, inputs: OpfInputs) -> None:
        # validate exactly as the centralised model does (shapes, NaN, export <= import)
        f, T = self.feeder, self.periods
        lp = np.asarray(inputs.load_p_kw, dtype=float)
        lq = np.asarray(inputs.load_q_kvar, dtype=float)
        for parts, idx in zip(self.parts, self.index, strict=True):
            nr = [b for b in parts.buses if b != f.root]
            if nr:
                parts.parameters["load_p_kw"].value = np.vstack(
                    [lp[:, self._load_rows[b]].sum(axis=1) for b in nr])
                parts.parameters["load_q_kvar"].value = np.vstack(
                    [lq[:, self._load_rows[b]].sum(axis=1) for b in nr])
            if f.root in parts.buses:
                parts.parameters["root_load_p_kw"].value = lp[:, self._load_rows[f.root]].sum(1)
                parts.parameters["root_load_q_kvar"].value = lq[:, self._load_rows[f.root]].sum(1)
                parts.parameters["price_import"].value = np.asarray(
                    inputs.price_import_eur_per_kwh, dtype=float)
                parts.parameters["price_export"].value = np.asarray(
                    inputs.price_export_eur_per_kwh, dtype=float)
            b = parts.blocks
            if "pv" in b:
                b["pv"].parameters["p_avail_kw"].value = np.asarray(
                    inputs.pv_p_avail_kw)[:, idx["pv"]].T
            if "battery" in b:
                e0 = (np.array([0.5 * s.e_max_kwh for s in self.devices.batteries])
                      if inputs.battery_e_init_kwh is None
                      else np.asarray(inputs.battery_e_init_kwh, dtype=float))
                b["battery"].parameters["e_init_kwh"].value = e0[idx["battery"]]
            if "ev" in b:
                b["ev"].parameters["available"].value = np.asarray(
                    inputs.ev_available)[:, idx["ev"]].T
                b["ev"].parameters["e_need_kwh"].value = np.asarray(
                    inputs.ev_e_need_kwh)[idx["ev"]]
            if "shiftable" in b:
                b["shiftable"].parameters["preferred_kw"].value = np.clip(np.asarray(
                    inputs.shiftable_preferred_kw)[:, idx["shiftable"]].T, 0, None)
            if "hvac" in b:
                b["hvac"].parameters["t_out_c"].value = np.asarray(inputs.t_out_c, dtype=float)
        del T

    def _lindistflow(self, inputs: OpfInputs) -> tuple[dict[object, np.ndarray],
                                                       dict[object, np.ndarray],
                                                       dict[object, np.ndarray]]:
        """Downstream flows ``P``, ``Q`` and squared voltages ``v`` by LinDistFlow.

        Flows are the downstream net load (PV at its availability, other devices idle).
        """
        f, sb = self.feeder, self.s_base_kw
        lp = np.asarray(inputs.load_p_kw, dtype=float)
        lq = np.asarray(inputs.load_q_kvar, dtype=float)
        T = self.periods
        net_p = {b: lp[:, self._load_rows[b]].sum(1) / sb for b in f.buses}
        net_q = {b: lq[:, self._load_rows[b]].sum(1) / sb for b in f.buses}
        if self.devices.pv and inputs.pv_p_avail_kw is not None:
            pv = np.asarray(inputs.pv_p_avail_kw, dtype=float)
            for k, s in enumerate(self.devices.pv):
                net_p[s.bus] = net_p[s.bus] - pv[:, k] / sb
        Pd: dict[object, np.ndarray] = {}
        Qd: dict[object, np.ndarray] = {}
        for b in reversed(f.buses):
            Pd[b] = net_p[b] + sum((Pd[c] for c in f.children(b)), np.zeros(T))
            Qd[b] = net_q[b] + sum((Qd[c] for c in f.children(b)), np.zeros(T))
        rescale = sb / (f.s_base_mva * 1000.0)
        v = {f.root: np.full(T, f.v_root_pu**2)}
        for b in f.buses[1:]:
            br = f.branch(b)
            v[b] = v[br.parent] / br.tau**2 - 2 * (br.r_pu * rescale * Pd[b]
                                                   + br.x_pu * rescale * Qd[b])
        return Pd, Qd, v

    def initial_guess(self, inputs: OpfInputs) -> dict[Hashable, np.ndarray]:
        """A LinDistFlow start for the global variables.

        Flows are the downstream net load (PV at its availability, other devices idle) and
        voltages follow the linearised drop (per unit, squared voltages).
        """
        Pd, Qd, v = self._lindistflow(inputs)
        out: dict[Hashable, np.ndarray] = {}
        for b in self.feeder.buses:
            out[("v", b)] = v[b]
            if b != self.feeder.root:
                out[("P", b)] = Pd[b]
                out[("Q", b)] = Qd[b]
        return out

    def initial_duals(self, inputs: OpfInputs) -> list[np.ndarray]:
        """Starting duals ``y`` per region from the tariff and LinDistFlow (no OPF solve).

        At consensus the dual of a cut branch's flow ``P_b`` is the marginal cost of power at
        ``b``: ``−λ_b`` on the upstream region's copy and ``+λ_b`` on the downstream one. The
        estimate is the substation price (import price where the LinDistFlow substation flow
        imports, export price where it exports; the loss price under the ``"losses"`` objective)
        times one period and the power base, over the cost scale, with the marginal losses
        ``Σ 2·r_k·P_k`` and ``Σ 2·r_k·Q_k`` along the path from the substation. Voltage copies
        start at zero.
        """
        f, sb, T = self.feeder, self.s_base_kw, self.periods
        Pd, Qd, _v = self._lindistflow(inputs)
        per_pu = self.step_min / 60.0 * sb / self.engine.options.cost_scale_eur
        root_p = sum((Pd[c] for c in f.children(f.root)), np.zeros(T))
        if self.options.objective == "losses":
            lam0 = np.zeros(T)
        else:
            lam0 = np.where(root_p >= 0, np.asarray(inputs.price_import_eur_per_kwh, float),
                            np.asarray(inputs.price_export_eur_per_kwh, float)) * per_pu
        loss_price = (self.options.loss_price_eur_per_kwh * per_pu
                      if self.options.objective != "import_cost" else 0.0)
        rescale = sb / (f.s_base_mva * 1000.0)
        mlf_p: dict[object, np.ndarray] = {f.root: np.zeros(T)}
        mlf_q: dict[object, np.ndarray] = {f.root: np.zeros(T)}
        for b in f.buses[1:]:
            r = f.branch(b).r_pu * rescale
            mlf_p[b] = mlf_p[f.parent(b)] + 2 * r * Pd[b]
            mlf_q[b] = mlf_q[f.parent(b)] + 2 * r * Qd[b]
        lam_p = {b: lam0 * (1 + mlf_p[b]) + loss_price * mlf_p[b] for b in f.buses}
        lam_q = {b: (lam0 + loss_price) * mlf_q[b] for b in f.buses}
        out = []
        for parts in self.parts:
            top = parts.buses[0]
            rows = []
            for key in parts.keys:
                kind, bus = cast(tuple[str, object], key)
                sign = 1.0 if bus == top else -1.0  # own inflow vs. a child's outflow
                if kind == "P":
                    rows.append(sign * lam_p[bus])
                elif kind == "Q":
                    rows.append(sign * lam_q[bus])
                else:
                    rows.append(np.zeros(T))
            out.append(np.array(rows).reshape(len(rows), T))
        return out

    def solve(self, inputs: OpfInputs, aggregator: Aggregator | None = None, *,
              reference_objective_eur: float | None = None, batched: bool | None = None,
              missed: Callable[[int, int], bool] | None = None) -> AdmmOpfResult:
        """Set the data and run ADMM.

        Args:
            inputs: the same inputs as :meth:`grid.opf.OpfModel.solve`.
            aggregator: the aggregator step (default: the Python reference).
            reference_objective_eur: the centralised optimum, for the gap (and the stopping
                rule when ``AdmmOptions.target_gap`` is set).
            batched: override the batched/per-node choice.
            missed: fault-injection hook ``missed(round, node) -> bool``.

        Raises:
            NodeTimeoutError: a node missed a deadline (see :class:`AdmmOptions`).
            OpfError: a local solve failed.
        """
        self._set(inputs)
        run = self.engine.run(aggregator, reference_objective_eur=reference_objective_eur,
                              batched=batched, missed=missed,
                              init=self.initial_guess(inputs),
                              init_y=self.initial_duals(inputs) if self.warm_duals else None)
        return AdmmOpfResult(self._result(run, inputs), run, self.regions)

    # -----------------------------------------------------------------------------------------
    def _result(self, run: AdmmRun, inputs: OpfInputs) -> OpfResult:
        f, T, sb = self.feeder, self.periods, self.s_base_kw
        nb = f.n_buses
        bpos = {b: k for k, b in enumerate(f.buses)}
        v = np.zeros((T, nb))
        P = np.zeros((T, nb - 1))
        Q = np.zeros((T, nb - 1))
        ell = np.zeros((T, nb - 1))
        dlmp = np.zeros((T, nb))
        p_inj = np.zeros((T, nb))
        q_inj = np.zeros((T, nb))
        p0 = np.zeros(T)
        price_scale = self.step_min / 60.0 * sb / self.engine.options.cost_scale_eur
        schedules: dict[str, dict[str, np.ndarray]] = {}
        for parts, idx in zip(self.parts, self.index, strict=True):
            var = parts.variables
            nr = [b for b in parts.buses if b != f.root]
            for k, b in enumerate(nr):
                j = bpos[b]
                v[:, j] = var["v"].value[k]
                P[:, j - 1] = var["P"].value[k]
                Q[:, j - 1] = var["Q"].value[k]
                ell[:, j - 1] = var["l"].value[k]
            for b, con in parts.balance_p.items():
                dual = con.dual_value
                dlmp[:, bpos[b]] = (-np.asarray(dual) / price_scale if dual is not None
                                    else np.nan)
            if f.root in parts.buses:
                v[:, 0] = var["v_root"].value
                p0 = np.asarray(var["p0"].value) * sb
                p_inj[:, 0] = p0
                q_inj[:, 0] = np.asarray(var["q0"].value) * sb
            for kind, blk in parts.blocks.items():
                sched = schedules.setdefault(kind, {})
                n_all = len(getattr(self.devices, _DEVICE_FIELD[kind]))
                for name, variable in [*blk.variables.items(), ("p_kw", blk.p_kw)]:
                    val = np.asarray(variable.value).T
                    arr = sched.setdefault(name, np.zeros((T, n_all)))
                    arr[:, idx[kind]] = val
        # own net injections from the balance: p_i = -(P_i - r l_i - Σ P_k)
        rescale = sb / (f.s_base_mva * 1000.0)
        for b in f.buses[1:]:
            j = bpos[b]
            br = f.branch(b)
            kids = [bpos[c] - 1 for c in f.children(b)]
            p_inj[:, j] = -(P[:, j - 1] - br.r_pu * rescale * ell[:, j - 1]
                            - P[:, kids].sum(1)) * sb
            q_inj[:, j] = -(Q[:, j - 1] - br.x_pu * rescale * ell[:, j - 1]
                            - Q[:, kids].sum(1)) * sb
        parent = np.array([bpos[f.parent(b)] for b in f.buses[1:]])
        tau2 = np.array([f.branch(b).tau ** 2 for b in f.buses[1:]])
        w = v[:, parent] / tau2
        gap = float(np.max(np.abs(P**2 + Q**2 - ell * w))) if P.size else 0.0
        r = np.array([f.branch(b).r_pu * rescale for b in f.buses[1:]])
        return OpfResult(
            feeder=f.name, status="optimal" if run.converged else "max_iter",
            objective_eur=run.objective_eur, periods=T, step_min=self.step_min,
            buses=f.buses, v_pu=np.sqrt(np.clip(v, 0, None)), dlmp_eur_per_kwh=dlmp,
            p_inj_kw=p_inj, q_inj_kvar=q_inj, p_flow_kw=P * sb, q_flow_kvar=Q * sb,
            i_sq_pu=ell, loss_kw=(ell @ r) * sb, import_kw=p0, schedules=schedules,
            relaxation_gap=gap, build_time_s=self.build_time_s, solve_time_s=run.wall_time_s,
            solver_time_s=run.solve_time_s)


_DEVICE_FIELD = {"pv": "pv", "battery": "batteries", "ev": "evs", "deferrable": "deferrables",
                 "shiftable": "shiftables", "hvac": "hvacs", "generator": "generators"}


def _auto_base(feeder: Feeder) -> float:
    from grid.opf import _auto_base_kw  # noqa: PLC0415 - one definition of the base

    return _auto_base_kw(feeder)


def cost_scale_eur(inputs: OpfInputs, step_min: int, s_base_kw: float) -> float:
    """A cost scale that makes the duals of per-unit coupling variables O(1).

    It is the mean import price × one period × the power base.
    """
    price = float(np.mean(np.abs(np.asarray(inputs.price_import_eur_per_kwh)))) or 1.0
    return price * step_min / 60.0 * s_base_kw


def variant_settings(variant: str, base: AdmmOptions | None = None) -> AdmmOptions:
    """``base`` (default :class:`AdmmOptions`) with a named variant's algorithm settings.

    Raises:
        OpfError: unknown variant.
    """
    if variant not in VARIANTS:
        raise OpfError(f"unknown ADMM variant {variant!r}; choose from {sorted(VARIANTS)}",
                       "invalid")
    spec = VARIANTS[variant]
    return replace(base or AdmmOptions(), rho=float(spec["rho"]), alpha=float(spec["alpha"]),
                   residual_balancing=bool(spec["residual_balancing"]),
                   anderson=int(spec["anderson"]))


def solve_admm_opf(feeder: Feeder, periods: int, step_min: int, devices: Devices,
                   inputs: OpfInputs, options: OpfOptions | None = None,
                   variant: str = DEFAULT_VARIANT, *, admm: AdmmOptions | None = None,
                   reference: bool = True, aggregator: Aggregator | None = None,
                   ) -> tuple[AdmmOpfResult, OpfResult | None]:
    """Build and solve the ADMM OPF of a named variant, with the centralised solve beside it.

    Args:
        feeder: the feeder.
        periods: T.
        step_min: period length.
        devices: controllable devices.
        inputs: data.
        options: model options.
        variant: a key of :data:`VARIANTS`.
        admm: base algorithm settings (the variant's settings override ``rho``, ``alpha``,
            residual balancing and ``anderson``; ``cost_scale_eur`` is set from the prices).
        reference: also solve the centralised OPF (for the gap).
        aggregator: the aggregator step.

    Raises:
        OpfError: unknown variant or a failed solve.
    """
    if variant not in VARIANTS:
        raise OpfError(f"unknown ADMM variant {variant!r}; choose from {sorted(VARIANTS)}",
                       "invalid")
    spec = VARIANTS[variant]
    options = options or OpfOptions()
    central: OpfResult | None = None
    if reference:
        central = OpfModel(feeder, periods, step_min, devices, options).solve(inputs)
    base_kw = options.s_base_kva or _auto_base(feeder)
    settings = replace(variant_settings(variant, admm),
                       cost_scale_eur=cost_scale_eur(inputs, step_min, base_kw))
    model = AdmmOpf(feeder, periods, step_min, devices, options, settings,
                    regions=spec["partition"], warm_duals=bool(spec["warm_duals"]))
    res = model.solve(inputs, aggregator,
                      reference_objective_eur=central.objective_eur if central else None)
    return res, central


__all__ = [
    "DEFAULT_VARIANT",
    "VARIANTS",
    "AdmmOpf",
    "AdmmOpfResult",
    "RegionParts",
    "build_region",
    "cost_scale_eur",
    "partition",
    "solve_admm_opf",
    "variant_settings",
]
