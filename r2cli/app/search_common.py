"""What text search (``r2cli.app.search``) and search by picture (``r2cli.app.search_visual``) share:
the options of ``r2cli search``, its result, the ``--clip`` spec, the coarse index and a reused run.

Both use cases import this module and neither imports the other's internals, so the two stay
apart (#23: ``search`` hands a picture search to ``search_visual``; nothing points back).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.app.model_run import ModelRunOptions
from r2cli.app.options import option
from r2cli.inference.names import FEATURE_DTYPE_CHOICES

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from r2cli.inference.search import SkippedVideo

PRECISIONS = ("fp32", "bf16", "fp16")
# Windows per query the fine stage grounds when --candidates is not given (all of them when the archive
# has fewer). Measured (benchmarks/RESULTS-search.md): a window's video side costs ~0.5 s on the 2-core
# CPU and ~0.1 ms on an H100, so these keep one query over 100 video-hours under 30 s on the CPU.
DEFAULT_CANDIDATES = {"cpu": 40, "cuda": 2000}
# a search's staged files -> their keys in SearchResult.files
FILE_KEYS = {"moments.parquet": "moments", "saliency.parquet": "saliency", "predictions_official.jsonl": "official",
             "run.json": "manifest"}


def default_candidates(device: str) -> int:
    """Windows per query kept by the coarse stage when ``candidates`` is not given."""
    return DEFAULT_CANDIDATES["cuda" if str(device).startswith("cuda") else "cpu"]


@dataclass(frozen=True)
class SearchOptions(ModelRunOptions):
    """Everything that shapes a search. ``None``: decided at run time (the preset, the device).

    The video filters, run folder, models, windows and Ray are ``ModelRunOptions``' fields; these are
    a search's own.
    """

    section = "search"

    queries: tuple[str, ...] = option((), help="Sentences to search for.", flag="QUERY")
    queries_file: Path | None = option(
        None, help="Query file: text (one per line), .csv or .jsonl with qid/query columns.", flag="--queries",
        exists=True)
    # search by picture (#20.2): r2cli.app.search_visual; CLIP image similarity only, no R2-Tuning
    image: tuple[Path, ...] = option(
        (), help="A still (JPEG, PNG ...) to find the shots that look like it (repeat). CLIP image similarity "
                 "only: R2-Tuning grounds sentences and is not run.", flag="--image", exists=True)
    clip: tuple[str, ...] = option(
        (), help="A video, or a range VIDEO:START-END (seconds or m:ss), to find the shots that look like it "
                 "(repeat). CLIP image similarity only: R2-Tuning is not run.", flag="--clip",
        check=lambda value: clip_spec_rule(value))
    match_margin: float = option(
        0.1, help="Image and clip queries: a clip matches when its CLIP similarity is within this of the query's best "
                  "clip in the archive; runs of matching clips are the moments.", minimum=0, maximum=2)
    min_run: int = option(1, help="Image and clip queries: consecutive matching clips a moment needs.", minimum=1)
    candidates: int | None = option(
        None, help="Windows per query that R2-Tuning grounds, best by CLIP similarity "
        "(default 40 on a CPU, 2000 on a GPU; all when fewer).", minimum=1)
    top_k: int = option(10, help="Moments per query kept, ranked across videos.", minimum=1)
    min_score: float | None = option(None, help="Drop moments scoring below this.")
    chunk_windows: int | None = option(None, help="Windows whose video side is computed at once.", minimum=1,
                                       job=False)
    precision: str = option("fp32", help="fp32 (official), or bf16/fp16 autocast on a GPU.", choices=PRECISIONS)
    query_batch: int = option(256, help="Queries embedded and grounded together; memory holds one batch.",
                              minimum=1)
    save_saliency: bool = option(True, help="Write saliency.parquet.")
    feature_dtype: str = option(
        "auto", choices=FEATURE_DTYPE_CHOICES,
        help="Which stored layer tokens to read: auto (float16 where a video has both), float16, or int8 "
             "(indexed with --feature-dtype int8).")
    exact: bool = option(False, help="Score every clip embedding in the coarse stage (brute force), even where "
                                     "the approximate coarse index would be used.")

    def check(self) -> tuple[tuple[str, ...], str] | None:
        visual = bool(self.image or self.clip)
        if visual and (self.queries or self.queries_file is not None):
            return (("image", "clip", "queries"),
                    "{0}/{1} and sentences ({2}) need separate runs: pictures are matched by CLIP only")
        if visual and self.format == "official":
            return ("format", "image", "clip"), ("{0} official needs sentences (R2-Tuning's predictions); "
                                                 "{1} and {2} queries write parquet only")
        if not visual and not self.queries and self.queries_file is None:
            return ("queries", "queries_file"), "{0} or {1}: give at least one query (a sentence or a query file)"
        return super().check()


# -- --clip VIDEO:START-END ------------------------------------------------------------------------

_TIME = r"\d+(?::\d{1,2})?(?:\.\d+)?"
_RANGE = re.compile(rf"^(?P<video>.+?):(?P<start>{_TIME})-(?P<end>{_TIME})$")


def _seconds(text: str) -> float:
    """``"75"``, ``"75.5"``, ``"1:15"`` or ``"1:15.5"`` in seconds."""
    if ":" in text:
        minutes, seconds = text.split(":", 1)
        return int(minutes) * 60 + float(seconds)
    return float(text)


def parse_clip_spec(spec: str) -> tuple[tuple[str, float, float | None] | None, str | None]:
    """``VIDEO`` or ``VIDEO:START-END`` -> ((video, start s, end s or None), None), or (None, the rule broken).

    An existing file whose name looks like a range is taken whole.
    """
    text = str(spec)
    match = _RANGE.match(text)
    if match is None or Path(text).is_file():
        return (text, 0.0, None), None
    start, end = _seconds(match["start"]), _seconds(match["end"])
    if ":" in match["start"] and float(match["start"].split(":", 1)[1]) >= 60 or \
            ":" in match["end"] and float(match["end"].split(":", 1)[1]) >= 60:
        return None, f"{text!r}: seconds of m:ss must be below 60"
    if end <= start:
        return None, f"{text!r}: END ({end:g} s) must be after START ({start:g} s)"
    return (match["video"], start, end), None


def resolve_clip_specs(specs: tuple[str, ...], base: Path) -> tuple[str, ...]:
    """``specs`` with each relative video path taken from ``base`` (a job file's folder); ranges kept."""
    resolved = []
    for spec in specs:
        parsed, _ = parse_clip_spec(spec)
        if parsed is None or Path(parsed[0]).is_absolute():
            resolved.append(spec)
            continue
        video = str(base / parsed[0])
        resolved.append(video + spec[len(parsed[0]):])
    return tuple(resolved)


def clip_spec_rule(value: tuple[str, ...]) -> str | None:
    """The rule of ``--clip``: each value is VIDEO or VIDEO:START-END with START < END."""
    for spec in value or ():
        problem = parse_clip_spec(spec)[1]
        if problem:
            return f"must be VIDEO or VIDEO:START-END (seconds or m:ss): {problem}"
    return None


# -- the result -------------------------------------------------------------------------------------

@dataclass
class SearchResult:
    """What ``run_search`` did and where its outputs are."""

    run_id: str  # the run's id (folder name under runs/ unless ``out`` was given)
    out_dir: Path  # the run folder
    counts: dict[str, int]  # queries, videos_selected, videos_searched, videos_skipped, windows, pairs, moments, ...
    timings: dict[str, float]  # seconds per stage: catalog, model, features, search, write, total
    files: dict[str, Path]  # "moments", "saliency", "official", "manifest" -> path
    skipped: list["SkippedVideo"] = field(default_factory=list)  # videos without usable features
    warnings: list[str] = field(default_factory=list)  # what the reporter was warned about
    model: dict[str, Any] = field(default_factory=dict)  # checkpoint, preset, CLIP weights and head widths
    settings: dict[str, Any] = field(default_factory=dict)  # what run.json records (fps, windows, NMS ...)
    resumed: bool = False  # True when a finished run with the same settings was returned as is

    @functools.cached_property
    def moments(self) -> "pd.DataFrame":
        """The rows of moments.parquet (read on first use: a run over many queries holds none in memory)."""
        from r2cli.outputs import read_results

        return read_results(self.files["moments"], kind="moments").df

    def preview(self, queries: int) -> "pd.DataFrame":
        """The moments of the first ``queries`` queries, reading only as much of the file as needed."""
        import pandas as pd
        import pyarrow.parquet as pq

        if "moments" in self.__dict__:
            frame = self.moments
            return frame[frame["query_id"].isin(list(dict.fromkeys(frame["query_id"]))[:queries])]
        parts, seen = [], []
        handle = pq.ParquetFile(self.files["moments"])
        for i in range(handle.num_row_groups):
            part = handle.read_row_group(i).to_pandas()
            for qid in dict.fromkeys(part["query_id"]):
                if qid not in seen:
                    seen.append(qid)
            parts.append(part)
            if len(seen) > queries:
                break
        if not parts:
            return handle.read().to_pandas()
        frame = pd.concat(parts, ignore_index=True)
        return frame[frame["query_id"].isin(seen[:queries])].reset_index(drop=True)



def load_coarse_index(workspace, options: SearchOptions, features: list, feature_settings, warn):
    """The coarse index of the feature set the selected ``features`` were read from (None: none, or ``--exact``).

    An unreadable index, or no faiss, is a warning and an exact scan, never a failed search. Text and
    picture searches (``r2cli.app.search_visual``) load it here.
    """
    from r2cli.errors import FeatureError, MissingDependencyError

    if options.exact:
        return None
    from r2cli.features.coarse_index import load_index

    try:
        # the index of the feature set the search reads (an int8-only archive has its own key)
        keys = {stored.settings.key() for stored in features}
        key = keys.pop() if len(keys) == 1 else feature_settings.key()
        return load_index(workspace.features_dir, key)
    except (FeatureError, MissingDependencyError) as exc:
        warn(f"coarse index not used, scoring exactly: {exc}")
        return None



def resumed_result(out_dir: Path, manifest: dict[str, Any], skipped: list) -> SearchResult:
    """The result of a finished run with the same settings, reused as is (``resume``)."""
    files = {name: out_dir / filename for name, filename in (manifest.get("files") or {}).items()}
    files["manifest"] = out_dir / "run.json"
    return SearchResult(
        run_id=str(manifest.get("run_id")), out_dir=out_dir, counts=dict(manifest.get("counts") or {}),
        timings=dict(manifest.get("timings") or {}), files=files, skipped=skipped,
        model=dict(manifest.get("model") or {}), settings=dict(manifest.get("settings") or {}), resumed=True,
    )




def search_result(published: Any, log: Any, *, skipped: list, model: dict[str, Any],
                  settings: dict[str, Any]) -> SearchResult:
    """The ``SearchResult`` of a published run (``r2cli.app.model_run.Published``), or of the reused one."""
    if published.resumed:
        return resumed_result(published.out_dir, published.previous, skipped)
    return SearchResult(run_id=published.run_id, out_dir=published.out_dir, counts=published.counts,
                        timings=published.timings, files=published.files, skipped=skipped, warnings=log.warnings,
                        model=model, settings=settings)
