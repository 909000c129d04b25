"""Static SVG plots of the report, drawn with matplotlib (Agg canvas, SVG output, no pyplot state).

Text stays text in the SVG (``svg.fonttype = none``): the browser draws it with a local font, so
the plots need no font file, the file is small, and names in any script (CJK, Arabic, emoji) show
as the browser's fonts draw them. matplotlib still measures text with its own font and warns of
each glyph that font lacks; those warnings say nothing about the SVG and are silenced here, so they
never reach a terminal. ``svg.hashsalt`` makes the output repeatable.
"""

from __future__ import annotations

import math
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

_RC = {"svg.fonttype": "none", "svg.hashsalt": "r2cli", "font.size": 9, "axes.spines.top": False,
       "axes.spines.right": False}
_SIZE = (10.0, 2.0)  # inches: wide and low, to sit above a strip of thumbnails
LABELLED_MOMENTS = 10  # rank labels drawn per plot (the best ones); every moment is shaded
LABEL_ROWS = 3  # rows of rank labels inside the top of the axes; a label that fits no row is left out
LABEL_FONT = 8  # points
_NICE_STEPS_S = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)
MAX_TICKS = 9  # time ticks per axis at most


@contextmanager
def _quiet_drawing():
    """The rc settings of every plot, with matplotlib's "Glyph ... missing from font" warnings silenced:
    the SVG keeps the text as text and the browser draws it (see the module docstring)."""
    from matplotlib import rc_context

    with warnings.catch_warnings(), rc_context(_RC):
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"Matplotlib currently does not support .* natively",
                                category=UserWarning)
        yield


def time_step(duration_s: float) -> float:
    """The tick step of a time axis of ``duration_s``: the smallest of 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30 s,
    1, 2, 5, 10, 15, 30 min, 1 h ... that gives at most ``MAX_TICKS`` ticks."""
    for step in _NICE_STEPS_S:
        if duration_s / step <= MAX_TICKS - 1:
            return float(step)
    return float(math.ceil(duration_s / (MAX_TICKS - 1) / 3600) * 3600)


def _time_axis(ax, duration_s: float) -> None:
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    step = time_step(duration_s)
    ax.xaxis.set_major_locator(MultipleLocator(step))
    ax.xaxis.set_major_formatter(FuncFormatter(_clock_tenths if step < 1 else _clock))


def _clock_tenths(seconds: float, _pos: object = None) -> str:
    tenths = int(round(seconds * 10))
    return f"{_clock(tenths // 10)}.{tenths % 10}"


def label_rows(moments: Sequence[tuple[float, float, int]], *, axis_s: float, axis_points: float,
               rows: int = LABEL_ROWS, font_points: float = LABEL_FONT) -> list[tuple[float, int, int]]:
    """Where the rank labels go: (x in seconds, rank, row) for the best ``LABELLED_MOMENTS`` moments, each
    in the first row where it does not touch a label already placed; ranks that fit no row are left out.

    A label is ``#<rank>`` centred on its moment; its width is estimated from the font size (a digit is
    at most 0.65 em wide in the sans fonts browsers use) plus a gap of half an em.
    """
    seconds_per_point = axis_s / max(axis_points, 1.0)
    placed: list[list[tuple[float, float]]] = [[] for _ in range(rows)]
    out = []
    for start, end, rank in sorted(moments, key=lambda m: m[2])[:LABELLED_MOMENTS]:
        x = (start + end) / 2
        half = (len(f"#{rank}") * 0.65 + 0.5) * font_points * seconds_per_point / 2
        left, right = x - half, x + half
        for row, spans in enumerate(placed):
            if all(right <= a or left >= b for a, b in spans):
                spans.append((left, right))
                out.append((x, rank, row))
                break
    return out


def _clock(seconds: float, _pos: object = None) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


_LEFT, _RIGHT = 0.07, 0.98  # the axes' share of the figure's width


