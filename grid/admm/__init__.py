"""Consensus ADMM for the DistFlow OPF and for prosumer markets built on it.

* :mod:`grid.admm.aggregator` — the aggregator step behind a small protocol (the part a smart
  contract runs) and its Python reference implementation;
* :mod:`grid.admm.engine` — the consensus engine over generic nodes, with a per-node and a
  batched path (identical iterates), over-relaxation, residual balancing, Anderson acceleration
  and fault handling;
* :mod:`grid.admm.local` — one node's subproblem, built once in cvxpy (DPP) and re-solved
  through Clarabel directly with only its linear term (and ρ) changing between rounds;
* :mod:`grid.admm.anderson` — safeguarded type-II Anderson acceleration of a fixed-point map;
* :mod:`grid.admm.opf` — the DistFlow OPF split into per-bus or per-subtree nodes, checked
  against :class:`grid.opf.OpfModel`.
"""
