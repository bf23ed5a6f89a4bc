"""The learned checks beside a checkpoint: the order check (training/order_check.py) and the stitch
check (training/stitch_check.py), each a small network trained once per directory on the
checks' split of the data set's training units, and read, never trained, by rul-export.

rul-train writes both beside every checkpoint it trains. For a checkpoint trained before the
stitch check existed (or copied without its files), write what is missing:

    python -m training.learned_checks --checkpoint runs/fd001.pt --data-dir ../shared/data/cmapss

A file already there for other sensors or another window length is refused (train in another
directory), never overwritten.
"""

import argparse
from pathlib import Path

from training import order_check, stitch_check
from training.checkpoint import load_checkpoint
from training.data import Subset, load_data
from training.order_check import read_fit, save_fit, trained_for
from training.quality_fit import fit_order_check, fit_stitch_check


def write_learned_checks(
    checkpoint: str | Path, subset: Subset, columns: list[str], window_length: int
) -> None:
    """Train and write, beside `checkpoint`, each learned check not yet there for this data set's
    `subset`, its checked sensor `columns` and `window_length`."""
    spec = subset.spec
    fits = ((order_check.beside(checkpoint), fit_order_check),
            (stitch_check.beside(checkpoint), fit_stitch_check))  # fmt: skip
    for path, fit in fits:
        if path.exists():
            if trained_for(read_fit(path)) != (len(columns), window_length):
                raise ValueError(f"{path} holds a learned check of other sensors or windows than this "
                                 f"run's ({len(columns)} sensors, {window_length} cycles): write the "
                                 "checkpoint to another directory (--out / --out-dir)")  # fmt: skip
            continue
        save_fit(fit(subset.train, spec.operating_conditions, list(columns), window_length, spec.features,
                     len(spec.settings), spec.rul_cap), path)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="a checkpoint rul-train wrote")
    parser.add_argument(
        "--data-dir", default=None, help="C-MAPSS directory (default: $CMAPSS_DIR or data/cmapss)"
    )
    parser.add_argument("--dataset", default="", help="the data set's TOML file (default: the checkpoint's)")
    args = parser.parse_args(argv)
    _, facts = load_checkpoint(args.checkpoint)
    config = facts["train_config"]
    subset = load_data(config["subset"], args.dataset or config.get("dataset", ""), args.data_dir)
    columns, window_length = facts["preprocessing"]["feature_names"], facts["window_length"]
    write_learned_checks(args.checkpoint, subset, columns, window_length)
    for module in (order_check, stitch_check):
        print(module.beside(args.checkpoint))


if __name__ == "__main__":
    main()
