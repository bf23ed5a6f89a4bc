"""rul-train: train the dual-task RUL model on a data set (a C-MAPSS subset, or your own
fleet described by a TOML file) and write a self-describing checkpoint.

    rul-train --dataset fleet.toml --epochs 40 --seed 0 --out-dir runs   # runs/<name>_seed0.pt
    rul-train --subset FD001 --data-dir ../shared/data/cmapss --out runs/fd001.pt
    rul-train --recipe fd001 --data-dir ../shared/data/cmapss     # the shipped fd001's networks

Every field of TrainConfig and ModelConfig is a flag; `--recipe NAME` (training/recipes.py)
runs each member of that recipe with its flags (training/train.py does the training)."""

import argparse
from pathlib import Path

from training.config_cli import add_dataclass_flags, dataclass_from_flags
from training.constants import SUBSETS
from training.data import extra_subset_names
from training.dataset_spec import DatasetError, load_spec
from training.loss_weighting import METHODS
from training.model import ModelConfig
from training.recipes import RECIPES
from training.train_config import TrainConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    recipes = parser.add_argument_group("shipped recipes (training/recipes.py)")
    recipes.add_argument("--recipe", choices=sorted(RECIPES),
                         help="train every network of a shipped model's ensemble with its flags, one "
                              "after the other; flags given beside it override the recipe's")  # fmt: skip
    recipes.add_argument("--member", help="with --recipe: only this network (e.g. fold0, seed2)")
    recipes.add_argument("--out-dir", help="where the checkpoints go: with --recipe <member>.pt (default: "
                                           "models/checkpoints/<recipe>, as shipped), else "
                                           "<data set>_seed<S>.pt (or _fold<k>.pt)")  # fmt: skip
    add_dataclass_flags(parser, TrainConfig)
    add_dataclass_flags(parser, ModelConfig)
    return parser


def _configs(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[TrainConfig, ModelConfig]:
    args = parser.parse_args(argv)
    config = dataclass_from_flags(TrainConfig, args)
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
    return config, dataclass_from_flags(ModelConfig, args)


def recipe_runs(argv: list[str]) -> list[tuple[TrainConfig, ModelConfig]]:
    """The (config, model config) of each network `argv` asks for: one, or with --recipe each
    member of that recipe (the recipe's flags first, so that the user's override them; each
    member's checkpoint at <out-dir>/<member>.pt)."""
    parser = build_parser()
    return planned_runs(parser, parser.parse_args(argv), argv)


def planned_runs(
    parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]
) -> list[tuple[TrainConfig, ModelConfig]]:
    if args.recipe is None:
        if args.member:
            parser.error("--member goes with --recipe")
        if args.out_dir:  # the checkpoint under it, named after the data set and the seed (or fold)
            config, model_config = _configs(parser, argv)
            member = f"fold{config.fold}" if config.folds else f"seed{config.seed}"
            config.out = str(Path(args.out_dir) / f"{config.subset.lower()}_{member}.pt")
            return [(config, model_config)]
        return [_configs(parser, argv)]
    recipe = RECIPES[args.recipe]
    if args.member is not None and args.member not in recipe.members:
        parser.error(f"--member {args.member!r}: recipe {args.recipe} has {', '.join(recipe.members)}")
    out_dir = Path(args.out_dir or f"models/checkpoints/{args.recipe}")
    members = [args.member] if args.member else list(recipe.members)
    return [
        _configs(parser, [*recipe.member_argv(member), *argv, "--out", str(out_dir / f"{member}.pt")])
        for member in members
    ]
