"""Settings of the app server's process, made once: big arrays go back to the system when
they are freed, and BLAS runs on one thread.

glibc's malloc serves a large allocation from a mapping of its own, returned to the system on
free, but only above its "mmap threshold", and it raises that threshold (up to 32 MB) each
time such a block is freed. After that, arrays of a few MB come from the heap, and a heap
keeps what is freed inside it for reuse. The pages make many short-lived arrays of 1-40 MB
(a CNN's activations over 1,000 test images, a map of 2,000 images), so a server that had
shown every page and tab with both shipped models in Chromium held 452 MB, and 315 MB with
the threshold fixed at 1 MB (2026-12-01; `python benchmarks/bench_pages.py` reports the
server's memory the same way).

OpenBLAS, running a product on two threads, gives each thread taking part a buffer of
32 MB and touches about 9 MB of it; a thread that calls it is given its own. The pages call
it from Streamlit's script threads, the warm-up's and the convolution layers' helper, so a
server that had shown every page had 40-57 MB of such buffers resident. On one BLAS thread the
buffers go untouched, and the pages lose next to no speed: the convolution layers split
each batch across the two cores themselves (core/layers/conv.py), and a second BLAS thread
only competes with that. Scoring the shipped CNN on the 10,000 test images took 1.2-1.5 s
on one BLAS thread against 1.7-1.8 s on two; the shipped MLP, 0.06 s against 0.04 s. A
server that had shown every page went from 386-399 MB to 339-343 MB (2026-12-01).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

from threadpoolctl import threadpool_limits

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


@functools.cache  # once per process, like the setting
def one_blas_thread() -> None:
    """Run BLAS on one thread in this process (training runs in processes of its own, with
    their own setting: core/train.py's compute_settings)."""
    threadpool_limits(limits=1, user_api="blas")
