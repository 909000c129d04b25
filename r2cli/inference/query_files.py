"""Query lists for ``r2cli search``: sentences from the command line or from a file.

Three file formats, chosen by the file's suffix:

- ``.csv``: a header row with a ``query`` column and optionally a ``qid`` column;
- ``.jsonl`` / ``.ndjson``: one JSON object per line with a ``query`` key and optionally ``qid``;
- anything else: plain UTF-8 text, one query per line; blank lines and lines starting
  with ``#`` are skipped.

Lines end at ``\n``, ``\r\n`` or a lone ``\r``; a line is at most ``MAX_LINE_BYTES`` and a query
at most ``MAX_QUERY_CHARS``; a CSV quote must close on its own line.

Every query keeps where it came from (file and line), so each error message can name it.
Pure standard library: the CLI can parse and validate a query file before torch loads.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from r2cli.errors import InputError, UsageError

QUERY_COLUMN = "query"
QID_COLUMN = "qid"
JSONL_SUFFIXES = (".jsonl", ".ndjson")
CSV_SUFFIXES = (".csv",)


@dataclass(frozen=True)
class Query:
    """One query of a search run."""

    qid: str  # stable identifier: from the file's qid column, else "q<ordinal>"
    text: str  # the sentence, stripped of surrounding whitespace
    source: str  # where it came from: a file path or "argument"
    line: int | None = None  # 1-based line in ``source`` (None for command-line arguments)
    auto_qid: bool = True  # True when r2cli numbered the query (no qid in the input)

    @property
    def where(self) -> str:
        """``file:line`` or ``argument N`` for messages."""
        if self.line is None:
            return self.source
        return f"{self.source}:{self.line}"


def queries_from_texts(texts: list[str] | tuple[str, ...]) -> list[Query]:
    """Turn command-line sentences into queries ``q1``, ``q2``, ...

    Raises:
        UsageError: a sentence is empty or only whitespace.
    """
    queries = []
    for ordinal, text in enumerate(texts, start=1):
        stripped = (text or "").strip()
        if not stripped:
            raise UsageError(f"query {ordinal} on the command line is empty; give a sentence such as \"a red scene\"")
        problem = _length_problem(stripped)
        if problem:
            raise UsageError(f"query {ordinal} on the command line: {problem}")
        queries.append(Query(qid=f"q{ordinal}", text=stripped, source=f"argument {ordinal}"))
    return queries


# A query is a sentence for a 77-token text encoder; these bounds refuse a file that is not a query
# list (a 10 MB line took minutes to tokenize) with a message, instead of working through it.
MAX_LINE_BYTES = 64 * 1024  # bytes of one line of a query file
MAX_QUERY_CHARS = 2000  # characters of one query
_READ_BLOCK = 64 * 1024
_LINE_BREAK = re.compile(rb"[\r\n]")


def _split_lines(handle, path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of a binary file; ``\n``, ``\r\n`` and a lone ``\r`` each end a line.

    Reads in blocks, so memory holds at most one line of ``MAX_LINE_BYTES``.

    Raises:
        InputError: a line is longer than ``MAX_LINE_BYTES`` (named by its number).
    """
    def too_long(number: int) -> InputError:
        return InputError(f"{path}:{number}: line is longer than {MAX_LINE_BYTES // 1024} KiB; a query file "
                          f"holds one query (at most {MAX_QUERY_CHARS} characters) per line")

    number = 1
    pending = b""
    after_cr = False  # the last block ended with "\r": a "\n" starting the next one is part of that break
    while block := handle.read(_READ_BLOCK):
        if after_cr and block.startswith(b"\n"):
            block = block[1:]
        after_cr = block.endswith(b"\r")
        pending += block
        start = 0
        while match := _LINE_BREAK.search(pending, start):
            cut = match.start()
            if cut - start > MAX_LINE_BYTES:
                raise too_long(number)
            yield number, pending[start:cut]
            number += 1
            start = cut + (2 if pending[cut : cut + 2] == b"\r\n" else 1)
        pending = pending[start:]
        if len(pending) > MAX_LINE_BYTES:
            raise too_long(number)
    if pending:
        yield number, pending


