"""The Mesa model of one VDG day: households, DSO, aggregator and auctioneer on a feeder.

The model steps a quarter-hour clock (96 ticks a day) and runs what the market calendar has due
at each tick, in this order:

* tick 0 — **plan**: coordination rounds of the DSO's aggregator step (households re-plan
  against the coordination price until the import limit holds or the rounds run out); the
  aggregator's fleet plan; the DSO's voltage check and flexibility calls; then the
  **day-ahead** session over the 24 hourly slots;
* the first tick of each real-time block — the **intraday** sessions whose first slot traded
  is that block's (if ``market.intraday_every_h`` > 0; households trade their updated forecast),
  then the **real-time** session of the block (before any of its slots is delivered, after the
  previous slot was);
* the last tick of each hour — **delivery** of that slot: households run it, the DSO attests
  the meters on the ledger, and every session whose slots are all attested is **settled**;
* after the last delivery — withdrawals; the model stops.

Each session is sealed commit–reveal through :class:`mas.brains.auctioneer.SessionBook` and on
the ledger, revealed in participant rank order (households by index, then the aggregator), and
cleared on the ledger; the clearing is checked against the market layer's Huang clearing of the
same book. Every loop runs in rank order, so nothing depends on Mesa's agent order or on
``model.rng``: a day is a function of the scenario (its seed included), whichever ledger clears.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import networkx as nx
import numpy as np
from mesa import DataCollector, Model
from mesa.discrete_space import Network

from ledger.fixedpoint import INT32_MAX, MICRO_EUR_PER_EUR, UINT32_MAX, WH_PER_KWH
from ledger.orders import OrderVector, SlotOrder, commitment
from ledger.results import Deployment, SessionClearing
from market.auction import huang
from market.orders import OrderTable
from mas.brains.aggregator import AggregatorBrain
from mas.brains.auctioneer import (
    SessionBook,
    SessionPlan,
    cleared_matches,
    day_sessions,
    gains_from_trade_nano,
    vector_from_intent,
)
from mas.brains.dso import DsoBrain, GridState
from mas.brains.household import HouseholdBrain
from mas.brains.household_batch import HouseholdBatch
from mas.mesa.agents import AggregatorAgent, DsoAgent, HouseholdAgent, answer_rounds
from mas.mesa.errors import MesaRuntimeError, ModelParameterError
from mas.mesa.memory_ledger import MemoryLedger, book_arrays, order_ids
from mas.mesa.params import load_scenario, population_world, scenario_with
from mas.scenario import Scenario
from mas.world import SLOTS, World, household_rng

log = logging.getLogger(__name__)

TICKS_PER_SLOT = 4
"""Quarter-hour ticks per hourly slot."""
TICKS_PER_DAY = SLOTS * TICKS_PER_SLOT
SUMMARY_REPORTERS = ("trades", "traded_kwh", "welfare_eur", "cost_prosumers_eur",
                     "cost_consumers_eur", "peak_import_kw", "v_min_pu", "v_max_pu",
                     "admm_iterations", "flex_calls", "money_conserved", "energy_conserved",
                     "wall_time_s")
"""Summary fields also recorded as model reporters (set at the last tick, ``None`` before)."""
GATE_S = 86_400
"""Commit and reveal windows of each session on the ledger's clock, seconds. The model moves the
clock past each gate itself; the windows only have to outlast the wall time of sending every
commitment, which the embedded chain's clock also counts (600 s was too short for 1,001
participants on a loaded machine)."""

ACCOUNT_BATCH = 200
"""Accounts registered per ``add_households`` call (one role grant per batch must fit a block)."""

ATTEST_BATCH = 250
"""Meters attested per ``attest`` call (each costs tens of thousands of gas on the EVM)."""

TX_BATCH = 500
"""Commitments per JSON-RPC batch request on a node."""

LedgerKind = Literal["memory", "evm"]


class MarketBatch:
    """Sends commits, reveals and withdrawals to a JSON-RPC node without a wait per transaction.

    One transaction per participant as :meth:`Web3Ledger.commit` and :meth:`Web3Ledger.reveal`
    send them (same calldata, sender and salts), all signed first, :data:`TX_BATCH` at a time
    (:meth:`ledger.chain.Chain.send_batch`: a development node mines each group in as few
    blocks as its gas limit allows). Commitments go in JSON-RPC batch requests (their order
    does not matter); reveals are sent one request after the other in participant order,
    because the clearing breaks ties by reveal order and a batch request does not keep it, and
    the order they were mined in is checked. Only for
    ledgers on a node: the embedded chain mines one transaction per call anyway, and the
    in-memory ledger has no transactions.
    """

    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger

    @classmethod
    def of(cls, ledger: MarketLedger) -> MarketBatch | None:
        """A batch sender for ``ledger``, or ``None`` where calls go one by one."""
        chain = getattr(ledger, "chain", None)
        if chain is None or chain.embedded:
            return None
        return cls(ledger)

    def _items(self, fn: str, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        from ledger.chain import DEFAULT_GAS_LIMIT  # noqa: PLC0415 - web3 only on a chain

        chain = self.ledger.chain
        market = self.ledger.c["market"]
        return [(chain.key(who), {"to": market.address, "data": market.encode_abi(fn, args=args),
                                  "gas": DEFAULT_GAS_LIMIT}, f"VdgMarket.{fn}")
                for who, args in calls]

    def commit(self, calls: Sequence[tuple[str, list[Any]]]) -> None:
        """``market.commit(*args)`` from each ``(household, args)``.

        Raises:
            ContractRevert: a transaction reverted.
        """
        items = self._items("commit", calls)
        for first in range(0, len(items), TX_BATCH):
            self.ledger.chain.send_batch(items[first:first + TX_BATCH])

    def reveal(self, calls: Sequence[tuple[str, list[Any]]]) -> None:
        """``market.reveal(*args)`` from each ``(household, args)``, mined in this order.

        Raises:
            ContractRevert: a transaction reverted (the others are mined).
            LedgerError: the node mined them out of order.
        """
        items = self._items("reveal", calls)
        for first in range(0, len(items), TX_BATCH):
            self.ledger.chain.send_batch(items[first:first + TX_BATCH], ordered=True)


    def withdraw(self, accounts: Sequence[str]) -> None:
        """``market.withdraw()`` from each account (any order: each pulls only its own).

        Raises:
            ContractRevert: a transaction reverted.
        """
        items = self._items("withdraw", [(a, []) for a in accounts])
        for first in range(0, len(items), TX_BATCH):
            self.ledger.chain.send_batch(items[first:first + TX_BATCH])


class MarketLedger(Protocol):
    """What the model needs of a ledger (:class:`MemoryLedger` and ``Web3Ledger`` both offer it)."""

    @property
    def deployment(self) -> Deployment:
        """Addresses of the contracts and role holders."""

    def add_households(self, n: int, *, credit_eur: float = 0.0) -> list[str]:
        """Create accounts with the household role, meters and Credit."""

    def credit_nano(self, account: str) -> int:
        """Credit balance, nEUR."""

    def credit_supply_nano(self) -> int:
        """Credit supply, nEUR."""

    def energy_supply_wh(self) -> int:
        """Energy tokens minted, Wh."""

    def open_session(self, start_slot: int, n_slots: int, *, commit_s: int = 600,
                     reveal_s: int = 600, penalty_eur_per_kwh: float = 0.0) -> int:
        """Open a session; returns its id."""

    def commit(self, sid: int, household: str, orders: OrderVector, salt: bytes) -> bytes:
        """Seal an order vector."""

    def reveal(self, sid: int, household: str, orders: OrderVector, salt: bytes) -> None:
        """Open a sealed order vector."""

    def advance_time(self, seconds: int) -> None:
        """Move the ledger's clock."""

    def clear(self, sid: int) -> SessionClearing:
        """Clear a session."""

    def attest(self, slot: int, net_export_kwh: Mapping[str, float]) -> None:
        """Attest metered net export of a slot."""

    def settle(self, sid: int) -> None:
        """Settle a cleared session."""

    def owed_nano(self, account: str) -> int:
        """What the market owes an account, nEUR."""

    def withdraw(self, account: str) -> int:
        """Pull what the market owes an account."""


