"""Train the dual-task RUL model on a data set and write a self-describing checkpoint.

    rul-train --dataset fleet.toml --epochs 40 --seed 0 --out-dir runs   # your own fleet
    rul-train --subset FD001 --data-dir ../shared/data/cmapss --out runs/fd001.pt
    rul-train --recipe fd001 --data-dir ../shared/data/cmapss     # the shipped fd001's networks

Reads top to bottom (`train`): the starting point, the data and its split, the windows, the
preprocessing, the network, the loop with early stopping on the validation units, the
checkpoint, and the learned order and stitch checks beside it (training/learned_checks.py).
The interval and the predictive distribution are calibrated by rul-export, once, on every
member's held-out windows.
Every field of TrainConfig and ModelConfig is a flag (`rul-train --help`; training/config.py).
"""

import json
import sys
import time
from dataclasses import asdict, dataclass

import torch

from training.checkpoint import save_checkpoint
from training.config import ModelConfig, TrainConfig, build_parser, planned_runs
from training.constants import DEFAULT_WINDOW_LENGTHS, OTHER_WINDOW_LENGTH
from training.data import Subset, Unit, check_training_units, extra_subset_names, load_data, load_subset
from training.fit import Fitted, Windows, fit
from training.labels import health_labels
from training.learned_checks import write_learned_checks
from training.model import DualTaskModel
from training.preprocessing import (
    PreprocessingStats,
    Preprocessor,
    fit_imputation,
    fit_preprocessing,
)
from training.recipes import RECIPES
from training.windows import split_per_source, stack_windows


def starting_point(config: TrainConfig, model_config: ModelConfig) -> dict | None:
    """With --init-from, the checkpoint to fine-tune, checked against the config; the run
    then takes its network shape, window length, preprocessing and unit split."""
    if not config.init_from:
        return None
    start = torch.load(config.init_from, map_location="cpu", weights_only=False)
    if start["train_config"]["subset"] != config.subset:
        raise ValueError(f"--init-from {config.init_from} was trained on {start['train_config']['subset']}, "
                         f"not {config.subset}")  # fmt: skip
    inherited = ("window_length", "sensors", "extra_train_subsets", "val_fraction", "split_seed", "folds")
    for key in (*inherited, "fold"):
        setattr(config, key, start["train_config"].get(key, getattr(config, key)))
    for key, value in start["model_config"].items():
        setattr(model_config, key, value)
    return start


@dataclass
class TrainingData:
    """What a run trains and validates on: whole units, split into training and validation
    (test units are not touched); units pooled from other subsets (--extra-train-subsets) only
    ever train."""

    subset: Subset
    window_length: int
    train_units: list[Unit]
    val_units: list[Unit]
    extra_units: dict[str, list[Unit]]

    @property
    def pooled_units(self) -> list[Unit]:
        return self.train_units + [u for units in self.extra_units.values() for u in units]


def training_data(config: TrainConfig, init: dict | None) -> TrainingData:
    """The data set (or C-MAPSS subset), its window length and its split by whole units, per
    source file where the data set lists several (windows.split_per_source)."""
    subset = load_data(config.subset, config.dataset, config.data_dir or None)
    check_training_units(subset, config.val_fraction, config.folds)
    subset_window = DEFAULT_WINDOW_LENGTHS.get("" if config.dataset else config.subset, OTHER_WINDOW_LENGTH)
    train_units, val_units = split_per_source(subset.train, config.val_fraction, config.split_seed,
                                              config.folds, config.fold)  # fmt: skip
    if init and [u.unit_id for u in val_units] != init["split"]["validation_units"]:
        raise ValueError(f"--init-from {config.init_from}: its validation units differ from this split's")
    extra_units = {
        name: load_subset(name, config.data_dir or None).train
        for name in extra_subset_names(config.subset, config.extra_train_subsets)
    }
    return TrainingData(subset, config.window_length or subset_window, train_units, val_units, extra_units)


