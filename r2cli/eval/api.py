"""Evaluation entry points: pure functions on official dicts, and :func:`evaluate_files` for the CLI."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r2cli.errors import InputError, UsageError
from r2cli.eval._align import align

__all__ = [
    "DATASETS",
    "EvaluationReport",
    "HEADLINE_KEYS",
    "evaluate_files",
    "evaluate_moments",
    "evaluate_tvsum",
    "evaluate_youtube",
    "normalize_domains",
]

from r2cli.eval.names import DATASETS  # noqa: E402  (re-exported)

# The numbers each benchmark's papers report (R2-Tuning README / spec §6); the CLI table shows these first.
HEADLINE_KEYS: dict[str, tuple[str, ...]] = {
    "qvhighlights": (
        "MR-full-R1@0.5",
        "MR-full-R1@0.7",
        "MR-full-mAP@0.5",
        "MR-full-mAP@0.75",
        "MR-full-mAP",
        "HL-min-VeryGood-mAP",
        "HL-min-VeryGood-Hit1",
    ),
    "charades": ("MR-full-R1@0.3", "MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mIoU"),
    "tacos": ("MR-full-R1@0.3", "MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mIoU"),
    "ego4d": ("MR-full-R1@0.3", "MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mIoU"),
    "user": ("MR-full-R1@0.3", "MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mIoU", "MR-full-mAP"),
    "youtube": ("mAP",),
    "tvsum": ("mAP",),
}

# Config-file short names of the YouTube domains (r2_tuning_youtube_<short>.py) accepted by --domain.
_YOUTUBE_ALIASES = {"gym": "gymnastics", "par": "parkour", "ska": "skating", "ski": "skiing", "sur": "surfing"}


@dataclass
class EvaluationReport:
    """What ``r2cli evaluate`` prints: the official metrics plus how the ids matched."""

    dataset: str
    metrics: dict[str, Any]  # the official structure ("brief" + buckets + HL levels; or per-domain + "mAP")
    brief: dict[str, Any]  # flat official keys (YouTube/TVSum: {"mAP": mean, "<domain>": {"mAP": x}})
    headline: tuple[str, ...]  # keys the papers report, present in ``brief``
    num_scored: int  # queries (or videos) scored
    missing: list[Any] = field(default_factory=list)  # GT ids without a prediction (skipped with allow_missing)
    extra: list[Any] = field(default_factory=list)  # predicted ids unknown to the GT (skipped with allow_missing)
    ignored: int = 0  # YouTube/TVSum: predictions for annotated videos outside the evaluated split/domains
    protocol: str | None = None


def _truth_dicts(ground_truth: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for record in ground_truth:
        if hasattr(record, "to_official"):
            out.append(record.to_official())
        elif isinstance(record, Mapping):
            out.append(dict(record))
        else:
            raise InputError(f"ground-truth records must be MomentAnnotation or mappings, got {type(record).__name__}")
    return out


def _evaluate_moments(
    predictions: Sequence[Mapping[str, Any]],
    ground_truth: Iterable[Any],
    protocol: str,
    allow_missing: bool,
) -> tuple[dict[str, Any], int, list, list]:
    from r2cli.eval.highlights import highlight_metrics
    from r2cli.eval.moments import moment_brief, moment_retrieval_metrics

    predictions = [dict(p) for p in predictions]
    truth = _truth_dicts(ground_truth)
    if not predictions:
        raise InputError("no predictions to evaluate")
    if not truth:
        raise InputError("the ground truth holds no query")
    predictions, truth, missing, extra = align(
        predictions, truth, prediction_key="qid", truth_key="qid", allow_missing=allow_missing
    )
    metrics: dict[str, Any] = {}
    brief: dict[str, Any] = {}
    if "pred_relevant_windows" in predictions[0]:
        buckets = moment_retrieval_metrics(predictions, truth, protocol)
        metrics.update(buckets)
        brief.update(moment_brief(buckets, protocol))
    has_clip_scores = all(isinstance(r.get("saliency_scores"), list) for r in truth)
    if "pred_saliency_scores" in predictions[0] and has_clip_scores:
        levels = highlight_metrics(predictions, truth)
        metrics.update(levels)
        for level, values in levels.items():
            for key, value in values.items():
                brief[f"{level}-{key.split('-')[1]}"] = value
    if not brief:
        raise InputError(
            "nothing to score: predictions need pred_relevant_windows, or pred_saliency_scores with ground truth "
            "that has relevant_clip_ids/saliency_scores (QVHighlights)"
        )
    result = {"brief": brief, **dict(sorted(metrics.items()))}
    return result, len(predictions), missing, extra


def evaluate_moments(
    predictions: Sequence[Mapping[str, Any]],
    ground_truth: Iterable[Any],
    *,
    protocol: str = "r2tuning",
    allow_missing: bool = False,
) -> dict[str, Any]:
    """Moment retrieval + (QVHighlights) highlight detection, exactly as the official evaluator reports them.

    Args:
        predictions: official submission dicts (``qid``, ``pred_relevant_windows``, ``pred_saliency_scores``),
            e.g. from :func:`r2cli.eval.formats.read_moment_predictions`.
        ground_truth: :class:`r2cli.data.grounding.MomentAnnotation` records or official GT dicts.
        protocol: ``"r2tuning"`` (R2-Tuning ``vtg_eval``: adds R1@0.3/0.35/0.4/0.45, R5 and mIoU) or
            ``"moment_detr"`` (QVHighlights ``standalone_eval``); shared keys are identical on QVHighlights.
        allow_missing: score the ids present in both instead of failing when they differ.

    Returns:
        ``{"brief": {...}, "HL-min-Fair": ..., "full": {...}, "long": ..., "middle": ..., "short": ...}`` with the
        official key names, values in percent rounded to 2 decimals.

    Raises:
        InputError: ids differ (without ``allow_missing``), repeat, or a record cannot be scored.
        UsageError: unknown protocol.
    """
    return _evaluate_moments(predictions, ground_truth, protocol, allow_missing)[0]


def normalize_domains(dataset: str, domains: Sequence[str] | None) -> list[str]:
    """Validated domain names for ``dataset`` (all of them when ``domains`` is empty).

    TVSum codes are case-insensitive (``bk`` -> ``BK``); YouTube accepts the config short names
    (``gym``, ``par``, ``ska``, ``ski``, ``sur``).

    Raises:
        UsageError: a domain that ``dataset`` does not have, or domains for a dataset without any.
    """
    from r2cli.data.splits import TVSUM_DOMAINS, YOUTUBE_DOMAINS

    if dataset not in ("youtube", "tvsum"):
        if domains:
            raise UsageError(f"--domain applies to youtube and tvsum only, not {dataset}")
        return []
    known = YOUTUBE_DOMAINS if dataset == "youtube" else TVSUM_DOMAINS
    if not domains:
        return list(known)
    out = []
    for name in domains:
        clean = name.strip()
        clean = clean.upper() if dataset == "tvsum" else _YOUTUBE_ALIASES.get(clean.lower(), clean.lower())
        if clean not in known:
            raise UsageError(f"--domain for {dataset} must be one of {', '.join(known)}, got {name!r}")
        if clean not in out:
            out.append(clean)
    return out


def _evaluate_domains(
    dataset: str,
    predictions: Sequence[Mapping[str, Any]],
    videos: Mapping[str, Any],
    domains: Sequence[str] | None,
    split: str,
    allow_missing: bool,
) -> tuple[dict[str, Any], int, list, list, int]:
    from r2cli.data.highlights import split_videos
    from r2cli.eval.domains import tvsum_domain_map, youtube_domain_map

    chosen = normalize_domains(dataset, domains)
    expected = [(domain, vid) for domain in chosen for vid in split_videos(dataset, videos, domain, split)]
    expected_ids = {vid for _, vid in expected}
    predictions = [dict(p) for p in predictions]
    unknown_or_kept = [p for p in predictions if p["vid"] not in videos or p["vid"] in expected_ids]
    ignored = len(predictions) - len(unknown_or_kept)
    truth = [{"vid": vid, "domain": domain} for domain, vid in expected]
    if not truth:
        raise InputError(f"no {split} video of {', '.join(chosen)} is in the annotation file")
    kept, truth, missing, extra = align(
        unknown_or_kept,
        truth,
        prediction_key="vid",
        truth_key="vid",
        allow_missing=allow_missing,
        what="video ids",
    )
    scores = {p["vid"]: (p["pred_saliency_scores"], p.get("_source", p["vid"])) for p in kept}
    metrics: dict[str, Any] = {}
    values = []
    for domain in chosen:
        pairs = []
        for record in truth:
            if record["domain"] != domain:
                continue
            video = videos[record["vid"]]
            predicted, source = scores[record["vid"]]
            if dataset == "youtube":
                if len(predicted) != video.num_clips:
                    raise InputError(
                        f"{source}: field 'pred_saliency_scores' must hold one score per clip of video "
                        f"{video.vid!r} ({video.num_clips}), got {len(predicted)}"
                    )
                pairs.append((video.match, predicted))
            else:
                if abs(len(predicted) - video.num_clips) >= 5:
                    raise InputError(
                        f"{source}: field 'pred_saliency_scores' has {len(predicted)} scores but video "
                        f"{video.vid!r} has {video.num_clips} annotated shots (they must differ by < 5)"
                    )
                pairs.append((video.scores, predicted[: video.num_clips]))
        if not pairs:
            continue  # allow_missing and no prediction in this domain
        value = youtube_domain_map(pairs) if dataset == "youtube" else tvsum_domain_map(pairs)
        values.append(value)
        metrics[domain] = {"mAP": round(value, 5)}
    result = {"mAP": round(sum(values) / len(values), 5), **metrics}
    return result, len(truth), missing, extra, ignored


def evaluate_youtube(
    predictions: Sequence[Mapping[str, Any]],
    videos: Mapping[str, Any],
    *,
    domains: Sequence[str] | None = None,
    split: str = "val",
    allow_missing: bool = False,
) -> dict[str, Any]:
    """YouTube Highlights mAP per domain (R2-Tuning/UMT protocol, 5 decimals) and their mean.

    Args:
        predictions: ``{"vid", "pred_saliency_scores"}`` dicts, one score per clip (``len(match)``).
        videos: :func:`r2cli.data.highlights.read_youtube_highlights` output.
        domains: a subset of the six domains (default all); ``split``: "val" (the reported one) or "train".
        allow_missing: score the videos that have predictions instead of failing.

    Returns:
        ``{"mAP": mean over domains, "dog": {"mAP": x}, ...}``.

    Raises:
        InputError: missing/extra/repeated video ids (without ``allow_missing``), wrong score counts.
        UsageError: unknown domain or split.
    """
    return _evaluate_domains("youtube", predictions, videos, domains, split, allow_missing)[0]


def evaluate_tvsum(
    predictions: Sequence[Mapping[str, Any]],
    videos: Mapping[str, Any],
    *,
    domains: Sequence[str] | None = None,
    split: str = "val",
    allow_missing: bool = False,
) -> dict[str, Any]:
    """TVSum top-5 mAP per category (R2-Tuning/UMT protocol, 5 decimals) and their mean.

    Predicted scores are truncated to the annotated shot count, as the official loader truncates the video;
    a count that differs from it by 5 or more is an error (the official loader asserts it).

    Returns:
        ``{"mAP": mean over categories, "BK": {"mAP": x}, ...}``.

    Raises:
        InputError: missing/extra/repeated video ids (without ``allow_missing``), wrong score counts.
        UsageError: unknown category or split.
    """
    return _evaluate_domains("tvsum", predictions, videos, domains, split, allow_missing)[0]


def evaluate_files(
    dataset: str,
    predictions_path: str | Path,
    ground_truth_path: str | Path,
    *,
    allow_missing: bool = False,
    domains: Sequence[str] | None = None,
    protocol: str = "r2tuning",
    split: str = "val",
) -> EvaluationReport:
    """Read a prediction file and a ground-truth file in the official formats and score them.

    Args:
        dataset: one of :data:`DATASETS`.
        predictions_path: JSON Lines submission (see :mod:`r2cli.eval.formats`).
        ground_truth_path: the benchmark's annotation file (QVHighlights/TACoS/Ego4D jsonl; Charades jsonl or
            the raw ``.txt``; ``youtube_anno.json``; ``tvsum_anno.json``) or the user's own jsonl.
        allow_missing: score the ids present in both files instead of failing.
        domains: YouTube/TVSum domains to score (default all).
        protocol: moment-retrieval protocol, ``"r2tuning"`` or ``"moment_detr"`` (see :func:`evaluate_moments`).
        split: YouTube/TVSum split to score, "val" (reported) or "train".

    Raises:
        UsageError: unknown dataset, domain, split or protocol, or a protocol other than "r2tuning" for
            youtube/tvsum (their evaluators have no protocol choice).
        InputError: unreadable files, invalid records, or ids that differ (without ``allow_missing``).
    """
    from r2cli.eval.formats import read_moment_predictions, read_saliency_predictions

    if dataset not in DATASETS:
        raise UsageError(f"--dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    if dataset in ("youtube", "tvsum"):
        if protocol != "r2tuning":
            raise UsageError(
                f"--protocol applies to moment retrieval (qvhighlights, charades, tacos, ego4d), not {dataset}"
            )
        from r2cli.data.highlights import read_tvsum, read_youtube_highlights

        videos = read_youtube_highlights(ground_truth_path) if dataset == "youtube" else read_tvsum(ground_truth_path)
        predictions = read_saliency_predictions(predictions_path)
        metrics, scored, missing, extra, ignored = _evaluate_domains(
            dataset, predictions, videos, domains, split, allow_missing
        )
        return EvaluationReport(
            dataset=dataset,
            metrics=metrics,
            brief=metrics,
            headline=HEADLINE_KEYS[dataset],
            num_scored=scored,
            missing=missing,
            extra=extra,
            ignored=ignored,
        )
    normalize_domains(dataset, domains)
    from r2cli.data.grounding import read_grounding_annotations

    truth = read_grounding_annotations(dataset, ground_truth_path)
    predictions = read_moment_predictions(predictions_path)
    metrics, scored, missing, extra = _evaluate_moments(predictions, truth, protocol, allow_missing)
    brief = metrics["brief"]
    return EvaluationReport(
        dataset=dataset,
        metrics=metrics,
        brief=brief,
        headline=tuple(k for k in HEADLINE_KEYS[dataset] if k in brief),
        num_scored=scored,
        missing=missing,
        extra=extra,
        protocol=protocol,
    )


