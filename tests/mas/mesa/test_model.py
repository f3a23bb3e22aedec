"""The Mesa model of a day: calendar, conservation, determinism, parity across runtimes.

Parity: the SPADE runtime's day entry is not in the tree yet, so the reference here is the
brains driven directly through the world API the SPADE shells use (``build_world``,
``household_rng``, the brains, ``SessionBook``, the ledger client), with messages arriving in a
shuffled order, on the embedded EVM. The Mesa model must settle the same trades and payments.
"""

from __future__ import annotations

import gc
import hashlib
from typing import Any

import numpy as np
import pytest
from mesa.experimental.scenarios import Scenario as MesaScenario

from grid.admm.aggregator import ReferenceAggregator
from ledger.client import Web3Ledger
from ledger.orders import commitment
from mas.brains.aggregator import AggregatorBrain
from mas.brains.auctioneer import SessionBook, day_sessions, vector_from_intent
from mas.brains.coordination import answer_round
from mas.brains.dso import DsoBrain
from mas.brains.household import HouseholdBrain
from mas.errors import ScenarioError
from mas.mesa.errors import ModelParameterError
from mas.mesa.model import (
    GC_YOUNG_THRESHOLD,
    TICKS_PER_DAY,
    VdgModel,
    tree_layout,
    young_collections_every,
)
from mas.mesa.params import population_world, scenario_with
from mas.mesa.summary import DaySettlement, day_settlement
from mas.mesa.viz import VizModel, initial_values, model_params
from mas.scenario import Scenario
from mas.world import SLOTS, build_world, household_rng

SMALL = Scenario(name="small", feeder="kerber-landnetz-kabel-1", households=8, seed=4)


@pytest.fixture(scope="module")
def mesa_day() -> VdgModel:
    model = VdgModel(SMALL)
    model.run_day()
    return model


def test_a_day_is_96_ticks_and_conserves_money_and_energy(mesa_day: VdgModel) -> None:
    s = mesa_day.summary
    assert s is not None
    assert mesa_day.steps == TICKS_PER_DAY
    assert not mesa_day.running
    assert s["households"] == 8
    assert s["money_conserved"]
    assert s["energy_conserved"]
    assert s["trades"] > 0
    assert s["traded_kwh"] > 0
    assert s["sessions"] == len(day_sessions(SMALL.market.real_time_block_h,
                                          SMALL.market.intraday_every_h))
    assert s["intraday_traded_kwh"] > 0  # the intraday sessions trade updated forecasts
    assert s["traded_kwh"] == pytest.approx(
        s["day_ahead_traded_kwh"] + s["intraday_traded_kwh"] + s["real_time_traded_kwh"])
    for key in ("welfare_eur", "cost_prosumers_eur", "cost_consumers_eur", "peak_import_kw",
                "v_min_pu", "v_max_pu", "admm_iterations", "gas_used", "xmpp_messages",
                "wall_time_s"):
        assert key in s
    assert s["v_min_pu"] <= 1.0 + 1e-9 <= s["v_max_pu"] + 1e-6
    history = mesa_day.dso.brain.admm.history  # the coordination fields SPADE's summary has
    assert s["admm_iterations"] == len(history) > 0
    assert s["admm_converged"] is history[-1].converged
    assert s["admm_primal_residual_kw"] == history[-1].primal_residual_kw
    assert s["admm_gas_used"] == 0  # the in-memory ledger's aggregator step is off chain


def test_data_collector_follows_the_calendar(mesa_day: VdgModel) -> None:
    df = mesa_day.datacollector.get_model_vars_dataframe()
    assert len(df) == TICKS_PER_DAY
    # the day-ahead session clears at tick 0: the midday slots have a price from then on
    assert df["da_price_eur_per_kwh"].notna().any()
    assert (df["slot_traded_kwh"] > 0).any()
    assert df["welfare_eur"].iloc[-1] == mesa_day.summary["welfare_eur"]
    assert df["welfare_eur"].iloc[:-1].isna().all()
    soc = df["battery_soc_frac"].to_numpy()
    assert np.nanmax(soc) <= 1 + 1e-9
    assert np.nanmin(soc) >= -1e-9
    agents = mesa_day.datacollector.get_agenttype_vars_dataframe(
        type(mesa_day.households[0]))
    assert len(agents) == TICKS_PER_DAY * 8


def test_households_sit_on_their_bus_in_the_network_space(mesa_day: VdgModel) -> None:
    for h in mesa_day.households:
        assert h.cell.coordinate == h.spec.bus
        assert h in h.cell.agents


