"""One tiny training on FD001, then evaluation and export: the whole offline path."""

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from training.calibration_weights import window_weights
from training.checkpoint import OUTPUT_NAMES, load_checkpoint
from training.config import ModelConfig, TrainConfig
from training.data import extra_subset_names, load_subset
from training.distribution import LEVELS, QuantileBands, quantiles_of
from training.ensemble import build_graph
from training.evaluate import evaluate_checkpoint, rmse_all_windows, torch_predict_fn
from training.export import export, sha256_of
from training.export import main as export_main
from training.intervals import IntervalBands, calibrate_uncapped, interval_bounds
from training.order_check import read_fit, save_fit
from training.parity import FAULT_KINDS, PARITY_TOLERANCE_RUL, faulty_copies, max_abs_diff, onnx_predict_fn
from training.preprocessing import fit_preprocessing
from training.quality_stats import NOISY, SHORT_HISTORY
from training.studies.experiments import evaluate_ensemble
from training.train import main, train
from training.windows import cut_history, last_windows, real_cycles, stack_windows

TINY = ModelConfig(conv_channels=8, lstm_hidden=8, attention_dim=8, head_hidden=8)


@pytest.fixture(scope="module")
def trained(cmapss_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "tiny.pt"
    config = TrainConfig(subset="FD001", data_dir=str(cmapss_dir), out=str(out), epochs=2, seed=1)
    facts = train(config, TINY)
    return out, facts


@pytest.fixture(scope="module")
def exported(trained, cmapss_dir, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("models")
    card = export([str(trained[0])], "tiny", "0.0.1", str(out_dir), str(cmapss_dir))
    return out_dir, card


def test_checkpoint_describes_itself(trained):
    _, checkpoint = load_checkpoint(trained[0])
    assert checkpoint["train_config"]["subset"] == "FD001"
    assert checkpoint["window_length"] == 30
    assert checkpoint["model_config"]["lstm_hidden"] == 8
    # the interval asked for; rul-export calibrates it, once (test_export_writes_card...)
    assert checkpoint["interval"] == {"edges": [30.0, 80.0], "nominal_coverage": 0.9}
    assert len(checkpoint["history"]) == 2
    assert len(checkpoint["split"]["validation_units"]) == 20
    assert checkpoint["metrics"]["validation"]["rmse_all_windows_capped"] > 0


def test_preprocessing_statistics_come_from_training_units_only(trained, cmapss_dir):
    _, checkpoint = load_checkpoint(trained[0])
    train_ids = set(checkpoint["split"]["train_units"])
    assert train_ids.isdisjoint(checkpoint["split"]["validation_units"])
    subset = load_subset("FD001", cmapss_dir)
    expected = fit_preprocessing([u for u in subset.train if u.unit_id in train_ids], 1)
    assert checkpoint["preprocessing"] == expected.to_dict()


def test_export_parity_torch_vs_onnxruntime_on_raw_windows(trained, exported, cmapss_dir):
    out_dir, card = exported
    assert card["parity"]["max_abs_diff_rul"] <= PARITY_TOLERANCE_RUL
    # and again here, independently of export's own check, at batch 100 and batch 1
    graph, _, _ = build_graph([str(trained[0])], str(cmapss_dir))
    windows, _ = last_windows(load_subset("FD001", cmapss_dir).test, 30)
    session = ort.InferenceSession(str(out_dir / "tiny.onnx"), providers=["CPUExecutionProvider"])
    expected = torch_predict_fn(graph)(windows)
    got = dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), {"readings": windows}), strict=True))
    for name in ("rul", "rul_lower", "rul_upper"):  # an open upper bound is +inf in both
        assert max_abs_diff(got[name], expected[name]) <= 1e-3
    assert np.max(np.abs(got["health_probs"] - expected["health_probs"])) <= 1e-4
    single = session.run(["rul"], {"readings": windows[:1]})[0]
    assert abs(float(single[0]) - float(expected["rul"][0])) <= 1e-3


