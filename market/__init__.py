"""Economic layer: orders, auctions, VDG sessions, bilateral trading, settlement, metrics.

``market`` may import ``grid``; nothing else of vdg.
"""
