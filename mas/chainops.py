"""The agents' seam to the ledger: participants, relayed commitments, attestations, money.

The VDG contract takes each participant's commitment and reveal from the participant's own
account. On the embedded chain the keys live with the ledger client in the operator's process,
so the auctioneer relays the sealed commitments and reveals it received over XMPP, signing with
the participant's key (a custodial wallet); the commitment itself is computed by the household,
which keeps its order vector sealed until the reveal phase.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ledger.admm import ContractAdmm
from ledger.chain import ChainConfig
from ledger.client import Web3Ledger
from ledger.orders import OrderVector
from ledger.results import SessionClearing

log = logging.getLogger(__name__)

SESSION_GATE_S = 600


@dataclass(frozen=True, slots=True)
class MoneyCheck:
    """Credit accounting after settlement (1e-9 EUR).

    Attributes:
        supply_nano: Credit in existence.
        held_nano: Credit held by the known accounts and the market contract.
        market_nano: Credit still held by the market contract (0 once all is withdrawn).
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
            order.
        credit_eur: Credit each participant starts with.
        url: JSON-RPC URL of a chain node, or ``None`` for the embedded chain.
        seed: seed of the ledger's keys.
    """

    def __init__(self, participants: Sequence[str], credit_eur: float, url: str | None = None,
                 seed: int = 0) -> None:
        self.ledger = Web3Ledger.deploy(ChainConfig(url=url, seed=seed))
        addrs = self.ledger.add_households(len(participants), credit_eur=credit_eur)
        self.address = dict(zip(participants, addrs, strict=True))
        self.start_nano = {p: self.ledger.credit_nano(a) for p, a in self.address.items()}

    def admm_aggregator(self) -> ContractAdmm:
        """The ADMM aggregator step on chain (a coordinator contract per :meth:`setup`)."""
        return ContractAdmm(self.ledger)

    def open_session(self, first_slot: int, n_slots: int, penalty_eur_per_kwh: float) -> int:
        """Open a session on chain; returns its id."""
        return self.ledger.open_session(first_slot, n_slots, commit_s=SESSION_GATE_S,
                                        reveal_s=SESSION_GATE_S,
                                        penalty_eur_per_kwh=penalty_eur_per_kwh)

    def relay_commit(self, sid: int, who: str, digest: bytes) -> None:
        """Send a participant's sealed commitment from its account."""
        led = self.ledger
        led.chain.transact(led.c["market"], "commit", [sid, digest],
                           led.chain.key(self.address[who]))

    def close_commits(self) -> None:
        """Move the chain clock past the commit gate."""
        self.ledger.advance_time(SESSION_GATE_S + 1)

    def relay_reveal(self, sid: int, who: str, orders: OrderVector, salt: bytes) -> None:
        """Send a participant's reveal from its account (escrows its maximum payment)."""
        self.ledger.reveal(sid, self.address[who], orders, salt)

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

    def withdraw_all(self) -> None:
        """Every account the market owes something withdraws it."""
        led = self.ledger
        for addr in [*self.address.values(), led.roles["treasury"].address]:
            if led.owed_nano(addr) > 0:
                led.withdraw(addr)

    def credit_delta_nano(self) -> dict[str, int]:
        """Credit gained (+) or spent (−) per participant since the start."""
        return {p: self.ledger.credit_nano(a) - self.start_nano[p]
                for p, a in self.address.items()}

    def money_check(self) -> MoneyCheck:
        """Where every unit of Credit is."""
        led = self.ledger
        accounts = [*self.address.values(), *(a.address for a in led.roles.values())]
        held = sum(led.credit_nano(a) for a in accounts)
        market = led.credit_nano(led.c["market"].address)
        return MoneyCheck(led.credit_supply_nano(), held + market, market)

    def energy_supply_wh(self) -> int:
        """Energy tokens minted for attested export, Wh."""
        return self.ledger.energy_supply_wh()

    def gas_used(self) -> int:
        """Gas of every transaction of the day."""
        return sum(g.gas_used for g in self.ledger.gas_log)
