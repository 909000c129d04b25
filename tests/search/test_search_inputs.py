"""Query files and every bad-input case of `r2cli search`: a clear message each, never a traceback."""

from __future__ import annotations

import json

import pytest
from fixtures import ArchiveVideo, build_archive, marker_features, run_cli


def test_plain_text_query_file(tmp_path):
    from r2cli.inference.query_files import load_query_file

    path = tmp_path / "queries.txt"
    path.write_text("# dogs first\n\n  a dog catches a frisbee  \r\nsunset\n", encoding="utf-8")
    queries = load_query_file(path)
    assert [(q.qid, q.text, q.line) for q in queries] == [("q1", "a dog catches a frisbee", 3), ("q2", "sunset", 4)]


def test_csv_and_jsonl_query_files(tmp_path):
    from r2cli.inference.query_files import load_query_file

    csv_path = tmp_path / "q.csv"
    csv_path.write_text('qid,query,notes\n7,"a man, a plan",x\nq8,sunset,\n', encoding="utf-8")
    assert [(q.qid, q.text) for q in load_query_file(csv_path)] == [("7", "a man, a plan"), ("q8", "sunset")]
    jsonl_path = tmp_path / "q.jsonl"
    jsonl_path.write_text(json.dumps({"qid": 2579, "query": "a red scene"}) + "\n\n" + json.dumps({"query": "blue"}) + "\n",
                          encoding="utf-8")
    assert [(q.qid, q.text, q.line) for q in load_query_file(jsonl_path)] == [("2579", "a red scene", 1), ("q2", "blue", 3)]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.txt", b"fine\nbad \xff\xfe byte\n", "bad.txt:2: not valid UTF-8"),
        ("bad.csv", b"qid,query\n1,ok\n2,\n", "bad.csv:3: the query is empty"),
        ("bad.csv", b"id,text\n1,ok\n", "no 'query' column"),
        ("bad.jsonl", b'{"query": "ok"}\n{"query": "oops"\n', "bad.jsonl:2: not valid JSON"),
        ("bad.jsonl", b'{"query": "ok"}\n["not", "an", "object"]\n', "bad.jsonl:2: each line must be a JSON object"),
        ("bad.jsonl", b'{"qid": 1, "query": "a"}\n{"qid": 1, "query": "b"}\n', "bad.jsonl:2: qid '1' is used again"),
        ("empty.txt", b"# only a comment\n\n", "contains no query"),
    ],
)
def test_bad_query_files_name_the_file_and_line(tmp_path, name, content, message):
    from r2cli.errors import InputError
    from r2cli.inference.query_files import load_query_file

    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_query_file(path)


def test_empty_command_line_query_is_refused(capsys):
    code, out, err = run_cli(capsys, "search", "dogs", "   ")
    assert code == 2
    assert "query 2 on the command line is empty" in (out + err)
    code, out, err = run_cli(capsys, "search")
    assert code == 2
    assert "QUERY or --queries: give at least one query" in " ".join((out + err).split())


def test_non_utf8_query_file_through_the_cli(capsys, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    code, out, err = run_cli(capsys, "search", "--queries", str(path))
    assert code == 1
    assert f"{path}:1: not valid UTF-8" in (out + err)
    assert "Traceback" not in (out + err)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "60", "--stride", "90"], "--stride (90 s) must not exceed --window (60 s)"),
        (["--format", "xml"], "--format must be one of parquet, official, got 'xml'"),
        (["--window", "10", "--stride", "5"], "--window must cover at least 8 clips"),
    ],
)
def test_bad_options(capsys, workspace, tiny_tower, tiny_clip_path, marker_head_path, args, message):
    build_archive(workspace, tiny_tower, [ArchiveVideo("a.mp4", marker_features(20))])
    code, out, err = run_cli(capsys, "search", "dogs", "-w", str(workspace.root), "--checkpoint", str(marker_head_path),
                                      "--clip-weights", str(tiny_clip_path), "--device", "cpu", *args)
    assert code == 2, (out + err)
    assert message in (out + err)


def test_long_query_is_truncated_with_a_warning(workspace, tiny_tower, tiny_clip_path, marker_head_path):
    from r2cli.app.search import SearchOptions, search

    build_archive(workspace, tiny_tower, [ArchiveVideo("a.mp4", marker_features(20, [(3, 5, 0.9)]))])
    long_query = " ".join(["word"] * 120)
    result = search(workspace, ["short one", long_query], options=SearchOptions(
        checkpoint=str(marker_head_path), clip_weights=str(tiny_clip_path), device="cpu"))
    assert result.counts["truncated_queries"] == 1
    assert any("q2" in w and "truncated" in w for w in result.warnings)
    assert set(result.moments["query_id"]) == {"q1", "q2"}  # it is still searched
    assert result.moments.loc[result.moments["query_id"] == "q2", "query"].iloc[0] == long_query


