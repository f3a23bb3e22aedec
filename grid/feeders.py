"""Radial feeders as networkx trees, built from pandapower networks, SimBench codes or files.

A :class:`Feeder` is a ``networkx.DiGraph`` whose edges point from parent to child, rooted at the
substation (the bus of the external grid). Every edge is a branch with its series impedance in
ohm and in per unit of the feeder's base (``s_base_mva`` and each bus's ``vn_kv``); a transformer
is a branch like a line, with its impedance referred to its low-voltage side and an off-nominal
ratio ``tau`` (1 at the neutral tap). Closed bus-bus switches merge buses; open switches and
out-of-service elements are left out; parallel branches between the same two buses are merged
into one equivalent branch. A graph that is not a tree raises :class:`NonRadialError` naming a
cycle.

The pandapower network is kept beside the graph (``Feeder.net``) for the AC power-flow check
and for the element tables that profiles refer to.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from grid.errors import FeederError, NonRadialError

log = logging.getLogger(__name__)

SIMBENCH_LV_CODES: tuple[str, ...] = tuple(
    f"1-LV-{grid}--{scen}-sw"
    for grid in ("rural1", "rural2", "rural3", "semiurb4", "semiurb5", "urban6")
    for scen in (0, 1, 2)
)
"""The SimBench low-voltage codes we build: six grids × three scenarios (0: today, 1 and 2:
future with more PV, heat pumps, EVs and storage)."""

PANDAPOWER_FEEDERS: dict[str, str] = {
    "case33bw": "case33bw",
    "kerber-dorfnetz": "create_kerber_dorfnetz",
    "kerber-landnetz-kabel-1": "create_kerber_landnetz_kabel_1",
    "kerber-vorstadtnetz-kabel-1": "create_kerber_vorstadtnetz_kabel_1",
    "cigre-lv": "create_cigre_network_lv",
}
"""Feeder names we accept for pandapower's built-in networks, and the function behind each."""


@dataclass(frozen=True, slots=True)
class Branch:
    """One branch (line or transformer) from ``parent`` to ``child``.

    Attributes:
        child: the downstream bus (branches are indexed by their child).
        parent: the upstream bus.
        r_ohm: series resistance, referred to the child's voltage level.
        x_ohm: series reactance, referred to the child's voltage level.
        r_pu: resistance in per unit of the feeder base.
        x_pu: reactance in per unit of the feeder base.
        tau: off-nominal ratio (parent-side voltage in p.u. divided by the ideal
            transformer's output in p.u.); 1 for lines.
        i_max_pu: current limit in per unit, or ``inf``.
        kind: ``"line"`` or ``"trafo"``.
        elements: the pandapower element indices merged into this branch.
    """

    child: object
    parent: object
    r_ohm: float
    x_ohm: float
    r_pu: float
    x_pu: float
    tau: float
    i_max_pu: float
    kind: str
    elements: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Attachment:
    """A load, static generator or storage unit of the pandapower network and its bus."""

    table: str  # "load", "sgen" or "storage"
    index: int
    name: str
    bus: object
    p_kw: float
    q_kvar: float
    e_max_kwh: float = 0.0
    kind: str = ""