def test_a_tick_collects_young_objects_less_often_and_restores_the_setting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = gc.get_threshold()
    model = VdgModel(SMALL)
    seen: list[tuple[int, int, int]] = []
    monkeypatch.setattr(model, "_tick", lambda: seen.append(gc.get_threshold()))
    model.step()
    assert seen == [(max(GC_YOUNG_THRESHOLD, before[0]), *before[1:])]
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), young_collections_every(10**6):  # restored on errors
        raise RuntimeError
    assert gc.get_threshold() == before
    with young_collections_every(1):  # never lowered
        assert gc.get_threshold() == before


def test_tree_layout_hangs_from_the_substation() -> None:
    feeder = build_world(SMALL).feeder
    pos = tree_layout(feeder.graph, feeder.root)
    assert pos[feeder.root][1] == 0.0
    for parent, child in feeder.graph.edges:
        assert pos[child][1] == pos[parent][1] - 1.0
    leaves = [b for b in feeder.buses if feeder.graph.out_degree(b) == 0]
    assert sorted(pos[b][0] for b in leaves) == [float(i) for i in range(len(leaves))]


def test_same_seed_same_settlement_other_seed_differs(mesa_day: VdgModel) -> None:
    again = VdgModel(SMALL, collect_agents=False)
    again.run_day()
    assert day_settlement(again) == day_settlement(mesa_day)
    other = VdgModel(SMALL, rng=5, collect_agents=False)
    other.run_day()
    assert day_settlement(other) != day_settlement(mesa_day)


def test_parameters_are_validated_by_name() -> None:
    with pytest.raises(ModelParameterError, match="unknown parameter 'batery_share'"):
        VdgModel(SMALL, batery_share=0.5)
    with pytest.raises(ScenarioError, match=r"der\.battery_share"):
        scenario_with(SMALL, {"battery_share": 2.0})
    assert scenario_with(SMALL, {"der.pv_share": 0.1}).der.pv_share == 0.1


def test_population_repeats_the_feeder_beyond_its_loads() -> None:
    base = build_world(Scenario(feeder=SMALL.feeder, seed=SMALL.seed))
    n = len(base.households) + 3
    world = population_world(scenario_with(SMALL, {"households": n}))
    assert len(world.households) == n
    extra = world.households[-1]
    assert extra.id == f"h{n - 1:03d}"
    assert extra.bus == base.households[2].bus
    assert extra.load_kw == base.households[2].load_kw


# ---------------------------------------------------------------------------- parity


