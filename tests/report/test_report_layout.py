"""The report read by a person (#22.16): every page at a desktop and a phone width in headless
Chromium (no page wider than the window; strip time labels on their own dark box, apart from each
other; plots as wide as their card), and a run settings table in human values."""

from __future__ import annotations

import re

import pytest

from r2cli.report.build import human_value, settings_rows

pytestmark = pytest.mark.slow

_GEOMETRY = """
const box = e => { const b = e.getBoundingClientRect(); return {x: b.left, y: b.top, w: b.width, h: b.height}; };
const doc = document.documentElement;
return {
  overflow: doc.scrollWidth - doc.clientWidth,
  captions: Array.from(document.querySelectorAll('.timeline figcaption')).map(c => ({
     ...box(c), background: getComputedStyle(c).backgroundColor, text: c.textContent})),
  plots: Array.from(document.querySelectorAll('.plot')).map(p => {
     const img = p.querySelector('img.plot-img');
     return img ? {card: p.clientWidth, img: img.getBoundingClientRect().width} : null; }).filter(Boolean),
};
"""


def _apart(a: dict, b: dict) -> bool:
    return a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"] or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"]


@pytest.mark.parametrize("width", [1280, 390])
def test_every_page_fits_the_window_and_labels_are_readable(browser, sample_report, width):
    driver = browser
    driver.set_window_size(width, 1000)
    try:
        pages = sorted(sample_report.out_dir.glob("*.html"))
        strips = 0
        for page in pages:
            driver.get(page.as_uri())
            found = driver.execute_script(_GEOMETRY)
            assert found["overflow"] <= 0, f"{page.name} at {width} px: {found['overflow']} px wider than the window"
            captions = found["captions"]
            strips += bool(captions)
            for caption in captions:
                # a dark box of its own under the white text: readable on a white frame
                rgba = [float(x) for x in re.findall(r"[\d.]+", caption["background"])]
                assert len(rgba) == 4 and rgba[3] >= 0.5 and max(rgba[:3]) <= 64, caption
                assert re.fullmatch(r"\d\d:\d\d:\d\d", caption["text"]), caption
            for i, a in enumerate(captions):
                for b in captions[i + 1:]:
                    assert _apart(a, b), (page.name, width, a, b)
            for plot in found["plots"]:  # the plot fills its card (less the card's padding)
                assert plot["img"] >= plot["card"] - 16, (page.name, width, plot)
        assert strips >= sample_report.videos
    finally:
        driver.set_window_size(1280, 1600)


def test_run_settings_table_shows_human_values(sample_report):
    index = (sample_report.out_dir / "index.html").read_text(encoding="utf-8")
    for section in re.findall(r'<section class="run">(.*?)</section>', index, flags=re.S):
        cells = re.findall(r"<tr><th>([^<]*)</th><td>([^<]*)</td></tr>", section)
        values = [v.strip() for _, v in cells]
        assert not {"None", "True", "False", "none", "null"} & set(values), cells
        assert not any(v.startswith(("{", "[", "(")) for v in values), cells
        labels = [k for k, _ in cells]
        assert labels.count("preset") == 1 and len(labels) == len(set(labels)), labels
    assert "<th>nms</th><td>sigma 0.5, threshold 0.7, type normal</td>" in index
    assert "<th>save saliency</th><td>yes</td>" in index and "<th>window</th><td>150 s</td>" in index


def test_human_values():
    assert human_value(True) == "yes" and human_value(False) == "no"
    assert human_value(75.0, "s") == "75 s" and human_value(0.5) == "0.5"
    assert human_value(["*.mp4", "*.mov"]) == "*.mp4, *.mov"
    assert human_value({"type": "linear", "sigma": None, "iou_threshold": 0.7}) == "type linear, iou threshold 0.7"
    model = {"preset": "qvhighlights"}
    assert settings_rows({"preset": "qvhighlights", "candidates": None, "videos": [], "top_k": 5}, model) == [("top k", "5")]
    assert settings_rows({"preset": "tacos"}, model) == [("preset", "tacos")]