def _raw_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of ``path`` read as UTF-8 one line at a time (a BOM is allowed).

    Lines end at ``\n``, ``\r\n`` or a lone ``\r`` (old Mac files). Streams: memory holds one
    line, whatever the file's length.

    Raises:
        InputError: the file is missing, a folder or unreadable, a line is not UTF-8 or longer
            than ``MAX_LINE_BYTES`` (named).
    """
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"query file {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"query file {path} is a folder, not a file") from None
    except OSError as exc:
        raise InputError(f"cannot read query file {path}: {exc.strerror or exc}") from None
    with handle:
        if path.is_dir():
            raise InputError(f"query file {path} is a folder, not a file")
        try:
            for number, raw in _split_lines(handle, path):
                if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(
                        f"{path}:{number}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                        "save the query file as UTF-8"
                    ) from None
                yield number, text
        except IsADirectoryError:
            raise InputError(f"query file {path} is a folder, not a file") from None
        except OSError as exc:
            raise InputError(f"cannot read query file {path}: {exc.strerror or exc}") from None


def _length_problem(text: str) -> str | None:
    if len(text) > MAX_QUERY_CHARS:
        return (f"the query is {len(text)} characters long; at most {MAX_QUERY_CHARS} "
                "(CLIP reads the first 77 tokens, a sentence or two)")
    return None


def _plain_text(path: Path) -> Iterator[Query]:
    ordinal = 0
    for number, line in _raw_lines(path):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        problem = _length_problem(text)
        if problem:
            raise InputError(f"{path}:{number}: {problem}")
        ordinal += 1
        yield Query(qid=f"q{ordinal}", text=text, source=str(path), line=number)


def _record_to_query(path: Path, number: int, record: dict, ordinal: int) -> Query:
    text = record.get(QUERY_COLUMN)
    if text is None:
        raise InputError(f"{path}:{number}: no '{QUERY_COLUMN}' value (each record needs a '{QUERY_COLUMN}')")
    if not isinstance(text, str):
        raise InputError(f"{path}:{number}: '{QUERY_COLUMN}' must be text, got {type(text).__name__}")
    if not text.strip():
        raise InputError(f"{path}:{number}: the query is empty")
    problem = _length_problem(text.strip())
    if problem:
        raise InputError(f"{path}:{number}: {problem}")
    qid = record.get(QID_COLUMN)
    if qid is None or (isinstance(qid, str) and not qid.strip()):
        qid_text = f"q{ordinal}"
        auto = True
    elif isinstance(qid, (str, int)) and not isinstance(qid, bool):
        qid_text = str(qid).strip()
        auto = False
    else:
        raise InputError(f"{path}:{number}: '{QID_COLUMN}' must be text or an integer, got {type(qid).__name__}")
    return Query(qid=qid_text, text=text.strip(), source=str(path), line=number, auto_qid=auto)


def _jsonl(path: Path) -> Iterator[Query]:
    ordinal = 0
    for number, line in _raw_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise InputError(f"{path}:{number}: each line must be a JSON object with a '{QUERY_COLUMN}' key")
        ordinal += 1
        yield _record_to_query(path, number, record, ordinal)


def _csv(path: Path) -> Iterator[Query]:
    lines = (text + "\n" for _, text in _raw_lines(path))
    # strict: a quote that is never closed is an error at the end of the file, not a silent field
    reader = csv.reader(lines, strict=True)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        return
    except csv.Error as exc:
        raise InputError(f"{path}:1: cannot parse the CSV header ({exc})") from None
    if QUERY_COLUMN not in header:
        raise InputError(
            f"{path}:1: the CSV header has no '{QUERY_COLUMN}' column (found: {', '.join(header) or 'nothing'})"
        )
    ordinal = 0
    first = reader.line_num + 1  # the line the next row starts on
    try:
        for row in reader:
            number, first = first, reader.line_num + 1
            if reader.line_num != number:
                # a query is one line: a quoted field that runs on is an unterminated quote, which
                # would otherwise swallow the lines after it into one query
                raise InputError(
                    f"{path}:{number}: a quoted field runs past the end of the line (an unterminated '\"'?); "
                    "each query must fit on one line"
                )
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                raise InputError(
                    f"{path}:{number}: {len(row)} fields but the header has {len(header)}; quote queries with commas"
                )
            record = dict(zip(header, row))
            record.setdefault(QUERY_COLUMN, "")
            ordinal += 1
            yield _record_to_query(path, number, record, ordinal)
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise InputError(
                f"{path}:{first}: a quoted field is never closed (an unterminated '\"'?); each query must fit on "
                "one line"
            ) from None
        raise InputError(f"{path}:{reader.line_num}: cannot parse CSV ({exc})") from None


def iter_query_file(path: str | Path) -> Iterator[Query]:
    """The queries of a file (plain text, CSV or JSONL by suffix), one at a time, as they are read.

    Memory holds one line; qids are not checked for repeats here (``QuerySet`` does that).

    Raises:
        InputError: the file is missing or unreadable, not UTF-8, malformed, or contains an empty
            query. The message names the file and line.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return _csv(path)
    if suffix in JSONL_SUFFIXES:
        return _jsonl(path)
    return _plain_text(path)


