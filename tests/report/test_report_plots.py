"""The report's SVG plots: text in any script stays text without warnings, rank labels keep apart,
time ticks fall on clean steps (#22.12, #22.16)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install matplotlib)")

from r2cli.report.plots import label_rows, saliency_plot, summary_plot, time_step  # noqa: E402

CJK_TITLE = "赤い車が走る場面"
# ranks crowded together (as in the issue: #10 next to #1, #5 next to #2)
CROWDED = [(0.0, 0.4, 1), (0.4, 0.8, 10), (0.5, 1.0, 2), (2.0, 2.5, 5), (2.1, 2.4, 3), (2.2, 2.6, 4), (2.3, 2.7, 6),
           (6.0, 6.2, 7), (6.1, 6.3, 8), (6.2, 6.4, 9)]


def _texts(svg: Path) -> list[str]:
    return [t.strip() for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg.read_text(encoding="utf-8"))]


def _draw_crowded(path: Path, title: str = CJK_TITLE) -> Path:
    times = [i * 0.5 + 0.25 for i in range(20)]
    return saliency_plot(path, times_s=times, scores=[(i % 7) / 7 for i in range(20)], duration_s=9.934,
                         moments=CROWDED, title=title)


def test_cjk_text_draws_without_warnings_and_stays_text_in_the_svg(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        svg = _draw_crowded(tmp_path / "cjk.svg")
        summary_plot(tmp_path / "summary.svg", edges_s=[0, 2, 4], values=[0.1, 0.2], selected=[True, False],
                     duration_s=4, title=f"summary of {CJK_TITLE}")
    assert [str(w.message) for w in caught] == []
    assert CJK_TITLE in _texts(svg)  # a <text> element, not glyph paths: the browser's fonts draw it
    assert f"summary of {CJK_TITLE}" in _texts(tmp_path / "summary.svg")


@pytest.mark.parametrize("duration, step", [(0.8, 0.1), (3.0, 0.5), (9.934, 2.0), (60.0, 10.0), (150.0, 30.0),
                                            (3600.0, 600.0), (7 * 3600.0, 3600.0)])
def test_time_ticks_fall_on_clean_steps(duration, step):
    assert time_step(duration) == step
    assert duration / time_step(duration) <= 8


def test_tick_labels_are_distinct_clean_times(tmp_path):
    svg = summary_plot(tmp_path / "s.svg", edges_s=[0, 2.5, 5, 7.5, 9.934], values=[0.1, 0.3, 0.2, 0.4],
                       selected=[True, False, True, False], duration_s=9.934, title="summary")
    ticks = [t for t in _texts(svg) if re.fullmatch(r"\d+:\d\d(\.\d)?", t)]
    assert ticks == ["0:00", "0:02", "0:04", "0:06", "0:08"]
    short = saliency_plot(tmp_path / "short.svg", times_s=[0.5, 1.5], scores=[0.1, 0.2], duration_s=3.0,
                          moments=[], title="short")
    ticks = [t for t in _texts(short) if re.fullmatch(r"\d+:\d\d(\.\d)?", t)]
    assert ticks == ["0:00.0", "0:00.5", "0:01.0", "0:01.5", "0:02.0", "0:02.5", "0:03.0"]


def test_label_rows_keep_labels_apart():
    placed = label_rows(CROWDED, axis_s=9.934, axis_points=10 * 72 * 0.91)
    by_row: dict[int, list[tuple[float, int]]] = {}
    for x, rank, row in placed:
        by_row.setdefault(row, []).append((x, rank))
    assert {rank for _, rank, _ in placed} >= {1, 2, 3}  # the best ranks always get a label
    seconds_per_point = 9.934 / (10 * 72 * 0.91)
    for labels in by_row.values():
        labels.sort()
        for (x1, r1), (x2, r2) in zip(labels, labels[1:]):
            need = ((len(f"#{r1}") + len(f"#{r2}")) * 0.65 / 2 + 0.5) * 8 * seconds_per_point
            assert x2 - x1 >= need, (r1, r2)


def test_labels_and_title_do_not_intersect_in_a_browser(browser, tmp_path):
    """Chromium lays the SVG out with its own fonts; the boxes of the rank labels and the title must not meet."""
    svg = _draw_crowded(tmp_path / "crowded.svg", title="a red car drives past the camera " * 3)
    browser.get(svg.as_uri())
    boxes = browser.execute_script("""
        const out = [];
        for (const t of document.querySelectorAll('text')) {
          const b = t.getBoundingClientRect();
          const g = t.closest('g[id^="moment-label-"]');
          out.push({label: g ? g.id : (t.textContent.startsWith('a red car') ? 'title' : null),
                    x: b.left, y: b.top, w: b.width, h: b.height});
        }
        return out.filter(b => b.label);""")
    labels = [b for b in boxes if b["label"] != "title"]
    assert len(labels) >= 6 and any(b["label"] == "title" for b in boxes)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            apart = (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
                     or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"])
            assert apart, (a, b)
