"""What training/studies/experiments.py runs: the recipe's flags, the loss-weighting ablation,
the cross-validation ensembles of the recipe rounds, round 12's masked fine-tuning and the
window sweep, each as planned before its runs (the plans and outcomes:
docs/results/rounds.md, "Plans as fixed before the runs")."""

from training.recipes import SHIPPED_OVERRIDES, SUBSET_OVERRIDES, as_flags

# The flags chosen per subset (RECIPE) and those of the shipped fd001 (2026.11.4, round 6) and
# fd003 (2026.11.5, round 7) networks (SHIPPED, the baselines of rounds 8-11): training/recipes.py.
RECIPE = {subset: as_flags(o) for subset, o in SUBSET_OVERRIDES.items()}
SHIPPED = {subset: as_flags(o) for subset, o in SHIPPED_OVERRIDES.items()}
# Why and what it found: docs/results/rounds.md, "Plans as fixed before the runs" (ABLATION_BASE).
ABLATION_BASE = {
    "FD001": ["--window-length", "30", "--epochs", "20", "--patience", "6"],
    "FD002": ["--window-length", "30", "--epochs", "20", "--patience", "6", "--train-stride", "3"],
}
ABLATION: dict[str, list[str]] = {
    "single-task": ["--loss-weighting", "single"],
    "fixed 0.5/0.5": ["--loss-weighting", "fixed", "--rul-weight", "0.5", "--health-weight", "0.5"],
    "fixed 0.7/0.3": ["--loss-weighting", "fixed", "--rul-weight", "0.7", "--health-weight", "0.3"],
    "uncertainty": ["--loss-weighting", "uncertainty"],
    # The committed row was trained by `grad-balance` (1/||g|| weights, an EMA of 0.9 on the
    # norms), since folded into `gaba` (loss_weighting.py); this is its nearest gaba form.
    "grad-balance": [
        "--loss-weighting",
        "gaba",
        "--gaba-ema",
        "0.9",
        "--gaba-warmup",
        "0",
        "--gaba-floor",
        "0",
    ],
    "pcgrad": ["--loss-weighting", "pcgrad", "--rul-weight", "0.5", "--health-weight", "0.5"],
}
ABLATION_SUBSETS = ("FD001", "FD002")
# Why and what it found: docs/results/rounds.md, "Plans as fixed before the runs" (CV_FOLDS).
CV_FOLDS = 5
CV_SUBSETS = ("FD001", "FD003")
# Split seeds are one tuple for every subset of the variant, or a tuple per subset.
Splits = tuple[int, ...] | dict[str, tuple[int, ...]]
CV_VARIANTS: dict[str, tuple[dict[str, list[str]], Splits]] = {
    "cv5": ({s: RECIPE[s] for s in CV_SUBSETS}, (0, 1, 2)),
    "cv5-w130": ({s: ["--window-length", "130"] for s in CV_SUBSETS}, (0,)),
    "cv5-w30": ({"FD003": ["--window-length", "30"]}, (0,)),
    "cv5-w40": ({"FD003": ["--window-length", "40"]}, (0,)),
    # Why and what it found: docs/results/rounds.md, "Plans as fixed before the runs" ("cv5-h128").
    "cv5-h128": (
        {s: [*RECIPE[s], "--lstm-hidden", "128"] for s in CV_SUBSETS},
        {"FD001": (0, 1, 2), "FD003": (0,)},
    ),
    # Why and what it found: docs/results/rounds.md, "Plans as fixed before the runs" ("cv5-pool").
    "cv5-pool": ({"FD003": SHIPPED["FD003"]}, (0, 1, 2)),
    # Why and what it found: docs/results/rounds.md, "Plans as fixed before the runs" ("cv5-h128-pool").
    "cv5-h128-pool": (
        {
            "FD001": [*RECIPE["FD001"], "--lstm-hidden", "128", "--extra-train-subsets", "FD003"],
            "FD003": [*RECIPE["FD003"], "--lstm-hidden", "128", "--extra-train-subsets", "FD001"],
        },
        (0,),
    ),
    # Why and what it found: docs/results/rounds.md, "Plans as fixed before the runs" ("cv5-pool-varying").
    "cv5-pool-varying": (
        {"FD003": [*SHIPPED["FD003"], "--sensors", "varying"]},
        (0, 1, 2),
    ),
    # Why and what it found: docs/results/rounds.md, "Plans as fixed before the runs" ("cv5-anneal15").
    "cv5-anneal15": ({s: [*SHIPPED[s], "--epochs", "15", "--patience", "15"] for s in CV_SUBSETS}, (0,)),
    # Why and what it found: docs/results/rounds.md, "Plans as fixed before the runs" ("cv5-uncertainty").
    "cv5-uncertainty": ({s: [*SHIPPED[s], "--loss-weighting", "uncertainty"] for s in CV_SUBSETS}, (0,)),
}


# Why and what it found: docs/results/rounds.md, "Plans as fixed before the runs" (SHIPPED_CHECKPOINTS).
SHIPPED_CHECKPOINTS = {
    "FD001": [f"models/checkpoints/fd001/fold{k}.pt" for k in range(5)],
    "FD002": [f"models/checkpoints/fd002/seed{k}.pt" for k in range(3)],
    "FD003": [f"models/checkpoints/fd003/fold{k}.pt" for k in range(5)],
    "FD004": [f"models/checkpoints/fd004/seed{k}.pt" for k in range(3)],
}
MASK_FINETUNE = ["--mask-prob", "0.5", "--epochs", "8", "--patience", "8", "--lr", "1e-4"]


