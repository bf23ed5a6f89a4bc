"""Peak memory of batch scoring a large fleet file, against the file's size.

    python -m bench.fleet_memory --data-dir ../shared/data/cmapss --mb 50

Builds a C-MAPSS text file of about --mb megabytes by repeating test_FD004's units under new
unit numbers, then, in a fresh process, reads and scores it with models/fd001.onnx (last
cycle per unit) and reports the growth of peak RSS over the process's RSS before reading.
Target (issue: batch scoring): the growth stays under 10x the file size.
Writes bench/results/fleet_memory.json.
"""

import argparse
import gzip
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import io, json, resource, sys, time
from pathlib import Path
from service.core.fleet_file import read_fleet
from service.core.predictor import Predictor
from service.core.providers import SessionConfig
from service.core.scoring import score_fleet
predictor = Predictor.load(Path(sys.argv[2]), SessionConfig("cpu"))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
with open(sys.argv[1], "rb") as f:
    fleet = read_fleet(f)
result = score_fleet(predictor, fleet)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"units": len(result.predictions), "rows": sum(len(c) for c, _ in fleet.values()),
                  "rss_before_kib": before, "rss_peak_kib": peak, "seconds": seconds}))
"""


def build_file(data_dir: Path, target_mb: float, path: Path) -> None:
    with gzip.open(data_dir / "test_FD004.txt.gz", "rt") as f:
        lines = [line.split(maxsplit=1) for line in f if line.strip()]
    n_units = max(int(u) for u, _ in lines)
    with open(path, "w") as out:
        copy = 0
        while out.tell() < target_mb * 1e6:
            for unit, rest in lines:
                out.write(f"{int(unit) + copy * n_units} {rest}")
            copy += 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--mb", type=float, default=50.0)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "fd001.onnx")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fleet.txt"
        build_file(args.data_dir, args.mb, path)
        size = path.stat().st_size
        child = subprocess.run([sys.executable, "-c", CHILD, str(path), str(args.model)], capture_output=True,
                               text=True, check=True, cwd=ROOT)  # fmt: skip
    measured = json.loads(child.stdout)
    growth = (measured["rss_peak_kib"] - measured["rss_before_kib"]) * 1024
    result = {
        "file_bytes": size,
        **measured,
        "rss_growth_bytes": growth,
        "growth_over_file_size": round(growth / size, 2),
        "target": "< 10x the file size",
        "machine": f"{platform.machine()}, {platform.python_version()}, measured {time.strftime('%Y-%m-%d')}",
    }
    out = ROOT / "bench" / "results" / "fleet_memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
