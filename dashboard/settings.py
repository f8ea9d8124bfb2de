"""The training settings form: every TrainConfig field as a widget, presets, URL round trip.

Widgets keep their values in st.session_state under "cfg_<field>" and persist for the whole
session, so the form survives a visit to another page. A preset or a link fills the form
by writing those keys before the widgets are drawn. Every widget covers its setting's whole
valid range, so a link's value lands exactly; what cannot land (text where a number belongs,
NaN, an unknown choice, a slider value outside the slider) is replaced and named in a note.
The pure helpers at the top (no Streamlit) are what the tests exercise directly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import streamlit as st

from core.config import (
    ACTIVATIONS,
    ARCHS,
    HELP,
    INITS,
    OPTIMIZERS,
    PADDINGS,
    SCHEDULES,
    ConfigError,
    TrainConfig,
)
from core.presets import PRESETS, preset

PREFIX = "cfg_"
FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]
DEFAULTS = TrainConfig()
LINK_MEMO = "train_link"  # the settings this page last put in the URL
PERSIST = "session"  # form values outlive a visit to another page

LABELS = {
    "arch": "Architecture", "conv": "Convolution filters per block", "kernel_size": "Kernel size",
    "padding": "Padding", "hidden": "Hidden dense layers", "activation": "Activation",
    "init": "Weight initialisation", "dropout": "Dropout", "batchnorm": "Batch normalisation",
    "optimizer": "Optimizer", "lr": "Learning rate", "momentum": "Momentum",
    "nesterov": "Nesterov momentum", "batch_size": "Batch size", "epochs": "Epochs",
    "schedule": "Learning-rate schedule", "warmup_epochs": "Warm-up epochs",
    "step_every": "Drop every (epochs)", "step_gamma": "Multiply by",
    "weight_decay": "L2 weight decay", "patience": "Early-stopping patience",
    "aug_rotate": "Rotate (degrees)", "aug_shift": "Shift (pixels)",
    "aug_scale": "Scale (fraction)", "aug_elastic": "Elastic strength (alpha)",
    "aug_elastic_sigma": "Elastic smoothness (sigma)", "train_size": "Training images",
    "val_size": "Validation images", "seed": "Seed",
    "data_dir": "Data folder (empty: the bundled MNIST)",
}  # fmt: skip
CHOICES: dict[str, tuple[str, ...]] = {
    "arch": ARCHS, "padding": PADDINGS, "activation": ACTIVATIONS, "init": INITS,
    "optimizer": OPTIMIZERS, "schedule": SCHEDULES,
}  # fmt: skip
# Sliders: (min, max, step), each exactly the setting's valid range in core/config.py.
SLIDERS = {
    "aug_rotate": (0.0, 90.0, 1.0),
    "aug_shift": (0.0, 10.0, 0.5),
    "aug_scale": (0.0, 0.5, 0.05),
    "aug_elastic": (0.0, 100.0, 2.0),
    "aug_elastic_sigma": (0.5, 20.0, 0.5),
}
# Number inputs: (min, max, step). The bounds stretch to take any number a link brings, and
# the form's validation marks it when it is out of range (a number input keeps its value
# when its bounds change; a slider would reset).
NUMBERS: dict[str, tuple[float | None, float | None, float]] = {
    "dropout": (0.0, 0.95, 0.05),
    "momentum": (0.0, 0.999, 0.01),
    "epochs": (1, 1000, 1),
    "warmup_epochs": (0.0, None, 0.5),
    "step_every": (1, None, 1),
    "step_gamma": (0.0, 1.0, 0.05),
    "patience": (0, None, 1),
    "val_size": (1, None, 500),
    "seed": (0, 2**32 - 1, 1),
}
LR_CHOICES = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
              10.0, 20.0, 50.0]  # fmt: skip
WEIGHT_DECAY_CHOICES = [0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
BATCH_CHOICES = [16, 32, 64, 128, 256, 512, 1024, 2048, 8192]
TRAIN_SIZE_CHOICES = [500, 1000, 2000, 5000, 10_000, 20_000, 0]  # 0: all
KERNEL_CHOICES = [1, 2, 3, 4, 5, 7]
ARCH_NAMES = {"mlp": "MLP: dense layers", "cnn": "CNN: convolutions"}
VARY_FIELDS = [
    "lr", "momentum", "optimizer", "batch_size", "epochs", "hidden", "activation", "dropout",
    "weight_decay", "schedule", "batchnorm", "aug_rotate", "seed",
]  # fmt: skip


# Pure helpers


@dataclasses.dataclass(frozen=True)
class LinkNote:
    """A setting a link carried that could not land in the form as given, and what was used."""

    field: str
    given: str
    used: Any
    reason: str

    @property
    def message(self) -> str:
        return (
            f"The link's **{LABELS[self.field]}** (`{self.field}={self.given}`) {self.reason}; "
            f"the form uses {shown(self.used)}."
        )


def shown(value: Any) -> str:
    """A setting's value as a person reads it."""
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if value != "" else "nothing (empty)"


