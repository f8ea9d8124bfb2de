"""Pure figure builders for parameter effects: tables in (core/effects.py), Plotly figures out.

One small chart per varied setting of the metric against it (a box with every run's point
for choices, a scatter for continuous settings, on a log axis for the learning rate and
weight decay), and a bar chart of each setting's share of the metric's differences.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.effects import CATEGORY, LOG, METRICS, PERCENT_METRICS, setting_kind

# Okabe & Ito's colour-blind-safe palette: blue for runs and bars, vermillion for the top one.
BLUE, VERMILLION, GREY = "#0072B2", "#D55E00", "#767676"
TICK_PX, TITLE_PX = 14, 16  # large enough to read on a laptop at arm's length
MAX_TICKS = 8  # a log axis with at most this many distinct values labels each of them
RUN_COLUMNS = ("run_id", "name")


def _natural(value: str) -> tuple[int, tuple[float, ...], str]:
    # Numbers and layer lists in numeric order, then text: "32" < "128,64" < "256" < "adam".
    try:
        return (0, tuple(float(part) for part in value.split(",")), "")
    except ValueError:
        return (1, (), value)


def _metric_format(metric: str) -> tuple[str, str]:
    """The axis tick format and the hover format of a metric's values."""
    return (".1%", "%{y:.2%}") if metric in PERCENT_METRICS else ("", "%{y:.4g}")


def effects_figure(
    table: pd.DataFrame,
    metric: str,
    settings: Sequence[str] | None = None,
    kinds: Mapping[str, str] | None = None,
    cols: int = 3,
    row_height: int = 300,
    text_scale: float = 1.0,
) -> go.Figure | None:
    """`metric` against each varied setting of `table` (parameter_effects' table), one small
    chart each; None when there is no setting to draw. `text_scale` enlarges its text (1.5 for
    presentation mode: these sizes are fixed, so the page's own scaling misses them)."""
    tick_px, title_px = round(TICK_PX * text_scale), round(TITLE_PX * text_scale)
    settings = list(settings or [c for c in table.columns if c not in (*RUN_COLUMNS, metric)])
    if table.empty or not settings:
        return None
    kinds = {k: (kinds or {}).get(k) or setting_kind(k, table[k].tolist()) for k in settings}
    cols = max(1, min(cols, len(settings)))
    rows = math.ceil(len(settings) / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=settings,
        horizontal_spacing=0.1 if cols > 1 else 0.0,
        vertical_spacing=min(0.35 / rows, 0.2) if rows > 1 else 0.0,
        shared_yaxes=True,
    )
    label = METRICS.get(metric, metric.replace("_", " "))
    tick_format, y_hover = _metric_format(metric)
    runs = [f"#{i} {n}" for i, n in zip(table["run_id"], table["name"], strict=True)]
    y = table[metric].tolist()
    for i, key in enumerate(settings):
        row, col = divmod(i, cols)
        values = table[key].tolist()
        hover = f"%{{text}}<br>{key} = %{{customdata}}<br>{label} {y_hover}<extra></extra>"
        if kinds[key] == CATEGORY:
            # ".10g": 0.1 + 0.2 reads 0.3, as in the Compare table.
            texts = [format(v, ".10g") if isinstance(v, float) else str(v) for v in values]
            trace = go.Box(
                x=texts,
                y=y,
                name=key,
                boxpoints="all",  # every run as a point beside its group's box
                jitter=0.4,
                pointpos=0,
                hoveron="points",
                text=runs,
                customdata=texts,
                hovertemplate=hover,
                marker=dict(color=BLUE, size=9, opacity=0.8),
                line=dict(color=BLUE),
                fillcolor="rgba(0,114,178,0.15)",
                showlegend=False,
            )
            fig.add_trace(trace, row=row + 1, col=col + 1)
            order = sorted(set(texts), key=_natural)
            fig.update_xaxes(
                type="category",
                categoryorder="array",
                categoryarray=order,
                row=row + 1,
                col=col + 1,
            )
        else:
            trace = go.Scatter(
                x=values,
                y=y,
                mode="markers",
                name=key,
                text=runs,
                customdata=values,
                hovertemplate=hover.replace("%{customdata}", "%{customdata:.4g}"),
                marker=dict(color=BLUE, size=10, opacity=0.8, line=dict(color="white", width=1)),
                showlegend=False,
            )
            fig.add_trace(trace, row=row + 1, col=col + 1)
            axis_type = "log" if kinds[key] == LOG else "linear"
            fig.update_xaxes(type=axis_type, row=row + 1, col=col + 1)
            distinct = sorted({float(v) for v in values})
            if axis_type == "log" and len(distinct) <= MAX_TICKS:
                # A grid's few values, each labelled: decades alone would leave 0.3 unnamed.
                fig.update_xaxes(
                    tickvals=distinct,
                    ticktext=[f"{v:g}" for v in distinct],
                    row=row + 1,
                    col=col + 1,
                )
            elif axis_type == "log":
                fig.update_xaxes(dtick=1, exponentformat="power", row=row + 1, col=col + 1)
    fig.update_xaxes(tickfont=dict(size=tick_px), automargin=True)
    fig.update_yaxes(tickfont=dict(size=tick_px), tickformat=tick_format, automargin=True)
    for r in range(1, rows + 1):
        fig.update_yaxes(title=dict(text=label, font=dict(size=tick_px)), row=r, col=1)
    fig.update_annotations(font=dict(size=title_px))  # the subplot titles
    fig.update_layout(
        height=rows * row_height + 40,
        margin=dict(l=10, r=10, t=40, b=10),
        font=dict(size=tick_px),
        hoverlabel=dict(font=dict(size=tick_px)),
        showlegend=False,
    )
    return fig


