"""The DSO brain: the feeder model, coordination rounds, flexibility calls, proof of flow.

The DSO keeps the feeder in limits in two steps (DESIGN "One simulated day", step 4): consensus
ADMM rounds with the households (:mod:`mas.brains.coordination`: its DistFlow OPF against their
HEMS problems, the aggregator step behind ``grid.admm``'s protocol) bring the planned
injections within the voltage, current and import limits; then a check of the households' final
plans (linearised DistFlow on the radial feeder, ``v_i² = v_π(i)² − 2(r·P + x·Q)``) issues
flexibility calls where a limit still binds, cleared with
:func:`market.vdg.clear_flexibility_call`. After delivery it attests the metered
flows (VDG paper §5.1.1).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from grid.feeders import Feeder
from market.vdg import (
    Direction,
    FlexibilityCall,
    FlexibilityResult,
    FlexOffer,
    clear_flexibility_call,
)
from mas.brains.coordination import ConsensusAdmm, GridCopy
from mas.errors import ProtocolStateError
from mas.scenario import GridSpec
from mas.world import SLOTS, World

log = logging.getLogger(__name__)

FLEX_PRICE_CAP_EUR_PER_KWH = 0.30
FLEX_MAX_KW = 50.0


@dataclass(frozen=True, slots=True)
class GridState:
    """Voltages and import of the feeder under given household injections.

    Attributes:
        v_pu: voltage magnitude per slot and bus (feeder bus order), ``(T, n_buses)``.
        import_kw: substation import per slot.
        v_min_pu: lowest voltage over the day.
        v_max_pu: highest voltage over the day.
        low: per slot with a voltage below the limit, the worst bus.
        high: per slot with a voltage above the limit, the worst bus.
    """

    v_pu: np.ndarray
    import_kw: np.ndarray
    v_min_pu: float
    v_max_pu: float
    low: Mapping[int, object]
    high: Mapping[int, object]


class DsoBrain:
    """The DSO of one feeder.

    Args:
        world: the neighbourhood (feeder, households and their buses).
        spec: limits and coordination parameters.
        dso_id: the DSO's participant id in calls and orders.
    """

    def __init__(self, world: World, spec: GridSpec, dso_id: str = "dso") -> None:
        self.world = world
        self.spec = spec
        self.dso_id = dso_id
        self.feeder: Feeder = world.feeder
        self.bus_of = {h.id: h.bus for h in world.households}
        self._admm: ConsensusAdmm | None = None
        self._pos = {b: k for k, b in enumerate(self.feeder.buses)}
        self._parent = np.array([self._pos[self.feeder.parent(b)] for b in self.feeder.buses[1:]])
        branches = [self.feeder.branch(b) for b in self.feeder.buses[1:]]
        self._r = np.array([br.r_pu for br in branches])
        self._x = np.array([br.x_pu for br in branches])
        self._s_base_kw = self.feeder.s_base_mva * 1000.0
        self._q_kvar = np.array([h.load_q_kvar for h in world.households]).T  # (T, n_hh)
        self.calls: list[FlexibilityCall] = []
        self.results: list[FlexibilityResult] = []
        self.attested: dict[int, dict[str, float]] = {}

    # ------------------------------------------------------------------------ ADMM
    @property
    def admm(self) -> ConsensusAdmm:
        """The consensus ADMM with the households (its grid copy is built on first use)."""
        if self._admm is None:
            hh = self.world.households
            grid = GridCopy(self.feeder, [h.bus for h in hh],
                            np.array([h.load_q_kvar for h in hh]).reshape(len(hh), SLOTS),
                            self.spec, self.spec.rho_eur_per_kw2,
                            float(np.mean(self.world.import_eur_per_kwh)))
            self._admm = ConsensusAdmm([h.id for h in hh], grid, self.spec,
                                       self.spec.rho_eur_per_kw2)
        return self._admm

    # ------------------------------------------------------------------------ grid model
    def grid_state(self, net_export_kw: Mapping[str, Sequence[float]]) -> GridState:
        """Linearised DistFlow voltages for the households' net export per slot.

        Households missing from ``net_export_kw`` count as zero injection.
        """
        n_bus = len(self.feeder.buses)
        p_inj = np.zeros((SLOTS, n_bus))
        q_inj = np.zeros((SLOTS, n_bus))
        for k, h in enumerate(self.world.households):
            if h.id in net_export_kw:
                p_inj[:, self._pos[h.bus]] += np.asarray(net_export_kw[h.id], dtype=float)
            q_inj[:, self._pos[h.bus]] -= self._q_kvar[:, k]
        # downstream withdrawal of each branch: children come after parents in bus order
        p_flow = -p_inj.copy()
        q_flow = -q_inj.copy()
        for child in range(n_bus - 1, 0, -1):
            par = self._parent[child - 1]
            p_flow[:, par] += p_flow[:, child]
            q_flow[:, par] += q_flow[:, child]
        v2 = np.zeros((SLOTS, n_bus))
        v2[:, 0] = self.feeder.v_root_pu ** 2
        for child in range(1, n_bus):
            par = self._parent[child - 1]
            v2[:, child] = v2[:, par] - 2 * (self._r[child - 1] * p_flow[:, child]
                                             + self._x[child - 1] * q_flow[:, child]) \
                / self._s_base_kw
        v = np.sqrt(np.clip(v2, 0.0, None))
        import_kw = -p_inj.sum(axis=1)
        low: dict[int, object] = {}
        high: dict[int, object] = {}
        for t in range(SLOTS):
            if v[t].min() < self.spec.v_min_pu - 1e-9:
                low[t] = self.feeder.buses[int(np.argmin(v[t]))]
            if v[t].max() > self.spec.v_max_pu + 1e-9:
                high[t] = self.feeder.buses[int(np.argmax(v[t]))]
        return GridState(v, import_kw, float(v.min()), float(v.max()), low, high)

    def _subtree(self, bus: object) -> frozenset[object]:
        """The bus and the buses below it, plus its parent's other children (neighbours)."""
        import networkx as nx  # noqa: PLC0415

        top = self.feeder.parent(bus)
        top = bus if top is None or top == self.feeder.root else top
        return frozenset({top} | nx.descendants(self.feeder.graph, top))

    # ------------------------------------------------------------------------ flexibility
    def flexibility_calls(self, state: GridState) -> list[FlexibilityCall]:
        """Calls where a voltage or the import limit binds; sized by the voltage sensitivity."""
        calls = []
        for t in range(SLOTS):
            excess_kw = state.import_kw[t] - self.spec.import_limit_kw
            if t in state.low or excess_kw > self.spec.tol_kw:
                bus = state.low.get(t, self.feeder.buses[int(np.argmin(state.v_pu[t]))])
                dv = max(self.spec.v_min_pu - state.v_pu[t].min(), 0.0)
                p = max(self._kw_for(bus, dv), excess_kw, 1.0)
                buses = self._subtree(bus) if t in state.low else frozenset(self.feeder.buses)
                calls.append(self._call(t, Direction.UP, p, buses))
            if t in state.high:
                bus = state.high[t]
                dv = state.v_pu[t].max() - self.spec.v_max_pu
                calls.append(self._call(t, Direction.DOWN, max(self._kw_for(bus, dv), 1.0),
                                        self._subtree(bus)))
        self.calls.extend(calls)
        return calls

    def _kw_for(self, bus: object, dv_pu: float) -> float:
        """Injection change at ``bus`` that moves its voltage by ``dv_pu`` (with 20 % margin)."""
        r_path = 0.0
        b = bus
        while b != self.feeder.root:
            r_path += self.feeder.branch(b).r_pu
            b = self.feeder.parent(b)
        if r_path <= 0:
            return FLEX_MAX_KW
        return float(min(1.2 * dv_pu * self._s_base_kw / r_path, FLEX_MAX_KW))

    def _call(self, slot: int, direction: Direction, p_kw: float,
              buses: frozenset[object]) -> FlexibilityCall:
        return FlexibilityCall(f"flex-{slot:02d}-{direction.value}", self.dso_id, direction,
                               round(p_kw, 3), slot, buses, FLEX_PRICE_CAP_EUR_PER_KWH)

    def households_on(self, buses: frozenset[object]) -> list[str]:
        """Households connected to any of ``buses``, in index order."""
        return [h.id for h in self.world.households if h.bus in buses]

    def clear_call(self, call: FlexibilityCall,
                   offers: Mapping[str, tuple[float, float]]) -> FlexibilityResult:
        """Clear a call against offers ``household -> (p_kw, price)`` (sorted by household)."""
        flex = [FlexOffer(f"{call.id}/{hid}", hid, self.bus_of[hid], p, price)
                for hid, (p, price) in sorted(offers.items())]
        result = clear_flexibility_call(call, flex)
        self.results.append(result)
        return result

    # ------------------------------------------------------------------------ proof of flow
    def attest(self, slot: int, readings: Mapping[str, float]) -> dict[str, float]:
        """Record the metered net export of a slot (kWh per household) for attestation.

        Raises:
            ProtocolStateError: the slot was already attested with different readings, or a
                reading is from an unknown household or not finite.
        """
        clean: dict[str, float] = {}
        for hid, value in sorted(readings.items()):
            if hid not in self.bus_of:
                raise ProtocolStateError(f"reading from unknown household {hid!r}")
            if not np.isfinite(value):
                raise ProtocolStateError(f"reading of {hid!r} in slot {slot} is {value!r}")
            clean[hid] = round(float(value), 3) + 0.0
        if slot in self.attested and self.attested[slot] != clean:
            raise ProtocolStateError(f"slot {slot} already attested with other readings")
        self.attested[slot] = clean
        return clean