def with_value(options: list[Any], value: Any) -> list[Any]:
    """`options` plus `value` if it is missing, kept sorted when the options are numbers."""
    if value is None or value in options:
        return options
    if all(isinstance(o, (int, float)) for o in [*options, value]):
        return sorted([*options, value])
    return [*options, value]


def bounds(name: str, value: Any) -> tuple[Any, Any]:
    """A number input's (min, max): the setting's usual range, stretched to hold `value`."""
    low, high, _ = NUMBERS[name]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        low = value if low is None else min(low, value)
        high = None if high is None else max(high, value)
    if isinstance(DEFAULTS.to_dict()[name], float):  # the bounds' type must match the value's
        low, high = (None if b is None else float(b) for b in (low, high))
    return low, high


def to_query(cfg: TrainConfig) -> dict[str, str]:
    """The settings that differ from the defaults, as URL query parameters."""
    return {
        name: query_text(value)
        for name, value in cfg.to_dict().items()
        if value != getattr(DEFAULTS, name)
    }


def query_text(value: Any) -> str:
    """A setting's value in a URL: exact (the shortest text that reads back the same float),
    and without a needless '.0'."""
    if isinstance(value, list):
        return ",".join(map(str, value))
    text = repr(value) if isinstance(value, float) else str(value)
    return text.removesuffix(".0") if isinstance(value, float) else text


def from_query(params: Mapping[str, str]) -> tuple[TrainConfig, list[LinkNote]]:
    """The form's settings from URL parameters, and a note for each one that could not land.

    A number lands as given even when it is out of range (the form then marks it); text
    that is not a value of the setting's type, NaN or infinity, an unknown choice, and a
    number outside a slider's range are replaced (by the default, or the nearest end of
    the slider) and named. Parameters that are not settings (the sidebar's) are ignored.
    """
    values: dict[str, Any] = {}
    notes: list[LinkNote] = []
    for name, text in params.items():
        if name not in FIELDS:
            continue
        default = getattr(DEFAULTS, name)
        try:
            value = getattr(TrainConfig.from_dict({name: text}), name)
        except ConfigError as exc:
            notes.append(LinkNote(name, text, default, f"is not valid ({exc.message})"))
            continue
        if isinstance(value, float) and not math.isfinite(value):
            notes.append(LinkNote(name, text, default, "is not a finite number"))
        elif name in CHOICES and value not in CHOICES[name]:
            allowed = ", ".join(CHOICES[name])
            notes.append(LinkNote(name, text, default, f"is not one of {allowed}"))
        elif name in SLIDERS and not SLIDERS[name][0] <= value <= SLIDERS[name][1]:
            low, high, _ = SLIDERS[name]
            used = min(max(value, low), high)
            notes.append(LinkNote(name, text, used, f"is outside the allowed {low:g} to {high:g}"))
            values[name] = used
        else:
            values[name] = value
    return TrainConfig.from_dict(values), notes


def vary(cfg: TrainConfig, name: str, text: str) -> list[TrainConfig]:
    """One config per comma- (or for layer lists, semicolon-) separated value of setting `name`."""
    separator = ";" if isinstance(getattr(DEFAULTS, name), list) else ","
    values = [v.strip() for v in text.split(separator) if v.strip()]
    if not 2 <= len(values) <= 5:
        raise ConfigError(name, f"give two to five values separated by '{separator}'")
    configs = [cfg.replace(**{name: v}) for v in values]
    distinct = {json_key(getattr(c, name)) for c in configs}
    if len(distinct) < len(configs):
        raise ConfigError(name, "the values must all be different")
    return configs


def json_key(value: Any) -> Any:
    """A hashable stand-in for a setting's value (layer lists become tuples)."""
    return tuple(value) if isinstance(value, list) else value


def fmt_number(value: float) -> str:
    return f"{value:g}"


def fmt_train_size(value: int) -> str:
    return "all" if value == 0 else f"{value:,}"


# Streamlit


def values() -> dict[str, Any]:
    """The form's current values (from session state), by field name."""
    return {
        name: st.session_state[PREFIX + name]
        for name in FIELDS
        if PREFIX + name in st.session_state
    }


def fill(cfg: TrainConfig) -> None:
    """Put every setting of `cfg` into the form."""
    for name, value in cfg.to_dict().items():
        st.session_state[PREFIX + name] = (
            ",".join(map(str, value)) if isinstance(value, list) else value
        )


def _link_settings() -> dict[str, str]:
    return {k: v for k, v in st.query_params.to_dict().items() if k in FIELDS}


def init_form() -> list[LinkNote]:
    """Fill the form from a link, or on the first visit; returns the link's notes.

    A link is URL settings that differ from what this page last wrote there: a shared link,
    another page's "try this", or browser Back to an earlier state of this form. Arriving
    from the sidebar brings no settings, and the form stays as the session left it.
    """
    linked = _link_settings()
    first = not st.session_state.get("form_ready") or any(
        PREFIX + name not in st.session_state for name in FIELDS
    )
    if not first and (not linked or linked == st.session_state.get(LINK_MEMO)):
        return []
    cfg, notes = from_query(linked)
    fill(cfg)
    st.session_state["form_ready"] = True
    st.session_state[LINK_MEMO] = linked
    return notes


