"""The training loop of rul-train (training/train.py): AdamW on a cosine schedule, one epoch at a
time, judged on the validation units after each, stopped early; the kept weights are the best
epoch's (an exponential moving average of the trained ones, with --ema-decay)."""

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from training.checkpoint import RawReadingsModel
from training.config import TrainConfig
from training.data import Subset
from training.evaluate import torch_predict_fn
from training.loss_weighting import LossWeighting
from training.metrics import phm08_score, rmse
from training.model import DualTaskModel
from training.preprocessing import Preprocessor, masked_validation_mask, random_feature_mask
from training.stitch_check import stitched_training_windows
from training.windows import last_windows


@dataclass
class Windows:
    """Every training window (every train_stride-th) and every validation window, with RUL
    labels capped at the data set's cap; health labels for the training windows."""

    x_train: np.ndarray  # (N, W, 24) raw readings
    y_train: np.ndarray  # (N,)
    h_train: np.ndarray  # (N,) health class
    x_val: np.ndarray
    y_val: np.ndarray


class Validation:
    """What an epoch is judged on: the validation windows' RMSE against the capped RUL, and
    with masking the mean of it clean and with one feature masked (`criterion`); with
    --record-test-rmse, the test units' last windows' figures for the record (never read)."""

    def __init__(self, config: TrainConfig, subset: Subset, window_length: int, windows: Windows,
                 full: RawReadingsModel):  # fmt: skip
        self.config, self.full, self.windows = config, full, windows
        self.predict = torch_predict_fn(full)
        self.mask = masked_validation_mask(len(windows.x_val), len(full.preprocessor.stats.feature_names))
        record = config.record_test_rmse
        self.test = last_windows(subset.test, window_length) if record else None
        self.rul_cap = subset.spec.rul_cap

    def rmse(self) -> tuple[float, float | None]:
        """(clean RMSE, masked RMSE or None without masking)."""
        clean = rmse(self.predict(self.windows.x_val)["rul"], self.windows.y_val)
        if not self.config.mask_prob:
            return clean, None
        self.full.eval()
        xv, model, preprocessor = (
            torch.from_numpy(self.windows.x_val),
            self.full.model,
            self.full.preprocessor,
        )
        with torch.no_grad():
            masked = torch.cat([model(preprocessor(xv[i : i + 2048], self.mask[i : i + 2048]))[0]
                                for i in range(0, len(xv), 2048)])  # fmt: skip
        return clean, rmse(torch.clamp(masked, min=0.0).numpy(), self.windows.y_val)

    def test_record(self) -> dict[str, float]:
        if self.test is None:
            return {}
        x_test, y_test = self.test
        predicted, capped = self.predict(x_test)["rul"], np.minimum(y_test, self.rul_cap)
        return {
            "test_rmse_readonly": rmse(predicted, y_test),
            "test_rmse_capped_truth_readonly": rmse(predicted, capped),
            "test_phm08_capped_truth_readonly": phm08_score(predicted, capped),
        }


@dataclass
class Fitted:
    """The weights kept (the best epoch's) and how the run went."""

    kept: DualTaskModel
    best_rmse: float
    best_masked: float | None
    best_epoch: int
    history: list[dict]


def loss_weighting(config: TrainConfig, model: DualTaskModel) -> LossWeighting:
    return LossWeighting(
        config.loss_weighting, model.shared_parameters(), model.head_parameters(),
        config.rul_weight, config.health_weight, amnl_lambda=config.amnl_lambda,
        amnl_normalize=config.amnl_normalize, ema=config.gaba_ema, warmup_steps=config.gaba_warmup,
        floor=config.gaba_floor, alpha=config.gradnorm_alpha, temperature=config.dwa_temperature,
    )  # fmt: skip


def fit(config: TrainConfig, model: DualTaskModel, preprocessor: Preprocessor, subset: Subset,
        window_length: int, windows: Windows) -> Fitted:  # fmt: skip
    """The training loop: AdamW on a cosine schedule, one epoch at a time (`one_epoch`), early
    stopping on the validation criterion; the kept weights (an EMA of the trained ones, or
    them) end at their best epoch."""
    kept = copy.deepcopy(model) if config.ema_decay else model
    validation = Validation(config, subset, window_length, windows, RawReadingsModel(preprocessor, kept))
    weighting = loss_weighting(config, model)
    optimizer = torch.optim.AdamW([*model.parameters(), *weighting.parameters()], lr=config.lr,
                                  weight_decay=config.weight_decay)  # fmt: skip
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs, eta_min=config.lr / 20)
    generator = torch.Generator().manual_seed(config.seed)
    best = Fitted(kept, float("inf"), None, -1, [])
    best_criterion, best_state, stale = float("inf"), None, 0
    # named after the checkpoint (a recipe's member: fold0, seed2), with the seed beside it
    label = f"{config.subset} {Path(config.out).stem} (seed {config.seed})"
    progress = tqdm(range(config.epochs), desc=label, unit="epoch")
    for epoch in progress:
        loss, task_weights = one_epoch(
            config, model, kept, preprocessor, weighting, optimizer, windows, generator
        )
        scheduler.step()
        weighting.end_epoch()
        val_rmse, val_masked = validation.rmse()
        criterion = val_rmse if val_masked is None else (val_rmse + val_masked) / 2
        best.history.append({"epoch": epoch, "train_loss": loss, "val_rmse": val_rmse,
                             "val_rmse_masked": val_masked, "task_weights": list(task_weights),
                             **validation.test_record()})  # fmt: skip
        progress.set_postfix(loss=f"{loss:.4f}", val_rmse=f"{val_rmse:.2f}")
        if criterion < best_criterion:
            best_criterion, best.best_rmse, best.best_masked = criterion, val_rmse, val_masked
            best_state, best.best_epoch, stale = copy.deepcopy(kept.state_dict()), epoch, 0
        else:
            stale += 1
            if stale >= config.patience:
                break
    kept.load_state_dict(best_state)
    return best


def one_epoch(
    config: TrainConfig,
    model: DualTaskModel,
    kept: DualTaskModel,
    preprocessor: Preprocessor,
    weighting: LossWeighting,
    optimizer: torch.optim.Optimizer,
    windows: Windows,
    generator: torch.Generator,
) -> tuple[float, tuple[float, float]]:
    """One pass over the training windows in random order: (mean weighted loss, the task
    weights of the last step)."""
    model.train()
    xt, yt, ht = (torch.from_numpy(a) for a in (windows.x_train, windows.y_train, windows.h_train))
    n_features = len(preprocessor.stats.feature_names)
    order = torch.randperm(len(xt), generator=generator)
    total, task_weights = 0.0, (1.0, 1.0)
    for start in range(0, len(order), config.batch_size):
        idx = order[start : start + config.batch_size]
        mask = (
            random_feature_mask(len(idx), n_features, config.mask_prob, generator)
            if config.mask_prob
            else None
        )
        raw = stitched_training_windows(xt[idx], config.stitch_prob, generator)  # (0: as it is)
        x = preprocessor(raw, mask)  # (B, W, F)
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
    return total / len(xt), task_weights