def test_export_writes_card_and_metadata_per_contract(exported):
    out_dir, card = exported
    on_disk = json.loads((out_dir / "tiny.json").read_text())
    assert on_disk == card
    assert card["sha256"] == sha256_of(out_dir / "tiny.onnx")
    assert card["window_length"] == 30 and len(card["input_features"]) == 24
    assert card["health_states"] == ["normal", "degrading", "critical"]
    assert card["health_thresholds"] == {"critical_max": 30, "degrading_max": 80}
    assert card["rul_cap"] == 125.0
    assert card["padding"]["rule"] == "nan"
    assert card["metrics"]["test"]["n_units"] == 100
    model = onnx.load(str(out_dir / "tiny.onnx"))
    metadata = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert metadata == {k: v for k, v in card.items() if k != "sha256"}
    (inp,) = model.graph.input
    assert inp.name == "readings"
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [30, 24]
    assert [o.name for o in model.graph.output] == [
        "rul", "health_probs", "rul_lower", "rul_upper", "quality_flags", "ood_score", "window_flags",
        "rul_quantiles",
    ]  # fmt: skip
    assert set(card["outputs"]) == {o.name for o in model.graph.output}
    distribution = card["distribution"]
    interval = card["interval"]
    assert interval["nominal_coverage"] == 0.9 and interval["edges"] == [30.0, 80.0]
    assert len(interval["half_widths"]) == 3 and len(interval["upper_widths"]) == 3
    assert interval["open_above"] == 125.0
    assert distribution["levels"] == list(LEVELS) and distribution["open_above"] == 125.0
    assert len(distribution["offsets"]) == 3 and [b["cycles"] for b in distribution["short_history"]] == [
        [10, 19], [20, 29]]  # fmt: skip
    assert set(distribution["test_share_below"]) == {str(level) for level in LEVELS}
    quality = card["quality"]
    assert quality["bits"] == {
        "out_of_range": 1,
        "spike": 2,
        "stuck": 4,
        "unknown_condition": 8,
        "inconsistent": 16,
        "noisy": 32,
        "drifting": 64,
    }
    window_bits = {"direction": 1, "repeated_cycles": 2, "short_history": 4, "out_of_order": 8}
    window_bits["discontinuity"] = 16
    assert quality["window_bits"] == window_bits
    window_checks = {"direction", "repeated_cycles", "short_history", "discontinuity"}
    assert set(quality["checks"]) >= {"inconsistent", "noisy", "drifting", *window_checks}
    assert len(quality["direction_slope"]) == 31 and len(quality["consistency_z"]) == len(quality["columns"])
    assert np.shape(quality["noise_mssd"]) == (31, len(quality["columns"]))
    # the continuity checks: per operating condition (1 here) the noise; per history the thresholds
    assert np.shape(quality["health_noise"]) == (1,)
    assert np.shape(quality["level_noise"]) == (1, len(quality["columns"]))
    assert len(quality["step_threshold"]) == 31 and len(quality["level_threshold"]) == 31
    assert np.shape(quality["drift_slope"]) == (31, len(quality["columns"]))
    assert quality["columns"] == card["preprocessing"]["sensors"] and quality["max_masked"] == 3
    assert "80 training units" in quality["calibrated_on"] and "status_rule" in quality
    order = quality["order_detector"]  # the learned order check's summary; its weights: graph and file
    assert set(order) == {"hidden", "parameters", "threshold", "faults_trained_on", "calibrated_on"}
    assert "validation units" in order["calibrated_on"] and "out_of_order" in quality["checks"]
    saved = read_fit(Path(card["training"]["order_check"]))  # written beside the checkpoint, for re-exports
    assert Path(card["training"]["order_check"]).parent == Path(card["training"]["checkpoints"][0]).parent
    assert saved.summary() == order
    stitch = quality["stitch_detector"]  # the learned stitch check's, likewise
    assert set(stitch) == set(order) and "stitched" in stitch["calibrated_on"]
    assert any("another engine" in fault for fault in stitch["faults_trained_on"])
    assert "learned stitch check" in quality["checks"]["discontinuity"]
    assert read_fit(Path(card["training"]["stitch_check"])).summary() == stitch
    assert Path(card["training"]["stitch_check"]).parent == Path(card["training"]["checkpoints"][0]).parent
    assert (
        card["parity"]["max_abs_diff_quality_flags"] == 0 and card["parity"]["max_abs_diff_window_flags"] == 0
    )


