"""Dynamic batching: concurrent requests for one model coalesce into one ONNX Runtime run.

Each request puts its windows (n, W, 24) on the model's queue and awaits a future. One
worker task per model takes the first waiting request, then keeps taking requests until the
batch holds `max_batch_size` windows or `max_delay_ms` has passed since the first one,
runs them as one batch in a worker thread (never on the event loop) and hands each request
its rows back. With `max_delay_ms` 0 (the default) nothing waits: the worker takes whatever
is queued, so a lone request runs at once and the requests that arrive during a run form the
next batch (on the 2-core CPU this beat a 2 ms wait at every concurrency, bench/README.md).
With no delay, a request that finds the model idle (nothing queued, no run in progress) and
holds at most GIVE_BACK_ABOVE windows (and no more than a piece) runs at once from its own
task, without the hop through the worker task (measured at one connection: bench/README.md);
when it is also the only request open, on the loop itself (service/core/threads.py).
A request of more than `piece_windows` windows runs piece by piece, each piece alone and
queued only once the previous one is done, so that small requests arriving meanwhile run
between two pieces instead of waiting for the whole request (10 000 windows: seconds); one
run per model at a time, so concurrent large requests never oversubscribe the cores. When
`max_queue_size` requests are already waiting, a new one is refused at once (QueueFull ->
503 with Retry-After) rather than piling up latency.

Results equal unbatched inference up to float32 rounding: ONNX Runtime's CPU kernels may
sum in a different order for different batch sizes (differences of ~1e-5 cycles measured).
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from service.core.predictor import GIVE_BACK_ABOVE, Predictor
from service.core.threads import in_worker, in_worker_unless_alone

logger = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """The model's queue is at its limit; retry shortly."""


_DRAIN = None  # queued by drain(): the worker runs what it holds and exits


@dataclass
class _Pending:
    windows: np.ndarray  # (n, W, C)
    future: asyncio.Future[dict[str, np.ndarray]]
    piece: bool = False  # a piece of a large request: runs alone, never batched with others
    queued_at: float = field(default_factory=time.perf_counter)


