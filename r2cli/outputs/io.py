"""Writing and reading r2cli Parquet outputs (atomic writes, schema checks on read)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from r2cli._atomic import atomic_output
from r2cli.errors import InputError, UsageError
from r2cli.outputs.schemas import (
    KIND_KEY,
    KINDS,
    METADATA_PREFIX,
    SCHEMA_VERSION,
    VERSION_KEY,
    Column,
    columns,
    kind_version,
)


@dataclass
class Results:
    """An r2cli output file read back: its kind, its rows and its schema metadata.

    Unpacks as ``kind, df = read_results(path)`` (the two-value form of the contract).
    """

    kind: str  # "moments" | "saliency" | "summary"
    df: Any  # pandas.DataFrame with the kind's columns first (extra columns kept after them)
    metadata: dict[str, str] = field(default_factory=dict)  # r2cli.* keys of the schema metadata
    path: Path | None = None  # file it was read from

    @property
    def schema_version(self) -> int:
        return int(self.metadata.get(VERSION_KEY, KINDS_VERSION_FALLBACK.get(self.kind, SCHEMA_VERSION)))

    def __iter__(self) -> Iterator[Any]:
        return iter((self.kind, self.df))


KINDS_VERSION_FALLBACK = {kind: kind_version(kind) for kind in KINDS}  # a file without a version key


def _arrow_type(name: str):
    import pyarrow as pa

    return {
        "string": pa.string(),
        "int64": pa.int64(),
        "int32": pa.int32(),
        "float64": pa.float64(),
        "float32": pa.float32(),
        "bool": pa.bool_(),
    }[name]


def arrow_schema(kind: str, metadata: dict[str, str] | None = None):
    """The pyarrow schema of ``kind`` with ``r2cli.schema_version`` and ``r2cli.kind`` in its metadata.

    ``metadata`` adds more keys; each is stored under the ``r2cli.`` prefix.

    Raises:
        UsageError: unknown ``kind``.
    """
    import pyarrow as pa

    fields = [pa.field(c.name, _arrow_type(c.type), nullable=c.nullable) for c in columns(kind)]
    meta = {VERSION_KEY: str(kind_version(kind)), KIND_KEY: kind}
    for key, value in (metadata or {}).items():
        full = key if key.startswith(METADATA_PREFIX) else METADATA_PREFIX + key
        if full in (VERSION_KEY, KIND_KEY):
            raise UsageError(f"metadata key {key!r} is reserved")
        meta[full] = str(value)
    return pa.schema(fields, metadata=meta)


def _to_table(kind: str, data: Any, metadata: dict[str, str] | None):
    """Cast ``data`` (DataFrame, Arrow table or list of dicts) to the schema of ``kind``."""
    import pyarrow as pa

    schema = arrow_schema(kind, metadata)
    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, list):
        table = pa.Table.from_pylist(data) if data else schema.empty_table()
    else:
        try:
            table = pa.Table.from_pandas(data, preserve_index=False)
        except (TypeError, ValueError, pa.ArrowException) as exc:
            raise UsageError(f"cannot convert the {kind} rows to Arrow: {exc}") from None
    for col in columns(kind):  # a column added later (query_kind) takes its default when rows lack it
        if col.default is not None and col.name not in table.column_names:
            table = table.append_column(col.name, pa.array([col.default] * table.num_rows, type=pa.string()))
    missing = [c.name for c in columns(kind) if c.name not in table.column_names]
    if missing:
        raise UsageError(f"{kind} rows lack required column(s): {', '.join(missing)}")
    arrays, fields = [], []
    for col, target in zip(columns(kind), schema):
        array = table.column(col.name)
        try:
            array = array.cast(target.type) if array.type != target.type else array
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise UsageError(f"{kind} column {col.name!r} cannot be stored as {col.type}: {exc}") from None
        if not col.nullable and array.null_count:
            raise UsageError(f"{kind} column {col.name!r} must not contain nulls ({array.null_count} found)")
        arrays.append(array)
        fields.append(target)
    # Extra columns are kept after the required ones, as plain Parquet types only.
    for name in table.column_names:
        if name in {c.name for c in columns(kind)}:
            continue
        array = table.column(name)
        if pa.types.is_large_string(array.type):
            array = array.cast(pa.string())
        if isinstance(array.type, pa.ExtensionType):
            raise UsageError(f"{kind} column {name!r} has an extension type {array.type}; use a plain type")
        arrays.append(array)
        fields.append(pa.field(name, array.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=schema.metadata))


def write_table(kind: str, data: Any, path: str | os.PathLike, *, metadata: dict[str, str] | None = None) -> Path:
    """Write ``data`` as an r2cli ``kind`` Parquet file at ``path``, atomically.

    ``data`` is a pandas DataFrame, a pyarrow Table or a list of row dicts holding at
    least the kind's columns (extra columns are kept after them). The file is written
    to a temporary name in the same folder, flushed to disk and renamed over ``path``,
    so readers see either the old file or the complete new one. Compression: zstd.

    Raises:
        UsageError: unknown kind, missing column, a value that does not fit its column type,
            or a null in a non-nullable column.
        InputError: the folder cannot be written.
    """
    import pyarrow.parquet as pq

    target = Path(path)
    table = _to_table(kind, data, metadata)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_output(target) as tmp:
            pq.write_table(table, tmp, compression="zstd")
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target


def _type_matches(found, col: Column) -> bool:
    import pyarrow as pa

    expected = _arrow_type(col.type)
    if found == expected:
        return True
    # Files rewritten by other tools may widen strings or ints; accept the same family.
    if col.type == "string":
        return pa.types.is_string(found) or pa.types.is_large_string(found)
    if col.type in ("int32", "int64"):
        return pa.types.is_integer(found)
    if col.type in ("float32", "float64"):
        return pa.types.is_floating(found)
    return False


def check_schema(schema, path: str | os.PathLike, kind: str | None = None) -> str:
    """Check that an Arrow ``schema`` read from ``path`` is an r2cli output; return its kind.

    Raises:
        InputError: no r2cli metadata, unknown kind, a newer schema version, the wrong kind
            (when ``kind`` is given), or missing / wrongly typed columns (all named).
    """
    meta = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
    found_kind = meta.get(KIND_KEY)
    if found_kind is None:
        raise InputError(
            f"{path}: not an r2cli output (no {KIND_KEY!r} in the Parquet metadata); "
            f"expected a moments, saliency or summary file written by r2cli"
        )
    if found_kind not in KINDS:
        raise InputError(f"{path}: unknown r2cli output kind {found_kind!r} (known: {', '.join(KINDS)})")
    if kind is not None and found_kind != kind:
        raise InputError(f"{path}: is a {found_kind} file, expected {kind}")
    try:
        version = int(meta.get(VERSION_KEY, ""))
    except ValueError:
        raise InputError(f"{path}: {VERSION_KEY} must be an integer, got {meta.get(VERSION_KEY)!r}") from None
    newest = kind_version(found_kind)
    if version > newest:
        raise InputError(
            f"{path}: written with {found_kind} schema version {version}; this r2cli reads up to "
            f"version {newest} (upgrade r2cli)"
        )
    names = set(schema.names)
    # columns added after the file's version are filled in by read_results (query_kind of moments v1)
    missing = [c.name for c in columns(found_kind) if c.name not in names and not (c.since > version and c.default)]
    wrong = [
        f"{c.name} (expected {c.type}, found {schema.field(c.name).type})"
        for c in columns(found_kind)
        if c.name in names and not _type_matches(schema.field(c.name).type, c)
    ]
    problems = []
    if missing:
        problems.append("missing column(s): " + ", ".join(missing))
    if wrong:
        problems.append("wrong type(s): " + ", ".join(wrong))
    if problems:
        raise InputError(f"{path}: not a valid r2cli {found_kind} file; " + "; ".join(problems))
    return found_kind


def read_results(path: str | os.PathLike, kind: str | None = None) -> Results:
    """Read an r2cli Parquet output and check its schema.

    ``kind`` optionally demands one kind ("moments", "saliency" or "summary").

    Raises:
        InputError: the file is missing, is not Parquet, or is not an r2cli output of the
            expected kind (the message names the file and the missing or wrongly typed columns).
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = Path(path)
    if not source.is_file():
        raise InputError(f"{source}: no such file")
    try:
        schema = pq.read_schema(source)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{source}: not a Parquet file ({exc})") from None
    found_kind = check_schema(schema, source, kind)
    try:
        table = pq.read_table(source)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{source}: cannot read the Parquet data ({exc})") from None
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items() if k.startswith(b"r2cli.")}
    for col in columns(found_kind):  # an older file: a column added since takes its default
        if col.name not in table.column_names and col.default is not None:
            table = table.append_column(col.name, pa.array([col.default] * table.num_rows, type=pa.string()))
    required = [c.name for c in columns(found_kind)]
    ordered = required + [n for n in table.column_names if n not in required]
    # int64 columns (video_id) may hold nulls: pandas' nullable Int64 keeps ids above 2**53 exact.
    df = table.select(ordered).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    return Results(kind=found_kind, df=df, metadata=meta, path=source)