def test_checks_and_masking_agree_between_pytorch_and_onnxruntime_on_faulty_windows(
    trained, exported, cmapss_dir
):
    out_dir, _ = exported
    graph, _, subset = build_graph([str(trained[0])], str(cmapss_dir))
    windows, _ = last_windows(subset.test, 30)
    faulty = faulty_copies(windows, graph.quality.stats.column_index)
    expected = torch_predict_fn(graph)(faulty)
    session = ort.InferenceSession(str(out_dir / "tiny.onnx"), providers=["CPUExecutionProvider"])
    got = dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), {"readings": faulty}), strict=True))
    np.testing.assert_array_equal(got["quality_flags"], expected["quality_flags"])
    np.testing.assert_array_equal(got["window_flags"], expected["window_flags"])
    kind = np.arange(len(faulty)) % FAULT_KINDS
    column_faults = kind < 3  # dead, spike, stuck: every copy has its fault flagged
    assert (got["quality_flags"][column_faults] != 0).any(axis=(1, 2)).all()
    assert (got["window_flags"][kind == 6] == SHORT_HISTORY).all()  # 12 real cycles, nothing else wrong
    noise = got["quality_flags"][kind == 8]  # 3 in-window s.d.: noisy, or a spike where a jump is large
    assert (noise != 0).any(axis=(1, 2)).mean() >= 0.9 and (noise & NOISY).any()
    for name in ("rul", "rul_lower", "rul_upper"):
        assert max_abs_diff(got[name], expected[name]) <= 1e-3
    np.testing.assert_allclose(got["ood_score"], expected["ood_score"], rtol=1e-3, atol=1e-4)
    # masked: the faulty column barely moves the answer, where the raw fault would move it far
    clean = torch_predict_fn(graph)(windows)["rul"]
    assert np.mean(np.abs(got["rul"][column_faults] - clean[column_faults])) < 2.0


def test_rul_quantiles_are_monotone_and_agree_between_pytorch_and_onnxruntime(trained, exported, cmapss_dir):
    """On clean, faulty and short windows: the same quantiles in both (+inf where open), non-
    decreasing along the levels, at least 0; the 5 % quantile is the interval's lower bound's
    one-sided form (never above the prediction there) and the card's offsets give them."""
    out_dir, card = exported
    graph, _, subset = build_graph([str(trained[0])], str(cmapss_dir))
    windows, _ = last_windows(subset.test, 30)
    cut = cut_history(
        windows[real_cycles(windows) == 30], np.full(int((real_cycles(windows) == 30).sum()), 15)
    )
    readings = np.concatenate([windows, faulty_copies(windows, graph.quality.stats.column_index), cut])
    expected = torch_predict_fn(graph)(readings)["rul_quantiles"]
    session = ort.InferenceSession(str(out_dir / "tiny.onnx"), providers=["CPUExecutionProvider"])
    got = dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), {"readings": readings}), strict=True))
    assert got["rul_quantiles"].shape == (len(readings), len(LEVELS))
    assert max_abs_diff(got["rul_quantiles"], expected) <= 1e-3
    q = got["rul_quantiles"]
    assert (q[:, 1:] >= q[:, :-1]).all() and (q >= 0).all()
    assert np.isinf(q).any() and np.isfinite(q[:, 0]).all()  # open above the cap, never at the bottom
    bands = QuantileBands(**{k: card["distribution"][k] for k in (
        "levels", "edges", "offsets", "open_above", "calibrated_on", "short_history")})  # fmt: skip
    used = real_cycles(readings)
    np.testing.assert_allclose(quantiles_of(got["rul"], bands, used), q, atol=1e-3)


