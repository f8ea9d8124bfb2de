"""Fit core/novelty.py's "does it look like a digit" network on data/mnist and save it.

    python scripts/fit_novelty.py [OUT]   (default: data/models/novelty.npz)

Draws the "train" non-digits (core/nondigits.py), trains the 784-256-64-2 network, sets the
threshold on the 5,000 held-out training digits, and prints the share of the 10,000 MNIST
test digits that pass. About 3 minutes on this project's 2-core machine; the same data and
seed give the same file. The full measurements are benchmarks/bench_ood.py's.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import novelty
from core.data import load_dataset


def main(argv: list[str]) -> int:
    """Fit, save to argv[0] (or the shipped file) and report the test digits' pass rate."""
    out = Path(argv[0]) if argv else novelty.PARAMS
    data = load_dataset()
    detector = novelty.fit(data.train_images / 255.0, data.train_labels, log=print)
    passed = float(detector.passes(data.test_images / 255.0).mean())
    detector.info["test_pass_rate"] = round(passed, 4)
    detector.save(out)
    print(f"saved {out}; {passed:.2%} of the 10,000 MNIST test digits look like digits")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
