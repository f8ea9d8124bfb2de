"""Links to the Train page: every value a link can carry for every setting either lands in the
form exactly (and stays in the URL) or is named in a warning with what the form uses instead;
never an exception. The real app, through Streamlit's AppTest."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import ConfigError, TrainConfig, problems
from dashboard import settings

REPO = Path(__file__).resolve().parent.parent
TEXT = ["abc", "nan", "inf", "-inf", ""]


def values_for(name: str) -> list[str]:
    """Widget edges, valid values outside the widget's usual range, below the minimum, above
    the maximum, and text that is not a value of the setting's type."""
    if name in settings.SLIDERS:
        low, high, step = settings.SLIDERS[name]
        return [str(low), str(high), str(low + step / 3), str(high + 1), str(low - 1), *TEXT]
    if name in settings.NUMBERS:
        low, high, _ = settings.NUMBERS[name]
        low = low or 0
        edges = [low, high] if high is not None else [low, low + 10_000]
        beyond = [edges[1] * 1.01 if high and high < 1 else edges[1] + 1, -1, low - 0.5]
        return [str(v) for v in [*edges, *beyond, 5000, 1e-320]] + TEXT
    if name in settings.CHOICES:
        options = settings.CHOICES[name]
        return [options[0], options[-1], "bogus", options[0].upper(), ""]
    options = {
        "lr": settings.LR_CHOICES, "weight_decay": settings.WEIGHT_DECAY_CHOICES,
        "batch_size": settings.BATCH_CHOICES, "train_size": settings.TRAIN_SIZE_CHOICES,
        "kernel_size": settings.KERNEL_CHOICES,
    }.get(name)  # fmt: skip
    if options is not None:
        return [str(options[0]), str(options[-1]), "3", "0.003", "100000", "-1", "1e-320", *TEXT]
    default = getattr(settings.DEFAULTS, name)
    if isinstance(default, bool):
        return ["true", "false", "1", "off", "maybe", ""]
    if isinstance(default, list):
        return ["256,32", "16", "", "0", "128,,64", "9000", "abc", "1.5"]
    return ["", "data/mnist", "/etc", "/no/such/folder", "../..", "data/../.."]  # data_dir


def expected(name: str, text: str) -> object:
    """The value a link's text means for a setting, or None when it cannot be read."""
    try:
        value = getattr(TrainConfig.from_dict({name: text}), name)
    except ConfigError:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def form_value(at: AppTest, name: str) -> object:
    return getattr(TrainConfig.from_dict({name: at.session_state[settings.PREFIX + name]}), name)


@pytest.fixture
def app(monkeypatch, tmp_path) -> AppTest:
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("views/train.py").run()
    assert not at.exception
    return at


def follow(at: AppTest, name: str, text: str) -> None:
    """Open a link to the Train page that carries one setting, in this session."""
    for key in list(at.query_params):
        if key in settings.FIELDS:
            del at.query_params[key]
    at.query_params[name] = text
    at.run()


@pytest.mark.parametrize("name", settings.FIELDS)
def test_every_link_value_lands_exactly_or_is_named(app, name):
    if name in ("conv", "kernel_size", "padding"):
        app.query_params["arch"] = "cnn"  # these show for a CNN only
    for text in values_for(name):
        follow(app, name, text)
        if name in ("conv", "kernel_size", "padding"):
            app.query_params["arch"] = "cnn"
        assert not app.exception, (name, text, [e.value for e in app.exception])
        want, got = expected(name, text), form_value(app, name)
        notes = [w.value for w in app.warning if f"`{name}={text}`" in w.value]
        if want is not None and got == want:
            assert not notes, (name, text, notes)
            if want != getattr(settings.DEFAULTS, name):  # and the URL still carries it
                assert expected(name, url(app)[name]) == want, (name, text, url(app))
        else:
            assert len(notes) == 1, (name, text, got, [w.value for w in app.warning])
            assert f"the form uses {settings.shown(got)}" in notes[0], (name, text, notes)


def url(at: AppTest) -> dict[str, str]:
    return {k: v if isinstance(v, str) else v[-1] for k, v in at.query_params.items()}


def test_an_out_of_range_value_is_kept_and_marked_in_red(app):
    follow(app, "epochs", "5000")
    assert form_value(app, "epochs") == 5000
    assert any("must be between 1 and 1000, got 5000" in e.value for e in app.error)
    assert next(b for b in app.button if b.label == "Start").disabled


def test_an_error_in_a_hidden_setting_is_named_at_the_start_button(app):
    follow(app, "step_gamma", "0")  # the cosine schedule hides the step schedule's settings
    assert form_value(app, "step_gamma") == 0.0
    assert "cfg_step_gamma" not in [w.key for w in app.number_input]
    start = next(b for b in app.button if b.label == "Start")
    assert start.disabled
    (listed,) = [e.value for e in app.error if e.value.startswith("Fix these settings")]
    assert "**Multiply by**: must be in (0, 1], got 0.0" in listed


def test_a_link_with_a_nan_in_a_hidden_setting_is_named_and_does_not_block_start(app):
    follow(app, "step_gamma", "nan")
    assert form_value(app, "step_gamma") == TrainConfig().step_gamma
    assert any("`step_gamma=nan`" in w.value for w in app.warning)
    assert not next(b for b in app.button if b.label == "Start").disabled


def test_a_data_folder_outside_data_is_refused_without_saying_whether_it_exists(app):
    messages = []
    for folder in ("/etc", "/no/such/folder"):
        follow(app, "data_dir", folder)
        (message,) = [
            e.value
            for e in app.error
            if "is not a folder this app reads" in e.value and "Fix these" not in e.value
        ]
        messages.append(message.replace(folder, "<folder>"))
        assert next(b for b in app.button if b.label == "Start").disabled
    assert messages[0] == messages[1]


def test_a_folder_listed_in_the_environment_is_allowed(monkeypatch, tmp_path):
    fashion = Path("/usr/share/datasets/fashion-mnist")
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("MNIST_DATA_DIRS", str(fashion))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.query_params["data_dir"] = str(fashion)
    at.run()
    at.switch_page("views/train.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert form_value(at, "data_dir") == str(fashion)


def test_the_url_follows_the_form_exactly(app):
    cfg = TrainConfig(lr=0.003, dropout=0.123456789, aug_rotate=12.5, hidden=[300, 7])
    for name, text in settings.to_query(cfg).items():
        app.query_params[name] = text
    app.run()
    assert not app.warning and not problems(cfg)
    assert settings.from_query(url(app))[0] == cfg


def test_a_network_too_big_for_this_machine_is_refused_at_start_with_its_size(app):
    assert any(c.value.startswith("Needs about ") for c in app.caption)  # a normal one
    for name, text in {
        "arch": "cnn",
        "conv": "8192",
        "kernel_size": "28",
        "hidden": "8192",
    }.items():
        app.query_params[name] = text
    app.run()
    assert not app.exception
    assert next(b for b in app.button if b.label == "Start").disabled
    (listed,) = [e.value for e in app.error if e.value.startswith("Fix these settings")]
    assert re.search(r"needs about [\d.]+ GiB", listed), listed
