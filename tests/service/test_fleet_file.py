import gzip
import io

import numpy as np
import pytest

from service.core.fleet_file import read_fleet
from service.core.fleet_layout import FleetFileError

ROW = (  # the first line of train_FD001.txt
    "1 1 -0.0007 -0.0004 100.0 518.67 641.82 1589.70 1400.60 14.62 21.61 554.36 2388.06 9046.19 1.30 "
    "47.47 521.66 2388.02 8138.62 8.4195 0.03 392 2388 100.00 39.06 23.4190"
)
HEADER = "unit,cycle,setting_1,setting_2,setting_3," + ",".join(f"s_{i}" for i in range(1, 22))


def _row(unit: int, cycle: int) -> str:
    return " ".join([str(unit), str(cycle), *ROW.split()[2:]])


def _read(text: str | bytes):
    return read_fleet(io.BytesIO(text.encode() if isinstance(text, str) else text))


def test_cmapss_text_groups_units_and_sorts_cycles():
    fleet = _read("\n".join([_row(2, 2), _row(1, 1), _row(2, 1), ""]))
    assert list(fleet) == [1, 2]
    cycles, readings = fleet[2]
    assert cycles.tolist() == [1, 2] and readings.shape == (2, 24) and readings.dtype == np.float32
    assert readings[0, 3] == np.float32(518.67)


def test_units_split_across_chunks_and_interleaved_come_back_whole_and_in_order():
    """The fleet is sorted once as a whole (fleet_file._by_unit), not unit by unit per chunk."""
    order = [(3, 2), (1, 3), (3, 1), (2, 1), (1, 1), (3, 3), (1, 2)]
    text = "\n".join(_row(u, c) for u, c in order)
    fleet = read_fleet(io.BytesIO(text.encode()), chunk_lines=2)  # four chunks
    assert list(fleet) == [1, 2, 3]
    assert [fleet[u][0].tolist() for u in fleet] == [[1, 2, 3], [1], [1, 2, 3]]
    assert all(r.flags.c_contiguous and r.shape == (len(c), 24) for c, r in fleet.values())
    # a unit with a cycle twice is refused, the others read
    twice = read_fleet(io.BytesIO((text + "\n" + _row(3, 2)).encode()), chunk_lines=2)
    assert list(twice) == [1, 2]
    assert twice.refused == [{"unit": 3, "cycles": 4, "reason": "unit 3 has the same cycle number twice "
                              "(cycle 2, line 8); each cycle must appear once"}]  # fmt: skip


def test_gzip_is_detected_by_magic_bytes(cmapss_dir):
    raw = (cmapss_dir / "test_FD001.txt.gz").read_bytes()
    fleet = read_fleet(io.BytesIO(raw), chunk_lines=1000)  # several chunks
    assert len(fleet) == 100 and sum(len(c) for c, _ in fleet.values()) == 13096


def test_csv_with_header_in_any_column_order_matches_text():
    text_fleet = _read(_row(1, 1) + "\n" + _row(1, 2))
    values = ROW.split()
    names = HEADER.split(",")
    reordered = list(reversed(names)) + ["comment"]
    lines = [",".join(reordered)]
    for cycle in (1, 2):
        row = dict(zip(names, ["1", str(cycle), *values[2:]], strict=True))
        lines.append(",".join(row[n] for n in reversed(names)) + ",x")
    csv_fleet = _read("\n".join(lines))
    np.testing.assert_array_equal(csv_fleet[1][1], text_fleet[1][1])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty: upload C-MAPSS text or a CSV with a header"),
        ("\n\n", "the file is empty"),
        (_row(1, 1) + "\n1 2 3\n", "line 2 has 3 columns; expected 26: unit, cycle, setting_1..3, s_1..s_21"),
        (_row(1, 1).replace("518.67", "abc"), "line 1, column s_1 holds 'abc', not a number"),
        # a CSV with an empty cell names the line and the column, wherever the column stands
        (
            HEADER + "\n" + ",".join(["1", "1", "0.1", "", *ROW.split()[4:]]),
            "line 2, column setting_2 is empty",
        ),
        (
            "s_3,"
            + HEADER.replace(",s_3", "")
            + "\n"
            + ",".join([" ", "1", "1", *ROW.split()[2:7], *ROW.split()[8:]]),
            "line 2, column s_3 is empty",
        ),
        (
            _row(1, 1).replace("518.67", "nan"),
            "line 1, column s_1 is nan; every value must be a finite number",
        ),
        (_row(1, 1) + "\n" + _row(1, 1), "unit 1 has the same cycle number twice"),
        (
            _row(1, 1).replace("1 1 ", "1.5 1 ", 1),
            "line 1: the unit number is 1.5; it must be a whole number from 0 to 2147483647",
        ),
        (_row(1, 1) + "\n" + _row(1, 1).replace("1 1 ", "1e19 1 ", 1), "line 2: the unit number is 1e+19"),
        (_row(1, 1).replace("1 1 ", "9223372036854775808 1 ", 1), "line 1: the unit number is 9.22337e+18"),
        (_row(1, 1).replace("1 1 ", "1 1e300 ", 1), "line 1: the cycle number is 1e+300; it must be a whole"),
        ("unit,cycle,setting_1\n1,1,0.1", "the CSV header lacks setting_2, setting_3, s_1"),
        ("1,2,3\n", "the CSV file has no header"),
        (HEADER + "\n", "the file holds a header but no readings"),
        (HEADER + "\n1,1,0.1\n", "line 2 has 3 columns"),
    ],
)
def test_bad_files_name_the_problem(content, message):
    with pytest.raises(FleetFileError) as info:
        _read(content)
    assert str(info.value).startswith(message)


def test_truncated_gzip_is_reported(cmapss_dir):
    raw = (cmapss_dir / "test_FD001.txt.gz").read_bytes()
    with pytest.raises(FleetFileError, match="the gzip stream is truncated or corrupt"):
        read_fleet(io.BytesIO(raw[: len(raw) // 2]))


def test_binary_garbage_is_reported():
    with pytest.raises(FleetFileError, match="is not text"):
        _read(bytes(range(128, 256)) * 4)


def test_gzip_of_csv_is_read():
    raw = gzip.compress((HEADER + "\n" + ",".join(["7", "3", *ROW.split()[2:]])).encode())
    assert list(read_fleet(io.BytesIO(raw))) == [7]


def test_parquet_reads_like_csv_with_text_units_and_a_bad_unit_refused(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    values = [float(v) for v in ROW.split()[2:]]
    names = HEADER.split(",")[2:]
    columns = {"UNIT": [], "cycle": [], "note": [], **{n: [] for n in names}}
    for unit in ("ESN-7", "ESN-3"):
        for cycle in (2, 1, 3):
            columns["UNIT"].append(unit)
            columns["cycle"].append(cycle)
            columns["note"].append("x")
            for n, v in zip(names, values, strict=True):
                columns[n].append(None if (unit, cycle, n) == ("ESN-7", 3, "s_4") else v)
    pq.write_table(pa.table(columns), tmp_path / "fleet.parquet")
    fleet = read_fleet(io.BytesIO((tmp_path / "fleet.parquet").read_bytes()))
    assert list(fleet) == ["ESN-3"] and fleet["ESN-3"][0].tolist() == [1, 2, 3]
    np.testing.assert_array_equal(fleet["ESN-3"][1][0], np.asarray(values, dtype=np.float32))
    reason = "unit ESN-7: row 3, column s_4 is empty; it must be a finite number"
    assert fleet.refused == [{"unit": "ESN-7", "cycles": 3, "reason": reason}]
