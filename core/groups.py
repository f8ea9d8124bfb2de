"""Runs that differ only in their seed, as groups; and whether two groups really differ.

One run per setting cannot tell a real difference from luck: the same settings trained with
another seed land a few tenths of a point away. So runs are grouped by their settings minus
the seed, a group's result is its mean with a spread, and two groups are compared with
Welch's t-test (scipy.stats), which does not assume both groups vary alike.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .config import TrainConfig
from .run import Run

ALPHA = 0.05  # a difference is called clear below this p-value
METRICS = {"test_accuracy": "test accuracy", "best_val_accuracy": "validation accuracy"}


def settings_key(config: TrainConfig) -> str:
    """The run's settings without the seed, as text: equal for runs that differ only in seed."""
    values = config.to_dict()
    values.pop("seed", None)
    return json.dumps(values, sort_keys=True)


def metric_of(run: Run, metric: str) -> float | None:
    """A run's final metric ("test_accuracy" or "best_val_accuracy"), None if it has none."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    value = getattr(run, metric)
    return None if value is None or math.isnan(value) else float(value)


@dataclass
class Group:
    """Runs with the same settings but for the seed, and their final metric."""

    runs: list[Run]
    metric: str = "test_accuracy"
    values: list[float] = field(init=False)

    def __post_init__(self) -> None:
        self.values = [v for r in self.runs if (v := metric_of(r, self.metric)) is not None]

    @property
    def config(self) -> TrainConfig:
        return self.runs[0].config

    @property
    def ids(self) -> list[int]:
        return [r.id for r in self.runs]

    @property
    def n(self) -> int:
        """How many of its runs have the metric."""
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """The sample standard deviation (n - 1); None below two values."""
        return statistics.stdev(self.values) if self.n > 1 else None

    def summary(self) -> str:
        """ "98.12 % ± 0.08 (n = 5)": the mean and the standard deviation, in percent."""
        if self.mean is None:
            return "no result yet"
        spread = f" ± {100 * self.std:.2f}" if self.std is not None else ""
        return f"{100 * self.mean:.2f} %{spread} (n = {self.n})"


def group_runs(runs: Iterable[Run], metric: str = "test_accuracy") -> list[Group]:
    """The runs grouped by their settings without the seed; best mean first, then the
    groups without a result, each group's runs in id order."""
    by_key: dict[str, list[Run]] = {}
    for run in sorted(runs, key=lambda r: r.id):
        by_key.setdefault(settings_key(run.config), []).append(run)
    groups = [Group(members, metric) for members in by_key.values()]
    return sorted(groups, key=lambda g: (g.mean is None, -(g.mean or 0.0), g.ids[0]))


def differing(configs: Sequence[TrainConfig]) -> list[str]:
    """The settings (not the seed) on which some of `configs` differ, in TrainConfig's order."""
    dicts = [c.to_dict() for c in configs]
    keys = [k for k in dicts[0] if k != "seed"] if dicts else []
    return [k for k in keys if len({json.dumps(d[k]) for d in dicts}) > 1]


def describe(config: TrainConfig, keys: Sequence[str]) -> str:
    """A group's name by the settings that set it apart, e.g. "lr 0.1, optimizer adam"."""
    values = config.to_dict()

    def text(value: object) -> str:
        if isinstance(value, list):
            return "-".join(str(v) for v in value)
        return format(value, "g") if isinstance(value, float) else str(value)

    return ", ".join(f"{k} {text(values[k])}" for k in keys) or "the same settings"


@dataclass
class Verdict:
    """The comparison of two groups on one metric, in numbers and in one sentence."""

    sentence: str
    difference: float | None  # mean of a minus mean of b, in points (percent)
    margin: float | None  # half the 95 % confidence interval of the difference, in points
    p_value: float | None
    clear: bool  # whether the difference is clear (p < ALPHA)
    n: tuple[int, int]
    warning: str | None = None

    def to_dict(self) -> dict:
        return {
            "verdict": self.sentence,
            "difference_points": self.difference,
            "margin_points": self.margin,
            "p_value": self.p_value,
            "clear": self.clear,
            "n": list(self.n),
            "warning": self.warning,
        }


def verdict(a: Group, b: Group, names: tuple[str, str] | None = None) -> Verdict:
    """Whether group `a` beats `b` (or the reverse) on their metric, by Welch's t-test."""
    if names is None:
        keys = differing([a.config, b.config])
        names = (describe(a.config, keys), describe(b.config, keys))
    what = METRICS[a.metric]
    n = (a.n, b.n)
    if min(n) == 0:
        missing = names[0] if a.n == 0 else names[1]
        return Verdict(f"{missing} has no {what} yet: nothing to compare.", None, None, None,
                       False, n)  # fmt: skip
    diff = 100 * (a.mean - b.mean)
    if min(n) < 2:
        sentence = (
            f"{names[0]} scores {abs(diff):.2f} points of {what} "
            f"{'above' if diff >= 0 else 'below'} {names[1]}, but with a single run "
            f"{'on each side' if max(n) == 1 else 'on one side'} no test can tell this from "
            "luck: run more seeds."
        )
        return Verdict(sentence, diff, None, None, False, n,
                       warning="Single runs: a difference this size may be luck.")  # fmt: skip
    if a.std == 0 and b.std == 0:  # identical results within each group: no spread to test
        clear = diff != 0
        p_value = 0.0 if clear else 1.0
        margin = 0.0
    else:
        # Imported here: scipy.stats takes a second to import, and the trainer's workers and
        # most CLI commands never compare groups.
        from scipy import stats

        test = stats.ttest_ind(a.values, b.values, equal_var=False)
        p_value = float(test.pvalue)
        low, high = test.confidence_interval(1 - ALPHA)
        margin = 100 * (high - low) / 2
        clear = p_value < ALPHA
    counts = f"{a.n} seeds each" if a.n == b.n else f"{a.n} and {b.n} seeds"
    if clear:
        winner, loser = names if diff > 0 else names[::-1]
        sentence = (
            f"{winner} beats {loser} by {abs(diff):.2f} ± {margin:.2f} points of {what} "
            f"({counts}; Welch's t-test, {_p(p_value)})."
        )
    else:
        sentence = f"No clear difference ({_p(p_value)}): run more seeds ({counts} so far)."
    return Verdict(sentence, diff, margin, p_value, clear, n)


def _p(p: float) -> str:
    """ "p = 0.01", "p < 0.001": two significant digits are all a p-value carries."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}" if p < 0.1 else f"p = {p:.1f}"


def group_of(run: Run, runs: Iterable[Run]) -> list[Run]:
    """Every run of `runs` with `run`'s settings but any seed, in id order."""
    key = settings_key(run.config)
    return sorted((r for r in runs if settings_key(r.config) == key), key=lambda r: r.id)