def test_videos_without_features_are_named_skipped_and_counted(capsys, workspace, tiny_tower, tiny_clip_path, marker_head_path):
    from r2cli.catalog import Catalog
    from r2cli.catalog.schema import Run
    build_archive(workspace, tiny_tower, [
        ArchiveVideo("good.mp4", marker_features(20, [(3, 5, 0.9)])),
        ArchiveVideo("unindexed.mp4", marker_features(20), features=False),
    ])
    code, out, err = run_cli(capsys, "search", "dogs", "-w", str(workspace.root), "--checkpoint", str(marker_head_path),
                                      "--clip-weights", str(tiny_clip_path), "--device", "cpu", "--json")
    assert code == 0, (out + err)
    data = json.loads(out)
    assert data["counts"]["videos_skipped"] == 1 and data["counts"]["videos_searched"] == 1
    assert data["skipped"][0]["path"].endswith("unindexed.mp4")
    assert "run r2cli index" in data["skipped"][0]["reason"]
    assert {m["path"].rsplit("/", 1)[-1] for m in data["moments"]} == {"good.mp4"}
    with Catalog.open(workspace) as catalog, catalog.session() as session:
        assert session.get(Run, data["run_id"]).counts["videos_skipped"] == 1


def test_no_searchable_video_is_a_clear_error(capsys, workspace, tiny_tower, tiny_clip_path, marker_head_path):
    build_archive(workspace, tiny_tower, [ArchiveVideo("a.mp4", marker_features(20), features=False)])
    code, out, err = run_cli(capsys, "search", "dogs", "-w", str(workspace.root), "--checkpoint", str(marker_head_path),
                                      "--clip-weights", str(tiny_clip_path), "--device", "cpu")
    assert code == 1
    assert "none of the 1 selected videos can be searched" in (out + err)
    assert "Traceback" not in (out + err)


def test_empty_archive_and_missing_catalog(capsys, workspace, tiny_clip_path, marker_head_path):
    from r2cli.catalog import Catalog
    args = ["search", "dogs", "-w", str(workspace.root), "--checkpoint", str(marker_head_path),
            "--clip-weights", str(tiny_clip_path), "--device", "cpu"]
    code, out, err = run_cli(capsys, *args)
    assert code != 0
    assert "r2cli index" in (out + err) and "Traceback" not in (out + err)
    Catalog.open(workspace).close()  # an empty catalog
    code, out, err = run_cli(capsys, *args)
    assert code == 1
    assert "the archive is empty" in (out + err)


def test_video_filter_that_matches_nothing(capsys, workspace, tiny_tower, tiny_clip_path, marker_head_path):
    ids = build_archive(workspace, tiny_tower, [ArchiveVideo("a.mp4", marker_features(20, [(3, 5, 0.9)])),
                                                ArchiveVideo("b.mov", marker_features(20))])
    base = ["search", "dogs", "-w", str(workspace.root), "--checkpoint", str(marker_head_path),
            "--clip-weights", str(tiny_clip_path), "--device", "cpu", "--json"]
    code, out, err = run_cli(capsys, *base, "--video", "*.mkv")
    assert code == 1 and "matches --video *.mkv" in (out + err)
    code, out, err = run_cli(capsys, *base, "--video", str(ids["b.mov"]))
    assert code == 0, (out + err)
    assert {m["path"].rsplit("/", 1)[-1] for m in json.loads(out)["moments"]} == {"b.mov"}


def test_out_that_is_a_file_is_one_error_line(capsys, tmp_path, workspace, tiny_tower, tiny_clip_path, marker_head_path):
    build_archive(workspace, tiny_tower, [ArchiveVideo("a.mp4", marker_features(20, [(3, 5, 0.9)]))])
    taken = tmp_path / "taken"
    taken.write_text("not a folder", encoding="utf-8")
    code, out, err = run_cli(capsys, "search", "dogs", "-w", str(workspace.root), "--checkpoint", str(marker_head_path),
                             "--clip-weights", str(tiny_clip_path), "--device", "cpu", "--out", str(taken))
    assert code == 1, out + err
    assert "--out" in err and "is a file, expected a folder" in " ".join(err.split())
    assert "Traceback" not in err


def test_table_shows_queries_and_file_names_literally(capsys, monkeypatch, workspace, tiny_tower, tiny_clip_path,
                                                       marker_head_path):
    from r2cli.cli._common import console

    monkeypatch.setattr(console, "width", 200)
    build_archive(workspace, tiny_tower, [ArchiveVideo("take[red].mp4", marker_features(20, [(3, 5, 0.9)]))])
    code, out, err = run_cli(capsys, "search", "[bold]dogs[/bold]", "-w", str(workspace.root), "--checkpoint",
                             str(marker_head_path), "--clip-weights", str(tiny_clip_path), "--device", "cpu")
    assert code == 0, out + err
    assert "q1: [bold]dogs[/bold]" in out  # rich markup in user text is shown, not interpreted
    assert "take[red].mp4" in out


def test_features_at_another_rate_name_the_fps_to_index_with(capsys, workspace, tiny_tower, tiny_clip_path,
                                                             marker_head_path):
    build_archive(workspace, tiny_tower, [ArchiveVideo("a.mp4", marker_features(20))])  # indexed at 0.5 fps
    code, out, err = run_cli(capsys, "search", "dogs", "-w", str(workspace.root), "--checkpoint", str(marker_head_path),
                             "--clip-weights", str(tiny_clip_path), "--device", "cpu", "--preset", "charades")
    assert code == 1, out + err
    assert "at 1 fps; run r2cli index --fps 1" in " ".join(err.split())
