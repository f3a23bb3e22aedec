"""SPADE agents around the brains: one inbox behaviour, validated bodies, FIPA performatives.

Every agent sends over its XMPP stream — never through SPADE's in-process container shortcut —
so all inter-agent traffic crosses the server even when two agents share a process. The inbox
validates each body (:func:`mas.messages.parse`); a malformed one is answered ``not-understood``
naming the error, a well-formed one that does not fit the protocol's state ``failure``, and the
agent keeps running with its state untouched. Requests are handled once per
``(kind, session, round, sender)``; a repeated request gets the stored answer again, so an
initiator may resend after a lost message. Initiators wait for replies with a deadline
(:meth:`VdgAgent.gather`), resending to the silent ones.

Market participants (:class:`SigningAgent`: households and the aggregator) hold their own key
in a :class:`ledger.wallet.Wallet` and answer the operator's requests with transactions they
signed themselves (``raw_tx``); the key never leaves the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import numpy as np
from spade.agent import Agent
from spade.behaviour import CyclicBehaviour
from spade.message import Message

from ledger.client import MAX_UINT
from ledger.orders import OrderVector, commitment
from ledger.wallet import TxTerms, Wallet, simulation_key
from mas.brains.aggregator import AggregatorBrain
from mas.brains.auctioneer import SessionPlan, vector_from_intent
from mas.brains.coordination import RoundRequest, answer_round
from mas.brains.household import HouseholdBrain, OrderIntent
from mas.errors import MasError, MessageError, ProtocolStateError
from mas.messages import Body, dump, parse

log = logging.getLogger(__name__)

CFP, PROPOSE, ACCEPT, INFORM = "cfp", "propose", "accept-proposal", "inform"
FAILURE, NOT_UNDERSTOOD = "failure", "not-understood"
AGGREGATOR = "agg"
"""The aggregator agent's name."""
REPLY_KINDS = {"plan.answer", "flex.offer", "market.sealed", "market.orders", "meter.reading",
               "account.address", "account.approval", "account.withdrawal"}

Handler = Callable[[str, Body], Awaitable[tuple[str, str, dict[str, Any]] | None]]


class _Inbox(CyclicBehaviour):
    async def run(self) -> None:
        msg = await self.receive(timeout=1)
        if msg is not None:
            await self.agent.handle(msg)


