"""Cut clips, reels and editor timelines out of source videos with the real ffmpeg.

The work is split along its seams; this module gathers the public names for library callers:

* ``r2cli.media.naming``: name templates, slugs, safe file names, partial-file names;
* ``r2cli.media.segments``: ``Segment``, the checks against the sources, ``CutReport``,
  rows of a results file as segments;
* ``r2cli.media.clips``: one clip per segment (accurate or stream copy);
* ``r2cli.media.reels``: one reel from many segments (shared with ``summarize --reel``);
* ``r2cli.media._process``: running ffmpeg (process group, death with the parent, timeouts)
  and publishing outputs atomically.

The use case (options, defaults, rules, the catalog guard) and its library form ``cut_results``
are ``r2cli.app.cut``.
"""

from __future__ import annotations

from r2cli.media._process import default_jobs, run_ffmpeg
from r2cli.media.clips import cut_segments
from r2cli.media.naming import (
    DEFAULT_TEMPLATE,
    MEDIA_FORMATS,
    OUTPUT_COMMENT,
    OUTPUT_MARKER,
    TEMPLATE_FIELDS,
    render_name,
    safe_filename,
    slugify,
)
from r2cli.media.reels import make_reel
from r2cli.media.segments import ClipOutcome, CutReport, Segment, check_segments, segments_from_results

__all__ = [
    "DEFAULT_TEMPLATE", "MEDIA_FORMATS", "OUTPUT_COMMENT", "OUTPUT_MARKER", "TEMPLATE_FIELDS", "ClipOutcome",
    "CutReport", "Segment", "check_segments", "cut_segments", "default_jobs", "make_reel",
    "render_name", "run_ffmpeg", "safe_filename", "segments_from_results", "slugify",
]
