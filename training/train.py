"""Train the dual-task RUL model on a data set and write a self-describing checkpoint.

    rul-train --dataset fleet.toml --epochs 40 --seed 0 --out-dir runs   # your own fleet
    rul-train --subset FD001 --data-dir ../shared/data/cmapss --out runs/fd001.pt
    rul-train --recipe fd001 --data-dir ../shared/data/cmapss     # the shipped fd001's networks

Reads top to bottom: config, data, preprocessing, model, loop with early stopping on the
validation units, conformal calibration on the same validation units, checkpoint.
Every field of TrainConfig and ModelConfig is a flag (`rul-train --help`; training/config.py).
"""

import copy
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from training.calibration_weights import window_weights
from training.checkpoint import RawReadingsModel, save_checkpoint
from training.config import ModelConfig, TrainConfig, build_parser, planned_runs
from training.constants import DEFAULT_WINDOW_LENGTHS, OTHER_WINDOW_LENGTH
from training.data import Subset, Unit, check_training_units, extra_subset_names, load_data, load_subset
from training.evaluate import torch_predict_fn
from training.intervals import calibrate_uncapped
from training.labels import health_labels
from training.loss_weighting import (
    LossWeighting,
)
from training.metrics import phm08_score, rmse
from training.model import DualTaskModel
from training.preprocessing import (
    PreprocessingStats,
    Preprocessor,
    fit_imputation,
    fit_preprocessing,
    masked_validation_mask,
    random_feature_mask,
)
from training.recipes import RECIPES
from training.windows import last_windows, split_per_source, stack_windows


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