def preprocessing_stats(config: TrainConfig, data: TrainingData, init: dict | None) -> PreprocessingStats:
    """Preprocessing statistics from the training units only (with those pooled from other
    subsets), or the fine-tuned checkpoint's."""
    if init:
        stats = PreprocessingStats(**init["preprocessing"])
        return fit_imputation(data.pooled_units, stats) if stats.imputation is None else stats
    spec = data.subset.spec
    return fit_preprocessing(data.pooled_units, spec.operating_conditions, config.sensors, spec.features,
                             len(spec.settings))  # fmt: skip


def training_windows(config: TrainConfig, data: TrainingData) -> Windows:
    spec, window_length = data.subset.spec, data.window_length
    x_train, y_train = stack_windows(data.pooled_units, window_length, spec.rul_cap)
    x_train, y_train = x_train[:: config.train_stride], y_train[:: config.train_stride]
    x_val, y_val = stack_windows(data.val_units, window_length, spec.rul_cap)
    return Windows(x_train, y_train, health_labels(y_train, spec.critical, spec.degrading), x_val, y_val)


def network(model_config: ModelConfig, stats: PreprocessingStats, init: dict | None) -> DualTaskModel:
    """The network for the features the preprocessing selected (the fine-tuned one's weights)."""
    model_config.n_features = len(stats.feature_names)
    model = DualTaskModel(model_config)
    if init:
        model.load_state_dict(init["state_dict"])
    return model


def checkpoint_facts(config: TrainConfig, data: TrainingData, stats: PreprocessingStats, fitted: Fitted,
                     started: float) -> dict:  # fmt: skip
    """What the checkpoint says of the run beside its weights. The interval is only asked for
    here (its band edges, the health thresholds, and its coverage): rul-export calibrates it,
    once, with the predictive distribution, on the held-out windows of every member."""
    spec = data.subset.spec
    return {
        "train_config": asdict(config),
        "window_length": data.window_length,
        "dataset": spec.to_dict(),
        "rul_cap": spec.rul_cap,
        "health_thresholds": {"critical_max": spec.critical, "degrading_max": spec.degrading},
        "preprocessing": stats.to_dict(),
        "interval": {"edges": [spec.critical, spec.degrading], "nominal_coverage": config.interval_coverage},
        "metrics": {
            "validation": {
                "rmse_all_windows_capped": fitted.best_rmse,
                "best_epoch": fitted.best_epoch,
                "rmse_all_windows_capped_masked": fitted.best_masked,
            }
        },  # fmt: skip
        "split": {
            "train_units": [u.unit_id for u in data.train_units],
            "validation_units": [u.unit_id for u in data.val_units],
            "extra_train_units": {
                name: [u.unit_id for u in units] for name, units in data.extra_units.items()
            },
        },
        "history": fitted.history,
        "training_seconds": round(time.time() - started, 1),
    }


def train(config: TrainConfig, model_config: ModelConfig) -> dict:
    """Run one training and return the checkpoint facts (also written to config.out), with the
    learned checks beside it."""
    started = time.time()
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    init = starting_point(config, model_config)
    data = training_data(config, init)
    windows = training_windows(config, data)
    stats = preprocessing_stats(config, data, init)
    model = network(model_config, stats, init)
    fitted = fit(config, model, Preprocessor(stats), data.subset, data.window_length, windows)
    facts = checkpoint_facts(config, data, stats, fitted, started)
    save_checkpoint(config.out, fitted.kept, facts)
    write_learned_checks(config.out, data.subset, stats.feature_names, data.window_length)
    return facts


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(__doc__)
    args = parser.parse_args(argv)
    planned = planned_runs(parser, args, argv)
    for config, model_config in planned:
        facts = train(config, model_config)
        print(
            json.dumps(
                {
                    "checkpoint": config.out,
                    "metrics": facts["metrics"],
                    "training_seconds": facts["training_seconds"],
                },
                indent=2,
            )
        )
    recipe = args.recipe
    if recipe and len(planned) == len(RECIPES[recipe].members):
        checkpoints = " ".join(config.out for config, _ in planned)
        data_dir = f" --data-dir {planned[0][0].data_dir}" if planned[0][0].data_dir else ""
        print(f"next: rul-export --checkpoint {checkpoints} --name {recipe} --recipe {recipe}{data_dir}")


if __name__ == "__main__":
    main()
