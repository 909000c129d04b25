"""Annotation readers: every shared benchmark file, and clear messages for bad records."""

from __future__ import annotations

import json

import pytest

from r2cli.data.grounding import (
    read_charades,
    read_charades_sta_txt,
    read_moment_annotations,
    read_qvhighlights,
    read_tacos,
    read_user_annotations,
    tacos_feature_id,
)
from r2cli.data.highlights import read_tvsum, read_youtube_highlights, split_videos
from r2cli.data.splits import TVSUM_SPLITS, YOUTUBE_SPLITS
from r2cli.errors import InputError


def test_qvhighlights_files(datasets_dir):
    train = read_qvhighlights(datasets_dir / "qvhighlights" / "highlight_train_release.jsonl")
    val = read_qvhighlights(datasets_dir / "qvhighlights" / "highlight_val_release.jsonl")
    assert (len(train), len(val)) == (7218, 1550)
    first = val[0]
    assert first.qid == 2579 and first.vid == "NUsG9BgSes0_210.0_360.0" and first.duration == 150
    assert first.windows == ((82.0, 150.0),) and first.clip_ids[0] == 41 and first.saliency_scores[0] == (1, 1, 2)
    assert all(1 <= len(r.windows) <= 25 for r in train)


def test_charades_both_layouts(datasets_dir):
    folder = datasets_dir / "charades"
    tvr = read_charades(folder / "charades_sta_test_tvr_format.jsonl")
    raw = read_charades(folder / "charades_sta_test.txt")
    assert len(tvr) == len(raw) == 3720
    assert tvr[0].qid == 12404 and raw[0].qid == "test0" and raw[0].duration is None
    assert [r.query for r in raw[:50]] == [r.query for r in tvr[:50]]
    train = read_charades_sta_txt(folder / "charades_sta_train.txt")
    assert len(train) == 12408 and sum(r.windows[0][0] > r.windows[0][1] for r in train) == 4
    assert len(read_charades(folder / "charades_sta_train_tvr_format.jsonl")) == 12404


def test_tacos_files(datasets_dir):
    counts = [len(read_tacos(datasets_dir / "tacos" / f"{s}.jsonl")) for s in ("train", "val", "test")]
    assert counts == [9790, 4436, 4001]
    assert tacos_feature_id("s30-d52") == "s30-d52-cam-002" == tacos_feature_id("s30-d52-cam-002")


def test_youtube_and_tvsum_files(datasets_dir):
    youtube = read_youtube_highlights(datasets_dir / "youtube" / "youtube_anno.json")
    assert len(youtube) == 422
    video = youtube["6bS6-GVLBeM"]
    assert video.domain == "dog" and video.title.startswith("Dock Dogs Scarborough") and video.num_frames == 842
    assert video.feature_fps == pytest.approx(len(video.match) / (842 / video.fps))
    # effective split sizes with the shared file (spec §5.5)
    sizes = {d: (len(split_videos("youtube", youtube, d, "train")), len(split_videos("youtube", youtube, d))) for d in YOUTUBE_SPLITS}
    assert sizes == {"dog": (40, 17), "gymnastics": (33, 26), "parkour": (19, 11), "skating": (23, 10), "skiing": (67, 50), "surfing": (53, 43)}
    tvsum = read_tvsum(datasets_dir / "tvsum" / "tvsum_anno.json")
    assert len(tvsum) == 50 and all(len(row) == 20 for v in tvsum.values() for row in v.scores)
    for domain, split in TVSUM_SPLITS.items():
        assert all(tvsum[vid].domain == domain for vid in (*split["train"], *split["val"]))


def test_split_tables_have_the_listed_sizes():
    assert {d: (len(s["train"]), len(s["val"])) for d, s in YOUTUBE_SPLITS.items()} == {
        "dog": (44, 24), "gymnastics": (34, 28), "parkour": (21, 11), "skating": (24, 11), "skiing": (68, 51), "surfing": (56, 47),
    }  # fmt: skip
    assert all(len(s["train"]) == 4 and len(s["val"]) == 1 for s in TVSUM_SPLITS.values()) and len(TVSUM_SPLITS) == 10