class Batcher:
    def __init__(
        self,
        predictor: Predictor,
        max_batch_size: int,
        max_delay_ms: float,
        max_queue_size: int,
        on_queue_time: Callable[[str, float], None] | None = None,  # (model, seconds queued)
        piece_windows: int | None = None,  # larger requests run in pieces of this many; None: never
        alone: Callable[[], bool] | None = None,  # no other request open (threads.OpenRequests.alone)
    ):
        self.predictor = predictor
        self.max_batch_size = max_batch_size
        self.piece_windows = piece_windows
        self._split_requests = 0  # requests being run piece by piece: drain() waits for them
        self._since_give_back = 0  # windows run since the memory was last given back
        self._none_split = asyncio.Event()
        self._none_split.set()
        self.max_delay = max_delay_ms / 1000
        self.max_queue_size = max_queue_size
        self.on_queue_time = on_queue_time
        self.alone = alone
        self.queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._running = asyncio.Lock()  # one run per model at a time, direct or batched
        self.runs = 0  # ONNX Runtime runs made (tests and benchmarks read it)
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._worker = asyncio.create_task(self._work(), name=f"batcher-{self.predictor.card.name}")

    async def drain(self) -> None:
        """Finish every request already queued, then stop (after a reload swapped us out: new
        requests go to the new batcher, none is lost)."""
        if self._worker:
            await self._none_split.wait()  # a split request's next piece must not miss the worker
            await self.queue.put(_DRAIN)
            await self._worker
        async with self._running:  # a direct run still in flight finishes first
            pass

    async def run(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        """The model's outputs for `windows` (n, W, C), batched with whatever else is waiting;
        a request of more than `piece_windows` windows runs piece by piece, each piece queued
        once the previous one is done, so that requests arriving meanwhile run in between."""
        if self.queue.qsize() >= self.max_queue_size:
            name = self.predictor.card.name
            waiting = self.queue.qsize()
            raise QueueFull(
                f"{waiting} requests are already waiting for model {name} (RUL_MAX_QUEUE_SIZE); retry"
            )
        step = self.piece_windows
        if step is None or len(windows) <= step:  # whole, not in pieces
            if self.max_delay == 0 and len(windows) <= GIVE_BACK_ABOVE and self._idle():
                return await self._direct(windows)
            return await self._queued(_Pending(windows, self._future()))
        self._split_requests += 1
        self._none_split.clear()
        try:
            pieces = [
                await self._queued(_Pending(windows[start : start + step], self._future(), piece=True))
                for start in range(0, len(windows), step)
            ]
        finally:
            self._split_requests -= 1
            if self._split_requests == 0:
                self._none_split.set()
        return {name: np.concatenate([p[name] for p in pieces]) for name in pieces[0]}

    def _idle(self) -> bool:
        return self.queue.empty() and not self._running.locked() and self._worker is not None

    async def _direct(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        """Run a small request at once: the model was idle. Requests that arrive meanwhile
        queue, and the worker runs them together once this run is done."""
        async with self._running:
            if self.on_queue_time:
                self.on_queue_time(self.predictor.card.name, 0.0)
            self.runs += 1
            self._since_give_back += len(windows)
            # on the loop when no other request is open (threads.py), else in a worker thread,
            # with a copy: AnyIO's worker thread keeps its last job's arguments until its next
            # job, and the caller's windows must not outlive its request; views of the
            # outputs, as a batched run hands back
            outputs = await in_worker_unless_alone(
                len(windows), self.alone, self.predictor.run, windows.copy(), False
            )
            return {name: value[:] for name, value in outputs.items()}

    @staticmethod
    def _future() -> asyncio.Future[dict[str, np.ndarray]]:
        return asyncio.get_running_loop().create_future()

    async def _queued(self, pending: _Pending) -> dict[str, np.ndarray]:
        await self.queue.put(pending)
        return await pending.future

    async def _work(self) -> None:
        carry: _Pending | None = None  # a request that did not fit the last batch starts the next
        draining = False
        while not draining or carry:
            first = carry or await self.queue.get()
            carry = None
            if first is _DRAIN:
                return
            batch, size = [first], len(first.windows)
            deadline = time.perf_counter() + self.max_delay
            while size < self.max_batch_size and not first.piece:
                remaining = deadline - time.perf_counter()
                try:
                    if remaining <= 0:
                        nxt = self.queue.get_nowait()
                    else:
                        nxt = await asyncio.wait_for(self.queue.get(), remaining)
                except (asyncio.QueueEmpty, TimeoutError):
                    break
                if nxt is _DRAIN:
                    draining = True
                    break
                if nxt.piece or size + len(nxt.windows) > self.max_batch_size:
                    carry = nxt  # a piece runs alone: it starts the next run
                    break
                batch.append(nxt)
                size += len(nxt.windows)
            await self._run(batch)
            # drop the finished requests' windows and outputs now, not when the next request
            # comes: these locals live on while the loop waits (5 000 windows: 48 MB)
            del first, batch
            self._since_give_back += size
            if self._since_give_back > GIVE_BACK_ABOVE:
                await self._give_back_if_idle()

    async def _give_back_if_idle(self) -> None:
        """After big work, give the model's memory back if no request is waiting."""
        await asyncio.sleep(0)  # a split request woken by its piece's result queues its next piece
        if not self.queue.empty():
            return
        self._since_give_back = 0
        try:
            await in_worker(self.predictor.give_back_memory)
        except Exception:  # memory kept is no reason to stop serving
            logger.exception("model %s could not give its arena back", self.predictor.card.name)

    async def _run(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        if self.on_queue_time:
            for pending in batch:
                self.on_queue_time(self.predictor.card.name, started - pending.queued_at)
        self.runs += 1
        try:
            windows = np.concatenate([p.windows for p in batch])
            async with self._running:
                outputs = await in_worker(self.predictor.run, windows, False)
        except Exception as exc:  # every waiting request gets the error, none hangs
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        start = 0
        for pending in batch:
            stop = start + len(pending.windows)
            if not pending.future.done():  # the client may have gone away
                pending.future.set_result({name: value[start:stop] for name, value in outputs.items()})
            start = stop