@dataclass(frozen=True)
class Feeder:
    """A radial distribution feeder.

    Attributes:
        name: the name it was built from.
        graph: DiGraph, edges parent → child, edge attribute ``branch`` (:class:`Branch`), node
            attributes ``vn_kv``, ``v_min_pu``, ``v_max_pu``.
        root: the substation bus.
        buses: all buses, root first, parents before children (breadth-first).
        s_base_mva: power base of the per-unit system.
        v_root_pu: voltage magnitude at the root.
        loads: the in-service loads on the tree.
        sgens: the in-service static generators (PV among them) on the tree.
        storages: the in-service storage units on the tree.
        has_profiles: whether the source ships time series (SimBench) or gets the default day.
        source: where it came from, e.g. ``"simbench:1-LV-rural1--0-sw"``.
        net: the pandapower network (for power-flow checks).
    """

    name: str
    graph: nx.DiGraph
    root: object
    buses: tuple[object, ...]
    s_base_mva: float
    v_root_pu: float
    loads: tuple[Attachment, ...]
    sgens: tuple[Attachment, ...]
    storages: tuple[Attachment, ...]
    has_profiles: bool
    source: str
    net: Any = field(repr=False, compare=False)

    @property
    def n_buses(self) -> int:
        """Number of buses including the root."""
        return len(self.buses)

    def parent(self, bus: object) -> object | None:
        """The parent of ``bus`` (``None`` for the root)."""
        preds = list(self.graph.predecessors(bus))
        return preds[0] if preds else None

    def children(self, bus: object) -> list[object]:
        """The children of ``bus``."""
        return list(self.graph.successors(bus))

    def branch(self, child: object) -> Branch:
        """The branch that feeds ``child``."""
        parent = self.parent(child)
        if parent is None:
            raise FeederError(f"feeder {self.name!r}: bus {child!r} is the root and has no branch")
        return self.graph.edges[parent, child]["branch"]

    def branches(self) -> list[Branch]:
        """All branches, in the order of :attr:`buses` (children of the root first)."""
        return [self.branch(b) for b in self.buses[1:]]

    def v_limits_pu(self, bus: object) -> tuple[float, float]:
        """(min, max) voltage magnitude of ``bus`` in p.u."""
        node = self.graph.nodes[bus]
        return node["v_min_pu"], node["v_max_pu"]

    def in_parallel(self, copies: int) -> Feeder:
        """``copies`` identical feeders behind one substation, merged bus by bus.

        Every branch becomes ``copies`` identical branches in parallel (impedance divided by
        ``copies``, current limit multiplied), and every load, generator and storage unit is
        ``copies`` times as large. When all copies carry the same injections this carries exactly
        the sum of their flows at the same voltages; copies that differ are represented by their
        sum. Used for populations larger than a feeder's loads. The result has no pandapower
        network (``net`` is ``None``): a power-flow check needs the single feeder.

        Raises:
            FeederError: ``copies`` is not a positive integer.
        """
        if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
            raise FeederError(f"feeder {self.name!r}: copies must be a positive integer, "
                              f"got {copies!r}")
        if copies == 1:
            return self
        g = self.graph.copy()
        for parent, child, data in g.edges(data=True):
            b: Branch = data["branch"]
            g.edges[parent, child]["branch"] = dataclasses.replace(
                b, r_ohm=b.r_ohm / copies, x_ohm=b.x_ohm / copies, r_pu=b.r_pu / copies,
                x_pu=b.x_pu / copies, i_max_pu=b.i_max_pu * copies)

        def scaled(items: tuple[Attachment, ...]) -> tuple[Attachment, ...]:
            return tuple(dataclasses.replace(a, p_kw=a.p_kw * copies, q_kvar=a.q_kvar * copies,
                                             e_max_kwh=a.e_max_kwh * copies) for a in items)

        return dataclasses.replace(self, name=f"{self.name} x{copies}", graph=g,
                                   loads=scaled(self.loads), sgens=scaled(self.sgens),
                                   storages=scaled(self.storages), net=None)


# --------------------------------------------------------------------------------------------
# building from a pandapower network


def _finite_or(value: Any, default: float) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return default
    return f if math.isfinite(f) else default


def _merge_buses(net: Any) -> dict[int, int]:
    """Map each bus to a representative, merging buses joined by closed bus-bus switches."""
    parent = {int(b): int(b) for b in net.bus.index}

    def find(b: int) -> int:
        while parent[b] != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        return b

    sw = net.switch
    for _, row in sw[(sw.et == "b") & sw.closed].iterrows():
        a, b = find(int(row.bus)), find(int(row.element))
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {b: find(b) for b in parent}


def _open_elements(net: Any, et: str) -> set[int]:
    sw = net.switch
    return {int(e) for e in sw[(sw.et == et) & ~sw.closed.astype(bool)].element}


