"""Shared fixtures for the grid tests: small constructed networks and cached feeders."""

from __future__ import annotations

import itertools
import warnings

import pandapower as pp
import pytest

from grid.feeders import Feeder, from_pandapower, load_feeder


def line_net(n_buses: int = 4, r_ohm_per_km: float = 0.2, x_ohm_per_km: float = 0.08,
             length_km: float = 0.1, load_kw: float = 10.0, vn_kv: float = 0.4) -> object:
    """A chain of ``n_buses`` buses fed from bus 0, one load at each feeder bus."""
    net = pp.create_empty_network(sn_mva=1.0)
    buses = [pp.create_bus(net, vn_kv=vn_kv, min_vm_pu=0.9, max_vm_pu=1.1) for _ in range(n_buses)]
    pp.create_ext_grid(net, buses[0], vm_pu=1.0)
    for a, b in itertools.pairwise(buses):
        pp.create_line_from_parameters(net, a, b, length_km=length_km,
                                       r_ohm_per_km=r_ohm_per_km, x_ohm_per_km=x_ohm_per_km,
                                       c_nf_per_km=0.0, max_i_ka=1.0)
    for b in buses[1:]:
        pp.create_load(net, b, p_mw=load_kw / 1000, q_mvar=load_kw / 4000)
    return net


@pytest.fixture
def chain4() -> Feeder:
    return from_pandapower(line_net(), "chain4")


@pytest.fixture(scope="session")
def feeder_cache() -> dict[str, Feeder]:
    return {}


@pytest.fixture
def feeder(feeder_cache: dict[str, Feeder]):
    def get(name: str) -> Feeder:
        if name not in feeder_cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                feeder_cache[name] = load_feeder(name)
        return feeder_cache[name]

    return get
