"""The report in a real browser: Debian's chromium, headless, driven by Selenium (skipped without it).

Checks that every image loaded (naturalWidth > 0, lazy images made eager first), that the plots
are there, that each moment's player points at an existing file with the right media fragment,
that no request left the report folder (Chrome's performance log of Network events), and that
hostile file names and queries stay text.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from conftest import HOSTILE_QUERY, HOSTILE_VIDEO, ODD_VIDEO

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

_LOAD_ALL_IMAGES = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
images.forEach(img => { img.loading = 'eager'; });
Promise.all(images.map(img => img.complete ? Promise.resolve() : new Promise(ok => {
  img.addEventListener('load', ok); img.addEventListener('error', ok); })))
  .then(() => done(images.map(img => [img.getAttribute('src'), img.naturalWidth, img.className])));
"""


def _path_of(url: str) -> Path:
    parts = urlsplit(url)
    assert parts.scheme == "file", url
    return Path(unquote(parts.path))


def _requests(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _open_every_page(driver, folder: Path) -> list[tuple[str, list]]:
    driver.get_log("performance")  # drop what earlier tests left
    seen = []
    for page in sorted(folder.glob("*.html")):
        driver.get(page.as_uri())
        images = driver.execute_async_script(_LOAD_ALL_IMAGES)
        seen.append((page.name, images))
    return seen


def _inside(url: str, folder: Path) -> bool:
    if url.startswith("data:"):
        return True
    return url.startswith("file://") and _path_of(url).resolve().is_relative_to(folder.resolve())


@pytest.fixture(scope="module")
def sample_pages(browser, sample_report):
    driver = browser
    pages = _open_every_page(driver, sample_report.out_dir)
    return pages, _requests(driver)


def test_every_image_loads_and_plots_are_present(sample_pages, sample_report):
    pages, _ = sample_pages
    assert len(pages) == sample_report.pages
    plots = 0
    for name, images in pages:
        for src, width, css in images:
            assert width > 0, f"{name}: image {src} did not load"
            plots += "plot-img" in css
    assert plots == sample_report.plots
    video_pages = [images for name, images in pages if name.startswith("v")]
    assert all(any("plot-img" in css for _, _, css in images) for images in video_pages)


def test_no_request_leaves_the_report_folder(sample_pages, sample_report):
    _, requests = sample_pages
    assert requests, "the performance log recorded no request at all"
    outside = [url for url in requests if not _inside(url, sample_report.out_dir)]
    assert outside == []


def test_each_player_points_at_an_existing_file_with_the_moment_fragment(browser, sample_report, sample_job_run):
    from r2cli.outputs import read_results

    driver = browser
    count = 0
    for page in sorted(sample_report.out_dir.glob("q*.html")):
        driver.get(page.as_uri())
        for src, start, end, preload in driver.execute_script(
            "return Array.from(document.querySelectorAll('article.card')).map(a => {"
            " const v = a.querySelector('video.player');"
            " return [v.src, a.dataset.start, a.dataset.end, v.preload]; });"
        ):
            file, fragment = src.split("#t=")
            a, b = (float(x) for x in fragment.split(","))
            assert _path_of(file).is_file(), file
            assert b - a == pytest.approx(float(end) - float(start), abs=2e-3)
            if "/clips/" not in file:
                assert (a, b) == (pytest.approx(float(start), abs=1e-3), pytest.approx(float(end), abs=1e-3))
            assert preload == "none"
            count += 1
    assert count == len(read_results(sample_job_run / "search" / "moments.parquet").df)


def test_screenshot(browser, sample_report, tmp_path):
    """A screenshot of a video page (saliency plot, strip, summary, cards); R2CLI_UPDATE_SCREENSHOT=1 keeps it in docs/."""
    driver = browser
    page = next(p for p in sorted(sample_report.out_dir.glob("v*.html")) if "red_then_blue_cut" in p.read_text())
    driver.get(page.as_uri())
    driver.execute_async_script(_LOAD_ALL_IMAGES)
    shot = tmp_path / "report-screenshot.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("R2CLI_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, REPO / "docs" / "report-screenshot.png")


def test_hostile_names_and_queries_stay_text(browser, hostile_job_run, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    from r2cli.report.build import build_report

    report = build_report(hostile_job_run, tmp_path / "report")
    driver = browser
    pages = _open_every_page(driver, report.out_dir)
    for name, images in pages:
        for src, width, _ in images:
            assert width > 0, f"{name}: {src}"
    requests = _requests(driver)
    assert [u for u in requests if not _inside(u, report.out_dir)] == []
    assert not any(u.endswith("/x") for u in requests)
    for page in sorted(report.out_dir.glob("*.html")):
        driver.get(page.as_uri())
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018 - nothing ran
        assert driver.execute_script("return document.scripts.length") == 0
        assert driver.find_elements(By.CSS_SELECTOR, 'img[src="x"]') == []
        assert driver.find_elements(By.CSS_SELECTOR, "body script") == []
    driver.get((report.out_dir / "index.html").as_uri())
    body = driver.find_element(By.TAG_NAME, "body").text
    assert HOSTILE_VIDEO in body and HOSTILE_QUERY in body and ODD_VIDEO in body
    # the links of names with spaces, '#', '?' and non-ASCII open the right page and the right file
    link = driver.find_element(By.LINK_TEXT, ODD_VIDEO)
    link.click()
    assert driver.find_element(By.TAG_NAME, "h1").text == ODD_VIDEO
    players = driver.execute_script("return Array.from(document.querySelectorAll('video.player')).map(v => v.src)")
    assert players
    for src in players:
        target = _path_of(src.split("#t=")[0])
        assert target.is_file() and (target.name == ODD_VIDEO or target.parent.name == "clips"), target
    driver.get((report.out_dir / "index.html").as_uri())
    driver.find_element(By.LINK_TEXT, HOSTILE_VIDEO).click()
    assert driver.find_element(By.TAG_NAME, "h1").text == HOSTILE_VIDEO
    assert driver.find_elements(By.CSS_SELECTOR, 'img[src="x"]') == []
