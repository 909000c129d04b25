"""Issue #19.1: the coarse index takes its live set from the catalog, the same on SQLite and PostgreSQL
(the ``workspace`` fixture runs each test on both backends)."""

from __future__ import annotations

import pytest

pytest.importorskip("faiss")

from fixtures import ArchiveVideo, build_archive, random_embed, random_features  # noqa: E402


def test_index_follows_the_catalog_on_both_backends(workspace, tiny_tower):
    from r2cli.catalog import Catalog
    from r2cli.catalog.schema import Video
    from r2cli.features.coarse_index import load_index, update_workspace_indexes

    build_archive(workspace, tiny_tower, [ArchiveVideo(f"v{i}.mp4", random_features(50, i), embed=random_embed(50, i))
                                          for i in range(6)])
    (built,) = update_workspace_indexes(workspace, min_clips=100)
    assert (built.action, built.videos, built.vectors) == ("built", 6, 300)
    with Catalog.open(workspace) as catalog, catalog.session() as session:
        gone = next(v for v in session.query(Video) if v.path.endswith("/v2.mp4"))
        gone.status = "missing"
        fingerprint = gone.fingerprint
    (updated,) = update_workspace_indexes(workspace, min_clips=100)
    assert (updated.action, updated.removed_videos, updated.vectors) == ("updated", 1, 250)
    assert fingerprint not in load_index(workspace.features_dir, built.settings_key).fingerprints
