"""What taking the shape computations out of the exported graphs (training/static_graph.py)
costs or saves on the CPU provider: each shipped model against the same model exported before
that change (read from git), side by side in interleaved rounds, at batch 1 and 256, on the
subset's real test windows; and the outputs compared on them.

    python -m bench.static_graph --data-dir ../shared/data/cmapss [--before-commit 8b11d6b~1]
    python -m bench.static_graph --data-dir ../shared/data/cmapss --before-commit 87bf55e \
        --result wear_order   # the cost of reading windows in doubt in order of wear

The change is for GPU providers (no nodes left for the CPU between device kernels); on the CPU
it should be neutral. Writes bench/results/static_graph.json (or `--result`'s name: the same
side-by-side comparison serves any later change to the graphs).
"""

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from bench.model_compute import ROOT, machine, write_result
from training.data import load_subset
from training.windows import last_windows

MODELS_DIR = ROOT / "models"
BEFORE_COMMIT = "8b11d6b~1"  # the last commit with the models exported before the change
ROUNDS = 5


def median_ms(session: ort.InferenceSession, windows: np.ndarray, calls: int) -> float:
    session.run(None, {"readings": windows})
    started = time.perf_counter()
    for _ in range(calls):
        session.run(None, {"readings": windows})
    return (time.perf_counter() - started) / calls * 1e3


def compare(name: str, before_path: Path, data_dir: str) -> dict:
    card = json.loads((MODELS_DIR / f"{name}.json").read_text())
    windows, _ = last_windows(load_subset(card["subsets"][0], data_dir).test, card["window_length"])
    paths = {"before": before_path, "after": MODELS_DIR / f"{name}.onnx"}
    sessions = {k: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for k, p in paths.items()}
    outputs = {k: s.run(None, {"readings": windows}) for k, s in sessions.items()}
    identical = all(np.array_equal(a, b) for a, b in zip(outputs["before"], outputs["after"], strict=True))
    result: dict = {
        "nodes": {k: len(onnx.load(str(p)).graph.node) for k, p in paths.items()},
        "outputs_identical_on_test_windows": identical,
    }
    for batch, calls in ((1, 400), (256, 20)):
        repeated = np.resize(windows, (batch, *windows.shape[1:])).astype(np.float32)
        times: dict[str, list[float]] = {k: [] for k in sessions}
        for _ in range(ROUNDS):
            for key, session in sessions.items():
                times[key].append(median_ms(session, repeated, calls))
        medians = {k: float(np.median(v)) for k, v in times.items()}
        result[f"batch_{batch}_ms"] = medians | {"before_over_after": medians["before"] / medians["after"]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument(
        "--before-commit", default=BEFORE_COMMIT, help="where the earlier models are read from"
    )
    parser.add_argument("--models", nargs="+", default=["fd001", "fd004"])
    parser.add_argument("--result", default="static_graph", help="name of the result file in bench/results")
    args = parser.parse_args()
    results = {"machine": machine("cpu"), "before_commit": args.before_commit, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            before = Path(tmp) / f"{name}.onnx"
            before.write_bytes(subprocess.run(["git", "show", f"{args.before_commit}:models/{name}.onnx"],
                                              cwd=ROOT, capture_output=True, check=True).stdout)  # fmt: skip
            results["models"][name] = compare(name, before, args.data_dir)
            r = results["models"][name]
            print(f"{name}: nodes {r['nodes']['before']} -> {r['nodes']['after']}, identical outputs "
                  f"{r['outputs_identical_on_test_windows']}; batch 1 {r['batch_1_ms']['before']:.2f} -> "
                  f"{r['batch_1_ms']['after']:.2f} ms, batch 256 {r['batch_256_ms']['before']:.1f} -> "
                  f"{r['batch_256_ms']['after']:.1f} ms")  # fmt: skip
    write_result(args.result, "cpu", results)


if __name__ == "__main__":
    main()
