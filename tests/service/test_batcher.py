"""Dynamic batching on its own (asyncio, no HTTP)."""

import asyncio
import gc
import threading
import weakref

import numpy as np
import pytest

from service.core.batcher import Batcher, QueueFull
from service.core.predictor import Predictor
from service.core.providers import SessionConfig
from service.core.threads import INLINE_WINDOWS
from service.transport.schemas import EXAMPLE_REQUEST
from tests.conftest import MODELS_DIR


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.load(MODELS_DIR / "fd001.onnx", SessionConfig("cpu"))


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    base = np.asarray(EXAMPLE_REQUEST["windows"][0]["readings"], dtype=np.float32)  # (50, 24)
    rng = np.random.default_rng(0)
    return base[None] + rng.normal(0, 0.01, (64, 50, 24)).astype(np.float32) * base.std(axis=0)


async def _concurrently(
    batcher: Batcher, windows: np.ndarray, per_request: int
) -> list[dict[str, np.ndarray]]:
    batcher.start()
    try:
        parts = [windows[i : i + per_request] for i in range(0, len(windows), per_request)]
        return await asyncio.gather(*(batcher.run(p) for p in parts))
    finally:
        await batcher.drain()


def test_concurrent_requests_coalesce_and_match_unbatched(predictor, windows):
    batcher = Batcher(predictor, max_batch_size=32, max_delay_ms=20, max_queue_size=100)
    results = asyncio.run(_concurrently(batcher, windows, per_request=1))
    assert len(results) == 64 and batcher.runs <= 4  # 64 requests -> 2 to 4 runs of up to 32
    unbatched = np.concatenate([predictor.run(windows[i : i + 1])["rul"] for i in range(64)])
    got = np.concatenate([r["rul"] for r in results])
    # float32 kernels may round differently at another batch size: equal to 1e-4 cycles
    np.testing.assert_allclose(got, unbatched, rtol=0, atol=1e-4)
    assert all(r["health_probs"].shape == (1, 3) for r in results)


def test_without_a_delay_requests_queued_during_a_run_form_the_next_batch(predictor, windows):
    """max_delay_ms=0 (the default): nothing waits for company, yet requests that arrive while
    a run is in progress are taken together by the next one."""
    batcher = Batcher(predictor, max_batch_size=256, max_delay_ms=0, max_queue_size=100)
    results = asyncio.run(_concurrently(batcher, windows, per_request=1))
    assert len(results) == 64 and batcher.runs < 64 / 4
    unbatched = np.concatenate([predictor.run(windows[i : i + 1])["rul"] for i in range(64)])
    np.testing.assert_allclose(np.concatenate([r["rul"] for r in results]), unbatched, rtol=0, atol=1e-4)


def test_each_request_gets_its_own_rows_back(predictor, windows):
    batcher = Batcher(predictor, max_batch_size=64, max_delay_ms=20, max_queue_size=100)
    results = asyncio.run(_concurrently(batcher, windows, per_request=5))
    assert [len(r["rul"]) for r in results] == [5] * 12 + [4]
    whole = predictor.run(windows)["rul"]
    np.testing.assert_allclose(np.concatenate([r["rul"] for r in results]), whole, rtol=0, atol=1e-4)


def test_request_larger_than_max_batch_runs_alone(predictor, windows):
    batcher = Batcher(predictor, max_batch_size=16, max_delay_ms=5, max_queue_size=10)
    (result,) = asyncio.run(_concurrently(batcher, windows, per_request=64))
    assert len(result["rul"]) == 64 and batcher.runs == 1


