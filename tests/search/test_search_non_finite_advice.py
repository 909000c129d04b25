"""Search's warning for windows with NaN/inf features points at a repair that works (#18.4).

It used to say "re-extract the video's features with r2cli index", which does nothing for a file the
catalog records as intact; ``index --verify`` now finds NaN/inf files and extracts them again.
"""

from __future__ import annotations

from fixtures import ArchiveVideo, build_archive, flip_to_nan, random_features


def test_non_finite_window_warning_names_index_verify(workspace, tiny_tower, tiny_clip_path, random_head_path,
                                                      tmp_path):
    from r2cli.app.search import SearchOptions, run_search

    build_archive(workspace, tiny_tower, [ArchiveVideo("a.mp4", random_features(40, 0))])
    flip_to_nan(workspace, "a.mp4", "layers", range(3, 5))
    options = SearchOptions(checkpoint=str(random_head_path), clip_weights=str(tiny_clip_path), device="cpu",
                            queries=("a red scene",), out=tmp_path / "run")
    result = run_search(workspace, options)
    (warning,) = [w for w in result.warnings if "NaN" in w]
    assert "r2cli index --verify finds such files and extracts them again" in warning
    assert "re-extract the video's features with r2cli index" not in warning
