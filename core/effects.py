"""Parameter effects: how much each setting that differs between runs moves a metric.

Runs in, tables out (no Streamlit, no Plotly). Each setting's share of the metric's
differences is eta squared from grouping the runs by the setting's values: the part of the
metric's variance that lies between the groups' means, taken one setting at a time.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from .config import TrainConfig
from .runs import Run

# The metrics a Run records, with the words a page uses for them.
METRICS: dict[str, str] = {
    "test_accuracy": "test accuracy",
    "best_val_accuracy": "best validation accuracy",
    "test_loss": "test loss",
    "train_seconds": "training time",
}
PERCENT_METRICS = ("test_accuracy", "best_val_accuracy")
# The seed is never a setting here: runs that differ only in it are repeats of one setting,
# and grouping by it would credit it with the noise between them.
NOT_SETTINGS = ("seed",)
SETTINGS = [f.name for f in fields(TrainConfig) if f.name not in NOT_SETTINGS]
# Positive continuous settings spread over orders of magnitude: drawn on a log axis.
LOG_SETTINGS = ("lr", "weight_decay", "step_gamma")
MAX_CATEGORIES = 6  # a float setting with more distinct values than this is drawn as a scatter
MAX_BINS = 4  # a continuous setting with (nearly) one value per run is grouped into these

LOG, LINEAR, CATEGORY = "log", "linear", "category"
UNSEPARABLE = "every run has its own value, so its effect cannot be separated"
BINNED = "values grouped into {bins} bins of about equal size to share them out"
CONSTANT_METRIC = "every run has the same {label}, so there is nothing to explain"

METHOD = (
    "Share explained is eta squared: the runs are grouped by one setting's values and the "
    "share of the variance of {label} that lies between the groups' means is that setting's "
    "share (scipy.stats.f_oneway gives the p-value: the chance of a spread this large if the "
    "setting did nothing; with few runs per group, chance alone gives a setting some share). "
    "Each setting is taken on its own, so with settings that change "
    "together the shares overlap and need not add up to 100%. The seed is never a setting: "
    "runs that differ only in it count as repeats. A continuous setting whose runs nearly "
    "all have their own value is grouped into up to {bins} bins of about equal size."
)


@dataclass
class Effects:
    """The runs' metric and settings (`table`), each setting's share (`ranking`), and words."""

    metric: str
    label: str
    table: pd.DataFrame  # run_id, name, the metric, one column per varied setting
    ranking: pd.DataFrame  # setting, share, values, runs, groups, p_value, note
    kinds: dict[str, str] = field(default_factory=dict)  # setting -> log, linear or category
    left_out: int = 0
    sentence: str = ""

    @property
    def settings(self) -> list[str]:
        """The varied settings, in TrainConfig's order."""
        return list(self.kinds)

    @property
    def left_out_text(self) -> str:
        """'3 runs without a test accuracy are left out', or '' when none are."""
        if not self.left_out:
            return ""
        runs = "1 run" if self.left_out == 1 else f"{self.left_out} runs"
        verb = "is" if self.left_out == 1 else "are"
        return f"{runs} without a {self.label} {verb} left out"

    @property
    def method(self) -> str:
        """How the shares are computed, for a caption."""
        return METHOD.format(label=self.label, bins=MAX_BINS)


def readable(value: Any) -> Any:
    """A setting's value as a hashable cell: lists as '128,64', bools as text, others as is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return value


def metric_value(run: Run, metric: str) -> float | None:
    """The run's `metric` as a finite float, or None if it has none (failed, still running)."""
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} is not one of {', '.join(METRICS)}")
    value = getattr(run, metric)
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def setting_kind(setting: str, values: Sequence[Any]) -> str:
    """How to draw a setting: 'log' or 'linear' scatter for continuous values, else 'category'."""
    present = [v for v in values if v is not None]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
    if not present or not numeric:
        return CATEGORY
    if setting in LOG_SETTINGS and all(v > 0 for v in present):
        return LOG
    # Whole-number settings (batch size, epochs, kernel) are choices; so are a few floats.
    floats = any(isinstance(v, float) for v in present)
    if floats and len(set(present)) > MAX_CATEGORIES:
        return LINEAR
    return CATEGORY


def eta_squared(values: Sequence[float], groups: Sequence[Any]) -> float:
    """Share of the variance of `values` between the means of `groups` (NaN if none varies)."""
    y = np.asarray(values, dtype=np.float64)
    codes = pd.factorize(pd.Series(list(groups), dtype=object))[0]
    total = float(np.sum((y - y.mean()) ** 2))
    if len(y) == 0 or float(np.ptp(y)) == 0.0 or total <= 0:
        # Equal values can leave a rounding-sized total that any grouping would "explain".
        return math.nan
    counts = np.bincount(codes)
    means = np.bincount(codes, weights=y) / counts
    between = float(np.sum(counts * (means - y.mean()) ** 2))
    return min(max(between / total, 0.0), 1.0)


