"""The learned checks beside a checkpoint: the order check (training/order_check.py) and the stitch
check (training/stitch_check.py), each a small network trained once per directory on the
checks' split of the data set's training units (training/quality_fit.py `fitted_checks`: the
statistics their z-scores use), and read, never trained, by rul-export.

rul-train writes both beside every checkpoint it trains. For a checkpoint trained before the
stitch check existed (or copied without its files), write what is missing:

    python -m training.learned_checks --checkpoint runs/fd001.pt --data-dir ../shared/data/cmapss

A file already there for other sensors or another window length is refused (train in another
directory), never overwritten.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from training import order_check, stitch_check
from training.checkpoint import load_checkpoint
from training.constants import PADDING_RULE
from training.data import Subset, Unit, load_data
from training.input_checks import QualityCheck
from training.order_check import OrderFit, fit_order_detector, read_fit, save_fit, trained_for
from training.quality_fit import fitted_checks
from training.quality_stats import QualityStats
from training.stitch_check import MIN_CYCLES as STITCH_MIN_CYCLES
from training.stitch_check import fit_stitch_detector
from training.windows import stack_windows

# what quality_fit.fitted_checks returns: the statistics, the training part, the validation part
Split = tuple[QualityStats, list[Unit], list[Unit]]


def fit_order_check(split: Split, window_length: int) -> OrderFit:
    """Train the learned order check (training/order_check.py) on the checks' split of the
    units (`fitted_checks`): the z-scores of the training part's full windows, thresholded on
    the validation part's."""
    stats, train, val = split
    in_train, in_val = (_full_windows_z(part, window_length, stats) for part in (train, val))
    return fit_order_detector(in_train, in_val)


def fit_stitch_check(split: Split, window_length: int) -> OrderFit:
    """Train the learned stitch check (training/stitch_check.py) on the checks' split of the
    units (`fitted_checks`): the z-scores of the training part's windows with at least
    STITCH_MIN_CYCLES real cycles, padded as served, thresholded on the validation part's."""
    stats, train, val = split
    z_train, n_train, _ = _windows_z(train, window_length, stats)
    z_val, _, owners = _windows_z(val, window_length, stats)
    return fit_stitch_detector(z_train, n_train, z_val, owners)


def _full_windows_z(units: list[Unit], window_length: int, stats: QualityStats) -> torch.Tensor:
    """Every full window of `units` as the graph's sensor z-scores (N, W, C)."""
    check = QualityCheck(stats, window_length).eval()
    windows = [
        np.lib.stride_tricks.sliding_window_view(u.readings, window_length, axis=0).transpose(0, 2, 1)
        for u in units
        if len(u.readings) >= window_length
    ]
    x = torch.from_numpy(np.concatenate(windows).astype(np.float32))
    with torch.no_grad():
        condition, _ = check._conditions(x)
        return check._robust_z(x, condition)


def _windows_z(
    units: list[Unit], window_length: int, stats: QualityStats
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Every window of `units` with at least STITCH_MIN_CYCLES real cycles, padded as served, as the
    graph's sensor z-scores (N, W, C), its real cycles (N,) and its unit's id (N,)."""
    check = QualityCheck(stats, window_length).eval()
    x, _ = stack_windows(units, window_length, None, STITCH_MIN_CYCLES, padding=PADDING_RULE)
    # stack_windows' windows per unit: one ending at each cycle from the STITCH_MIN_CYCLES-th on
    counts = [len(u.readings) - min(STITCH_MIN_CYCLES, window_length, len(u.readings)) + 1 for u in units]
    owners = np.repeat([u.unit_id for u in units], counts)
    parts = []
    with torch.no_grad():
        for i in range(0, len(x), 4096):
            _, n, _, _, z, _ = check.window_statistics(torch.from_numpy(x[i : i + 4096].astype(np.float32)))
            parts.append((z, n.long()))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), owners


def write_learned_checks(
    checkpoint: str | Path, subset: Subset, columns: list[str], window_length: int
) -> None:
    """Train and write, beside `checkpoint`, each learned check not yet there for this data set's
    `subset`, its checked sensor `columns` and `window_length`."""
    spec = subset.spec
    fits = ((order_check.beside(checkpoint), fit_order_check),
            (stitch_check.beside(checkpoint), fit_stitch_check))  # fmt: skip
    split: Split | None = None  # fitted once, for the checks not yet written
    for path, fit in fits:
        if path.exists():
            if trained_for(read_fit(path)) != (len(columns), window_length):
                raise ValueError(f"{path} holds a learned check of other sensors or windows than this "
                                 f"run's ({len(columns)} sensors, {window_length} cycles): write the "
                                 "checkpoint to another directory (--out / --out-dir)")  # fmt: skip
            continue
        split = split or fitted_checks(subset.train, spec.operating_conditions, list(columns), window_length,
                                       spec.features, len(spec.settings), spec.rul_cap)  # fmt: skip
        save_fit(fit(split, window_length), path)


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
