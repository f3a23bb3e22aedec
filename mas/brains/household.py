"""The household brain: HEMS and trading agent of one home (VDG paper §4.2, §4.4).

It forecasts its load and PV with a multiplicative Gaussian error drawn from its own generator,
updates the forecast as the delivery comes closer (:meth:`HouseholdBrain.forecast_kw`),
optimises its battery and EV against retail prices plus the DSO's coordination price (one LP,
or QP with a proximal term, :mod:`mas.brains.hems`), turns the plan into
orders for the local sessions, offers flexibility when the DSO calls, and simulates its own
delivery: the battery follows its setpoints within what its state of charge allows, and the
meter records what really flowed.

Conventions: power in kW, positive ``net_export_kw`` leaves the home; hourly slots.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from market.vdg import Direction, SessionKind
from mas.brains.auctioneer import SessionPlan
from mas.brains.hems import PlanInputs, closed_form_arrays, solve_plan
from mas.errors import PlanError
from mas.scenario import Forecast
from mas.world import SLOTS, HouseholdSpec

log = logging.getLogger(__name__)

DT_H = 1.0
MIN_ORDER_KWH = 0.001  # one Wh: the market's grid
DAY_AHEAD_GATE_H = SessionPlan("da", SessionKind.DAY_AHEAD.value, (0,)).gate_h
"""When the day-ahead forecast is made: the day-ahead gate, hours from the day's start."""


def forecast_shrink(slot: int, lead_h: float) -> float:
    """How much of the day-ahead forecast error of ``slot`` is left ``lead_h`` hours before it.

    ``sqrt(lead_h / day-ahead lead)``, clipped to [0, 1] (see :meth:`HouseholdBrain.forecast_kw`).
    """
    return math.sqrt(min(max(lead_h / (slot - DAY_AHEAD_GATE_H), 0.0), 1.0))


