"""Shared plumbing of the annotation readers: JSON / JSON Lines loading and field checks.

Every message names the file, the line (JSON Lines) or the record key (JSON objects), the field and the rule,
for example ``"val.jsonl, line 12: field 'relevant_windows' must be a list of [start, end] pairs, got 'x'"``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from r2cli.errors import InputError

__all__ = ["Location", "iter_json_records", "load_json_document"]


class Location:
    """Where a record came from, rendered as ``"<file>, line <n>"`` or ``"<file>, video '<key>'"``."""

    __slots__ = ("path", "line", "key")

    def __init__(self, path: str | Path, line: int | None = None, key: str | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.key = key

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.path}, line {self.line}"
        if self.key is not None:
            return f"{self.path}, video {self.key!r}"
        return self.path

    def fail(self, field: str | None, rule: str, value: Any = ...) -> InputError:
        """Build (not raise) an InputError for ``field`` at this location."""
        where = f"{self}: field {field!r}" if field else str(self)
        got = "" if value is ... else f", got {_short(value)}"
        return InputError(f"{where} {rule}{got}")

    # Field checks. Each returns the clean value or raises InputError naming the field.

    def require(self, record: dict, field: str) -> Any:
        if field not in record:
            raise InputError(f"{self}: required field {field!r} is missing")
        return record[field]

    def text(self, record: dict, field: str, *, required: bool = True) -> str | None:
        if field not in record or record[field] is None:
            if required:
                raise InputError(f"{self}: required field {field!r} is missing")
            return None
        value = record[field]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, "must be a non-empty string", value)
        return value

    def number(self, record: dict, field: str, *, required: bool = True, positive: bool = False) -> float | None:
        if field not in record or record[field] is None:
            if required:
                raise InputError(f"{self}: required field {field!r} is missing")
            return None
        value = as_number(record[field])
        if value is None:
            raise self.fail(field, "must be a finite number", record[field])
        if positive and value <= 0:
            raise self.fail(field, "must be > 0", record[field])
        return value

    def identifier(self, record: dict, field: str) -> int | str:
        value = self.require(record, field)
        if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not value):
            raise self.fail(field, "must be an integer or a non-empty string", value)
        return value


def as_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite JSON number (bools are not numbers), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _open_text(path: Path) -> str:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Name the line and column like every other error of these readers, not a byte offset.
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(
            f"{path}, line {line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {column}); save the file as UTF-8"
        ) from None


def iter_json_records(path: str | Path) -> Iterator[tuple[Location, dict]]:
    """Yield ``(location, object)`` for each record of a JSON Lines file (or of a JSON list).

    A file whose first non-blank character is ``[`` is read as one JSON list (nncore's ``dump`` writes
    ``.json`` that way); its records are located by index. Blank lines are skipped.

    Raises:
        InputError: the file is missing or unreadable, a line is not JSON, or a record is not an object.
    """
    path = Path(path)
    text = _open_text(path)
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
        for index, item in enumerate(items):
            location = Location(path, key=f"#{index}")
            if not isinstance(item, dict):
                raise location.fail(None, "must be a JSON object", item)
            yield location, item
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        location = Location(path, line=number)
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{location}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(item, dict):
            raise InputError(f"{location}: each line must be a JSON object, got {_short(item)}")
        yield location, item


def load_json_document(path: str | Path) -> Any:
    """Parse a whole JSON file.

    Raises:
        InputError: the file is missing, unreadable or not valid JSON.
    """
    path = Path(path)
    text = _open_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
