"""service/fast_json.py: orjson first, the standard library for what orjson refuses."""

import json
import math

import pytest

from service.fast_json import loads


def test_plain_json_is_parsed():
    assert loads(b'{"windows": [{"readings": [[1.5, -2e-3, 518.67]]}]}') == {
        "windows": [{"readings": [[1.5, -0.002, 518.67]]}]
    }


def test_python_nan_literals_still_parse_so_the_window_check_can_name_them():
    value = loads(json.dumps({"x": [float("nan"), float("inf")]}).encode())
    assert math.isnan(value["x"][0]) and value["x"][1] == math.inf


def test_malformed_json_still_raises_the_standard_error():
    with pytest.raises(json.JSONDecodeError):
        loads(b'{"windows": [')
