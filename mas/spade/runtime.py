"""One simulated day over XMPP and the chain: processes, agents and the day's protocol.

:class:`DayRunner` starts (or joins) the XMPP server, deploys the ledger, spreads the household
agents over worker processes, runs the DSO, auctioneer and aggregator agents in this process and
drives the day (DESIGN "One simulated day"):

0. the participants join: each tells its own address, the operator registers and funds it,
   and relays the approval the participant signed (participants sign every market
   transaction themselves; :mod:`mas.chainops`);
1. consensus ADMM rounds of the DSO's grid copy with every household's plan (the aggregator
   step on the chain's ``AdmmCoordinator``);
2. grid check and flexibility calls where a voltage or the import limit binds;
3. the day-ahead session: sealed commitments, reveals, clearing on chain;
4. the intraday and real-time sessions in the order they close (:func:`day_sessions`), each
   after the slots before its first one were delivered and metered (the DSO attesting each slot
   on chain): intraday sessions trade updated forecasts, real-time ones the last deviations;
5. settlement of every session on chain and withdrawal of what is owed (signed by each
   participant, relayed by the operator).

Simulated time is event-driven: each phase starts when the previous one has finished (or its
deadline passed), so a day takes as long as its messages and transactions. Every wait has a
deadline; the whole day has one too. Everything started is stopped on every exit path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ledger.errors import ContractRevert, LedgerError, RawTxError
from ledger.orders import OrderVector, SlotOrder
from market.vdg import FlexibilityCall
from mas.brains.aggregator import AggregatorBrain
from mas.brains.auctioneer import SessionBook, SessionPlan, day_sessions
from mas.brains.coordination import RoundRequest
from mas.brains.dso import DsoBrain
from mas.chainops import ChainOps
from mas.errors import MasError, RuntimeFailureError
from mas.messages import Body
from mas.scenario import Scenario
from mas.spade.agents import (
    ACCEPT,
    AGGREGATOR,
    CFP,
    FAILURE,
    INFORM,
    AggregatorAgent,
    VdgAgent,
)
from mas.spade.loop import run_agents
from mas.spade.server import EmbeddedXmppServer
from mas.world import SLOTS, World, build_world

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass(slots=True)
class DayRecord:
    """What happened, as the operator's agents saw it (inputs of the summary and report)."""

    rounds: list[dict[str, Any]] = field(default_factory=list)
    plans_import_kw: dict[str, list[float]] = field(default_factory=dict)
    flex: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    cleared: dict[str, dict[str, tuple[int, ...]]] = field(default_factory=dict)
    limits: dict[str, dict[str, tuple[tuple[int, int], ...]]] = field(default_factory=dict)
    metered_kwh: dict[str, list[float]] = field(default_factory=dict)
    missing_readings: int = 0
    clearing_matches: bool = True


