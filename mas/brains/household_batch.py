"""Many households' session orders and deliveries at once, bitwise as each brain makes them.

:class:`HouseholdBatch` computes what :meth:`HouseholdBrain.session_orders` and
:meth:`HouseholdBrain.deliver` compute for each household, for all of them at once: the slot
recursion of :meth:`HouseholdBrain._simulate_slot` runs on arrays over the households (one
vector step per slot), and the orders come out in contract units (Wh, µEUR/kWh) as
:func:`mas.brains.auctioneer.vector_from_intent` would convert the brain's
:class:`OrderIntent`. Every floating-point operation is the brain's, in the brain's order, and
Python's correctly rounded ``round(x, n)`` is reproduced exactly (:func:`round_like_python`),
so what reaches the market and the meter is bitwise the same; ``tests/mas/test_mas_batch.py``
holds the two paths to that on random households. The batch reads and updates the brains' own
state (plan, flexibility, intraday position, battery energy, deliveries), so brains driven one
by one and in a batch can be mixed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ledger.fixedpoint import MICRO_EUR_PER_EUR, WH_PER_KWH
from market.vdg import SessionKind
from mas.brains.auctioneer import SessionPlan
from mas.brains.household import (
    DT_H,
    MIN_ORDER_KWH,
    Delivery,
    HouseholdBrain,
    Plan,
    forecast_shrink,
)
from mas.world import SLOTS

_ULP_FRAC = 2.0**-51  # twice the relative rounding error of a product of doubles


def round_like_python(x: np.ndarray, decimals: int) -> np.ndarray:
    """Python's ``round(v, decimals)`` of every element, bit for bit.

    ``np.round`` scales, rounds to an integer and scales back; that integer is the correctly
    rounded one unless the scaled value lies within its own rounding error of a half, and the
    division by an exact power of ten is correctly rounded, as Python's conversion of the
    rounded decimal is. The few elements near a half (and any that is not finite or too large
    for the scaling to be exact) are rounded by Python itself.
    """
    scale = 10.0**decimals
    with np.errstate(over="ignore", invalid="ignore"):
        y = x * scale
        out = np.rint(y) / scale
        off_half = np.abs(np.abs(y - np.trunc(y)) - 0.5)
        safe = (off_half > np.abs(y) * _ULP_FRAC) & (np.abs(y) < 2.0**51)
    if not safe.all():
        risky = ~safe
        out[risky] = [round(float(v), decimals) for v in x[risky]]
    return out


def _first(a: np.ndarray, b: np.ndarray | float, b_wins: np.ndarray) -> np.ndarray:
    """``b`` where ``b_wins``, else ``a`` (how Python's ``min``/``max`` pick of two)."""
    return np.where(b_wins, b, a)


class HouseholdBatch:
    """The session orders and deliveries of a set of households, computed together.

    Args:
        brains: the households, in the order rows of the results follow.
    """

    def __init__(self, brains: Sequence[HouseholdBrain]) -> None:
        self.brains = list(brains)
        n = len(self.brains)
        specs = [b.spec for b in self.brains]
        self.load_kw = np.array([s.load_kw for s in specs], dtype=float).reshape(n, SLOTS)
        self.pv_kw = np.array([s.pv_avail_kw for s in specs], dtype=float).reshape(n, SLOTS)
        self.load_fc_kw = np.array([b.load_fc_kw for b in self.brains]).reshape(n, SLOTS)
        self.pv_fc_kw = np.array([b.pv_fc_kw for b in self.brains]).reshape(n, SLOTS)
        self.has_battery = np.array([s.battery is not None for s in specs], dtype=bool)

        def battery(field: str, default: float) -> np.ndarray:
            return np.array([getattr(s.battery, field) if s.battery is not None else default
                             for s in specs], dtype=float)

        self.p_charge_max_kw = battery("p_charge_max_kw", 0.0)
        self.p_discharge_max_kw = battery("p_discharge_max_kw", 0.0)
        self.e_min_kwh = battery("e_min_kwh", 0.0)
        self.e_max_kwh = battery("e_max_kwh", 0.0)
        self.eta_charge = battery("eta_charge", 1.0)
        self.eta_discharge = battery("eta_discharge", 1.0)
        # the limits as order_vector converts them: round(EUR × 10⁶) of a 6-decimal price
        self.buy_ueur = np.rint(np.array([b._buy_limit for b in self.brains], dtype=float)
                                .reshape(n, SLOTS) * MICRO_EUR_PER_EUR).astype(np.int64)
        self.sell_ueur = np.rint(np.array([b._sell_limit for b in self.brains], dtype=float)
                                 .reshape(n, SLOTS) * MICRO_EUR_PER_EUR).astype(np.int64)
        self._plan_cache: tuple[list[Plan], tuple[np.ndarray, ...]] | None = None

    # ------------------------------------------------------------------------ state
    def _plans(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Planned net export, battery and EV power per household and slot.

        Stacked again only when a brain's plan changed (plans are frozen objects).
        """
        plans = [b._need_plan() for b in self.brains]
        cached = self._plan_cache
        if cached is None or any(a is not b for a, b in zip(cached[0], plans, strict=True)):
            n = len(plans)
            stacked = tuple(np.array([getattr(p, f) for p in plans], dtype=float)
                            .reshape(n, SLOTS) for f in ("net_export_kw", "battery_kw", "ev_kw"))
            cached = self._plan_cache = (plans, stacked)
        return cached[1]

    def _soc_kwh(self) -> np.ndarray:
        return np.array([b._soc_kwh for b in self.brains], dtype=float)

    def _simulate_slot(self, soc: np.ndarray, load: np.ndarray, pv: np.ndarray,
                       bat_kw: np.ndarray, ev_kw: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`HouseholdBrain._simulate_slot` of one slot for every household.

        ``bat_kw`` is the setpoint (plan plus flexibility). Returns net export and battery
        injection (both rounded to 1e-6 kW, no negative zero) and the battery energy after.
        """
        pc, pd = self.p_charge_max_kw, self.p_discharge_max_kw
        x = _first(bat_kw, -pc, -pc > bat_kw)  # max(bat_kw, -pc)
        x = _first(x, pd, pd < x)  # min(x, pd)
        avail = soc - self.e_min_kwh
        avail = _first(avail, 0.0, avail < 0.0)
        lim = avail * self.eta_discharge / DT_H
        x_dis = _first(x, lim, lim < x)
        soc_dis = soc - x_dis * DT_H / self.eta_discharge
        room = self.e_max_kwh - soc
        room = _first(room, 0.0, room < 0.0) / (self.eta_charge * DT_H)
        neg = -x
        x_ch = -_first(neg, room, room < neg)
        soc_ch = soc - x_ch * DT_H * self.eta_charge
        discharging = x >= 0
        b = self.has_battery
        out_kw = np.where(b, np.where(discharging, x_dis, x_ch), 0.0)
        soc_after = np.where(b, np.where(discharging, soc_dis, soc_ch), soc)
        down = -bat_kw  # without a battery, a down offer curtails PV
        curtail = np.where(~b & (bat_kw < 0), _first(down, pv, pv < down), 0.0)
        net = pv - curtail + out_kw - load - ev_kw
        return (round_like_python(net, 6) + 0.0, round_like_python(out_kw, 6) + 0.0,
                soc_after)

    # ------------------------------------------------------------------------ sessions
    def session_orders(self, session: SessionPlan) -> tuple[np.ndarray, np.ndarray]:
        """Every household's orders for ``session`` (remembered by each brain for its result).

        Returns:
            Wh bought (> 0) or sold (< 0) and the limit price in µEUR/kWh (0 without an order),
            per household and slot of the session (int64 arrays); the order vector of
            :meth:`HouseholdBrain.session_orders`, as :func:`vector_from_intent` converts it.
        """
        for b in self.brains:
            b._sessions[session.name] = session
        net, bat, ev = self._plans()
        cols = list(session.slots)
        if session.kind == SessionKind.DAY_AHEAD:
            buy_kwh = -net[:, cols]
        else:
            gate_h = session.gate_h if session.kind == SessionKind.INTRADAY else None
            buy_kwh = self._deviation_kwh(cols, gate_h, net, bat, ev)
        return self._orders(cols, buy_kwh)

    def _deviation_kwh(self, cols: list[int], gate_h: float | None, net: np.ndarray,
                       bat: np.ndarray, ev: np.ndarray) -> np.ndarray:
        """:meth:`HouseholdBrain._deviation_orders` before the conversion to orders."""
        soc = self._soc_kwh()
        flex = np.array([b.flex_kw for b in self.brains], dtype=float).reshape(net.shape)
        bought = np.array([b.intraday_bought_kwh for b in self.brains],
                          dtype=float).reshape(net.shape)
        want = np.empty((len(self.brains), len(cols)))
        for k, t in enumerate(cols):
            load, pv = self.load_kw[:, t], self.pv_kw[:, t]
            if gate_h is not None:
                shrink = forecast_shrink(t, t - gate_h)
                load = load + shrink * (self.load_fc_kw[:, t] - load)
                pv = pv + shrink * (self.pv_fc_kw[:, t] - pv)
            expected, _, soc = self._simulate_slot(soc, load, pv, bat[:, t] + flex[:, t],
                                                   ev[:, t])
            want[:, k] = -(expected - net[:, t]) - bought[:, t]
        return want

    def _orders(self, cols: list[int], buy_kwh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`HouseholdBrain._orders` followed by the conversion to contract units."""
        q = round_like_python(buy_kwh * DT_H, 3) + 0.0
        none = np.abs(q) < MIN_ORDER_KWH
        qty_wh = np.where(none, 0.0, np.rint(q * WH_PER_KWH)).astype(np.int64)
        price = np.where(q > 0, self.buy_ueur[:, cols], self.sell_ueur[:, cols])
        return qty_wh, np.where(none, 0, price)

    # ------------------------------------------------------------------------ delivery
    def deliver(self, slot: int) -> list[Delivery]:
        """Every household's :meth:`HouseholdBrain.deliver` of ``slot``, in row order.

        Households that are not exactly one slot behind (``slot`` delivered already, or an
        earlier slot missing) deliver one by one.
        """
        ready = [len(b.deliveries) == slot and 0 <= slot < SLOTS for b in self.brains]
        if not all(ready):
            return [b.deliver(slot) for b in self.brains]
        _, bat, ev = self._plans()
        flex = np.array([b.flex_kw[slot] for b in self.brains], dtype=float)
        net, out_kw, soc = self._simulate_slot(self._soc_kwh(), self.load_kw[:, slot],
                                               self.pv_kw[:, slot], bat[:, slot] + flex,
                                               ev[:, slot])
        soc_6 = round_like_python(soc, 6)
        out = []
        for b, n, p, e, e6 in zip(self.brains, net.tolist(), out_kw.tolist(), soc.tolist(),
                                  soc_6.tolist(), strict=True):
            d = Delivery(slot, n, p, e6)
            b._soc_kwh = e
            b.deliveries[slot] = d
            out.append(d)
        return out
