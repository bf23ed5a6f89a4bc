"""Loaded by a Python process that has this folder on PYTHONPATH (bench/body_stall.py puts it
there for the server): with STACK_SAMPLES_OUT set, a thread writes every thread's innermost
frames every 2 ms to that file, one line per sample: the time, the gap since the last sample
(a long gap: the interpreter lock was held), then each thread's frames, the main thread's
marked MAIN; and every garbage collection of 10 ms or more, as a line "<time> gc generation=G
ms=M collected=N". What a stalled event loop was doing is then read off the samples of the
stall."""

import gc
import os
import sys
import threading
import time
import traceback


def _sample(path: str) -> None:
    main, me = threading.main_thread().ident, threading.get_ident()
    last = time.perf_counter()
    with open(path, "w", buffering=1 << 16) as out:
        while True:
            time.sleep(0.002)
            now = time.perf_counter()
            threads = []
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                frames = " < ".join(
                    f"{os.path.basename(f.filename)}:{f.lineno}:{f.name}"
                    for f in reversed(traceback.extract_stack(frame)[-4:])
                )
                threads.append(f"{'MAIN' if ident == main else ident}: {frames}")
            out.write(f"{time.time():.4f} gap={(now - last) * 1000:.1f} | " + " || ".join(threads) + "\n")
            last = now


def _time_collections(path: str) -> None:
    began = [0.0]
    out = open(path, "a", buffering=1)  # noqa: SIM115 (open for the process's life)

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        elif (ms := (time.perf_counter() - began[0]) * 1000) >= 10:
            out.write(f"{time.time():.4f} gc generation={info['generation']} ms={ms:.1f} "
                      f"collected={info['collected']}\n")  # fmt: skip

    gc.callbacks.append(callback)


if os.environ.get("STACK_SAMPLES_OUT"):
    threading.Thread(target=_sample, args=(os.environ["STACK_SAMPLES_OUT"],), daemon=True).start()
    _time_collections(os.environ["STACK_SAMPLES_OUT"] + ".gc")
