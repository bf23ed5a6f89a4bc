"""What a fleet file must hold for a model: its columns (`FleetLayout.of(card)`), the upload
limits, and the errors that refuse a file."""

from dataclasses import dataclass
from typing import Any

from service.core.window_input import describe_features

# C-MAPSS's input features (the 3 settings, then sensors 1-21): a model trained on them also
# reads the 26-column text files
FEATURES = ["setting_1", "setting_2", "setting_3", *(f"s_{i}" for i in range(1, 22))]
COLUMNS = ["unit", "cycle", *FEATURES]  # 26
MAX_UNIT_ID = 200  # characters of a unit id sent as text
# Unit numbers fit an int32; cycle numbers are kept exactly in float32 up to 2**24.
LIMITS = {"unit": 2**31 - 1, "cycle": 2**24}


class FleetFileError(ValueError):
    """The file cannot be read as a fleet; the message says where and why."""


class FleetTooLarge(FleetFileError):
    """The file passes a size limit; the message names the limit and its setting (413)."""


@dataclass(frozen=True)
class UploadLimits:
    """Limits checked while the file streams in, before its cost is paid (None: no limit)."""

    max_rows: int | None = None  # lines with readings (RUL_MAX_UPLOAD_ROWS)
    max_bytes: int | None = None  # text after decompression (RUL_MAX_UPLOAD_DECOMPRESSED_BYTES)
    max_ratio: float | None = None  # gzip: decompressed / compressed bytes (RUL_MAX_DECOMPRESSION_RATIO)
    max_units: int | None = None  # distinct units (RUL_MAX_UPLOAD_UNITS)
    max_line: int = 64 * 1024  # characters in one line: a C-MAPSS line has about 200

    def check_rows(self, rows: int) -> None:
        if self.max_rows is not None and rows > self.max_rows:
            raise FleetTooLarge(f"the file has more than {self.max_rows} rows of readings; the limit is "
                                f"{self.max_rows} (RUL_MAX_UPLOAD_ROWS): split the fleet")  # fmt: skip

    def check_units(self, units: int) -> None:
        if self.max_units is not None and units > self.max_units:
            raise FleetTooLarge(f"the file has more than {self.max_units} units; the limit is "
                                f"{self.max_units} (RUL_MAX_UPLOAD_UNITS): split the fleet")  # fmt: skip


@dataclass(frozen=True)
class FleetLayout:
    """The columns of a model's fleet files: its unit and cycle columns, then its features."""

    unit: str = "unit"
    cycle: str = "cycle"
    features: tuple[str, ...] = tuple(FEATURES)

    @classmethod
    def of(cls, card: Any) -> "FleetLayout":
        """The layout of a model card: its data set's unit and cycle columns (C-MAPSS's "unit"
        and "cycle" for cards without a data set) and its input features."""
        dataset = getattr(card, "dataset", None) or {}
        return cls(dataset.get("unit", "unit"), dataset.get("cycle", "cycle"), tuple(card.input_features))

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.unit, self.cycle, *self.features)

    @property
    def reads_cmapss_text(self) -> bool:
        """A model trained on C-MAPSS's 24 features also reads its 26-column text files."""
        return list(self.features) == FEATURES

    def describe(self) -> str:
        return f"{self.unit}, {self.cycle}, {describe_features(self.features)}"

    def missing_from(self, names: list[str]) -> str | None:
        """What a file with these column names lacks (names match ignoring case), in words."""
        lower = {n.strip().lower() for n in names}
        missing = [c for c in self.columns if c.lower() not in lower]
        if not missing:
            return None
        more = " ..." if len(missing) > 8 else ""
        return (f"lacks {', '.join(missing[:8])}{more}; this model needs {self.describe()} (any order; "
                "other columns are ignored)")  # fmt: skip
