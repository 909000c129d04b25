"""Query files (#18.11): lone-CR line endings split lines, an unterminated CSV quote is an error
naming the file and line (it used to swallow the next lines into one query), lines and queries are
bounded (a 10 MB line ran past 120 s), and a run says how many queries the file gave."""

from __future__ import annotations

import json
import time

import pytest

from fixtures import ArchiveVideo, build_archive, random_features, run_cli

from r2cli.errors import InputError, UsageError
from r2cli.inference.query_files import MAX_QUERY_CHARS, iter_query_file, open_queries


def _texts(path):
    return [(query.line, query.text) for query in iter_query_file(path)]


def test_lone_cr_and_mixed_line_endings(tmp_path):
    path = tmp_path / "queries.txt"
    path.write_bytes(b"a red car\rtwo people\r\nthird one\nlast\r")
    assert _texts(path) == [(1, "a red car"), (2, "two people"), (3, "third one"), (4, "last")]
    csv_path = tmp_path / "queries.csv"
    csv_path.write_bytes(b"qid,query\rq1,a red car\rq2,\"quoted, with comma\"\r")
    assert _texts(csv_path) == [(2, "a red car"), (3, "quoted, with comma")]


@pytest.mark.parametrize("content, line", [
    ('query\n"a red car\nsecond\nthird\n', 2),   # never closed
    ('query\nfine\n"a red car\nsecond",x\n', 3),  # closed on a later line
])
def test_unterminated_csv_quote_names_file_and_line(tmp_path, content, line):
    path = tmp_path / "q.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        open_queries(query_file=path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: a quoted field") and "unterminated" in message
    assert "\n" not in message


def test_a_huge_line_is_refused_quickly(tmp_path):
    path = tmp_path / "queries.txt"
    path.write_bytes(b"a red car\n" + b"x" * 10_000_000 + b"\nlast\n")
    started = time.monotonic()
    with pytest.raises(InputError, match=rf"{path.name}:2: line is longer than 64 KiB"):
        open_queries(query_file=path)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("suffix, body", [
    (".txt", "{q}\n"),
    (".csv", "query\n{q}\n"),
    (".jsonl", '{{"query": "{q}"}}\n'),
])
def test_query_length_is_bounded_in_every_format(tmp_path, suffix, body):
    path = tmp_path / f"q{suffix}"
    long_query = "word " * (MAX_QUERY_CHARS // 5 + 10)
    path.write_text(body.format(q=long_query.strip()), encoding="utf-8")
    with pytest.raises(InputError, match=rf"characters long; at most {MAX_QUERY_CHARS}"):
        open_queries(query_file=path)
    with pytest.raises(UsageError, match=r"query 1 on the command line: the query is \d+ characters long"):
        open_queries((long_query,))
    ok = tmp_path / f"ok{suffix}"
    ok.write_text(body.format(q="w" * MAX_QUERY_CHARS), encoding="utf-8")
    assert open_queries(query_file=ok).count == 1


def test_search_says_how_many_queries_the_file_gave(capsys, workspace, tiny_tower, tiny_clip_path, random_head_path,
                                                    tmp_path):
    build_archive(workspace, tiny_tower, [ArchiveVideo("a.mp4", random_features(30, 0))])
    queries = tmp_path / "queries.txt"
    queries.write_bytes(b"a red scene\rtwo people\rthe end\r")
    args = ["search", "extra sentence", "--queries", str(queries), "-w", str(workspace.root), "--checkpoint",
            str(random_head_path), "--clip-weights", str(tiny_clip_path), "--device", "cpu"]
    code, out, err = run_cli(capsys, *args, "--out", str(tmp_path / "run"))
    assert code == 0, err
    assert "4 queries (3 read from the query file) searched" in " ".join(out.split())
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert manifest["counts"]["queries"] == 4 and manifest["counts"]["queries_read_from_file"] == 3