def test_full_queue_is_refused_at_once(predictor, windows):
    async def scenario() -> None:
        batcher = Batcher(predictor, max_batch_size=8, max_delay_ms=50, max_queue_size=2)
        # the worker is not started: requests stay queued
        tasks = [asyncio.create_task(batcher.run(windows[:1])) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(QueueFull, match="2 requests are already waiting for model fd001"):
            await batcher.run(windows[:1])
        batcher.start()
        await asyncio.gather(*tasks)
        await batcher.drain()

    asyncio.run(scenario())


def test_drain_finishes_what_is_queued(predictor, windows):
    async def scenario() -> list[dict[str, np.ndarray]]:
        batcher = Batcher(predictor, max_batch_size=4, max_delay_ms=1, max_queue_size=100)
        tasks = [asyncio.create_task(batcher.run(windows[i : i + 1])) for i in range(10)]
        await asyncio.sleep(0)
        batcher.start()
        await batcher.drain()
        return [t.result() for t in tasks]  # all done, none cancelled

    assert len(asyncio.run(scenario())) == 10


def test_a_finished_request_leaves_nothing_behind(predictor, windows):
    """The worker waits for the next request without holding the last one's windows or
    outputs (a 5 000-window request kept 48 MB alive until the next request came)."""

    async def scenario() -> None:
        batcher = Batcher(predictor, max_batch_size=16, max_delay_ms=0, max_queue_size=10)
        batcher.start()
        request = windows[:8].copy()
        request_ref = weakref.ref(request)
        result = await batcher.run(request)
        result_ref = weakref.ref(result["rul"].base if result["rul"].base is not None else result["rul"])
        del request, result
        await asyncio.sleep(0.05)  # the worker is back waiting on its queue
        gc.collect()
        assert request_ref() is None and result_ref() is None
        await batcher.drain()

    asyncio.run(scenario())


def test_memory_is_given_back_after_a_big_run_when_nothing_waits(predictor, windows, monkeypatch):
    given_back: list[int] = []
    monkeypatch.setattr(predictor, "give_back_memory", lambda: given_back.append(1))
    batcher = Batcher(predictor, max_batch_size=256, max_delay_ms=0, max_queue_size=100)
    asyncio.run(_concurrently(batcher, windows, per_request=8))  # batches of at most 64 windows
    assert given_back == []  # 64 windows in all: not over GIVE_BACK_ABOVE (64)
    big = np.concatenate([windows, windows[:1]])  # 65 windows: over GIVE_BACK_ABOVE at once
    asyncio.run(_concurrently(batcher := Batcher(predictor, 256, 0, 100), big, per_request=65))
    assert given_back == [1] and batcher.runs == 1
    bigger = np.concatenate([windows, windows, windows[:2]])  # 130 windows in 17 pieces of 8
    pieces = Batcher(predictor, 256, 0, 100, piece_windows=8)
    after_runs: list[int] = []
    monkeypatch.setattr(predictor, "give_back_memory", lambda: after_runs.append(pieces.runs))
    asyncio.run(_concurrently(pieces, bigger, per_request=130))
    assert after_runs == [17]  # once, after the last piece: never between two pieces


def test_a_large_request_runs_in_pieces_that_let_small_requests_through(predictor, windows):
    """A request of more than piece_windows windows is queued one piece at a time: a small
    request sent while it runs is answered before the large one finishes (before pieces, it
    waited for all of it: 4 s behind 5 000 windows), and both get the same answers as alone."""

    async def scenario() -> tuple[list[str], dict[str, np.ndarray], dict[str, np.ndarray]]:
        batcher = Batcher(predictor, 256, 0, 100, piece_windows=8)
        batcher.start()
        finished: list[str] = []

        async def send(name: str, part: np.ndarray) -> dict[str, np.ndarray]:
            result = await batcher.run(part)
            finished.append(name)
            return result

        large = asyncio.create_task(send("large", windows))  # 64 windows: 8 pieces
        await asyncio.sleep(0.02)  # the large request's first piece is running
        small = await send("small", windows[:2])
        large_result = await large
        await batcher.drain()
        assert batcher.runs == 9  # 8 pieces, each alone, and the small request
        return finished, large_result, small

    finished, large, small = asyncio.run(scenario())
    assert finished == ["small", "large"]
    alone = predictor.run(windows)
    np.testing.assert_allclose(large["rul"], alone["rul"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(small["rul"], alone["rul"][:2], rtol=0, atol=1e-4)
    assert large["quality_flags"].shape == (64, 50, 24)


def test_drain_waits_for_a_request_between_two_pieces(predictor, windows):
    """After a reload the old batcher drains: a large request half-way through must still get
    its remaining pieces run, not hang behind the worker's exit."""

    async def scenario() -> dict[str, np.ndarray]:
        batcher = Batcher(predictor, 256, 0, 100, piece_windows=8)
        batcher.start()
        large = asyncio.create_task(batcher.run(windows))
        await asyncio.sleep(0.02)
        await asyncio.wait_for(batcher.drain(), timeout=60)
        return await asyncio.wait_for(large, timeout=1)

    assert asyncio.run(scenario())["rul"].shape == (64,)


def _run_threads(predictor: Predictor, windows: np.ndarray, alone: bool) -> list[str]:
    """Which thread ran the model for one request of `windows`, the batcher told whether the
    request is alone."""
    threads: list[str] = []
    predictor.on_run = lambda *_: threads.append(threading.current_thread().name)
    batcher = Batcher(predictor, max_batch_size=256, max_delay_ms=0, max_queue_size=100, alone=lambda: alone)

    async def one() -> None:
        batcher.start()
        try:
            await batcher.run(windows)
        finally:
            await batcher.drain()

    try:
        asyncio.run(one())
    finally:
        predictor.on_run = None
    return threads


def test_a_lone_small_request_runs_on_the_loop_and_any_other_in_a_worker(predictor, windows):
    """service/core/threads.py: the one model run on the loop is a request of at most
    INLINE_WINDOWS windows that is the only one open; with another open, or more windows,
    the run goes to a worker thread (where concurrent requests batch)."""
    main = threading.current_thread().name
    assert _run_threads(predictor, windows[:1], alone=True) == [main]
    assert _run_threads(predictor, windows[:INLINE_WINDOWS], alone=True) == [main]
    assert _run_threads(predictor, windows[:1], alone=False) != [main]
    assert _run_threads(predictor, windows[: INLINE_WINDOWS + 1], alone=True) != [main]
