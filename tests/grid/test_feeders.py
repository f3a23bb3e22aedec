import networkx as nx
import pandapower as pp
import pytest

from grid.errors import FeederError, NonRadialError
from grid.feeders import (
    SIMBENCH_LV_CODES,
    describe,
    feeder_names,
    from_pandapower,
    load_feeder,
)
from tests.grid.conftest import line_net


def _is_rooted_tree(f) -> bool:
    return nx.is_arborescence(f.graph) and f.buses[0] == f.root and f.graph.in_degree(f.root) == 0


def test_case33bw_is_a_33_bus_tree_without_its_open_tie_lines(feeder):
    f = feeder("case33bw")
    assert f.n_buses == 33
    assert _is_rooted_tree(f)
    assert f.graph.number_of_edges() == 32  # 37 lines, the 5 tie lines out of service
    assert len(f.loads) == 32
    # parents come before children
    seen = set()
    for b in f.buses:
        p = f.parent(b)
        assert p is None or p in seen
        seen.add(b)


def test_branch_per_unit_values_follow_the_line_data(feeder):
    f = feeder("case33bw")
    br = f.branch(1)
    assert br.parent == 0
    assert br.r_ohm == pytest.approx(0.0922)
    z_base = 12.66**2 / f.s_base_mva
    assert br.r_pu == pytest.approx(0.0922 / z_base)
    assert br.x_pu == pytest.approx(0.047 / z_base)


@pytest.mark.parametrize("name", ["kerber-dorfnetz", "cigre-lv"])
def test_pandapower_feeders_with_transformers_build_as_trees(feeder, name):
    f = feeder(name)
    assert _is_rooted_tree(f)
    trafos = [b for b in f.branches() if b.kind == "trafo"]
    assert trafos, "the transformer must be a branch below the root"
    vn = f.graph.nodes
    assert all(b.parent == f.root or vn[b.parent]["vn_kv"] > vn[b.child]["vn_kv"] for b in trafos)


@pytest.mark.parametrize("code", ["1-LV-rural1--0-sw", "1-LV-semiurb4--1-sw", "1-LV-urban6--2-sw"])
def test_simbench_lv_feeders_build_with_profiles(feeder, code):
    f = feeder(code)
    assert _is_rooted_tree(f)
    assert f.has_profiles
    assert len(f.loads) > 10
    first = f.branch(f.children(f.root)[0])
    assert first.kind == "trafo"
    assert f.v_root_pu == pytest.approx(1.025)


def test_simbench_variants_carry_more_pv_and_storage(feeder):
    base, future = feeder("1-LV-rural1--0-sw"), feeder("1-LV-rural1--2-sw")
    assert sum(a.p_kw for a in future.sgens) > sum(a.p_kw for a in base.sgens)
    assert len(future.storages) > len(base.storages) == 0


def test_catalogue_lists_the_required_feeders():
    names = feeder_names()
    for required in ("case33bw", "kerber-dorfnetz", "cigre-lv"):
        assert required in names
    for grid in ("rural1", "semiurb4", "urban6"):
        for scen in (0, 1, 2):
            assert f"1-LV-{grid}--{scen}-sw" in SIMBENCH_LV_CODES


def test_unknown_feeder_is_a_clear_error():
    with pytest.raises(FeederError, match="unknown feeder 'atlantis'"):
        load_feeder("atlantis")


def test_cycle_is_reported_with_its_buses():
    net = line_net(4)
    pp.create_line_from_parameters(net, 3, 1, length_km=0.1, r_ohm_per_km=0.2,
                                   x_ohm_per_km=0.08, c_nf_per_km=0.0, max_i_ka=1.0)
    with pytest.raises(NonRadialError, match="not radial") as info:
        from_pandapower(net, "loop")
    assert set(info.value.cycle) == {1, 2, 3}


def test_open_switch_breaks_the_cycle():
    net = line_net(4)
    loop = pp.create_line_from_parameters(net, 3, 1, length_km=0.1, r_ohm_per_km=0.2,
                                          x_ohm_per_km=0.08, c_nf_per_km=0.0, max_i_ka=1.0)
    pp.create_switch(net, bus=3, element=loop, et="l", closed=False)
    f = from_pandapower(net, "opened")
    assert f.graph.number_of_edges() == 3