class VdgAgent(Agent):
    """Base of the vdg agents.

    Args:
        name: local part of the JID (``h000``, ``dso``, ...).
        domain: XMPP domain.
        port: the server's client port.
        password: account password (accounts are registered in band).
    """

    def __init__(self, name: str, domain: str, port: int, password: str) -> None:
        super().__init__(f"{name}@{domain}", password, port=port, verify_security=False)
        self.name_ = name
        self.domain = domain
        self.handlers: dict[str, Handler] = {}
        self.answered: dict[tuple[str, str, int, str], tuple[str, str, dict[str, Any]] | None] = {}
        self.replies: dict[tuple[str, str, int], dict[str, Body]] = {}
        self.failures: list[tuple[str, str]] = []
        self.rejected = 0
        self.sent = 0
        self._changed: asyncio.Event | None = None
        self._stopping = False
        self.absent: set[str] = set()

    async def setup(self) -> None:
        """Add the inbox and reconnect when the stream drops."""
        self._changed = asyncio.Event()
        self.add_behaviour(_Inbox())
        self.client.add_event_handler("disconnected", self._reconnect)

    async def stop(self) -> None:
        """Leave the server for good (no reconnection)."""
        self._stopping = True
        await super().stop()

    async def _reconnect(self, _event: object) -> None:
        if self._stopping or not self.is_alive():
            return
        log.warning("%s: disconnected from the XMPP server; reconnecting", self.name_)
        await asyncio.sleep(0.5)
        self.client.connect(host=self.jid.host, port=self.xmpp_port)

    def jid_of(self, name: str) -> str:
        """Bare JID of another agent by name."""
        return f"{name}@{self.domain}"

    def send_body(self, to: str, performative: str, kind: str, **fields: Any) -> None:
        """Send a validated body to agent ``to`` over XMPP."""
        msg = Message(to=self.jid_of(to), body=dump(kind, **fields))
        msg.sender = str(self.jid)
        msg.set_metadata("performative", performative)
        msg.set_metadata("protocol", kind.split(".", maxsplit=1)[0])
        msg.prepare(self.client).send()
        self.sent += 1

    def send_raw(self, to: str, performative: str, body: str) -> None:
        """Send an arbitrary body (tests: malformed input)."""
        msg = Message(to=self.jid_of(to), body=body)
        msg.set_metadata("performative", performative)
        msg.prepare(self.client).send()
        self.sent += 1

    async def handle(self, msg: Message) -> None:
        """Validate, deduplicate, dispatch and answer one message."""
        sender = str(msg.sender).split("@", 1)[0]
        performative = msg.get_metadata("performative") or ""
        try:
            body = parse(msg.body)
        except MessageError as exc:
            self.rejected += 1
            if performative not in (NOT_UNDERSTOOD, FAILURE):
                self.send_body(sender, NOT_UNDERSTOOD, "error", error=str(exc)[:2000])
            log.debug("%s: not understood from %s: %s", self.name_, sender, exc)
            return
        kind, session, round_ = body.key
        if performative in (NOT_UNDERSTOOD, FAILURE):
            self.failures.append((sender, str(body.fields.get("error", ""))))
            log.warning("%s: %s from %s: %s", self.name_, performative, sender,
                        body.fields.get("error"))
            self._notify()
            return
        if kind in REPLY_KINDS:  # a reply to one of our requests
            self.absent.discard(sender)  # it is back
            self.replies.setdefault((kind, session, round_), {}).setdefault(sender, body)
            self._notify()
            return
        key = (kind, session, round_, sender)
        if key in self.answered:  # idempotent: same request, same answer
            answer = self.answered[key]
        else:
            handler = self.handlers.get(kind)
            if handler is None:
                self.rejected += 1
                self.send_body(sender, NOT_UNDERSTOOD, "error",
                               error=f"{self.name_} does not handle {kind!r}")
                return
            try:
                answer = await handler(sender, body)
            except MasError as exc:
                self.rejected += 1
                self.send_body(sender, FAILURE, "error", error=str(exc)[:2000])
                return
            self.answered[key] = answer
        if answer is not None:
            perf, reply_kind, fields = answer
            self.send_body(sender, perf, reply_kind, **fields)

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def gather(self, kind: str, session: str, round_: int, to: Iterable[str],
                     send: Callable[[str], None], timeout_s: float, attempts: int = 2
                     ) -> dict[str, Body]:
        """Send a request to each of ``to`` and wait for their ``kind`` replies.

        Returns when every recipient answered or at the deadline; silent recipients get the
        request again once per further attempt (handling is idempotent, so a resent request
        gets the same answer). A recipient that stays silent past a deadline is marked absent:
        later requests still go to it, but nobody waits for it until it answers again.
        """
        everyone = list(to)
        want = [n for n in everyone if n not in self.absent]
        key = (kind, session, round_)
        for name in everyone:
            send(name)
        loop = asyncio.get_running_loop()
        for attempt in range(attempts):
            end = loop.time() + timeout_s / attempts
            while True:
                got = self.replies.get(key, {})
                missing = [n for n in want if n not in got]
                if not missing:
                    break
                left = end - loop.time()
                if left <= 0:
                    break
                assert self._changed is not None
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout=min(left, 0.5))
            if not missing:
                break
            if attempt + 1 < attempts:
                log.info("%s: %d silent on %s %s; asking again", self.name_, len(missing), kind,
                         session)
                got = self.replies.get(key, {})
                for name in everyone:  # the absent too: they may be back
                    if name not in got:
                        send(name)
        got = self.replies.get(key, {})
        self.absent.update(n for n in want if n not in got)
        self.absent.difference_update(got)
        if self.absent:
            log.warning("%s: absent after %s %s: %s", self.name_, kind, session,
                        sorted(self.absent))
        return {n: got[n] for n in everyone if n in got}


