"""Presentation mode: a screen a class can read from the back of the room.

On with the sidebar's toggle or `?present=1` in a link (the toggle is bound to the URL, so
a shared link keeps it). It folds the sidebar away (its arrow at the top left opens it
again, toggle included), makes text and charts 1.5x larger and hides chart toolbars.

Everything here is per browser session: a page-config message and a style sheet sent to
this session only. Nothing process-wide (such as Plotly's default template) changes,
because one server serves every session.
"""

from __future__ import annotations

import streamlit as st

KEY = "present"  # the session key and the query parameter
# The bound toggle itself reads only "true"/"false"; a hand-typed link says ?present=1.
SHORT_FORMS = frozenset({"1", "yes", "on"})
SCALE = 1.5

# Streamlit sizes text in rem, and its Plotly theme turns rem into px when it draws a chart,
# so one root font size scales the page's text and the charts' ticks, legends and titles,
# and Plotly lays the larger labels out itself (measured in Chromium: nothing clipped).
# WCAG AA wants 4.5:1: captions are drawn at 60 % opacity (3.7:1 on white) and chart labels
# in a light grey (#808495, 3.7:1 on white), so both take the page's own text colour, dark
# or light theme: fully in the mode, a little lighter outside it (CHART_TEXT_OPACITY).
CHART_TEXT = (
    ".js-plotly-plot :is(.xtick, .ytick, .g-xtitle, .g-ytitle, .cbaxis, .cbtitle) text,\n"
    ".js-plotly-plot :is(.legendtext, .gtitle, .slider-current-value)"
)  # every chart's ticks, axis and colour-bar titles, legend, title and slider label
_CSS = f"""
<style>
html {{ font-size: {SCALE * 100:g}%; }}
.modebar-container {{ display: none !important; }}
/* The page's margins grow with the text; a projector's 1024 px cannot spare them. */
[data-testid="stMainBlockContainer"] {{ padding: 2rem 1.5rem 4rem !important; }}
[data-testid="stCaptionContainer"] {{ opacity: 1 !important; color: inherit !important; }}
{CHART_TEXT} {{
  fill: currentColor !important;
}}
</style>
"""

# Outside the mode the charts' labels keep a lighter look than the text beside them, at
# CHART_TEXT_OPACITY of the page's text colour: on Streamlit's two themes (THEMES) that is
# 7.2:1 (light) and 10.0:1 (dark) where Streamlit's own grey gave 3.7:1 on white. Plotly
# writes each label's fill and fill-opacity on the element itself, hence !important.
CHART_TEXT_OPACITY = 0.8
CAPTION_OPACITY = 0.8  # Streamlit's 60 % is 3.7:1 on white; 80 % is 7.2:1
# Streamlit's (1.67) text and background colours, light and dark theme: what labels blend with.
THEMES = {"light": ("#2f2d2b", "#ffffff"), "dark": ("#edebe8", "#171614")}
_NORMAL_CSS = f"""
<style>
[data-testid="stCaptionContainer"] {{ opacity: {CAPTION_OPACITY:g}; }}
{CHART_TEXT} {{
  fill: currentColor !important;
  fill-opacity: {CHART_TEXT_OPACITY:g} !important;
}}
</style>
"""

_SHOWN_KEY = "_present_shown"  # the mode this session's page was last drawn in
# Streamlit remembers a sidebar opened or closed by hand (in the browser's localStorage)
# and that choice beats the page's initial state; a mode switch starts from the page's.
_FORGET_SIDEBAR = """
for (const k of Object.keys(window.localStorage)) {
  if (k.startsWith("stSidebarCollapsed-")) window.localStorage.removeItem(k);
}
"""
# A link opened with the mode on, in a browser that remembers an open sidebar: fold it, once
# per page load (Streamlit may run this again when it redraws the sidebar, and the visitor
# who opens it by hand means it).
_FOLD_SCRIPT = f"""<script>
{_FORGET_SIDEBAR}
if (!window.presentationFolded) {{
  window.presentationFolded = true;
  (function fold(tries) {{
    const side = document.querySelector('[data-testid="stSidebar"]');
    const button = document.querySelector('[data-testid="stSidebarCollapseButton"] button');
    if (side && side.getAttribute("data-collapsed") === "true") return;
    if (side && button) button.click();
    else if (tries > 0) setTimeout(() => fold(tries - 1), 100);
  }})(20);
}}
</script>"""


def _reload_script(on: bool) -> str:
    """A script that loads the page again with the mode in its URL (and on or off)."""
    change = f'url.searchParams.set("{KEY}", "true")' if on else f'url.searchParams.delete("{KEY}")'
    return f"""<script>
{_FORGET_SIDEBAR}
const url = new URL(window.location.href);
{change};
window.location.replace(url.href);
</script>"""


def _short_form() -> bool:
    """Whether the link says `?present=1` (or yes/on): the bound toggle reads only true/false."""
    raw = st.query_params.get(KEY)
    return KEY not in st.session_state and raw is not None and raw.lower() in SHORT_FORMS


def is_on() -> bool:
    """Whether presentation mode is on in this browser session."""
    return bool(st.session_state.get(KEY, False))


def text_scale() -> float:
    """How much to enlarge text whose size a figure fixes in px: SCALE when the mode is on."""
    return SCALE if is_on() else 1.0


def apply() -> bool:
    """Show the toggle in the sidebar and, when it is on, restyle the page; True when on."""
    short = _short_form()
    if short:
        st.session_state[KEY] = True  # before the toggle exists, so it starts on
    on = st.sidebar.toggle(
        "Presentation mode", key=KEY, bind="query-params",
        help="Large text and charts for a projector, the sidebar folded away: the arrow at "
        "the top left opens it again.",
    )  # fmt: skip
    # Sent on every run, so turning the mode off unfolds the sidebar again.
    st.set_page_config(initial_sidebar_state="collapsed" if on else "auto")
    st.html(_CSS if on else _NORMAL_CSS)
    before = st.session_state.get(_SHOWN_KEY)
    st.session_state[_SHOWN_KEY] = on
    if short or (before is not None and before != on):
        # Streamlit themes a chart once, when it first draws it, so the charts already on
        # the screen would keep their old size: the page is loaded again, in the new mode
        # (and a short-form link again as ?present=true, which the toggle keeps in the URL).
        st.sidebar.html(_reload_script(on), unsafe_allow_javascript=True)
    elif on and before is None:
        st.sidebar.html(_FOLD_SCRIPT, unsafe_allow_javascript=True)
    return on
