"""`rul-score INPUT --model M --out OUT --engine spark [--master URL]`, and the same job for
`spark-submit` (a cluster's master and resources come from spark-submit):

    spark-submit --master yarn spark_scoring/cli.py s3a://lake/telemetry fd001.onnx s3a://lake/rul

Reads Parquet, CSV with a header or C-MAPSS text (spark_scoring/job.py, `read_telemetry`) and
writes Parquet (OUT ending in anything but .csv) or CSV with a header: a directory of part
files, as Spark writes.
"""

import argparse
import os
import sys

from pyspark.sql import SparkSession

from service.core.planning import DEFAULT_HORIZONS, DEFAULT_PLANNING, DEFAULT_RISK, Planning
from spark_scoring.job import read_telemetry, score_fleet_spark


def spark_session(master: str | None) -> SparkSession:
    """A session for `master` (None: spark-submit's). On a local master the Python workers are
    this interpreter, so that they see the same packages."""
    builder = SparkSession.builder.appName("rul-score")
    if master:
        if master.startswith("local"):
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.master(master).config("spark.ui.enabled", "false")
    return builder.getOrCreate()


def score_to(
    master: str | None,
    source: str,
    model: str,
    out: str,
    all_cycles: bool,
    providers: str,
    program: str,
    planning: Planning = DEFAULT_PLANNING,
) -> None:
    """Score `source` into `out` in a session for `master`, stopped at the end; bad input or
    an unreadable path exits naming it, after `program`."""
    spark = spark_session(master)
    try:
        telemetry = read_telemetry(spark, source)
        scores = score_fleet_spark(telemetry, model, all_cycles, providers, None,  # type: ignore[arg-type]
                                   list(planning.horizons), planning.risk, planning.explain)  # fmt: skip
        if out.endswith(".csv"):
            scores.write.mode("overwrite").csv(out, header=True)
        else:
            scores.write.mode("overwrite").parquet(out)
    except (ValueError, OSError) as exc:
        sys.exit(f"{program}: {exc}")
    finally:
        spark.stop()


def run(args: argparse.Namespace) -> None:
    """rul-score --engine spark."""
    if not args.out:
        sys.exit("rul-score: --engine spark needs --out (a .parquet or .csv path; Spark writes a directory)")
    providers = args.providers or "cpu"
    score_to(args.master, str(args.file), str(args.model), str(args.out), args.all_cycles, providers,
             "rul-score", args.planning)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """spark-submit spark_scoring/cli.py INPUT MODEL OUT [--all-cycles] [--providers P]."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("input", help="telemetry: Parquet, CSV with a header, or C-MAPSS text")
    parser.add_argument("model", help="<name>.onnx with its <name>.json card beside it (e.g. via --files)")
    parser.add_argument("out", help="where to write the scores (.csv: CSV, else Parquet)")
    parser.add_argument("--all-cycles", action="store_true", help="a prediction at every cycle of every unit")
    parser.add_argument("--providers", default="cpu", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--horizons", type=int, nargs="+", default=list(DEFAULT_HORIZONS),
                        help="horizons in cycles for the failure_probability_<h> columns")  # fmt: skip
    parser.add_argument("--explain", action="store_true",
                        help="also each unit's drivers (driver_1 ... driver_5 with _effect and _reads); "
                             "not with --all-cycles")  # fmt: skip
    parser.add_argument("--risk", type=float, default=DEFAULT_RISK, help="the risk for rul_at_risk")
    args = parser.parse_args(argv)
    planning = Planning(tuple(args.horizons), args.risk, args.explain)
    score_to(None, args.input, args.model, args.out, args.all_cycles, args.providers, "rul-score on Spark",
             planning)  # fmt: skip


if __name__ == "__main__":
    main()
