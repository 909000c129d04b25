"""Query lists for ``r2cli search``: sentences from the command line or from a file.

Three file formats, chosen by the file's suffix:

- ``.csv``: a header row with a ``query`` column and optionally a ``qid`` column;
- ``.jsonl`` / ``.ndjson``: one JSON object per line with a ``query`` key and optionally ``qid``;
- anything else: plain UTF-8 text, one query per line; blank lines and lines starting
  with ``#`` are skipped.

Every query keeps where it came from (file and line), so each error message can name it.
Pure standard library: the CLI can parse and validate a query file before torch loads.
"""

from __future__ import annotations

import csv
import io
import json
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
        queries.append(Query(qid=f"q{ordinal}", text=stripped, source=f"argument {ordinal}"))
    return queries


def _decode_lines(path: Path) -> list[str]:
    """Read ``path`` as UTF-8 (a BOM is allowed) and split it into lines, naming the line of a bad byte."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"query file {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"query file {path} is a folder, not a file") from None
    except OSError as exc:
        raise InputError(f"cannot read query file {path}: {exc.strerror or exc}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    raw_lines = data.split(b"\n")
    lines = []
    for number, raw in enumerate(raw_lines, start=1):
        try:
            lines.append(raw.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{path}:{number}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                "save the query file as UTF-8"
            ) from None
    if lines and lines[-1] == "":
        lines.pop()  # the newline at the end of the last line
    return lines


def _plain_text(path: Path, lines: list[str]) -> list[Query]:
    queries = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        queries.append(Query(qid=f"q{len(queries) + 1}", text=text, source=str(path), line=number))
    return queries


def _record_to_query(path: Path, number: int, record: dict, ordinal: int) -> Query:
    text = record.get(QUERY_COLUMN)
    if text is None:
        raise InputError(f"{path}:{number}: no '{QUERY_COLUMN}' value (each record needs a '{QUERY_COLUMN}')")
    if not isinstance(text, str):
        raise InputError(f"{path}:{number}: '{QUERY_COLUMN}' must be text, got {type(text).__name__}")
    if not text.strip():
        raise InputError(f"{path}:{number}: the query is empty")
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


def _jsonl(path: Path, lines: list[str]) -> list[Query]:
    queries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise InputError(f"{path}:{number}: each line must be a JSON object with a '{QUERY_COLUMN}' key")
        queries.append(_record_to_query(path, number, record, len(queries) + 1))
    return queries


def _csv(path: Path, lines: list[str]) -> list[Query]:
    if not lines:
        return []
    reader = csv.reader(io.StringIO("\n".join(lines) + "\n"))
    try:
        header = [name.strip() for name in next(reader)]
    except csv.Error as exc:
        raise InputError(f"{path}:1: cannot parse the CSV header ({exc})") from None
    if QUERY_COLUMN not in header:
        raise InputError(
            f"{path}:1: the CSV header has no '{QUERY_COLUMN}' column (found: {', '.join(header) or 'nothing'})"
        )
    queries = []
    try:
        for row in reader:
            number = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                raise InputError(
                    f"{path}:{number}: {len(row)} fields but the header has {len(header)}; quote queries with commas"
                )
            record = dict(zip(header, row))
            record.setdefault(QUERY_COLUMN, "")
            queries.append(_record_to_query(path, number, record, len(queries) + 1))
    except csv.Error as exc:
        raise InputError(f"{path}:{reader.line_num}: cannot parse CSV ({exc})") from None
    return queries


def load_query_file(path: str | Path) -> list[Query]:
    """Read a query file (plain text, CSV or JSONL by suffix) and validate it.

    Raises:
        InputError: the file is missing or unreadable, not UTF-8, malformed, contains an empty
            query or a duplicated qid, or holds no query at all. The message names the file and line.
    """
    path = Path(path)
    lines = _decode_lines(path)
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        queries = _csv(path, lines)
    elif suffix in JSONL_SUFFIXES:
        queries = _jsonl(path, lines)
    else:
        queries = _plain_text(path, lines)
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
