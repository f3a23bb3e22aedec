"""Hypothesis strategies for the market tests, and an independent reference for the curves."""

from __future__ import annotations

from hypothesis import strategies as st

from market.orders import Order, OrderTable

SIDES = ("buy", "sell")


@st.composite
def orders(
    draw: st.DrawFn,
    *,
    min_size: int = 0,
    max_size: int = 14,
    slots: int = 1,
    max_wh: int = 40,
    max_cents: int = 12,
) -> list[Order]:
    """A list of orders with unique ids, small Wh quantities and prices on a coarse cent grid.

    The coarse grid makes equal prices (ties inside a side, and curves meeting at one price) common.
    """
    n = draw(st.integers(min_value=min_size, max_value=max_size))
    ids = draw(
        st.lists(
            st.text(alphabet="abcxyz0123", min_size=1, max_size=3),
            min_size=n,
            max_size=n,
            unique=True,
        )
    )
    result = []
    for i, order_id in enumerate(ids):
        side = draw(st.sampled_from(SIDES))
        wh = draw(st.integers(min_value=1, max_value=max_wh))
        cents = draw(st.integers(min_value=0, max_value=max_cents))
        slot = draw(st.integers(min_value=0, max_value=slots - 1))
        result.append(
            Order(
                id=order_id,
                owner=f"h{i % 5}",
                side=side,
                quantity_kwh=wh / 1000,
                price_eur_per_kwh=cents / 100,
                slot=slot,
            )
        )
    return result


def table(orders_: list[Order]) -> OrderTable:
    """The columnar form of a list of orders."""
    return OrderTable.from_orders(orders_)


def reference_break_even(
    orders_: list[Order],
) -> tuple[int, str | None, str | None]:
    """Efficient volume and break-even pair by expanding every order into 1 Wh units.

    Independent of :mod:`market.auction`: unit ``u`` of the demand curve trades against unit ``u``
    of the supply curve iff the buyer's price >= the seller's price; ``Q*`` is the number of such
    units and the break-even pair owns unit ``Q*`` on each side.
    """
    buyers = sorted((o for o in orders_ if o.is_buy), key=lambda o: (-o.price_ueur_per_kwh, o.id))
    sellers = sorted(
        (o for o in orders_ if not o.is_buy), key=lambda o: (o.price_ueur_per_kwh, o.id)
    )
    demand = [o for o in buyers for _ in range(o.quantity_wh)]
    supply = [o for o in sellers for _ in range(o.quantity_wh)]
    q_star = 0
    for b, s in zip(demand, supply, strict=False):
        if b.price_ueur_per_kwh >= s.price_ueur_per_kwh:
            q_star += 1
        else:
            break
    if not q_star:
        return 0, None, None
    return q_star, demand[q_star - 1].id, supply[q_star - 1].id


def max_welfare_neur(orders_: list[Order]) -> int:
    """Largest gains from trade of a single slot (unit expansion, greedy is optimal)."""
    buyers = sorted(
        (o.price_ueur_per_kwh for o in orders_ if o.is_buy for _ in range(o.quantity_wh)),
        reverse=True,
    )
    sellers = sorted(o.price_ueur_per_kwh for o in orders_ if not o.is_buy
                     for _ in range(o.quantity_wh))
    return sum(max(b - s, 0) for b, s in zip(buyers, sellers, strict=False))
