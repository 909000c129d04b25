"""Static SVG plots of the report, drawn with matplotlib (Agg canvas, SVG output, no pyplot state).

Text stays text in the SVG (``svg.fonttype = none``): the browser draws it with a local font, so
the plots need no font file, and the file is small. ``svg.hashsalt`` makes the output repeatable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

_RC = {"svg.fonttype": "none", "svg.hashsalt": "r2cli", "font.size": 9, "axes.spines.top": False,
       "axes.spines.right": False}
_SIZE = (10.0, 2.0)  # inches: wide and low, to sit above a strip of thumbnails
LABELLED_MOMENTS = 10  # rank labels drawn per plot (the best ones); every moment is shaded


def _clock(seconds: float, _pos: object = None) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=_SIZE)
    figure.subplots_adjust(left=0.08, right=0.97, bottom=0.16, top=0.80)  # fixed: no layout engine per plot
    FigureCanvasAgg(figure)  # the Agg backend; savefig(format="svg") switches to the SVG renderer for the file
    return figure


def _save(figure, path: str | os.PathLike) -> Path:
    from matplotlib import rc_context

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with rc_context(_RC):
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
    from matplotlib import rc_context
    from matplotlib.ticker import FuncFormatter

    with rc_context(_RC):
        figure = _figure()
        ax = figure.add_subplot()
        if moments:  # one collection for all shaded moments; labels for the best few only
            ax.broken_barh([(start, end - start) for start, end, _ in moments], (0, 1),
                           transform=ax.get_xaxis_transform(), color="#f4a259", alpha=0.35, linewidth=0)
            for start, end, rank in sorted(moments, key=lambda m: m[2])[:LABELLED_MOMENTS]:
                ax.text((start + end) / 2, 1.0, f"#{rank}", transform=ax.get_xaxis_transform(), ha="center",
                        va="bottom", fontsize=8, color="#9a4d00")
        ax.plot(list(times_s), list(scores), color="#1f5f8b", linewidth=1.4)
        ax.set_xlim(0, max(duration_s, 1e-3))
        ax.xaxis.set_major_formatter(FuncFormatter(_clock))
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
    from matplotlib import rc_context
    from matplotlib.ticker import FuncFormatter

    with rc_context(_RC):
        figure = _figure()
        ax = figure.add_subplot()
        spans = [(start, end - start) for (start, end), chosen in zip(zip(edges_s, edges_s[1:]), selected) if chosen]
        if spans:
            ax.broken_barh(spans, (0, 1), transform=ax.get_xaxis_transform(), color="#57a773", alpha=0.35, linewidth=0)
        if len(edges_s) > 2:
            ax.vlines(edges_s[1:-1], 0, 1, transform=ax.get_xaxis_transform(), color="#888888", linewidth=0.6,
                      linestyle=":")
        ax.stairs(list(values), list(edges_s), baseline=None, color="#1f5f8b", linewidth=1.4)
        ax.set_xlim(0, max(duration_s, edges_s[-1] if len(edges_s) else 0, 1e-3))
        ax.xaxis.set_major_formatter(FuncFormatter(_clock))
        ax.set_ylabel("mean saliency")
        ax.set_title(title, loc="left", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        return _save(figure, path)
