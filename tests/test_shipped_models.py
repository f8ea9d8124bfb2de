"""The shipped models score what the README's results table says, on the 10,000 test images."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.metrics import evaluate
from core.model_load import load_model
from core.presets import preset

REPO = Path(__file__).resolve().parent.parent


def readme_accuracy(preset_name: str) -> float:
    """The test accuracy, in percent, that the README's results table gives for a preset."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    row = re.search(rf"^\| `{re.escape(preset_name)}` —.*$", readme, re.MULTILINE)
    assert row, f"the README's results table has no row for the {preset_name} preset"
    accuracy = re.search(r"\| ([\d.]+) % \|", row.group(0))
    assert accuracy, f"the README's {preset_name} row gives no test accuracy: {row.group(0)}"
    return float(accuracy.group(1))


@pytest.mark.parametrize(("path", "preset_name"), [("default.npz", "cnn"), ("mlp.npz", "mlp")])
def test_a_shipped_model_scores_what_the_readme_says(mnist, path, preset_name):
    model, meta = load_model(REPO / "data" / "models" / path)
    assert meta["config"] == preset(preset_name).to_dict()  # made by the README's command
    result = evaluate(model, mnist.test_images, mnist.test_labels)
    assert len(result.labels) == 10_000
    assert result.accuracy * 100 == pytest.approx(readme_accuracy(preset_name), abs=0.05)
