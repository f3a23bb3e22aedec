"""The MDA study: seeded, and showing the properties the mechanisms claim."""

import numpy as np
import pytest

from market.errors import MechanismError
from market.experiment_mda import best_misreport_gain_neur, random_book, run_mda_experiment


def test_study_is_seeded_and_shows_the_claimed_properties():
    kwargs = {"n_traders": (8, 64), "replicates": 4, "deviators": 2, "seed": 3}
    points = run_mda_experiment(**kwargs)
    assert points == run_mda_experiment(**kwargs)
    by = {(p.mechanism, p.n_traders): p for p in points}
    for n in (8, 64):
        assert by["efficient", n].efficiency == pytest.approx(1.0)
        assert by["uniform", n].efficiency == pytest.approx(1.0)
        assert by["huang", n].misreport_gain_eur == 0.0
        assert by["pay-as-bid", n].surplus_share == pytest.approx(1.0)
        assert by["huang", n].efficiency <= 1.0
    # asymptotic efficiency: the trade-reduction loss shrinks as the market grows
    assert by["huang", 64].efficiency > by["huang", 8].efficiency
    assert by["pay-as-bid", 64].misreport_gain_rate > 0


def test_huang_resists_every_shift_on_a_larger_book():
    table = random_book(40, np.random.default_rng(7))
    assert all(best_misreport_gain_neur(table, "huang", i) == 0 for i in range(40))
    assert any(best_misreport_gain_neur(table, "pay-as-bid", i) > 0 for i in range(40))


def test_bad_study_parameters():
    with pytest.raises(MechanismError, match="unknown mechanism 'vcg'"):
        run_mda_experiment(mechanisms=("vcg",))
    with pytest.raises(MechanismError, match="n_traders must be >= 2"):
        run_mda_experiment(n_traders=(1,))