class DayRunner:
    """Runs one day of a scenario through XMPP and the chain.

    Args:
        scenario: the scenario.
        xmpp: ``HOST[:PORT]`` of an existing server, or ``None`` to start the embedded one.
        chain_url: JSON-RPC URL of a chain node, or ``None`` for the embedded chain.
        progress: called with (phase, done, total) as the day advances.
        start_households: start the household worker processes here (False: they are started
            elsewhere, e.g. ``vdg agents`` on other machines).
        password: password of the agents' XMPP accounts.
        hooks: test hooks called with the runner at phase boundaries (by phase name).
        aggregator: where the aggregator agent runs: ``"here"`` (this process), ``"process"``
            (a worker process started here) or ``"elsewhere"`` (``vdg agents --roles
            aggregator`` on another machine).
    """

    def __init__(self, scenario: Scenario, *, xmpp: str | None = None,
                 chain_url: str | None = None, progress: Progress | None = None,
                 start_households: bool = True, password: str = "vdg",
                 hooks: dict[str, Callable[[DayRunner], None]] | None = None,
                 aggregator: str = "here") -> None:
        if aggregator not in ("here", "process", "elsewhere"):
            raise MasError(f"aggregator must be 'here', 'process' or 'elsewhere', got "
                           f"{aggregator!r}")
        self.aggregator = aggregator
        self.scenario = scenario
        self.xmpp = xmpp
        self.chain_url = chain_url
        self.progress = progress or (lambda phase, done, total: None)
        self.start_households = start_households
        self.password = password
        self.hooks = hooks or {}
        self.server: EmbeddedXmppServer | None = None
        self.workers: list[subprocess.Popen[str]] = []
        self.world: World | None = None
        self.ops: ChainOps | None = None
        self.record = DayRecord()
        self.dso_brain: DsoBrain | None = None
        self.agents: list[VdgAgent] = []
        self.client_messages = 0
        self.household_messages = 0
        self.rejected = 0
        self.finished = False
        self._tmp = Path(tempfile.mkdtemp(prefix="vdg-day-"))

    # ------------------------------------------------------------------------ lifecycle
    def run(self) -> DayRecord:
        """Run the day; stops everything it started, also on errors and Ctrl-C."""
        try:
            self._start_infrastructure()
            run_agents(self._day_with_deadline)
        except LedgerError as exc:  # retried by the ledger client already; now a clear failure
            raise RuntimeFailureError(f"chain: {exc}") from exc
        finally:
            self.close()
        return self.record

    def close(self) -> None:
        """Stop workers and the embedded server."""
        for proc in self.workers:
            try:
                proc.wait(15 if self.finished else 0.01)  # on day.end they leave by themselves
            except subprocess.TimeoutExpired:
                proc.terminate()
        for proc in self.workers:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            if proc.stdout is not None:
                for line in proc.stdout.read().splitlines():
                    if line.startswith("DONE "):
                        fields = dict(kv.split("=") for kv in line.split()[1:])
                        self.household_messages += int(fields["sent"])
                        self.rejected += int(fields["rejected"])
                proc.stdout.close()
        if self.server is not None:
            self.server.stop()
        for p in self._tmp.glob("*"):
            with contextlib.suppress(OSError):
                p.unlink()
        with contextlib.suppress(OSError):
            self._tmp.rmdir()

    @property
    def domain_port(self) -> tuple[str, int]:
        """XMPP domain and client port in use."""
        if self.server is not None:
            return self.server.domain, self.server.client_port
        from mas.spade.worker import parse_xmpp  # noqa: PLC0415

        return parse_xmpp(self.xmpp or "localhost")

    def server_messages(self) -> int | None:
        """Messages the embedded server routed (``None`` on an external server)."""
        return self.server.messages() if self.server is not None else None

    def _start_infrastructure(self) -> None:
        sc = self.scenario
        self.progress("start", 0, 4)
        if self.chain_url is not None:  # fail fast, before anything is started
            from ledger.chain import Chain, ChainConfig  # noqa: PLC0415

            Chain(ChainConfig(url=self.chain_url, seed=sc.seed))
        if self.xmpp is None:
            self.server = EmbeddedXmppServer().start()
        domain, port = self.domain_port
        self.progress("start", 1, 4)
        if self.start_households or self.aggregator == "process":
            self._spawn_workers(domain, port)
        self.world = build_world(sc)
        self.progress("start", 2, 4)
        participants = [*self.world.ids, AGGREGATOR]
        self.ops = ChainOps(participants, sc.market.credit_eur, self.chain_url, seed=sc.seed)
        self.progress("start", 3, 4)
        self.dso_brain = DsoBrain(self.world, sc.grid)

    def _spawn_workers(self, domain: str, port: int) -> None:
        sc = self.scenario
        n = len(build_world(sc).households) if sc.households is None else sc.households
        k = max(1, min(sc.runtime.household_processes, n))
        path = self._tmp / "scenario.json"
        path.write_text(json.dumps(sc.to_dict()))
        groups = np.array_split(np.arange(n), k)
        env = dict(os.environ)
        jobs = [f"{int(g[0])}-{int(g[-1])}" for g in groups]
        if self.aggregator == "process":
            jobs.append("aggregator")
        for ids in jobs:
            role = ["--aggregator"] if ids == "aggregator" else ["--ids", ids]
            cmd = [sys.executable, "-m", "mas.spade.worker", "--scenario", str(path), *role,
                   "--xmpp", f"{domain}:{port}", "--password", self.password,
                   "--deadline-s", str(sc.runtime.day_deadline_s)]
            self.workers.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                                                 env=env, start_new_session=True))

    def _wait_workers_ready(self, deadline_s: float) -> None:
        end = time.monotonic() + deadline_s
        for proc in self.workers:
            assert proc.stdout is not None
            while True:
                if time.monotonic() > end:
                    raise RuntimeFailureError("household processes did not start within "
                                              f"{deadline_s:g} s")
                line = proc.stdout.readline()
                if line.startswith("READY"):
                    break
                if not line and proc.poll() is not None:
                    raise RuntimeFailureError(f"household process {proc.pid} exited with "
                                              f"status {proc.returncode} before it was ready")

    # ------------------------------------------------------------------------ the day
    async def _day_with_deadline(self) -> None:
        try:
            await asyncio.wait_for(self._day(), timeout=self.scenario.runtime.day_deadline_s)
        except TimeoutError:
            raise RuntimeFailureError(f"the day did not finish within "
                                      f"{self.scenario.runtime.day_deadline_s:g} s") from None
        finally:
            for a in self.agents:
                self.client_messages += a.sent
                self.rejected += a.rejected
                with contextlib.suppress(Exception):
                    await a.stop()

    def _hook(self, name: str) -> None:
        if name in self.hooks:
            self.hooks[name](self)

    async def _day(self) -> None:
        sc, world, ops = self.scenario, self.world, self.ops
        assert world is not None
        assert ops is not None
        assert self.dso_brain is not None
        domain, port = self.domain_port
        dso = VdgAgent("dso", domain, port, self.password)
        auct = VdgAgent("auctioneer", domain, port, self.password)
        self.agents = [dso, auct]
        if self.aggregator == "here":
            self.agents.append(AggregatorAgent(AggregatorBrain(world.wholesale_eur_per_kwh),
                                               sc.seed, domain, port, self.password))
        for a in self.agents:
            await a.start(auto_register=True)
        if self.workers:
            await asyncio.get_running_loop().run_in_executor(
                None, self._wait_workers_ready, sc.runtime.day_deadline_s / 2)
        self.progress("start", 4, 4)
        await self._join(auct, [*world.ids, AGGREGATOR])
        self._hook("ready")
        await self._coordinate(dso)
        self._hook("coordinated")
        await self._flexibility(dso)
        sessions = day_sessions(sc.market.real_time_block_h, sc.market.intraday_every_h)
        da = await self._session(auct, sessions[0], [*world.ids, AGGREGATOR])
        self._hook("day-ahead")
        settle_ids = [da]
        delivered = 0
        for plan in [*sessions[1:], None]:
            for t in range(delivered, plan.slots[0] if plan is not None else SLOTS):
                await self._deliver(dso, t)
                delivered += 1
                self.progress("delivery", delivered, SLOTS)
            if plan is not None:
                settle_ids.append(await self._session(auct, plan, list(world.ids)))
        self._hook("delivered")
        self.progress("settlement", 0, len(settle_ids))
        for k, sid in enumerate(settle_ids):
            if sid is not None:
                ops.settle(sid)
            self.progress("settlement", k + 1, len(settle_ids))
        await self._withdraw(auct)
        for name in [*world.ids, AGGREGATOR]:
            dso.send_body(name, INFORM, "day.end")
        await asyncio.sleep(0.5)  # let the last informs leave before the streams close
        self.finished = True

    async def _coordinate(self, dso: VdgAgent) -> None:
        """Consensus ADMM rounds of the DSO with every household (aggregator step on chain)."""
        sc, world, brain, ops = self.scenario, self.world, self.dso_brain, self.ops
        assert world is not None
        assert brain is not None
        assert ops is not None
        loop = asyncio.get_running_loop()
        admm = brain.admm
        await loop.run_in_executor(None, admm.start, ops.admm_aggregator())
        timeout = sc.runtime.reply_timeout_s
        answers: dict[str, Body] = {}
        while not admm.done:
            t0 = time.perf_counter()
            requests = admm.open_round()
            k = admm.round
            self.progress("coordination", k, sc.grid.max_rounds)

            def ask(n: str, asked: dict[str, RoundRequest] = requests) -> None:
                r = asked[n]
                dso.send_body(n, CFP, "plan.round", round=r.round,
                              lam_eur_per_kwh=list(r.lam_eur_per_kwh),
                              target_import_kw=(None if r.target_import_kw is None
                                                else list(r.target_import_kw)),
                              rho_eur_per_kw2=r.rho_eur_per_kw2)

            # from round 1 on the DSO's own step needs only z: it runs while households work
            grid = loop.run_in_executor(None, admm.grid_step) if k > 0 else None
            answers = await dso.gather("plan.answer", "", k, world.ids, ask, timeout)
            if grid is not None:
                await grid
            for name in world.ids:  # canonical order, whatever the arrival order
                if name in answers:
                    admm.submit(name, k, answers[name]["net_import_kw"])
            res = await loop.run_in_executor(None, admm.close_round)
            self.record.rounds.append({
                "round": res.round, "primal_residual_kw": res.primal_residual_kw,
                "dual_residual_kw": res.dual_residual_kw, "eps_primal_kw": res.eps_primal_kw,
                "eps_dual_kw": res.eps_dual_kw, "consensus_kw": res.consensus_kw,
                "peak_kw": res.peak_import_kw, "answers": res.answers,
                "stale": len(res.stale), "converged": res.converged, "gas_used": res.gas_used,
                "wall_s": round(time.perf_counter() - t0, 3)})
        self.progress("coordination", sc.grid.max_rounds, sc.grid.max_rounds)
        for name, x in admm.plans_import_kw().items():  # the last answer of each household
            body = answers.get(name)
            self.record.plans_import_kw[name] = list(body["net_import_kw"]) if body else \
                [float(v) for v in x]
        for name in answers:
            dso.send_body(name, ACCEPT, "plan.final", round=admm.round)
        total = np.zeros(SLOTS)
        for v in self.record.plans_import_kw.values():
            total += np.asarray(v)
        dso.send_body(AGGREGATOR, INFORM, "fleet.forecast",
                      net_export_kw=[round(float(-x), 6) for x in total])

    async def _flexibility(self, dso: VdgAgent) -> None:
        brain, world = self.dso_brain, self.world
        assert brain is not None
        assert world is not None
        planned = {h: [-x for x in v] for h, v in self.record.plans_import_kw.items()}
        calls = brain.flexibility_calls(brain.grid_state(planned))
        for k, call in enumerate(calls):
            self.progress("flexibility", k, len(calls))
            names = brain.households_on(call.buses)

            def ask(n: str, c: FlexibilityCall = call) -> None:
                dso.send_body(n, CFP, "flex.call", session=c.id, slot=c.slot,
                              direction=c.direction.value, p_kw=c.p_kw,
                              price_cap_eur_per_kwh=c.price_cap_eur_per_kwh)

            offers = await dso.gather("flex.offer", call.id, -1, names, ask,
                                      self.scenario.runtime.reply_timeout_s)
            usable = {n: (b["p_kw"], b["price_eur_per_kwh"]) for n, b in offers.items()
                      if b["p_kw"] > 0}
            result = brain.clear_call(call, usable)
            for offer_id, p_kw in sorted(result.accepted_kw.items()):
                name = offer_id.rsplit("/", 1)[1]
                dso.send_body(name, ACCEPT, "flex.award", session=call.id, slot=call.slot,
                              direction=call.direction.value, p_kw=round(p_kw, 6))
            self.record.flex.append({"call": call.id, "slot": call.slot,
                                     "direction": call.direction.value, "asked_kw": call.p_kw,
                                     "offers": len(usable), "procured_kw": result.procured_kw})
        self.progress("flexibility", len(calls), len(calls))

    @staticmethod
    def _refuse(agent: VdgAgent, name: str, what: str, exc: Exception) -> None:
        """Log a refused request and tell the participant why (a ``failure`` reply)."""
        log.warning("%s of %s refused: %s", what, name, exc)
        agent.send_body(name, FAILURE, "error", error=f"{what}: {exc}"[:2000])

    async def _join(self, auct: VdgAgent, names: list[str]) -> None:
        """Participants tell their addresses; register and fund them; relay their approvals."""
        ops, timeout = self.ops, self.scenario.runtime.reply_timeout_s
        assert ops is not None
        terms = ops.join_terms()
        told = await auct.gather("account.address", "", -1, names,
                                 lambda n: auct.send_body(n, CFP, "account.join", **terms),
                                 timeout)
        addresses = {n: told[n]["address"] for n in names if n in told}
        for name, exc in ops.register(addresses).items():
            self._refuse(auct, name, "join", exc)
        joined = [n for n in addresses if n in ops.address]
        await self._signed_round(auct, joined, "approve", "account.approval", "join: approval",
                                 ops.relay_approval)
        log.info("%d of %d participants joined", len(ops.ready), len(names))

    async def _withdraw(self, auct: VdgAgent) -> None:
        """Participants the market owes sign their withdrawals; the treasury withdraws."""
        ops = self.ops
        assert ops is not None
        await self._signed_round(auct, ops.owed(), "withdraw", "account.withdrawal", "withdrawal",
                                 ops.relay_withdrawal)
        ops.withdraw_treasury()

    async def _signed_round(self, auct: VdgAgent, names: list[str], action: str, reply: str,
                            what: str, relay: Callable[[str, bytes], None]) -> None:
        """Ask ``names`` to sign ``action`` (``account.{action}`` cfp), relay what they sign.

        A transaction the relay refuses is answered with a ``failure`` naming why.
        """
        ops = self.ops
        assert ops is not None
        signed = await auct.gather(
            reply, "", -1, names,
            lambda n: auct.send_body(n, CFP, f"account.{action}", **ops.terms(n, action)),
            self.scenario.runtime.reply_timeout_s)
        for name in names:
            if name in signed:
                try:
                    relay(name, signed[name]["raw_tx"])
                except (RawTxError, ContractRevert) as exc:
                    self._refuse(auct, name, what, exc)

    async def _session(self, auct: VdgAgent, plan: SessionPlan, names: list[str]
                       ) -> int | None:
        sc, ops = self.scenario, self.ops
        assert ops is not None
        timeout = sc.runtime.reply_timeout_s
        sid = ops.open_session(plan.slots[0], len(plan.slots), sc.market.penalty_eur_per_kwh)
        names = [n for n in names if n in ops.ready]  # those that joined and approved
        book = SessionBook(plan, sid, {n: ops.address[n] for n in names})
        phase = f"session {plan.name}"
        self.progress(phase, 0, 3)
        sealed = await auct.gather(
            "market.sealed", plan.name, -1, names,
            lambda n: auct.send_body(n, CFP, "market.commit", session=plan.name,
                                     chain_session=sid, slots=list(plan.slots),
                                     address=ops.address[n], **ops.terms(n, "commit")),
            timeout)
        for name in names:  # canonical order, whatever the arrival order
            if name in sealed:
                try:
                    digest, raw = sealed[name]["commitment"], sealed[name]["raw_tx"]
                    if digest is not None and raw is None:
                        raise RawTxError("raw_tx", None, "a commitment needs its transaction")
                    if digest is not None:
                        ops.relay_commit(sid, name, digest, raw)
                    book.commit(name, digest)
                except (MasError, RawTxError, ContractRevert) as exc:
                    self._refuse(auct, name, f"session {plan.name}: commitment", exc)
        book.open_reveal()
        ops.close_commits()
        self._hook(f"{plan.name}:committed")
        self.progress(phase, 1, 3)
        committed = [n for n in names if n in book.commits]
        revealed = await auct.gather(
            "market.orders", plan.name, -1, committed,
            lambda n: auct.send_body(n, CFP, "market.reveal", session=plan.name,
                                     **ops.terms(n, "reveal")), timeout)
        for name in committed:
            if name not in revealed:
                continue
            body = revealed[name]
            vec = OrderVector(tuple(SlotOrder(q, p) for q, p in
                                    zip(body["qty_wh"], body["price_ueur_per_kwh"], strict=True)))
            try:
                book.reveal(name, vec, body["salt"])
            except MasError as exc:
                self._refuse(auct, name, f"session {plan.name}: reveal", exc)
        book.close()
        for name, vec, salt in book.canonical():
            try:
                ops.relay_reveal(sid, name, vec, salt, revealed[name]["raw_tx"])
            except (RawTxError, ContractRevert) as exc:
                self._refuse(auct, name, f"session {plan.name}: reveal", exc)
                book.reveals.pop(name)
        self.progress(phase, 2, 3)
        if not book.reveals:
            self.record.sessions.append({"session": plan.name, "kind": plan.kind,
                                         "chain_id": sid, "participants": 0, "traded_kwh": 0.0})
            self.progress(phase, 3, 3)
            return None
        clearing = ops.clear(sid)
        cleared = ops.cleared_by_participant(clearing)
        reference = book.reference_clearing()
        matches = all(tuple(cleared[k]) == tuple(v) for k, v in reference.items())
        self.record.clearing_matches &= matches
        if not matches:
            log.error("session %s: chain clearing differs from market.auction.huang", plan.name)
        self.record.cleared[plan.name] = cleared
        self.record.limits[plan.name] = {
            n: tuple((s.qty_wh, s.price_ueur_per_kwh) for s in vec.slots)
            for n, vec, _ in book.canonical()}
        buy = [s.buy_price_ueur_per_kwh for s in clearing.slots]
        sell = [s.sell_price_ueur_per_kwh for s in clearing.slots]
        for name, row in cleared.items():
            auct.send_body(name, INFORM, "market.result", session=plan.name,
                           cleared_wh=list(row), buy_price_ueur_per_kwh=buy,
                           sell_price_ueur_per_kwh=sell)
        self.record.sessions.append({
            "session": plan.name, "kind": plan.kind, "chain_id": sid, "slots": list(plan.slots),
            "participants": len(book.reveals),
            "traded_kwh": sum(s.volume_wh for s in clearing.slots) / 1000,
            "buy_price_ueur_per_kwh": buy, "sell_price_ueur_per_kwh": sell,
            "volume_wh": [s.volume_wh for s in clearing.slots], "matches_reference": matches})
        self.progress(phase, 3, 3)
        return sid

    async def _deliver(self, dso: VdgAgent, slot: int) -> None:
        world, ops, brain = self.world, self.ops, self.dso_brain
        assert world is not None
        assert ops is not None
        assert brain is not None
        readings = await dso.gather(
            "meter.reading", str(slot), -1, world.ids,
            lambda n: dso.send_body(n, INFORM, "deliver", slot=slot),
            self.scenario.runtime.reply_timeout_s)
        values = {}
        for name in world.ids:
            if name in readings:
                values[name] = readings[name]["net_export_kwh"]
            else:  # no reading: nothing verified as delivered
                values[name] = 0.0
                self.record.missing_readings += 1
        clean = brain.attest(slot, values)
        for name, v in clean.items():
            self.record.metered_kwh.setdefault(name, [0.0] * SLOTS)[slot] = v
        ops.attest(slot, clean)