def test_a_short_history_gets_the_interval_of_its_band(trained, exported, cmapss_dir):
    """Cut to 15 cycles, a window is predicted from the same 15 cycles however it was padded,
    and its interval is that of the 10-19 band (card interval.short_history), wider on
    average than the full window's."""
    out_dir, card = exported
    short = card["interval"]["short_history"]
    assert [band["cycles"] for band in short] == [[10, 19], [20, 29]]
    session = ort.InferenceSession(str(out_dir / "tiny.onnx"), providers=["CPUExecutionProvider"])
    windows, _ = last_windows(load_subset("FD001", cmapss_dir).test, 30)
    windows = windows[real_cycles(windows) == 30]
    cut = cut_history(windows, np.full(len(windows), 15))
    got = dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), {"readings": cut}), strict=True))
    bounds = interval_bounds(got["rul"].astype(np.float64), IntervalBands(**{k: card["interval"][k] for k in (
        "edges", "half_widths", "nominal_coverage", "calibrated_on", "upper_widths", "open_lower_widths",
        "open_above", "short_history")}), np.full(len(cut), 15))  # fmt: skip
    np.testing.assert_allclose(got["rul_lower"], bounds[0], atol=1e-3)
    assert (got["window_flags"] & SHORT_HISTORY).all()
    edge_padded = np.concatenate([np.repeat(windows[:, 15:16], 15, axis=1), windows[:, 15:]], axis=1)
    # the network sees what it trained on: the edge-padded window (no column is masked here)
    assert not got["quality_flags"].any()
    rul_edge = torch_predict_fn(load_checkpoint(trained[0])[0])(edge_padded)["rul"]
    np.testing.assert_allclose(got["rul"], rul_edge, atol=1e-3)