def load_query_file(path: str | Path) -> list[Query]:
    """Read a query file (plain text, CSV or JSONL by suffix) and validate it.

    Raises:
        InputError: the file is missing or unreadable, not UTF-8, malformed, contains an empty
            query or a duplicated qid, or holds no query at all. The message names the file and line.
    """
    path = Path(path)
    queries = list(iter_query_file(path))
    if not queries:
        raise InputError(f"query file {path} contains no query")
    seen: dict[str, Query] = {}
    for query in queries:
        if query.qid in seen:
            raise InputError(
                f"{query.where}: qid '{query.qid}' is used again (first at line {seen[query.qid].line}); qids must be unique"
            )
        seen[query.qid] = query
    return queries


def collect_queries(texts: list[str] | tuple[str, ...] = (), query_file: str | Path | None = None) -> list[Query]:
    """Queries from command-line sentences and/or a query file (sentences first).

    Raises:
        UsageError: neither sentences nor a file were given, or a sentence is empty.
        InputError: the query file is unusable (see ``load_query_file``), or a qid repeats.
    """
    queries = queries_from_texts(list(texts)) if texts else []
    if query_file is not None:
        from_file = load_query_file(query_file)
        taken = {q.qid for q in queries}
        renumbered = []
        for query in from_file:
            if query.auto_qid and queries:
                # numbered queries of the file continue after the command-line ones
                query = replace(query, qid=f"q{len(queries) + len(renumbered) + 1}")
            renumbered.append(query)
        for query in renumbered:
            if query.qid in taken:
                raise InputError(f"{query.where}: qid '{query.qid}' is also used by a command-line query")
        queries.extend(renumbered)
    if not queries:
        raise UsageError("give a query (r2cli search \"a red scene\") or a query file (--queries FILE)")
    return queries


@dataclass(frozen=True)
class QuerySet:
    """The queries of a run, from command-line sentences and/or a query file, streamed.

    ``open_queries`` reads the file once to check it (and to count and hash the queries); each
    iteration reads it again, so memory holds one batch of queries, not the file.
    """

    texts: tuple[str, ...]  # command-line sentences (first, qids q1, q2, ...)
    file: Path | None  # the query file, None without one
    count: int  # number of queries
    digest: str  # "sha256:<hex>" of every (qid, text) in order: equal digests, equal queries

    def __iter__(self) -> Iterator[Query]:
        yield from queries_from_texts(list(self.texts)) if self.texts else []
        if self.file is None:
            return
        offset = len(self.texts)
        for query in iter_query_file(self.file):
            if query.auto_qid and offset:
                query = replace(query, qid=f"q{offset + int(query.qid[1:])}")
            yield query

    def batches(self, size: int) -> Iterator[list[Query]]:
        """The queries in lists of at most ``size``, in order."""
        batch: list[Query] = []
        for query in self:
            batch.append(query)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def head(self, n: int) -> list[Query]:
        """The first ``n`` queries."""
        out: list[Query] = []
        for query in self:
            if len(out) >= n:
                break
            out.append(query)
        return out


def open_queries(texts: list[str] | tuple[str, ...] = (), query_file: str | Path | None = None) -> QuerySet:
    """Check command-line sentences and a query file (sentences first) without holding the file.

    Raises:
        UsageError: neither sentences nor a file were given, or a sentence is empty.
        InputError: the query file is unusable (missing, not UTF-8, malformed, an empty query, no
            query at all) or a qid repeats; the message names the file and line.
    """
    import hashlib

    texts = tuple(texts or ())
    if not texts and query_file is None:
        raise UsageError("give a query (r2cli search \"a red scene\") or a query file (--queries FILE)")
    queries = QuerySet(texts=texts, file=Path(query_file) if query_file is not None else None, count=0, digest="")
    digest = hashlib.sha256()
    seen: dict[str, str] = {}
    count = 0
    for query in queries:
        if query.qid in seen:
            first = seen[query.qid]
            if first.startswith("argument"):
                raise InputError(f"{query.where}: qid '{query.qid}' is also used by a command-line query")
            raise InputError(f"{query.where}: qid '{query.qid}' is used again (first at {first}); qids must be unique")
        seen[query.qid] = query.where if query.line is None else f"line {query.line}"
        digest.update(f"{query.qid}\t{query.text}\n".encode("utf-8"))
        count += 1
    if query_file is not None and count == len(texts):
        raise InputError(f"query file {query_file} contains no query")
    return replace(queries, count=count, digest="sha256:" + digest.hexdigest()[:24])
