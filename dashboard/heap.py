"""The app server's heap: big arrays go back to the system when they are freed.

glibc's malloc serves a large allocation from a mapping of its own, returned to the system on
free, but only above its "mmap threshold", and it raises that threshold (up to 32 MB) each
time such a block is freed. After that, arrays of a few MB come from the heap, and a heap
keeps what is freed inside it for reuse. The pages make many short-lived arrays of 1-40 MB
(a CNN's activations over 1,000 test images, a map of 2,000 images), so a server that had
shown every page and tab with both shipped models in Chromium held 452 MB, and 315 MB with
the threshold fixed at 1 MB (2026-12-01; `python benchmarks/bench_pages.py` reports the
server's memory the same way).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's <malloc.h>
THRESHOLD = 1 << 20  # bytes: an array this big or bigger gets its own mapping


@functools.cache  # once per process: the setting is the process's, not a session's
def return_big_arrays() -> bool:
    """Fix glibc's mmap threshold at 1 MB for this process; False (and nothing changed) where
    the C library is not glibc, e.g. on macOS or musl."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, THRESHOLD) == 1
