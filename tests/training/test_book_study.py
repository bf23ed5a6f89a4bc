"""The book study's bookkeeping: the test-selected figure and the paired adoption rule."""

import pytest

from training.studies.book_losses import BASE, METHODS, book_protocol_figures, jobs
from training.studies.book_tables import paired_difference


def _epoch(epoch, capped, uncapped=0.0, phm=0.0):
    return {"epoch": epoch, "test_rmse_capped_truth_readonly": capped, "test_rmse_readonly": uncapped,
            "test_phm08_capped_truth_readonly": phm}  # fmt: skip


def test_book_protocol_figures_take_the_epoch_of_lowest_capped_test_rmse():
    history = [_epoch(0, 20.0, 25.0, 900.0), _epoch(1, 14.0, 16.0, 300.0), _epoch(2, 15.0, 15.5, 280.0)]
    assert book_protocol_figures(history) == {
        "epoch": 1, "rmse_capped_truth": 14.0, "rmse": 16.0, "phm08_score_capped_truth": 300.0
    }  # fmt: skip


def test_paired_difference_wins_only_below_two_standard_errors():
    base = {s: {"validation_rmse": v} for s, v in enumerate([15.0, 16.0, 17.0])}
    better = {s: {"validation_rmse": v} for s, v in enumerate([14.0, 15.1, 15.9])}  # d = -1, -0.9, -1.1
    result = paired_difference(better, base)
    assert result["n"] == 3 and result["mean"] == pytest.approx(-1.0)
    assert result["se"] == pytest.approx(0.1 / 3**0.5) and result["wins"] is True
    noisy = {s: {"validation_rmse": v} for s, v in enumerate([13.0, 17.0, 17.0])}  # d = -2, +1, 0
    assert paired_difference(noisy, base)["wins"] is False
    assert paired_difference({0: {"validation_rmse": 1.0}}, base) == {"n": 1, "mean": -14.0, "se": None,
                                                                      "wins": False}  # fmt: skip


def test_jobs_put_the_six_condition_subsets_first_and_record_test_rmse_read_only():
    planned = jobs()
    assert len(planned) == 3 * 4 * len(METHODS)
    assert [j.subset for j in planned[: 2 * len(METHODS)]] == ["FD002"] * len(METHODS) + ["FD004"] * len(
        METHODS
    )
    assert all("--record-test-rmse" in BASE[s] for s in BASE)
    assert {j.flags[j.flags.index("--loss-weighting") + 1] for j in planned} == {
        "single", "fixed", "amnl", "gaba", "grace", "gradnorm", "dwa"
    }  # fmt: skip