@dataclass(frozen=True, slots=True)
class Plan:
    """A household's schedule for the day.

    Attributes:
        net_export_kw: planned net export per slot (import negative).
        battery_kw: planned battery injection per slot (discharge positive).
        ev_kw: planned EV charging per slot.
        pv_kw: planned PV output per slot.
        cost_eur: the plan's expected energy cost at retail prices (without coordination price).
    """

    net_export_kw: tuple[float, ...]
    battery_kw: tuple[float, ...]
    ev_kw: tuple[float, ...]
    pv_kw: tuple[float, ...]
    cost_eur: float


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What a household wants to trade in one session, per slot of the session.

    Attributes:
        qty_kwh: per slot, kWh to buy (> 0) or sell (< 0); 0 for no order.
        price_eur_per_kwh: per slot, the limit price (0 where no order).
    """

    qty_kwh: tuple[float, ...]
    price_eur_per_kwh: tuple[float, ...]

    @property
    def empty(self) -> bool:
        """No order in any slot."""
        return all(abs(q) < MIN_ORDER_KWH for q in self.qty_kwh)


@dataclass(frozen=True, slots=True)
class FlexOfferIntent:
    """A flexibility offer: power and the least price accepted."""

    p_kw: float
    price_eur_per_kwh: float


@dataclass(frozen=True, slots=True)
class Delivery:
    """What really happened in one slot at the meter.

    Attributes:
        slot: the slot.
        net_export_kw: metered net export (import negative).
        battery_kw: battery injection actually realised.
        soc_kwh: battery energy at the end of the slot.
    """

    slot: int
    net_export_kw: float
    battery_kw: float
    soc_kwh: float


class HouseholdBrain:
    """HEMS + trading agent of one household.

    Args:
        spec: the household.
        import_eur_per_kwh: retail import price per slot.
        export_eur_per_kwh: feed-in price per slot.
        forecast: the forecast error model.
        rng: the household's own generator (forecast noise).
        salt_seed: seed of the commit salts (commitments are deterministic in it).
        prox_eur_per_kw2: weight of the proximal term ``(w/2)·Σ(p − p_prev)²`` that keeps a
            re-plan close to the previous one in coordination rounds (the ADMM proximal step;
            without it the LP's answers jump between corners and the rounds oscillate).
    """

    def __init__(self, spec: HouseholdSpec, import_eur_per_kwh: Sequence[float],
                 export_eur_per_kwh: Sequence[float], forecast: Forecast,
                 rng: np.random.Generator, salt_seed: int = 0,
                 prox_eur_per_kw2: float = 0.02) -> None:
        self.spec = spec
        self.prox = prox_eur_per_kw2
        self.price_import = np.asarray(import_eur_per_kwh, dtype=float)
        self.price_export = np.asarray(export_eur_per_kwh, dtype=float)
        self.salt_seed = salt_seed
        true_load = np.asarray(spec.load_kw)
        true_pv = np.asarray(spec.pv_avail_kw)
        noise_load = rng.standard_normal(SLOTS)
        noise_pv = rng.standard_normal(SLOTS)
        self.load_fc_kw = np.clip(true_load * (1 + forecast.load_sigma_frac * noise_load), 0, None)
        self.pv_fc_kw = np.clip(true_pv * (1 + forecast.pv_sigma_frac * noise_pv), 0, None)
        self.lam = np.zeros(SLOTS)
        self.plan: Plan | None = None
        self.intraday_bought_kwh = np.zeros(SLOTS)  # cleared in intraday sessions, buy > 0
        self._sessions: dict[str, SessionPlan] = {}
        self.flex_kw = np.zeros(SLOTS)  # accepted flexibility: + more injection, − less
        self.deliveries: dict[int, Delivery] = {}
        self._soc_kwh = spec.battery.e_max_kwh / 2 if spec.battery else 0.0
        self._ev_available = np.asarray(spec.ev_available, dtype=float)
        gap = self.price_import - self.price_export
        self._buy_limit = [round(float(x), 6) for x in spec.buy_value_frac * self.price_import]
        self._sell_limit = [round(float(x), 6)
                            for x in self.price_export + spec.sell_markup_frac * gap]
        self._closed_form = spec.battery is None and spec.ev is None and bool(np.all(gap >= 0))

    # ------------------------------------------------------------------------ optimisation
    def plan_inputs(self, target_import_kw: np.ndarray | None = None) -> PlanInputs:
        """The data of the next plan solve (forecasts, prices, ``lam``, battery energy)."""
        s = self.spec
        return PlanInputs(
            load_kw=self.load_fc_kw, pv_avail_kw=self.pv_fc_kw,
            import_eur_per_kwh=self.price_import, export_eur_per_kwh=self.price_export,
            lam_eur_per_kwh=self.lam, e_init_kwh=self._soc_kwh,
            ev_available=self._ev_available, ev_need_kwh=s.ev_need_kwh,
            prox_eur_per_kw2=self.prox, target_import_kw=target_import_kw, dt_h=DT_H)

    def make_plan(self, lam_eur_per_kwh: Sequence[float] | None = None,
                  target_import_kw: Sequence[float] | None = None) -> Plan:
        """Optimise the day against retail prices plus the coordination price ``lam``.

        In a coordination round (``lam`` given) a re-plan is kept close to the previous plan by
        the proximal term. ``target_import_kw`` replaces the previous plan as the point the
        proximal term pulls towards: the local step of consensus ADMM, ``argmin f(x) + λ·x +
        (w/2)·‖x − target‖²`` with ``w`` = ``prox_eur_per_kw2``. The problem and how it is
        solved: :mod:`mas.brains.hems`; :func:`make_plans` makes the plans of many households at
        once (the same plans).

        Raises:
            PlanError: the problem is not solved to optimality, or an input is malformed.
        """
        target = self._next_target(lam_eur_per_kwh, target_import_kw)
        s = self.spec
        sol = solve_plan(s.pv, s.battery, s.ev, self.plan_inputs(target),
                         owner=f"household {s.id}")
        return self._take_plan(_round_kw(sol.export_kw - sol.import_kw),
                               _round_kw(sol.battery_kw), _round_kw(sol.ev_kw),
                               _round_kw(sol.pv_kw))

    @property
    def closed_form(self) -> bool:
        """Whether its plan has a closed form (no battery, no EV, import never below export)."""
        return self._closed_form

    def _next_target(self, lam_eur_per_kwh: Sequence[float] | None,
                     target_import_kw: Sequence[float] | None) -> np.ndarray | None:
        """Check a plan request, take up its ``lam``; the proximal target of the solve."""
        target = None
        if target_import_kw is not None:
            target = np.asarray(target_import_kw, dtype=float)
            if target.shape != (SLOTS,) or not np.isfinite(target).all():
                raise PlanError(f"household {self.spec.id}: target_import_kw must be {SLOTS} "
                                f"finite numbers, got shape {target.shape}", "bad-input")
            if self.prox <= 0:
                raise PlanError(f"household {self.spec.id}: target_import_kw needs a positive "
                                f"prox_eur_per_kw2, got {self.prox}", "bad-input")
        if lam_eur_per_kwh is not None:
            lam = np.asarray(lam_eur_per_kwh, dtype=float)
            if lam.shape != (SLOTS,) or not np.isfinite(lam).all():
                raise PlanError(f"household {self.spec.id}: lam_eur_per_kwh must be {SLOTS} "
                                f"finite numbers, got shape {lam.shape}", "bad-input")
            self.lam = lam
        if target is None and self.plan is not None and lam_eur_per_kwh is not None \
                and self.prox > 0:
            target = -np.asarray(self.plan.net_export_kw)
        return target

    def _take_plan(self, net: np.ndarray, bat: np.ndarray, ev: np.ndarray,
                   pv: np.ndarray) -> Plan:
        """Keep the plan of these (rounded) schedules, priced at retail prices."""
        cost = _retail_cost_eur(net, self.price_import, self.price_export)
        self.plan = Plan(tuple(net.tolist()), tuple(bat.tolist()), tuple(ev.tolist()),
                         tuple(pv.tolist()), float(cost))
        return self.plan

    def _need_plan(self) -> Plan:
        if self.plan is None:
            return self.make_plan()
        return self.plan

    # ------------------------------------------------------------------------ trading
    def buy_limit(self, slot: int) -> float:
        """The most it pays for a kWh in ``slot`` (a share of the retail import price)."""
        return self._buy_limit[slot]

    def sell_limit(self, slot: int) -> float:
        """The least it accepts for a kWh in ``slot`` (feed-in plus a markup)."""
        return self._sell_limit[slot]

    def day_ahead_orders(self, slots: Sequence[int]) -> OrderIntent:
        """Orders for the day-ahead session: the planned net position of every slot."""
        net = np.asarray(self._need_plan().net_export_kw)
        return self._orders(slots, -net)

    def forecast_kw(self, slot: int, lead_h: float) -> tuple[float, float]:
        """Load and PV forecast of ``slot`` made ``lead_h`` hours before it starts.

        The error of a forecast grows with its lead time like a random walk: its standard
        deviation with the square root of the lead. The day-ahead forecast (made at the
        day-ahead gate) carries the drawn error; a later one carries the same error scaled by
        ``sqrt(lead_h / day-ahead lead)`` (no new draw, so a day's forecasts are consistent and
        its random numbers do not depend on how many sessions it has); at lead 0 the forecast is
        the truth.
        """
        shrink = forecast_shrink(slot, lead_h)
        load = self.spec.load_kw[slot]
        pv = self.spec.pv_avail_kw[slot]
        return (load + shrink * (self.load_fc_kw[slot] - load),
                pv + shrink * (self.pv_fc_kw[slot] - pv))

    def intraday_orders(self, slots: Sequence[int], gate_h: float) -> OrderIntent:
        """Orders for an intraday session closing at ``gate_h`` (hours from the day's start).

        Trades the deviation of the updated forecast (:meth:`forecast_kw` at the session's lead
        time) of each slot from the household's position: the plan it bid day-ahead (what did
        not clear there is the supplier's) plus what it cleared in earlier intraday sessions.
        The battery follows its setpoints from its present state of charge; ``slots`` start at
        the first slot not delivered yet.
        """
        return self._deviation_orders(slots, gate_h)

    def real_time_orders(self, slots: Sequence[int]) -> OrderIntent:
        """Orders for a real-time session: the deviation of the nowcast from the position.

        The nowcast of the next slots is exact (the meter's own short-term view); what differs
        from the position (the plan plus what cleared in intraday sessions) is bought or sold
        locally before the slot starts.
        """
        return self._deviation_orders(slots, None)

    def _deviation_orders(self, slots: Sequence[int], gate_h: float | None) -> OrderIntent:
        """Buy what the expected net export falls short of the position (sell the excess).

        Expected from the forecast made at ``gate_h``, or from the true data (``None``).
        """
        plan = self._need_plan().net_export_kw
        want = {}
        soc = self._soc_kwh
        for t in slots:
            load, pv = (None, None) if gate_h is None else self.forecast_kw(t, t - gate_h)
            expected, _, soc = self._simulate_slot(t, soc, load, pv)
            want[t] = -(expected - plan[t]) - self.intraday_bought_kwh[t]
        return self._orders(slots, want)

    def session_orders(self, session: SessionPlan) -> OrderIntent:
        """Orders for any session of the day, by its kind (remembered for its result)."""
        self._sessions[session.name] = session
        if session.kind == SessionKind.DAY_AHEAD:
            return self.day_ahead_orders(session.slots)
        if session.kind == SessionKind.INTRADAY:
            return self.intraday_orders(session.slots, session.gate_h)
        return self.real_time_orders(session.slots)

    def session_result(self, name: str, cleared_wh: Sequence[int]) -> None:
        """Take up what cleared for it in session ``name`` (Wh bought > 0 per slot).

        Intraday trades move the position later sessions trade against; day-ahead and
        real-time results change nothing (the plan is the day-ahead position).

        Raises:
            PlanError: no orders were made for ``name`` here, or ``cleared_wh`` does not have
                one value per slot of the session.
        """
        session = self._sessions.get(name)
        if session is None:
            raise PlanError(f"household {self.spec.id}: result of session {name!r}, which it "
                            f"made no orders for", "bad-input")
        if len(cleared_wh) != len(session.slots):
            raise PlanError(f"household {self.spec.id}: cleared_wh of session {name!r} has "
                            f"{len(cleared_wh)} values for {len(session.slots)} slots",
                            "bad-input")
        if session.kind == SessionKind.INTRADAY:
            self.intraday_bought_kwh[list(session.slots)] += np.asarray(cleared_wh) / 1000

    def _orders(self, slots: Sequence[int], buy_kwh: Mapping[int, float] | np.ndarray
                ) -> OrderIntent:
        qty, price = [], []
        for t in slots:
            q = round(float(buy_kwh[t]) * DT_H, 3) + 0.0
            if abs(q) < MIN_ORDER_KWH:
                qty.append(0.0)
                price.append(0.0)
            elif q > 0:
                qty.append(q)
                price.append(self.buy_limit(t))
            else:
                qty.append(q)
                price.append(self.sell_limit(t))
        return OrderIntent(tuple(qty), tuple(price))

    def salt(self, session: int) -> bytes:
        """The 32-byte salt of this household's commitment in an on-chain session."""
        text = f"vdg-salt:{self.salt_seed}:{self.spec.id}:{session}"
        return hashlib.sha256(text.encode()).digest()

    # ------------------------------------------------------------------------ flexibility
    def flex_offer(self, slot: int, direction: Direction) -> FlexOfferIntent | None:
        """What it can offer to a DSO call in ``slot``: battery headroom (and PV curtailment).

        ``up`` (more injection) uses discharge headroom; ``down`` (less injection) charge
        headroom and curtailable PV. Returns ``None`` when there is nothing to offer.
        """
        plan = self._need_plan()
        bat = self.spec.battery
        p = 0.0
        if Direction(direction) is Direction.UP:
            if bat is not None:
                p = bat.p_discharge_max_kw - plan.battery_kw[slot] - self.flex_kw[slot]
            price = self.price_import[slot]
        else:
            if bat is not None:
                p = bat.p_charge_max_kw + plan.battery_kw[slot] + self.flex_kw[slot]
            p += plan.pv_kw[slot]
            price = 0.02
        p = round(max(p, 0.0), 3)
        if p < 0.01:
            return None
        return FlexOfferIntent(p, round(float(price), 6))

    def accept_flex(self, slot: int, direction: Direction, p_kw: float) -> None:
        """Commit to an accepted flexibility offer (changes the setpoint of ``slot``)."""
        sign = 1.0 if Direction(direction) is Direction.UP else -1.0
        self.flex_kw[slot] += sign * p_kw

    # ------------------------------------------------------------------------ delivery
    def _simulate_slot(self, t: int, soc: float, load: float | None = None,
                       pv: float | None = None) -> tuple[float, float, float]:
        """Net export, battery injection and battery energy after slot ``t``.

        With the true load and PV unless ``load`` and ``pv`` (kW, a forecast) are given.
        """
        plan = self._need_plan()
        s = self.spec
        load = s.load_kw[t] if load is None else load
        pv = s.pv_avail_kw[t] if pv is None else pv
        ev = plan.ev_kw[t]  # charging power drawn
        bat_kw = plan.battery_kw[t] + self.flex_kw[t]
        curtail = 0.0
        if s.battery is not None:
            b = s.battery
            bat_kw = min(max(bat_kw, -b.p_charge_max_kw), b.p_discharge_max_kw)
            if bat_kw >= 0:
                bat_kw = min(bat_kw, max(soc - b.e_min_kwh, 0.0) * b.eta_discharge / DT_H)
                soc -= bat_kw * DT_H / b.eta_discharge
            else:
                room = max(b.e_max_kwh - soc, 0.0) / (b.eta_charge * DT_H)
                bat_kw = -min(-bat_kw, room)
                soc -= bat_kw * DT_H * b.eta_charge
        else:
            if bat_kw < 0:  # a down offer without a battery is PV curtailment
                curtail = min(-bat_kw, pv)
            bat_kw = 0.0
        net = pv - curtail + bat_kw - load - ev
        return round(net, 6) + 0.0, round(bat_kw, 6) + 0.0, soc

    def deliver(self, slot: int) -> Delivery:
        """Run slot ``slot`` for real and read the meter (idempotent per slot).

        Time does not wait for messages: slots before ``slot`` that were not delivered yet (a
        lost request) are run first, in order.
        """
        if slot in self.deliveries:
            return self.deliveries[slot]
        if not 0 <= slot < SLOTS:
            raise PlanError(f"household {self.spec.id}: slot must be in 0..{SLOTS - 1}, got "
                            f"{slot}", "bad-input")
        for t in range(len(self.deliveries), slot + 1):
            net, bat, self._soc_kwh = self._simulate_slot(t, self._soc_kwh)
            self.deliveries[t] = Delivery(t, net, bat, round(self._soc_kwh, 6))
        return self.deliveries[slot]

    def metered_export_kwh(self) -> tuple[float, ...]:
        """Metered net export per delivered slot, kWh (import negative)."""
        return tuple(float(self.deliveries[t].net_export_kw * DT_H)
                     for t in sorted(self.deliveries))


def _round_kw(x: np.ndarray) -> np.ndarray:
    """A schedule on the plan's grid: 1e-6 kW, no negative zero (elementwise, any shape)."""
    return np.round(x, 6) + 0.0


def _retail_cost_eur(net_export_kw: np.ndarray, import_eur_per_kwh: np.ndarray,
                     export_eur_per_kwh: np.ndarray) -> np.ndarray:
    """The retail energy cost of net export schedules, along the last axis.

    Any leading shape: a household's row is bitwise its own cost.
    """
    imp = np.clip(-net_export_kw, 0, None)
    exp = np.clip(net_export_kw, 0, None)
    return np.sum(import_eur_per_kwh * imp - export_eur_per_kwh * exp, axis=-1) * DT_H


def make_plans(brains: Sequence[HouseholdBrain],
               lam_eur_per_kwh: Sequence[Sequence[float] | None],
               target_import_kw: Sequence[Sequence[float] | None]) -> list[Plan]:
    """:meth:`HouseholdBrain.make_plan` of many households: the same plans, cheaper.

    The households whose plan has a closed form (:attr:`HouseholdBrain.closed_form`) are solved
    together, elementwise over one array per input (a household's plan is bitwise the one it
    makes alone); the others one by one.

    Args:
        brains: the households.
        lam_eur_per_kwh: per household, its ``lam`` (or ``None``).
        target_import_kw: per household, its proximal target (or ``None``).

    Raises:
        PlanError: as :meth:`HouseholdBrain.make_plan` (the households before the failing one
            have their new plans).
    """
    if not len(brains) == len(lam_eur_per_kwh) == len(target_import_kw):
        raise PlanError(f"make_plans: {len(brains)} households, {len(lam_eur_per_kwh)} lam and "
                        f"{len(target_import_kw)} targets", "bad-input")
    plans: list[Plan | None] = [None] * len(brains)
    groups: dict[float | None, list[tuple[int, np.ndarray | None]]] = {}
    for k, (brain, lam, target) in enumerate(zip(brains, lam_eur_per_kwh, target_import_kw,
                                                 strict=True)):
        if not brain.closed_form:
            plans[k] = brain.make_plan(lam, target)
            continue
        tgt = brain._next_target(lam, target)
        prox = brain.prox if tgt is not None and brain.prox > 0 else None
        groups.setdefault(prox, []).append((k, tgt))
    for prox, members in groups.items():
        group = [brains[k] for k, _ in members]
        x = PlanInputs(
            load_kw=np.stack([b.load_fc_kw for b in group]),
            pv_avail_kw=np.stack([b.pv_fc_kw for b in group]),
            import_eur_per_kwh=np.stack([b.price_import for b in group]),
            export_eur_per_kwh=np.stack([b.price_export for b in group]),
            lam_eur_per_kwh=np.stack([b.lam for b in group]), e_init_kwh=0.0,
            ev_available=np.zeros(SLOTS), ev_need_kwh=0.0, prox_eur_per_kw2=prox or 0.0,
            target_import_kw=None if prox is None
            else np.stack([t for _, t in members if t is not None]),
            dt_h=DT_H)
        imp, exp, pv, _ = closed_form_arrays(x)
        net = _round_kw(exp - imp)
        costs = _retail_cost_eur(net, x.import_eur_per_kwh, x.export_eur_per_kwh).tolist()
        zeros = (0.0,) * SLOTS  # _round_kw of the closed form's battery and EV
        for (k, _), brain, row, pv_row, cost in zip(members, group, net.tolist(),
                                                    _round_kw(pv).tolist(), costs, strict=True):
            brain.plan = plans[k] = Plan(tuple(row), zeros, zeros, tuple(pv_row), cost)
    return [p for p in plans if p is not None]
