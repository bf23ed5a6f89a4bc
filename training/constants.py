"""Domain constants of the C-MAPSS problem, in one place, each with its source.

Everything that training, evaluation and export agree on lives here; the service reads the
same facts from each model's card instead of importing this module.
"""

# Saxena, Goebel, Simon & Eklund, "Damage Propagation Modeling for Aircraft Engine
# Run-to-Failure Simulation", PHM 2008: 26 columns per row.
SUBSETS = ("FD001", "FD002", "FD003", "FD004")
SETTING_NAMES = ("setting_1", "setting_2", "setting_3")
SENSOR_NAMES = tuple(f"s_{i}" for i in range(1, 22))
# The model input: per cycle the 3 operational settings then sensors 1-21 (DESIGN.md).
INPUT_FEATURES = SETTING_NAMES + SENSOR_NAMES
FILE_COLUMNS = ("unit", "cycle") + INPUT_FEATURES  # 26

# The 14 sensors that vary with degradation; the other 7 (s_1, s_5, s_6, s_10, s_16, s_18,
# s_19) are constant or near-constant within an operating condition. Used by most published
# models since Li, Ding & Sun, "Remaining useful life estimation in prognostics using deep
# convolution neural networks", Reliability Engineering & System Safety 172 (2018).
INFORMATIVE_SENSORS = (
    "s_2",
    "s_3",
    "s_4",
    "s_7",
    "s_8",
    "s_9",
    "s_11",
    "s_12",
    "s_13",
    "s_14",
    "s_15",
    "s_17",
    "s_20",
    "s_21",
)

# Operating conditions per subset (the C-MAPSS data README): FD002/FD004 fly six regimes,
# found from the three settings and normalised separately.
N_OPERATING_CONDITIONS = {"FD001": 1, "FD002": 6, "FD003": 1, "FD004": 6}

# Piecewise-linear RUL target capped at 125 cycles during training: Heimes, "Recurrent
# neural networks for remaining useful life estimation", PHM 2008; the standard protocol.
RUL_CAP = 125.0

# Health states from the true RUL (DESIGN.md): critical <= 30, degrading 31-80, normal > 80.
HEALTH_STATES = ("normal", "degrading", "critical")
CRITICAL_MAX_RUL = 30
DEGRADING_MAX_RUL = 80

# Window lengths per subset, as in Li, Ding & Sun (2018): test units of FD002/FD004 can be
# as short as 21/19 cycles, hence the shorter windows there.
DEFAULT_WINDOW_LENGTHS = {"FD001": 30, "FD002": 20, "FD003": 30, "FD004": 15}
# Any other data set (rul-train --dataset) without --window-length: FD001's, the literature's
# most common choice.
OTHER_WINDOW_LENGTH = 30

# Test units shorter than the window are padded at the front and never dropped; below
# MIN_CYCLES there is too little history to say anything and the service refuses the window.
# The exported graph is sent rows of NaN in front ("nan": it counts the real cycles and fills
# the padding with the first real one, training/padding.py); the networks train on windows
# padded by repeating the first cycle ("edge"), which is what that filling gives.
PADDING_RULE = "nan"
TRAINING_PADDING = "edge"
MIN_CYCLES = 10
