"""Fixtures of the catalog tests: the catalog back-end, workspaces, tiny clips, distinct copies of one clip.

Every test that takes ``workspace`` (or ``catalog_url``) runs twice: on a SQLite file in the
workspace and on a fresh database of a throw-away PostgreSQL server (``pg_server``: Debian's
``postgresql`` binaries, started once per test session on a free loopback port; see tests/_postgres.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from catalogkit import BACKENDS, distinct_copy


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server for this test session, deleted at the end; skipped only without the binaries."""
    from _postgres import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin (or $R2CLI_PG_BINDIR): "
            "apt-get install postgresql, or run scripts/bootstrap.sh"
        )
    server = PostgresServer(bindir).start()
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def catalog_url(backend, request):
    """None for SQLite (the workspace's default catalog file), else the URL of a new PostgreSQL database."""
    if backend == "sqlite":
        yield None
        return
    server = request.getfixturevalue("pg_server")
    url = server.new_database()
    yield url
    server.drop_database(url)


@pytest.fixture
def workspace(tmp_path, catalog_url):
    from r2cli.paths import resolve_workspace

    return resolve_workspace(tmp_path / "ws", catalog_url)


@pytest.fixture(scope="session")
def base_clip(tiny_media_path) -> Path:
    """A 1 s 64x48 red/blue clip at 10 fps (tests/fixtures.py ``MEDIA["base-1s"]``)."""
    return tiny_media_path("base-1s")


@pytest.fixture
def make_copy(base_clip):
    """``make_copy(path, tag)``: a distinct valid clip at ``path``."""

    def make(path: Path, tag: int | str) -> Path:
        return distinct_copy(base_clip, Path(path), tag)

    return make
