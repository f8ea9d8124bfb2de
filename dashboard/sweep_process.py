"""Starting, finding and stopping a sweep's process for the Sweep page (no Streamlit here).

A sweep runs as `python -m core sweep SPEC.yaml --workers N` (or `--scheduler ADDR`), a
detached process like the dashboard's trainer (core/worker.py's `_start`): its own session,
so it outlives the Streamlit session, with its output in the run store's `sweeps/` folder
beside its spec (`sweeps/NAME.yaml`, `NAME.log`, and `NAME.json`: the command, for Resume).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from core.owners import owner_alive, process_start
from core.runs import RunStore
from core.store_db import RUNS_DIR_ENV
from core.worker import REPO_ROOT

SWEEPS_DIR = "sweeps"
CONNECT_TIMEOUT = 3.0  # seconds to wait for a Dask scheduler to answer before starting
ADDRESS = re.compile(r"^(?:tcp://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>\d{1,5})$")


class SweepProcessError(RuntimeError):
    """The sweep cannot be started or stopped; the message says why in plain words."""


def folder(store: RunStore) -> Path:
    return store.root / SWEEPS_DIR


def spec_path(store: RunStore, name: str) -> Path:
    """Where the sweep `name`'s spec is written (the name is a checked slug)."""
    return folder(store) / f"{name}.yaml"


def log_path(store: RunStore, name: str) -> Path:
    return folder(store) / f"{name}.log"


def _command_path(store: RunStore, name: str) -> Path:
    return folder(store) / f"{name}.json"


def refusal(store: RunStore, name: str) -> str | None:
    """The CLI's words for a sweep name that already has runs (core.sweep.plan), or None."""
    existing = store.sweep_runs(name)
    if not existing:
        return None
    # The same text as plan's refusal, so the page and the command line say the same thing.
    return (
        f"sweep {name!r} already has {len(existing)} runs in {store.root}; add "
        "--resume to continue it, or give it another name"
    )


def check_scheduler(address: str, timeout: float = CONNECT_TIMEOUT) -> str:
    """The address as `tcp://HOST:PORT` once something answers there; SweepProcessError if
    it is malformed or nothing answers."""
    text = address.strip()
    match = ADDRESS.match(text)
    if not match or not 1 <= int(match["port"]) <= 65535:
        raise SweepProcessError(
            f"{text!r} is not a scheduler address: write it as tcp://HOST:PORT, "
            "e.g. tcp://192.168.1.20:8786"
        )
    host = match["host"].strip("[]")
    try:
        socket.create_connection((host, int(match["port"])), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise SweepProcessError(
            f"No Dask scheduler answers at {text} ({reason}). Check the address and that "
            "`dask scheduler` is running there."
        ) from None
    return text if text.startswith("tcp://") else f"tcp://{text}"


def start(
    store: RunStore,
    name: str,
    spec_text: str | None,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
) -> subprocess.Popen[bytes]:
    """Write the spec (unless resuming) and start the sweep as a detached process.

    Without `resume`, a name with runs is refused in the CLI's words; with it, the sweep
    must not be running still. SweepProcessError says what is wrong; nothing is started then.
    """
    if running_pids(store, name):
        raise SweepProcessError(f"The sweep {name!r} is still running: stop it first.")
    if not resume and (message := refusal(store, name)):
        raise SweepProcessError(message)
    path = spec_path(store, name)
    if spec_text is not None:
        folder(store).mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(spec_text, encoding="utf-8")
        tmp.replace(path)
    elif not path.is_file():
        raise SweepProcessError(
            f"The sweep {name!r} was not started from this page, so its spec is not in "
            f"{folder(store)}; resume it with `python -m core sweep SPEC --resume`."
        )
    where = ["--scheduler", scheduler] if scheduler else ["--workers", str(int(workers or 1))]
    args = [str(path.resolve()), *where] + (["--resume"] if resume else [])
    proc = _launch(store, name, args)
    record = {"args": args[1:], "pid": proc.pid, "start": process_start(proc.pid)}
    _command_path(store, name).write_text(json.dumps(record), encoding="utf-8")
    return proc


def resume(store: RunStore, name: str) -> subprocess.Popen[bytes]:
    """Start the sweep `name` again with its last command and `--resume`."""
    try:
        record = json.loads(_command_path(store, name).read_text(encoding="utf-8"))
        args = [a for a in record["args"] if a != "--resume"]
    except (OSError, ValueError, KeyError, TypeError):
        args = ["--workers", str(os.cpu_count() or 1)]  # started elsewhere: use every core
    scheduler = args[1] if args[:1] == ["--scheduler"] else None
    workers = int(args[1]) if args[:1] == ["--workers"] else None
    return start(store, name, None, workers=workers, scheduler=scheduler, resume=True)


def _launch(store: RunStore, name: str, args: list[str]) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        RUNS_DIR_ENV: str(store.root.resolve()),
    }
    with open(log_path(store, name), "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "core", "sweep", *args],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # outlives the Streamlit session that started it
        )


def _is_sweep(pid: int) -> bool:
    """Whether process `pid` is a `python -m core sweep` (not a reused id or a worker)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(argv[i : i + 3] == [b"-m", b"core", b"sweep"] for i in range(len(argv)))


def _parent(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 else None


def running_pids(store: RunStore, name: str) -> list[int]:
    """The live sweep processes of sweep `name`: the one this page started, and the owner of
    its queued and running trials (a queued trial's pid is the sweep's; a running one's is
    a worker's, whose parent is the sweep)."""
    found: set[int] = set()
    record = _last_start(store, name)
    if record and owner_alive(record.get("pid"), record.get("start")) and _is_sweep(record["pid"]):
        found.add(record["pid"])
    for run in store.sweep_runs(name):
        if not run.active or not owner_alive(run.pid, run.pid_start):
            continue
        for pid in (run.pid, _parent(run.pid)):
            if pid and _is_sweep(pid):
                found.add(pid)
                break
    return sorted(found)


def _last_start(store: RunStore, name: str) -> dict[str, Any] | None:
    try:
        record = json.loads(_command_path(store, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None


def stop(store: RunStore, name: str) -> int:
    """Ask the sweep's process(es) to stop (SIGTERM: trials end cleanly, marked stopped);
    returns how many were asked."""
    asked = 0
    for pid in running_pids(store, name):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        asked += 1
    return asked


def log_tail(store: RunStore, name: str, lines: int = 6) -> str:
    """The last lines of the sweep's log (what the command printed), or ''."""
    try:
        text = log_path(store, name).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def sweep_names(store: RunStore) -> list[str]:
    """The sweeps in the store, newest first."""
    names: list[str] = []
    for run in store.runs():
        if run.sweep and run.sweep not in names:
            names.append(run.sweep)
    return names
