"""Write NASA C-MAPSS FD001 as an operator's own export would look, with its data-set spec:
the worked example of docs/own-fleet.md.

    python examples/own_fleet/make_export.py --data-dir ../shared/data/cmapss --out-dir fleet-a

What changes from the original files, as a real export differs from the benchmark:
- engines are serial numbers ("ESN-100017"), cycles are "flight" numbers;
- settings and sensors have the operator's names; temperatures are in °C (the originals are
  in °R), pressures in kPa (psia);
- 4 of the 21 sensors are not exported at all (17 sensors, not 21), the columns are in
  another order, and two columns the model must ignore (a tail number and a note) are added;
- CSV files with a header; the training file gzipped; the true RUL of the test engines in a
  CSV keyed by serial number.

`--units N` keeps the first N engines of each file (a quick run); every number is otherwise
the original's, converted.
"""

import argparse
import csv
import gzip
from pathlib import Path

import numpy as np

# C-MAPSS column -> (the operator's name, conversion): °R -> °C, psia -> kPa, else as is
RANKINE_TO_C = ("°C", lambda v: (v - 491.67) * 5 / 9)
PSIA_TO_KPA = ("kPa", lambda v: v * 6.894757)
SAME = ("", lambda v: v)
RENAMED = {
    "setting_1": ("alt_dev", SAME), "setting_2": ("mach_dev", SAME), "setting_3": ("tra", SAME),
    "s_2": ("T24_C", RANKINE_TO_C), "s_3": ("T30_C", RANKINE_TO_C), "s_4": ("T50_C", RANKINE_TO_C),
    "s_6": ("P15_kPa", PSIA_TO_KPA), "s_7": ("P30_kPa", PSIA_TO_KPA), "s_8": ("Nf", SAME),
    "s_9": ("Nc", SAME), "s_10": ("epr", SAME), "s_11": ("Ps30_kPa", PSIA_TO_KPA), "s_12": ("phi", SAME),
    "s_13": ("NRf", SAME), "s_14": ("NRc", SAME), "s_15": ("BPR", SAME), "s_16": ("farB", SAME),
    "s_17": ("htBleed", SAME), "s_20": ("W31", SAME), "s_21": ("W32", SAME),
}  # fmt: skip
# not exported: s_1 (T2), s_5 (P2), s_18 (Nf_dmd), s_19 (PCNfR_dmd)
CMAPSS = ["setting_1", "setting_2", "setting_3", *(f"s_{i}" for i in range(1, 22))]
SHUFFLED = ["W32", "flight", "Nc", "T30_C", "tail_number", "esn", "mach_dev", "BPR", "T24_C", "alt_dev",
            "phi", "P30_kPa", "Nf", "epr", "tra", "NRc", "Ps30_kPa", "T50_C", "htBleed", "note", "W31",
            "NRf", "farB", "P15_kPa"]  # fmt: skip

SPEC = """# FD001 as an operator's export (examples/own_fleet/make_export.py)
name = "fleet-a"
unit = "esn"
cycle = "flight"
settings = ["alt_dev", "mach_dev", "tra"]
sensors = ["T24_C", "T30_C", "T50_C", "P15_kPa", "P30_kPa", "Nf", "Nc", "epr", "Ps30_kPa", "phi",
           "NRf", "NRc", "BPR", "farB", "htBleed", "W31", "W32"]
operating_conditions = 1
train = ["train.csv.gz"]
test = ["test.csv"]
test_rul = "test_rul.csv"
rul_cap = 125
health = { critical = 30, degrading = 80 }
"""


def read_cmapss(path: Path) -> np.ndarray:
    candidates = [path, path.with_name(path.name + ".gz")]
    found = next((p for p in candidates if p.exists()), None)
    if found is None:
        raise SystemExit(f"{path}(.gz) not found: pass --data-dir, the directory of the C-MAPSS files")
    opener = gzip.open if found.suffix == ".gz" else open
    with opener(found, "rt") as f:
        return np.loadtxt(f, ndmin=2)


def serial(unit: float) -> str:
    return f"ESN-{100000 + int(unit)}"


def export_rows(table: np.ndarray, units: int | None) -> list[dict[str, str]]:
    keep = np.unique(table[:, 0])[:units] if units else np.unique(table[:, 0])
    rows = []
    for line in table[np.isin(table[:, 0], keep)]:
        row = {"esn": serial(line[0]), "flight": str(int(line[1])), "tail_number": f"N{int(line[0]) % 7}42RU",
               "note": "ok"}  # fmt: skip
        for column, value in zip(CMAPSS, line[2:], strict=True):
            if column in RENAMED:
                name, (_, convert) = RENAMED[column]
                row[name] = f"{convert(value):.6g}"
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SHUFFLED)
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True, help="the C-MAPSS files (train_FD001.txt[.gz], ...)")
    parser.add_argument("--out-dir", required=True, help="where to write the export and fleet.toml")
    parser.add_argument("--units", type=int, default=0, help="keep the first N engines of each file (0: all)")
    args = parser.parse_args(argv)
    data, out = Path(args.data_dir), Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "train.csv.gz", export_rows(read_cmapss(data / "train_FD001.txt"), args.units))
    test = read_cmapss(data / "test_FD001.txt")
    write_csv(out / "test.csv", export_rows(test, args.units))
    truth = read_cmapss(data / "RUL_FD001.txt")[:, 0]
    units = np.unique(test[:, 0])[: args.units or None]
    with open(out / "test_rul.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["esn", "rul"])
        writer.writerows([serial(u), int(truth[int(u) - 1])] for u in units)
    (out / "fleet.toml").write_text(SPEC)
    print(f"wrote {out}/fleet.toml and its files")


if __name__ == "__main__":
    main()
