"""Fleet scoring on a real local Spark (`local[2]`): the same answers as the score endpoint,
unit by unit, and bad input named. `.ci/run` installs Java and the spark extra; elsewhere the
tests are skipped when PySpark or Java is missing (never in CI, where they must run)."""

import gzip
import os
import shutil
import sys

import pytest

try:
    import pyspark  # noqa: F401
except ImportError:
    pyspark = None
if (pyspark is None or shutil.which("java") is None) and os.environ.get("CI"):
    raise RuntimeError("CI must install the spark extra and Java for the Spark tests (.ci/run does)")
if pyspark is None:  # its imports below cannot run: the module is skipped as one
    pytest.skip("PySpark is not installed (pip install '.[spark]')", allow_module_level=True)
# Java missing: each test is skipped, and counted in pytest's summary
pytestmark = pytest.mark.skipif(
    shutil.which("java") is None, reason="Java is not installed (apt-get install default-jre-headless)"
)

from fastapi.testclient import TestClient  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from service.app import create_app  # noqa: E402
from service.score_cli import main as score_main  # noqa: E402
from service.settings import Settings  # noqa: E402
from spark_scoring.job import read_telemetry, score_fleet_spark  # noqa: E402
from tests.conftest import MODELS_DIR  # noqa: E402


@pytest.fixture(scope="module")
def spark():
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def api():
    with TestClient(create_app(Settings(models_dir=MODELS_DIR, providers="cpu"))) as client:
        yield client


def _endpoint(api, model: str, text: bytes, all_cycles: bool) -> list[dict]:
    query = "?all_cycles=true" if all_cycles else ""
    body = api.post(f"/v1/models/{model}/score{query}", files={"file": ("f.txt", text)}).json()
    if all_cycles:
        return [point for unit in body["trajectories"] for point in unit["points"]]
    return body["predictions"]


def _assert_same(spark_rows, endpoint: list[dict]) -> None:
    ours = {(int(r["unit"]), int(r["cycle"])): r for r in spark_rows}
    assert len(ours) == len(endpoint) and len(endpoint) > 0
    for want in endpoint:
        got = ours[(want["unit"], want["cycle"])]
        assert abs(got["rul"] - want["rul"]) <= 1e-4, (want["unit"], want["cycle"])
        assert got["health_state"] == want["health_state"]
        assert (got["cycles_used"], bool(got["padded"])) == (want["cycles_used"], want["padded"])
        assert (got["rul_upper"] is None) == (want["rul_upper"] is None)
        assert got["quality_status"] == want["quality"]["status"]


def _text(cmapss_dir, name: str, max_unit: int | None = None) -> bytes:
    text = gzip.decompress((cmapss_dir / f"{name}.txt.gz").read_bytes()).decode()
    lines = [line for line in text.splitlines() if max_unit is None or int(line.split()[0]) <= max_unit]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("model, subset", [("fd001", "test_FD001"), ("fd002", "test_FD002")])
def test_last_cycle_scores_equal_the_score_endpoint(spark, api, cmapss_dir, model, subset):
    telemetry = read_telemetry(spark, str(cmapss_dir / f"{subset}.txt.gz"))
    rows = score_fleet_spark(telemetry, MODELS_DIR / f"{model}.onnx").collect()
    _assert_same([r.asDict() for r in rows], _endpoint(api, model, _text(cmapss_dir, subset), False))


@pytest.mark.parametrize(
    "model, subset, max_unit", [("fd001", "test_FD001", None), ("fd002", "test_FD002", 30)]
)
def test_all_cycles_scores_equal_the_score_endpoint(
    spark, api, cmapss_dir, tmp_path, model, subset, max_unit
):
    text = _text(cmapss_dir, subset, max_unit)
    (tmp_path / "fleet.txt").write_bytes(text)
    telemetry = read_telemetry(spark, str(tmp_path / "fleet.txt"))
    rows = score_fleet_spark(telemetry, MODELS_DIR / f"{model}.onnx", all_cycles=True).collect()
    _assert_same([r.asDict() for r in rows], _endpoint(api, model, text, True))


