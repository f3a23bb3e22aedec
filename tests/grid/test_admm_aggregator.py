"""The reference aggregator step: averages, residuals, missing nodes and misuse."""

import math

import numpy as np
import pytest

from grid.admm.aggregator import Aggregator, AggregatorError, ReferenceAggregator


def _setup() -> ReferenceAggregator:
    agg = ReferenceAggregator()
    # global 0 copied by nodes 0 and 1, global 1 by nodes 1 and 2, global 2 by node 2 only
    agg.setup(3, [[0], [0, 1], [1, 2]])
    return agg


def test_reference_satisfies_the_protocol() -> None:
    assert isinstance(ReferenceAggregator(), Aggregator)


def test_round_averages_copies_and_reports_residuals() -> None:
    agg = _setup()
    agg.open_round(0, 1.0)
    agg.submit(0, [1.0])
    agg.submit(1, [3.0, 4.0])
    agg.submit(2, [6.0, 5.0])
    res = agg.close_round(2.0)
    np.testing.assert_allclose(res.z, [2.0, 5.0, 5.0])
    # copies: (1-2)², (3-2)², (4-5)², (6-5)², (5-5)²
    assert res.primal_residual == pytest.approx(2.0)
    # z_prev = 0: every copy counts: 2·2² + 2·5² + 5² = 83
    assert res.dual_residual == pytest.approx(2.0 * math.sqrt(83.0))
    assert res.missing == ()
    agg.open_round(1, 1.0)
    for node, x in ((0, [2.0]), (1, [2.0, 5.0]), (2, [5.0, 5.0])):
        agg.submit(node, x)
    res = agg.close_round(1.0)
    assert res.primal_residual == pytest.approx(0.0)
    assert res.dual_residual == pytest.approx(0.0)


def test_missing_node_is_reported_and_its_globals_average_the_rest() -> None:
    agg = _setup()
    agg.open_round(0, 1.0)
    agg.submit(1, [3.0, 4.0])
    agg.submit(2, [6.0, 5.0])
    res = agg.close_round(1.0)
    assert res.missing == (0,)
    np.testing.assert_allclose(res.z, [3.0, 5.0, 5.0])


@pytest.mark.parametrize("bad", ["wrong length", "nan", "unknown node", "no round"])
def test_misuse_is_refused(bad: str) -> None:
    agg = _setup()
    if bad != "no round":
        agg.open_round(0, 1.0)
    node, x = {"wrong length": (1, [1.0]), "nan": (0, [math.nan]),
               "unknown node": (5, [1.0]), "no round": (0, [1.0])}[bad]
    with pytest.raises(AggregatorError):
        agg.submit(node, x)


def test_rounds_must_follow_each_other_and_every_global_needs_a_copy() -> None:
    agg = _setup()
    with pytest.raises(AggregatorError):
        agg.open_round(1, 1.0)
    with pytest.raises(AggregatorError):
        ReferenceAggregator().setup(3, [[0], [1]])
