"""`rul-score INPUT --model M --out OUT --engine spark [--master URL]`: the fleet scored on
Spark (spark_scoring/job.py), read from Parquet, CSV or C-MAPSS text and written as Parquet
(OUT ending in .parquet, or any other name) or CSV with a header (OUT ending in .csv): a
directory of part files, as Spark writes."""

import argparse
import os
import sys

from pyspark.sql import SparkSession

from spark_scoring.job import read_telemetry, score_fleet_spark


def spark_session(master: str) -> SparkSession:
    """A session for `master`; on a local master the Python workers are this interpreter, so
    that they see the same packages (on a cluster, spark-submit's settings decide)."""
    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("rul-score").master(master).config("spark.ui.enabled", "false")
    return builder.getOrCreate()


def run(args: argparse.Namespace) -> None:
    if not args.out:
        sys.exit("rul-score: --engine spark needs --out (a .parquet or .csv path; Spark writes a directory)")
    spark = spark_session(args.master)
    try:
        telemetry = read_telemetry(spark, str(args.file))
        scores = score_fleet_spark(telemetry, args.model, args.all_cycles, args.providers or "cpu")
        out = str(args.out)
        if out.endswith(".csv"):
            scores.write.mode("overwrite").csv(out, header=True)
        else:
            scores.write.mode("overwrite").parquet(out)
    except (ValueError, OSError) as exc:
        sys.exit(f"rul-score: {exc}")
    finally:
        spark.stop()