def _padded(values: Sequence[float], top_share: float) -> tuple[float, float]:
    """y limits that leave the top ``top_share`` of the axes to the rank labels."""
    low, high = (min(values), max(values)) if len(values) else (0.0, 1.0)
    span = (high - low) or 1.0
    low -= 0.05 * span
    return low, low + (high - low) / (1 - top_share)


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=_SIZE)
    figure.subplots_adjust(left=_LEFT, right=_RIGHT, bottom=0.16, top=0.86)  # fixed: no layout engine per plot
    FigureCanvasAgg(figure)  # the Agg backend; savefig(format="svg") switches to the SVG renderer for the file
    return figure


def _save(figure, path: str | os.PathLike) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_drawing():
        figure.savefig(target, format="svg", metadata={"Date": None})
    return target


def saliency_plot(
    path: str | os.PathLike,
    *,
    times_s: Sequence[float],
    scores: Sequence[float],
    duration_s: float,
    moments: Sequence[tuple[float, float, int]],
    title: str,
) -> Path:
    """The saliency curve of one query over one video, its returned moments shaded and numbered by rank.

    ``times_s`` are the clips' middles; ``moments`` are (start s, end s, rank).
    """
    with _quiet_drawing():
        figure = _figure()
        ax = figure.add_subplot()
        axis_s = max(duration_s, 1e-3)
        if moments:  # one collection for all shaded moments; labels for the best few only
            ax.broken_barh([(start, end - start) for start, end, _ in moments], (0, 1),
                           transform=ax.get_xaxis_transform(), color="#f4a259", alpha=0.35, linewidth=0)
            # inside the top of the axes, in rows, so labels neither touch each other nor the title above
            axis_points = _SIZE[0] * 72 * (_RIGHT - _LEFT)
            for x, rank, row in label_rows(moments, axis_s=axis_s, axis_points=axis_points):
                ax.text(x, 0.97 - row * 0.14, f"#{rank}", transform=ax.get_xaxis_transform(), ha="center",
                        va="top", fontsize=LABEL_FONT, color="#9a4d00", gid=f"moment-label-{rank}")
        ax.plot(list(times_s), list(scores), color="#1f5f8b", linewidth=1.4)
        ax.set_xlim(0, axis_s)
        ax.set_ylim(*_padded(scores, LABEL_ROWS * 0.14 + 0.03))
        _time_axis(ax, axis_s)
        ax.set_ylabel("saliency")
        ax.set_title(title, loc="left", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        return _save(figure, path)


def summary_plot(
    path: str | os.PathLike,
    *,
    edges_s: Sequence[float],
    values: Sequence[float],
    selected: Sequence[bool],
    duration_s: float,
    title: str,
) -> Path:
    """A summary over one video: mean saliency per segment (steps), the selected segments shaded,
    the shot/segment boundaries as thin lines; the budget goes in ``title``."""
    with _quiet_drawing():
        figure = _figure()
        ax = figure.add_subplot()
        spans = [(start, end - start) for (start, end), chosen in zip(zip(edges_s, edges_s[1:]), selected) if chosen]
        if spans:
            ax.broken_barh(spans, (0, 1), transform=ax.get_xaxis_transform(), color="#57a773", alpha=0.35, linewidth=0)
        if len(edges_s) > 2:
            ax.vlines(edges_s[1:-1], 0, 1, transform=ax.get_xaxis_transform(), color="#888888", linewidth=0.6,
                      linestyle=":")
        ax.stairs(list(values), list(edges_s), baseline=None, color="#1f5f8b", linewidth=1.4)
        axis_s = max(duration_s, edges_s[-1] if len(edges_s) else 0, 1e-3)
        ax.set_xlim(0, axis_s)
        _time_axis(ax, axis_s)
        ax.set_ylabel("mean saliency")
        ax.set_title(title, loc="left", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        return _save(figure, path)
