"""The shipped recipes (training/recipes.py): `rul-train --recipe NAME` gives the flags each
shipped network was trained with, and the CLIs document themselves."""

from dataclasses import asdict

import pytest
import torch

from tests.conftest import MODELS_DIR
from training.config import build_parser, recipe_runs
from training.export import main as export_main
from training.recipes import RECIPES

NOT_RECIPE = {"data_dir", "out"}  # where the data was and the checkpoint went: not the recipe


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_each_recipe_gives_the_configs_of_the_shipped_checkpoints(name):
    runs = recipe_runs(["--recipe", name, "--data-dir", "anywhere"])
    assert [config.out for config, _ in runs] == [
        f"models/checkpoints/{name}/{member}.pt" for member in RECIPES[name].members
    ]
    for config, model_config in runs:
        shipped = torch.load(MODELS_DIR.parent / config.out, map_location="cpu", weights_only=False)
        ours = {k: v for k, v in asdict(config).items() if k not in NOT_RECIPE}
        theirs = {k: shipped["train_config"].get(k, ours[k]) for k in ours}  # fields added since: defaults
        assert ours == theirs, config.out
        assert asdict(model_config) == shipped["model_config"], config.out


def test_flags_beside_a_recipe_override_it_and_one_member_can_be_trained():
    ((config, model_config),) = recipe_runs(["--recipe", "fd001", "--member", "fold2", "--epochs", "1",
                                             "--out-dir", "runs/x"])  # fmt: skip
    assert (config.fold, config.seed, config.folds, config.epochs) == (2, 2, 5, 1)
    assert model_config.lstm_hidden == 128 and config.window_length == 50
    assert config.out == "runs/x/fold2.pt"


def test_a_recipe_refuses_an_unknown_member(capsys):
    with pytest.raises(SystemExit):
        recipe_runs(["--recipe", "fd002", "--member", "fold0"])
    assert "recipe fd002 has seed0, seed1, seed2" in capsys.readouterr().err


def test_help_shows_every_flags_meaning_and_default():
    text = " ".join(build_parser().format_help().split())
    assert "--epochs INT maximum epochs (the cosine schedule spans them) (default: 40)" in text
    assert (
        "--subset STR FD001 | FD002 | FD003 | FD004 (C-MAPSS; ignored with --dataset) (default: 'FD001')"
        in text
    )
    assert "--dataset STR a data set's TOML file (its format: training/dataset.py); empty: --subset" in text
    assert "--lstm-hidden INT, --lstm_hidden INT hidden size per LSTM direction (default: 64)" in text
    assert "--recipe {fd001,fd002,fd003,fd004}" in text


def test_export_refuses_to_overwrite_a_shipped_model_without_force(capsys):
    with pytest.raises(SystemExit):
        export_main(["--checkpoint", "never-read.pt", "--name", "fd001", "--out-dir", str(MODELS_DIR)])
    error = capsys.readouterr().err
    assert "fd001.onnx exists" in error and "pass --force to overwrite it" in error


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_each_shipped_card_names_its_recipe(name):
    import json

    card = json.loads((MODELS_DIR / f"{name}.json").read_text())
    assert card["training"]["recipe"] == f"{name} (training/recipes.py)"
    members = [f"models/checkpoints/{name}/{m}.pt" for m in RECIPES[name].members]
    assert card["training"]["checkpoints"] == members
