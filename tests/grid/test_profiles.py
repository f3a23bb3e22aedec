import numpy as np
import pytest

from grid.errors import ProfileError
from grid.profiles import check_horizon, day_profiles


def test_simbench_day_has_one_column_per_device(feeder):
    f = feeder("1-LV-rural1--2-sw")
    pr = day_profiles(f, "2016-06-21")
    assert pr.periods == 96
    assert pr.load_p_kw.shape == (96, len(f.loads))
    assert pr.pv_p_avail_kw.shape == (96, len(pr.pv))
    assert len(pr.batteries) == sum(1 for a in f.storages if a.e_max_kwh > 0) > 0
    assert np.all(pr.pv_p_avail_kw >= 0)
    assert pr.pv_p_avail_kw[:16].sum() == 0  # no sun before 4 am
    assert pr.pv_p_avail_kw[40:56].sum() > 0


def test_coarser_steps_average_the_quarter_hours(feeder):
    f = feeder("1-LV-rural1--0-sw")
    q = day_profiles(f, "2016-03-01", 24, 15)
    h = day_profiles(f, "2016-03-01", 24, 60)
    np.testing.assert_allclose(h.load_p_kw, q.load_p_kw.reshape(24, 4, -1).mean(axis=1))


def test_finer_steps_hold_the_quarter_hour_value(feeder):
    f = feeder("1-LV-rural1--0-sw")
    q = day_profiles(f, "2016-03-01", 2, 15)
    five = day_profiles(f, "2016-03-01", 2, 5)
    np.testing.assert_allclose(five.load_p_kw, np.repeat(q.load_p_kw, 3, axis=0))


def test_simbench_day_outside_2016_is_refused(feeder):
    f = feeder("1-LV-rural1--0-sw")
    with pytest.raises(ProfileError, match="2016 only"):
        day_profiles(f, "2015-12-31")
    with pytest.raises(ProfileError, match="2016 only"):
        day_profiles(f, "2016-12-31", hours=48)


@pytest.mark.parametrize("step", [7, 0, 90, 2.5, True])
def test_step_that_does_not_divide_the_hour_is_refused(step):
    with pytest.raises(ProfileError, match="step_min"):
        check_horizon(24, step)


@pytest.mark.parametrize("hours", [0, -1, float("nan"), 0.1])
def test_bad_horizon_is_refused(hours):
    with pytest.raises(ProfileError, match="hours"):
        check_horizon(hours, 15)


def test_bad_day_string_is_refused(feeder):
    with pytest.raises(ProfileError, match="YYYY-MM-DD"):
        day_profiles(feeder("case33bw"), "21/06/2016")


def test_default_day_scales_nominal_loads_and_adds_clear_sky_pv(feeder):
    f = feeder("case33bw")
    pr = day_profiles(f, "2016-06-21", 24, 60)
    assert pr.source == "default day"
    nominal = np.array([a.p_kw for a in f.loads])
    assert np.all(pr.load_p_kw <= nominal + 1e-9)
    assert pr.load_p_kw.max(axis=0).min() > 0.3 * nominal.min()
    load_buses = {a.bus for a in f.loads}
    assert len(pr.pv) == pytest.approx(0.4 * len(load_buses), abs=1)
    noon = pr.pv_p_avail_kw[12]
    rated = np.array([s.p_rated_kw for s in pr.pv])
    assert np.all(noon > 0.5 * rated)
    assert np.all(pr.pv_p_avail_kw[0] == 0)
    winter = day_profiles(f, "2016-12-21", 24, 60)
    assert winter.pv_p_avail_kw.sum() < 0.5 * pr.pv_p_avail_kw.sum()