def _p_value(values: np.ndarray, codes: np.ndarray) -> float:
    """The one-way ANOVA p-value of the grouping, NaN where it is undefined."""
    groups = [values[codes == c] for c in np.unique(codes)]
    if len(groups) < 2 or len(values) <= len(groups):
        return math.nan
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # A grouping with no spread inside its groups makes F infinite; that is a p of 0.
        warnings.simplefilter("ignore")
        from scipy import stats  # imported when used: a second's import the CLI rarely needs

        p = float(stats.f_oneway(*groups).pvalue)
    return p if math.isfinite(p) else math.nan


def _groups(column: pd.Series, kind: str) -> tuple[np.ndarray, str]:
    """Group codes for one setting's column, and a note when it is binned or unseparable."""
    codes = pd.factorize(column.astype(object))[0]
    n, distinct = len(column), int(codes.max()) + 1
    if kind != CATEGORY and distinct > n / 2:
        # Too few runs share a value to compare groups (a random sweep's learning rates):
        # equal-count bins by rank, which suit a log axis and a linear one alike.
        bins = min(MAX_BINS, n // 2)
        if bins >= 2:
            ranks = column.rank(method="first").to_numpy()
            return np.floor((ranks - 1) * bins / n).astype(int), BINNED.format(bins=bins)
    if distinct == n:
        return codes, UNSEPARABLE
    return codes, ""


RANKING_COLUMNS = ["setting", "share", "values", "runs", "groups", "p_value", "note"]


def parameter_effects(runs: Sequence[Run], metric: str = "test_accuracy") -> Effects:
    """The table, the ranking of settings by share explained, and a sentence, for `runs`."""
    label = METRICS.get(metric)
    if label is None:
        raise ValueError(f"metric {metric!r} is not one of {', '.join(METRICS)}")
    scored = [(r, v) for r in runs if (v := metric_value(r, metric)) is not None]
    left_out = len(runs) - len(scored)
    configs = [r.config.to_dict() for r, _ in scored]
    varied = [k for k in SETTINGS if len({repr(readable(c[k])) for c in configs}) > 1]
    table = pd.DataFrame(
        {
            "run_id": [r.id for r, _ in scored],
            "name": [r.name for r, _ in scored],
            metric: [v for _, v in scored],
            **{k: [readable(c[k]) for c in configs] for k in varied},
        },
        columns=["run_id", "name", metric, *varied],
    )
    kinds = {k: setting_kind(k, table[k].tolist()) for k in varied}
    y = table[metric].to_numpy(dtype=np.float64)
    constant = len(y) > 0 and float(np.ptp(y)) == 0.0
    rows = []
    for k in varied:
        codes, note = _groups(table[k], kinds[k])
        share = math.nan if note == UNSEPARABLE else eta_squared(y, codes)
        if constant:
            note = CONSTANT_METRIC.format(label=label)
        rows.append(
            {
                "setting": k,
                "share": share,
                "values": int(table[k].astype(object).nunique()),
                "runs": len(y),
                "groups": int(codes.max()) + 1,
                "p_value": math.nan if math.isnan(share) else _p_value(y, codes),
                "note": note,
            }
        )
    ranking = pd.DataFrame(rows, columns=RANKING_COLUMNS)
    if len(ranking):
        # Most important first; settings without a share last, in TrainConfig's order.
        order = ranking["share"].fillna(-1.0).to_numpy()
        ranking = ranking.iloc[np.argsort(-order, kind="stable")].reset_index(drop=True)
    effects = Effects(metric, label, table, ranking, kinds, left_out)
    effects.sentence = sentence(effects)
    return effects


def _percent(share: float) -> str:
    return "under 1%" if 0 < share < 0.005 else f"{share:.0%}"


def sentence(effects: Effects) -> str:
    """The ranking's top setting in plain words, or why there is nothing to rank."""
    n, label, ranking = len(effects.table), effects.label, effects.ranking
    if n < 2:
        return f"At least two runs with a {label} are needed to see what a setting does."
    if ranking.empty:
        return f"These {n} runs use the same settings (the seed aside): nothing to compare."
    shared = ranking.dropna(subset=["share"])
    if shared.empty:
        if (ranking["note"] == CONSTANT_METRIC.format(label=label)).any():
            return f"All {n} runs have the same {label}: no setting made a difference."
        return (
            f"Every one of these {n} runs has its own value of each setting that differs, "
            "so no setting's effect can be separated; more runs per value are needed."
        )
    top = shared.iloc[0]
    text = (
        f"{top['setting']} matters most: on its own it explains {_percent(top['share'])} of "
        f"the differences in {label} between these {n} runs"
    )
    if len(shared) > 1:
        second = shared.iloc[1]
        text += f"; next is {second['setting']} with {_percent(second['share'])}"
    return text + "."
