"""Economic layer: orders, auctions, VDG sessions, bilateral trading, settlement, metrics.

``market`` may import ``grid``; nothing else of vdg.

Modules: :mod:`market.orders` (validated orders, order books), :mod:`market.auction` (Huang et
al.'s multi-unit double auction and baselines), :mod:`market.vdg` (sessions, calendar, flexibility
calls, supplier fallback), :mod:`market.settlement` (contracted vs metered, exact in Wh and nEUR),
:mod:`market.metrics`, :mod:`market.io` (CSV/JSON) and :mod:`market.experiment_mda`. The clearing
rule, units and tie rule are specified in ``docs/market.md``.
"""
