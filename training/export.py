"""Export a checkpoint to ONNX with all preprocessing inside the graph, check parity with
PyTorch on real raw windows, measure the exported graph on the test protocol and write the
model card.

    rul-export --checkpoint runs/fd001.pt --name fd001 --data-dir ../shared/data/cmapss

Writes `models/<name>.onnx` and `models/<name>.json`; the card's facts (all but the file's
own sha256) also go into the ONNX `metadata_props`, one JSON value per key.
"""

import argparse
import hashlib
import json
import logging
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from training.checkpoint import OUTPUT_NAMES, ServingGraph
from training.constants import PADDING_RULE
from training.data import Subset
from training.ensemble import build_graph, saved_order_check, saved_stitch_check
from training.evaluate import evaluate_last_windows, rmse_all_windows, torch_predict_fn
from training.model_card import build_card
from training.order_check import beside, read_fit
from training.parity import check_parity, faulty_copies, onnx_predict_fn
from training.recipes import RECIPES
from training.static_graph import make_static
from training.stitch_check import beside as stitch_beside
from training.triton import write_triton_repo
from training.windows import last_windows, stack_windows


def export_onnx(graph: ServingGraph, example: np.ndarray, path: Path) -> None:
    """Trace `graph` on `example` (B > 1, W, 24) with a dynamic batch axis and write `path`,
    its shape computations folded (training/static_graph.py: nothing left for the CPU when
    it runs on a GPU)."""
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter about LSTM weights and tree specs
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(
            graph,
            (torch.from_numpy(example),),
            input_names=["readings"],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes={"readings": {0: batch}},
            dynamo=True,
            verbose=False,
        )
    program.save(str(path))
    onnx.save(make_static(onnx.load(str(path))), str(path))


def write_metadata(path: Path, card: dict[str, Any]) -> None:
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in card.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    model.producer_name = "rul-service training.export"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export(
    checkpoint_paths: list[str],
    name: str,
    version: str,
    out_dir: str,
    data_dir: str | None,
    recipe: str = "",
    order_check: Path | None = None,
    dataset: str = "",
    stitch_check: Path | None = None,
) -> dict:
    """Build, check and write `<out_dir>/<name>.onnx` and its card; `recipe`: the name in
    training/recipes.py the checkpoints were trained with, recorded in the card. The learned
    order and stitch checks are read from `order_check` and `stitch_check` (default: the ones
    rul-train wrote beside the first checkpoint), so a re-export builds the same graph on any
    machine; nothing is trained here."""
    order_fit = read_fit(order_check) if order_check else saved_order_check(checkpoint_paths[0])
    stitch_fit = read_fit(stitch_check) if stitch_check else saved_stitch_check(checkpoint_paths[0])
    learned = {"order_check": str(order_check or beside(checkpoint_paths[0])),
               "stitch_check": str(stitch_check or stitch_beside(checkpoint_paths[0]))}  # fmt: skip
    graph, checkpoints, subset = build_graph(checkpoint_paths, data_dir, order_fit, dataset, stitch_fit)
    first = checkpoints[0]
    window_length = first["window_length"]
    # NaN-padded, as served; a data set without test files: its training units' last windows
    test_windows, _ = last_windows(subset.test or subset.train, window_length)
    # Parity on the test windows, training windows from every operating condition (a unit's
    # first windows are short histories), and faulty copies of the test windows (the checks
    # and the masking they trigger).
    train_windows, _ = stack_windows(subset.train[:5], window_length, None, padding=PADDING_RULE)
    checked = graph.quality.stats.column_index
    parity_windows = np.concatenate([test_windows, train_windows[::7], faulty_copies(test_windows, checked)])

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path, card_path = out / f"{name}.onnx", out / f"{name}.json"
    export_onnx(graph, test_windows[:8], onnx_path)
    onnx_fn = onnx_predict_fn(onnx_path)
    parity = check_parity(torch_predict_fn(graph), onnx_fn, parity_windows)
    test_metrics = test_figures(onnx_fn, subset, window_length, first["health_thresholds"], first["rul_cap"])
    card = build_card(name, version, recipe, graph, checkpoints, checkpoint_paths, subset, test_metrics,
                      learned, parity)  # fmt: skip
    write_metadata(onnx_path, card)
    card["sha256"] = sha256_of(onnx_path)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return card


