"""rul-train's configuration: every field a flag (`rul-train --help` shows each field's
comment), stored in every checkpoint (`train_config`)."""

from dataclasses import dataclass

from training.loss_weighting import (
    AMNL_LAMBDA,
    BOOK_EMA,
    DWA_TEMPERATURE,
    GABA_FLOOR,
    GABA_WARMUP_STEPS,
    GRADNORM_ALPHA,
)


@dataclass
class TrainConfig:
    subset: str = "FD001"  # FD001 | FD002 | FD003 | FD004 (C-MAPSS; ignored with --dataset)
    dataset: str = ""  # a data set's TOML file (its format: training/dataset.py); empty: --subset
    data_dir: str = ""  # C-MAPSS directory; empty: $CMAPSS_DIR, else data/cmapss
    out: str = "runs/model.pt"  # checkpoint path
    window_length: int = 0  # cycles per window; 0: the literature's (constants.py; 30 for other data sets)
    sensors: str = "standard"  # standard (C-MAPSS's 14; else as data) | varying | data (no near-constant)
    extra_train_subsets: str = ""  # e.g. "FD001": pool its training units into training, not validation
    val_fraction: float = 0.2  # share of whole training units held out for model selection
    train_stride: int = 1  # keep every k-th training window (consecutive ones overlap; 1: all)
    seed: int = 0  # seeds initialisation and batch order
    split_seed: int = 0  # seeds the train/validation unit split (shared by an ensemble's members)
    folds: int = 0  # > 0: validate on fold `fold` of this many disjoint unit folds instead of val_fraction
    fold: int = 0  # the held-out fold when folds > 0 (one member per fold: a cross-validation ensemble)
    epochs: int = 40  # maximum epochs (the cosine schedule spans them)
    patience: int = 10  # stop after this many epochs without a better validation RMSE
    batch_size: int = 512  # windows per optimisation step
    lr: float = 5e-4  # peak AdamW learning rate (cosine decay to lr / 20)
    weight_decay: float = 1e-4  # AdamW weight decay
    noise_std: float = 0.0  # Gaussian noise added to the normalised inputs while training (0: off)
    ema_decay: float = 0.0  # validate and keep an exponential moving average of the weights (0: off)
    loss_weighting: str = "fixed"  # single fixed uncertainty pcgrad gradnorm dwa amnl gaba grace
    rul_weight: float = 0.7  # fixed/pcgrad weight of the RUL loss (MSE on rul / rul_cap)
    health_weight: float = 0.3  # fixed/pcgrad weight of the health loss (cross-entropy)
    amnl_lambda: float = AMNL_LAMBDA  # amnl: total (1 - lambda) wMSE + lambda CE
    amnl_normalize: bool = False  # amnl: divide each task loss by its EMA (the book's older edition)
    gaba_ema: float = BOOK_EMA  # gaba/grace: EMA on the task weights; amnl-normalize: on the losses
    gaba_warmup: int = GABA_WARMUP_STEPS  # gaba/grace: steps at equal weights before adapting
    gaba_floor: float = GABA_FLOOR  # gaba/grace: lowest weight of a task
    gradnorm_alpha: float = GRADNORM_ALPHA  # gradnorm: restoring-force strength
    dwa_temperature: float = DWA_TEMPERATURE  # dwa: softmax temperature over the loss ratios
    record_test_rmse: bool = False  # log each epoch's test RMSE (read-only, never used to select)
    interval_coverage: float = 0.9  # nominal coverage of the split-conformal RUL interval
    threads: int = 0  # torch CPU threads; 0: torch's default
    # Sensor masking (fault tolerance): the graph replaces a faulty sensor by its estimate
    # from the others (Preprocessor); training with masked windows teaches the network that.
    mask_prob: float = 0.0  # share of training windows with one random feature masked (0: off)
    init_from: str = ""  # start from this checkpoint's weights, preprocessing and unit split (fine-tuning)
