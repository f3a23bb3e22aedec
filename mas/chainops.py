"""The agents' seam to the ledger: registration, relayed transactions, attestations, money.

Market participants (households and the aggregator) hold their own keys and sign their own
market transactions: ``Credit.approve`` of the market at join, ``VdgMarket.commit`` and
``reveal`` in each session, ``VdgMarket.withdraw`` at the end of the day. They cannot reach the
chain (the embedded chain lives in this process), so they send the raw signed bytes over XMPP
and the operator checks and relays them (:class:`ledger.relay.RawTxRelay`); the operator's
chain client holds no participant's key. The operator fixes chain, contract, nonce and gas of
each transaction (:meth:`ChainOps.terms`) because the participant cannot see the chain.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from ledger.admm import ContractAdmm
from ledger.chain import ChainConfig
from ledger.client import MAX_UINT, Web3Ledger
from ledger.errors import RawTxError
from ledger.orders import OrderVector
from ledger.relay import Expected, RawTxRelay
from ledger.results import SessionClearing
from mas.errors import ProtocolStateError

log = logging.getLogger(__name__)

SESSION_GATE_S = 600
RAW_GAS = {"approve": 100_000, "commit": 120_000, "reveal": 400_000, "withdraw": 120_000}
"""Gas limit the operator gives each participant transaction (about twice the measured use or
more: approve 46k, commit 54k, reveal 65k on average, withdraw 41k)."""
_CONTRACT = {"approve": ("Credit", "credit"), "commit": ("VdgMarket", "market"),
             "reveal": ("VdgMarket", "market"), "withdraw": ("VdgMarket", "market")}


@dataclass(frozen=True, slots=True)
class MoneyCheck:
    """Credit accounting after settlement (1e-9 EUR).

    Attributes:
        supply_nano: Credit in existence.
        held_nano: Credit held by the known accounts and the market contract.
        market_nano: Credit the market contract holds that it owes nobody (0 once settled).
    """

    supply_nano: int
    held_nano: int
    market_nano: int

    @property
    def conserved(self) -> bool:
        """Every unit is accounted for and the market holds nothing back."""
        return self.supply_nano == self.held_nano and self.market_nano == 0


class ChainOps:
    """The ledger operations of one simulated day.

    Args:
        participants: ids of the market participants (households and the aggregator), in rank
            order; each joins with its own address (:meth:`register`).
        credit_eur: Credit each participant starts with.
        url: JSON-RPC URL of a chain node, or ``None`` for the embedded chain.
        seed: seed of the operator's keys.
    """

    def __init__(self, participants: Sequence[str], credit_eur: float, url: str | None = None,
                 seed: int = 0) -> None:
        self.ledger = Web3Ledger.deploy(ChainConfig(url=url, seed=seed))
        self.participants = list(participants)
        self.credit_eur = credit_eur
        self.address: dict[str, str] = {}
        self.ready: set[str] = set()
        self.start_nano: dict[str, int] = {}
        self.relay = RawTxRelay(self.ledger.chain)
        self.max_fee_wei = 2 * self.ledger.chain.fee_cap_wei()  # base fees only fall here

    def join_terms(self) -> dict[str, Any]:
        """What a participant needs to sign for this chain: its id and the contracts."""
        return {"chain_id": self.ledger.chain.chain_id,
                "market": self.ledger.c["market"].address,
                "credit": self.ledger.c["credit"].address}

    def register(self, addresses: Mapping[str, str]) -> dict[str, ProtocolStateError]:
        """Register the participants' own addresses: role, meter, gas money and Credit.

        Returns:
            The participants refused, with why: unknown, joined already, or an address another
            participant (or the operator) uses. The others are registered.
        """
        taken = {a.lower() for a in self.address.values()}
        new: dict[str, str] = {}
        refused: dict[str, ProtocolStateError] = {}
        for who, address in addresses.items():
            a = to_checksum_address(address)
            if who not in self.participants or who in self.address:
                refused[who] = ProtocolStateError(f"participant {who!r}: unknown or joined "
                                                  "already")
            elif a.lower() in taken or self.ledger.chain.holds_key(a):
                refused[who] = ProtocolStateError(f"participant {who!r}: address {a} is taken")
            else:
                taken.add(a.lower())
                new[who] = a
        self.ledger.register_households(list(new.values()), credit_eur=self.credit_eur)
        self.address.update(new)
        self.start_nano.update({p: self.ledger.credit_nano(a) for p, a in new.items()})
        return refused

    def terms(self, who: str, fn: str) -> dict[str, int]:
        """Nonce, gas limit and fee cap of ``who``'s next transaction (``fn`` in RAW_GAS)."""
        return {"nonce": self.relay.next_nonce(self.address[who]), "gas": RAW_GAS[fn],
                "max_fee_wei": self.max_fee_wei}

    def _relay(self, who: str, fn: str, raw: bytes, args: Mapping[str, Any],
               session: int = -1) -> None:
        contract, key = _CONTRACT[fn]
        if who not in self.address:
            raise RawTxError("sender", who, "not a registered participant")
        self.relay.relay(raw, Expected(self.address[who], contract, self.ledger.c[key].address,
                                       fn, args, RAW_GAS[fn], self.max_fee_wei, session))

    def relay_approval(self, who: str, raw: bytes) -> None:
        """Send ``who``'s signed approval of the market's use of its Credit; it may then trade.

        Raises:
            RawTxError: the transaction is not exactly that (nothing sent).
        """
        self._relay(who, "approve", raw, {"spender": self.ledger.c["market"].address,
                                          "amount": MAX_UINT})
        self.ready.add(who)

    def admm_aggregator(self) -> ContractAdmm:
        """The ADMM aggregator step on chain (a coordinator contract per :meth:`setup`)."""
        return ContractAdmm(self.ledger)

    def open_session(self, first_slot: int, n_slots: int, penalty_eur_per_kwh: float) -> int:
        """Open a session on chain; returns its id."""
        return self.ledger.open_session(first_slot, n_slots, commit_s=SESSION_GATE_S,
                                        reveal_s=SESSION_GATE_S,
                                        penalty_eur_per_kwh=penalty_eur_per_kwh)

    def relay_commit(self, sid: int, who: str, digest: bytes, raw: bytes) -> None:
        """Send a participant's signed commitment of ``digest`` in session ``sid``.

        Raises:
            RawTxError: the transaction is not that commitment from ``who`` (nothing sent).
        """
        self._relay(who, "commit", raw, {"sid": sid, "h": digest}, sid)

    def close_commits(self) -> None:
        """Move the chain clock past the commit gate."""
        self.ledger.advance_time(SESSION_GATE_S + 1)

    def relay_reveal(self, sid: int, who: str, orders: OrderVector, salt: bytes,
                     raw: bytes) -> None:
        """Send a participant's signed reveal (escrows its maximum payment).

        Raises:
            RawTxError: the transaction is not that reveal from ``who`` (nothing sent).
        """
        self._relay(who, "reveal", raw, {"sid": sid, "orders": orders.encode(), "salt": salt},
                    sid)

    def clear(self, sid: int) -> SessionClearing:
        """Move past the reveal gate and clear the session on chain."""
        self.ledger.advance_time(SESSION_GATE_S + 1)
        return self.ledger.clear(sid)

    def cleared_by_participant(self, clearing: SessionClearing) -> dict[str, tuple[int, ...]]:
        """The chain's result keyed by participant id."""
        who = {a.lower(): p for p, a in self.address.items()}
        return {who[h.lower()]: row for h, row in zip(clearing.households, clearing.cleared_wh,
                                                       strict=True)}

    def attest(self, slot: int, export_kwh: Mapping[str, float]) -> None:
        """The DSO attests metered net export of households in a slot."""
        self.ledger.attest(slot, {self.address[h]: e for h, e in export_kwh.items()})

    def settle(self, sid: int) -> None:
        """The DSO settles a cleared session."""
        self.ledger.settle(sid)

    def owed(self) -> list[str]:
        """Participants the market owes Credit after settlement (they sign a withdrawal)."""
        return [p for p, a in self.address.items() if self.ledger.owed_nano(a) > 0]

    def relay_withdrawal(self, who: str, raw: bytes) -> None:
        """Send a participant's signed withdrawal of what the market owes it.

        Raises:
            RawTxError: the transaction is not that withdrawal (nothing sent).
        """
        self._relay(who, "withdraw", raw, {})

    def withdraw_treasury(self) -> None:
        """The treasury (an operator account) withdraws what the market owes it."""
        led = self.ledger
        if led.owed_nano(led.roles["treasury"].address) > 0:
            led.withdraw(led.roles["treasury"].address)

    def credit_delta_nano(self) -> dict[str, int]:
        """Credit gained (+) or spent (−) per participant since it joined (0: never joined).

        What the market still owes a participant that did not sign its withdrawal counts as
        its Credit.
        """
        led = self.ledger
        return {p: (led.credit_nano(a) + led.owed_nano(a) - self.start_nano[p]
                    if (a := self.address.get(p)) else 0) for p in self.participants}

    def money_check(self) -> MoneyCheck:
        """Where every unit of Credit is (what the market owes somebody is theirs)."""
        led = self.ledger
        accounts = [*self.address.values(), *(a.address for a in led.roles.values())]
        held = sum(led.credit_nano(a) for a in accounts)
        market = led.credit_nano(led.c["market"].address)
        owed = sum(led.owed_nano(a) for a in accounts)
        return MoneyCheck(led.credit_supply_nano(), held + market, market - owed)

    def energy_supply_wh(self) -> int:
        """Energy tokens minted for attested export, Wh."""
        return self.ledger.energy_supply_wh()

    def gas_used(self) -> int:
        """Gas of every transaction of the day."""
        return sum(g.gas_used for g in self.ledger.gas_log)
