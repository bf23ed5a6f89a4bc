from training.studies.experiments import (
    ABLATION,
    ABLATION_BASE,
    CV_FOLDS,
    CV_SUBSETS,
    CV_VARIANTS,
    RECIPE,
    cv_runs,
    plan,
    tables_markdown,
)


def test_plan_runs_main_table_then_cross_validation_then_ablation_seed_by_seed():
    jobs = plan("all", seeds=3, ablation_seeds=2, weightings=list(ABLATION))
    main = [j for j in jobs if j.experiment == "main"]
    assert len(main) == 3 * 4  # every subset, every seed
    assert main[0].flags == RECIPE["FD001"]
    n_cv = CV_FOLDS * sum(len(cv_runs(variant)) for variant in CV_VARIANTS)
    cv = jobs[len(main) : len(main) + n_cv]
    assert {j.experiment for j in cv} == {
        "cv5-split0",
        "cv5-split1",
        "cv5-split2",
        "cv5-w130-split0",
        "cv5-w30-split0",
        "cv5-w40-split0",
        "cv5-h128-split0",
        "cv5-h128-split1",
        "cv5-h128-split2",
        "cv5-pool-split0",
        "cv5-pool-split1",
        "cv5-pool-split2",
        "cv5-h128-pool-split0",
        "cv5-pool-varying-split0",
        "cv5-pool-varying-split1",
        "cv5-pool-varying-split2",
        "cv5-anneal15-split0",
        "cv5-uncertainty-split0",
    }
    assert cv[1].subset == "FD003" and cv[1].seed == 0 and cv[1].experiment == "cv5-split0"
    assert cv[1].flags == [*RECIPE["FD003"], "--folds", "5", "--fold", "0", "--split-seed", "0"]
    w40 = [j for j in cv if j.experiment == "cv5-w40-split0"]
    assert {j.subset for j in w40} == {"FD003"}  # a variant may cover one subset only
    assert w40[-1].flags == ["--window-length", "40", "--folds", "5", "--fold", "4", "--split-seed", "0"]
    h128 = [j for j in cv if j.experiment.startswith("cv5-h128-split")]
    assert h128[-1].flags == [*RECIPE["FD001"], "--lstm-hidden", "128", "--folds", "5", "--fold", "4",
                              "--split-seed", "2"]  # fmt: skip
    # split seeds per subset: FD003 only in split 0, FD001 in 0, 1, 2
    assert cv_runs("cv5-h128") == [(0, "FD001"), (0, "FD003"), (1, "FD001"), (2, "FD001")]
    assert sum(j.subset == "FD003" for j in h128) == CV_FOLDS
    pooled = [j for j in cv if j.experiment == "cv5-pool-split2"]
    assert {j.subset for j in pooled} == {"FD003"} and len(pooled) == CV_FOLDS
    assert pooled[0].flags[:4] == [*RECIPE["FD003"], "--extra-train-subsets", "FD001"]
    assert sorted({j.seed for j in cv}) == list(range(CV_FOLDS))  # member k: seed k, fold k
    ablation = jobs[len(main) + len(cv) :]
    assert len(ablation) == len(ABLATION) * 2 * 2
    assert (
        ablation[0].flags == [*ABLATION_BASE["FD001"], "--loss-weighting", "single"] and ablation[0].seed == 0
    )
    assert {j.seed for j in ablation[: len(ABLATION) * 2]} == {0}


def test_plan_runs_only_the_cross_validation_variants_named():
    jobs = plan("cv", seeds=3, ablation_seeds=2, weightings=[], cv_variants=["cv5-w130"])
    assert [j.experiment for j in jobs] == ["cv5-w130-split0"] * CV_FOLDS * len(CV_SUBSETS)
    assert [(j.subset, j.seed) for j in jobs[:3]] == [("FD001", 0), ("FD003", 0), ("FD001", 1)]


def test_tables_markdown_formats_mean_and_std():
    stats = {"rmse": 11.234, "phm08_score": 250.0, "rmse_capped_truth": 10.0,
             "phm08_score_capped_truth": 200.0, "health_accuracy": 0.9, "health_macro_f1": 0.85,
             "interval_coverage": 0.9, "interval_mean_width": 40.0, "rmse_all_windows_capped": 12.0,
             "validation_rmse": 11.0, "training_seconds": 100.0}  # fmt: skip
    entry = {"seeds": [0, 1], "mean": stats, "std": {k: 0.5 for k in stats}}
    table = tables_markdown(
        {"main": {"FD001": entry}, "cv5-ensemble": {"FD003": entry}, "ablation/uncertainty": {"FD001": entry}}
    )
    assert "| FD001 | 2 | 11.23 ± 0.50 | 250 ± 0 | 10.00 ± 0.50 | 200 ± 0 | 0.900 ± 0.500 |" in table
    assert "| uncertainty | 11.23 ± 0.50 | 11.00 ± 0.50 | 0.850 ± 0.500 | – | – | – |" in table
    assert "### 5-fold cross-validation ensembles" in table and "| subset | split seeds |" in table
    assert "| FD003 | 2 | 11.23 ± 0.50 | 250 ± 0 | 10.00 ± 0.50 |" in table


def test_summarize_lists_each_cross_validation_ensemble_once_per_split_seed(tmp_path, monkeypatch):
    import training.studies.experiments as experiments

    jobs = plan("cv", seeds=0, ablation_seeds=0, weightings=[], cv_variants=["cv5", "cv5-w40"])
    for job in jobs:  # every member "trained": the files only have to exist
        job.checkpoint(tmp_path).parent.mkdir(parents=True, exist_ok=True)
        job.checkpoint(tmp_path).touch()
    stats = {m: 1.0 for m in experiments.METRICS}
    monkeypatch.setattr(experiments, "evaluate_ensemble", lambda paths, data_dir: {**stats, "n": len(paths)})
    monkeypatch.setattr(experiments, "evaluate_checkpoint", lambda path, data_dir: stats)
    facts = {
        "metrics": {"validation": {"rmse_all_windows_capped": 1.0, "best_epoch": 3}},
        "training_seconds": 1,
    }
    monkeypatch.setattr(experiments.torch, "load", lambda *args, **kwargs: facts)
    summary = experiments.summarize(jobs, tmp_path, "unused")
    assert summary["cv5-ensemble"]["FD001"]["seeds"] == [0, 1, 2]
    assert summary["cv5-ensemble"]["FD003"]["seeds"] == [0, 1, 2]
    assert summary["cv5-w40-ensemble"] == {"FD003": summary["cv5-w40-ensemble"]["FD003"]}  # FD003 only
    assert summary["cv5-w40-ensemble"]["FD003"]["seeds"] == [0]
    assert [r["n"] for r in summary["cv5-w40-ensemble"]["FD003"]["runs"]] == [CV_FOLDS]
    assert summary["cv5-w40-split0"]["FD003"]["seeds"] == list(range(CV_FOLDS))
