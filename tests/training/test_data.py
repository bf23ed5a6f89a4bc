import gzip
import shutil

import numpy as np
import pytest

from training.data import load_subset, resolve_data_dir

# ../shared/data/cmapss/README.md: train units, train rows, test units, test rows
EXPECTED = {
    "FD001": (100, 20631, 100, 13096),
    "FD002": (260, 53759, 259, 33991),
    "FD003": (100, 24720, 100, 16596),
    "FD004": (249, 61249, 248, 41214),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_load_subset_counts_units_and_rows_as_documented(cmapss_dir, name):
    subset = load_subset(name, cmapss_dir)
    train_units, train_rows, test_units, test_rows = EXPECTED[name]
    assert len(subset.train) == train_units
    assert sum(len(u.readings) for u in subset.train) == train_rows
    assert len(subset.test) == test_units
    assert sum(len(u.readings) for u in subset.test) == test_rows
    assert all(u.readings.shape[1] == 24 for u in subset.train + subset.test)
    assert all(u.final_rul == 0.0 for u in subset.train)


def test_load_subset_first_row_and_true_rul_exact(cmapss_dir):
    subset = load_subset("fd001", cmapss_dir)
    first = subset.train[0].readings[0]
    assert subset.train[0].unit_id == 1
    np.testing.assert_allclose(first[:5], [-0.0007, -0.0004, 100.0, 518.67, 641.82], rtol=1e-6)
    assert [u.final_rul for u in subset.test[:3]] == [112.0, 98.0, 69.0]


def test_load_subset_reads_plain_txt_like_gz(cmapss_dir, tmp_path):
    for stem in ("train_FD003", "test_FD003", "RUL_FD003"):
        with (
            gzip.open(cmapss_dir / f"{stem}.txt.gz", "rb") as src,
            open(tmp_path / f"{stem}.txt", "wb") as dst,
        ):
            shutil.copyfileobj(src, dst)
    plain, gz = load_subset("FD003", tmp_path), load_subset("FD003", cmapss_dir)
    np.testing.assert_array_equal(plain.test[7].readings, gz.test[7].readings)
    assert plain.test[7].final_rul == gz.test[7].final_rul


def test_load_subset_missing_files_say_where_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train_FD001\.txt\(\.gz\) not found in .*C-MAPSS"):
        load_subset("FD001", tmp_path)


def test_load_subset_unknown_name_lists_valid_ones(tmp_path):
    with pytest.raises(
        ValueError, match="unknown subset 'FD005'; expected one of FD001, FD002, FD003, FD004"
    ):
        load_subset("FD005", tmp_path)


def test_resolve_data_dir_prefers_argument_then_env_then_default(monkeypatch):
    monkeypatch.setenv("CMAPSS_DIR", "/env/dir")
    assert str(resolve_data_dir("/arg/dir")) == "/arg/dir"
    assert str(resolve_data_dir()) == "/env/dir"
    monkeypatch.delenv("CMAPSS_DIR")
    assert str(resolve_data_dir()) == "data/cmapss"