class SigningAgent(VdgAgent):
    """A market participant that signs its own transactions; the operator only relays them.

    Args:
        name: local part of the JID.
        domain, port, password: as for :class:`VdgAgent`.
        wallet: the participant's key.
    """

    def __init__(self, name: str, domain: str, port: int, password: str, wallet: Wallet) -> None:
        super().__init__(name, domain, port, password)
        self.wallet = wallet
        self.chain: dict[str, Any] | None = None

    def account_handlers(self) -> dict[str, Handler]:
        """Handlers of the join and withdrawal requests."""
        return {"account.join": self.on_join, "account.approve": self.on_approve,
                "account.withdraw": self.on_withdraw}

    async def on_join(self, _sender: str, body: Body) -> tuple[str, str, dict[str, Any]]:
        """Learn the chain and the contracts; tell the operator the account's address."""
        self.chain = dict(body.fields)
        return PROPOSE, "account.address", {"address": self.wallet.address}

    def sign(self, body: Body, fn: str, args: list[Any], session: int = -1) -> bytes:
        """Sign ``fn(*args)`` under the nonce and gas of the operator's request ``body``."""
        if self.chain is None:
            raise ProtocolStateError(f"{self.name_}: asked to sign {fn} before account.join")
        contract, to = ("Credit", "credit") if fn == "approve" else ("VdgMarket", "market")
        terms = TxTerms(self.chain["chain_id"], self.chain[to], body["nonce"], body["gas"],
                        body["max_fee_wei"])
        return self.wallet.sign(terms, contract, fn, args, session)

    async def on_approve(self, _sender: str, body: Body) -> tuple[str, str, dict[str, Any]]:
        """Let the market take escrow from the account's Credit."""
        market = self.chain["market"] if self.chain else ""  # sign() refuses before the join
        raw = self.sign(body, "approve", [market, MAX_UINT])
        return PROPOSE, "account.approval", {"raw_tx": raw}

    async def on_withdraw(self, _sender: str, body: Body) -> tuple[str, str, dict[str, Any]]:
        """Pull what settlement credited to the account."""
        return PROPOSE, "account.withdrawal", {"raw_tx": self.sign(body, "withdraw", [])}

    def seal(self, body: Body, vec: OrderVector, salt: bytes) -> tuple[bytes, bytes]:
        """Commitment of ``vec`` in the request's session and the signed commit transaction."""
        if body["address"].lower() != self.wallet.address.lower():
            raise ProtocolStateError(f"field 'address': {body['address']} is not this "
                                     f"participant's account {self.wallet.address}")
        sid = body["chain_session"]
        digest = commitment(sid, self.wallet.address, vec.encode(), salt)
        return digest, self.sign(body, "commit", [sid, digest], sid)

    def orders_body(self, body: Body, sid: int, vec: OrderVector,
                    salt: bytes) -> tuple[str, str, dict[str, Any]]:
        """The reveal answer: the orders, the salt and the signed reveal transaction."""
        raw = self.sign(body, "reveal", [sid, vec.encode(), salt], sid)
        return PROPOSE, "market.orders", {
            "session": body["session"], "qty_wh": [s.qty_wh for s in vec.slots],
            "price_ueur_per_kwh": [s.price_ueur_per_kwh for s in vec.slots], "salt": salt,
            "raw_tx": raw}


class HouseholdAgent(SigningAgent):
    """A household's trading agent around its :class:`HouseholdBrain`.

    Args:
        brain: the household's decisions.
        domain, port, password: as for :class:`VdgAgent`.
        wallet: the household's key (default: derived from the seed — simulation only).
    """

    def __init__(self, brain: HouseholdBrain, domain: str, port: int, password: str,
                 wallet: Wallet | None = None) -> None:
        super().__init__(brain.spec.id, domain, port, password,
                         wallet or Wallet(simulation_key(brain.salt_seed, brain.spec.id)))
        self.brain = brain
        self.sealed: dict[str, tuple[OrderIntent, bytes, int]] = {}
        self.done = asyncio.Event()
        self.handlers = {
            **self.account_handlers(),
            "plan.round": self.on_plan_round,
            "plan.final": self.on_ack,
            "flex.call": self.on_flex_call,
            "flex.award": self.on_flex_award,
            "market.commit": self.on_commit,
            "market.reveal": self.on_reveal,
            "market.result": self.on_result,
            "deliver": self.on_deliver,
            "day.end": self.on_day_end,
        }

    async def on_ack(self, _sender: str, _body: Body) -> None:
        """Informs and acceptances that need no answer."""
        return

    async def on_result(self, _sender: str, body: Body) -> None:
        """Take up what cleared (an intraday trade moves the position later sessions trade)."""
        self.brain.session_result(body["session"], body["cleared_wh"])

    async def on_plan_round(self, _sender: str, body: Body) -> tuple[str, str, dict[str, Any]]:
        """The household's ADMM step: re-plan against the round's price and target."""
        x = answer_round(self.brain, RoundRequest(body["round"], body["lam_eur_per_kwh"],
                                                  body["target_import_kw"],
                                                  body["rho_eur_per_kw2"]))
        return PROPOSE, "plan.answer", {"round": body["round"], "net_import_kw": x}

    async def on_flex_call(self, _sender: str, body: Body) -> tuple[str, str, dict[str, Any]]:
        """Offer battery headroom (or nothing: p_kw 0)."""
        offer = self.brain.flex_offer(body["slot"], body["direction"])
        p, price = (offer.p_kw, offer.price_eur_per_kwh) if offer else (0.0, 0.0)
        return PROPOSE, "flex.offer", {"session": body["session"], "p_kw": p,
                                        "price_eur_per_kwh": price}

    async def on_flex_award(self, _sender: str, body: Body) -> None:
        """Commit to an accepted offer."""
        self.brain.accept_flex(body["slot"], body["direction"], body["p_kw"])

    async def on_commit(self, _sender: str, body: Body) -> tuple[str, str, dict[str, Any]]:
        """Seal the session's orders: send only their commitment, in a signed transaction."""
        slots = list(body["slots"])
        name = body["session"]
        intent = self.brain.session_orders(SessionPlan.from_name(name, slots))
        if intent.empty:
            return PROPOSE, "market.sealed", {"session": name, "commitment": None, "raw_tx": None}
        vec = vector_from_intent(intent.qty_kwh, intent.price_eur_per_kwh)
        salt = self.brain.salt(body["chain_session"])
        digest, raw = self.seal(body, vec, salt)
        self.sealed[name] = (intent, salt, body["chain_session"])
        return PROPOSE, "market.sealed", {"session": name, "commitment": digest, "raw_tx": raw}

    async def on_reveal(self, _sender: str, body: Body) -> tuple[str, str, dict[str, Any]]:
        """Open the sealed orders (and sign the reveal)."""
        name = body["session"]
        if name not in self.sealed:
            raise MessageError(f"field 'session': nothing sealed for session {name!r}")
        intent, salt, sid = self.sealed[name]
        vec = vector_from_intent(intent.qty_kwh, intent.price_eur_per_kwh)
        return self.orders_body(body, sid, vec, salt)

    async def on_deliver(self, _sender: str, body: Body) -> tuple[str, str, dict[str, Any]]:
        """Run a slot for real and report the meter."""
        d = self.brain.deliver(body["slot"])
        return INFORM, "meter.reading", {"slot": body["slot"],
                                         "net_export_kwh": float(np.round(d.net_export_kw, 6))}

    async def on_day_end(self, _sender: str, _body: Body) -> None:
        """The day is over."""
        self.done.set()