def from_pandapower(net: Any, name: str, *, has_profiles: bool = False,
                    source: str | None = None) -> Feeder:
    """Build a :class:`Feeder` from a pandapower network.

    Args:
        net: a pandapower network with exactly one in-service external grid.
        name: the feeder's name.
        has_profiles: whether the network carries SimBench-style time series.
        source: provenance string; defaults to ``"pandapower:<name>"``.

    Raises:
        FeederError: no or several external grids, a non-positive or non-finite impedance.
        NonRadialError: the in-service graph has a cycle.
    """
    ext = net.ext_grid[net.ext_grid.in_service.astype(bool)]
    if len(ext) != 1:
        raise FeederError(f"feeder {name!r}: needs exactly one in-service ext_grid, found "
                          f"{len(ext)}")
    rep = _merge_buses(net)
    root = rep[int(ext.bus.iloc[0])]
    s_base = float(net.sn_mva)
    if not (math.isfinite(s_base) and s_base > 0):
        raise FeederError(f"feeder {name!r}: sn_mva must be finite and > 0, got {s_base!r}")
    bus_tab = net.bus
    vn = {int(b): float(bus_tab.vn_kv.at[b]) for b in bus_tab.index}
    for b, kv in vn.items():
        if not (math.isfinite(kv) and kv > 0):
            raise FeederError(f"feeder {name!r}: bus {b} has vn_kv {kv!r}; it must be > 0")
    in_service_bus = {int(b) for b in bus_tab.index[bus_tab.in_service.astype(bool)]}

    # (a, b) -> list of (r_ohm, x_ohm, tau, i_max_ka, kind, element) referred to b's level
    raw: list[tuple[int, int, float, float, float, float, str, int]] = []
    open_lines = _open_elements(net, "l")
    for idx, ln in net.line.iterrows():
        if not bool(ln.in_service) or int(idx) in open_lines:
            continue
        par = max(_finite_or(ln.get("parallel", 1), 1.0), 1.0)
        r = float(ln.r_ohm_per_km) * float(ln.length_km) / par
        x = float(ln.x_ohm_per_km) * float(ln.length_km) / par
        _check_impedance(name, f"line {idx}", r, x)
        i_max = _finite_or(ln.max_i_ka, math.inf) * par
        a, b = int(ln.from_bus), int(ln.to_bus)
        if not math.isclose(vn[a], vn[b], rel_tol=1e-6):
            raise FeederError(f"feeder {name!r}: line {idx} joins bus {a} at {vn[a]} kV and bus "
                              f"{b} at {vn[b]} kV; a line needs one voltage level (vn_kv)")
        raw.append((a, b, r, x, 1.0, i_max, "line", int(idx)))
    open_trafos = _open_elements(net, "t")
    for idx, tr in net.trafo.iterrows():
        if not bool(tr.in_service) or int(idx) in open_trafos:
            continue
        par = max(_finite_or(tr.get("parallel", 1), 1.0), 1.0)
        vn_lv = float(tr.vn_lv_kv)
        z_ohm = float(tr.vk_percent) / 100 * vn_lv**2 / float(tr.sn_mva) / par
        r = float(tr.vkr_percent) / 100 * vn_lv**2 / float(tr.sn_mva) / par
        x = math.sqrt(max(z_ohm**2 - r**2, 0.0))
        _check_impedance(name, f"trafo {idx}", r, x)
        ratio = float(tr.vn_hv_kv) / vn_lv
        # pandapower >= 3 applies the tap only with a tap changer type; so do we
        has_tap = isinstance(tr.get("tap_changer_type"), str)
        tap_pos = _finite_or(tr.get("tap_pos"), 0.0) if has_tap else 0.0
        tap_neutral = _finite_or(tr.get("tap_neutral"), 0.0)
        step = _finite_or(tr.get("tap_step_percent"), 0.0) / 100
        tap = 1 + (tap_pos - tap_neutral) * step
        if str(tr.get("tap_side")) == "lv":
            ratio /= tap
        else:
            ratio *= tap
        hv, lv = int(tr.hv_bus), int(tr.lv_bus)
        tau = ratio / (vn[hv] / vn[lv])
        i_max = float(tr.sn_mva) * par / (math.sqrt(3) * vn_lv)
        # A transformer always feeds from its HV side: record it as (hv -> lv).
        raw.append((hv, lv, r * (vn[lv] / vn_lv) ** 2, x * (vn[lv] / vn_lv) ** 2, tau, i_max,
                    "trafo", int(idx)))

    # merge buses, drop self-loops, merge parallels
    groups: dict[tuple[int, int], list[tuple[int, int, float, float, float, float, str, int]]] = {}
    for a, b, r, x, tau, imax, kind, idx in raw:
        ra, rb = rep[a], rep[b]
        if ra == rb or ra not in in_service_bus or rb not in in_service_bus:
            continue
        key = (min(ra, rb), max(ra, rb))
        groups.setdefault(key, []).append((ra, rb, r, x, tau, imax, kind, idx))

    und = nx.Graph()
    und.add_node(root)
    for key in groups:
        und.add_edge(*key)
    comp = nx.node_connected_component(und, root)
    sub = und.subgraph(comp)
    if sub.number_of_edges() != sub.number_of_nodes() - 1:
        cycle = [u for u, _ in nx.find_cycle(sub, source=root)]
        raise NonRadialError(f"feeder {name!r} is not radial: buses {cycle} form a cycle", cycle)
    dropped = {rep[b] for b in in_service_bus} - comp
    if dropped:
        log.warning("feeder %r: %d buses are not connected to the substation and are left out",
                    name, len(dropped))

    g = nx.DiGraph()
    order = [root, *[v for _, v in nx.bfs_edges(sub, root)]]
    for b in order:
        v_min = _finite_or(bus_tab.min_vm_pu.at[b] if "min_vm_pu" in bus_tab else None, 0.9)
        v_max = _finite_or(bus_tab.max_vm_pu.at[b] if "max_vm_pu" in bus_tab else None, 1.1)
        if v_min >= v_max:  # a slack bus carries 1.0/1.0 in some cases; it is not constrained
            v_min, v_max = 0.9, 1.1
        g.add_node(b, vn_kv=vn[b], v_min_pu=v_min, v_max_pu=v_max)
    for parent_bus, child in nx.bfs_edges(sub, root):
        branch = _merge_parallel(groups[(min(parent_bus, child), max(parent_bus, child))],
                                 parent_bus, child, vn[child], s_base, name)
        g.add_edge(parent_bus, child, branch=branch)

    def attachments(table: str) -> tuple[Attachment, ...]:
        tab = getattr(net, table)
        out = []
        for idx, row in tab.iterrows():
            bus = rep[int(row.bus)]
            if not bool(row.in_service) or bus not in comp:
                continue
            scaling = _finite_or(row.get("scaling", 1.0), 1.0)
            out.append(Attachment(
                table=table, index=int(idx),
                name=str(row.get("name")) if isinstance(row.get("name"), str) else f"{table}{idx}",
                bus=bus, p_kw=float(row.p_mw) * 1000 * scaling,
                q_kvar=_finite_or(row.get("q_mvar", 0.0), 0.0) * 1000 * scaling,
                e_max_kwh=_finite_or(row.get("max_e_mwh", 0.0), 0.0) * 1000,
                kind=str(row.get("type", "")),
            ))
        return tuple(out)

    v_root = float(ext.vm_pu.iloc[0])
    return Feeder(name=name, graph=g, root=root, buses=tuple(order), s_base_mva=s_base,
                  v_root_pu=v_root, loads=attachments("load"), sgens=attachments("sgen"),
                  storages=attachments("storage"), has_profiles=has_profiles,
                  source=source or f"pandapower:{name}", net=net)


