"""Score a fleet's telemetry on Apache Spark with a shipped ONNX model:

    from spark_scoring.job import score_fleet_spark
    scores = score_fleet_spark(spark.read.parquet("s3://lake/telemetry"), "models/fd001.onnx")

The input has the columns `unit, cycle, setting_1..3, s_1..s_21`; any other column (a fleet,
an engine serial) is a key kept in the output, a unit being identified by its keys and its
number. The output has one row per unit at its last cycle, or with `all_cycles` one per cycle
from the model's minimum on, with the columns `rul-score` writes (`unit, cycle, cycles_used,
padded, rul, rul_lower, rul_upper, health_state, p_<state>..., quality_status, ood_score,
flagged_columns`) after the keys. Units shorter than the model's minimum are left out, as in
`rul-score`.

How: the rows are hash-partitioned by keys and unit and sorted by cycle within each partition;
each task reads its partition as Arrow batches (`mapInPandas`) and scores every unit it has
seen in full with the service's own code (`service.core.scoring.score_fleet`: the same windows,
padding, input checks and numbers as POST /v1/models/{model}/score), the windows of many units
in one ONNX Runtime run. Each Python worker process loads the model once (the file shipped
with the job by `addFile`), with one intra-op thread, since Spark runs one task per core.
Memory per task: SCORE_ROWS rows plus one unit's, whatever the fleet's size.
"""

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark import SparkFiles
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from service.core.answers import UnitAnswers, column_names
from service.core.fleet_layout import COLUMNS, FleetLayout
from service.core.model_card import ModelCard
from service.core.planning import Planning, asked
from service.core.predictor import Predictor
from service.core.providers import ProviderChoice, SessionConfig
from service.core.scoring import score_fleet

_PREDICTORS: dict[str, Predictor] = {}  # per Python worker process: model file -> loaded model


def output_schema(
    df: DataFrame, health_states: list[str], planning: Planning, layout: FleetLayout, text_units: bool
) -> T.StructType:
    """The key columns as they come, then rul-score's columns (unit ids as text where the
    telemetry's are not all numbers)."""
    keys = [f for f in df.schema.fields if f.name not in layout.columns]
    types: dict[str, T.DataType] = {  # every other column is a double
        "unit": T.StringType() if text_units else T.LongType(), "cycle": T.LongType(),
        "cycles_used": T.IntegerType(),
        "padded": T.BooleanType(), "health_state": T.StringType(),
        "quality_status": T.StringType(), "flagged_columns": T.StringType(),
    }  # fmt: skip
    columns = column_names(health_states, planning)
    for name in columns:  # with explain: each driver's name and side are text, its effect a number
        if name == "drivers_note" or (name.startswith("driver_") and not name.endswith("_effect")):
            types[name] = T.StringType()
    return T.StructType([*keys, *(T.StructField(c, types.get(c, T.DoubleType())) for c in columns)])


def check_input(df: DataFrame, layout: FleetLayout | None = None) -> None:
    """ValueError naming the column, and the unit and cycle of the first bad row, for a missing
    column, a cell that is not a number, or an empty or NaN reading (one pass over the data).
    The columns are the model's (`layout`; default: C-MAPSS's); unit ids may be text."""
    layout = layout or FleetLayout()
    missing = [c for c in layout.columns if c not in df.columns]
    if missing:
        raise ValueError(f"the telemetry has no column {', '.join(missing)}; it needs {layout.describe()} "
                         f"(it has {', '.join(df.columns)})")  # fmt: skip
    bad_cell = F.col(f"`{layout.unit}`").isNull()
    numeric = layout.columns[1:]
    for name in numeric:
        number = _number(name)
        bad_cell = bad_cell | number.isNull() | F.isnan(number)
    bad = df.filter(bad_cell).limit(1).collect()
    if not bad:
        return
    row = bad[0]
    if row[layout.unit] is None:
        raise ValueError(f"column {layout.unit} of the row at {layout.cycle} {row[layout.cycle]} is empty")
    for name in numeric:
        value = row[name]
        if value is None:
            raise ValueError(f"column {name} of {_where(row, layout)} is empty")
        number = _as_float(value)
        if number is None:
            raise ValueError(f"column {name} of {_where(row, layout)} holds {value!r}, not a number")
        if np.isnan(number):
            raise ValueError(f"column {name} of {_where(row, layout)} is NaN")


def _number(name: str) -> Any:
    """The column as a double, null where it is not a number (whatever Spark's ANSI mode)."""
    return F.expr(f"try_cast(`{name}` AS DOUBLE)")


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _where(row: Any, layout: FleetLayout) -> str:
    return f"{layout.unit} {row[layout.unit]}, {layout.cycle} {row[layout.cycle]}"


