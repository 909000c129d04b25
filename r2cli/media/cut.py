"""Cut clips, reels and editor timelines out of source videos with the real ffmpeg.

The work is split along its seams; this module gathers the public names for library callers:

* ``r2cli.media.naming``: name templates, slugs, safe file names, partial-file names;
* ``r2cli.media.segments``: ``Segment``, the checks against the sources, ``CutReport``,
  rows of a results file as segments;
* ``r2cli.media.clips``: one clip per segment (accurate or stream copy);
* ``r2cli.media.reels``: one reel from many segments (shared with ``summarize --reel``);
* ``r2cli.media._process``: running ffmpeg (process group, death with the parent, timeouts)
  and publishing outputs atomically.

The use case (options, defaults, rules, the catalog guard) is ``r2cli.app.cut``.
"""

from __future__ import annotations

import os
from typing import Any

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
from r2cli.progress import NULL_REPORTER, Reporter

__all__ = [
    "DEFAULT_TEMPLATE", "MEDIA_FORMATS", "OUTPUT_COMMENT", "OUTPUT_MARKER", "TEMPLATE_FIELDS", "ClipOutcome",
    "CutReport", "Segment", "check_segments", "cut_results", "cut_segments", "default_jobs", "make_reel",
    "render_name", "run_ffmpeg", "safe_filename", "segments_from_results", "slugify",
]


def cut_results(
    results_path: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    reporter: Reporter = NULL_REPORTER,
    **flags: Any,
) -> CutReport:
    """Cut the rows of a moments or summary file; ``flags`` are the fields of ``CutOptions``.

    The library form of ``r2cli cut`` without a catalog (only the rows' own sources are
    protected): ``cut_results(path, out, top=5, format="edl")`` equals
    ``run_cut(None, CutOptions.from_flags(results=path, out=out, top=5, format="edl"))``.

    Raises:
        UsageError: a flag breaks its rule (the message names it), see ``r2cli.app.cut.run_cut``.
    """
    from pathlib import Path

    from r2cli.app.cut import CutOptions, run_cut

    options = CutOptions.from_flags(
        results=Path(results_path), out=Path(out_dir) if out_dir is not None else None,
        **{k: Path(v) if k == "concat" and v is not None else v for k, v in flags.items()},
    )
    return run_cut(None, options, reporter=reporter)