def test_out_of_service_line_cuts_the_bus_off(caplog):
    net = line_net(4)
    net.line.at[2, "in_service"] = False  # 2 -> 3
    f = from_pandapower(net, "cut")
    assert 3 not in f.buses
    assert [a.bus for a in f.loads] == [1, 2]
    assert "not connected" in caplog.text


def test_closed_bus_switch_merges_buses():
    net = line_net(3)
    extra = pp.create_bus(net, vn_kv=0.4)
    pp.create_switch(net, bus=2, element=extra, et="b", closed=True)
    pp.create_load(net, extra, p_mw=0.001)
    f = from_pandapower(net, "merged")
    assert f.n_buses == 3
    assert [a.bus for a in f.loads].count(2) == 2


def test_parallel_lines_merge_into_their_equivalent():
    net = line_net(2, r_ohm_per_km=0.2, x_ohm_per_km=0.1, length_km=1.0)
    pp.create_line_from_parameters(net, 0, 1, length_km=1.0, r_ohm_per_km=0.2,
                                   x_ohm_per_km=0.1, c_nf_per_km=0.0, max_i_ka=1.0)
    f = from_pandapower(net, "parallel")
    assert f.branch(1).r_ohm == pytest.approx(0.1)
    assert f.branch(1).x_ohm == pytest.approx(0.05)


@pytest.mark.parametrize(("r", "x", "match"), [(-0.1, 0.1, "negative impedance"),
                                               (0.0, 0.0, "zero impedance"),
                                               (float("nan"), 0.1, "non-finite")])
def test_bad_impedance_names_the_line_and_value(r, x, match):
    net = line_net(3)
    net.line.at[1, "r_ohm_per_km"] = r
    net.line.at[1, "x_ohm_per_km"] = x
    with pytest.raises(FeederError, match=match) as info:
        from_pandapower(net, "bad")
    assert "line 1" in str(info.value)


def test_pandapower_json_file_round_trip(tmp_path):
    path = tmp_path / "mine.json"
    pp.to_json(line_net(5), str(path))
    f = load_feeder(str(path))
    assert f.n_buses == 5
    assert f.source == f"file:{path}"


def test_missing_or_bad_json_file_is_a_feeder_error(tmp_path):
    with pytest.raises(FeederError, match="does not exist"):
        load_feeder(str(tmp_path / "none.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(FeederError, match="not a pandapower network"):
        load_feeder(str(bad))


def test_transformer_tap_counts_only_with_a_tap_changer_type():
    net = pp.create_empty_network(sn_mva=1.0)
    hv, lv = pp.create_bus(net, vn_kv=20.0), pp.create_bus(net, vn_kv=0.4)
    pp.create_ext_grid(net, hv)
    t = pp.create_transformer(net, hv, lv, std_type="0.4 MVA 20/0.4 kV")
    net.trafo.at[t, "tap_pos"] = -2
    net.trafo.at[t, "tap_changer_type"] = None
    assert from_pandapower(net, "t").branch(lv).tau == pytest.approx(1.0)
    net.trafo.at[t, "tap_changer_type"] = "Ratio"
    net.trafo.at[t, "tap_side"] = "hv"
    step = float(net.trafo.at[t, "tap_step_percent"]) / 100
    neutral = float(net.trafo.at[t, "tap_neutral"])
    assert from_pandapower(net, "t").branch(lv).tau == pytest.approx(1 + (-2 - neutral) * step)


def test_describe_counts(feeder):
    row = describe(feeder("case33bw"))
    assert row["buses"] == 33
    assert row["profiles"] == "default day"


def test_line_between_voltage_levels_is_an_inconsistent_unit_error():
    net = line_net(3)
    net.bus.at[2, "vn_kv"] = 20.0
    with pytest.raises(FeederError, match=r"line 1 joins bus 1 at 0.4 kV and bus 2 at 20.0 kV"):
        from_pandapower(net, "mixed")


@pytest.mark.parametrize("kv", [0.0, -0.4, float("nan")])
def test_bus_without_a_positive_nominal_voltage_is_refused(kv):
    net = line_net(3)
    net.bus.at[1, "vn_kv"] = kv
    with pytest.raises(FeederError, match="bus 1 has vn_kv"):
        from_pandapower(net, "novolt")