def make_ledger(kind: LedgerKind, seed: int, chain_url: str | None = None,
                receipt_timeout_s: float = 60.0) -> MarketLedger:
    """A fresh ledger: ``memory`` (:class:`MemoryLedger`) or ``evm``.

    ``evm`` deploys on the embedded py-evm chain, or on the JSON-RPC node at ``chain_url``
    (waiting up to ``receipt_timeout_s`` for a transaction to be mined).

    Raises:
        ModelParameterError: an unknown kind.
    """
    if kind == "memory":
        return MemoryLedger.deploy(seed)
    if kind == "evm":
        from ledger.chain import ChainConfig  # noqa: PLC0415 - web3 start-up only when asked
        from ledger.client import Web3Ledger  # noqa: PLC0415

        return Web3Ledger.deploy(ChainConfig(url=chain_url, seed=seed,
                                             timeout_s=receipt_timeout_s))
    raise ModelParameterError(f"ledger must be 'memory' or 'evm', got {kind!r}")


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session of the day as cleared.

    Attributes:
        plan: the session (name, kind, slots).
        sid: its id on the ledger.
        participants: who revealed, in book order.
        cleared_wh: per participant and slot of the session, Wh bought (> 0) or sold (< 0).
        buy_price_eur_per_kwh: per slot of the session, buyers' price (0 without trade).
        sell_price_eur_per_kwh: per slot, sellers' price.
        volume_kwh: per slot, energy traded.
        gains_nano: gains from trade at the revealed limit prices, nEUR.
    """

    plan: SessionPlan
    sid: int
    participants: tuple[str, ...]
    cleared_wh: tuple[tuple[int, ...], ...]
    buy_price_eur_per_kwh: tuple[float, ...]
    sell_price_eur_per_kwh: tuple[float, ...]
    volume_kwh: tuple[float, ...]
    gains_nano: int = 0


GC_YOUNG_THRESHOLD = 100_000
"""Allocations between collections of the youngest generation during a tick (CPython: 700).

