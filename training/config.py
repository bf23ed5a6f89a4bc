"""Training's whole configuration, in one module: what a run can be told, what the shipped
models were trained with, and how `rul-train`'s flags are made from both.

- `TrainConfig` (the data, the split, the optimisation) and `ModelConfig` (the network): each
  field made with `setting(default, "what it is")`; that text is its `--help`, and every field
  is a flag (`--window-length 50`). Both are stored in every checkpoint.
- the shipped models' recipes (training/recipes.py, named in their model cards): named
  overrides of those defaults (`rul-train --recipe fd001`).
- `planned_runs`: the (TrainConfig, ModelConfig) of each network a command line asks for;
  flags given beside a recipe override it.
"""

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.constants import RUL_CAP, SUBSETS
from training.data import extra_subset_names
from training.dataset_spec import DatasetError, load_spec
from training.loss_weighting import (
    AMNL_LAMBDA,
    BOOK_EMA,
    DWA_TEMPERATURE,
    GABA_FLOOR,
    GABA_WARMUP_STEPS,
    GRADNORM_ALPHA,
    METHODS,
)
from training.recipes import RECIPES


def setting(default: Any, meaning: str) -> Any:
    """A configuration field: its default and what it means (its flag's help)."""
    return dataclasses.field(default=default, metadata={"help": meaning})


@dataclass
class TrainConfig:
    subset: str = setting("FD001", "FD001 | FD002 | FD003 | FD004 (C-MAPSS; ignored with --dataset)")
    dataset: str = setting("", "a data set's TOML file (its format: training/dataset.py); empty: --subset")
    data_dir: str = setting("", "C-MAPSS directory; empty: $CMAPSS_DIR, else data/cmapss")
    out: str = setting("runs/model.pt", "checkpoint path")
    window_length: int = setting(
        0, "cycles per window; 0: the literature's (constants.py; 30 for other data sets)"
    )
    sensors: str = setting(
        "standard", "standard (C-MAPSS's 14; else as data) | varying | data (no near-constant)"
    )
    extra_train_subsets: str = setting(
        "", 'e.g. "FD001": pool its training units into training, not validation'
    )
    val_fraction: float = setting(0.2, "share of whole training units held out for model selection")
    train_stride: int = setting(1, "keep every k-th training window (consecutive ones overlap; 1: all)")
    seed: int = setting(0, "seeds initialisation and batch order")
    split_seed: int = setting(0, "seeds the train/validation unit split (shared by an ensemble's members)")
    folds: int = setting(
        0, "> 0: validate on fold `fold` of this many disjoint unit folds instead of val_fraction"
    )
    fold: int = setting(
        0, "the held-out fold when folds > 0 (one member per fold: a cross-validation ensemble)"
    )
    epochs: int = setting(40, "maximum epochs (the cosine schedule spans them)")
    patience: int = setting(10, "stop after this many epochs without a better validation RMSE")
    batch_size: int = setting(512, "windows per optimisation step")
    lr: float = setting(5e-4, "peak AdamW learning rate (cosine decay to lr / 20)")
    weight_decay: float = setting(1e-4, "AdamW weight decay")
    noise_std: float = setting(0.0, "Gaussian noise added to the normalised inputs while training (0: off)")
    ema_decay: float = setting(0.0, "validate and keep an exponential moving average of the weights (0: off)")
    loss_weighting: str = setting("fixed", "single fixed uncertainty pcgrad gradnorm dwa amnl gaba grace")
    rul_weight: float = setting(0.7, "fixed/pcgrad weight of the RUL loss (MSE on rul / rul_cap)")
    health_weight: float = setting(0.3, "fixed/pcgrad weight of the health loss (cross-entropy)")
    amnl_lambda: float = setting(AMNL_LAMBDA, "amnl: total (1 - lambda) wMSE + lambda CE")
    amnl_normalize: bool = setting(False, "amnl: divide each task loss by its EMA (the book's older edition)")
    gaba_ema: float = setting(BOOK_EMA, "gaba/grace: EMA on the task weights; amnl-normalize: on the losses")
    gaba_warmup: int = setting(GABA_WARMUP_STEPS, "gaba/grace: steps at equal weights before adapting")
    gaba_floor: float = setting(GABA_FLOOR, "gaba/grace: lowest weight of a task")
    gradnorm_alpha: float = setting(GRADNORM_ALPHA, "gradnorm: restoring-force strength")
    dwa_temperature: float = setting(DWA_TEMPERATURE, "dwa: softmax temperature over the loss ratios")
    record_test_rmse: bool = setting(False, "log each epoch's test RMSE (read-only, never used to select)")
    interval_coverage: float = setting(0.9, "nominal coverage of the split-conformal RUL interval")
    threads: int = setting(0, "torch CPU threads; 0: torch's default")
    # Sensor masking (fault tolerance): the graph replaces a faulty sensor by its estimate
    # from the others (Preprocessor); training with masked windows teaches the network that.
    mask_prob: float = setting(0.0, "share of training windows with one random feature masked (0: off)")
    # Stitched windows (one engine, one history): a block of another training window's cycles,
    # labelled as the window it went into (training/stitch_check.py: stitched_readings).
    stitch_prob: float = setting(
        0.0, "share of training windows given a block of another window's cycles, host's labels (0: off)"
    )
    init_from: str = setting(
        "", "start from this checkpoint's weights, preprocessing and unit split (fine-tuning)"
    )