def test_key_columns_are_kept_and_tell_units_apart(spark, cmapss_dir):
    telemetry = read_telemetry(spark, str(cmapss_dir / "test_FD001.txt.gz")).filter(F.col("unit") <= 5)
    two_fleets = telemetry.withColumn("fleet", F.lit("north")).unionByName(
        telemetry.withColumn("fleet", F.lit("south"))
    )
    rows = score_fleet_spark(two_fleets, MODELS_DIR / "fd001.onnx").collect()
    assert rows[0].__fields__[0] == "fleet" and len(rows) == 10
    by_fleet = {(r["fleet"], r["unit"]): r["rul"] for r in rows}
    assert all(abs(by_fleet[("north", u)] - by_fleet[("south", u)]) <= 1e-4 for u in range(1, 6))


def test_engine_serials_stay_text_and_score_as_the_endpoint_does(spark, api, cmapss_dir, tmp_path):
    """Unit ids that are not numbers (engine serials) are kept as text, in Spark as in the API."""
    header = "unit,cycle," + ",".join([f"setting_{i}" for i in (1, 2, 3)] + [f"s_{i}" for i in range(1, 22)])
    lines = _text(cmapss_dir, "test_FD001", max_unit=4).decode().splitlines()
    rows = [",".join([f"ESN-{line.split()[0]}", *line.split()[1:]]) for line in lines]
    csv_text = "\n".join([header, *rows]) + "\n"
    (tmp_path / "fleet.csv").write_text(csv_text)
    got = score_fleet_spark(read_telemetry(spark, str(tmp_path / "fleet.csv")), MODELS_DIR / "fd001.onnx")
    ours = {r["unit"]: r["rul"] for r in got.collect()}
    body = api.post("/v1/models/fd001/score", files={"file": ("fleet.csv", csv_text.encode())}).json()
    want = {p["unit"]: p["rul"] for p in body["predictions"]}
    assert sorted(ours) == sorted(want) == ["ESN-1", "ESN-2", "ESN-3", "ESN-4"]
    assert all(abs(ours[u] - want[u]) <= 1e-4 for u in want)


def test_a_missing_column_is_named(spark, cmapss_dir):
    telemetry = read_telemetry(spark, str(cmapss_dir / "test_FD001.txt.gz")).drop("s_4")
    with pytest.raises(ValueError, match="the telemetry has no column s_4"):
        score_fleet_spark(telemetry, MODELS_DIR / "fd001.onnx")


def test_a_word_in_a_number_column_is_named_with_its_unit(spark, cmapss_dir, tmp_path):
    text = _text(cmapss_dir, "test_FD001", max_unit=3).decode().splitlines()
    header = "unit,cycle," + ",".join([f"setting_{i}" for i in (1, 2, 3)] + [f"s_{i}" for i in range(1, 22)])
    rows = [",".join(line.split()) for line in text]
    rows[-1] = ",".join(rows[-1].split(",")[:8] + ["abc"] + rows[-1].split(",")[9:])  # unit 3, s_4
    (tmp_path / "fleet.csv").write_text("\n".join([header, *rows]) + "\n")
    telemetry = read_telemetry(spark, str(tmp_path / "fleet.csv"))
    with pytest.raises(ValueError, match=r"column s_4 of unit 3, cycle \d+ holds 'abc', not a number"):
        score_fleet_spark(telemetry, MODELS_DIR / "fd001.onnx")


def test_a_nan_reading_is_named_with_its_unit(spark, cmapss_dir):
    telemetry = read_telemetry(spark, str(cmapss_dir / "test_FD001.txt.gz"))
    broken = telemetry.withColumn(
        "s_7",
        F.when((F.col("unit") == 4) & (F.col("cycle") == 10), F.lit(float("nan"))).otherwise(F.col("s_7")),
    )
    with pytest.raises(ValueError, match="column s_7 of unit 4, cycle 10 is NaN"):
        score_fleet_spark(broken, MODELS_DIR / "fd001.onnx")


def test_rul_score_engine_spark_writes_rul_scores_columns(cmapss_dir, tmp_path, spark):
    out = tmp_path / "scores.csv"
    score_main([str(cmapss_dir / "test_FD001.txt.gz"), "--model", str(MODELS_DIR / "fd001.onnx"),
                "--out", str(out), "--engine", "spark", "--master", "local[2]"])  # fmt: skip
    parts = sorted(out.glob("part-*.csv"))
    lines = [line for part in parts for line in part.read_text().splitlines()]
    header = lines[0].split(",")
    assert header[:8] == [
        "unit",
        "cycle",
        "cycles_used",
        "padded",
        "rul",
        "rul_lower",
        "rul_upper",
        "health_state",
    ]
    assert header[-3:] == ["quality_status", "ood_score", "flagged_columns"]
    assert len([line for line in lines if not line.startswith("unit,")]) == 100
