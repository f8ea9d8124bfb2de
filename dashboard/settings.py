"""The training settings form: every TrainConfig field as a widget, presets, URL round trip.

Widgets keep their values in st.session_state under "cfg_<field>", so a preset or a
shared link fills the form by writing those keys before the widgets are drawn. The
pure helpers at the top (no Streamlit) are what the tests exercise directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from core.config import ACTIVATIONS, HELP, INITS, OPTIMIZERS, SCHEDULES, ConfigError, TrainConfig
from core.presets import PRESETS, preset

PREFIX = "cfg_"
FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]
DEFAULTS = TrainConfig()

LR_CHOICES = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
              10.0, 20.0, 50.0]  # fmt: skip
WEIGHT_DECAY_CHOICES = [0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
BATCH_CHOICES = [16, 32, 64, 128, 256, 512, 1024, 2048, 8192]
TRAIN_SIZE_CHOICES = [500, 1000, 2000, 5000, 10_000, 20_000, 0]  # 0: all
VARY_FIELDS = [
    "lr", "momentum", "optimizer", "batch_size", "epochs", "hidden", "activation", "dropout",
    "weight_decay", "schedule", "batchnorm", "aug_rotate", "seed",
]  # fmt: skip


# Pure helpers


def with_value(options: list[Any], value: Any) -> list[Any]:
    """`options` plus `value` if it is missing, kept sorted when the options are numbers."""
    if value in options:
        return options
    if all(isinstance(o, (int, float)) for o in options):
        return sorted([*options, value])
    return [*options, value]


def to_query(cfg: TrainConfig) -> dict[str, str]:
    """The settings that differ from the defaults, as URL query parameters."""
    out = {}
    for name, value in cfg.to_dict().items():
        if value != getattr(DEFAULTS, name):
            out[name] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return out


def from_query(params: Mapping[str, str]) -> tuple[TrainConfig, list[ConfigError]]:
    """Settings from URL parameters; unknown or malformed ones are reported and skipped."""
    values, errors = {}, []
    for name, text in params.items():
        if name not in FIELDS:
            continue
        try:
            TrainConfig.from_dict({name: text})
            values[name] = text
        except ConfigError as exc:
            errors.append(exc)
    return TrainConfig.from_dict(values), errors


def vary(cfg: TrainConfig, name: str, text: str) -> list[TrainConfig]:
    """One config per comma- (or for layer lists, semicolon-) separated value of setting `name`."""
    separator = ";" if isinstance(getattr(DEFAULTS, name), list) else ","
    values = [v.strip() for v in text.split(separator) if v.strip()]
    if not 2 <= len(values) <= 5:
        raise ConfigError(name, f"give two to five values separated by '{separator}'")
    configs = [cfg.replace(**{name: v}) for v in values]
    if len({getattr(c, name) if not isinstance(getattr(c, name), list)
            else tuple(getattr(c, name)) for c in configs}) < len(configs):  # fmt: skip
        raise ConfigError(name, "the values must all be different")
    return configs


def fmt_lr(value: float) -> str:
    return f"{value:g}"


def fmt_train_size(value: int) -> str:
    return "all (55,000)" if value == 0 else f"{value:,}"


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


def init_form() -> list[ConfigError]:
    """Fill the form once per session: from the URL if it has settings, else the default preset."""
    if st.session_state.get("form_ready"):
        return []
    cfg, errors = from_query(st.query_params.to_dict())
    fill(cfg)
    st.session_state["form_ready"] = True
    return errors


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


def _widget(slots: Slots, name: str, make: Callable[..., Any], label: str, **kwargs: Any) -> None:
    make(label, key=PREFIX + name, help=HELP[name], **kwargs)
    slots[name] = st.empty()


def form() -> Slots:
    """Draw every setting; returns the placeholders where their problems are shown."""
    s: Slots = {}
    v = values()
    cnn = v.get("arch") == "cnn"
    with st.expander("Network", expanded=True, icon=":material/account_tree:"):
        _widget(s, "arch", st.segmented_control, "Architecture", options=["mlp", "cnn"],
                format_func={"mlp": "MLP: dense layers", "cnn": "CNN: convolutions"}.get,
                required=True)  # fmt: skip
        if cnn:
            _widget(s, "conv", st.text_input, "Convolution filters per block")
            c1, c2 = st.columns(2)
            with c1:
                _widget(s, "kernel_size", st.select_slider, "Kernel size",
                        options=with_value([1, 2, 3, 4, 5, 7], v.get("kernel_size")))  # fmt: skip
            with c2:
                _widget(s, "padding", st.selectbox, "Padding", options=["same", "valid"])
        _widget(s, "hidden", st.text_input,
                "Hidden dense layers" + (" after the convolutions" if cnn else ""))  # fmt: skip
        c1, c2 = st.columns(2)
        with c1:
            _widget(s, "activation", st.selectbox, "Activation", options=list(ACTIVATIONS))
        with c2:
            _widget(s, "init", st.selectbox, "Weight initialisation", options=list(INITS))
        c1, c2 = st.columns(2)
        with c1:
            _widget(s, "dropout", st.slider, "Dropout", min_value=0.0, max_value=0.8, step=0.05)
        with c2:
            _widget(s, "batchnorm", st.toggle, "Batch normalisation")
    with st.expander("Learning", expanded=True, icon=":material/trending_down:"):
        c1, c2 = st.columns(2)
        with c1:
            _widget(s, "optimizer", st.selectbox, "Optimizer", options=list(OPTIMIZERS))
        with c2:
            _widget(s, "lr", st.select_slider, "Learning rate",
                    options=with_value(LR_CHOICES, v.get("lr")), format_func=fmt_lr)  # fmt: skip
        sgd = v.get("optimizer") == "sgd"
        c1, c2 = st.columns(2)
        with c1:
            _widget(s, "momentum", st.slider, "Momentum", min_value=0.0, max_value=0.99,
                    step=0.01, disabled=not sgd)  # fmt: skip
        with c2:
            _widget(s, "nesterov", st.toggle, "Nesterov momentum", disabled=not sgd)
        c1, c2 = st.columns(2)
        with c1:
            _widget(s, "batch_size", st.select_slider, "Batch size",
                    options=with_value(BATCH_CHOICES, v.get("batch_size")))  # fmt: skip
        with c2:
            _widget(s, "epochs", st.number_input, "Epochs", min_value=1, max_value=1000)
        c1, c2 = st.columns(2)
        with c1:
            _widget(s, "schedule", st.selectbox, "Learning-rate schedule", options=list(SCHEDULES))
        with c2:
            _widget(s, "warmup_epochs", st.number_input, "Warm-up epochs", min_value=0.0,
                    max_value=1000.0, step=0.5)  # fmt: skip
        if v.get("schedule") == "step":
            c1, c2 = st.columns(2)
            with c1:
                _widget(s, "step_every", st.number_input, "Drop every (epochs)", min_value=1)
            with c2:
                _widget(s, "step_gamma", st.number_input, "Multiply by", min_value=0.01,
                        max_value=1.0, step=0.05)  # fmt: skip
        c1, c2 = st.columns(2)
        with c1:
            _widget(s, "weight_decay", st.select_slider, "L2 weight decay",
                    options=with_value(WEIGHT_DECAY_CHOICES, v.get("weight_decay")),
                    format_func=fmt_lr)  # fmt: skip
        with c2:
            _widget(s, "patience", st.number_input, "Early-stopping patience", min_value=0)
    with st.expander("Augmentation", icon=":material/auto_fix:"):
        c1, c2 = st.columns(2)
        with c1:
            _widget(s, "aug_rotate", st.slider, "Rotate (degrees)", min_value=0.0,
                    max_value=45.0, step=1.0)  # fmt: skip
            _widget(s, "aug_scale", st.slider, "Scale (fraction)", min_value=0.0,
                    max_value=0.3, step=0.05)  # fmt: skip
            _widget(s, "aug_elastic_sigma", st.slider, "Elastic smoothness (sigma)",
                    min_value=1.0, max_value=8.0, step=0.5)  # fmt: skip
        with c2:
            _widget(s, "aug_shift", st.slider, "Shift (pixels)", min_value=0.0, max_value=6.0,
                    step=0.5)  # fmt: skip
            _widget(s, "aug_elastic", st.slider, "Elastic strength (alpha)", min_value=0.0,
                    max_value=60.0, step=2.0)  # fmt: skip
        s["_preview"] = st.container()
    with st.expander("Data", icon=":material/dataset:"):
        _widget(s, "train_size", st.select_slider, "Training images",
                options=with_value(TRAIN_SIZE_CHOICES, v.get("train_size")),
                format_func=fmt_train_size)  # fmt: skip
        c1, c2 = st.columns(2)
        with c1:
            _widget(s, "val_size", st.number_input, "Validation images", min_value=1)
        with c2:
            _widget(s, "seed", st.number_input, "Seed", min_value=0)
        _widget(s, "data_dir", st.text_input, "Data folder (empty: the bundled MNIST)")
    return s
