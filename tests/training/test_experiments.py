from training.experiments import ABLATION, RECIPE_WEIGHTING, plan, tables_markdown


def test_plan_runs_main_table_then_ablation_without_retraining_the_recipe():
    jobs = plan("all", seeds=3, ablation_seeds=2, weightings=list(ABLATION))
    main = [j for j in jobs if j.experiment == "main"]
    assert len(main) == 3 * 4  # every subset, every seed, once
    ablation = [j for j in jobs if j.experiment.startswith("ablation/")]
    assert len(ablation) == (len(ABLATION) - 1) * 2 * 2  # the recipe's weighting reuses main runs
    assert not any(j.experiment == f"ablation/{RECIPE_WEIGHTING}" for j in jobs)
    assert ablation[0].flags == ["--loss-weighting", "single"] and ablation[0].seed == 0


def test_tables_markdown_formats_mean_and_std():
    stats = {"rmse": 11.234, "phm08_score": 250.0, "health_accuracy": 0.9, "health_macro_f1": 0.85,
             "interval_coverage": 0.9, "interval_mean_width": 40.0, "rmse_all_windows_capped": 12.0,
             "validation_rmse": 11.0, "training_seconds": 100.0}  # fmt: skip
    entry = {"seeds": [0, 1], "mean": stats, "std": {k: 0.5 for k in stats}}
    table = tables_markdown({"main": {"FD001": entry}, "ablation/uncertainty": {"FD001": entry}})
    assert "| FD001 | 2 | 11.23 ± 0.50 | 250 ± 0 | 0.900 ± 0.500 |" in table
    assert "| uncertainty | 11.23 ± 0.50 | 11.00 ± 0.50 | 0.850 ± 0.500 | – | – | – |" in table
