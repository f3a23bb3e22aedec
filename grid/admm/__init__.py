"""Consensus ADMM for the DistFlow OPF and for prosumer markets built on it.

* :mod:`grid.admm.aggregator` — the aggregator step behind a small protocol (the part a smart
  contract runs) and its Python reference implementation;
* :mod:`grid.admm.engine` — the consensus engine over generic nodes (local cvxpy subproblems
  built once as DPP), with a per-node and a batched path, acceleration and fault handling;
* :mod:`grid.admm.opf` — the DistFlow OPF split into per-bus or per-subtree nodes, checked
  against :class:`grid.opf.OpfModel`.
"""
