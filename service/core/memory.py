"""Every memory and garbage-collector measure the service takes: what is done when, and why.
Each was added for a measurement (bench/README.md, "Abuse" and "Abuse, second round"); the
functions are here, and the measures that live with their data say so and point here.

- once at start (`rul-serve`): `return_large_blocks_at_once`, glibc's mmap threshold fixed at
  128 kB. Why: freed bodies stayed in malloc's heaps; a 19 MB body after a 60 MB one left the
  RSS 25 % above idle.
- after every model install (start, reload): `settle_heap`, collect then `gc.freeze` what is
  alive. Why: each full collection walked ~200 000 long-lived objects holding the interpreter,
  stalls of 100-225 ms.
- a run of more than MAX_RUN_WINDOWS windows (predictor.py) runs in pieces. Why: one run of
  5 000 windows raised the peak by 2.5 GB, the same in runs of 256 by 114 MB.
- after runs of more than GIVE_BACK_ABOVE windows (predictor.py), when no request waits (the
  batcher asks; a direct run at once): `give_back_arena`, ONNX Runtime's arena shrunk, then
  `trim_c_heap`. Why: the arena keeps its largest run, +135 MB after 256 windows.
- 0.2 s after a request that held a body of 8 MB or more ends, however it ends
  (transport/security.py): `collect_and_trim`. Why: a body cut off by its client stays
  reachable from the exception's traceback, a cycle that an idle server never collects; 4
  withheld 60 MiB bodies left the RSS 2.08x idle after their clients had gone, now 1.00x.
- after a fleet's answer is sent (routes/score.py): `trim_c_heap`. Why: thousands of small
  allocations' pages stay inside the heap, +50 MB after 5 000 windows.
- after a large answer is encoded: `Answers.release` (answers.py) frees the qualities 500 at a
  time in a worker thread. Why: a million objects freed at once on the loop held it 0.1-0.3 s.
- at shutdown: `release_on_shutdown`, the models dropped and the heap unfrozen. Why: the
  frozen heap is never collected, and FastAPI keeps every app it built reachable (an
  lru_cache of endpoints holds FastAPIOffline's per-app closures): each app built and stopped
  in one process (the test suite builds ~100) kept its models, +127 MB each, 9.7 GB in all.
- after each batch: the batcher drops its finished batch at once (`del` in batcher.py). Why:
  the locals otherwise lived until the next request, 48 MB for 5 000 windows.

The C-library functions are no-ops where the C library is not glibc.
"""

import ctypes
import gc

import numpy as np
import onnxruntime as ort

try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6")
except OSError:  # not glibc
    _LIBC = None

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's initial value


def return_large_blocks_at_once() -> None:
    """Keep malloc from holding on to freed request bodies and batches. After a large block is
    freed, glibc raises its mmap threshold (up to 32 MB) and serves later blocks of that size
    from its heaps, which return memory to the system only from their top: after the abuse
    benchmark's 60 MB body, a 19 MB body left the process 25 % above its idle RSS. Fixing the
    threshold (which turns the raising off) keeps every block over 128 kB in a mapping of its
    own, unmapped when freed. Process-wide: `rul-serve` calls it once at start."""
    if _LIBC is not None:
        _LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def trim_c_heap() -> None:
    """Hand the free pages inside malloc's heaps back to the system (malloc_trim(0)).
    Thousands of predictions leave their small allocations' pages free but inside the heap,
    which glibc returns only from its top: after a 5 000-window request split into pieces the
    process kept +50 MB (abuse benchmark, 1.25x idle); a trim costs a few ms."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def collect_and_trim() -> None:
    """Collect the cycles nobody holds (what was not frozen: `settle_heap`), then `trim_c_heap`.
    For a body cut off by its client: its chunks stay reachable from the exception's traceback,
    a cycle that only a collection frees, and an idle server makes none."""
    gc.collect()
    trim_c_heap()


def settle_heap() -> None:
    """Collect what loading left behind, then freeze every object alive (the modules, the
    models, the settings) out of the garbage collector's sight. Without it, each full
    collection walks those ~200 000 objects while holding the interpreter: 100-225 ms during
    which no request, /health/live included, is answered. Requests' objects stay collected as
    before. Called after every install; unfreezing first lets what a reload replaced be
    collected even where it is held in a reference cycle (one full collection, ~0.2 s, per
    start or reload)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def release_on_shutdown() -> None:
    """Once the app has stopped (its models dropped by the caller): unfreeze what settle_heap
    froze and collect it, so that the models' sessions are freed even where the app object
    itself stays reachable, and the C heap's free pages given back."""
    gc.unfreeze()
    gc.collect()
    trim_c_heap()


SHRINK_ARENA = ort.RunOptions()
SHRINK_ARENA.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")


def give_back_arena(session: ort.InferenceSession, feed: str, window_shape: tuple[int, int]) -> None:
    """Return the ONNX Runtime arena regions no run is using to the system (a one-window run
    with arena shrinkage, ~3 ms on the CPU), then the C heap's free pages (`trim_c_heap`).
    Outputs of the big run must be copied out first: numpy arrays of outputs live in the arena
    and pin its regions. Shrinking costs the next run its re-growth (+15 % at 100 windows),
    which is why the batcher asks only when no request is waiting."""
    window = np.zeros((1, *window_shape), dtype=np.float32)
    session.run(None, {feed: window}, SHRINK_ARENA)
    trim_c_heap()
