"""`r2cli duplicates` on real copies made by ffmpeg, indexed with the tiny CLIP (#20.3).

What the tiny random tower can and cannot tell apart is part of the contract written here:

- re-encodes (another size, another codec), a trimmed copy, a 16:9 picture letterboxed into 16:10
  and pillarboxed into 21:9 are found, with their offsets;
- the mirrored copy's ``testsrc2`` part (the first 10 s, an asymmetric pattern) is never matched,
  so the mirrored copy is never a duplicate of anything; its colour scenes (a flat colour with a
  moving box: nearly symmetric pictures) do match the source as ``shared`` footage, as they would
  with any tower: a mirrored flat colour is the same picture;
- unrelated clips are never paired.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _name(path: str) -> str:
    return Path(path).name


@pytest.fixture(scope="module")
def found(dups_archive, tmp_path_factory):
    from r2cli.app.duplicates import DuplicatesOptions, run_duplicates

    workspace, _ = dups_archive
    out = tmp_path_factory.mktemp("dups-run") / "run"
    return run_duplicates(workspace, DuplicatesOptions.from_flags(out=out))


def _pairs(result, one: str, other: str):
    frame = result.pairs
    names_a, names_b = frame["path_a"].map(_name), frame["path_b"].map(_name)
    return frame[((names_a == one) & (names_b == other)) | ((names_a == other) & (names_b == one))]


@pytest.mark.parametrize("copy", ["small.mp4", "other_codec.mkv", "letterboxed.mp4", "pillarboxed.mp4"])
def test_whole_copies_are_duplicates_of_the_source(found, copy):
    rows = _pairs(found, "source.mp4", copy)
    assert len(rows) == 1, rows
    row = rows.iloc[0]
    assert row["kind"] == "duplicate"
    assert abs(row["offset_s"]) <= 1.0
    assert row["a_end_s"] - row["a_start_s"] >= 0.9 * 37 and row["similarity"] >= 0.85


def test_trimmed_copy_is_contained_with_its_offset(found):
    rows = _pairs(found, "source.mp4", "trimmed.mp4")
    assert len(rows) == 1, rows
    row = rows.iloc[0]
    assert row["kind"] == "contained" and _name(row["path_a"]) == "trimmed.mp4"  # a: the one contained
    assert abs(row["offset_s"] - 5.0) <= 1.0  # cut with -ss 5: the copy's 0 s is the source's 5 s
    assert abs(row["b_start_s"] - 5.0) <= 1.0 and abs(row["b_end_s"] - 25.0) <= 1.0
    assert row["a_start_s"] <= 1.0 and row["a_end_s"] >= 19.0


def test_the_same_bytes_under_two_names_are_identical(found):
    rows = _pairs(found, "source.mp4", "same_bytes.mp4")
    assert list(rows["kind"]) == ["identical"] and float(rows["similarity"].iloc[0]) == 1.0


def test_mirrored_copy_is_not_a_duplicate(found):
    frame = found.pairs
    mirrored = frame[(frame["path_a"].map(_name) == "mirrored.mp4") | (frame["path_b"].map(_name) == "mirrored.mp4")]
    assert not set(mirrored["kind"]) & {"duplicate", "contained", "identical"}, mirrored
    for row in mirrored.to_dict("records"):  # the asymmetric pattern (0-10 s) never matches
        start, end = (row["a_start_s"], row["a_end_s"]) if _name(row["path_a"]) == "mirrored.mp4" \
            else (row["b_start_s"], row["b_end_s"])
        assert start >= 9.0 and end > start, row


def test_unrelated_clips_are_never_paired(found):
    frame = found.pairs
    names = set(frame["path_a"].map(_name)) | set(frame["path_b"].map(_name))
    assert "portrait_rotated_orange_teal.mp4" not in names
    assert "variable_frame_rate_counter.mp4" not in names


def test_parquet_has_the_pairs_and_its_schema(found):
    from r2cli.outputs import read_results
    from r2cli.outputs.schemas import KIND_VERSIONS, columns

    results = read_results(found.files["duplicates"], kind="duplicates")
    assert results.schema_version == KIND_VERSIONS["duplicates"] == 1
    assert list(results.df.columns)[:len(columns("duplicates"))] == [c.name for c in columns("duplicates")]
    assert len(results.df) == len(found.pairs) and results.metadata["r2cli.run_id"] == found.run_id
    manifest = json.loads((found.out_dir / "run.json").read_text())
    assert manifest["kind"] == "duplicates" and manifest["counts"]["pairs"] == len(found.pairs)


def _run_cli(capsys, *args: object) -> tuple[int, str, str]:
    from r2cli.cli.main import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return stopped.value.code, captured.out, captured.err


def test_cli_table_json_and_report(dups_archive, tmp_path, capsys, monkeypatch):
    workspace, _ = dups_archive
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "run"
    code, text, err = _run_cli(capsys, "duplicates", "--workspace", workspace.root, "--out", out, "--report")
    assert code == 0, err
    assert "duplicates run" in text and "contained" in text and "trimmed.mp4" in text and "+0:05.0" in text
    assert "report:" in text
    html = (out / "report" / "index.html").read_text(encoding="utf-8")
    assert "trimmed.mp4" in html and "source.mp4" in html and 'data-kind="contained"' in html
    assert html.count('class="pair"') == len(__import__("pandas").read_parquet(out / "duplicates.parquet"))
    assert "<img src=\"thumbs/" in html
    code, text, err = _run_cli(capsys, "duplicates", "--workspace", workspace.root, "--out", tmp_path / "json",
                               "--json")
    assert code == 0, err
    document = json.loads(text)
    assert any(p["kind"] == "contained" and _name(p["path_a"]) == "trimmed.mp4" for p in document["pairs"])
    code, text, err = _run_cli(capsys, "duplicates", "--workspace", workspace.root, "--min-similarity", "1.5")
    assert code != 0 and "--min-similarity must be in (0, 1], got 1.5" in err


def test_job_step_runs_and_is_skipped_when_nothing_changed(dups_archive, tmp_path):
    from r2cli.app.jobs import load_job, run_job

    workspace, _ = dups_archive
    job = tmp_path / "dups.toml"
    job.write_text(f'[job]\nname = "dups"\nworkspace = {json.dumps(str(workspace.root))}\nout = "out"\n\n'
                   "[duplicates]\nmin_length = 8.0\n\n[report]\n", encoding="utf-8")
    assert load_job(job).steps() == ["duplicates", "report"]
    first = run_job(job)
    assert [s.status for s in first.steps] == ["done", "done"], [s.detail for s in first.steps]
    assert (tmp_path / "out" / "duplicates" / "duplicates.parquet").is_file()
    assert "trimmed.mp4" in (tmp_path / "out" / "report" / "index.html").read_text(encoding="utf-8")
    again = run_job(job)
    assert again.steps[0].status == "skipped"
