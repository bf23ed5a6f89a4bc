"""The service's threading policy, in one place: what runs on the event loop, what in a
worker thread.

The event loop only routes: it must never hold up `/health/live` or another request. So

- every ONNX Runtime run, every body decoded or validated beyond a few windows, every answer
  made into JSON beyond a few predictions, fleet-file parsing and model loading run in a
  worker thread (`in_worker`: AnyIO's pool of 40 threads, the one FastAPI uses for `def`
  routes, so the two never compete for separate pools);
- a request of at most INLINE_WINDOWS windows is prepared, answered and encoded on the loop
  (`maybe_in_worker`): for a 50-cycle window that is ~0.1 ms, less than a hop to a worker
  thread and back under load (the one-connection figure of bench/service_bench.py).
"""

import functools
from collections.abc import Callable
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
