"""The run store shared by processes: a reader in one process sees every write another makes.

SQLite keeps POSIX locks on the database file; closing any descriptor of that file drops all
of them for the whole process. The store once read the file's header with open()/close() on
every new connection (every Streamlit rerun thread), so a trainer process exiting afterwards
believed it was the last user, deleted the -wal, and the dashboard showed a run "queued" long
after it finished, then "database disk image is malformed".
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from core.runs import DB_NAME, RunStore
from tests.test_compare import seed_run

REPO = Path(__file__).resolve().parent.parent


def add_run_in_another_process(root: Path, name: str) -> None:
    code = (
        "from core.runs import RunStore; from tests.test_compare import seed_run; "
        f"seed_run(RunStore({str(root)!r}), {name!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def names(store: RunStore) -> list[str]:
    return sorted(r.name for r in store.runs())


def names_in_a_new_thread(store: RunStore) -> list[str]:
    """What a new thread reads: it opens a new connection, as each Streamlit rerun does."""
    out: list[str] = []
    thread = threading.Thread(target=lambda: out.extend(names(store)))
    thread.start()
    thread.join()
    return out


def test_a_reader_sees_runs_written_by_processes_that_come_and_go(tmp_path):
    writer = RunStore(tmp_path)
    seed_run(writer, "first")
    reader = RunStore(tmp_path)
    expected = ["first"]
    for i in range(2):
        assert names_in_a_new_thread(reader) == expected
        reader.close()  # and the next read opens the store again
        add_run_in_another_process(tmp_path, f"trainer {i}")
        expected = sorted([*expected, f"trainer {i}"])
        assert names(reader) == expected
        assert names(writer) == expected
    seed_run(writer, "last")  # a write after all that lands in a sound database
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (4,)