class AggregatorAgent(SigningAgent):
    """The aggregator's agent: bids its fleet plan into the day-ahead session.

    Args:
        brain: the aggregator's decisions.
        salt_seed: seed of its commit salts (and of its simulation key when ``wallet`` is not
            given).
        domain, port, password: as for :class:`VdgAgent`.
        wallet: the aggregator's key.
    """

    def __init__(self, brain: AggregatorBrain, salt_seed: int, domain: str, port: int,
                 password: str, wallet: Wallet | None = None) -> None:
        super().__init__(AGGREGATOR, domain, port, password,
                         wallet or Wallet(simulation_key(salt_seed, AGGREGATOR)))
        self.brain = brain
        self.salt_seed = salt_seed
        self.sealed: dict[str, tuple[OrderVector, bytes, int]] = {}
        self.done = asyncio.Event()
        self.handlers = {**self.account_handlers(), "fleet.forecast": self.on_forecast,
                         "market.commit": self.on_commit, "market.reveal": self.on_reveal,
                         "market.result": self.on_result, "day.end": self.on_day_end}

    async def on_forecast(self, _s: str, body: Body) -> None:
        """Plan the fleet from the neighbourhood's expected position."""
        self.brain.make_plan(body["net_export_kw"])

    async def on_result(self, _s: str, _b: Body) -> None:
        """Nothing to answer."""
        return

    async def on_day_end(self, _s: str, _b: Body) -> None:
        """The day is over."""
        self.done.set()

    async def on_commit(self, _s: str, body: Body) -> tuple[str, str, dict[str, Any]]:
        """Seal the day-ahead bids (abstain from real-time sessions)."""
        name = body["session"]
        intent = self.brain.day_ahead_orders(list(body["slots"]))
        if name != "da" or intent.empty:
            return PROPOSE, "market.sealed", {"session": name, "commitment": None, "raw_tx": None}
        vec = vector_from_intent(intent.qty_kwh, intent.price_eur_per_kwh)
        salt = hashlib.sha256(f"vdg-salt:{self.salt_seed}:agg:{body['chain_session']}"
                              .encode()).digest()
        digest, raw = self.seal(body, vec, salt)
        self.sealed[name] = (vec, salt, body["chain_session"])
        return PROPOSE, "market.sealed", {"session": name, "commitment": digest, "raw_tx": raw}

    async def on_reveal(self, _s: str, body: Body) -> tuple[str, str, dict[str, Any]]:
        """Open the sealed bids (and sign the reveal)."""
        if body["session"] not in self.sealed:
            raise MessageError(f"field 'session': nothing sealed for session "
                               f"{body['session']!r}")
        vec, salt, sid = self.sealed[body["session"]]
        return self.orders_body(body, sid, vec, salt)