A population's tick allocates millions of short-lived arrays, tuples and floats that reference
counting frees; with the default threshold the collector ran about 7,500 times in a
10,000-household day and took 8.8 s of its 62 s (0.8 s and 50 s with this threshold; same
results). Cyclic garbage waits at most this many allocations longer.
"""


@contextlib.contextmanager
def young_collections_every(threshold: int) -> Iterator[None]:
    """Collect the youngest generation after at least ``threshold`` allocations in the block.

    Never lowers the process's setting; restores all three thresholds afterwards, also when
    the block raises.
    """
    before = gc.get_threshold()
    gc.set_threshold(max(threshold, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def tree_layout(graph: nx.DiGraph, root: object) -> dict[object, tuple[float, float]]:
    """Positions of a radial feeder as a tree hanging from the substation.

    ``y`` is minus the depth (hops from the root); leaves get consecutive ``x`` in depth-first
    order and every other bus sits at the mean ``x`` of its children.
    """
    pos: dict[object, tuple[float, float]] = {}
    next_x = [0.0]

    def place(node: object, depth: int) -> float:
        children = sorted(graph.successors(node), key=str)
        if not children:
            x = next_x[0]
            next_x[0] += 1.0
        else:
            x = float(np.mean([place(c, depth + 1) for c in children]))
        pos[node] = (x, -float(depth))
        return x

    place(root, 0)
    return pos


def order_vector(qty_kwh: Sequence[float], price_eur_per_kwh: Sequence[float]) -> OrderVector:
    """The contract's order vector of an order intent, as :func:`vector_from_intent` builds it.

    The same conversion (``round(kWh × 1000)``, ``round(EUR × 10⁶)``) without building a field
    name per slot; anything that is not finite or not representable goes through
    :func:`vector_from_intent`, which raises the error naming the field.
    """
    slots = []
    try:
        for q, p in zip(qty_kwh, price_eur_per_kwh, strict=True):
            wh = round(float(q) * WH_PER_KWH)
            micro = round(float(p) * MICRO_EUR_PER_EUR)
            if not (-INT32_MAX <= wh <= INT32_MAX and 0 <= micro <= UINT32_MAX):
                return vector_from_intent(qty_kwh, price_eur_per_kwh)
            slots.append(SlotOrder(wh, micro))
    except (ValueError, OverflowError, TypeError):  # NaN, infinity, not a number, lengths
        return vector_from_intent(qty_kwh, price_eur_per_kwh)
    return OrderVector(tuple(slots))


def reference_clearing(book: SessionBook) -> dict[str, tuple[int, ...]]:
    """Huang clearing of a session book by the market layer, Wh per participant and slot.

    What :meth:`SessionBook.reference_clearing` computes (revealed participants in rank order,
    ties by rank), with the order table built from arrays instead of one ``Order`` per order.
    """
    rows = book.canonical()
    n_slots = len(book.plan.slots)
    out = {who: (0,) * n_slots for who, _, _ in rows}
    if not rows:
        return out
    q, p = book_arrays([vec for _, vec, _ in rows], n_slots)
    ii, tt = np.nonzero(q)
    if not ii.size:
        return out
    table = OrderTable.from_arrays(
        is_buy=q[ii, tt] > 0, quantity_wh=np.abs(q[ii, tt]), price_ueur_per_kwh=p[ii, tt],
        slot=tt.astype(np.int64),
        ids=order_ids(ii, tt, len(rows), "/"))
    filled = np.asarray(huang(table).filled_wh, dtype=np.int64)
    cleared = np.zeros_like(q)
    cleared[ii, tt] = np.where(q[ii, tt] > 0, filled, -filled)
    return {who: tuple(row) for (who, _, _), row in zip(rows, cleared.tolist(), strict=True)}


def _summary_reporter(key: str) -> Any:
    def report(model: VdgModel) -> Any:
        return model.summary[key] if model.summary is not None else None
    return report


class VdgModel(Model):
    """One day of a VDG neighbourhood in Mesa.

    Args:
        scenario: a :class:`Scenario`, a path to a scenario TOML file, or ``None`` (defaults).
        ledger: ``"memory"`` (fast, for populations and sweeps) or ``"evm"`` (embedded chain).
        rng: seed of the run; an integer replaces the scenario's seed (Mesa's ``batch_run``
            passes its seeds here). ``None`` keeps the scenario's seed.
        collect_agents: record household reporters every tick (off for large populations).
        chain_url: with ``ledger="evm"``, a JSON-RPC node instead of the embedded chain.
        receipt_timeout_s: on a node, how long to wait for a transaction to be mined (a
            session's settlement over thousands of households takes minutes on anvil).
        world: a prebuilt neighbourhood for ``scenario`` (skips building it).
        **params: scenario parameters by flat name (``households``, ``battery_share``, ...).

    Raises:
        ModelParameterError, ScenarioError: an unknown parameter or an invalid value (named).
    """

    def __init__(self, scenario: Scenario | str | Path | None = None, *,
                 ledger: LedgerKind = "memory", rng: int | None = None,
                 collect_agents: bool = True, world: World | None = None,
                 chain_url: str | None = None, receipt_timeout_s: float = 60.0,
                 **params: Any) -> None:
        if rng is not None and not isinstance(rng, int | np.integer):
            raise ModelParameterError(f"rng must be an integer seed, got {rng!r}")
        base = scenario if isinstance(scenario, Scenario) else (
            load_scenario(scenario) if scenario is not None else Scenario())
        if rng is not None:
            params = {**params, "seed": int(rng)}
        self.vdg = scenario_with(base, params)
        super().__init__(rng=self.vdg.seed)
        t0 = time.perf_counter()
        self.world = world if world is not None else population_world(self.vdg)
        self.ledger_kind = ledger
        self.ledger = make_ledger(ledger, self.vdg.seed, chain_url, receipt_timeout_s)
        self._batch = MarketBatch.of(self.ledger)
        feeder = self.world.feeder
        self.layout = tree_layout(feeder.graph, feeder.root)
        self.space = Network(feeder.graph.to_undirected(), random=self.random,
                             layout=self.layout)
        sc = self.vdg
        n_accounts = len(self.world.households) + 1  # households, then the aggregator
        addresses: list[str] = []
        for first in range(0, n_accounts, ACCOUNT_BATCH):
            addresses += self.ledger.add_households(min(ACCOUNT_BATCH, n_accounts - first),
                                                    credit_eur=sc.market.credit_eur)
        self.households: list[HouseholdAgent] = []
        for h, addr in zip(self.world.households, addresses, strict=False):
            brain = HouseholdBrain(h, self.world.import_eur_per_kwh, self.world.export_eur_per_kwh,
                                   sc.forecast, household_rng(sc.seed, h.index), salt_seed=sc.seed,
                                   prox_eur_per_kw2=sc.grid.rho_eur_per_kw2)
            self.households.append(HouseholdAgent(self, h, brain, addr))
        self.dso = DsoAgent(self, DsoBrain(self.world, sc.grid))
        self.aggregator = AggregatorAgent(self, AggregatorBrain(self.world.wholesale_eur_per_kwh),
                                          addresses[-1], sc.seed)
        self.participants: list[HouseholdAgent | AggregatorAgent] = [*self.households,
                                                                      self.aggregator]
        self.household_batch = HouseholdBatch([h.brain for h in self.households])
        self.address_of = {p.hid: p.address for p in self.participants}
        self._hid_of = {a.lower(): hid for hid, a in self.address_of.items()}
        self._hids = [h.hid for h in self.households]
        self._soc_cache: tuple[int, float] | None = None  # (slots delivered, mean SoC)
        self.credit_start_nano = {p.hid: self.ledger.credit_nano(p.address)
                                  for p in self.participants}
        self.credit_supply_start_nano = self.ledger.credit_supply_nano()
        self.treasury_start_nano = self.ledger.credit_nano(self.ledger.deployment.treasury)
        self.sessions_plan = day_sessions(sc.market.real_time_block_h,
                                          sc.market.intraday_every_h)
        self.sessions: list[SessionRecord] = []
        self._unsettled: list[SessionRecord] = []
        self.rounds = 0
        self.flex_calls = 0
        self.flex_kw = 0.0
        self.tick = -1
        self.delivered = 0
        self.metered_kw = np.zeros((SLOTS, len(self.households)))
        self.planned_state: GridState | None = None
        self.metered_state: GridState | None = None
        self.summary: dict[str, Any] | None = None
        self.setup_s = time.perf_counter() - t0
        self.phase_s = dict.fromkeys(("plan", "day-ahead", "intraday", "real-time", "delivery",
                                      "collect"), 0.0)
        self._t_init = t0
        reporters = {
            "time_h": lambda m: m.tick / TICKS_PER_SLOT if m.tick >= 0 else 0.0,
            "da_price_eur_per_kwh": lambda m: m.slot_price("day-ahead"),
            "rt_price_eur_per_kwh": lambda m: m.slot_price("real-time"),
            "slot_traded_kwh": lambda m: m.slot_volume_kwh(),
            "substation_import_kw": lambda m: m.slot_import_kw(),
            "battery_soc_frac": lambda m: m.mean_soc_frac(),
            "slot_v_min_pu": lambda m: m.slot_v_pu()[0],
            "slot_v_max_pu": lambda m: m.slot_v_pu()[1],
        }
        for key in SUMMARY_REPORTERS:
            reporters[key] = _summary_reporter(key)
        agent_reporters = {HouseholdAgent: {"soc_frac": "soc_frac",
                                            "net_export_kw": "net_export_kw"}}
        self.datacollector = DataCollector(
            model_reporters=reporters,
            agenttype_reporters=agent_reporters if collect_agents else None)
        log.info("mesa model: %d households, %s ledger, set up in %.1f s",
                 len(self.households), ledger, self.setup_s)

    # ------------------------------------------------------------------------ the calendar
    @property
    def slot(self) -> int:
        """The hourly slot the clock is in (0 before the first tick)."""
        return max(self.tick, 0) // TICKS_PER_SLOT

    def step(self) -> None:
        """One quarter-hour tick: whatever the market calendar has due, then the reporters."""
        if not self.running:
            return
        with young_collections_every(GC_YOUNG_THRESHOLD):
            self._tick()

    def _tick(self) -> None:
        self.tick += 1
        t, quarter = divmod(self.tick, TICKS_PER_SLOT)
        clock = time.perf_counter
        if self.tick == 0:
            t0 = clock()
            self._plan()
            self.phase_s["plan"] += clock() - t0
            t0 = clock()
            self._session(self.sessions_plan[0])
            self.phase_s["day-ahead"] += clock() - t0
        if quarter == 0:
            for plan in self.sessions_plan[1:]:
                if plan.slots[0] == t:
                    t0 = clock()
                    self._session(plan)
                    self.phase_s[plan.kind] += clock() - t0
        if quarter == TICKS_PER_SLOT - 1:
            t0 = clock()
            self._deliver(t)
            self.phase_s["delivery"] += clock() - t0
        if self.tick == TICKS_PER_DAY - 1:
            self._close()
        t0 = clock()
        self.datacollector.collect(self)
        self.phase_s["collect"] += clock() - t0

    def run_day(self) -> dict[str, Any]:
        """Step to the end of the day and return the summary."""
        while self.running:
            self.step()
        assert self.summary is not None
        return self.summary

    # ------------------------------------------------------------------------ phases
    def _plan(self) -> None:
        """ADMM rounds of the DSO with the households, the aggregator's plan, flexibility calls.

        The aggregator step runs on the ledger's ``AdmmCoordinator`` with the ``evm`` ledger and
        in ``grid``'s reference otherwise; both give the same iterates (the contract's fixed
        point is applied to every z).
        """
        from grid.admm.aggregator import ReferenceAggregator  # noqa: PLC0415
        from mas.brains.coordination import AggregatorStep, run_rounds  # noqa: PLC0415

        admm = self.dso.brain.admm
        step: AggregatorStep = ReferenceAggregator()
        if self.ledger_kind == "evm":
            from ledger.admm import ContractAdmm  # noqa: PLC0415 - web3 only with the chain
            from ledger.client import Web3Ledger  # noqa: PLC0415

            assert isinstance(self.ledger, Web3Ledger)
            step = ContractAdmm(self.ledger, batch_submits=True)
        admm.start(step)
        by_id = {h.hid: h for h in self.households}
        agents = [by_id[hid] for hid in admm.ids]
        self.rounds = run_rounds(admm, answer_all=lambda requests: answer_rounds(agents,
                                                                                 requests))
        planned = {h.hid: h.brain.plan.net_export_kw for h in self.households
                   if h.brain.plan is not None}
        total = np.zeros(SLOTS)
        for h in self.households:  # the forecast the DSO sends the aggregator, 1e-6 kW grid
            total += np.asarray(planned[h.hid])
        self.aggregator.brain.make_plan([round(float(x), 6) for x in total])
        dso = self.dso.brain
        state = dso.grid_state(planned)
        for call in dso.flexibility_calls(state):
            offers = {}
            for hid in dso.households_on(call.buses):
                offer = by_id[hid].flex_offer(call.slot, call.direction)
                if offer is not None:
                    offers[hid] = (offer.p_kw, offer.price_eur_per_kwh)
            result = dso.clear_call(call, offers)
            for offer_id, p_kw in sorted(result.accepted_kw.items()):
                by_id[offer_id.rsplit("/", 1)[1]].brain.accept_flex(call.slot, call.direction,
                                                                    p_kw)
            self.flex_calls += 1
            self.flex_kw += result.procured_kw
        self.planned_state = dso.grid_state(
            {h.hid: (np.asarray(h.brain.plan.net_export_kw) + h.brain.flex_kw).tolist()
             for h in self.households if h.brain.plan is not None})

    def _session(self, plan: SessionPlan) -> None:
        """One sealed session: commit, reveal, clear on the ledger; checked against Huang."""
        led = self.ledger
        sid = led.open_session(plan.slots[0], len(plan.slots), commit_s=GATE_S,
                               reveal_s=GATE_S,
                               penalty_eur_per_kwh=self.vdg.market.penalty_eur_per_kwh)
        book = SessionBook(plan, sid, self.address_of)
        sealed: dict[str, tuple[OrderVector, bytes]] = {}
        digests: list[tuple[str, bytes]] = []
        for p, vec in zip(self.participants, self._order_vectors(plan), strict=True):
            if vec is None:
                book.commit(p.hid, None)
                continue
            salt = p.salt(sid)
            digest = commitment(sid, p.address, vec.encode(), salt)
            book.commit(p.hid, digest)
            if self._batch is None:
                led.commit(sid, p.address, vec, salt)
            digests.append((p.address, digest))
            sealed[p.hid] = (vec, salt)
        if self._batch is not None:
            self._batch.commit([(a, [sid, d]) for a, d in digests])
        led.advance_time(GATE_S + 1)
        book.open_reveal()
        reveals: list[tuple[str, list[Any]]] = []
        for p in self.participants:
            if p.hid in sealed:
                vec, salt = sealed[p.hid]
                book.reveal(p.hid, vec, salt)
                if self._batch is None:
                    led.reveal(sid, p.address, vec, salt)
                else:
                    reveals.append((p.address, [sid, vec.encode(), salt]))
        if self._batch is not None:
            self._batch.reveal(reveals)
        led.advance_time(GATE_S + 1)
        book.close()
        if not book.reveals:  # nobody traded: the session is not cleared (nor settled)
            log.info("session %s: no orders", plan.name)
            return
        cl = led.clear(sid)
        who = self._hid_of
        participants = tuple(who[h.lower()] for h in cl.households)
        chain = dict(zip(participants, cl.cleared_wh, strict=True))
        if not cleared_matches(chain, reference_clearing(book)):
            raise MesaRuntimeError(f"session {plan.name}: the ledger's clearing differs from "
                                   f"the market layer's Huang clearing of the same book")
        revealed = book.canonical()
        qty_wh, price = book_arrays([vec for _, vec, _ in revealed], len(plan.slots))
        limits = {n: list(zip(q, u, strict=True)) for (n, _, _), q, u
                  in zip(revealed, qty_wh.tolist(), price.tolist(), strict=True)}
        gains = gains_from_trade_nano(chain, limits,
                                      [s.buy_price_ueur_per_kwh for s in cl.slots],
                                      [s.sell_price_ueur_per_kwh for s in cl.slots])
        rec = SessionRecord(
            plan, sid, participants, tuple(cl.cleared_wh),
            tuple(s.buy_price_eur_per_kwh for s in cl.slots),
            tuple(s.sell_price_eur_per_kwh for s in cl.slots),
            tuple(s.volume_kwh for s in cl.slots), gains)
        self.sessions.append(rec)
        self._unsettled.append(rec)
        for h in self.households:  # the market's result to each household that traded
            if h.hid in chain:
                h.brain.session_result(plan.name, chain[h.hid])
        log.info("session %s: %d orders, %.3f kWh traded", plan.name, len(participants),
                 sum(rec.volume_kwh))

    def _order_vectors(self, plan: SessionPlan) -> list[OrderVector | None]:
        """Every participant's order vector for ``plan`` in rank order (``None``: abstains).

        The households' come from their batch (:class:`HouseholdBatch`, bitwise what each
        brain's :meth:`HouseholdBrain.session_orders` and :func:`order_vector` give).
        """
        qty_wh, price = self.household_batch.session_orders(plan)
        out: list[OrderVector | None] = [
            OrderVector(tuple(map(SlotOrder, q, u))) if any(q) else None
            for q, u in zip(qty_wh.tolist(), price.tolist(), strict=True)]
        for p in self.participants[len(self.households):]:
            intent = p.orders(plan)
            out.append(None if intent.empty
                       else order_vector(intent.qty_kwh, intent.price_eur_per_kwh))
        return out

    def _deliver(self, slot: int) -> None:
        """Deliver a slot, attest the meters, settle sessions whose slots are all attested."""
        deliveries = self.household_batch.deliver(slot)
        for h, d in zip(self.households, deliveries, strict=True):
            h.last = d
        metered = self.metered_kw[slot]
        metered[:] = [d.net_export_kw for d in deliveries]
        # hourly slot: kW over one hour = kWh
        readings = dict(zip(self._hids, metered.tolist(), strict=True))
        clean = self.dso.brain.attest(slot, readings)
        address = self.address_of
        meters = [(address[hid], e) for hid, e in clean.items()]
        for first in range(0, len(meters), ATTEST_BATCH):  # one transaction must fit a block
            self.ledger.attest(slot, dict(meters[first:first + ATTEST_BATCH]))
        self.delivered = slot + 1
        self.metered_state = self.dso.brain.grid_state(
            dict(zip(self._hids, self.metered_kw.T, strict=True)))  # rows: views, no copies
        for rec in list(self._unsettled):
            if rec.plan.slots[-1] <= slot:
                self.ledger.settle(rec.sid)
                self._unsettled.remove(rec)

    def _close(self) -> None:
        """Withdraw what the market owes everyone; compute the summary; stop."""
        led = self.ledger
        owed = [a for a in [p.address for p in self.participants] + [led.deployment.treasury]
                if led.owed_nano(a)]
        if self._batch is not None:
            self._batch.withdraw(owed)
        else:
            for account in owed:
                led.withdraw(account)
        from mas.mesa.summary import day_summary  # noqa: PLC0415 - avoids an import cycle

        self.summary = day_summary(self, time.perf_counter() - self._t_init)
        self.running = False

    # ------------------------------------------------------------------------ reporters
    def _slot_sessions(self, kind: str) -> list[SessionRecord]:
        return [r for r in self.sessions if r.plan.kind == kind and self.slot in r.plan.slots]

    def slot_price(self, kind: str) -> float:
        """Buyers' price of the current slot in the last session of ``kind`` (NaN: none)."""
        for r in reversed(self._slot_sessions(kind)):
            k = r.plan.slots.index(self.slot)
            if r.volume_kwh[k] > 0:
                return r.buy_price_eur_per_kwh[k]
        return float("nan")

    def slot_volume_kwh(self) -> float:
        """Energy traded for the current slot over all sessions."""
        return float(sum(r.volume_kwh[r.plan.slots.index(self.slot)]
                         for r in self.sessions if self.slot in r.plan.slots))

    def _state(self) -> GridState | None:
        if self.delivered > self.slot and self.metered_state is not None:
            return self.metered_state
        return self.planned_state

    def slot_import_kw(self) -> float:
        """Substation import in the current slot: metered once delivered, else planned."""
        state = self._state()
        return float(state.import_kw[self.slot]) if state is not None else float("nan")

    def slot_v_pu(self) -> tuple[float, float]:
        """Lowest and highest bus voltage of the current slot (metered or planned)."""
        state = self._state()
        if state is None:
            return float("nan"), float("nan")
        v = state.v_pu[self.slot]
        return float(v.min()), float(v.max())

    def bus_values(self) -> tuple[dict[object, float], dict[object, float]]:
        """Per bus: voltage and net injection (kW) of the current slot (metered or planned)."""
        state = self._state()
        buses = self.world.feeder.buses
        v = {b: float(state.v_pu[self.slot, k]) if state is not None else 1.0
             for k, b in enumerate(buses)}
        p = dict.fromkeys(buses, 0.0)
        for k, h in enumerate(self.households):
            if self.delivered > self.slot:
                p[h.spec.bus] += float(self.metered_kw[self.slot, k])
            elif h.brain.plan is not None:
                p[h.spec.bus] += h.brain.plan.net_export_kw[self.slot] + h.brain.flex_kw[
                    self.slot]
        return v, p

    def mean_soc_frac(self) -> float:
        """Mean battery state of charge over the households with a battery (NaN: none)."""
        if self._soc_cache is None or self._soc_cache[0] != self.delivered:  # changes at delivery
            socs = [s for h in self.households if (s := h.soc_frac) is not None]
            self._soc_cache = (self.delivered, float(np.mean(socs)) if socs else float("nan"))
        return self._soc_cache[1]

