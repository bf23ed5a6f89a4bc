"""The service's threading policy, in one place: what runs on the event loop, what in a
worker thread.

The event loop only routes: it must never hold up `/health/live` or another request. So

- every ONNX Runtime run, every body decoded or validated beyond a few windows, every answer
  made into JSON beyond a few predictions, fleet-file parsing and model loading run in a
  worker thread (`in_worker`: AnyIO's pool of 40 threads, the one FastAPI uses for `def`
  routes, so the two never compete for separate pools);
- a request of at most INLINE_WINDOWS windows is prepared, answered and encoded on the loop
  (`maybe_in_worker`): for a 50-cycle window that is ~0.1 ms, less than a hop to a worker
  thread and back under load (the one-connection figure of bench/service_bench.py);
- the one exception for a model run: a request of at most INLINE_WINDOWS windows that is the
  only request the server holds (`OpenRequests.alone`: no other request's headers have
  arrived) and finds its model idle runs the model on the loop (`in_worker_unless_alone`),
  ~2 ms for one window on the CPU. Nothing waits on the loop meanwhile except what arrives
  during that run (a probe: at most the run's time), and the hop to a worker thread and back
  it saves was 0.3 ms of a 0.8 ms request path (bench/README.md, "After the lone request's run
  on the loop"). As soon as a second request is open, every run goes to a worker thread as
  above, so concurrent requests still batch.
"""

import functools
from collections.abc import Callable, Sized
from typing import Any, TypeVar

import anyio.to_thread

T = TypeVar("T")

# Requests with at most this many windows are prepared on the event loop (see above).
INLINE_WINDOWS = 4


async def in_worker(work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking `work(*args, **kwargs)` in a worker thread and await its result."""
    return await anyio.to_thread.run_sync(functools.partial(work, *args, **kwargs))


async def maybe_in_worker(windows: int, work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` on the event loop for a request of at most INLINE_WINDOWS windows, else
    in a worker thread."""
    if windows <= INLINE_WINDOWS:
        return work(*args)
    return await in_worker(work, *args)


class OpenRequests:
    """The HTTP requests the server has begun and not yet answered: uvicorn's set of request
    tasks, bound by the connection protocol (transport/http_protocol.py) as connections open.
    A request counts from the end of its headers, before its task has even started, so
    requests that arrived together are all counted when the first of them runs. Unbound (an
    app served without that protocol, as in tests' TestClient): never alone."""

    def __init__(self) -> None:
        self.tasks: Sized | None = None

    def bind(self, tasks: Sized) -> None:
        self.tasks = tasks

    def alone(self) -> bool:
        """True when at most one request is open: the one asking."""
        return self.tasks is not None and len(self.tasks) <= 1


async def in_worker_unless_alone(
    windows: int, alone: Callable[[], bool] | None, work: Callable[..., T], *args: Any
) -> T:
    """A model run `work(*args)`: on the loop for a lone request of at most INLINE_WINDOWS
    windows (`alone()`: no other request open), else in a worker thread (see above)."""
    if windows <= INLINE_WINDOWS and alone is not None and alone():
        return work(*args)
    return await in_worker(work, *args)
