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


def test_large_bodies_are_decoded_one_at_a_time_and_small_ones_never_wait(monkeypatch):
    """fast_json.DECODING: decoding is bound by the interpreter lock, so large bodies take
    turns (no slower, and the event loop waits for fewer threads); a small body is decoded at
    once even while a large one holds the turn."""
    import threading
    import time

    from service import fast_json
    from service.settings import Settings

    inside, most = 0, 0
    counting = threading.Lock()

    def slow_loads(data):
        nonlocal inside, most
        with counting:
            inside += 1
            most = max(most, inside)
        time.sleep(0.05)
        with counting:
            inside -= 1
        return {}

    monkeypatch.setattr(fast_json, "loads", slow_loads)
    body = b"{" + b" " * (fast_json.INLINE_BYTES + 10) + b"}"
    threads = [threading.Thread(target=fast_json.decode_large, args=(body, Settings())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 1
    with fast_json.DECODING:  # a large body's turn is taken
        started = time.perf_counter()
        assert fast_json.in_turn(1000, lambda x: x + 1, 1) == 2
        assert time.perf_counter() - started < 0.5