def test_figures(
    predict: Any, subset: Subset, window_length: int, thresholds: dict[str, float], rul_cap: float
) -> dict[str, Any]:
    """The test protocol's figures, or none for a data set without test files."""
    if not subset.test:
        return {}
    metrics: dict[str, Any] = evaluate_last_windows(predict, subset.test, window_length, thresholds, rul_cap)
    metrics["rmse_all_windows_capped"] = rmse_all_windows(predict, subset.test, window_length, rul_cap)
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", nargs="+",
                        help="checkpoint(s) written by rul-train; several make an averaged ensemble. "
                             "Without it, --triton-repo packages <out-dir>/<name>.onnx")  # fmt: skip
    parser.add_argument("--name", required=True, help="model name, e.g. fd001 (file stem and URL name)")
    parser.add_argument("--version", default=datetime.now(UTC).strftime("%Y.%m.%d"),
                        help="model version for the card (default: today, YYYY.MM.DD)")  # fmt: skip
    parser.add_argument("--out-dir", default="models",
                        help="where to write <name>.onnx and <name>.json (default: models, where the "
                             "service looks)")  # fmt: skip
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing <out-dir>/<name>.onnx (by default a shipped model)",
    )
    parser.add_argument("--recipe", choices=sorted(RECIPES),
                        help="the recipe (training/recipes.py) the checkpoints were trained with: "
                             "the card names it")  # fmt: skip
    parser.add_argument(
        "--data-dir", default=None, help="C-MAPSS directory (default: $CMAPSS_DIR or data/cmapss)"
    )
    parser.add_argument("--dataset", default="",
                        help="the data set's TOML file (default: the one the checkpoints were trained on, "
                             "from where rul-train read it)")  # fmt: skip
    parser.add_argument("--order-check", type=Path,
                        help="the learned order check's weights as rul-train wrote them (default: "
                             "order_check.pt beside the first checkpoint); export never trains")  # fmt: skip
    parser.add_argument("--stitch-check", type=Path,
                        help="the learned stitch check's weights as rul-train wrote them (default: "
                             "stitch_check.pt beside the first checkpoint); export never trains")  # fmt: skip
    parser.add_argument(
        "--triton-repo",
        type=Path,
        help="also write a Triton model repository <dir>/<name>/{config.pbtxt,1/model.onnx}",
    )
    args = parser.parse_args(argv)
    onnx_path, card_path = Path(args.out_dir) / f"{args.name}.onnx", Path(args.out_dir) / f"{args.name}.json"
    if args.checkpoint:
        if onnx_path.exists() and not args.force:
            parser.error(f"{onnx_path} exists (a shipped model, if --out-dir is models): pass --force to "
                         "overwrite it, or choose another --name or --out-dir")  # fmt: skip
        try:
            card = export(args.checkpoint, args.name, args.version, args.out_dir, args.data_dir,
                          args.recipe or "", args.order_check, args.dataset, args.stitch_check)  # fmt: skip
        except (ValueError, FileNotFoundError) as error:
            parser.error(str(error))
        print(json.dumps({"onnx": str(onnx_path), "sha256": card["sha256"], "parity": card["parity"],
                          "test": card["metrics"]["test"]}, indent=2))  # fmt: skip
    elif not args.triton_repo:
        parser.error("give --checkpoint to export, or --triton-repo to package an exported model")
    else:
        if not card_path.exists():
            parser.error(f"{card_path} not found: export the model first (--checkpoint)")
        card = json.loads(card_path.read_text())
        if sha256_of(onnx_path) != card["sha256"]:
            parser.error(f"{onnx_path} does not match the sha256 in {card_path}")
    if args.triton_repo:
        print(f"Triton model repository: {write_triton_repo(onnx_path, card, args.triton_repo)}")


if __name__ == "__main__":
    main()
