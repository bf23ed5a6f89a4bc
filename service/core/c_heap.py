"""glibc's malloc, told to give memory back: the process's RSS returns to its idle size after
big requests (bench/README.md, "Abuse"). Every function is a no-op where the C library is not
glibc."""

import ctypes

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
