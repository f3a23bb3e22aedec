"""The VDG market contract through a whole session: clearing, settlement, conservation."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ledger.client import Web3Ledger
from tests.ledger.sessions import Session

pytestmark = pytest.mark.chain


def _credit_accounts(led: Web3Ledger, extra: list[str]) -> int:
    accounts = [
        *extra,
        led.c["market"].address,
        led.roles["treasury"].address,
        led.roles["admin"].address,
    ]
    return sum(led.credit_nano(a) for a in accounts)


def test_clearing_follows_huang(session_factory: Callable[..., Session]) -> None:
    s = session_factory("cleared")
    cl = s.led._clearings[s.sid]
    # slot 0: buyers 1.0@0.30, 2.0@0.25; sellers 1.5@0.05, 1.0@0.20 -> break-even buyer 1, seller 1
    slot0 = cl.slots[0]
    assert (slot0.buy_price_ueur_per_kwh, slot0.sell_price_ueur_per_kwh, slot0.volume_wh) == (
        250_000,
        200_000,
        1000,
    )
    assert [row[0] for row in cl.cleared_wh] == [1000, 0, -1000, 0]
    # slot 1: one buyer, two sellers -> the break-even pair is the only crossing pair: no trade
    assert cl.slots[1].volume_wh == 0
    assert [row[1] for row in cl.cleared_wh] == [0, 0, 0, 0]


def test_settlement_pays_penalises_and_refunds(session_factory: Callable[..., Session]) -> None:
    s = session_factory("attested")
    led, hh = s.led, s.households
    supply = led.credit_supply_nano()
    before = {h: led.credit_nano(h) for h in hh}
    escrow = {h: led.escrow_of(s.sid, h)[1] for h in hh}
    led.settle(s.sid)
    owed = {h: led.owed_nano(h) for h in hh}
    # buyer 0 pays 1000 Wh x 0.25 EUR/kWh from its escrow
    assert owed[hh[0]] == escrow[hh[0]] - 1000 * 250_000
    # seller 2 delivered 1500 >= 1000 Wh sold: paid 1000 x 0.20, bond back
    assert owed[hh[2]] == escrow[hh[2]] + 1000 * 200_000
    # households that did not trade get their escrow back
    assert owed[hh[1]] == escrow[hh[1]]
    assert owed[hh[3]] == escrow[hh[3]]
    treasury = led.roles["treasury"].address
    assert led.owed_nano(treasury) == 1000 * (250_000 - 200_000)
    for h in hh:
        assert led.withdraw(h) == owed[h]
        assert led.credit_nano(h) == before[h] + owed[h]
    led.withdraw(treasury)
    # credit conserved: supply unchanged, the market holds nothing once everyone withdrew
    assert led.credit_supply_nano() == supply
    assert led.credit_nano(led.c["market"].address) == 0
    assert _credit_accounts(led, hh) == supply


def test_shortfall_is_penalised_from_the_bond(session_factory: Callable[..., Session]) -> None:
    s = session_factory("cleared")
    led, hh = s.led, s.households
    # seller 2 sold 1000 Wh in slot 100 but delivers only 600 Wh
    led.attest(100, {hh[2]: 0.6})
    led.attest(101, {hh[2]: 0.0})
    _, escrow = led.escrow_of(s.sid, hh[2])
    led.settle(s.sid)
    penalty_nano_per_wh = 500_000
    assert led.owed_nano(hh[2]) == escrow + 600 * 200_000 - 400 * penalty_nano_per_wh
    # the buyer still pays for 1000 Wh; the treasury keeps the payment for the missing 400 Wh
    # (it supplies them) plus the penalty and the trade surplus
    treasury_gain = 1000 * 250_000 - 600 * 200_000 + 400 * penalty_nano_per_wh
    assert led.owed_nano(led.roles["treasury"].address) == treasury_gain


def test_energy_tokens_minted_equal_attested_export(
    session_factory: Callable[..., Session],
) -> None:
    s = session_factory("attested")
    led, hh = s.led, s.households
    exported = 1500 + 400 + 500 + 2000  # positive attested flows, Wh
    assert led.energy_supply_wh() == exported
    assert sum(led.energy_wh(h) for h in hh) == exported
    assert led.attestation(hh[0], 100) == (True, -1000)
    assert led.attestation(hh[0], 102) == (False, 0)


def test_gas_is_recorded_per_call(session_factory: Callable[..., Session]) -> None:
    s = session_factory("cleared")
    calls = [r.call for r in s.led.gas_log]
    assert "VdgMarket.commit" in calls
    assert "VdgMarket.reveal" in calls
    assert "VdgMarket.clear" in calls
    assert all(r.gas_used > 21_000 for r in s.led.gas_log if r.call.startswith("VdgMarket."))


def test_events_are_readable_by_name(session_factory: Callable[..., Session]) -> None:
    s = session_factory("cleared")
    cleared = s.led.events("market", "SlotCleared", session=s.sid)
    assert [e["slot"] for e in cleared] == [0, 1]
    assert cleared[0]["volumeWh"] == 1000
    committed = s.led.events("market", "Committed", session=s.sid)
    assert [e["household"] for e in committed] == s.households
    assert s.led.events("market", "Committed", session=s.sid + 1) == []
