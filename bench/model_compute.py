"""Model compute: windows/s of each shipped model in ONNX Runtime against PyTorch eager with
the same weights, at several batch sizes, and the achieved GFLOP/s against this machine's
sgemm peak measured in the same run.

    python -m bench.model_compute --data-dir ../shared/data/cmapss [--models fd001] [--rounds 3]
    python -m bench.model_compute --data-dir ../shared/data/cmapss --provider cuda   # on a GPU host
    python -m bench.model_compute --data-dir ../shared/data/cmapss --models fd001 --intra-op-threads 1

For each shipped model the PyTorch side is the ServingGraph rebuilt from the checkpoints the
card lists (what `rul-export` exported: preprocessing, every member, the interval), in eval
mode under `torch.inference_mode()`; the ONNX side is the shipped `.onnx` file on the CPU
provider. Both read the subset's real test windows (repeated to fill a batch), are timed in
interleaved rounds so both see the same machine load, and use every core (ORT's default intra-op
threads, torch's default threads). The sgemm peak is numpy float32 matmul of 2048 x 2048
matrices, the best of several timings, measured before and after the models.

With `--provider cuda` the ONNX side runs on ONNX Runtime's CUDA execution provider (created as
the service creates it, `service.core.providers.create_session`, which refuses to fall back to the
CPU) and the PyTorch side on the GPU; both take numpy windows and return numpy outputs, so both
pay the host-device copies a service pays. The peak is then cuBLAS float32 matmul (TF32 off) of
8192 x 8192 matrices through torch. Results go to model_compute_cuda.json, named after the GPU.

FLOPs are counted from the model's ModelConfig (see `flops_per_window`): the multiply-adds of
the convolution, the BiLSTM gates (input and recurrent), the attention scorer and the heads,
two FLOPs each, times the ensemble's members. Element-wise work (activations, normalisation,
softmax) is left out, so the GFLOP/s figures are slightly conservative. torch's own
FlopCounterMode is not used because it does not count the LSTM, which is ~80 % of the work.

`--intra-op-threads N` gives ONNX Runtime N threads (RUL_INTRA_OP_THREADS, as the service
would) and writes model_compute_intra<N>.json instead.

Writes bench/results/model_compute.json and prints a table.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from service.core.providers import SessionConfig, create_session
from training.config import ModelConfig
from training.data import load_subset
from training.ensemble import build_graph
from training.windows import last_windows

ROOT = Path(__file__).resolve().parents[1]
BATCH_SIZES = (1, 32, 256, 1024)


def flops_per_window(config: ModelConfig, window_length: int) -> int:
    """Multiply-adds x 2 of one network on one window (element-wise work not counted)."""
    w, h = window_length, config.lstm_hidden
    conv = w * config.n_features * config.conv_channels * config.conv_kernel
    lstm, lstm_in = 0, config.conv_channels
    for _ in range(config.lstm_layers):
        lstm += 2 * w * 4 * h * (lstm_in + h)  # two directions, four gates, input + recurrent
        lstm_in = 2 * h
    dim = 2 * h
    attention = w * (dim * config.attention_dim + config.attention_dim)
    heads = 2 * dim * config.head_hidden + config.head_hidden * (1 + 3)
    return 2 * (conv + lstm + attention + heads)


def sgemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best observed float32 matmul rate of numpy's BLAS on this machine, all cores."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


def cuda_sgemm_gflops(n: int = 8192, repeats: int = 5) -> float:
    """Best observed float32 matmul rate of cuBLAS through torch (TF32 off) on the GPU."""
    torch.backends.cuda.matmul.allow_tf32 = False
    generator = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn((n, n), device="cuda", generator=generator)
    b = torch.randn((n, n), device="cuda", generator=generator)
    a @ b  # warm
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


def machine(provider: str) -> str:
    """The machine a benchmark ran on, as its result file names it."""
    host = f"{platform.machine()}, {os.cpu_count()} cores"
    if provider == "cuda":
        return f"{torch.cuda.get_device_name()}, CUDAExecutionProvider; host {host}"
    return f"{host}, CPUExecutionProvider"


def write_result(stem: str, provider: str, result: dict) -> None:
    """bench/results/<stem>.json, or <stem>_cuda.json for the CUDA provider."""
    suffix = "_cuda" if provider == "cuda" else ""
    (ROOT / "bench" / "results" / f"{stem}{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")


def rate(run, batch: np.ndarray, seconds: float) -> float:
    """Windows per second of `run(batch)` over about `seconds`, after one warm call."""
    run(batch)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        run(batch)
        calls += 1
    return calls * len(batch) / (time.perf_counter() - started)


def bench_model(name: str, data_dir: str, rounds: int, seconds: float, provider: str = "cpu",
                batch_sizes: tuple[int, ...] = BATCH_SIZES, intra_op_threads: int = 0) -> dict:  # fmt: skip
    card = json.loads((ROOT / "models" / f"{name}.json").read_text())
    checkpoints = [str(ROOT / p) for p in card["training"]["checkpoints"]]
    graph, loaded, subset = build_graph(checkpoints, data_dir)
    device = "cuda" if provider == "cuda" else "cpu"
    graph.eval().to(device)
    session_config = SessionConfig(providers=provider, intra_op_threads=intra_op_threads)
    session = create_session(ROOT / "models" / f"{name}.onnx", session_config)
    input_name = session.get_inputs()[0].name
    windows, _ = last_windows(load_subset(card["subsets"][0], data_dir).test, card["window_length"])
    config = ModelConfig(**loaded[0]["model_config"])
    flops = flops_per_window(config, card["window_length"]) * len(checkpoints)

    def run_ort(batch: np.ndarray) -> None:
        session.run(None, {input_name: batch})

    def run_torch(batch: np.ndarray) -> None:
        with torch.inference_mode():  # numpy in, numpy out: the copies a service pays
            [output.cpu().numpy() for output in graph(torch.from_numpy(batch).to(device))]

    entry: dict = {
        "members": len(checkpoints),
        "window_length": card["window_length"],
        "mflops_per_window": round(flops / 1e6, 3),
    }
    for batch_size in batch_sizes:
        batch = np.ascontiguousarray(np.resize(windows, (batch_size, *windows.shape[1:])))
        rates: dict[str, list[float]] = {"onnxruntime": [], "pytorch": []}
        for _ in range(rounds):  # interleaved: both runtimes see the same machine load
            rates["onnxruntime"].append(rate(run_ort, batch, seconds))
            rates["pytorch"].append(rate(run_torch, batch, seconds))
        ort_rate, torch_rate = float(np.median(rates["onnxruntime"])), float(np.median(rates["pytorch"]))
        entry[f"batch_{batch_size}"] = {
            "onnxruntime_windows_per_s": round(ort_rate, 1),
            "pytorch_windows_per_s": round(torch_rate, 1),
            "onnxruntime_over_pytorch": round(ort_rate / torch_rate, 2),
            "onnxruntime_gflops": round(ort_rate * flops / 1e9, 2),
            "pytorch_gflops": round(torch_rate * flops / 1e9, 2),
        }
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--models", nargs="+", default=["fd001", "fd002", "fd003", "fd004"])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds per batch size")
    parser.add_argument("--seconds", type=float, default=1.0, help="timing length of one round")
    parser.add_argument("--provider", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES))
    parser.add_argument("--intra-op-threads", type=int, default=0, help="ORT's threads (0: its default)")
    args = parser.parse_args()
    batch_sizes = tuple(args.batch_sizes)
    on_gpu = args.provider == "cuda"
    if on_gpu and not torch.cuda.is_available():
        parser.error("--provider cuda needs a GPU that torch can see")
    peak_gflops = cuda_sgemm_gflops if on_gpu else sgemm_gflops
    peak_name = "cuBLAS float32 8192^2 via torch, TF32 off" if on_gpu else "numpy float32 2048^2"

    peaks = [peak_gflops()]
    models = {}
    for name in args.models:
        models[name] = bench_model(name, args.data_dir, args.rounds, args.seconds, args.provider, batch_sizes,
                                   args.intra_op_threads)  # fmt: skip
        peaks.append(peak_gflops())
    peak = max(peaks)
    for entry in models.values():
        for batch_size in batch_sizes:
            cell = entry[f"batch_{batch_size}"]
            cell["onnxruntime_share_of_sgemm_peak"] = round(cell["onnxruntime_gflops"] / peak, 4)

    all_peaks = ", ".join(f"{p:.1f}" for p in peaks)
    print(f"sgemm peak ({peak_name}, best of runs): {peak:.1f} GFLOP/s; all: {all_peaks}")
    print(
        f"{'model':6} {'batch':>5} {'ORT w/s':>10} {'torch w/s':>10} {'ORT/torch':>9} "
        f"{'ORT GFLOP/s':>11} {'of peak':>7}"
    )
    for name, entry in models.items():
        for batch_size in batch_sizes:
            c = entry[f"batch_{batch_size}"]
            print(
                f"{name:6} {batch_size:5d} {c['onnxruntime_windows_per_s']:10.0f} "
                f"{c['pytorch_windows_per_s']:10.0f} {c['onnxruntime_over_pytorch']:9.2f} "
                f"{c['onnxruntime_gflops']:11.2f} {c['onnxruntime_share_of_sgemm_peak']:7.1%}"
            )
    out = {
        "machine": machine(args.provider),
        "measured": time.strftime("%Y-%m-%d %H:%M"),
        "versions": {"onnxruntime": ort.__version__, "torch": torch.__version__, "numpy": np.__version__},
        "threads": {
            "torch": torch.get_num_threads(),
            "onnxruntime": args.intra_op_threads or "default (one per core)",
        },  # fmt: skip
        "sgemm_peak": peak_name,
        "sgemm_peak_gflops": round(peak, 2),
        "sgemm_gflops_all": [round(p, 2) for p in peaks],
        "models": models,
    }
    stem = f"model_compute_intra{args.intra_op_threads}" if args.intra_op_threads else "model_compute"
    write_result(stem, args.provider, out)


if __name__ == "__main__":
    main()