@dataclass
class ModelConfig:
    n_features: int = setting(14, "model inputs per cycle; rul-train sets it from the selected sensors")
    conv_channels: int = setting(32, "Conv1d filters over time")
    conv_kernel: int = setting(5, "Conv1d kernel size in cycles (odd, 'same' padding)")
    lstm_hidden: int = setting(64, "hidden size per LSTM direction")
    lstm_layers: int = setting(1, "stacked BiLSTM layers")
    attention_dim: int = setting(64, "hidden size of the additive attention scorer")
    head_hidden: int = setting(64, "hidden units of each task head")
    dropout: float = setting(0.2, "before each head")
    rul_scale: float = setting(RUL_CAP, "the RUL head predicts rul / rul_scale (keeps targets ~[0, 1])")


def add_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """`--field-name` (and `--field_name`) for each field of config class `cls`, typed and
    defaulted from the class, its help the field's meaning."""
    group = parser.add_argument_group(cls.__name__)
    for field in dataclasses.fields(cls):
        flags = sorted({f"--{field.name.replace('_', '-')}", f"--{field.name}"})
        kind = field.type if isinstance(field.type, type) else type(field.default)
        help_text = f"{field.metadata['help']} (default: {field.default!r})".replace("%", "%%")
        if kind is bool:
            group.add_argument(*flags, dest=field.name, action=argparse.BooleanOptionalAction,
                               default=field.default, help=help_text)  # fmt: skip
        else:
            group.add_argument(*flags, dest=field.name, type=kind, default=field.default,
                               metavar=kind.__name__.upper(), help=help_text)  # fmt: skip


def from_flags(cls: type, args: argparse.Namespace) -> Any:
    """An instance of config class `cls` from parsed flags."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    recipes = parser.add_argument_group("shipped recipes (training/recipes.py)")
    recipes.add_argument("--recipe", choices=sorted(RECIPES),
                         help="train every network of a shipped model's ensemble with its flags, one "
                              "after the other; flags given beside it override the recipe's")  # fmt: skip
    recipes.add_argument("--member", help="with --recipe: only this network (e.g. fold0, seed2)")
    recipes.add_argument("--out-dir", help="where the checkpoints go: with --recipe <member>.pt (default: "
                                           "models/checkpoints/<recipe>, as shipped), else "
                                           "<data set>_seed<S>.pt (or _fold<k>.pt)")  # fmt: skip
    add_flags(parser, TrainConfig)
    add_flags(parser, ModelConfig)
    return parser


def _configs(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[TrainConfig, ModelConfig]:
    """The configs of one run, checked: a data set that loads, a known subset and weighting."""
    args = parser.parse_args(argv)
    config = from_flags(TrainConfig, args)
    config.subset = config.subset.upper()
    if config.dataset:
        config.dataset = str(Path(config.dataset).resolve())  # export and evaluate find it from anywhere
        try:
            config.subset = load_spec(config.dataset, config.data_dir or None).name
        except DatasetError as error:
            parser.error(str(error))
        if config.extra_train_subsets:
            parser.error(
                "--extra-train-subsets goes with --subset; name every file in the data set's train list"
            )
    elif config.subset not in SUBSETS:
        parser.error(f"--subset {config.subset!r}: expected one of {', '.join(SUBSETS)}")
    if config.loss_weighting not in METHODS:
        parser.error(f"--loss-weighting {config.loss_weighting!r}: expected one of {', '.join(METHODS)}")
    try:
        extra_subset_names(config.subset, config.extra_train_subsets) if not config.dataset else None
    except ValueError as error:
        parser.error(str(error))
    return config, from_flags(ModelConfig, args)


def recipe_runs(argv: list[str]) -> list[tuple[TrainConfig, ModelConfig]]:
    """The (config, model config) of each network `argv` asks for (`planned_runs`)."""
    parser = build_parser()
    return planned_runs(parser, parser.parse_args(argv), argv)


def planned_runs(
    parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]
) -> list[tuple[TrainConfig, ModelConfig]]:
    """One run, or with --recipe each member of that recipe (the recipe's overrides first, so
    that the flags given override them; each member's checkpoint at <out-dir>/<member>.pt)."""
    if args.recipe is None:
        if args.member:
            parser.error("--member goes with --recipe")
        config, model_config = _configs(parser, argv)
        if args.out_dir:  # the checkpoint under it, named after the data set and the seed (or fold)
            member = f"fold{config.fold}" if config.folds else f"seed{config.seed}"
            config.out = str(Path(args.out_dir) / f"{config.subset.lower()}_{member}.pt")
        return [(config, model_config)]
    recipe = RECIPES[args.recipe]
    if args.member is not None and args.member not in recipe.members:
        parser.error(f"--member {args.member!r}: recipe {args.recipe} has {', '.join(recipe.members)}")
    out_dir = Path(args.out_dir or f"models/checkpoints/{args.recipe}")
    members = [args.member] if args.member else list(recipe.members)
    return [
        _configs(parser, [*recipe.member_argv(member), *argv, "--out", str(out_dir / f"{member}.pt")])
        for member in members
    ]
