"""Fit core/novelty.py's "does it look like a digit" detector on data/mnist and save it.

    python scripts/fit_novelty.py [OUT]   (default: data/models/novelty.npz)

Prints the measured numbers: the pass rate of the 10,000 MNIST test digits.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import novelty
from core.data import load_dataset


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else novelty.PARAMS
    data = load_dataset()
    detector = novelty.fit(data.train_images / 255.0, data.train_labels)
    detector.save(out)
    scores = detector.scores(data.test_images / 255.0)
    passed = (scores <= detector.thresholds).all(axis=1).mean()
    print(f"saved {out}; {passed:.2%} of the 10,000 MNIST test digits look like digits")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
