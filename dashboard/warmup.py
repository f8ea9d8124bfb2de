"""Work the first visit to a page would wait for, done once per server while people read Home.

A fresh server loads MNIST and the shipped models, scores each shipped model on the
10,000 test images, runs them through every layer for the dead units and damages 2,000 of
them step by step, the first time a page needs them: 1-3 s added to whichever page comes
first (Evaluate, the tour, Data), 3-8 s to Weights › All layers and 2-4 s to Evaluate ›
Damaged digits. Home needs none of it, so the first run of the app starts
a background thread that does it into the same caches the pages use (a page that asks
meanwhile waits for the same result, it does not compute it twice). Set MNIST_WARM_UP=0 to
turn it off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

from core.data import DataError
from core.model import ModelFileError
from dashboard import computed, state

ENV = "MNIST_WARM_UP"
DELAY = 1.0  # seconds: let the browser fetch Home's files first
CONTEXT_LOGGER = "streamlit.runtime.scriptrunner_utils.script_run_context"
NICE = 10  # the thread's CPU priority on Linux: a person's click comes first


class _QuietHere(logging.Filter):
    """Drops Streamlit's "missing ScriptRunContext" warning for this thread: the caches it
    fills work without a page, and the warning would only alarm whoever reads the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.threadName != THREAD


THREAD = "warm-up"
_lock = threading.Lock()
_thread: threading.Thread | None = None
log = logging.getLogger(__name__)


def start() -> threading.Thread | None:
    """Start the warm-up once per process (later calls return the same thread); None when
    turned off by $MNIST_WARM_UP=0."""
    global _thread
    if os.environ.get(ENV, "1").strip() == "0":
        return None
    with _lock:
        if _thread is None:
            logging.getLogger(CONTEXT_LOGGER).addFilter(_QuietHere())
            _thread = threading.Thread(target=_run, name=THREAD, daemon=True)
            _thread.start()
        return _thread


def _run() -> None:
    time.sleep(DELAY)
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
    try:
        warm()
    except Exception:  # a page will meet the same problem and say so in its own words
        log.exception("warm-up stopped")


def warm() -> None:
    """Load MNIST and the shipped models, score each shipped model on the test set, find its
    dead units and measure its robustness to the first kind of damage, into the pages'
    caches.

    It imports nothing: Plotly looks for pandas in sys.modules while it builds a figure, and
    a pandas half imported by this thread broke a page that drew one at that moment.
    """
    try:
        state.load_data("")
    except DataError:
        return
    shipped = (state.DEFAULT_MODEL, state.SHIPPED_MLP)
    # Evaluate's scores first (the page most visited after Home), then the dead units of
    # Weights › All layers (10,000 test images through every layer, 3-8 s for the CNN), then
    # Evaluate › Damaged digits (2,000 test images turned step by step, 2-4 s).
    for work in (
        computed.evaluation,
        computed.dead_units,
        lambda model, data_dir: computed.robustness(model, data_dir, computed.FIRST_DAMAGE),
    ):
        for path in shipped:
            with contextlib.suppress(OSError, ModelFileError):
                work(state.file_key(path), "")