def write_url(cfg: TrainConfig) -> None:
    """Put the form's settings in the URL (only those that differ from the defaults)."""
    wanted = to_query(cfg)
    for name in FIELDS:
        if name in wanted:
            if st.query_params.get(name) != wanted[name]:
                st.query_params[name] = wanted[name]
        elif name in st.query_params:
            del st.query_params[name]
    st.session_state[LINK_MEMO] = wanted


def _apply_preset() -> None:
    fill(preset(st.session_state["preset"]))


def preset_picker() -> None:
    st.selectbox(
        "Start from a preset",
        list(PRESETS),
        key="preset",
        index=None,
        placeholder="choose a preset to fill the form…",
        format_func=lambda name: f"{name} — {PRESETS[name]['about']}",
        on_change=_apply_preset,
        help="A preset fills every setting below; change any of them afterwards.",
    )


Slots = dict[str, Any]  # field -> st.empty() placeholder for its error message


class Form:
    """Draws the settings, each in the column `at` (else the page); remembers where each
    one's problems go."""

    def __init__(self) -> None:
        self.slots: Slots = {}
        self.values = values()

    def widget(self, name: str, kind: str, at: Any = st, **kwargs: Any) -> None:
        """Setting `name` as the widget `kind` (e.g. "selectbox"), with its problem slot."""
        label = LABELS[name] + kwargs.pop("suffix", "")
        make = getattr(at, kind)
        make(label, key=PREFIX + name, help=HELP[name], persist_state=PERSIST, **kwargs)
        self.slots[name] = at.empty()

    def choice(self, name: str, at: Any = st, **kwargs: Any) -> None:
        self.widget(name, "selectbox", at, options=list(CHOICES[name]), **kwargs)

    def slider(self, name: str, at: Any = st) -> None:
        low, high, step = SLIDERS[name]
        self.widget(name, "slider", at, min_value=low, max_value=high, step=step)

    def number(self, name: str, at: Any = st, **kwargs: Any) -> None:
        low, high = bounds(name, self.values.get(name))
        step = NUMBERS[name][2]
        fmt = "%g" if isinstance(step, float) else None
        self.widget(
            name, "number_input", at, min_value=low, max_value=high, step=step, format=fmt, **kwargs
        )

    def steps(self, name: str, options: list[Any], at: Any = st, **kwargs: Any) -> None:
        options = with_value(options, self.values.get(name))
        self.widget(name, "select_slider", at, options=options, **kwargs)


def form() -> Slots:
    """Draw every setting; returns the placeholders where their problems are shown."""
    f = Form()
    cnn = f.values.get("arch") == "cnn"
    sgd = f.values.get("optimizer") == "sgd"
    with st.expander("Network", expanded=True, icon=":material/account_tree:"):
        arch = dict(options=list(ARCHS), required=True, format_func=ARCH_NAMES.get)
        f.widget("arch", "segmented_control", **arch)
        if cnn:
            f.widget("conv", "text_input")
            left, right = st.columns(2)
            f.steps("kernel_size", KERNEL_CHOICES, left)
            f.choice("padding", right)
        f.widget("hidden", "text_input", suffix=" after the convolutions" if cnn else "")
        left, right = st.columns(2)
        f.choice("activation", left)
        f.choice("init", right)
        left, right = st.columns(2)
        f.number("dropout", left)
        f.widget("batchnorm", "toggle", right)
    with st.expander("Learning", expanded=True, icon=":material/trending_down:"):
        left, right = st.columns(2)
        f.choice("optimizer", left)
        f.steps("lr", LR_CHOICES, right, format_func=fmt_number)
        left, right = st.columns(2)
        f.number("momentum", left, disabled=not sgd)
        f.widget("nesterov", "toggle", right, disabled=not sgd)
        left, right = st.columns(2)
        f.steps("batch_size", BATCH_CHOICES, left)
        f.number("epochs", right)
        left, right = st.columns(2)
        f.choice("schedule", left)
        f.number("warmup_epochs", right)
        if f.values.get("schedule") == "step":
            left, right = st.columns(2)
            f.number("step_every", left)
            f.number("step_gamma", right)
        left, right = st.columns(2)
        f.steps("weight_decay", WEIGHT_DECAY_CHOICES, left, format_func=fmt_number)
        f.number("patience", right)
    with st.expander("Augmentation", icon=":material/auto_fix:"):
        left, right = st.columns(2)
        for name in ("aug_rotate", "aug_scale", "aug_elastic_sigma"):
            f.slider(name, left)
        for name in ("aug_shift", "aug_elastic"):
            f.slider(name, right)
        f.slots["_preview"] = st.container()
    with st.expander("Data", icon=":material/dataset:"):
        f.steps("train_size", TRAIN_SIZE_CHOICES, format_func=fmt_train_size)
        left, right = st.columns(2)
        f.number("val_size", left)
        f.number("seed", right)
        f.widget("data_dir", "text_input")
    return f.slots
