"""Physical layer: radial feeders, DER device models, DistFlow OPF, ADMM, power-flow checks.

``grid`` imports nothing else of vdg; every other layer may build on it.
"""
