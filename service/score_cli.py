"""`rul-score`: score a fleet file offline, no server: one row per unit (or per cycle).

    rul-score ../shared/data/cmapss/test_FD001.txt.gz --model models/fd001.onnx --out fd001.csv
    rul-score ../shared/data/cmapss/test_FD001.txt.gz --model fd001    # a served model, by name

Output is CSV, or JSON when --out ends in .json (stdout when --out is not given).
"""

import argparse
import csv
import sys
from pathlib import Path

from pydantic import ValidationError
from tqdm import tqdm

from service.core import pipeline
from service.core.fleet_file import read_fleet
from service.core.fleet_layout import FleetFileError, FleetLayout
from service.core.planning import Planning, PlanningError, asked
from service.core.predictor import ModelLoadError, Predictor
from service.core.providers import ProviderUnavailable, SessionConfig
from service.core.scoring import FleetScore, score_fleet
from service.core.window_quality import flag_subject
from service.settings import Settings


def model_path(model: str, models_dir: Path) -> Path:
    """`--model` as a file: a path as given, else the model of that name in `models_dir`
    (case ignored, as the service looks models up). ValueError saying what exists when neither."""
    given = Path(model)
    if given.suffix == ".onnx" or given.exists() or len(given.parts) > 1:
        return given
    known = {p.stem.casefold(): p for p in sorted(models_dir.glob("*.onnx"))} if models_dir.is_dir() else {}
    if model.casefold() in known:
        return known[model.casefold()]
    names = ", ".join(p.stem for p in known.values()) or "none"
    raise ValueError(f"--model {model!r} is neither a file nor a model in {models_dir} (RUL_MODELS_DIR; its "
                     f"models: {names}); give a <name>.onnx path or one of those names")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file", type=Path, help="C-MAPSS text (.txt or .gz) or CSV with a header")
    parser.add_argument("--model", required=True,
                        help="a <name>.onnx with its <name>.json card beside it, or the name of a model in "
                             "the service's models directory (RUL_MODELS_DIR; e.g. fd001)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="output file (.csv or .json); default: CSV on stdout")
    parser.add_argument("--all-cycles", action="store_true", help="a prediction at every cycle of every unit")
    parser.add_argument("--providers", choices=["auto", "cuda", "tensorrt", "cpu"],
                        help="execution provider (default: RUL_PROVIDERS, else auto)")  # fmt: skip
    parser.add_argument("--engine", choices=["local", "spark"], default="local",
                        help="local: this process (default); spark: on Apache Spark (the spark extra), "
                             "reading Parquet, CSV or C-MAPSS text and writing Parquet or CSV")  # fmt: skip
    parser.add_argument("--master", default="local[*]", help="with --engine spark: the Spark master")
    parser.add_argument("--reject-out-of-distribution", action="store_true",
                        help="list out-of-distribution units as skipped, not predicted")  # fmt: skip
    parser.add_argument("--horizons", type=int, nargs="+",
                        help="horizons in cycles for the failure_probability_<h> columns "
                             "(default: RUL_DEFAULT_HORIZONS, else 30)")  # fmt: skip
    parser.add_argument("--explain", action="store_true",
                        help="also the sensors that drive each unit's RUL (driver_1 ... driver_5 columns, "
                             "with _effect in cycles and _reads); each unit's model run is repeated once "
                             "per read sensor; not with --all-cycles")  # fmt: skip
    parser.add_argument("--risk", type=float,
                        help="the risk for the rul_at_risk column, in (0, 0.5] (default: RUL_DEFAULT_RISK, "
                             "else 0.05)")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.explain and args.all_cycles:
        parser.error("--explain answers each unit's latest cycle; with --all-cycles it would run the "
                     "model once more per read sensor at every cycle: drop one of them")  # fmt: skip
    try:
        settings = Settings()
        args.model = model_path(args.model, settings.models_dir)
    except ValueError as exc:  # pydantic's ValidationError (a bad RUL_* variable) included
        sys.exit(f"rul-score: {exc}")
    defaults = settings.planning()
    args.planning = Planning(
        tuple(args.horizons or defaults.horizons), args.risk or defaults.risk, args.explain
    )
    if args.engine == "spark":
        _run_on_spark(args)
        return
    try:
        predictor = Predictor.load(args.model, SessionConfig(args.providers or settings.providers))
        args.planning = asked(
            args.horizons, args.risk, settings.planning(), predictor.card.rul_cap, args.explain
        )
        with open(args.file, "rb") as f:
            fleet = read_fleet(f, layout=FleetLayout.of(predictor.card))
    except (
        OSError,
        ModelLoadError,
        ProviderUnavailable,
        FleetFileError,
        ValidationError,
        PlanningError,
    ) as exc:  # noqa: E501
        sys.exit(f"rul-score: {exc}")
    with tqdm(total=len(fleet), unit="unit", desc=args.file.name, file=sys.stderr) as bar:
        result = score_fleet(predictor, fleet, args.all_cycles, bar.update, args.reject_out_of_distribution,
                             planning=args.planning)  # fmt: skip
    _report(result)
    if args.out and args.out.suffix == ".json":
        head = pipeline.head(predictor.card)
        args.out.write_bytes(result.json(head) + b"\n")
        return
    rows = result.csv_rows()
    if args.out:
        with open(args.out, "w", newline="") as out:
            csv.writer(out).writerows(rows)
    else:
        csv.writer(sys.stdout).writerows(rows)


def _report(result: FleetScore) -> None:
    """On stderr: every unit skipped, and every unit not answered `ok`, with what was flagged."""
    for skipped in result.skipped:
        print(f"rul-score: skipped {skipped['reason']}", file=sys.stderr)
    for unit, quality in zip(
        result.predictions.units.tolist(), result.predictions.answers.quality, strict=True
    ):
        if quality.status != "ok":
            columns = ", ".join(flag_subject(f.column, f.check) for f in quality.flags) or "no single column"
            print(f"rul-score: unit {unit} is {quality.status} (flagged: {columns})", file=sys.stderr)


def _run_on_spark(args: argparse.Namespace) -> None:
    """The same scoring on Spark (spark_scoring/, outside the service: imported only here)."""
    if args.reject_out_of_distribution:
        sys.exit("rul-score: --reject-out-of-distribution is not offered with --engine spark; filter on "
                 "the quality_status column instead")  # fmt: skip
    try:
        from spark_scoring.cli import run
    except ImportError as exc:
        sys.exit(f"rul-score: --engine spark needs PySpark ({exc}): pip install '.[spark]', and Java 17+")
    run(args)


if __name__ == "__main__":
    main()
