"""Parquet outputs: schema metadata, atomic writes, checked reads, property round trip."""

from __future__ import annotations

import math

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r2cli.errors import InputError, UsageError
from r2cli.outputs.schemas import kind_version
from r2cli.outputs import arrow_schema, columns, markdown_table, read_results, write_table


def moments_rows(n: int = 3) -> list[dict]:
    return [
        {
            "run_id": "run-1",
            "query_id": f"q{i % 2}",
            "query": "dog catches frisbee",
            "video_id": i,
            "path": f"/archive/v{i}.mp4",
            "start_s": 1.0 * i,
            "end_s": 1.0 * i + 2.5,
            "score": 0.9 - 0.1 * i,
            "rank_in_query": i + 1,
            "rank_in_video": 1,
            "model": "sha256:0123456789abcdef",
            "preset": "qvhighlights",
        }
        for i in range(n)
    ]


def test_schema_metadata_carries_version_and_kind(tmp_path):
    out = write_table("moments", pd.DataFrame(moments_rows()), tmp_path / "moments.parquet")
    meta = pq.read_schema(out).metadata
    assert meta[b"r2cli.schema_version"] == str(kind_version("moments")).encode()
    assert meta[b"r2cli.kind"] == b"moments"
    results = read_results(out)
    assert results.kind == "moments"
    assert list(results.df.columns) == [c.name for c in columns("moments")]
    kind, df = read_results(out)  # the two-value form of the contract
    assert kind == "moments" and len(df) == 3


def test_extra_metadata_and_extra_columns_are_kept(tmp_path):
    rows = moments_rows()
    for row in rows:
        row["window"] = 3
    out = write_table("moments", rows, tmp_path / "m.parquet", metadata={"settings": '{"k": 4}'})
    results = read_results(out)
    assert results.metadata["r2cli.settings"] == '{"k": 4}'
    assert list(results.df.columns)[-1] == "window"


def test_plain_parquet_types_only(tmp_path):
    for kind in ("moments", "saliency", "summary"):
        schema = arrow_schema(kind)
        for fld in schema:
            assert not isinstance(fld.type, pa.ExtensionType)
            assert fld.type in (pa.string(), pa.int64(), pa.int32(), pa.float64(), pa.float32(), pa.bool_())
        assert f"`{columns(kind)[0].name}`" in markdown_table(kind)


def test_duckdb_reads_the_file_when_installed(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    out = write_table("moments", moments_rows(), tmp_path / "m.parquet")
    connection = duckdb.connect()
    count = connection.execute(f"select count(*) from read_parquet('{out}') where score > 0.75").fetchall()[0][0]
    assert count == 2
    assert connection.execute(f"select * from read_parquet('{out}')").df().shape[0] == len(moments_rows())


def test_write_rejects_missing_columns_and_nulls(tmp_path):
    rows = moments_rows()
    for row in rows:
        del row["score"]
    with pytest.raises(UsageError, match="score"):
        write_table("moments", rows, tmp_path / "m.parquet")
    rows = moments_rows()
    rows[1]["path"] = None
    with pytest.raises(UsageError, match="'path' must not contain nulls"):
        write_table("moments", rows, tmp_path / "m.parquet")
    with pytest.raises(UsageError, match="kind must be one of"):
        write_table("clips", moments_rows(), tmp_path / "m.parquet")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_leaves_old_file_when_writing_fails(tmp_path, monkeypatch):
    out = write_table("moments", moments_rows(2), tmp_path / "m.parquet")

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(InputError, match="No space left"):
        write_table("moments", moments_rows(5), out)
    monkeypatch.undo()
    assert len(read_results(out).df) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["m.parquet"]


def test_foreign_parquet_is_rejected_with_a_clear_message(tmp_path):
    foreign = tmp_path / "foreign.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(foreign)
    with pytest.raises(InputError, match=r"foreign\.parquet: not an r2cli output"):
        read_results(foreign)


def test_missing_and_wrong_columns_are_named(tmp_path):
    table = pa.Table.from_pylist(moments_rows())
    table = table.drop_columns(["score", "rank_in_video"]).set_column(
        table.schema.get_field_index("start_s"), "start_s", pa.array(["a", "b", "c"])
    )
    table = table.replace_schema_metadata({"r2cli.kind": "moments", "r2cli.schema_version": "1"})
    bad = tmp_path / "bad.parquet"
    pq.write_table(table, bad)
    with pytest.raises(InputError) as info:
        read_results(bad)
    message = str(info.value)
    assert "bad.parquet" in message
    assert "missing column(s): score, rank_in_video" in message
    assert "start_s (expected float64, found string)" in message


def test_not_parquet_newer_version_and_wrong_kind(tmp_path):
    text = tmp_path / "notes.parquet"
    text.write_text("hello")
    with pytest.raises(InputError, match="not a Parquet file"):
        read_results(text)
    with pytest.raises(InputError, match="no such file"):
        read_results(tmp_path / "absent.parquet")
    out = write_table("moments", moments_rows(), tmp_path / "m.parquet")
    with pytest.raises(InputError, match="is a moments file, expected summary"):
        read_results(out, kind="summary")
    table = pq.read_table(out)
    meta = dict(table.schema.metadata)
    meta[b"r2cli.schema_version"] = str(kind_version("moments") + 1).encode()
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "new.parquet")
    with pytest.raises(InputError, match="upgrade r2cli"):
        read_results(tmp_path / "new.parquet")


