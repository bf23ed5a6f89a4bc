"""service/transport/fast_json.py: orjson first, the standard library for what orjson refuses."""

import json
import math

import pytest

from service.transport.fast_json import loads


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

    from service.settings import Settings
    from service.transport import fast_json

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


def _recording_app(ran_in: list[int], loop_threads: list[int]):
    """A one-route app on FastJSONRoute whose body model records the thread it is validated in."""
    import threading
    from types import SimpleNamespace

    from fastapi import APIRouter, FastAPI
    from fastapi.exceptions import RequestValidationError
    from pydantic import BaseModel, field_validator

    from service.settings import Settings
    from service.state import LOADING
    from service.transport.errors import validation_error
    from service.transport.fast_json import FastJSONRoute

    class Body(BaseModel):
        values: list[float]

        @field_validator("values")
        @classmethod
        def record(cls, value: list[float]) -> list[float]:
            ran_in.append(threading.get_ident())
            if any(v < 0 for v in value):
                raise ValueError("values must not be negative")
            return value

    router = APIRouter(route_class=FastJSONRoute)

    @router.post("/sum")
    async def total(body: Body) -> float:
        loop_threads.append(threading.get_ident())
        return sum(body.values)

    app = FastAPI()
    app.include_router(router)
    app.add_exception_handler(RequestValidationError, validation_error)  # the service's own
    # all that service_state gives json(): the settings, and the served models (their widths)
    app.state.service = SimpleNamespace(settings=Settings(), served=LOADING)
    return app


def test_a_large_body_is_validated_once_and_off_the_event_loop():
    """Validating a large body's windows on the event loop stalled it 0.4-0.8 s while another
    body was decoded (bench/README.md): FastJSONRoute validates a body over INLINE_BYTES in the
    decoding thread, and FastAPI does not validate the instance again; a small body is validated
    as before; both answer an invalid body with the same 422 sentence."""
    from fastapi.testclient import TestClient

    from service.transport.fast_json import INLINE_BYTES

    ran_in: list[int] = []
    loop_threads: list[int] = []
    large = [1.0] * (INLINE_BYTES // 4)
    with TestClient(_recording_app(ran_in, loop_threads)) as client:
        answer = client.post("/sum", json={"values": large})
        assert answer.status_code == 200 and answer.json() == len(large)
        assert len(ran_in) == 1 and ran_in[0] != loop_threads[0]
        ran_in.clear()
        assert client.post("/sum", json={"values": [1.0, 2.0]}).json() == 3.0
        assert ran_in == [loop_threads[1]]  # small: on the loop, as FastAPI does it
        refused = [client.post("/sum", json={"values": v + [-1.0]}) for v in ([1.0], large)]
        assert [r.status_code for r in refused] == [422, 422]
        assert refused[0].json() == refused[1].json() == {"detail": "values: values must not be negative"}
