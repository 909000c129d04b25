"""Column definitions of the Parquet files r2cli writes (moments, saliency, summary).

Plain data, no pyarrow import: the pyarrow schemas are built from these tables in
``r2cli.outputs.io`` when a file is actually written or read.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 2
"""The newest schema version of any kind (``KIND_VERSIONS`` holds each kind's own)."""

KIND_VERSIONS = {"moments": 2, "saliency": 1, "summary": 1, "duplicates": 1}
"""Each kind's schema version, bumped when a column is added, renamed, removed or changes type.
moments 2: ``query_kind`` (#20.2); version-1 files are read with ``query_kind = "text"``."""

VERSION_KEY = "r2cli.schema_version"
KIND_KEY = "r2cli.kind"
METADATA_PREFIX = "r2cli."


@dataclass(frozen=True)
class Column:
    name: str  # column name in the Parquet file
    type: str  # one of: string, int64, int32, float64, float32, bool (plain Parquet types)
    nullable: bool  # whether nulls are allowed
    doc: str  # one line for the README table
    since: int = 1  # the kind's schema version that added it: older files lack it and read as ``default``
    default: str | None = None  # value filled in when rows (or an older file) lack the column


MOMENTS = (
    Column("run_id", "string", False, "Run that produced the row (folder name under the workspace's runs/)."),
    Column("query_id", "string", False, "Query id (from the query file, or q1, q2, … in order)."),
    Column("query", "string", False, "Query text as given (before CLIP truncation)."),
    Column("video_id", "int64", True, "Catalog id of the video (null when the video is not in a catalog)."),
    Column("path", "string", False, "Absolute path of the source video."),
    Column("start_s", "float64", False, "Moment start in seconds from the start of the video."),
    Column("end_s", "float64", False, "Moment end in seconds (> start_s)."),
    Column("score", "float64", False, "Grounding score; higher is better; comparable within one run."),
    Column("rank_in_query", "int32", False, "1-based rank of the moment among all moments of its query."),
    Column("rank_in_video", "int32", False, "1-based rank among the moments of the same query and video."),
    Column("model", "string", False, "Model checkpoint id (file hash or registry tag)."),
    Column("preset", "string", True, "Preset name the model was configured with."),
    Column("query_kind", "string", False, "What the query is: text (a sentence), image (a still) or clip (a video "
           "range).", since=2, default="text"),
)

SALIENCY = (
    Column("run_id", "string", False, "Run that produced the row."),
    Column("query_id", "string", False, "Query id."),
    Column("video_id", "int64", True, "Catalog id of the video (null outside a catalog)."),
    Column("path", "string", False, "Absolute path of the source video."),
    Column("clip_index", "int32", False, "0-based index of the clip in the video's feature sequence."),
    Column("clip_start_s", "float64", False, "Clip start in seconds."),
    Column("clip_end_s", "float64", False, "Clip end in seconds."),
    Column("score", "float32", False, "Saliency of the clip for the query (model logit; higher is more salient)."),
)

SUMMARY = (
    Column("run_id", "string", False, "Run that produced the row."),
    Column("video_id", "int64", True, "Catalog id of the video (null outside a catalog)."),
    Column("path", "string", False, "Absolute path of the source video."),
    Column("query", "string", True, "Query the saliency was computed for (the title for query-free summaries)."),
    Column("segment_index", "int32", False, "0-based index of the segment in time order; segments tile the video."),
    Column("start_s", "float64", False, "Segment start in seconds."),
    Column("end_s", "float64", False, "Segment end in seconds."),
    Column("mean_saliency", "float64", False, "Mean clip saliency over the segment."),
    Column("selected", "bool", False, "Whether the knapsack put the segment in the summary."),
    Column("rank", "int32", False, "1-based rank of the segment by mean saliency within its video (ties: earlier first)."),
)

DUPLICATES = (
    Column("run_id", "string", False, "Run that produced the row."),
    Column("kind", "string", False, "identical (same file content), duplicate (covers both videos), contained "
           "(covers video a, found inside video b) or shared (footage both hold)."),
    Column("video_a_id", "int64", True, "Catalog id of video a."),
    Column("path_a", "string", False, "Absolute path of video a."),
    Column("video_b_id", "int64", True, "Catalog id of video b."),
    Column("path_b", "string", False, "Absolute path of video b."),
    Column("a_start_s", "float64", False, "Start of the shared footage in video a (s)."),
    Column("a_end_s", "float64", False, "End of the shared footage in video a (s)."),
    Column("b_start_s", "float64", False, "Start of the same footage in video b (s)."),
    Column("b_end_s", "float64", False, "End of the same footage in video b (s)."),
    Column("offset_s", "float64", False, "b_start_s - a_start_s: where video a's timeline sits in video b's."),
    Column("similarity", "float64", False, "Mean cosine of the aligned clips' CLIP embeddings (1.0 for identical)."),
    Column("matched_clips", "int32", False, "Aligned clips whose cosine reached --min-similarity (0 for identical)."),
    Column("votes", "int32", False, "Candidate clip pairs that voted for the offset (0 for identical)."),
)

KINDS: dict[str, tuple[Column, ...]] = {"moments": MOMENTS, "saliency": SALIENCY, "summary": SUMMARY,
                                        "duplicates": DUPLICATES}


def columns(kind: str) -> tuple[Column, ...]:
    """The required columns of ``kind`` ("moments", "saliency" or "summary").

    Raises:
        UsageError: ``kind`` is not one of the known kinds.
    """
    from r2cli.errors import UsageError

    try:
        return KINDS[kind]
    except KeyError:
        raise UsageError(f"output kind must be one of {', '.join(KINDS)}, got {kind!r}") from None


def kind_version(kind: str) -> int:
    """The schema version ``kind``'s files are written with.

    Raises:
        UsageError: ``kind`` is not one of the known kinds.
    """
    columns(kind)
    return KIND_VERSIONS[kind]


def markdown_table(kind: str) -> str:
    """The README table of ``kind``'s columns."""
    lines = ["| column | type | nulls | meaning |", "|---|---|---|---|"]
    for col in columns(kind):
        lines.append(f"| `{col.name}` | {col.type} | {'yes' if col.nullable else 'no'} | {col.doc} |")
    return "\n".join(lines)
