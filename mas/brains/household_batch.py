"""Many households' session orders and deliveries at once, bitwise as each brain makes them.

:class:`HouseholdBatch` computes what :meth:`HouseholdBrain.session_orders` and
:meth:`HouseholdBrain.deliver` compute for each household, for all of them at once: the slot
recursion of :meth:`HouseholdBrain._simulate_slot` runs on arrays over the households (one
vector step per slot), and the orders come out in contract units (Wh, µEUR/kWh) as
:func:`mas.brains.auctioneer.vector_from_intent` would convert the brain's
:class:`OrderIntent`. Every floating-point operation is the brain's, in the brain's order, and
every ``round(x, n)`` of the brain is reproduced exactly: Python's correctly rounded one on a
Python float (:func:`round_like_python`), numpy's on a numpy float (the brain's values are one
or the other depending on which operand a ``min``/``max`` picked, and the batch follows that).
So what reaches the market and the meter is bitwise the same; ``tests/mas/test_mas_batch.py``
holds the two paths to that on random households whose profiles land on halves of the rounding
grid. The batch reads and updates the brains' own state (plan, flexibility, intraday position,
battery energy, deliveries), so brains driven one by one and in a batch can be mixed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ledger.fixedpoint import INT32_MAX, MICRO_EUR_PER_EUR, UINT32_MAX, WH_PER_KWH
from market.vdg import SessionKind
from mas.brains.auctioneer import SessionPlan, vector_from_intent
from mas.brains.household import (
    DT_H,
    MIN_ORDER_KWH,
    Delivery,
    HouseholdBrain,
    Plan,
    forecast_shrink,
)
from mas.errors import PlanError
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


def _round6(x: np.ndarray, numpy_float: np.ndarray | bool) -> np.ndarray:
    """``round(v, 6)`` of every element as the brain rounds it.

    Numpy's rounding where the brain holds a numpy float (``np.float64.__round__`` is
    ``np.round``, not correctly rounded), Python's elsewhere.
    """
    return np.where(numpy_float, np.round(x, 6), round_like_python(x, 6))


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
        self._plan_cache: tuple[list[Plan], tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None

    # ------------------------------------------------------------------------ state
    def _plans(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Planned net export, battery and EV power per household and slot.

        Stacked again only when a brain's plan changed (plans are frozen objects).
        """
        plans = [b._need_plan() for b in self.brains]
        cached = self._plan_cache
        if cached is None or any(a is not b for a, b in zip(cached[0], plans, strict=True)):
            n = len(plans)
            net, bat, ev = (np.array([getattr(p, f) for p in plans], dtype=float)
                            .reshape(n, SLOTS) for f in ("net_export_kw", "battery_kw", "ev_kw"))
            stacked = (net, bat, ev)
            cached = self._plan_cache = (plans, stacked)
        return cached[1]

    def _soc_kwh(self) -> tuple[np.ndarray, np.ndarray]:
        """Battery energy per household and whether the brain holds it as a numpy float."""
        socs = [b._soc_kwh for b in self.brains]
        return (np.array(socs, dtype=float),
                np.array([isinstance(e, np.floating) for e in socs], dtype=bool))

    def _simulate_slot(self, soc: np.ndarray, soc_np: np.ndarray, load: np.ndarray,
                       pv: np.ndarray, forecast: bool, bat_kw: np.ndarray, ev_kw: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`HouseholdBrain._simulate_slot` of one slot for every household.

        ``bat_kw`` is the setpoint (plan plus flexibility, a numpy float in the brain);
        ``forecast``: load and PV are a forecast (numpy floats in the brain) rather than the
        true data (Python floats). The brain rounds with ``round(v, 6)``, which is numpy's
        rounding for a numpy float and Python's for a Python float, so which type each value
        has there is followed here too (``*_np``: a numpy float in the brain).

        Returns:
            Net export and battery injection (both rounded to 1e-6 kW, no negative zero), the
            battery energy after the slot and whether the brain holds it as a numpy float.
        """
        pc, pd = self.p_charge_max_kw, self.p_discharge_max_kw
        low = -pc > bat_kw
        x = _first(bat_kw, -pc, low)  # max(bat_kw, -pc)
        x_np = ~low
        high = pd < x
        x = _first(x, pd, high)  # min(x, pd)
        x_np &= ~high
        avail = soc - self.e_min_kwh
        empty = avail < 0.0
        lim = _first(avail, 0.0, empty) * self.eta_discharge / DT_H
        cut = lim < x
        x_dis = _first(x, lim, cut)
        dis_np = np.where(cut, soc_np & ~empty, x_np)
        soc_dis = soc - x_dis * DT_H / self.eta_discharge
        room = self.e_max_kwh - soc
        full = room < 0.0
        room = _first(room, 0.0, full) / (self.eta_charge * DT_H)
        neg = -x
        cut = room < neg
        x_ch = -_first(neg, room, cut)
        ch_np = np.where(cut, soc_np & ~full, x_np)
        soc_ch = soc - x_ch * DT_H * self.eta_charge
        b = self.has_battery
        discharging = x >= 0
        out_kw = np.where(b, np.where(discharging, x_dis, x_ch), 0.0)
        out_np = b & np.where(discharging, dis_np, ch_np)
        soc_after = np.where(b, np.where(discharging, soc_dis, soc_ch), soc)
        soc_after_np = np.where(b, soc_np | out_np, soc_np)
        down = -bat_kw  # without a battery, a down offer curtails PV
        curtailing = ~b & (bat_kw < 0)
        pv_less = pv < down
        curtail = np.where(curtailing, _first(down, pv, pv_less), 0.0)
        net = pv - curtail + out_kw - load - ev_kw
        net_np = forecast | (curtailing & ~pv_less) | out_np
        return (_round6(net, net_np) + 0.0, _round6(out_kw, out_np) + 0.0, soc_after,
                soc_after_np)

    # ------------------------------------------------------------------------ sessions
    def session_orders(self, session: SessionPlan) -> tuple[np.ndarray, np.ndarray]:
        """Every household's orders for ``session`` (remembered by each brain for its result).

        Returns:
            Wh bought (> 0) or sold (< 0) and the limit price in µEUR/kWh (0 without an order),
            per household and slot of the session (int64 arrays); the order vector of
            :meth:`HouseholdBrain.session_orders`, as :func:`vector_from_intent` converts it.

        Raises:
            FixedPointError: an order is not representable in contract units (named).
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
        soc, soc_np = self._soc_kwh()
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
            expected, _, soc, soc_np = self._simulate_slot(
                soc, soc_np, load, pv, gate_h is not None, bat[:, t] + flex[:, t], ev[:, t])
            want[:, k] = -(expected - net[:, t]) - bought[:, t]
        return want

    def _orders(self, cols: list[int], buy_kwh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`HouseholdBrain._orders` followed by the conversion to contract units."""
        q = round_like_python(buy_kwh * DT_H, 3) + 0.0
        none = np.abs(q) < MIN_ORDER_KWH
        wh = np.where(none, 0.0, np.rint(q * WH_PER_KWH))
        price = np.where(none, 0, np.where(q > 0, self.buy_ueur[:, cols],
                                           self.sell_ueur[:, cols]))
        bad = ~(np.abs(wh) <= INT32_MAX).all(axis=1) | \
            ~((price >= 0) & (price <= UINT32_MAX)).all(axis=1)
        for i in np.flatnonzero(bad).tolist():  # the brain's own conversion names the field
            intent = self.brains[i]._orders(cols, dict(zip(cols, buy_kwh[i].tolist(), strict=True)))
            vector_from_intent(intent.qty_kwh, intent.price_eur_per_kwh)
            raise PlanError(f"household {self.brains[i].spec.id}: orders not representable "
                            f"in contract units", "bad-input")
        return wh.astype(np.int64), price

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
        soc, soc_np = self._soc_kwh()
        net, out_kw, soc, soc_np = self._simulate_slot(soc, soc_np, self.load_kw[:, slot],
                                                       self.pv_kw[:, slot], False,
                                                       bat[:, slot] + flex, ev[:, slot])
        soc_6 = _round6(soc, soc_np)
        out = []
        f64 = np.float64
        for b, n, p, e, e6, e_np in zip(self.brains, net.tolist(), out_kw.tolist(),
                                        soc.tolist(), soc_6.tolist(), soc_np.tolist(),
                                        strict=True):
            d = Delivery(slot, n, p, f64(e6) if e_np else e6)
            b._soc_kwh = f64(e) if e_np else e
            b.deliveries[slot] = d
            out.append(d)
        return out
