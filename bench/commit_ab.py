"""One connection, this checkout against another commit's, side by side on the same machine:
single-window predict throughput of our service (batching on and off), alternating the two
trees so that the machine's drift hits both.

    git worktree add /tmp/old <commit>
    python -m bench.commit_ab --data-dir ../shared/data/cmapss --other /tmp/old [--rounds 2 --seconds 8]
"""

import argparse
import json
import tempfile
from pathlib import Path

from bench import service_bench
from bench.servers import ROOT, start_ours


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument(
        "--other", type=Path, required=True, help="the other commit's checkout (git worktree)"
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8)
    args = parser.parse_args()
    window_length = json.loads((ROOT / "models" / "fd001.json").read_text())["window_length"]
    windows = service_bench.real_windows(args.data_dir, 1, window_length)
    body = service_bench.bodies(windows, Path(tempfile.mkdtemp()))["ours"]
    runs: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for label, tree in (("this checkout", ROOT), (str(args.other), args.other)):
            for batching in (True, False):
                server = start_ours(batching, tree=tree)
                try:
                    service_bench.wrk(server, body, 8, 2)  # warm-up, not recorded
                    run = service_bench.wrk(server, body, 1, args.seconds)
                    runs.setdefault(f"{label}, batching {'on' if batching else 'off'}", []).append(
                        run["ok_per_s"]
                    )
                finally:
                    server.stop()
    print(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