def score_fleet_spark(
    df: DataFrame,
    model: str | Path,
    all_cycles: bool = False,
    providers: ProviderChoice = "cpu",
    partitions: int | None = None,
    horizons: list[int] | None = None,
    risk: float | None = None,
    explain: bool = False,
) -> DataFrame:
    """A DataFrame of predictions for the telemetry `df` (checked first: check_input) with the
    model `model` (<name>.onnx with its <name>.json card beside it). Lazy, like any Spark
    transformation: write or collect it. `partitions`: how many pieces the fleet is split into
    by unit (default: twice the default parallelism). `horizons` and `risk`: what the
    failure_probability_<h> and rul_at_risk columns answer (default: service/core/planning.py's);
    `explain`: also each unit's drivers (driver_1 ... driver_5, their _effect and _reads, and
    drivers_note; not with `all_cycles`). ValueError naming the field for values the model
    cannot answer."""
    model_path = Path(model).resolve()
    card = ModelCard.model_validate_json(model_path.with_suffix(".json").read_bytes())
    layout = FleetLayout.of(card)
    check_input(df, layout)
    # unit ids stay text where any is not a number (engine serials); else integers, as before
    text_units = df.filter(_number(layout.unit).isNull()).limit(1).count() > 0
    planning = asked(horizons, risk, Planning(), card.rul_cap, explain)
    if explain and all_cycles:
        raise ValueError("explain answers each unit's latest cycle; with all_cycles it would run the model "
                         "once more per read sensor at every cycle: drop one of them")  # fmt: skip
    spark = df.sparkSession
    spark.sparkContext.addFile(str(model_path))
    spark.sparkContext.addFile(str(model_path.with_suffix(".json")))
    keys = [c for c in df.columns if c not in layout.columns]
    unit = F.col(f"`{layout.unit}`").cast("string") if text_units else _number(layout.unit).cast("long")
    typed = df.select(*keys, unit.alias("unit"), _number(layout.cycle).cast("long").alias("cycle"),
                      *(_number(c).alias(c) for c in layout.features))  # fmt: skip
    count = partitions or 2 * spark.sparkContext.defaultParallelism
    ordered = typed.repartition(count, *keys, "unit").sortWithinPartitions(*keys, "unit", "cycle")
    score = partial(_score_partitions, model_file=model_path.name, providers=providers,
                    all_cycles=all_cycles, keys=keys, planning=planning)  # fmt: skip
    return ordered.mapInPandas(score, output_schema(df, card.health_states, planning, layout, text_units))


def _predictor(model_file: str, providers: ProviderChoice) -> Predictor:
    path = SparkFiles.get(model_file)
    if path not in _PREDICTORS:
        _PREDICTORS[path] = Predictor.load(Path(path), SessionConfig(providers, intra_op_threads=1))
    return _PREDICTORS[path]


# Rows gathered from a partition's Arrow batches (10 000 rows each by default) before its
# complete units are scored: ~760 units of C-MAPSS length per ONNX Runtime run instead of ~76,
# where a run's cost per window is lower; ~20 MB per task.
SCORE_ROWS = 100_000


def _score_partitions(
    batches: Iterator[pd.DataFrame],
    model_file: str,
    providers: ProviderChoice,
    all_cycles: bool,
    keys: list[str],
    planning: Planning,
) -> Iterator[pd.DataFrame]:
    """Arrow batches of a partition sorted by keys, unit and cycle -> predictions, scored
    SCORE_ROWS rows at a time. A unit's rows may go on into the next batch: the last unit
    seen waits for it."""
    gathered: list[pd.DataFrame] = []
    size = 0
    for batch in batches:
        gathered.append(batch)
        size += len(batch)
        if size < SCORE_ROWS:
            continue
        rows = pd.concat(gathered, ignore_index=True)
        ids = rows[[*keys, "unit"]]
        last = (ids == ids.iloc[-1]).all(axis=1).to_numpy()
        gathered, size = [rows[last]], int(last.sum())
        if not last.all():
            yield _score(_predictor(model_file, providers), rows[~last], all_cycles, keys, planning)
    if size:
        rows = pd.concat(gathered, ignore_index=True)
        yield _score(_predictor(model_file, providers), rows, all_cycles, keys, planning)


def _score(
    predictor: Predictor, rows: pd.DataFrame, all_cycles: bool, keys: list[str], planning: Planning
) -> pd.DataFrame:
    """Every unit in `rows` (whole units, sorted by cycle), per key group, with score_fleet."""
    frames = []
    groups = rows.groupby(keys, sort=False, dropna=False) if keys else [((), rows)]
    for key, part in groups:
        features = list(predictor.card.input_features)
        fleet: dict[int | str, tuple[np.ndarray, np.ndarray]] = {}
        for unit, unit_rows in part.groupby("unit", sort=False):
            cycles = unit_rows["cycle"].to_numpy(np.int64)
            repeated = cycles[1:][np.diff(cycles) == 0]
            if len(repeated):
                raise ValueError(f"unit {unit} has cycle {repeated[0]} twice; each cycle must appear once")
            unit_id = str(unit) if isinstance(unit, str) else int(unit)
            fleet[unit_id] = (cycles, unit_rows[features].to_numpy(np.float32))
        frame = _frame(score_fleet(predictor, fleet, all_cycles, planning=planning).scored())
        for name, value in zip(keys, key if isinstance(key, tuple) else (key,), strict=True):
            frame.insert(keys.index(name), name, value)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _frame(scores: UnitAnswers) -> pd.DataFrame:
    """rul-score's columns (`column_names`), as numbers (an open upper bound: null)."""
    types = {
        "unit": "int64" if scores.units.dtype != object else "object", "cycle": "int64",
        "cycles_used": "int32", "padded": "bool",
        "rul": "float64", "rul_lower": "Float64", "rul_upper": "Float64", "ood_score": "float64",
    }  # fmt: skip
    columns = scores.columns()
    types |= {name: "Float64" for name in columns if name.startswith("driver_") and name.endswith("_effect")}
    return pd.DataFrame(columns).astype(types)


def read_telemetry(spark: Any, path: str) -> DataFrame:
    """Parquet (a .parquet file or a directory of them), CSV with a header (.csv), or C-MAPSS
    text (.txt, plain or gzipped: 26 numbers a line, separated by spaces)."""
    name = path.rstrip("/").lower()
    if name.endswith((".txt", ".txt.gz", ".gz")):
        fields = F.split(F.trim(F.col("value")), r"\s+")
        lines = spark.read.text(path).filter(F.trim(F.col("value")) != "")
        return lines.select(*(fields.getItem(i).alias(c) for i, c in enumerate(COLUMNS)))  # checked later
    if name.endswith(".csv"):
        return spark.read.csv(path, header=True, inferSchema=True)
    return spark.read.parquet(path)