def test_card_test_metrics_equal_torch_evaluation(trained, exported, cmapss_dir):
    _, card = exported
    out_dir = trained[0].parent / "eval"
    metrics = evaluate_checkpoint(str(trained[0]), str(cmapss_dir), str(out_dir))
    for key in ("rmse", "interval_coverage"):
        assert metrics[key] == pytest.approx(card["metrics"]["test"][key], abs=1e-3)
    # every test window: the card's is the served graph's, which reads a window whose order the
    # checks doubt in order of wear (training/wear_order.py), not the bare network's
    models_dir, _ = exported
    served = onnx_predict_fn(models_dir / "tiny.onnx")
    all_windows = rmse_all_windows(served, load_subset("FD001", str(cmapss_dir)).test, 30)
    assert all_windows == pytest.approx(card["metrics"]["test"]["rmse_all_windows_capped"], abs=1e-6)
    assert metrics["rmse_all_windows_capped"] == pytest.approx(all_windows, abs=0.5)
    assert metrics["health_accuracy"] == card["metrics"]["test"]["health_accuracy"]
    rows = (out_dir / "units.csv").read_text().splitlines()
    assert rows[0].startswith("unit,cycles,true_rul,rul,rul_lower,rul_upper,true_health,health_state")
    assert len(rows) == 101 and rows[1].startswith("1,31,112,")
    assert (out_dir / "units.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out_dir / "metrics.json").read_text()) == metrics


def test_rul_train_flags_override_every_config_field(cmapss_dir, tmp_path, capsys):
    out = tmp_path / "cli.pt"
    main(
        [
            "--subset",
            "fd001",
            "--data-dir",
            str(cmapss_dir),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--window-length",
            "20",
            "--conv_channels",
            "4",
            "--lstm-hidden",
            "4",
            "--attention-dim",
            "4",
            "--head-hidden",
            "4",
            "--seed",
            "7",
        ]
    )
    _, checkpoint = load_checkpoint(out)
    assert checkpoint["window_length"] == 20
    assert checkpoint["train_config"]["seed"] == 7
    assert checkpoint["model_config"]["lstm_hidden"] == 4
    assert json.loads(capsys.readouterr().out)["checkpoint"] == str(out)


def test_units_pooled_from_another_subset_train_but_never_validate(cmapss_dir, tmp_path):
    out = str(tmp_path / "pooled.pt")
    config = TrainConfig(subset="FD003", extra_train_subsets="fd001", data_dir=str(cmapss_dir), out=out,
                         epochs=1, folds=5, fold=2, train_stride=25)  # fmt: skip
    facts = train(config, TINY)
    split = facts["split"]
    assert split["extra_train_units"] == {"FD001": list(range(1, 101))}
    assert len(split["train_units"]) == 80 and len(split["validation_units"]) == 20
    assert max(split["train_units"] + split["validation_units"]) == 100  # FD003's own 100 units
    # one preprocessing fitted on FD003's training units and all of FD001's, none validated on
    fd001, fd003 = load_subset("FD001", cmapss_dir), load_subset("FD003", cmapss_dir)
    own = [u for u in fd003.train if u.unit_id in set(split["train_units"])]
    assert facts["preprocessing"] == fit_preprocessing(own + fd001.train, 1).to_dict()
    # exported, it is an FD003 model: calibrated and tested on FD003 units only
    card = export([config.out], "pooled", "0", str(tmp_path), str(cmapss_dir))
    assert card["subsets"] == ["FD003"] and card["training"]["config"]["extra_train_subsets"] == "fd001"
    assert card["preprocessing"]["normalisation"].endswith("(with those of fd001)")
    assert card["metrics"]["test"]["n_units"] == 100


@pytest.mark.parametrize(
    ("subset", "extra", "message"),
    [
        ("FD001", "FD002", "FD002 has 6 operating condition"),
        ("FD003", "FD003", "FD003 is the subset being trained"),
        ("FD001", "FD003,FD009", "unknown subset 'FD009'"),
    ],
)
def test_extra_train_subsets_are_checked(subset, extra, message):
    with pytest.raises(ValueError, match=message):
        extra_subset_names(subset, extra)
    assert extra_subset_names("FD002", " fd004 ,") == ["FD004"]


def test_rul_train_names_a_bad_subset_flag(capsys):
    with pytest.raises(SystemExit):
        main(["--subset", "FD009"])
    assert "--subset 'FD009': expected one of FD001, FD002, FD003, FD004" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--subset", "FD002", "--extra-train-subsets", "FD001"])
    assert "only subsets with the same conditions can be pooled" in capsys.readouterr().err


def test_export_never_trains_and_names_a_missing_learned_check(
    trained, cmapss_dir, tmp_path, monkeypatch, capsys
):
    """rul-train wrote the learned order and stitch checks beside its checkpoint; rul-export
    reads them and trains nothing (training a detector here fails the test); a checkpoint
    without one is refused naming the file and the way to get it."""
    import shutil

    import training.learned_checks

    def no_training(*args, **kwargs):
        raise AssertionError("rul-export trained the order check")

    monkeypatch.setattr(training.learned_checks, "fit_order_detector", no_training)
    monkeypatch.setattr(training.learned_checks, "fit_stitch_detector", no_training)
    assert (Path(trained[0]).parent / "order_check.pt").exists()
    export([str(trained[0])], "again", "0", str(tmp_path), str(cmapss_dir))
    alone = tmp_path / "alone" / "tiny.pt"
    alone.parent.mkdir()
    shutil.copy(trained[0], alone)
    with pytest.raises(SystemExit):
        export_main(["--checkpoint", str(alone), "--name", "x", "--out-dir", str(tmp_path / "out"),
                     "--data-dir", str(cmapss_dir)])  # fmt: skip
    error = capsys.readouterr().err
    assert f"no learned order check at {alone.parent / 'order_check.pt'}" in error
    assert "rul-train writes it beside the checkpoints" in error and "--order-check FILE" in error
    # with its order check but not the stitch check (a checkpoint from before it): refused
    # naming the command that writes it
    shutil.copy(Path(trained[0]).parent / "order_check.pt", alone.parent / "order_check.pt")
    with pytest.raises(SystemExit):
        export_main(["--checkpoint", str(alone), "--name", "x", "--out-dir", str(tmp_path / "out"),
                     "--data-dir", str(cmapss_dir)])  # fmt: skip
    error = capsys.readouterr().err
    assert f"no learned stitch check at {alone.parent / 'stitch_check.pt'}" in error
    assert f"python -m training.learned_checks --checkpoint {alone}" in error


def test_learned_checks_writes_what_a_checkpoint_lacks_and_refuses_another_shape(
    trained, cmapss_dir, tmp_path
):
    """`python -m training.learned_checks` on a checkpoint with its order check but no stitch
    check (one trained before it): trains the stitch check beside it, keeps the order check as
    it was, and the export then goes through; a file for another window length is refused."""
    import shutil

    from training.learned_checks import main as learned_checks_main

    alone = tmp_path / "old" / "tiny.pt"
    alone.parent.mkdir()
    shutil.copy(trained[0], alone)
    shutil.copy(Path(trained[0]).parent / "order_check.pt", alone.parent / "order_check.pt")
    order_before = (alone.parent / "order_check.pt").read_bytes()
    learned_checks_main(["--checkpoint", str(alone), "--data-dir", str(cmapss_dir)])
    assert (alone.parent / "order_check.pt").read_bytes() == order_before
    assert read_fit(alone.parent / "stitch_check.pt").summary()["faults_trained_on"]
    card = export([str(alone)], "old", "0", str(tmp_path / "out"), str(cmapss_dir))
    assert card["training"]["stitch_check"] == str(alone.parent / "stitch_check.pt")
    other = tmp_path / "other" / "tiny.pt"
    other.parent.mkdir()
    shutil.copy(trained[0], other)
    shutil.copy(alone.parent / "order_check.pt", other.parent / "order_check.pt")
    fit = read_fit(alone.parent / "stitch_check.pt")
    fit.state["position"] = [row[:20] for row in fit.state["position"]]  # as if for 20-cycle windows
    save_fit(fit, other.parent / "stitch_check.pt")
    with pytest.raises(ValueError, match="holds a learned check of other sensors or windows"):
        learned_checks_main(["--checkpoint", str(other), "--data-dir", str(cmapss_dir)])


def test_ensemble_export_averages_members_and_recalibrates(trained, cmapss_dir, tmp_path):
    second = tmp_path / "tiny2.pt"
    train(TrainConfig(subset="FD001", data_dir=str(cmapss_dir), out=str(second), epochs=1, seed=2), TINY)
    card = export([str(trained[0]), str(second)], "pair", "0.0.1", str(tmp_path), str(cmapss_dir))
    assert card["ensemble"]["members"] == 2 and card["ensemble"]["seeds"] == [1, 2]
    assert card["parity"]["max_abs_diff_rul"] <= PARITY_TOLERANCE_RUL
    windows, _ = last_windows(load_subset("FD001", cmapss_dir).test[:5], 30)
    members = [torch_predict_fn(load_checkpoint(p)[0])(windows)["rul"] for p in (trained[0], second)]
    session = ort.InferenceSession(str(tmp_path / "pair.onnx"), providers=["CPUExecutionProvider"])
    (rul,) = session.run(["rul"], {"readings": windows})
    np.testing.assert_allclose(rul, (members[0] + members[1]) / 2, atol=1e-3)


def test_ensemble_members_must_share_the_split(trained, cmapss_dir, tmp_path):
    other = tmp_path / "other.pt"
    train(TrainConfig(subset="FD001", data_dir=str(cmapss_dir), out=str(other), epochs=1, split_seed=5), TINY)
    with pytest.raises(ValueError, match="must share them"):
        export([str(trained[0]), str(other)], "bad", "0", str(tmp_path), str(cmapss_dir))


def _fold_member(cmapss_dir, out, fold: int, seed: int = 0) -> str:
    config = TrainConfig(subset="FD001", data_dir=str(cmapss_dir), out=str(out), epochs=1, seed=seed,
                         folds=5, fold=fold, train_stride=10)  # fmt: skip
    train(config, TINY)
    return str(out)


def test_cross_validation_ensemble_is_calibrated_out_of_fold(cmapss_dir, tmp_path):
    paths = [_fold_member(cmapss_dir, tmp_path / f"fold{k}.pt", k, seed=k) for k in (0, 1)]
    card = export(paths, "cv", "0.0.1", str(tmp_path), str(cmapss_dir))
    assert card["ensemble"]["folds"] == [0, 1] and card["ensemble"]["seeds"] == [0, 1]
    assert card["interval"]["calibrated_on"] == (
        "out-of-fold validation windows of 40 training units, true uncapped RUL, test-like weights"
    )
    # The widths are those of each member's own errors on the fold it did not train on, against
    # the uncapped truth, each window weighted test-like.
    subset = load_subset("FD001", cmapss_dir)
    predicted, truth, weights, full = [], [], [], []
    for path in paths:
        member, checkpoint = load_checkpoint(path)
        val_ids = set(checkpoint["split"]["validation_units"])
        units = [u for u in subset.train if u.unit_id in val_ids]
        x_val, y_val = stack_windows(units, 30, None)
        predicted.append(torch_predict_fn(member)(x_val)["rul"])
        truth.append(y_val)
        weights.append(window_weights(units, subset.test, 30))
        full.append(real_cycles(stack_windows(units, 30, None, padding="nan")[0]) == 30)
    at = np.concatenate(full)  # the full-window band: windows with 30 real cycles
    predicted_all, truth_all = np.concatenate(predicted)[at], np.concatenate(truth)[at]
    bands = calibrate_uncapped(
        predicted_all, truth_all, [30.0, 80.0], 0.9, 125.0, "", np.concatenate(weights)[at]
    )
    np.testing.assert_allclose(card["interval"]["half_widths"], bands.half_widths, rtol=1e-5)
    np.testing.assert_allclose(card["interval"]["upper_widths"], bands.upper_widths, rtol=1e-5)
    truth = [np.minimum(t, 125.0) for t in truth]  # the pooled validation RMSE: capped truth
    # training.studies.experiments evaluates the same ensemble in PyTorch: the card's (ONNX) test metrics.
    metrics = evaluate_ensemble([Path(p) for p in paths], str(cmapss_dir))
    checked = ("rmse", "rmse_capped_truth", "health_accuracy", "interval_coverage", "rmse_all_windows_capped")
    for key in checked:
        assert metrics[key] == pytest.approx(card["metrics"]["test"][key], abs=1e-3), key
    # ... and its pooled validation RMSE is over the same out-of-fold windows as the interval.
    pooled = np.sqrt(np.mean((np.concatenate(predicted) - np.concatenate(truth)) ** 2))
    assert metrics["validation_rmse_pooled"] == pytest.approx(pooled, rel=1e-5)


def test_ensemble_refuses_members_whose_validation_units_overlap_but_differ(cmapss_dir, tmp_path):
    folds = (0, 0, 1)  # two members validate on fold 0, one on fold 1
    paths = [_fold_member(cmapss_dir, tmp_path / f"m{i}.pt", fold, seed=i) for i, fold in enumerate(folds)]
    with pytest.raises(ValueError, match="validation units overlap but differ"):
        export(paths, "bad", "0", str(tmp_path), str(cmapss_dir))
