"""Shared fixtures: parity folders (the committed golden set, plus ../shared/parity when present),
shared-data folders (skipped when absent), ffmpeg, tiny CLIP weights and towers, generated media, an
empty workspace, hygiene. What they build is in tests/fixtures.py (tests/ is on sys.path because this
file lives there)."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent


def shared_root() -> Path:
    """../shared next to the checkout (or $R2CLI_SHARED_DIR)."""
    return Path(os.environ.get("R2CLI_SHARED_DIR", REPO_DIR.parent / "shared")).resolve()


def parity_root() -> Path:
    """Folder of the full parity files: $R2CLI_PARITY_DIR or ../shared/parity."""
    return Path(os.environ.get("R2CLI_PARITY_DIR", shared_root() / "parity")).resolve()


def parity_sources() -> list[tuple[str, Path]]:
    """Where the parity tests read official vectors: the compact golden set committed in tests/golden
    (always), plus the full folder when it exists ($R2CLI_PARITY_DIR, which must exist when set, or
    ../shared/parity)."""
    from golden.parity_files import GOLDEN_DIR

    sources = [("golden", GOLDEN_DIR)]
    full = parity_root()
    if full != GOLDEN_DIR and (full.is_dir() or "R2CLI_PARITY_DIR" in os.environ):
        sources.append(("shared" if "R2CLI_PARITY_DIR" not in os.environ else "R2CLI_PARITY_DIR", full))
    return sources


@pytest.fixture(scope="session", params=[path for _, path in parity_sources()],
                ids=[name for name, _ in parity_sources()])
def parity_dir(request) -> Path:
    """Each parity folder in turn (see parity_sources); read its files with golden.parity_files."""
    path = request.param
    if not path.is_dir():
        pytest.fail(f"R2CLI_PARITY_DIR={path} is not a folder")
    return path


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    path = shared_root() / "datasets"
    if not path.is_dir():
        pytest.skip(f"benchmark annotations {path} are absent (research licences: they are not shipped)")
    return path


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if not exe or not shutil.which("ffprobe"):
        pytest.skip("ffmpeg/ffprobe not found on PATH (apt-get install ffmpeg)")
    return exe


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """``tiny_model_path(name)``: the file of a tiny model of tests/fixtures.py ``TINY_MODELS``,
    written once per session."""
    from fixtures import tiny_model

    folder = tmp_path_factory.mktemp("weights")
    return lambda name: tiny_model(name, folder)


@pytest.fixture(scope="session")
def tiny_media_path(ffmpeg, tmp_path_factory):
    """``tiny_media_path(name)``: a generated video of tests/fixtures.py ``MEDIA``, made once per session."""
    from fixtures import tiny_media

    folder = tmp_path_factory.mktemp("media")
    return lambda name: tiny_media(name, folder)


@pytest.fixture(scope="session")
def tiny_clip_path(tiny_model_path) -> Path:
    """A tiny random CLIP in OpenAI state-dict format (5 layers per tower, 64 px images)."""
    return tiny_model_path("clip-tiny")


@pytest.fixture(scope="session")
def random_head_path(tiny_model_path) -> Path:
    """A random head (dims 32) at the tiny CLIP's widths, official .pth layout."""
    return tiny_model_path("head-random")


@pytest.fixture(scope="session")
def marker_head_path(tiny_model_path) -> Path:
    """A hand-set head whose score follows a marker in the features, official .pth layout."""
    return tiny_model_path("head-marker")


@pytest.fixture(scope="session")
def tacos_head_path(tiny_model_path) -> Path:
    """The random head saved in the r2cli layout with the TACoS preset (0.5 fps, no rounding, linear
    NMS, whole videos up to 1,404 s): a checkpoint whose preset is not QVHighlights."""
    return tiny_model_path("head-tacos")


@pytest.fixture(scope="session")
def tiny_tower(tiny_clip_path):
    """The tiny CLIP loaded once on the CPU through load_clip(path)."""
    from r2cli.features.clip import load_clip

    return load_clip(tiny_clip_path, device="cpu")


@pytest.fixture(scope="session")
def tiny_tower_small_batch(tiny_clip_path):
    """The tiny CLIP (64 px images, 5 tokens, 5 layers) with a batch of 4 frames, so the feature tests
    cross batch boundaries on short clips (``tiny_tower`` uses load_clip's default batch)."""
    from r2cli.features.clip import load_clip

    return load_clip(tiny_clip_path, device="cpu", batch_size=4)


@pytest.fixture
def workspace(tmp_path):
    """An empty workspace under tmp_path (the catalog tests override it: one per backend)."""
    from r2cli.paths import resolve_workspace

    return resolve_workspace(tmp_path / "ws")


@pytest.fixture(scope="session")
def source_video(tiny_media_path):
    """8 s, 25 fps, 160x120, three coloured scenes, 440 Hz audio, keyframe every 25 frames (``cut-source``)."""
    return tiny_media_path("cut-source")


@pytest.fixture(scope="session")
def silent_video(tiny_media_path):
    """4 s, 30 fps, 320x240, no audio, named "silent clip.mp4" (``silent``)."""
    return tiny_media_path("silent")


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    """Never touch the user's cache or workspace, never reach a hub."""
    monkeypatch.setenv("R2CLI_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("R2CLI_NO_PROGRESS", "1")
    for var in ("R2CLI_WORKSPACE", "R2CLI_CATALOG", "R2CLI_CLIP_WEIGHTS", "R2CLI_CHECKPOINT"):
        monkeypatch.delenv(var, raising=False)


class _ErrorLogTrap(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def _fail_on_error_logs():
    """A test that makes r2cli log at ERROR fails: errors must be raised or recorded, not just logged."""
    trap = _ErrorLogTrap()
    logger = logging.getLogger("r2cli")
    logger.addHandler(trap)
    yield
    logger.removeHandler(trap)
    if trap.records:
        pytest.fail("r2cli logged at ERROR: " + "; ".join(r.getMessage() for r in trap.records))


@pytest.fixture(autouse=True)
def _console_width_follows_columns():
    """The CLI's rich consoles live as long as the process and fix their width from $COLUMNS when
    created; a real `r2cli` call is a fresh process, but in-process CLI tests share one, so each test
    lets the width follow its own $COLUMNS again."""
    common = sys.modules.get("r2cli.cli._common")
    if common is not None:
        for console in (common.console, common.err_console):
            console._width = None  # rich then reads $COLUMNS (or the terminal) at each call
    yield