def _direct_day(scenario: Scenario, led: Any, order_seed: int) -> DaySettlement:
    """The day driven through the brains directly, messages arriving in a shuffled order."""
    shuffle = np.random.default_rng(order_seed).permutation
    world = build_world(scenario)
    sc = scenario
    brains = {h.id: HouseholdBrain(h, world.import_eur_per_kwh, world.export_eur_per_kwh,
                                   sc.forecast, household_rng(sc.seed, h.index), sc.seed)
              for h in world.households}
    ids = list(brains)
    dso = DsoBrain(world, sc.grid)
    agg = AggregatorBrain(world.wholesale_eur_per_kwh)
    addr = dict(zip([*ids, "agg"], led.add_households(len(ids) + 1,
                                                      credit_eur=sc.market.credit_eur),
                    strict=True))
    start = {k: led.credit_nano(a) for k, a in addr.items()}
    admm = dso.admm
    admm.start(ReferenceAggregator())
    while not admm.done:
        requests = admm.open_round()
        for i in shuffle(len(ids)):
            admm.submit(ids[i], admm.round, answer_round(brains[ids[i]], requests[ids[i]]))
        admm.close_round()
    planned = {k: b.plan.net_export_kw for k, b in brains.items()}
    agg.make_plan(np.sum([planned[k] for k in ids], axis=0))
    for call in dso.flexibility_calls(dso.grid_state(planned)):
        offers = {}
        for k in dso.households_on(call.buses):
            o = brains[k].flex_offer(call.slot, call.direction)
            if o is not None:
                offers[k] = (o.p_kw, o.price_eur_per_kwh)
        for oid, p in dso.clear_call(call, offers).accepted_kw.items():
            brains[oid.rsplit("/", 1)[1]].accept_flex(call.slot, call.direction, p)

    def agg_salt(sid: int) -> bytes:
        return hashlib.sha256(f"vdg-salt:{sc.seed}:agg:{sid}".encode()).digest()

    cleared: dict[tuple[str, str], tuple[int, ...]] = {}
    prices: dict[str, tuple[tuple[int, int], ...]] = {}
    unsettled = []
    plans = day_sessions(sc.market.real_time_block_h, sc.market.intraday_every_h)

    def run_session(plan: Any) -> None:
        sid = led.open_session(plan.slots[0], len(plan.slots), commit_s=600, reveal_s=600,
                               penalty_eur_per_kwh=sc.market.penalty_eur_per_kwh)
        book = SessionBook(plan, sid, addr)
        who_all = [*ids, "agg"]
        for i in shuffle(len(who_all)):
            who = who_all[i]
            if who == "agg":
                intent = agg.day_ahead_orders(plan.slots) if plan.kind == "day-ahead" else None
                salt = agg_salt(sid)
            else:
                b = brains[who]
                intent = b.session_orders(plan)
                salt = b.salt(sid)
            if intent is None or intent.empty:
                book.commit(who, None)
                continue
            vec = vector_from_intent(intent.qty_kwh, intent.price_eur_per_kwh)
            book.commit(who, commitment(sid, addr[who], vec.encode(), salt))
            book_salts[who] = (vec, salt)
        for who, _ in sorted(book.commits.items(), key=lambda kv: who_all.index(kv[0])):
            led.commit(sid, addr[who], *book_salts[who])
        led.advance_time(601)
        book.open_reveal()
        for i in shuffle(len(who_all)):
            who = who_all[i]
            if who in book.commits:
                book.reveal(who, *book_salts[who])
        for who, vec, salt in book.canonical():  # the auctioneer's canonical (rank) order
            led.reveal(sid, addr[who], vec, salt)
        led.advance_time(601)
        cl = led.clear(sid)
        back = {a.lower(): k for k, a in addr.items()}
        for h, row in zip(cl.households, cl.cleared_wh, strict=True):
            if back[h.lower()] in brains:
                brains[back[h.lower()]].session_result(plan.name, row)
            if any(row):
                cleared[(plan.name, back[h.lower()])] = tuple(row)
        prices[plan.name] = tuple((s.buy_price_ueur_per_kwh, s.sell_price_ueur_per_kwh)
                                  for s in cl.slots)
        unsettled.append((plan, sid))

    book_salts: dict[str, Any] = {}
    run_session(plans[0])
    for t in range(SLOTS):
        for plan in plans[1:]:
            if plan.slots[0] == t:
                book_salts = {}
                run_session(plan)
        readings = {k: brains[k].deliver(t).net_export_kw for k in ids}
        clean = dso.attest(t, readings)
        led.attest(t, {addr[k]: e for k, e in clean.items()})
        for item in list(unsettled):
            if item[0].slots[-1] <= t:
                led.settle(item[1])
                unsettled.remove(item)
    for a in [*addr.values(), led.deployment.treasury]:
        if led.owed_nano(a):
            led.withdraw(a)
    return DaySettlement(cleared, prices,
                         {k: led.credit_nano(a) - start[k] for k, a in addr.items()})


@pytest.mark.chain
@pytest.mark.integration
def test_parity_mesa_settles_like_the_brains_driven_directly(mesa_day: VdgModel) -> None:
    direct = _direct_day(SMALL, Web3Ledger.deploy(), order_seed=11)
    mesa = day_settlement(mesa_day)
    assert direct.cleared_wh == mesa.cleared_wh
    assert direct.prices_ueur_per_kwh == mesa.prices_ueur_per_kwh
    assert direct.credit_change_nano == mesa.credit_change_nano
    assert any(v != 0 for v in mesa.credit_change_nano.values())


@pytest.mark.chain
@pytest.mark.integration
def test_parity_memory_ledger_and_evm_settle_the_same_day(mesa_day: VdgModel) -> None:
    evm = VdgModel(SMALL, ledger="evm", collect_agents=False)
    summary = evm.run_day()
    assert day_settlement(evm) == day_settlement(mesa_day)
    assert summary["gas_used"] > 0
    assert summary["money_conserved"]
    assert summary["energy_conserved"]


def test_viz_model_takes_the_page_controls_and_ignores_mesas_scenario() -> None:
    params = model_params(SMALL, 8)
    kwargs = {**initial_values(params), "households": 5, "battery_share": 0.5}
    model = VizModel(scenario=MesaScenario(), **kwargs)
    assert model.vdg.households == 5
    assert model.vdg.der.battery_share == 0.5
    assert model.vdg.feeder == SMALL.feeder
    model.step()
    assert model.sessions