def _check_impedance(feeder: str, what: str, r: float, x: float) -> None:
    if not (math.isfinite(r) and math.isfinite(x)):
        raise FeederError(f"feeder {feeder!r}: {what} has a non-finite impedance r={r!r} "
                          f"x={x!r} ohm")
    if r < 0 or x < 0:
        raise FeederError(f"feeder {feeder!r}: {what} has a negative impedance r={r!r} "
                          f"x={x!r} ohm")
    if r == 0 and x == 0:
        raise FeederError(f"feeder {feeder!r}: {what} has zero impedance (r=0, x=0 ohm); "
                          "model it as a closed bus-bus switch instead")


def _merge_parallel(items: list[tuple[int, int, float, float, float, float, str, int]],
                    parent: int, child: int, vn_child_kv: float, s_base_mva: float,
                    feeder: str) -> Branch:
    z = [complex(r, x) for _, _, r, x, *_ in items]
    z_eq = 1 / sum(1 / zi for zi in z)
    taus = {round(it[4], 12) for it in items}
    if len(taus) > 1:
        raise FeederError(f"feeder {feeder!r}: parallel transformers between buses {parent} "
                          f"and {child} have different ratios {sorted(taus)}")
    z_base = vn_child_kv**2 / s_base_mva
    i_base_ka = s_base_mva / (math.sqrt(3) * vn_child_kv)
    i_max_ka = sum(it[5] for it in items)
    return Branch(child=child, parent=parent, r_ohm=z_eq.real, x_ohm=z_eq.imag,
                  r_pu=z_eq.real / z_base, x_pu=z_eq.imag / z_base, tau=items[0][4],
                  i_max_pu=i_max_ka / i_base_ka if math.isfinite(i_max_ka) else math.inf,
                  kind="trafo" if any(it[6] == "trafo" for it in items) else "line",
                  elements=tuple(it[7] for it in items))


