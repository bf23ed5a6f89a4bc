"""Fleet scoring on Spark (`local[2]`) against the single-process `rul-score`, side by side on
one synthetic fleet built from the C-MAPSS test units:

    python -m bench.spark_fleet --data-dir ../shared/data/cmapss

The fleet is test_FD001's 100 units copied `--copies` times under new unit numbers (765
copies: 10 018 440 rows, 76 500 units), written once as C-MAPSS text and as Parquet under
`--work-dir`. Each scorer runs as its own process through the same command (`rul-score`, with
and without `--engine spark`), scoring every unit at its last cycle with fd001 on the CPU;
measured: wall time (start to exit, reading and writing included), rows/s, and the peak RSS
of the process and all its children (the JVM and Spark's Python workers; sampled every 0.2
s). Spark also scores the Parquet copy, and a quarter of the fleet, to show its memory does
not grow with the fleet. Writes bench/results/spark_fleet.json. Not a test: ~15 minutes.
"""

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.model_compute import write_result
from bench.servers import ROOT, rss_mb
from service.core.fleet_layout import COLUMNS

MODEL = ROOT / "models" / "fd001.onnx"


def build_fleet(data_dir: Path, copies: int, work: Path) -> tuple[Path, Path, int]:
    """C-MAPSS text and Parquet of `copies` renumbered copies of test_FD001 (unit u of copy c
    becomes c * 1000 + u)."""
    text = gzip.decompress((data_dir / "test_FD001.txt.gz").read_bytes()).decode()
    lines = [line.split() for line in text.splitlines() if line.strip()]
    base = np.array(lines, dtype=np.float64)  # (13 096, 26)
    text_path, parquet_path = work / f"fleet_{copies}.txt", work / f"fleet_{copies}.parquet"
    if not text_path.exists():
        rest = [" ".join(fields[1:]) for fields in lines]
        units = [int(fields[0]) for fields in lines]
        with open(text_path, "w") as out:
            for copy in range(copies):
                out.write("".join(f"{copy * 1000 + u} {r}\n" for u, r in zip(units, rest, strict=True)))
    if not parquet_path.exists():
        schema = pa.schema([(c, pa.int64() if c in ("unit", "cycle") else pa.float64()) for c in COLUMNS])
        with pq.ParquetWriter(parquet_path, schema) as writer:
            for start in range(0, copies, 50):
                block = np.concatenate([base + np.eye(1, 26, 0) * copy * 1000
                                        for copy in range(start, min(start + 50, copies))])  # fmt: skip
                columns = {c: block[:, i].astype(np.int64) if c in ("unit", "cycle") else block[:, i]
                           for i, c in enumerate(COLUMNS)}  # fmt: skip
                writer.write_table(pa.table(columns, schema=schema))
    return text_path, parquet_path, len(base) * copies


def run(command: list[str], rows: int) -> dict[str, float]:
    """Wall time, rows/s and peak RSS (process tree) of `command`."""
    peak, done = [0.0], threading.Event()
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb(process.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{command} failed: {stderr[-2000:]}")
    return {"seconds": round(seconds, 1), "rows_per_s": round(rows / seconds), "peak_rss_mb": round(peak[0])}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--copies", type=int, default=765, help="copies of test_FD001 (765: >= 10 M rows)")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/rul-spark-bench"))
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    text, parquet, rows = build_fleet(args.data_dir, args.copies, args.work_dir)
    _, quarter_parquet, quarter_rows = build_fleet(args.data_dir, args.copies // 4, args.work_dir)
    score = [sys.executable, "-m", "service.score_cli"]
    model = ["--model", str(MODEL), "--providers", "cpu"]
    spark = [*model, "--engine", "spark", "--master", "local[2]"]
    out = str(args.work_dir / "out")
    results: dict[str, object] = {"rows": rows, "units": args.copies * 100}
    runs = {
        "rul-score, C-MAPSS text": ([*score, str(text), *model, "--out", out + ".csv"], rows),
        "spark local[2], C-MAPSS text": ([*score, str(text), *spark, "--out", out + "-t.parquet"], rows),
        "spark local[2], Parquet": ([*score, str(parquet), *spark, "--out", out + "-p.parquet"], rows),
        "spark local[2], Parquet, a quarter of the fleet": (
            [*score, str(quarter_parquet), *spark, "--out", out + "-q.parquet"], quarter_rows),
    }  # fmt: skip
    for name, (command, n) in runs.items():
        results[name] = {"rows": n, **run(command, n)}
        print(name, json.dumps(results[name]), flush=True)
    local = results["rul-score, C-MAPSS text"]["rows_per_s"]  # type: ignore[index]
    for name in runs:
        results[name]["ratio_to_rul_score"] = round(results[name]["rows_per_s"] / local, 2)  # type: ignore[index]
    for path in args.work_dir.glob("out*"):
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
    write_result("spark_fleet", "cpu", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
