"""Message bodies: round trip, every field checked, malformed bodies rejected with the field."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mas.errors import MessageError
from mas.messages import SCHEMAS, dump, parse

VALID = {
    "plan.round": {"round": 1, "lam_eur_per_kwh": [0.01] * 24, "target_import_kw": [1.0] * 24,
                   "rho_eur_per_kw2": 0.02},
    "plan.answer": {"round": 2, "net_import_kw": [1.5] * 24},
    "plan.final": {"round": 3},
    "flex.call": {"session": "flex-18-up", "slot": 18, "direction": "up", "p_kw": 3.0,
                  "price_cap_eur_per_kwh": 0.3},
    "flex.offer": {"session": "flex-18-up", "p_kw": 1.0, "price_eur_per_kwh": 0.1},
    "flex.award": {"session": "flex-18-up", "slot": 18, "direction": "up", "p_kw": 1.0},
    "account.join": {"chain_id": 31337, "market": "0x" + "ab" * 20, "credit": "0x" + "cd" * 20},
    "account.address": {"address": "0x" + "ef" * 20},
    "account.approve": {"nonce": 0, "gas": 80_000, "max_fee_wei": 3 * 10**9},
    "account.approval": {"raw_tx": "02f8" + "00" * 100},
    "account.withdraw": {"nonce": 9, "gas": 120_000, "max_fee_wei": 3 * 10**9},
    "account.withdrawal": {"raw_tx": "02f8" + "11" * 100},
    "market.commit": {"session": "da", "chain_session": 1, "slots": list(range(24)),
                      "address": "0x" + "ab" * 20, "nonce": 1, "gas": 80_000,
                      "max_fee_wei": 3 * 10**9},
    "market.sealed": {"session": "da", "commitment": "cd" * 32, "raw_tx": "02f8" + "22" * 90},
    "market.reveal": {"session": "da", "nonce": 2, "gas": 400_000, "max_fee_wei": 3 * 10**9},
    "market.orders": {"session": "da", "qty_wh": [100, -50], "price_ueur_per_kwh": [1, 2],
                      "salt": "00" * 32, "raw_tx": "02f8" + "33" * 120},
    "market.result": {"session": "da", "cleared_wh": [1], "buy_price_ueur_per_kwh": [2],
                      "sell_price_ueur_per_kwh": [1]},
    "fleet.forecast": {"net_export_kw": [0.5] * 24},
    "deliver": {"slot": 5},
    "meter.reading": {"slot": 5, "net_export_kwh": -1.25},
    "day.end": {},
    "error": {"error": "boom"},
}


def test_the_first_admm_round_has_no_target():
    body = parse(dump("plan.round", round=0, lam_eur_per_kwh=[0.0] * 24, target_import_kw=None,
                      rho_eur_per_kw2=0.02))
    assert body["target_import_kw"] is None


def test_every_kind_has_a_valid_example():
    assert set(VALID) == set(SCHEMAS)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_round_trip(kind):
    text = dump(kind, **VALID[kind])
    body = parse(text)
    assert body.kind == kind
    assert parse(dump(kind, **{k: _back(v) for k, v in body.fields.items()})) == body


def _back(v):
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, tuple):
        return list(v)
    return v


@pytest.mark.parametrize(("text", "needle"), [
    ("not json", "not valid JSON"),
    ("[]", "JSON object"),
    ('{"v": 2, "kind": "deliver", "slot": 1}', "'v'"),
    ('{"v": true, "kind": "deliver", "slot": 1}', "'v'"),
    ('{"v": 1, "kind": "nope"}', "'kind'"),
    ('{"v": 1, "kind": "deliver"}', "'slot' is missing"),
    ('{"v": 1, "kind": "deliver", "slot": 24}', "'slot'"),
    ('{"v": 1, "kind": "deliver", "slot": 1.0}', "'slot'"),
    ('{"v": 1, "kind": "deliver", "slot": 1, "x": 0}', "'x'"),
    ('{"v": 1, "kind": "meter.reading", "slot": 1, "net_export_kwh": NaN}', "not valid JSON"),
    ('{"v": 1, "kind": "meter.reading", "slot": 1, "net_export_kwh": 1e309}', "net_export_kwh"),
    ('{"v": 1, "kind": "market.sealed", "session": "da", "commitment": "zz"}', "commitment"),
    ('{"v": 1, "kind": "market.commit", "session": "da", "chain_session": 1, "slots": [1],'
     ' "address": "0x12", "nonce": 0, "gas": 80000, "max_fee_wei": 1}', "address"),
    ('{"v": 1, "kind": "account.approval", "raw_tx": "02f"}', "raw_tx"),
    ('{"v": 1, "kind": "account.approval", "raw_tx": "' + "ab" * 5000 + '"}', "raw_tx"),
    ('{"v": 1, "kind": "market.reveal", "session": "da", "nonce": -1, "gas": 80000,'
     ' "max_fee_wei": 1}', "nonce"),
    ('{"v": 1, "kind": "plan.answer", "round": 1, "net_import_kw": [1]}', "net_import_kw"),
    ('{"v": 1, "kind": "plan.round", "round": 1, "lam_eur_per_kwh": ' + json.dumps([0] * 24)
     + ', "target_import_kw": [1], "rho_eur_per_kw2": 0.02}', "target_import_kw"),
    ('{"v": 1, "kind": "plan.round", "round": 1, "lam_eur_per_kwh": ' + json.dumps([0] * 24)
     + ', "target_import_kw": null, "rho_eur_per_kw2": 0}', "rho_eur_per_kw2"),
    ('{"v": 1, "kind": "plan.answer", "round": 1, "net_import_kw": ' + json.dumps(["a"] * 24)
     + "}", "net_import_kw[0]"),
    ("[" * 100_000, "characters"),
    ('{"v": 1, "kind": "error", "error": ""}', "'error'"),
])
def test_malformed_bodies_name_the_field(text, needle):
    with pytest.raises(MessageError, match=None) as info:
        parse(text)
    assert needle in str(info.value)


def test_dump_refuses_what_parse_would_refuse():
    with pytest.raises(MessageError, match="slot"):
        dump("deliver", slot=99)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=50).map(lambda b: b.hex()),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                              lambda c: st.lists(c) | st.dictionaries(st.text(), c),
                              max_leaves=20).map(lambda x: json.dumps(x, allow_nan=True))))
def test_parse_either_accepts_or_raises_message_error(text):
    try:
        body = parse(text)
    except MessageError:
        return
    assert body.kind in SCHEMAS
