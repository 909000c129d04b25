"""Fixtures of the search tests (helpers live in searchkit.py; the tiny CLIP, its tower and the tiny
heads come from the registry in tests/fixtures.py through tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def workspace(tmp_path):
    from r2cli.paths import resolve_workspace

    return resolve_workspace(tmp_path / "ws")
