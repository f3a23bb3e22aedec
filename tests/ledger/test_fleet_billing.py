"""Couraud's fleet contract (eqs. 10–12) and Münsing's billing contract S2."""

from __future__ import annotations

import numpy as np
import pytest

from ledger.client import Web3Ledger
from ledger.errors import ContractRevert
from ledger.results import SignedReading

pytestmark = pytest.mark.chain


def _weights(soc: np.ndarray, ee: np.ndarray, soc_a: float) -> tuple[np.ndarray, np.ndarray]:
    w_e = np.where((ee >= 0) & (soc >= soc_a), soc, 0.0)
    w_i = 1.0 - soc
    return w_e / w_e.sum() if w_e.sum() else w_e, w_i / w_i.sum()


def test_fleet_step_weights_and_remaining_export(led: Web3Ledger) -> None:
    hh = led.add_households(6)
    led.fleet_register(hh)
    led.fleet_series(10, soc_a_frac=[0.5, 0.6], contracted_export_kwh=[12.0, 3.0], state=[1, -1])
    rng = np.random.default_rng(3)
    exported = 0.0
    for step in range(1, 4):
        soc = np.round(rng.uniform(0.1, 0.95, 6), 4)
        ee = np.round(rng.normal(0.5, 0.8, 6), 3)
        out = led.fleet_step(10, soc.tolist(), ee.tolist())
        exported += ee.sum()
        we, wi = _weights(soc, ee, 0.5)
        assert out.step == step
        assert out.state == 1
        assert out.remaining_export_wh == round(12_000 - exported * 1000)
        np.testing.assert_allclose(out.weights_export, we, atol=1e-6)
        np.testing.assert_allclose(out.weights_import, wi, atol=1e-6)
    # a new interval restarts the running export
    out = led.fleet_step(11, [0.5] * 6, [0.1] * 6)
    assert (out.step, out.state, out.remaining_export_wh) == (1, -1, 3000 - 600)
    with pytest.raises(ContractRevert) as err:
        led.fleet_step(10, [0.5] * 6, [0.0] * 6)
    assert err.value.error == "IntervalPassed"
    with pytest.raises(ContractRevert) as err:
        led.fleet_step(12, [0.5] * 6, [0.0] * 6)
    assert err.value.error == "NoSeries"
    with pytest.raises(ContractRevert) as err:
        led.chain.transact(led.c["fleet"], "fleetStep", [11, b"\x00" * 6], led.chain.key(hh[0]))
    assert err.value.error == "Unauthorized"


def test_billing_charges_imports_pays_exports_and_penalises_deviation(led: Web3Ledger) -> None:
    a, b = led.add_households(2, credit_eur=50.0)
    led.mint_credit(led.roles["treasury"].address, 100.0)
    led.post_schedule(5, {a: -2.0, b: 1.0}, price_eur_per_kwh=0.2, penalty_eur_per_kwh=0.1)
    before = {x: led.credit_nano(x) for x in (a, b, led.roles["treasury"].address)}
    bill_a = led.bill(led.sign_reading(a, 5, -2.5))  # imported 2.5 kWh, scheduled 2.0
    bill_b = led.bill(led.sign_reading(b, 5, 1.0), sender=b)  # exported as scheduled; self-relayed
    assert bill_a.amount_nano == 2500 * 200_000 + 500 * 100_000
    assert bill_b.amount_nano == -1000 * 200_000
    assert led.credit_nano(a) == before[a] - bill_a.amount_nano
    assert led.credit_nano(b) == before[b] - bill_b.amount_nano
    treasury = led.roles["treasury"].address
    assert led.credit_nano(treasury) == before[treasury] + bill_a.amount_nano + bill_b.amount_nano


def test_replayed_or_forged_meter_readings_are_refused(led: Web3Ledger) -> None:
    a, b = led.add_households(2, credit_eur=50.0)
    led.post_schedule(5, {a: -2.0, b: -1.0}, price_eur_per_kwh=0.2, penalty_eur_per_kwh=0.1)
    reading = led.sign_reading(a, 5, -2.0)
    led.bill(reading)
    accounts = (a, b, led.roles["treasury"].address)
    before = {x: led.credit_nano(x) for x in accounts}
    with pytest.raises(ContractRevert) as err:
        led.bill(reading)
    assert err.value.error == "AlreadyBilled"
    # b's reading signed with a's meter key
    forged = led.sign_reading(b, 5, -0.1, meter_key=led._meters[a])
    with pytest.raises(ContractRevert) as err:
        led.bill(forged)
    assert err.value.error == "BadSignature"
    # a's valid signature moved to another period or another amount
    good = led.sign_reading(b, 5, -1.0)
    with pytest.raises(ContractRevert) as err:
        led.bill(SignedReading(b, 5, -500, good.v, good.r, good.s))
    assert err.value.error == "BadSignature"
    with pytest.raises(ContractRevert) as err:
        led.bill(SignedReading(b, 6, -1000, good.v, good.r, good.s))
    assert err.value.error == "NoSchedule"
    assert {x: led.credit_nano(x) for x in accounts} == before
    with pytest.raises(ContractRevert) as err:
        led.post_schedule(6, {a: 1.0}, price_eur_per_kwh=0.2, penalty_eur_per_kwh=0.1, sender=a)
    assert err.value.error == "Unauthorized"