class TableWriter:
    """Writes an r2cli ``kind`` Parquet file in parts (one row group per ``write``), for results too
    large to hold at once. The file is written where it is asked to be (a staging path of
    ``r2cli.outputs.publish.RunFolder``); ``close`` finishes it (an empty file when nothing was written).

    Raises (``write``/``close``):
        UsageError: rows that do not fit the kind's schema (see ``write_table``).
        InputError: the file cannot be written (a full disk), naming it.
    """

    def __init__(self, kind: str, path: str | os.PathLike, *, metadata: dict[str, str] | None = None) -> None:
        self.kind = kind
        self.path = Path(path)
        self.metadata = metadata
        self.rows = 0
        self._writer = None
        self._schema = None

    def write(self, data: Any) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = _to_table(self.kind, data, self.metadata)
        if not table.num_rows and self._writer is not None:
            return
        try:
            if self._writer is None:
                self._schema = table.schema
                self._writer = pq.ParquetWriter(self.path, self._schema, compression="zstd")
            elif table.schema != self._schema:
                table = table.cast(self._schema)
            self._writer.write_table(table)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"cannot write {self.path}: {getattr(exc, 'strerror', None) or exc}") from None
        self.rows += table.num_rows

    def close(self) -> Path:
        import pyarrow as pa

        if self._writer is None:
            self.write([])
        try:
            self._writer.close()
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"cannot write {self.path}: {getattr(exc, 'strerror', None) or exc}") from None
        return self.path
