"""Presentation mode through AppTest: what the server sends one session, and only that one.

What a browser does with it (font sizes in px, the folded sidebar, hidden toolbars,
contrast) is measured in Chromium in test_browser_presentation.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.io as pio
import pytest
import streamlit
from streamlit.testing.v1 import AppTest

from core.replay import Replay
from dashboard import presentation, weights_figures

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def runs(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


@pytest.fixture
def sidebar_states(monkeypatch) -> list[str | None]:
    """The initial_sidebar_state of every st.set_page_config call, in order."""
    calls: list[str | None] = []
    real = streamlit.set_page_config

    def recording(*args, **kwargs):
        calls.append(kwargs.get("initial_sidebar_state"))
        return real(*args, **kwargs)

    monkeypatch.setattr(streamlit, "set_page_config", recording)
    return calls


def app(present: str | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    if present is not None:
        at.query_params[presentation.KEY] = present
    return at.run()


def bodies(at: AppTest) -> list[str]:
    """The HTML sent with st.html, main area and sidebar."""
    return [h.proto.body for h in at.get("html")]


def styled(at: AppTest) -> bool:
    return any("font-size: 150%" in body for body in bodies(at))


def reloads(at: AppTest) -> list[str]:
    return [b for b in bodies(at) if "location.replace" in b]


def test_off_by_default_nothing_changes(sidebar_states):
    at = app()
    assert not at.exception
    assert at.toggle(key=presentation.KEY).value is False
    assert not styled(at) and not reloads(at)
    assert sidebar_states[-1] == "auto"
    assert any("opacity: 0.8" in body for body in bodies(at))  # captions at AA contrast anyway
    # ...and every chart's ticks and axis titles, in the page's text colour a little lighter.
    (css,) = [b for b in bodies(at) if presentation.CHART_TEXT in b]
    assert f"fill-opacity: {presentation.CHART_TEXT_OPACITY:g} !important" in css
    assert "fill: currentColor !important" in css


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_a_link_turns_it_on(sidebar_states, value):
    at = app(value)
    assert not at.exception
    assert at.toggle(key=presentation.KEY).value is True
    assert styled(at)
    assert sidebar_states[-1] == "collapsed"
    css = next(b for b in bodies(at) if "font-size: 150%" in b)
    assert ".modebar-container { display: none !important; }" in css
    assert presentation.CHART_TEXT in css and "fill-opacity" not in css  # the full text colour
    # The short form is loaded again as ?present=true, which the bound toggle keeps in the URL.
    assert bool(reloads(at)) == (value != "true")


def test_the_mode_survives_the_next_run_and_a_page_change(sidebar_states):
    at = app("1")
    at.run()
    assert at.toggle(key=presentation.KEY).value is True and styled(at)
    assert not reloads(at)  # only the first run of the link reloads
    at.switch_page("views/evaluate.py").run()
    assert not at.exception
    assert at.toggle(key=presentation.KEY).value is True and styled(at)
    assert sidebar_states[-1] == "collapsed"


def test_switching_it_on_and_off_reloads_the_page_in_the_new_mode(sidebar_states):
    at = app()
    at.toggle(key=presentation.KEY).set_value(True).run()
    assert styled(at) and sidebar_states[-1] == "collapsed"
    (script,) = reloads(at)
    assert 'url.searchParams.set("present", "true")' in script
    at.toggle(key=presentation.KEY).set_value(False).run()
    assert not styled(at) and sidebar_states[-1] == "auto"
    (script,) = reloads(at)
    assert 'url.searchParams.delete("present")' in script


def contrast(foreground: str, background: str, alpha: float = 1.0) -> float:
    """WCAG 2's contrast ratio of '#rrggbb' text drawn at `alpha` over its background."""

    def rgb(colour: str) -> np.ndarray:
        return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)]) / 255

    def luminance(c: np.ndarray) -> float:
        linear = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        return float(linear @ [0.2126, 0.7152, 0.0722])

    fg, bg = rgb(foreground), rgb(background)
    lighter, darker = sorted([luminance(alpha * fg + (1 - alpha) * bg), luminance(bg)])[::-1]
    return (lighter + 0.05) / (darker + 0.05)


def test_chart_labels_read_at_aa_contrast_outside_the_mode_too():
    # Streamlit's own grey for chart labels, on white: the 3.7:1 this replaces.
    assert contrast("#808495", "#ffffff") == pytest.approx(3.72, abs=0.01)
    for text, background in presentation.THEMES.values():
        assert contrast(text, background, presentation.CHART_TEXT_OPACITY) >= 4.5
        assert contrast(text, background, presentation.CAPTION_OPACITY) >= 4.5
    # Sent with every page (see the tests above): every chart's ticks and axis titles.
    for part in (".xtick", ".ytick", ".g-xtitle", ".g-ytitle", ".cbaxis"):
        assert part in presentation.CHART_TEXT


def test_one_session_on_leaves_another_session_and_plotly_alone():
    template = pio.templates.default
    on = app("1")
    off = app()
    assert styled(on) and not styled(off)
    assert off.toggle(key=presentation.KEY).value is False
    assert pio.templates.default == template


def test_text_scale_follows_the_mode():
    at = app("true")
    assert at.session_state[presentation.KEY] is True
    assert presentation.SCALE >= 1.5


def test_the_replay_buttons_are_words_that_need_no_symbol_font():
    rng = np.random.default_rng(0)
    replay = Replay(
        layer="dense",
        weights=rng.normal(size=(2, 3, 4, 4)).astype(np.float16),
        units=np.arange(3),
        layer_units=3,
        labels=("untrained", "epoch 1"),
        val_accuracy=np.array([np.nan, 0.9]),
    )
    figure = weights_figures.replay_figure(replay, text_scale=1.5)
    labels = [b.label for b in figure.layout.updatemenus[0].buttons]
    assert labels == ["Play", "Pause"]
    assert figure.layout.sliders[0].currentvalue.font.size == 22


def test_the_data_map_does_not_point_at_a_toolbar_the_mode_hides():
    hints = {}
    for present in ("true", None):
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180)
        if present:
            at.query_params[presentation.KEY] = present
        at.switch_page("views/data.py")
        at.query_params["data_tab"] = "How the network sorts them"
        at.run()
        assert not at.exception
        hints[present] = next(i.value for i in at.info if "Click a dot" in i.value)
    assert "lasso" in hints[None] and "lasso" not in hints["true"]
