"""Fixtures of the search tests (helpers live in searchkit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from searchkit import build_marker_head, random_head, save_official


@pytest.fixture(scope="session")
def tiny_tower(tiny_clip_path):
    from r2cli.features.clip import load_clip

    return load_clip(str(tiny_clip_path), device="cpu")


@pytest.fixture(scope="session")
def random_head_path(tmp_path_factory) -> Path:
    return save_official(random_head(), tmp_path_factory.mktemp("heads") / "tiny_random_head.pth")


@pytest.fixture(scope="session")
def marker_head_path(tmp_path_factory) -> Path:
    return save_official(build_marker_head(), tmp_path_factory.mktemp("heads") / "tiny_marker_head.pth")


@pytest.fixture
def workspace(tmp_path):
    from r2cli.paths import resolve_workspace

    return resolve_workspace(tmp_path / "ws")


@pytest.fixture(scope="session")
def tacos_head_path(tmp_path_factory) -> Path:
    """The random head saved in the r2cli layout with the TACoS preset (0.5 fps, no rounding, linear
    NMS, whole videos up to 1,404 s): a checkpoint whose preset is not QVHighlights."""
    from r2cli.model.checkpoint import save_checkpoint

    return save_checkpoint(random_head(), tmp_path_factory.mktemp("heads") / "tiny_tacos_head.safetensors",
                           preset="tacos")