def cv_runs(variant: str) -> list[tuple[int, str]]:
    """(split seed, subset) of every cross-validation ensemble of `variant`, split by split."""
    flags, splits = CV_VARIANTS[variant]
    seeds = {s: splits[s] if isinstance(splits, dict) else splits for s in flags}
    return [(split, s) for split in sorted(set().union(*seeds.values())) for s in flags if split in seeds[s]]


# The validation runs that chose the recipe (RESULTS.md), with the flags they ran with; the
# first ones used the longer schedule of the defaults then (60 epochs, patience 20).
LONG = ["--epochs", "60", "--patience", "20"]
SWEEP: list[tuple[str, str, list[int], list[str]]] = [  # (name, subset, seeds, flags)
    ("w30", "FD001", [0, 1], ["--window-length", "30", *LONG]),
    ("w40", "FD001", [0, 1], ["--window-length", "40", *LONG]),
    ("w50", "FD001", [0, 1], ["--window-length", "50"]),
    ("w40-ema", "FD001", [0], ["--window-length", "40", "--ema-decay", "0.99"]),
    ("w20", "FD002", [0], ["--window-length", "20", *LONG]),
    ("w30", "FD002", [0], ["--window-length", "30", *LONG]),
    ("w40", "FD002", [0], ["--window-length", "40"]),
    # round 3 (session 2): regularisation against the validation -> test gap, on the FD001 recipe
    ("w50-ema995", "FD001", [0], ["--window-length", "50", "--ema-decay", "0.995"]),
    ("w50-noise", "FD001", [0], ["--window-length", "50", "--noise-std", "0.1", "--weight-decay", "1e-3"]),
    ("w50-grad-balance", "FD001", [0], ["--window-length", "50", *ABLATION["grad-balance"]]),
    ("w50-b128", "FD001", [0], ["--window-length", "50", "--batch-size", "128", "--lr", "2.5e-4"]),
    # round 4 (session 3): do windows longer than 50 keep helping the one-condition subsets?
    ("w60", "FD001", [0], ["--window-length", "60"]),
    ("w60", "FD003", [0], ["--window-length", "60"]),
]
METRICS = (
    "rmse", "phm08_score", "rmse_capped_truth", "phm08_score_capped_truth", "health_accuracy",
    "health_macro_f1", "interval_coverage", "interval_coverage_capped_truth", "interval_mean_width",
    "rmse_all_windows_capped",
    "validation_rmse", "training_seconds",
)  # fmt: skip


# The book study (training/studies/book_losses.py, issue "The book's three loss designs"): the
# ablation's cheap base, the book's own 30-cycle window, 20 epochs with every epoch seen
# (patience 20), each epoch's test RMSE recorded read-only.
BOOK_ONE_CONDITION = ["--window-length", "30", "--epochs", "20", "--patience", "20", "--record-test-rmse"]
BOOK_SIX_CONDITIONS = [*BOOK_ONE_CONDITION, "--train-stride", "3"]
BOOK_BASE: dict[str, list[str]] = {
    "FD001": BOOK_ONE_CONDITION,
    "FD002": BOOK_SIX_CONDITIONS,
    "FD003": BOOK_ONE_CONDITION,
    "FD004": BOOK_SIX_CONDITIONS,
}
# Methods, with rul-train's flags; "shipped" is the weighting every shipped model trains with.
BOOK_METHODS: dict[str, list[str]] = {
    "single-task": ["--loss-weighting", "single"],
    "fixed 0.5/0.5": ["--loss-weighting", "fixed", "--rul-weight", "0.5", "--health-weight", "0.5"],
    "shipped (fixed 0.7/0.3)": ["--loss-weighting", "fixed", "--rul-weight", "0.7", "--health-weight", "0.3"],
    "amnl": ["--loss-weighting", "amnl"],  # the current edition: no loss normalisation
    "gaba": ["--loss-weighting", "gaba"],
    "grace": ["--loss-weighting", "grace"],
    "gradnorm": ["--loss-weighting", "gradnorm"],
    "dwa": ["--loss-weighting", "dwa"],
}
BOOK_SHIPPED = "shipped (fixed 0.7/0.3)"
# The six-condition subsets first: the book's largest claims are there.
BOOK_ORDER = ("FD002", "FD004", "FD001", "FD003")
BOOK_SEEDS = 3
# The book's figures (test RMSE, mean +- std as it prints them): AMNL on each subset, single-task
# and GABA on FD002 (GABA's NASA score 224).
BOOK_CLAIMS = {
    ("amnl", "FD001"): "10.43 ± 1.94",
    ("amnl", "FD002"): "6.74 ± 0.91",
    ("amnl", "FD003"): "9.51 ± 1.74",
    ("amnl", "FD004"): "8.16 ± 2.17",
    ("single-task", "FD002"): "27.27",
    ("gaba", "FD002"): "7.53 ± 0.65 (NASA 224)",
}
