"""Real runs to report on: the sample job (jobs/sample.toml on sample_media/) run with tiny CLIP
weights and a tiny random head, and a job over hostile file names and queries.

Both go through the real ``r2cli run`` library (index with ffmpeg + tiny CLIP, search, summarize,
cut); only the weights are tiny (tests/tiny_clip.py, tests/fixtures.py).
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOSTILE_VIDEO = "<img src=x onerror=alert(1)>.mp4"
HOSTILE_QUERY = "<script>alert(2)</script> a red scene"
ODD_VIDEO = "a #1? späti & co.mp4"  # space, #, ?, non-ASCII, &: the links must still open


@contextmanager
def _env(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def tiny_head_path(random_head_path) -> Path:
    return random_head_path


@pytest.fixture(scope="session")
def sample_job_run(ffmpeg, tiny_clip_path, tiny_head_path, tmp_path_factory) -> Path:
    """The job folder of ``r2cli run jobs/sample.toml`` (index, search, summarize, cut) with tiny weights."""
    from r2cli.app.jobs import run_job
    from r2cli.paths import resolve_workspace

    root = tmp_path_factory.mktemp("sample-job")
    with _env(R2CLI_CLIP_WEIGHTS=str(tiny_clip_path), R2CLI_CHECKPOINT=str(tiny_head_path),
              R2CLI_CACHE=str(root / "cache"), R2CLI_NO_PROGRESS="1"):
        result = run_job(REPO / "jobs" / "sample.toml", workspace=resolve_workspace(root / "ws"))
    assert [s.status for s in result.steps] == ["done"] * len(result.steps), [s.detail for s in result.steps]
    return result.out_dir


@pytest.fixture(scope="session")
def hostile_job_run(ffmpeg, tiny_clip_path, tiny_head_path, tmp_path_factory) -> Path:
    """A job over videos named like markup and a query holding a <script>."""
    from fixtures import make_video

    from r2cli.app.jobs import run_job

    root = tmp_path_factory.mktemp("hostile-job")
    media = root / "media"
    make_video(media / HOSTILE_VIDEO, seconds=6, width=96, height=64, fps=10, colors=("red", "blue"))
    make_video(media / ODD_VIDEO, seconds=4, width=96, height=64, fps=10, colors=("green",))
    job = root / "jobs" / "hostile.toml"
    job.parent.mkdir()
    q = json.dumps  # TOML basic strings share JSON's escapes
    job.write_text(f"""
[job]
name = "hostile"
workspace = "../ws"
out = "../out"

[index]
paths = [{q(str(media))}]
clip_weights = {q(str(tiny_clip_path))}
device = "cpu"

[search]
queries = [{q(HOSTILE_QUERY)}, "a green scene"]
checkpoint = {q(str(tiny_head_path))}
clip_weights = {q(str(tiny_clip_path))}
device = "cpu"
top_k = 3

[summarize]
ratio = 0.4
query = {q(HOSTILE_QUERY)}
checkpoint = {q(str(tiny_head_path))}
clip_weights = {q(str(tiny_clip_path))}
device = "cpu"

[cut]
source = "search"
top = 1
""", encoding="utf-8")
    with _env(R2CLI_CACHE=str(root / "cache"), R2CLI_NO_PROGRESS="1"):
        result = run_job(job)
    assert [s.status for s in result.steps] == ["done"] * len(result.steps), [s.detail for s in result.steps]
    return result.out_dir


@pytest.fixture(scope="session")
def sample_report(sample_job_run, tmp_path_factory):
    """``build_report`` of the sample job's folder."""
    from r2cli.report.build import build_report

    return build_report(sample_job_run, tmp_path_factory.mktemp("reports") / "sample")


def chromium_paths() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium through Selenium and chromium-driver, with performance (network) logs."""
    paths = chromium_paths()
    if paths is None:
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1600",
                "--allow-file-access-from-files", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(paths[1]), options=options)
    # Selenium waits forever for a command by default; a renderer that dies under memory pressure
    # would hang the suite. Every command, page load and async script gets a limit.
    driver.command_executor.client_config.timeout = 180
    driver.set_page_load_timeout(90)
    driver.set_script_timeout(90)
    try:
        yield driver
    finally:
        driver.quit()
