"""Search over int8 layer tokens (``index --feature-dtype int8``) against the same archive in fp16.

The bounds pinned here are the ones published in benchmarks/RESULTS-compact.md (archive of random
features, the random head at the tiny CLIP's widths): saliency within ``SALIENCY_BOUND``, moment
scores within ``SCORE_BOUND``, boundaries within ``BOUNDARY_BOUND_S``, and each query's top-5 the
same unless its 5th and 6th fp16 moments were a near-tie (closer than the int8 score change).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fixtures import ArchiveVideo, build_archive, compare_runs, random_features, run_cli

SALIENCY_BOUND = 0.002  # max |saliency(int8) - saliency(fp16)| over every scored clip
SCORE_BOUND = 1e-3  # max |score(int8) - score(fp16)| of a moment both runs found
BOUNDARY_BOUND_S = 0.0  # fp16 top-5 moment vs the closest int8 moment of its video (s; the preset rounds to 2 s)
QUERIES = ["a person opens a door", "a dog runs on the beach", "cars at night", "someone cooks", "a red ball"]


def _archive():
    return [ArchiveVideo(f"video{i}.mp4", random_features(clips, seed=40 + i))
            for i, clips in enumerate((30, 75, 150, 12))]


def _options(head, clip, **extra):
    from r2cli.app.search import SearchOptions

    return SearchOptions(checkpoint=str(head), clip_weights=str(clip), device="cpu", top_k=1000, **extra)


def _search(workspace, head, clip, dtype, out):
    from r2cli.app.search import search

    return search(workspace, QUERIES, options=_options(head, clip, feature_dtype=dtype, out=out))


def test_int8_search_stays_within_the_published_bounds(workspace, tiny_tower, tiny_clip_path, random_head_path,
                                                       tmp_path):
    build_archive(workspace, tiny_tower, _archive(), dtypes=("float16", "int8"))
    full = _search(workspace, random_head_path, tiny_clip_path, "float16", tmp_path / "fp16")
    compact = _search(workspace, random_head_path, tiny_clip_path, "int8", tmp_path / "int8")
    assert full.settings["feature_dtypes_used"] == {"float16": 4}
    assert compact.settings["feature_dtypes_used"] == {"int8": 4}
    figures = compare_runs(full, compact)
    print(figures)
    assert 0 < figures["saliency_max_diff"] <= SALIENCY_BOUND  # > 0: the int8 features were really read
    assert figures["score_max_diff"] <= SCORE_BOUND
    assert figures["boundary_max_diff_s"] <= BOUNDARY_BOUND_S
    # every query keeps its top-5, except where ranks 5 and 6 were a near-tie in fp16 already
    assert figures["top5_unchanged"] + figures["top5_near_ties"] == figures["queries"] == len(QUERIES)


def test_auto_prefers_float16_and_falls_back_to_int8(workspace, tiny_tower, tiny_clip_path, random_head_path,
                                                     tmp_path):
    videos = _archive()
    build_archive(workspace, tiny_tower, videos[:2], dtypes=("float16", "int8"))
    build_archive(workspace, tiny_tower, videos[2:], dtypes=("int8",))
    auto = _search(workspace, random_head_path, tiny_clip_path, "auto", tmp_path / "auto")
    assert auto.settings["feature_dtype"] == "auto"
    assert auto.settings["feature_dtypes_used"] == {"float16": 2, "int8": 2}
    only16 = _search(workspace, random_head_path, tiny_clip_path, "float16", tmp_path / "only16")
    assert only16.settings["feature_dtypes_used"] == {"float16": 2}
    assert {s.path.rsplit("/", 1)[-1] for s in only16.skipped} == {"video2.mp4", "video3.mp4"}
    manifest = json.loads((tmp_path / "auto" / "run.json").read_text())
    assert manifest["settings"]["feature_dtypes_used"] == {"float16": 2, "int8": 2}


def test_cli_says_when_compact_features_were_read(workspace, tiny_tower, tiny_clip_path, random_head_path,
                                                  capsys, tmp_path):
    build_archive(workspace, tiny_tower, _archive()[:1], dtypes=("int8",))
    code, out, err = run_cli(capsys, "search", "a red ball", "--workspace", workspace.root, "--checkpoint",
                             random_head_path, "--clip-weights", tiny_clip_path, "--device", "cpu",
                             "--out", tmp_path / "run")
    assert code == 0, err
    assert "layer features read: int8 (1 video)" in out
    code, out, err = run_cli(capsys, "search", "a red ball", "--workspace", workspace.root, "--checkpoint",
                             random_head_path, "--clip-weights", tiny_clip_path, "--device", "cpu",
                             "--feature-dtype", "float16", "--out", tmp_path / "run16")
    assert code != 0
    assert "--feature-dtype" in err or "none of the 1 selected videos" in err


@pytest.mark.parametrize("bad", ["int4", "fp16"])
def test_feature_dtype_flag_is_checked(workspace, capsys, bad):
    code, _out, err = run_cli(capsys, "search", "x", "--workspace", workspace.root, "--feature-dtype", bad)
    assert code != 0 and "--feature-dtype" in err
