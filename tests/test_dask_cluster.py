"""Sweeps on a real Dask cluster: a scheduler and two workers started as their own processes,
in a folder outside the checkout and without PYTHONPATH, so that they find `core` only as
the installed project, as the README's recipe runs them."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.runs import RunStore

REPO = Path(__file__).resolve().parent.parent
STARTUP = 60.0  # seconds a scheduler and its workers get to come up
# A trial long enough (about 10 s here) that its worker can be killed in the middle of it.
LONG = ["--set", "train_size=20000", "--set", "epochs=10"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    """This environment without PYTHONPATH: `core` must come from the installed project."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, **extra}


@dataclass
class Cluster:
    address: str
    folder: Path
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)

    def kill_worker(self, address: str) -> None:
        """Kill a worker and its nanny at once, as a machine that is lost."""
        os.killpg(self.workers[address].pid, signal.SIGKILL)
        self.workers[address].wait()

    def sweep(self, *args: str) -> subprocess.Popen:
        """Start `python -m core sweep ... --scheduler` from outside the checkout."""
        return subprocess.Popen(
            [sys.executable, "-m", "core", "sweep", *args, "--scheduler", self.address],
            cwd=self.folder,
            env=_env(MNIST_RUNS_DIR=str(self.folder / "runs")),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def store(self) -> RunStore:
        return RunStore(self.folder / "runs")


def _require_installed(folder: Path) -> None:
    """Fail, never skip, when what the cluster needs is missing."""
    if importlib.util.find_spec("distributed") is None:
        pytest.fail("Dask is not installed: pip install -r requirements-cluster.txt")
    found = subprocess.run(
        [sys.executable, "-c", "import core; print(core.__file__)"],
        cwd=folder,
        env=_env(),
        capture_output=True,
        text=True,
    )
    if found.returncode != 0 or Path(found.stdout.strip()).parent != REPO / "core":
        pytest.fail(
            "this checkout is not installed, so Dask workers cannot import `core`: run "
            f"`pip install -r requirements-cluster.txt` (it has `-e .`) in {REPO}\n"
            f"{found.stdout}{found.stderr}"
        )


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A `dask scheduler` and two `dask worker --nthreads 1` processes on 127.0.0.1."""
    from distributed import Client

    folder = tmp_path_factory.mktemp("cluster")
    assert REPO not in folder.resolve().parents
    _require_installed(folder)
    port = _free_port()
    cluster = Cluster(f"tcp://127.0.0.1:{port}", folder)

    def start(*args: str) -> subprocess.Popen:
        log = open(folder / f"process-{len(cluster.processes)}.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=folder,
            env=_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, so the nanny and its worker die together
        )
        log.close()
        cluster.processes.append(process)
        return process

    try:
        start(
            "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
            "--no-dashboard",
        )  # fmt: skip
        for _ in range(2):
            worker_port = _free_port()
            worker = start(
                "distributed.cli.dask_worker",
                cluster.address,
                "--nthreads",
                "1",
                "--host",
                "127.0.0.1",
                "--worker-port",
                str(worker_port),
                "--no-dashboard",
            )
            cluster.workers[f"tcp://127.0.0.1:{worker_port}"] = worker
        with Client(cluster.address, timeout=STARTUP) as client:
            client.wait_for_workers(2, timeout=STARTUP)
            assert set(client.scheduler_info()["workers"]) == set(cluster.workers)
        yield cluster
    finally:
        for process in cluster.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _logs(cluster: Cluster) -> str:
    return "\n".join(p.read_text()[-3000:] for p in sorted(cluster.folder.glob("process-*.log")))


def _wait_for(what: str, cluster: Cluster, sweep: subprocess.Popen, check) -> object:
    deadline = time.monotonic() + 60
    while not (found := check()):
        if sweep.poll() is not None or time.monotonic() > deadline:
            out, err = sweep.communicate()
            pytest.fail(f"never saw {what}\n{out}\n{err}\n{_logs(cluster)}")
        time.sleep(0.1)
    return found


def test_a_sweep_runs_on_worker_processes_that_only_have_the_installed_project(cluster):
    sweep = cluster.sweep(
        "--grid", "lr=0.5,1", "--grid", "momentum=0,0.9", "--name", "real",
        "--set", "train_size=1000", "--set", "epochs=2",
    )  # fmt: skip
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 0, f"{out}\n{err}\n{_logs(cluster)}"
    store = cluster.store()
    runs = store.sweep_runs("real")
    assert len(runs) == 4
    for run in runs:
        assert run.status == "finished", run.message
        assert [e["epoch"] for e in store.epochs(run.id)] == [1, 2]
        assert run.test_accuracy is not None and run.checkpoint.exists()
        assert store.batch_losses(run.id)  # the loss curve came back too
        assert run.progress["worker"] in cluster.workers
    assert "Error during deserialization" not in err + _logs(cluster)


def test_an_unreachable_scheduler_is_one_clear_message_and_leaves_nothing_queued(tmp_path):
    runs_dir = tmp_path / "runs"
    sweep = subprocess.run(
        [sys.executable, "-m", "core", "sweep", "--grid", "lr=0.5,1", "--name", "nowhere",
         "--set", "train_size=1000", "--scheduler", "tcp://127.0.0.1:1"],
        cwd=tmp_path,
        env=_env(MNIST_RUNS_DIR=str(runs_dir)),
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert sweep.returncode == 2, sweep.stderr
    assert "Traceback" not in sweep.stderr
    [line] = sweep.stderr.splitlines()
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1 (Connection refused)" in line
    assert "dask scheduler" in line
    runs = RunStore(runs_dir).sweep_runs("nowhere")
    assert len(runs) == 2
    for run in runs:
        assert run.status == "stopped" and "could not start" in run.message


def test_a_trial_whose_worker_dies_is_retried_on_the_other_worker(cluster):
    sweep = cluster.sweep("--grid", "lr=0.5", "--name", "retried", *LONG)
    store = cluster.store()

    def running_epoch():
        runs = store.sweep_runs("retried")
        live = [r for r in runs if r.status == "running" and store.epochs(r.id)]
        return live[0] if live else None

    # Its first epoch is in the store while it still trains: progress comes back live.
    run = _wait_for("a live epoch", cluster, sweep, running_epoch)
    first = run.progress["worker"]
    cluster.kill_worker(first)
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 0, f"{out}\n{err}\n{_logs(cluster)}"
    run = store.get(run.id)
    assert run.status == "finished", run.message
    assert f"tried again after its worker {first} died" in run.message
    [second] = set(cluster.workers) - {first}
    assert run.progress["worker"] == second
    assert [e["epoch"] for e in store.epochs(run.id)] == list(range(1, 11))
    assert run.checkpoint.exists()


def test_a_trial_whose_workers_all_die_is_marked_failed_with_the_reason(cluster):
    sweep = cluster.sweep("--grid", "lr=0.5", "--name", "doomed", *LONG)
    store = cluster.store()

    def on_worker(exclude: str | None):
        def check():
            runs = store.sweep_runs("doomed")
            worker = runs[0].progress.get("worker") if runs else None
            return worker if worker and worker != exclude else None

        return check

    first = _wait_for("the trial start", cluster, sweep, on_worker(None))
    cluster.kill_worker(first)
    second = _wait_for("the trial start again", cluster, sweep, on_worker(first))
    cluster.kill_worker(second)
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 0, f"{out}\n{err}"
    [run] = store.sweep_runs("doomed")
    assert run.status == "failed" and run.ended is not None and run.pid is None
    assert run.message.startswith("Its worker died during each of 2 tries")
    assert first in run.message and second in run.message