def train(config: TrainConfig, model_config: ModelConfig) -> dict:
    """Run one training and return the checkpoint facts (also written to config.out)."""
    started = time.time()
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)

    init = starting_point(config, model_config)
    data = training_data(config, init)
    spec, window_length, val_units = data.subset.spec, data.window_length, data.val_units
    rul_cap, critical, degrading = spec.rul_cap, spec.critical, spec.degrading
    x_train, y_train = stack_windows(data.pooled_units, window_length, rul_cap)  # (N, W, F_raw), (N,)
    x_train, y_train = x_train[:: config.train_stride], y_train[:: config.train_stride]
    x_val, y_val = stack_windows(val_units, window_length, rul_cap)
    h_train = health_labels(y_train, critical, degrading)
    stats = preprocessing_stats(config, data, init)
    model_config.n_features = len(stats.feature_names)
    model = DualTaskModel(model_config)
    if init:
        model.load_state_dict(init["state_dict"])
    preprocessor = Preprocessor(stats)
    # The weights we validate and keep: an EMA of the trained ones, or the trained ones.
    kept = copy.deepcopy(model) if config.ema_decay else model
    full = RawReadingsModel(preprocessor, kept)

    weighting = LossWeighting(
        config.loss_weighting, model.shared_parameters(), model.head_parameters(),
        config.rul_weight, config.health_weight, amnl_lambda=config.amnl_lambda,
        amnl_normalize=config.amnl_normalize, ema=config.gaba_ema, warmup_steps=config.gaba_warmup,
        floor=config.gaba_floor, alpha=config.gradnorm_alpha, temperature=config.dwa_temperature,
    )  # fmt: skip
    optimizer = torch.optim.AdamW(
        [*model.parameters(), *weighting.parameters()], lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs, eta_min=config.lr / 20)
    xt, yt, ht = torch.from_numpy(x_train), torch.from_numpy(y_train), torch.from_numpy(h_train)
    generator = torch.Generator().manual_seed(config.seed)
    predict = torch_predict_fn(full)
    # With masking, the kept epoch is the one best on clean and masked validation windows alike.
    n_features = len(stats.feature_names)
    val_mask = masked_validation_mask(len(x_val), n_features)
    xv = torch.from_numpy(x_val)

    def validation_rmse() -> tuple[float, float | None]:
        clean = rmse(predict(x_val)["rul"], y_val)
        if not config.mask_prob:
            return clean, None
        full.eval()
        with torch.no_grad():
            masked = torch.cat([kept(preprocessor(xv[i : i + 2048], val_mask[i : i + 2048]))[0]
                                for i in range(0, len(xv), 2048)])  # fmt: skip
        return clean, rmse(torch.clamp(masked, min=0.0).numpy(), y_val)

    # --record-test-rmse: the test units' last windows, scored after every epoch for the record
    # (the protocol a study compares against); nothing below reads these numbers.
    x_test, y_test = (
        last_windows(data.subset.test, window_length) if config.record_test_rmse else (None, None)
    )

    def test_record() -> dict[str, float]:
        if x_test is None:
            return {}
        predicted = predict(x_test)["rul"]
        capped = np.minimum(y_test, rul_cap)
        return {
            "test_rmse_readonly": rmse(predicted, y_test),
            "test_rmse_capped_truth_readonly": rmse(predicted, capped),
            "test_phm08_capped_truth_readonly": phm08_score(predicted, capped),
        }

    best_criterion, best_rmse, best_masked = float("inf"), float("inf"), None
    best_state, best_epoch, history, stale = None, -1, [], 0
    # named after the checkpoint (a recipe's member: fold0, seed2), with the seed beside it
    label = f"{config.subset} {Path(config.out).stem} (seed {config.seed})"
    progress = tqdm(range(config.epochs), desc=label, unit="epoch")
    for epoch in progress:
        model.train()
        order = torch.randperm(len(xt), generator=generator)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            mask = None
            if config.mask_prob:
                mask = random_feature_mask(len(idx), n_features, config.mask_prob, generator)
            x = preprocessor(xt[idx], mask)  # (B, W, F)
            if config.noise_std:
                x = x + config.noise_std * torch.randn(x.shape, generator=generator)
            rul, logits = model(x)  # (B,), (B, 3)
            rul_loss = weighting.rul_loss(rul, yt[idx])  # MSE of rul / RUL_CAP (amnl, grace: weighted)
            health_loss = nn.functional.cross_entropy(logits, ht[idx])
            optimizer.zero_grad(set_to_none=True)
            task_weights = weighting.backward(rul_loss, health_loss)
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            if config.ema_decay:
                with torch.no_grad():
                    for ema, trained in zip(kept.parameters(), model.parameters(), strict=True):
                        ema.lerp_(trained, 1.0 - config.ema_decay)
            total += (task_weights[0] * rul_loss.item() + task_weights[1] * health_loss.item()) * len(idx)
        scheduler.step()
        weighting.end_epoch()

        val_rmse, val_masked = validation_rmse()
        criterion = val_rmse if val_masked is None else (val_rmse + val_masked) / 2
        history.append({"epoch": epoch, "train_loss": total / len(xt), "val_rmse": val_rmse,
                        "val_rmse_masked": val_masked, "task_weights": list(task_weights),
                        **test_record()})  # fmt: skip
        progress.set_postfix(loss=f"{total / len(xt):.4f}", val_rmse=f"{val_rmse:.2f}")
        if criterion < best_criterion:
            best_criterion, best_rmse, best_masked = criterion, val_rmse, val_masked
            best_state, best_epoch, stale = copy.deepcopy(kept.state_dict()), epoch, 0
        else:
            stale += 1
            if stale >= config.patience:
                break
    kept.load_state_dict(best_state)
    full.eval()

    # Split-conformal interval per predicted-RUL band against the true, uncapped RUL, open above
    # the cap, on the validation windows weighted test-like (intervals.py, export.py).
    thresholds = {"critical_max": critical, "degrading_max": degrading}
    _, y_val_uncapped = stack_windows(val_units, window_length, None)
    bands = calibrate_uncapped(
        predict(x_val)["rul"], y_val_uncapped, [critical, degrading],
        config.interval_coverage, rul_cap, "validation windows, true uncapped RUL, test-like weights",
        window_weights(val_units, data.subset.test, window_length),
    )  # fmt: skip
    facts = {
        "train_config": asdict(config),
        "window_length": window_length,
        "dataset": spec.to_dict(),
        "rul_cap": rul_cap,
        "health_thresholds": thresholds,
        "preprocessing": stats.to_dict(),
        "interval": bands.to_dict(),
        "metrics": {
            "validation": {
                "rmse_all_windows_capped": best_rmse,
                "best_epoch": best_epoch,
                "rmse_all_windows_capped_masked": best_masked,
            }
        },  # fmt: skip
        "split": {
            "train_units": [u.unit_id for u in data.train_units],
            "validation_units": [u.unit_id for u in val_units],
            "extra_train_units": {
                name: [u.unit_id for u in units] for name, units in data.extra_units.items()
            },
        },
        "history": history,
        "training_seconds": round(time.time() - started, 1),
    }
    save_checkpoint(config.out, kept, facts)
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
                    "interval": facts["interval"],
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