GOOD = {"qid": 1, "query": "a dog", "duration": 150, "vid": "v", "relevant_windows": [[0, 4]]}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"relevant_windows": "x"}, r"line 2: field 'relevant_windows' must be a list of \[start, end\] pairs"),
        ({"relevant_windows": [[5, 2]]}, r"line 2: field 'relevant_windows\[0\]' must have start <= end"),
        ({"relevant_windows": [[0, 200]]}, r"line 2: field 'relevant_windows\[0\]' must end within the video's duration \(150 s\)"),
        ({"relevant_windows": [[0, 1, 2]]}, r"line 2: field 'relevant_windows\[0\]' must be a \[start, end\] pair"),
        ({"duration": -3}, r"line 2: field 'duration' must be > 0"),
        ({"duration": "long"}, r"line 2: field 'duration' must be a finite number"),
        ({"query": ""}, r"line 2: field 'query' must be a non-empty string"),
        ({"qid": [1]}, r"line 2: field 'qid' must be an integer or a non-empty string"),
        ({"qid": 1}, r"line 2: field 'qid' repeats 1 \(first seen at .*line 1\)"),
        ({"relevant_clip_ids": [0]}, r"line 2: field 'saliency_scores' is missing"),
        ({"relevant_clip_ids": [0], "saliency_scores": [[5, 0, 0]]}, r"line 2: field 'saliency_scores\[0\]' must be 3 integer scores in 0..4"),
        ({"relevant_clip_ids": [75], "saliency_scores": [[1, 1, 1]]}, r"line 2: field 'relevant_clip_ids' must index 2-second clips below"),
    ],
)
def test_bad_annotation_names_file_line_and_field(tmp_path, change, message):
    path = tmp_path / "anno.jsonl"
    second = {**GOOD, "qid": 2, **change}
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(second) + "\n")
    with pytest.raises(InputError, match=message) as error:
        read_moment_annotations(path)
    assert str(path) in str(error.value)


def test_missing_field_and_bad_json(tmp_path):
    path = tmp_path / "anno.jsonl"
    path.write_text(json.dumps({k: v for k, v in GOOD.items() if k != "vid"}) + "\n")
    with pytest.raises(InputError, match="line 1: required field 'vid' is missing"):
        read_moment_annotations(path)
    path.write_text(json.dumps(GOOD) + "\n\n[1, 2]\n")
    with pytest.raises(InputError, match="line 3: each line must be a JSON object"):
        read_moment_annotations(path)
    with pytest.raises(InputError, match="file not found"):
        read_moment_annotations(tmp_path / "nope.jsonl")


def test_bad_charades_line(tmp_path):
    path = tmp_path / "charades_sta_test.txt"
    path.write_text("3MSZA 24.3 30.4##person turn a light on.\n3MSZA 24.3##oops\n")
    with pytest.raises(InputError, match=r"line 2: expected 'VID START END##sentence'"):
        read_charades_sta_txt(path)


def test_bad_highlight_entries(tmp_path):
    path = tmp_path / "tvsum_anno.json"
    path.write_text(json.dumps({"abc": {"domain": "BK", "title": "t", "fps": 30, "frames": "90", "anno": [[1] * 19]}}))
    with pytest.raises(InputError, match=r"video 'abc': field 'anno\[0\]' must hold 20 ratings in 1..5"):
        read_tvsum(path)
    path = tmp_path / "youtube_anno.json"
    entry = {"domain": "dog", "fps": 30, "frames": "300", "info": [0] * 5 + ["title", 0, 0], "clip": [[0, 100]], "match": [2]}
    path.write_text(json.dumps({"xyz": entry}))
    with pytest.raises(InputError, match=r"video 'xyz': field 'match' must be a non-empty list of -1/0/1 labels"):
        read_youtube_highlights(path)


def test_user_annotations_minimal(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(
        '{"video": "clips/party.mp4", "query": "the cake arrives", "relevant_windows": [[12.5, 20]]}\n'
        '{"vid": "abc", "qid": "x1", "query": "speech", "duration": 30, "relevant_windows": [[1, 3], [10, 12]]}\n'
    )
    first, second = read_user_annotations(path)
    assert first.qid == 1 and first.vid is None and first.duration is None
    assert first.video_path == str((tmp_path / "clips" / "party.mp4").resolve())
    assert second.qid == "x1" and second.windows == ((1.0, 3.0), (10.0, 12.0))
    assert second.to_official()["relevant_windows"] == [[1.0, 3.0], [10.0, 12.0]]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"query": "x", "relevant_windows": [[0, 1]]}', "line 1: give the video as field 'vid'"),
        ('{"vid": "a", "query": "x"}', "line 1: required field 'relevant_windows' is missing"),
        ('{"vid": "a", "query": "x", "relevant_windows": []}', "must hold at least one"),
        ('{"vid": "a", "query": "x", "relevant_windows": [[3, 3]]}', "must have end > start"),
    ],
)
def test_user_annotation_errors(tmp_path, line, message):
    path = tmp_path / "mine.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(InputError, match=message):
        read_user_annotations(path)


def test_non_utf8_annotation_names_the_line_and_column(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_bytes(b'{"vid": "a", "query": "ok", "relevant_windows": [[0, 1]]}\n'
                     b'{"vid": "b", "query": "caf\xe9", "relevant_windows": [[0, 1]]}\n')
    with pytest.raises(InputError, match=r"mine.jsonl, line 2: not valid UTF-8 \(byte 0xe9 at column 27\)"):
        read_user_annotations(path)
