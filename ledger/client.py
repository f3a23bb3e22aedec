"""The web3 implementation of the ledger client: deploy, roles, money, market, proof of flow.

Coordination contracts (ADMM, fleet, billing) are reached through the same object; see
:mod:`ledger.coordination` and :mod:`ledger.admm` for their helpers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import Hash32
from eth_utils import keccak, to_canonical_address, to_checksum_address
from web3.contract import Contract
from web3.logs import DISCARD

from ledger.chain import DEFAULT_GAS_LIMIT, Chain, ChainConfig, GasRecord
from ledger.errors import ContractRevert, ProtocolError
from ledger.fixedpoint import (
    eur_to_nano,
    kwh_to_wh,
    penalty_to_nano_per_wh,
    price_to_micro,
    soc_to_fixed,
)
from ledger.orders import OrderVector, commitment, sort_book
from ledger.results import Bill, Deployment, FleetStep, SessionClearing, SignedReading, SlotClearing

logger = logging.getLogger(__name__)

ADMIN, DSO, AUCTIONEER, AGGREGATOR, HOUSEHOLD = 1, 2, 4, 8, 16
MAX_UINT = 2**256 - 1


def _label(contract: Contract) -> str:
    return str(getattr(contract, "_vdg_name", "Contract"))


class Web3Ledger:
    """The ledger on a real EVM (embedded py-evm or any JSON-RPC node).

    Create with :meth:`deploy`. Every account the ledger acts for is a local key held by
    ``chain``; methods take addresses and sign with the matching key. Households that keep
    their own keys are registered with :meth:`register_households` and sign for themselves
    (their transactions reach the chain through :class:`ledger.relay.RawTxRelay`).
    """

    def __init__(
        self, chain: Chain, contracts: Mapping[str, Contract], roles: Mapping[str, LocalAccount]
    ) -> None:
        self.chain = chain
        self.c = dict(contracts)
        self.roles = dict(roles)
        self._meters: dict[str, LocalAccount] = {}
        self._sealed: dict[tuple[int, str], tuple[OrderVector, bytes]] = {}
        self._clearings: dict[int, SessionClearing] = {}
        self._session_block: dict[int, int] = {}
        self._block_gas_limit = 0

    # ------------------------------------------------------------------------ deployment

    @classmethod
    def deploy(cls, config: ChainConfig | None = None, *, chain: Chain | None = None) -> Web3Ledger:
        """Deploy every contract with fresh role holders and return the client."""
        chain = chain or Chain(config or ChainConfig())
        names = ("admin", "dso", "auctioneer", "aggregator", "treasury")
        roles = {name: chain.new_account(fund=False) for name in names}
        chain.fund([a.address for a in roles.values()])
        admin = roles["admin"]
        reg = chain.deploy("Registry", admin)
        credit = chain.deploy("Credit", admin, reg.address)
        energy = chain.deploy("EnergyToken", admin, reg.address)
        market = chain.deploy(
            "VdgMarket",
            admin,
            reg.address,
            credit.address,
            energy.address,
            roles["treasury"].address,
        )
        admm = chain.deploy("AdmmCoordinator", admin, reg.address)
        fleet = chain.deploy("FleetCoordinator", admin, reg.address)
        billing = chain.deploy(
            "Billing", admin, reg.address, credit.address, roles["treasury"].address
        )
        led = cls(
            chain,
            {
                "registry": reg,
                "credit": credit,
                "energy": energy,
                "market": market,
                "admm": admm,
                "fleet": fleet,
                "billing": billing,
            },
            roles,
        )
        chain.send_batch(
            [
                led._item("registry", "grant", [roles["dso"].address, DSO], admin),
                led._item("registry", "grant", [roles["auctioneer"].address, AUCTIONEER], admin),
                led._item("registry", "grant", [roles["aggregator"].address, AGGREGATOR], admin),
                # the treasury pays exported energy in billing
                led._item("credit", "approve", [billing.address, MAX_UINT], roles["treasury"]),
            ]
        )
        logger.info("ledger deployed: market %s", market.address)
        return led

    @property
    def deployment(self) -> Deployment:
        """Addresses of the contracts and role holders."""
        return Deployment(
            **{k: v.address for k, v in self.c.items()},
            **{k: v.address for k, v in self.roles.items()},
        )

    @property
    def gas_log(self) -> list[GasRecord]:
        """Gas of every transaction sent so far."""
        return self.chain.gas_log

    def _tx(
        self,
        contract: str,
        fn: str,
        args: Sequence[Any],
        sender: str | LocalAccount,
        gas: int = DEFAULT_GAS_LIMIT,
    ) -> Any:
        acct = sender if isinstance(sender, LocalAccount) else self.chain.key(sender)
        return self.chain.transact(self.c[contract], fn, args, acct, gas)

    def _book_tx(
        self, fn: str, args: Sequence[Any], sender: str | LocalAccount, what: str
    ) -> Any:
        """A market transaction over a whole session's book, with the node's block gas limit.

        Its gas grows with the book: it gets a block of its own, and a book too large for one
        block is reported as such.

        Raises:
            ProtocolError: the transaction ran out of the block gas limit.
        """
        if self._block_gas_limit == 0:
            self._block_gas_limit = int(self.chain.w3.eth.get_block("latest")["gasLimit"])
        gas = self._block_gas_limit
        try:
            return self._tx("market", fn, args, sender, gas)
        except Exception as exc:
            named = isinstance(exc, ContractRevert) and exc.error
            if named or "gas" not in str(exc).lower():
                raise
            raise ProtocolError(
                f"VdgMarket.{fn} over {what} did not complete within the node's block gas "
                f"limit of {gas:,} ({exc})"
            ) from exc

    def _item(
        self,
        contract: str,
        fn: str,
        args: Sequence[Any],
        acct: LocalAccount,
        gas: int = DEFAULT_GAS_LIMIT,
    ) -> tuple[LocalAccount, dict[str, Any], str]:
        c = self.c[contract]
        tx = {"to": c.address, "data": c.encode_abi(fn, args=list(args)), "gas": gas}
        return acct, tx, f"{_label(c)}.{fn}"

    def _events(self, contract: str, event: str, receipt: Any) -> list[Any]:
        return list(self.c[contract].events[event]().process_receipt(receipt, errors=DISCARD))

    def events(
        self, contract: str, event: str, *, from_block: int = 0, **filters: Any
    ) -> list[dict[str, Any]]:
        """Decoded logs of one event, oldest first: ``events("market", "SlotCleared", session=3)``.

        Args:
            contract: ``registry``, ``credit``, ``energy``, ``market``, ``admm``, ``fleet``,
                ``billing``.
            event: the event name.
            from_block: first block to search.
            filters: values of indexed arguments.
        """
        logs = (
            self.c[contract]
            .events[event]()
            .get_logs(from_block=from_block, argument_filters=filters or None)
        )
        logs = sorted(logs, key=lambda e: (e["blockNumber"], e["logIndex"]))
        return [
            {
                **dict(e["args"]),
                "blockNumber": e["blockNumber"],
                "transactionHash": e["transactionHash"].hex(),
            }
            for e in logs
        ]

    # ------------------------------------------------------------------------ roles

    def grant(self, account: str, role: int, *, sender: str | None = None) -> None:
        """Admin grants role bits to an account."""
        self._tx("registry", "grant", [account, role], sender or self.roles["admin"])

    def roles_of(self, account: str) -> int:
        """Role bits of an account."""
        return int(self.chain.call(self.c["registry"], "rolesOf", [account]))

    def new_account(self) -> str:
        """A fresh funded local account with no role."""
        return str(self.chain.new_account().address)

    def add_households(self, n: int, *, credit_eur: float = 0.0) -> list[str]:
        """Create ``n`` households: role, meter key, approvals of market and billing, credit."""
        accts = [self.chain.new_account(fund=False) for _ in range(n)]
        addrs = [str(a.address) for a in accts]
        items = self._registration(addrs, credit_eur)
        for a in accts:
            items.append(self._item("credit", "approve", [self.c["market"].address, MAX_UINT], a))
            items.append(self._item("credit", "approve", [self.c["billing"].address, MAX_UINT], a))
        self.chain.send_batch(items)
        return addrs

    def register_households(self, addresses: Sequence[str], *, credit_eur: float = 0.0) -> None:
        """Register accounts whose keys stay with their households: role, meter, gas, credit.

        The household approves the market's (and billing's) use of its Credit itself, with a
        transaction it signs (``Credit.approve``), before its first reveal.
        """
        addrs = [to_checksum_address(a) for a in addresses]
        self.chain.send_batch(self._registration(addrs, credit_eur))

    def _registration(
        self, addrs: Sequence[str], credit_eur: float
    ) -> list[tuple[LocalAccount, dict[str, Any], str]]:
        """Fund and grant the role now; return the meter and credit items still to send."""
        self.chain.fund(addrs)
        # ≈ 25k gas per account: chunks of 200 keep each transaction near 5M gas
        grants = [
            self._item(
                "registry", "grantMany", [addrs[i : i + 200], HOUSEHOLD], self.roles["admin"]
            )
            for i in range(0, len(addrs), 200)
        ]
        self.chain.send_batch(grants)  # mined before the meters, which need the role
        items = []
        nano = eur_to_nano("credit_eur", credit_eur) if credit_eur > 0 else 0
        for a in addrs:
            meter = self.chain.new_account(fund=False)
            self._meters[a] = meter
            items.append(
                self._item("registry", "registerMeter", [a, meter.address], self.roles["dso"])
            )
            if nano:
                items.append(self._item("credit", "mint", [a, nano], self.roles["admin"]))
        return items

    def meter_of(self, household: str) -> str:
        """The meter key address registered for a household."""
        return str(self.chain.call(self.c["registry"], "meterOf", [household]))

    # ------------------------------------------------------------------------ money and energy

    def mint_credit(self, to: str, amount_eur: float, *, sender: str | None = None) -> None:
        """The treasury admin mints Credit (fixed point 1e-9 EUR)."""
        self._tx(
            "credit",
            "mint",
            [to, eur_to_nano("amount_eur", amount_eur)],
            sender or self.roles["admin"],
        )

    def credit_nano(self, account: str) -> int:
        """Credit balance in 1e-9 EUR."""
        return int(self.chain.call(self.c["credit"], "balanceOf", [account]))

    def credit_supply_nano(self) -> int:
        """Total Credit supply in 1e-9 EUR."""
        return int(self.chain.call(self.c["credit"], "totalSupply"))

    def energy_wh(self, account: str) -> int:
        """Energy-token balance, Wh."""
        return int(self.chain.call(self.c["energy"], "balanceOf", [account]))

    def energy_supply_wh(self) -> int:
        """Energy tokens minted in total, Wh."""
        return int(self.chain.call(self.c["energy"], "totalSupply"))

    def attest(
        self, slot: int, net_export_kwh: Mapping[str, float], *, sender: str | None = None
    ) -> None:
        """DSO attests households' metered net export in a slot (mints certificates for export).

        Args:
            slot: global delivery slot number.
            net_export_kwh: per household, net export in kWh (import negative).
            sender: the attesting account (default the DSO).
        """
        meters = [self._meters[to_checksum_address(h)].address for h in net_export_kwh]
        values = [kwh_to_wh(f"net_export_kwh[{h}]", e) for h, e in net_export_kwh.items()]
        self._tx("energy", "attest", [slot, meters, values], sender or self.roles["dso"])

    def attest_raw(
        self, slot: int, meters: Sequence[str], net_wh: Sequence[int], sender: str
    ) -> None:
        """Attestation with raw meter addresses and Wh (for tests of the contract's own checks)."""
        self._tx("energy", "attest", [slot, list(meters), list(net_wh)], sender)

    def attestation(self, household: str, slot: int) -> tuple[bool, int]:
        """(attested, net export Wh) of a household's meter in a slot."""
        ok, net = self.chain.call(self.c["energy"], "attestation", [self.meter_of(household), slot])
        return bool(ok), int(net)

    # ------------------------------------------------------------------------ market

    def open_session(
        self,
        start_slot: int,
        n_slots: int,
        *,
        commit_s: int = 600,
        reveal_s: int = 600,
        penalty_eur_per_kwh: float = 0.0,
    ) -> int:
        """Auctioneer opens a session with gate times relative to now; returns its id."""
        now = self.chain.now()
        receipt = self._tx(
            "market",
            "openSession",
            [
                start_slot,
                n_slots,
                now + commit_s,
                now + commit_s + reveal_s,
                penalty_to_nano_per_wh("penalty_eur_per_kwh", penalty_eur_per_kwh),
            ],
            self.roles["auctioneer"],
        )
        sid = int(self._events("market", "SessionOpened", receipt)[0]["args"]["session"])
        self._session_block[sid] = int(receipt["blockNumber"])
        return sid

    def session(self, sid: int) -> dict[str, Any]:
        """The session's on-chain header as a dict."""
        keys = (
            "startSlot", "nSlots", "commitEnd", "revealEnd", "state",
            "penaltyNanoPerWh", "revealAcc", "resultHash",
        )  # fmt: skip
        return dict(zip(keys, self.chain.call(self.c["market"], "sessions", [sid]), strict=True))

    def commit(
        self, sid: int, household: str, orders: OrderVector, salt: bytes | None = None
    ) -> bytes:
        """Seal a household's order vector; keeps vector and salt for :meth:`reveal`."""
        h = to_checksum_address(household)
        salt = salt if salt is not None else keccak(text=f"salt:{self.chain.config.seed}:{sid}:{h}")
        encoded = orders.encode()
        self._tx("market", "commit", [sid, commitment(sid, h, encoded, salt)], h)
        self._sealed[(sid, h)] = (orders, salt)
        return salt

    def reveal(
        self, sid: int, household: str, orders: OrderVector | None = None, salt: bytes | None = None
    ) -> None:
        """Open the sealed vector (the stored one unless given); escrows the maximum payment."""
        h = to_checksum_address(household)
        if orders is None or salt is None:
            if (sid, h) not in self._sealed:
                raise ProtocolError(f"no sealed order vector of {h} in session {sid}")
            stored_orders, stored_salt = self._sealed[(sid, h)]
            orders = orders or stored_orders
            salt = salt or stored_salt
        self._tx("market", "reveal", [sid, orders.encode(), salt], h)

    def commit_all(self, sid: int, orders: Mapping[str, OrderVector]) -> None:
        """Commit many households' vectors in one batch (one transaction each, no round trips)."""
        items = []
        for household, vector in orders.items():
            h = to_checksum_address(household)
            salt = keccak(text=f"salt:{self.chain.config.seed}:{sid}:{h}")
            items.append(
                self._item(
                    "market",
                    "commit",
                    [sid, commitment(sid, h, vector.encode(), salt)],
                    self.chain.key(h),
                )
            )
            self._sealed[(sid, h)] = (vector, salt)
        self.chain.send_batch(items)

    def reveal_all(self, sid: int, households: Sequence[str]) -> None:
        """Reveal the stored vectors of many households in one batch."""
        items = []
        for household in households:
            h = to_checksum_address(household)
            if (sid, h) not in self._sealed:
                raise ProtocolError(f"no sealed order vector of {h} in session {sid}")
            vector, salt = self._sealed[(sid, h)]
            items.append(
                self._item("market", "reveal", [sid, vector.encode(), salt], self.chain.key(h))
            )
        self.chain.send_batch(items)

    def revealed_book(self, sid: int) -> tuple[list[str], list[OrderVector]]:
        """Households and order vectors of a session, in reveal order, from the Revealed events."""
        start = self._session_block.get(sid, 0)
        logs = (
            self.c["market"]
            .events.Revealed()
            .get_logs(from_block=start, argument_filters={"session": sid})
        )
        logs = sorted(logs, key=lambda e: (e["blockNumber"], e["logIndex"]))
        return (
            [str(e["args"]["household"]) for e in logs],
            [OrderVector.decode(bytes(e["args"]["orders"])) for e in logs],
        )

    def clear(self, sid: int, *, sorted_book: bytes | None = None) -> SessionClearing:
        """Auctioneer clears every slot on chain (book from the reveal events, sort supplied)."""
        hh, vectors = self.revealed_book(sid)
        n_slots = int(self.session(sid)["nSlots"])
        blob_hh = b"".join(to_canonical_address(h) for h in hh)
        blob_orders = b"".join(v.encode() for v in vectors)
        sorted_book = sort_book(vectors, n_slots) if sorted_book is None else sorted_book
        receipt = self._book_tx(
            "clear",
            [sid, blob_hh, blob_orders, sorted_book],
            self.roles["auctioneer"],
            f"session {sid} ({len(hh)} households, {n_slots} slots)",
        )
        ev = self._events("market", "Cleared", receipt)[0]["args"]
        prices, results = bytes(ev["prices"]), bytes(ev["results"])
        slots = tuple(
            SlotClearing(
                slot=int(e["args"]["slot"]),
                buy_price_ueur_per_kwh=int(e["args"]["buyerPrice"]),
                sell_price_ueur_per_kwh=int(e["args"]["sellerPrice"]),
                volume_wh=int(e["args"]["volumeWh"]),
            )
            for e in self._events("market", "SlotCleared", receipt)
        )
        cleared = tuple(
            tuple(
                int.from_bytes(
                    results[(i * n_slots + t) * 4 : (i * n_slots + t + 1) * 4], "big", signed=True
                )
                for t in range(n_slots)
            )
            for i in range(len(hh))
        )
        out = SessionClearing(sid, tuple(hh), cleared, slots, prices, results)
        self._clearings[sid] = out
        return out

    def settle(self, sid: int, *, sender: str | None = None) -> None:
        """DSO settles a cleared session against the attestations."""
        cl = self._clearings.get(sid)
        if cl is None:
            raise ProtocolError(f"session {sid} was not cleared through this client")
        blob_hh = b"".join(to_canonical_address(h) for h in cl.households)
        self._book_tx(
            "settle",
            [sid, blob_hh, cl.prices_blob, cl.results_blob],
            sender or self.roles["dso"],
            f"session {sid} ({len(cl.households)} households)",
        )

    def owed_nano(self, account: str) -> int:
        """Credit the market owes an account after settlement, 1e-9 EUR."""
        return int(self.chain.call(self.c["market"], "owed", [account]))

    def withdraw(self, account: str) -> int:
        """Pull what the market owes ``account``; returns the amount (1e-9 EUR)."""
        receipt = self._tx("market", "withdraw", [], account)
        return int(self._events("market", "Withdrawn", receipt)[0]["args"]["amount"])

    def escrow_of(self, sid: int, household: str) -> tuple[bool, int]:
        """(revealed, escrow in 1e-9 EUR) of a household in a session."""
        ok, amount = self.chain.call(self.c["market"], "escrowOf", [sid, household])
        return bool(ok), int(amount)

    def advance_time(self, seconds: int) -> None:
        """Move the chain clock (embedded chain and anvil)."""
        self.chain.advance_time(seconds)

    # ------------------------------------------------------------------------ fleet (Couraud)

    def fleet_register(self, households: Sequence[str]) -> None:
        """Aggregator registers households with the fleet contract (order = update order)."""
        for h in households:
            self._tx("fleet", "registerHousehold", [h], self.roles["aggregator"])

    def fleet_series(
        self,
        first_interval: int,
        soc_a_frac: Sequence[float],
        contracted_export_kwh: Sequence[float],
        state: Sequence[int],
    ) -> None:
        """Aggregator posts SoC_t,A, Ec_t and S_t for consecutive market intervals."""
        if not len(soc_a_frac) == len(contracted_export_kwh) == len(state):
            raise ProtocolError(
                "fleet series: soc_a_frac, contracted_export_kwh, state differ in length"
            )
        blob = bytearray()
        for t, (soc, ec, st) in enumerate(
            zip(soc_a_frac, contracted_export_kwh, state, strict=True)
        ):
            if st not in (-1, 0, 1):
                raise ProtocolError(f"state[{t}]={st}: expected -1, 0 or 1")
            blob += soc_to_fixed(f"soc_a_frac[{t}]", soc).to_bytes(2, "big")
            blob += kwh_to_wh(f"contracted_export_kwh[{t}]", ec).to_bytes(4, "big", signed=True)
            blob += st.to_bytes(1, "big", signed=True)
        self._tx("fleet", "setSeries", [first_interval, bytes(blob)], self.roles["aggregator"])

    def fleet_step(
        self, interval: int, soc_frac: Sequence[float], exported_kwh: Sequence[float]
    ) -> FleetStep:
        """One fleet step: each household's SoC and export since the last step, one transaction."""
        if len(soc_frac) != len(exported_kwh):
            raise ProtocolError("fleet step: soc_frac and exported_kwh differ in length")
        blob = b"".join(
            soc_to_fixed(f"soc_frac[{k}]", soc).to_bytes(2, "big")
            + kwh_to_wh(f"exported_kwh[{k}]", e).to_bytes(4, "big", signed=True)
            for k, (soc, e) in enumerate(zip(soc_frac, exported_kwh, strict=True))
        )
        receipt = self._tx("fleet", "fleetStep", [interval, blob], self.roles["aggregator"])
        ev = self._events("fleet", "FleetStep", receipt)[0]["args"]
        w = bytes(ev["weights"])
        return FleetStep(
            interval=int(ev["interval"]),
            step=int(ev["step"]),
            remaining_export_wh=int(ev["remainingExportWh"]),
            state=int(ev["state"]),
            weights_export_ppm=tuple(
                int.from_bytes(w[i : i + 4], "big") for i in range(0, len(w), 8)
            ),
            weights_import_ppm=tuple(
                int.from_bytes(w[i + 4 : i + 8], "big") for i in range(0, len(w), 8)
            ),
        )

    # ------------------------------------------------------------------------ billing (S2)

    def post_schedule(
        self,
        period: int,
        schedule_kwh: Mapping[str, float],
        *,
        price_eur_per_kwh: float,
        penalty_eur_per_kwh: float,
        sender: str | None = None,
    ) -> None:
        """Aggregator stores households' scheduled net export for a period with its prices."""
        hh = list(schedule_kwh)
        values = [kwh_to_wh(f"schedule_kwh[{h}]", e) for h, e in schedule_kwh.items()]
        self._tx(
            "billing",
            "postSchedule",
            [
                period,
                hh,
                values,
                price_to_micro("price_eur_per_kwh", price_eur_per_kwh),
                penalty_to_nano_per_wh("penalty_eur_per_kwh", penalty_eur_per_kwh),
            ],
            sender or self.roles["aggregator"],
        )

    def sign_reading(
        self,
        household: str,
        period: int,
        net_export_kwh: float,
        *,
        meter_key: LocalAccount | None = None,
    ) -> SignedReading:
        """The household's meter signs a reading (net export, kWh) for a period."""
        h = to_checksum_address(household)
        wh = kwh_to_wh("net_export_kwh", net_export_kwh)
        digest = self.chain.call(self.c["billing"], "readingDigest", [h, period, wh])
        key = meter_key or self._meters[h]
        sig = key.unsafe_sign_hash(Hash32(bytes(digest)))
        return SignedReading(
            h, period, wh, sig.v, sig.r.to_bytes(32, "big"), sig.s.to_bytes(32, "big")
        )

    def bill(self, reading: SignedReading, *, sender: str | None = None) -> Bill:
        """Submit a signed reading (anyone may relay it); moves the bill in Credit."""
        receipt = self._tx(
            "billing",
            "bill",
            [
                reading.household,
                reading.period,
                reading.net_export_wh,
                reading.v,
                reading.r,
                reading.s,
            ],
            sender or self.roles["aggregator"],
        )
        ev = self._events("billing", "Billed", receipt)[0]["args"]
        return Bill(
            str(ev["household"]),
            int(ev["period"]),
            int(ev["readingWh"]),
            int(ev["scheduleWh"]),
            int(ev["amountNano"]),
        )
