"""The repository keeps its promises: README commands, CI, dependencies, data attribution."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def readme_block(heading: str) -> str:
    text = (REPO / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1]
    return re.search(r"```bash\n(.*?)\n```", section, re.S).group(1).strip()


def test_ci_runs_the_readme_test_command():
    command = readme_block("Test it")
    ci = (REPO / ".ci" / "run").read_text()
    assert command in ci.splitlines()


def test_requirements_are_ranges_and_torch_stays_out():
    for line in (REPO / "requirements.txt").read_text().splitlines():
        assert re.fullmatch(r"[a-z0-9-]+>=[\d.]+,<[\d.]+", line), line
    assert "torch" not in (REPO / "requirements.txt").read_text()
    assert "torch" not in (REPO / "requirements-dev.txt").read_text()


def test_core_never_imports_streamlit():
    for path in (REPO / "core").glob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+streamlit", path.read_text(), re.M), path


def test_mnist_ships_with_its_attribution():
    readme = (REPO / "data" / "mnist" / "README.md").read_text()
    assert "CC BY-SA 3.0" in readme and "LeCun" in readme
    assert len((REPO / "data" / "mnist" / "SHA256SUMS").read_text().splitlines()) == 4


def test_the_layer_profile_times_every_piece_of_a_step():
    from benchmarks.profile_layers import profile
    from core.layers import conv

    for two_cores, leftover in ((True, set()), (False, {"loss"})):
        was = conv.set_two_cores(two_cores)
        try:
            times = profile("cnn", batch_size=64, repeats=2)
        finally:
            conv.set_two_cores(was)
        pieces = list(times)
        assert pieces[0].startswith(" 0 Conv2D") and pieces[0].endswith("forward")
        # Split over two threads, the pieces overlap, so "loss" (what is left over) is not shown.
        assert {"optimizer step", "whole step"} | leftover <= set(pieces)
        assert " 0 Conv2D (26, 26, 16) backward" in pieces  # the first layer's weight gradient
        assert all(len(seconds) >= 2 for seconds in times.values())  # per half when split
        # "loss" is a difference of two clocks, so only the measured pieces must be positive.
        assert all(min(seconds) > 0 for piece, seconds in times.items() if piece != "loss")
