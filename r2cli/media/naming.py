"""File names of cut outputs: templates, slugs and safe file names, and the partial-file names.

A clip's name comes from ``--template`` (``render_name``); whatever a query or a video name
holds, the result is one safe file name that cannot leave its folder (``safe_filename``).
Outputs are written under a hidden partial name first (``partial_name``) that records the
writer's pid, so a later run can tell a leftover of a killed run from a file being written now.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from pathlib import Path
from string import Formatter
from typing import TYPE_CHECKING

from r2cli.errors import UsageError
from r2cli.paths import OUTPUT_COMMENT, OUTPUT_MARKER  # noqa: F401  (re-exported for the media modules)

if TYPE_CHECKING:
    from r2cli.media.segments import Segment

from r2cli.media.names import DEFAULT_TEMPLATE  # noqa: F401  (re-exported; defined there once, #23)
TEMPLATE_FIELDS = ("video", "query", "rank", "start", "end", "index", "score", "video_id", "query_id")
MEDIA_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
MAX_NAME_BYTES = 200  # below the usual 255-byte limit, leaving room for the temporary prefix
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


# ".<stem>.part-<pid>-<8 hex><suffix>": a file being written by process <pid>
_PARTIAL_RE = re.compile(r"^\..+\.part-(\d+)-[0-9a-f]{8}(\.[^.]+)?$")


def slugify(text: str | None, max_chars: int = 60) -> str:
    """A short file-name-safe slug: NFKC-normalised, lower-case, words joined by '-'.

    Letters of any script are kept; everything else (separators, dots, punctuation) becomes '-'.
    """
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text).lower()
    slug = re.sub(r"[^\w]+", "-", text, flags=re.UNICODE).strip("-_")
    return slug[:max_chars].strip("-_")


def safe_filename(name: str, *, max_bytes: int = MAX_NAME_BYTES, default: str = "clip") -> str:
    """Make ``name`` a single safe file name: it can never leave the folder it is joined to.

    NFKC-normalised (so full-width '／' becomes '/' before it is removed); path separators,
    control characters and ``<>:"|?*`` become '_'; runs of dots collapse to one; leading dots,
    dashes and spaces are removed (no hidden files, no option-like names); Windows device names
    get a '_' prefix; the result is cut to ``max_bytes`` of UTF-8 keeping the extension.
    """
    name = unicodedata.normalize("NFKC", name)
    name = "".join("_" if (ord(ch) < 32 or ch in '/\\<>:"|?*\x7f') else ch for ch in name)
    name = re.sub(r"\.{2,}", ".", name)
    name = re.sub(r"\s+", " ", name).strip()
    name = name.lstrip(". -").rstrip(". ")
    if not name:
        name = default
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or len(suffix) > 8:
        stem, suffix = name, ""
    if stem.split(".")[0].lower() in _WINDOWS_RESERVED:
        stem = "_" + stem
    ext = f".{suffix}" if suffix else ""
    budget = max_bytes - len(ext.encode("utf-8"))
    encoded = stem.encode("utf-8")
    if len(encoded) > budget:
        stem = encoded[:budget].decode("utf-8", "ignore").rstrip(". -")
    return (stem or default) + ext


def template_problem(template: str) -> str | None:
    """What is wrong with a name template (as the end of "--template ..."), or None."""
    try:
        parts = list(Formatter().parse(template))
    except ValueError as exc:
        return f"cannot be read: {exc}"
    for _, field_name, _spec, conversion in parts:
        if field_name is None:
            continue
        if field_name not in TEMPLATE_FIELDS:
            return f"field {{{field_name}}} is not known; use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}"
        if conversion:
            return f"field {{{field_name}!{conversion}}}: conversions are not allowed"
        if _spec and ("{" in _spec or "}" in _spec):
            return f"field {{{field_name}:{_spec}}}: nested fields in a format spec are not allowed"
        widths = [int(run) for run in re.findall(r"\d+", _spec or "")]
        if any(width > MAX_NAME_BYTES for width in widths):
            # a width or precision beyond any file name would only build a huge string (10**10: MemoryError)
            return (f"field {{{field_name}:{_spec[:40]}}}: width and precision must be at most {MAX_NAME_BYTES} "
                    "(a file name's length)")
    return None


def check_template(template: str) -> None:
    """Raises UsageError naming --template when ``template`` has an unknown field or a conversion."""
    problem = template_problem(template)
    if problem:
        raise UsageError(f"--template {problem}")


def render_name(template: str, segment: Segment, index: int, *, suffix_default: str = ".mp4") -> str:
    """The safe output file name of ``segment`` (``index`` is its 0-based position).

    Fields: {video} source file stem, {query} query slug, {rank}, {start}, {end} (seconds,
    e.g. ``{start:.1f}``), {index}, {score}, {video_id}, {query_id}. The result is passed
    through ``safe_filename``; without a known media extension ".mp4" is appended.

    Raises:
        UsageError: unknown field, a conversion, or a format spec that does not fit the value.
    """
    check_template(template)
    values = {
        "video": slugify(Path(segment.path).stem, 80) or "video",
        "query": slugify(segment.query) or "clip",
        "rank": segment.rank if segment.rank is not None else index + 1,
        "start": segment.start_s,
        "end": segment.end_s,
        "index": index,
        "score": segment.score if segment.score is not None else float("nan"),
        "video_id": segment.video_id if segment.video_id is not None else "",
        "query_id": slugify(segment.query_id) or "",
    }
    try:
        raw = template.format_map(values)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--template {template!r} cannot be filled in: {exc}") from None
    name = safe_filename(raw)
    if Path(name).suffix.lower() not in MEDIA_FORMATS:
        name = safe_filename(name + suffix_default)
    return name


def partial_name(final: Path, pid: int) -> Path:
    """The hidden name ``final`` is written under by process ``pid`` until it is complete."""
    return final.with_name(f".{final.stem}.part-{pid}-{uuid.uuid4().hex[:8]}{final.suffix}")


def partial_writer(name: str) -> int | None:
    """The pid recorded in a partial file's name, or None when ``name`` is not one."""
    match = _PARTIAL_RE.match(name)
    return int(match.group(1)) if match else None
