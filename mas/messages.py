"""Versioned JSON message bodies of the agent protocols, validated at the boundary.

Every body is a JSON object ``{"v": 1, "kind": ..., ...}``. :func:`parse` checks the version,
the kind and each field of that kind (type, range, length) and returns a :class:`Body`; anything
else raises :class:`mas.errors.MessageError` naming the field and the value, which the runtime
answers with ``not-understood``. :func:`dump` produces the canonical text (sorted keys).

Kinds, with their FIPA performative and keys (``session``/``round`` identify the exchange;
handling is idempotent on ``(kind, session, round, sender)``):

=====================  ============  =========================================================
kind                   performative  fields
=====================  ============  =========================================================
``plan.round``         cfp           round, lam_eur_per_kwh[24], target_import_kw[24] or null,
                                     rho_eur_per_kw2 (one consensus-ADMM round)
``plan.answer``        propose       round, net_import_kw[24]
``plan.final``         accept-prop.  round
``flex.call``          cfp           session (call id), slot, direction, p_kw, price_cap
``flex.offer``         propose       session, p_kw, price_eur_per_kwh (or p_kw 0: nothing)
``flex.award``         accept-prop.  session, slot, direction, p_kw
``account.join``      cfp           chain_id, market, credit (contract addresses)
``account.address``   propose       address (the participant's own account)
``account.approve``   cfp           nonce, gas, max_fee_wei (sign Credit.approve(market))
``account.approval``  propose       raw_tx (hex)
``market.commit``      cfp           session, chain_session, slots[], address, nonce, gas,
                                     max_fee_wei
``market.sealed``      propose       session, commitment (hex, 32 bytes) or null, raw_tx or null
``market.reveal``      cfp           session, nonce, gas, max_fee_wei
``market.orders``      propose       session, qty_wh[], price_ueur_per_kwh[], salt (hex), raw_tx
``account.withdraw``  cfp           nonce, gas, max_fee_wei (sign VdgMarket.withdraw())
``account.withdrawal``  propose     raw_tx (hex)
``market.result``      inform        session, cleared_wh[], buy/sell price per slot
``fleet.forecast``     inform        net_export_kw[24] (the neighbourhood's expected position)
``deliver``            inform        slot (run the slot for real)
``meter.reading``      inform        slot, net_export_kwh
``day.end``            inform        (none)
``error``              failure/n-u   error (text)
=====================  ============  =========================================================

``raw_tx`` is a transaction the participant signed with its own key (EIP-1559, hex); the
operator fixes chain, contract, nonce and gas in the request and relays the bytes
(:mod:`ledger.relay`). No message carries a private key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mas.errors import MessageError

VERSION = 1
MAX_BODY_CHARS = 64_000
SLOTS = 24

Check = Callable[[str, Any], Any]


def _int(lo: int, hi: int) -> Check:
    def check(name: str, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise MessageError(f"field {name!r} must be an integer in [{lo}, {hi}], got {v!r}")
        return v
    return check


def _num(lo: float, hi: float) -> Check:
    def check(name: str, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                or not lo <= v <= hi:
            raise MessageError(f"field {name!r} must be a finite number in [{lo}, {hi}], "
                               f"got {v!r}")
        return float(v)
    return check


def _str(max_len: int = 64) -> Check:
    def check(name: str, v: Any) -> str:
        if not isinstance(v, str) or not 0 < len(v) <= max_len:
            raise MessageError(f"field {name!r} must be a string of 1..{max_len} characters, "
                               f"got {v!r:.80}")
        return v
    return check


def _choice(*options: str) -> Check:
    def check(name: str, v: Any) -> str:
        if v not in options:
            raise MessageError(f"field {name!r} must be one of {list(options)}, got {v!r:.80}")
        return str(v)
    return check


def _list(item: Check, min_len: int, max_len: int) -> Check:
    def check(name: str, v: Any) -> tuple[Any, ...]:
        if not isinstance(v, list) or not min_len <= len(v) <= max_len:
            raise MessageError(f"field {name!r} must be a list of {min_len}..{max_len} items, "
                               f"got {v!r:.80}")
        return tuple(item(f"{name}[{i}]", x) for i, x in enumerate(v))
    return check


def _hex(n_bytes: int, nullable: bool = False) -> Check:
    def check(name: str, v: Any) -> bytes | None:
        if v is None and nullable:
            return None
        if not isinstance(v, str) or len(v) != 2 * n_bytes:
            raise MessageError(f"field {name!r} must be {n_bytes} bytes as hex, got {v!r:.80}")
        try:
            return bytes.fromhex(v)
        except ValueError:
            raise MessageError(f"field {name!r} is not hex: {v!r:.80}") from None
    return check


def _hex_up_to(max_bytes: int, nullable: bool = False) -> Check:
    def check(name: str, v: Any) -> bytes | None:
        if v is None and nullable:
            return None
        if not isinstance(v, str) or not 0 < len(v) <= 2 * max_bytes or len(v) % 2:
            raise MessageError(f"field {name!r} must be 1..{max_bytes} bytes as hex, "
                               f"got {v!r:.80}")
        try:
            return bytes.fromhex(v)
        except ValueError:
            raise MessageError(f"field {name!r} is not hex: {v!r:.80}") from None
    return check


def _nullable(check: Check) -> Check:
    def inner(name: str, v: Any) -> Any:
        return None if v is None else check(name, v)
    return inner


def _address(name: str, v: Any) -> str:
    if not isinstance(v, str) or len(v) != 42 or not v.startswith("0x"):
        raise MessageError(f"field {name!r} must be a 0x-prefixed 20-byte address, got {v!r:.80}")
    try:
        bytes.fromhex(v[2:])
    except ValueError:
        raise MessageError(f"field {name!r} is not hex: {v!r:.80}") from None
    return v


_ROUND = _int(0, 10_000)
_SLOT = _int(0, SLOTS - 1)
_SESSION = _str(64)
_KW = _num(-1e4, 1e4)
_PRICE = _num(-1e3, 1e3)
_PROFILE_KW = _list(_KW, SLOTS, SLOTS)
_WH = _int(-(2**31 - 1), 2**31 - 1)
_UPRICE = _int(0, 2**32 - 1)
_RAW_TX = _hex_up_to(4096)
_TERMS: dict[str, Check] = {"nonce": _int(0, 2**63), "gas": _int(21_000, 30_000_000),
                            "max_fee_wei": _int(1, 10**15)}

SCHEMAS: dict[str, dict[str, Check]] = {
    "plan.round": {"round": _ROUND, "lam_eur_per_kwh": _list(_PRICE, SLOTS, SLOTS),
                   "target_import_kw": _nullable(_PROFILE_KW),
                   "rho_eur_per_kw2": _num(1e-6, 10)},
    "plan.answer": {"round": _ROUND, "net_import_kw": _PROFILE_KW},
    "plan.final": {"round": _ROUND},
    "flex.call": {"session": _SESSION, "slot": _SLOT, "direction": _choice("up", "down"),
                  "p_kw": _num(0, 1e4), "price_cap_eur_per_kwh": _PRICE},
    "flex.offer": {"session": _SESSION, "p_kw": _num(0, 1e4), "price_eur_per_kwh": _PRICE},
    "flex.award": {"session": _SESSION, "slot": _SLOT, "direction": _choice("up", "down"),
                   "p_kw": _num(0, 1e4)},
    "account.join": {"chain_id": _int(1, 2**63), "market": _address, "credit": _address},
    "account.address": {"address": _address},
    "account.approve": dict(_TERMS),
    "account.approval": {"raw_tx": _RAW_TX},
    "account.withdraw": dict(_TERMS),
    "account.withdrawal": {"raw_tx": _RAW_TX},
    "market.commit": {"session": _SESSION, "chain_session": _int(0, 2**63),
                      "slots": _list(_SLOT, 1, SLOTS), "address": _address, **_TERMS},
    "market.sealed": {"session": _SESSION, "commitment": _hex(32, nullable=True),
                      "raw_tx": _hex_up_to(4096, nullable=True)},
    "market.reveal": {"session": _SESSION, **_TERMS},
    "market.orders": {"session": _SESSION, "qty_wh": _list(_WH, 1, SLOTS),
                      "price_ueur_per_kwh": _list(_UPRICE, 1, SLOTS), "salt": _hex(32),
                      "raw_tx": _RAW_TX},
    "market.result": {"session": _SESSION, "cleared_wh": _list(_WH, 1, SLOTS),
                      "buy_price_ueur_per_kwh": _list(_UPRICE, 1, SLOTS),
                      "sell_price_ueur_per_kwh": _list(_UPRICE, 1, SLOTS)},
    "fleet.forecast": {"net_export_kw": _PROFILE_KW},
    "deliver": {"slot": _SLOT},
    "meter.reading": {"slot": _SLOT, "net_export_kwh": _num(-1e4, 1e4)},
    "day.end": {},
    "error": {"error": _str(2000)},
}


@dataclass(frozen=True, slots=True)
class Body:
    """A validated message body.

    Attributes:
        kind: the message kind.
        fields: the validated fields (lists become tuples, hex becomes bytes).
    """

    kind: str
    fields: Mapping[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    @property
    def key(self) -> tuple[str, str, int]:
        """``(kind, session, round)`` of the exchange (for idempotent handling)."""
        return (self.kind, str(self.fields.get("session", self.fields.get("slot", ""))),
                int(self.fields.get("round", -1)))


def parse(text: object) -> Body:
    """Validate a message body.

    Raises:
        MessageError: the body is not a JSON object of a known kind and version with valid
            fields; the message names the first field at fault.
    """
    if not isinstance(text, str):
        raise MessageError(f"body must be a string, got {type(text).__name__}")
    if len(text) > MAX_BODY_CHARS:
        raise MessageError(f"body is {len(text)} characters, more than {MAX_BODY_CHARS}")
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise MessageError(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MessageError(f"body must be a JSON object, got {type(data).__name__}")
    if data.get("v") != VERSION or isinstance(data.get("v"), bool):
        raise MessageError(f"field 'v' must be {VERSION}, got {data.get('v')!r:.80}")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in SCHEMAS:
        raise MessageError(f"field 'kind' must be one of {sorted(SCHEMAS)}, got {kind!r:.80}")
    schema = SCHEMAS[kind]
    extra = sorted(set(data) - set(schema) - {"v", "kind"})
    if extra:
        raise MessageError(f"field {extra[0]!r:.80} is not a field of {kind!r}")
    out = {}
    for name, check in schema.items():
        if name not in data:
            raise MessageError(f"field {name!r} is missing from {kind!r}")
        out[name] = check(name, data[name])
    return Body(kind, out)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def dump(kind: str, **fields: Any) -> str:
    """The canonical JSON text of a body (validated, so a sender cannot send garbage).

    Raises:
        MessageError: the fields do not fit the kind's schema.
    """
    data = {"v": VERSION, "kind": kind, **{k: _plain(v) for k, v in fields.items()}}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    parse(text)
    return text


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value
