"""Benchmark: a run started from the dashboard's Train page against the same run from the CLI.

    python benchmarks/bench_dashboard.py             # the default preset, 3 repeats each

The page path is the real one: the Train page (through Streamlit's AppTest) queues the run
and starts the background trainer, which trains it; the clock runs from the Start click to
the run's status turning finished. The CLI path is `python -m core train` in a subprocess,
timed from launch to exit. Both include starting Python and loading MNIST. The target is a
ratio (page / CLI) of at most 1.15.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streamlit.testing.v1 import AppTest  # noqa: E402

from core.runs import RunStore  # noqa: E402

TARGET = 1.15


def from_page(runs: Path) -> float:
    """Seconds from pressing Start on the Train page to the run being finished."""
    os.environ["MNIST_RUNS_DIR"] = str(runs)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("views/train.py").run()
    start = time.perf_counter()
    next(b for b in at.button if b.label == "Start").click().run()
    store = RunStore(runs)
    run = store.runs()[0]
    while store.get(run.id).active:
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    assert store.get(run.id).status == "finished"
    return seconds


def from_cli(runs: Path) -> float:
    """Seconds for `python -m core train` with the same (default) settings."""
    env = {**os.environ, "MNIST_RUNS_DIR": str(runs), "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "core", "train", "--quiet"], cwd=REPO, env=env,
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"page": [], "cli": []}
    for r in range(args.repeats):
        for name, measure in (("page", from_page), ("cli", from_cli)):  # interleaved
            with tempfile.TemporaryDirectory() as tmp:
                times[name].append(measure(Path(tmp)))
        print(f"  repeat {r + 1}: page {times['page'][-1]:.1f} s, cli {times['cli'][-1]:.1f} s")
    page, cli = statistics.median(times["page"]), statistics.median(times["cli"])
    ratio = page / cli
    print(
        f"median: page {page:.1f} s, cli {cli:.1f} s, ratio {ratio:.2f} "
        f"(target <= {TARGET}: {'MET' if ratio <= TARGET else 'NOT MET'})"
    )


if __name__ == "__main__":
    main()
