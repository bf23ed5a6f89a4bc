import numpy as np

from training.labels import health_labels, rul_per_cycle


def test_rul_per_cycle_run_to_failure_counts_down_to_zero():
    np.testing.assert_array_equal(rul_per_cycle(5), [4, 3, 2, 1, 0])


def test_rul_per_cycle_caps_early_cycles_at_125():
    rul = rul_per_cycle(200)
    assert rul[0] == 125 and rul[74] == 125 and rul[75] == 124 and rul[-1] == 0


def test_rul_per_cycle_test_unit_adds_final_rul_uncapped():
    np.testing.assert_array_equal(rul_per_cycle(3, final_rul=112, cap=None), [114, 113, 112])


def test_health_labels_boundaries_match_design_thresholds():
    # critical <= 30, degrading 31-80, normal > 80
    np.testing.assert_array_equal(health_labels(np.array([0, 30, 31, 80, 81, 125])), [2, 2, 1, 1, 0, 0])
