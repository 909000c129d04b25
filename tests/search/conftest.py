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
