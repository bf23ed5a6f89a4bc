"""The entry points of rul-train, rul-evaluate and rul-export. Each needs the training extra
(torch, onnx, onnxscript, matplotlib), which `pip install .` leaves out; without it, one line
says what to install instead of a traceback."""

import importlib
import sys
from collections.abc import Callable

INSTALL = "pip install torch==2.13.0 && pip install '.[train]'  (torch first: see the README)"
TRAINING_MODULES = {"torch", "onnx", "onnxscript", "matplotlib", "tqdm"}


def _main_of(command: str, module: str) -> Callable[[], None]:
    """`module.main`, or exit naming the missing package of the training extra."""
    try:
        return importlib.import_module(module).main
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in TRAINING_MODULES:
            raise  # not the extra: a real error, shown as one
        sys.exit(f"{command}: needs the training extra, and {missing} is not installed: {INSTALL}")


def train() -> None:
    _main_of("rul-train", "training.train")()


def evaluate() -> None:
    _main_of("rul-evaluate", "training.evaluate")()


def export() -> None:
    _main_of("rul-export", "training.export")()
