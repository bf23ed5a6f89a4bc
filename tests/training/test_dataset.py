"""A data set described by a TOML file: C-MAPSS through its specs, an operator-like export
(string serials, renamed and shuffled columns, other units, extra columns, spreadsheet CSV),
and every problem in the files refused with the file, the line or unit, and the column."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from training.conditions import count_conditions
from training.data import load_subset
from training.dataset import load_dataset
from training.dataset_spec import DatasetError, load_spec

SENSORS = [f"s_{i}" for i in range(2, 10)]  # a few sensors are enough for the reader


def _spec(tmp_path: Path, **overrides: str) -> Path:
    lines = {
        "name": '"fleet-a"', "unit": '"esn"', "cycle": '"flight"', "settings": '["alt", "mach"]',
        "sensors": '["T24", "T30", "P30"]', "operating_conditions": "1", "train": '["train.csv"]',
        "test": '["test.csv"]', "test_rul": '"test_rul.csv"',
    }  # fmt: skip
    lines.update(overrides)
    text = "\n".join(f"{k} = {v}" for k, v in lines.items() if v is not None)
    (tmp_path / "fleet.toml").write_text(text + "\n")
    return tmp_path / "fleet.toml"


def _history(esn: str, n: int, start: float, sep: str = ",", comma: bool = False) -> list[str]:
    rows = []
    for i in range(n):
        values = [
            f"{start + i * 0.5:.2f}",
            "0.84",
            f"{550 + i:.1f}",
            f"{1400 + 2 * i:.1f}",
            f"{21.6 - i / 10:.3f}",
        ]
        if comma:
            values = [v.replace(".", ",") for v in values]
        rows.append(
            sep.join([f"extra-{i}", values[2], esn, str(i + 1), values[0], values[1], values[3], values[4]])
        )
    return rows


HEADER = ["note", "T24", "esn", "flight", "alt", "mach", "T30", "P30"]


def _write(tmp_path: Path, name: str, rows: list[str], sep: str = ",", prefix: str = "") -> None:
    (tmp_path / name).write_text(prefix + sep.join(HEADER) + "\n" + "\n".join(rows) + "\n")


def _fleet(tmp_path: Path, **overrides: str) -> Path:
    _write(tmp_path, "train.csv", _history("ESN-A1", 20, 1.0) + _history("ESN-B2", 15, 1.0))
    _write(tmp_path, "test.csv", _history("ESN-C3", 12, 1.0))
    (tmp_path / "test_rul.csv").write_text("esn,rul\nESN-C3,40\n")
    return _spec(tmp_path, **overrides)


def test_cmapss_specs_read_the_original_files_as_before(cmapss_dir):
    subset = load_subset("FD002", cmapss_dir)
    assert subset.spec is not None and subset.spec.features[:4] == (
        "setting_1",
        "setting_2",
        "setting_3",
        "s_1",
    )
    assert len(subset.train) == 260 and subset.train[0].unit_id == 1
    assert subset.train[0].readings.shape[1] == 24 and subset.train[0].readings.dtype == np.float32


def test_mixed_fleet_qualifies_unit_ids_by_file(cmapss_dir):
    mixed = load_dataset(Path(__file__).parents[2] / "training/datasets/cmapss/cmapss.toml", cmapss_dir)
    assert len(mixed.train) == 709
    assert mixed.train[0].unit_id == "train_FD001/1" and mixed.train[-1].unit_id == "train_FD004/249"


@pytest.mark.parametrize("name", ["FD001", "FD002", "FD003", "FD004"])
def test_conditions_counted_from_the_settings(cmapss_dir, name):
    subset = load_subset(name, cmapss_dir)
    settings = np.concatenate([u.readings[:, :3] for u in subset.train]).astype(np.float64)
    assert count_conditions(settings) == {"FD001": 1, "FD002": 6, "FD003": 1, "FD004": 6}[name]


def test_operator_export_read_by_its_own_names_with_string_serials(tmp_path):
    dataset = load_dataset(_fleet(tmp_path))
    assert [u.unit_id for u in dataset.train] == ["ESN-A1", "ESN-B2"]
    assert dataset.spec.features == ("alt", "mach", "T24", "T30", "P30")
    first = dataset.train[0].readings
    np.testing.assert_allclose(first[0], [1.0, 0.84, 550.0, 1400.0, 21.6], rtol=1e-6)  # note ignored
    assert dataset.test[0].unit_id == "ESN-C3" and dataset.test[0].final_rul == 40.0


def test_spreadsheet_csv_bom_semicolons_decimal_commas_quotes_crlf_gzip(tmp_path):
    spec = _fleet(tmp_path, train='["train.csv.gz"]')
    rows = _history("ESN-A1", 20, 1.0, ";", comma=True) + _history("ESN-B2", 15, 1.0, ";", comma=True)
    rows = [r.replace("ESN-A1", '"ESN-A1"') for r in rows]
    text = "\ufeff" + ";".join(HEADER) + "\r\n" + "\r\n".join(rows) + "\r\n"
    (tmp_path / "train.csv.gz").write_bytes(gzip.compress(text.encode("utf-8")))
    plain = load_dataset(_fleet(tmp_path / "..", train='["' + str(tmp_path.name) + '/train.csv"]'))
    spreadsheet = load_dataset(spec)
    assert [u.unit_id for u in spreadsheet.train] == ["ESN-A1", "ESN-B2"]
    np.testing.assert_array_equal(spreadsheet.train[0].readings, plain.train[0].readings)


def test_parquet_reads_like_csv(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    csv_set = load_dataset(_fleet(tmp_path))
    columns = {name: [] for name in HEADER[1:]}
    for unit in csv_set.train:
        for i, row in enumerate(unit.readings):
            columns["esn"].append(unit.unit_id)
            columns["flight"].append(i + 1)
            for name, value in zip(["alt", "mach", "T24", "T30", "P30"], row, strict=True):
                columns[name].append(float(value))
    pq.write_table(pa.table(columns), tmp_path / "train.parquet")
    spec = _spec(tmp_path, train='["train.parquet"]', format='"parquet"', test=None, test_rul=None)
    parquet = load_dataset(spec)
    np.testing.assert_array_equal(parquet.train[1].readings, csv_set.train[1].readings)


def _refused(tmp_path: Path, train_rows: list[str], **overrides: str) -> str:
    _fleet(tmp_path)
    _write(tmp_path, "train.csv", train_rows)
    with pytest.raises(DatasetError) as caught:
        load_dataset(_spec(tmp_path, **overrides))
    return str(caught.value)


def test_missing_column_named(tmp_path):
    message = _refused(tmp_path, _history("ESN-A1", 20, 1.0), sensors='["T24", "T30", "P30", "Nf"]')
    assert (
        "train.csv: column 'Nf' (named in" in message and "the file's columns are note, T24, esn" in message
    )


def test_non_numeric_and_empty_values_named_by_line_and_column(tmp_path):
    rows = _history("ESN-A1", 20, 1.0)
    bad = rows.copy()
    bad[4] = bad[4].replace(",0.84,", ",n/a,")
    assert "train.csv line 6, column 'mach': 'n/a' is not a number" in _refused(tmp_path, bad)
    empty = rows.copy()
    empty[7] = empty[7].replace(",0.84,", ",,")
    assert "train.csv line 9, column 'mach' is empty" in _refused(tmp_path, empty)


def test_repeated_and_backward_cycles_refused(tmp_path):
    rows = _history("ESN-A1", 20, 1.0)
    repeated = rows[:6] + [rows[5]] + rows[6:]
    assert "line 8: unit 'ESN-A1' cycle repeats after cycle 6 ('flight')" in _refused(tmp_path, repeated)
    backward = rows[:6] + [rows[2]] + rows[6:]
    assert "line 8: unit 'ESN-A1' cycle goes back to 3 after cycle 6" in _refused(tmp_path, backward)


def test_short_unit_refused(tmp_path):
    message = _refused(tmp_path, _history("ESN-A1", 20, 1.0) + _history("ESN-Z9", 6, 1.0))
    assert "unit 'ESN-Z9' has 6 cycles; a unit needs at least 10" in message


def test_truth_missing_or_for_an_unknown_unit(tmp_path):
    _fleet(tmp_path)
    (tmp_path / "test_rul.csv").write_text("esn,rul\nESN-X7,40\n")
    with pytest.raises(DatasetError, match="unit 'ESN-X7' has a true RUL but no history in the test files"):
        load_dataset(_spec(tmp_path))
    _write(tmp_path, "test.csv", _history("ESN-C3", 12, 1.0) + _history("ESN-D4", 12, 1.0))
    (tmp_path / "test_rul.csv").write_text("esn,rul\nESN-C3,40\n")
    with pytest.raises(DatasetError, match="test unit 'ESN-D4' has no true RUL"):
        load_dataset(_spec(tmp_path))


def test_settings_that_do_not_form_the_named_conditions(tmp_path):
    rows = _history("ESN-A1", 20, 35000.0) + _history("ESN-B2", 15, 1.0)  # two altitudes
    message = _refused(tmp_path, rows)
    assert "form 2 operating condition(s), not the 1 the spec names: set operating_conditions = 2" in message


def test_spec_problems_named(tmp_path):
    _fleet(tmp_path)
    with pytest.raises(DatasetError, match="unknown key 'sensor'; the keys allowed are name, unit"):
        load_spec(_spec(tmp_path, sensor='["T24"]'))
    with pytest.raises(DatasetError, match="file 'nowhere.csv' not found"):
        load_spec(_spec(tmp_path, train='["nowhere.csv"]'))
    with pytest.raises(DatasetError, match="column 'esn' is named more than once"):
        load_spec(_spec(tmp_path, sensors='["esn", "T30"]'))


def test_too_few_training_units_for_the_validation_split(tmp_path):
    from training.data import check_training_units, load_data

    _fleet(tmp_path)
    _write(tmp_path, "train.csv", _history("ESN-A1", 20, 1.0) + _history("ESN-B2", 15, 1.0))
    subset = load_data("", str(_spec(tmp_path)))  # 2 units: 20 % of them rounds to none
    with pytest.raises(ValueError, match=r"2 training unit\(s\); the validation split \(--val-fraction 0.2\) "
                                         "needs at least 3"):  # fmt: skip
        check_training_units(subset, 0.2, 0)
    check_training_units(subset, 0.5, 0)  # one to validate on, one to train on