def ranking_figure(
    ranking: pd.DataFrame, bar_px: int = 44, text_scale: float = 1.0
) -> go.Figure | None:
    """Each setting's share explained (parameter_effects' ranking) as horizontal bars, most
    important at the top, labelled in percent; None when there is no setting. `text_scale`
    enlarges its text, as for effects_figure."""
    tick_px = round(TICK_PX * text_scale)
    if ranking.empty:
        return None
    shares = ranking["share"].tolist()
    known = [s for s in shares if not math.isnan(s)]
    top = max(known) if known else None
    texts = [
        note if math.isnan(s) else f"{s:.0%}" if s >= 0.005 or s == 0 else "<1%"
        for s, note in zip(shares, ranking["note"], strict=True)
    ]
    texts = [t or "—" for t in texts]
    colors = [GREY if math.isnan(s) else VERMILLION if s == top else BLUE for s in shares]
    p_values = ["–" if math.isnan(p) else f"{p:.2g}" for p in ranking["p_value"]]
    fig = go.Figure(
        go.Bar(
            x=[0.0 if math.isnan(s) else s for s in shares],
            y=ranking["setting"].tolist(),
            orientation="h",
            marker=dict(color=colors),
            text=texts,
            textposition="outside",
            cliponaxis=False,
            textfont=dict(size=tick_px),
            customdata=list(
                zip(
                    ranking["values"],
                    ranking["groups"],
                    ranking["runs"],
                    p_values,
                    ranking["note"],
                    strict=True,
                )
            ),
            hovertemplate=(
                "%{y}: %{text}<br>%{customdata[0]} values in %{customdata[1]} groups, "
                "%{customdata[2]} runs<br>p = %{customdata[3]}<br>%{customdata[4]}<extra></extra>"
            ),
        )
    )
    fig.update_xaxes(
        range=[0, 1.2],  # room for the label beside a bar of 100%
        tickvals=[0, 0.25, 0.5, 0.75, 1.0],
        tickformat=".0%",
        title=dict(text="share of the differences explained", font=dict(size=tick_px)),
        tickfont=dict(size=tick_px),
    )
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=tick_px), automargin=True)
    fig.update_layout(
        height=len(ranking) * bar_px + 90,
        margin=dict(l=10, r=10, t=10, b=10),
        font=dict(size=tick_px),
        hoverlabel=dict(font=dict(size=tick_px)),
        showlegend=False,
    )
    return fig