_text = st.text(min_size=0, max_size=20)
_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
_saliency_row = st.fixed_dictionaries(
    {
        "run_id": _text,
        "query_id": _text,
        "video_id": st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
        "path": _text,
        "clip_index": st.integers(min_value=0, max_value=2**31 - 1),
        "clip_start_s": _finite,
        "clip_end_s": _finite,
        "score": st.floats(allow_nan=False, allow_infinity=False, width=32),
    }
)
_moments_row = st.fixed_dictionaries(
    {
        "run_id": _text,
        "query_id": _text,
        "query": _text,
        "video_id": st.one_of(st.none(), st.integers(min_value=0, max_value=2**62)),
        "path": _text,
        "start_s": _finite,
        "end_s": _finite,
        "score": _finite,
        "rank_in_query": st.integers(min_value=1, max_value=2**31 - 1),
        "rank_in_video": st.integers(min_value=1, max_value=2**31 - 1),
        "model": _text,
        "preset": st.one_of(st.none(), _text),
    }
)
_summary_row = st.fixed_dictionaries(
    {
        "run_id": _text,
        "video_id": st.one_of(st.none(), st.integers(min_value=0, max_value=2**40)),
        "path": _text,
        "query": st.one_of(st.none(), _text),
        "segment_index": st.integers(min_value=0, max_value=10_000),
        "start_s": _finite,
        "end_s": _finite,
        "mean_saliency": _finite,
        "selected": st.booleans(),
        "rank": st.integers(min_value=1, max_value=10_000),
    }
)

_duplicates_row = st.fixed_dictionaries(
    {
        "run_id": _text,
        "kind": st.sampled_from(["identical", "duplicate", "contained", "shared"]),
        "video_a_id": st.one_of(st.none(), st.integers(min_value=0, max_value=2**40)),
        "path_a": _text,
        "video_b_id": st.one_of(st.none(), st.integers(min_value=0, max_value=2**40)),
        "path_b": _text,
        **{name: _finite for name in ("a_start_s", "a_end_s", "b_start_s", "b_end_s", "offset_s", "similarity")},
        "matched_clips": st.integers(min_value=0, max_value=2**31 - 1),
        "votes": st.integers(min_value=0, max_value=2**31 - 1),
    }
)


def _same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b)) or b is pd.NA
    return a == b


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind_rows=st.one_of(
    st.tuples(st.just("moments"), st.lists(_moments_row, max_size=8)),
    st.tuples(st.just("saliency"), st.lists(_saliency_row, max_size=8)),
    st.tuples(st.just("summary"), st.lists(_summary_row, max_size=8)),
    st.tuples(st.just("duplicates"), st.lists(_duplicates_row, max_size=8)),
))
def test_round_trip_property(tmp_path, kind_rows):
    kind, rows = kind_rows
    out = write_table(kind, rows, tmp_path / f"{kind}.parquet")
    results = read_results(out)
    assert results.kind == kind
    back = results.df.astype(object).where(results.df.notna(), None).to_dict("records")
    assert len(back) == len(rows)
    for original, restored in zip(rows, back):
        for key, value in original.items():
            assert _same(value, restored[key]), (key, value, restored[key])


def test_large_ids_and_nulls_survive_exactly(tmp_path):
    rows = moments_rows(2)
    rows[0]["video_id"] = 2**62 + 1
    rows[1]["video_id"] = None
    df = read_results(write_table("moments", rows, tmp_path / "m.parquet")).df
    assert df["video_id"].iloc[0] == 2**62 + 1
    assert pd.isna(df["video_id"].iloc[1])


def test_moments_version_1_files_are_read_as_text_queries(tmp_path):
    """A moments file from before query_kind (schema version 1) reads with query_kind = 'text' (#20.2)."""
    import pyarrow as pa

    frame = pd.DataFrame(moments_rows())
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({b"r2cli.kind": b"moments", b"r2cli.schema_version": b"1"})
    pq.write_table(table, tmp_path / "old.parquet")
    results = read_results(tmp_path / "old.parquet")
    assert results.schema_version == 1
    assert list(results.df["query_kind"]) == ["text"] * len(frame)
    written = write_table("moments", frame, tmp_path / "new.parquet")  # rows without the column: text queries
    assert set(read_results(written).df["query_kind"]) == {"text"}
    assert pq.read_schema(written).metadata[b"r2cli.schema_version"] == b"2"
