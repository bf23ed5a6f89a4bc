"""What the shipped ensembles cost at inference, against one of their members, side by side.

    python -m bench.ensemble_cost --data-dir ../shared/data/cmapss [--models fd001 fd002] [--against REV]

For each shipped model (an average of N networks), exports its first checkpoint alone, as
rul-export would build it from that checkpoint (checks included), to a temporary ONNX file
and times both with ONNX Runtime on the CPU, interleaved, at batch 1 and batch 256, on that
subset's real test windows. Prints and writes
bench/results/ensemble_cost.json: windows/s of each and the ensemble/single time ratio. With
`--against REV` (a git revision), the model file shipped at that revision is timed in the same
rounds too: what a new model costs against the one it replaces.
"""

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench.model_compute import ROOT, machine, rate, write_result
from training.data import load_subset
from training.ensemble import build_graph
from training.export import export_onnx
from training.windows import last_windows


def windows_per_second(session: ort.InferenceSession, batch: np.ndarray) -> float:
    return rate(lambda b: session.run(None, {"readings": b}), batch, seconds=1.0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--models", nargs="+", default=["fd001", "fd002", "fd003", "fd004"])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds per batch size")
    parser.add_argument("--against", metavar="REV", help="also time models/<name>.onnx of this git revision")
    args = parser.parse_args()
    if args.against:
        rev = ["git", "rev-parse", "--short", args.against]
        against = subprocess.run(rev, cwd=ROOT, capture_output=True, check=True, text=True).stdout.strip()
    results = {}
    for name in args.models:
        card = json.loads((ROOT / "models" / f"{name}.json").read_text())
        subset = load_subset(card["subsets"][0], args.data_dir)
        windows, _ = last_windows(subset.test, card["window_length"])
        with tempfile.TemporaryDirectory() as tmp:
            single_path = Path(tmp) / "single.onnx"
            first = str(ROOT / card["training"]["checkpoints"][0])
            graph, _, _ = build_graph([first], args.data_dir)
            export_onnx(graph, windows[:8], single_path)
            cpu = ["CPUExecutionProvider"]
            sessions = {
                "ensemble": ort.InferenceSession(str(ROOT / "models" / f"{name}.onnx"), providers=cpu),
                "single": ort.InferenceSession(str(single_path), providers=cpu),
            }
            entry = {"members": card["ensemble"]["members"], "version": card["version"]}
            if args.against:
                previous = Path(tmp) / "previous.onnx"
                show = ["git", "show", f"{args.against}:models/{name}.onnx"]
                previous.write_bytes(subprocess.run(show, cwd=ROOT, capture_output=True, check=True).stdout)
                sessions["previous"] = ort.InferenceSession(str(previous), providers=cpu)
                entry["previous"] = against
            for batch_size in (1, 256):
                batch = np.ascontiguousarray(np.resize(windows, (batch_size, *windows.shape[1:])))
                rates: dict[str, list[float]] = {kind: [] for kind in sessions}
                for _ in range(args.rounds):  # interleaved, so both see the same machine load
                    for kind, session in sessions.items():
                        rates[kind].append(windows_per_second(session, batch))
                ens, one = float(np.median(rates["ensemble"])), float(np.median(rates["single"]))
                entry[f"batch_{batch_size}"] = {"ensemble_windows_per_s": round(ens, 1),
                                                "single_windows_per_s": round(one, 1),
                                                "ensemble_time_over_single": round(one / ens, 2)}  # fmt: skip
                if args.against:
                    before = float(np.median(rates["previous"]))
                    cell = entry[f"batch_{batch_size}"]
                    cell["previous_windows_per_s"] = round(before, 1)
                    cell["time_over_previous"] = round(before / ens, 2)
        results[name] = entry
        print(name, json.dumps(entry))
    out = {"machine": machine("cpu"), "measured": time.strftime("%Y-%m-%d"), "models": results}
    write_result("ensemble_cost", "cpu", out)


if __name__ == "__main__":
    main()