# --------------------------------------------------------------------------------------------
# the catalogue


@functools.lru_cache(maxsize=8)
def _simbench_net(code: str) -> Any:
    import simbench  # noqa: PLC0415 - loading the SimBench tables takes seconds; only on demand

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning))
        return simbench.get_simbench_net(code)


def _pandapower_net(func_name: str) -> Any:
    import pandapower.networks as pn  # noqa: PLC0415 - heavy import, only on demand

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning))
        return getattr(pn, func_name)()


def feeder_names() -> list[str]:
    """All feeder names :func:`load_feeder` accepts (besides pandapower JSON file paths)."""
    return [*PANDAPOWER_FEEDERS, *SIMBENCH_LV_CODES]


def load_feeder(name: str) -> Feeder:
    """Build a feeder by name or from a pandapower JSON file.

    Args:
        name: one of :func:`feeder_names`, or the path of a pandapower JSON file
            (``pandapower.to_json`` output).

    Raises:
        FeederError: the name is unknown, or the file cannot be read as a pandapower network.
    """
    if name in PANDAPOWER_FEEDERS:
        return from_pandapower(_pandapower_net(PANDAPOWER_FEEDERS[name]), name)
    if name in SIMBENCH_LV_CODES:
        net = copy.deepcopy(_simbench_net(name))
        return from_pandapower(net, name, has_profiles=True, source=f"simbench:{name}")
    path = Path(name)
    if path.suffix.lower() == ".json":
        return _from_file(path)
    raise FeederError(f"unknown feeder {name!r}: expected one of {', '.join(feeder_names())}, "
                      "or the path of a pandapower .json file")


def _from_file(path: Path) -> Feeder:
    import pandapower as pp  # noqa: PLC0415 - heavy import, only on demand

    if not path.is_file():
        raise FeederError(f"feeder file {str(path)!r} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning))
            net = pp.from_json(str(path))
    except Exception as exc:  # pandapower raises many types for a bad file
        raise FeederError(f"feeder file {str(path)!r} is not a pandapower network: {exc}") from exc
    return from_pandapower(net, path.stem, source=f"file:{path}")


def describe(feeder: Feeder) -> dict[str, object]:
    """A summary row for listings: buses, branches, devices and depth."""
    depth = max(nx.shortest_path_length(feeder.graph, feeder.root).values())
    return {
        "feeder": feeder.name,
        "buses": feeder.n_buses,
        "transformers": sum(1 for b in feeder.branches() if b.kind == "trafo"),
        "loads": len(feeder.loads),
        "sgens": len(feeder.sgens),
        "storages": len(feeder.storages),
        "depth": int(depth),
        "profiles": "simbench" if feeder.has_profiles else "default day",
        "peak_load_kw": round(sum(a.p_kw for a in feeder.loads), 1),
    }


def incidence(feeder: Feeder, buses_of_items: list[object]) -> np.ndarray:
    """A 0/1 matrix mapping items to non-root buses: shape ``(n_buses - 1, len(items))``.

    Items at the root bus map to no row (the root's injection is the substation's).
    """
    pos = {b: k for k, b in enumerate(feeder.buses[1:])}
    m = np.zeros((len(pos), len(buses_of_items)))
    for j, b in enumerate(buses_of_items):
        if b in pos:
            m[pos[b], j] = 1.0
    return m




def to_frame(feeder: Feeder) -> pd.DataFrame:
    """The branches as a table (for reports and debugging)."""
    return pd.DataFrame([
        {"parent": b.parent, "child": b.child, "kind": b.kind, "r_ohm": b.r_ohm,
         "x_ohm": b.x_ohm, "r_pu": b.r_pu, "x_pu": b.x_pu, "tau": b.tau, "i_max_pu": b.i_max_pu}
        for b in feeder.branches()
    ])
