"""Near-duplicate footage from stored per-clip CLIP embeddings, without comparing every pair of clips.

Stages (all numpy, vectorised; memory is a few bytes per clip beyond the embeddings, which may be
memory-mapped feature files):

1. **Signatures.** Each clip's embedding, centred on the archive's mean embedding (CLIP image
   embeddings share a common direction; centring spreads them over the sphere), is projected on
   ``bands x rows`` fixed random hyperplanes (seeded, ``SIGNATURE_SEED``): the sign bits are a
   SimHash, two clips at angle ``t`` agree on a bit with probability ``1 - t/pi``.
2. **Banding (LSH).** The bits are cut into ``bands`` keys of ``rows`` bits. In each band the keys
   are sorted; clips sharing a key in different videos are candidate pairs. Two refinements keep
   the candidates few: within a video only the first clip of a run of equal keys takes part (a
   static shot of 100 clips counts once, and its copy's run lines up with it), and a bucket of
   more than ``max_bucket`` clips is dropped (black frames, colour bars, a channel's ident: footage
   seen everywhere says nothing about which videos are copies; a clip in such a bucket in
   ``COMMON_BANDS`` bands takes part in none). Cost: two sorts per band, so
   O(N log N) in the archive's N clips instead of the O(N^2) of comparing all pairs.
3. **Offset voting.** Each candidate pair of clips votes for (video a, video b, offset = clip in
   b - clip in a). A copy, trimmed or not, puts many votes on one offset; chance collisions
   scatter. Offsets whose votes, counted with their neighbours (+-1 clip), reach ``min_votes`` are
   kept (local maxima only, at most ``max_offsets`` per pair of videos).
4. **Verification.** Offsets whose aligned clips' signatures agree on fewer than
   ``PREFILTER_AGREEMENT`` of the bits in every stretch of ``min_clips`` are dropped (in memory,
   cheap); for each other offset the exact cosine of the stored embeddings of every
   aligned clip is computed; runs of clips whose cosine, averaged over ``max_gap`` clips each side,
   reaches ``min_similarity`` (gaps of up to ``max_gap`` clips bridged, neighbouring runs joined
   while the whole stretch still averages ``min_similarity``, ends moved to the outermost clips
   that match on their own) and at least ``min_clips`` long become segment pairs.

A segment pair is ``duplicate`` when it covers at least ``coverage`` of both videos (a re-encode,
another resolution, letterboxed), ``contained`` when it covers that much of one of them (video a is
then the covered one: a trimmed copy inside its source), else ``shared`` (footage both hold, as in a
compilation).

Where an approximate nearest-neighbour index exists, stage 2 is the one to replace: any source of
candidate (clip, clip) pairs feeds ``vote_offsets`` unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from r2cli.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

SIGNATURE_SEED = 20260  # the hyperplanes: fixed, so the same archive gives the same pairs every run
KINDS = ("duplicate", "contained", "shared")
PREFILTER_AGREEMENT = 0.65  # signature bits that aligned clips must share (on average) to be checked exactly
COMMON_BANDS = 2  # a clip in a bucket above max_bucket in this many bands is footage seen everywhere
_CHUNK_CLIPS = 65536  # clips projected at once (chunk x D float32 + chunk x bits)
_MEAN_SAMPLE = 200_000  # clips the archive's mean embedding is estimated from
_OFFSET_BITS = 21  # offsets packed into a vote key: |offset| < 2^20 clips (6 days at 2 fps)


@dataclass(frozen=True)
class DuplicateParams:
    """The knobs of ``find_duplicates``; defaults and rules live in ``r2cli.app.duplicates.DuplicatesOptions``."""

    bands: int  # LSH bands (more: higher recall, more candidates)
    rows: int  # bits per band, 1..32 (more: fewer chance collisions, lower recall per band)
    max_bucket: int  # a band bucket with more clips than this is ignored (footage seen everywhere)
    min_votes: int  # votes (with the +-1 neighbours) an offset needs to be verified
    max_offsets: int  # offsets verified per pair of videos at most (the best voted)
    min_similarity: float  # cosine of aligned clips counted as matching
    min_clips: int  # shortest matching run reported, in clips
    max_gap: int  # non-matching clips bridged inside a run
    coverage: float  # fraction of a video a run must cover to call it whole

    def __post_init__(self) -> None:
        if not 1 <= self.rows <= 32:
            raise UsageError(f"rows must be in [1, 32], got {self.rows}")
        for name in ("bands", "max_bucket", "min_votes", "max_offsets", "min_clips"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_bucket < 2:
            raise UsageError(f"max_bucket must be >= 2, got {self.max_bucket}")
        if self.max_gap < 0:
            raise UsageError(f"max_gap must be >= 0, got {self.max_gap}")


@dataclass(frozen=True)
class SegmentPair:
    """Footage found in two videos: clips ``[a_start, a_end)`` of ``a`` match ``[b_start, b_end)`` of ``b``."""

    a: int  # index of video a in the input
    b: int  # index of video b
    a_start: int  # first clip in a
    a_end: int  # one past the last clip in a
    b_start: int  # first clip in b (= a_start + offset)
    b_end: int
    offset: int  # clip of b - clip of a
    similarity: float  # mean cosine of the aligned clips of the run
    matched: int  # clips of the run whose cosine reached min_similarity
    votes: int  # votes of the offset (with its neighbours)
    kind: str  # "duplicate" | "contained" | "shared"


@dataclass
class DuplicateSearch:
    """What ``find_duplicates`` found and what it cost."""

    pairs: list[SegmentPair]
    counts: dict[str, int]  # clips, videos, candidate clip pairs, voted offsets, verified offsets, pairs
    timings: dict[str, float]  # seconds: mean, signatures, banding, voting, verify


def find_duplicates(embeddings: Sequence["np.ndarray"], params: DuplicateParams, *,
                    progress: Callable[[str, int, int], None] | None = None) -> DuplicateSearch:
    """Segment pairs shared by videos, from each video's clip embeddings ``[T, D]`` (one array per video).

    Arrays may be float16 memory maps (the feature store's ``embed``); rows that are not finite
    never match. ``progress(stage, done, total)`` is called as the stages advance.

    Raises:
        UsageError: the arrays disagree in width, or are not two-dimensional.
    """
    import time

    import numpy as np

    report = progress or (lambda stage, done, total: None)
    timings: dict[str, float] = {}
    lengths = np.array([int(e.shape[0]) for e in embeddings], dtype=np.int64)
    widths = {int(e.shape[1]) for e in embeddings if e.ndim == 2}
    if any(e.ndim != 2 for e in embeddings) or len(widths) > 1:
        raise UsageError(f"embeddings must be [clips, width] arrays of one width, got widths {sorted(widths)}")
    total = int(lengths.sum())
    counts = {"videos": len(embeddings), "clips": total, "candidate_pairs": 0, "voted_offsets": 0,
              "prefiltered_offsets": 0, "verified_offsets": 0, "pairs": 0}
    if total == 0 or len(embeddings) < 2:
        return DuplicateSearch(pairs=[], counts=counts, timings=timings)
    width = widths.pop()

    tick = time.perf_counter()
    mean = _mean_embedding(embeddings, width)
    timings["mean_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    keys, valid = signatures(embeddings, mean, params.bands, params.rows, report)
    timings["signatures_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    video_of = np.repeat(np.arange(len(embeddings), dtype=np.int64), lengths)  # [N]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    clip_of = np.arange(total, dtype=np.int64) - starts[video_of]  # [N] clip index within its video
    # footage seen everywhere: clips in a crowded bucket in COMMON_BANDS bands or more take part in no band
    # (a crowded bucket split in two by a few noisy bits would otherwise still pair them)
    crowded = np.zeros(total, dtype=np.int32)
    for band in range(params.bands):
        crowded += bucket_sizes(keys[band], video_of, valid) > params.max_bucket
    usable = valid & (crowded < min(COMMON_BANDS, params.bands))
    counts["common_clips"] = int((valid & ~usable).sum())
    vote_keys: list[np.ndarray] = []
    vote_counts: list[np.ndarray] = []
    for band in range(params.bands):
        first, second = band_pairs(keys[band], video_of, usable, params.max_bucket)
        counts["candidate_pairs"] += int(first.size)
        band_keys, band_counts = _votes(first, second, video_of, clip_of, len(embeddings))
        vote_keys.append(band_keys)
        vote_counts.append(band_counts)
        report("banding", band + 1, params.bands)
    timings["banding_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    offsets = vote_offsets(np.concatenate(vote_keys), np.concatenate(vote_counts), len(embeddings), params)
    counts["voted_offsets"] = len(offsets)
    timings["voting_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    pairs: list[SegmentPair] = []
    for n, (a, b, offset, votes) in enumerate(offsets):
        if not signatures_agree(keys, starts, lengths, a, b, offset, params):
            counts["prefiltered_offsets"] += 1
            continue
        pairs.extend(verify_offset(embeddings[a], embeddings[b], a, b, offset, votes, params))
        if n % 256 == 0:
            report("verify", n + 1, len(offsets))
    report("verify", len(offsets), len(offsets))
    counts["verified_offsets"] = len(offsets) - counts["prefiltered_offsets"]
    pairs = _drop_overlaps(pairs)
    pairs.sort(key=lambda p: (-p.similarity * (p.a_end - p.a_start), p.a, p.b, p.a_start))
    counts["pairs"] = len(pairs)
    timings["verify_s"] = time.perf_counter() - tick
    return DuplicateSearch(pairs=pairs, counts=counts, timings={k: round(v, 4) for k, v in timings.items()})


def _mean_embedding(embeddings: Sequence["np.ndarray"], width: int) -> "np.ndarray":
    """The archive's mean embedding, from about ``_MEAN_SAMPLE`` clips spread over every video (it
    only centres the signatures, so a sample does: reading every clip twice would not)."""
    import numpy as np

    total_clips = sum(int(e.shape[0]) for e in embeddings)
    stride = max(1, total_clips // _MEAN_SAMPLE)
    total = np.zeros(width, dtype=np.float64)
    count = 0
    for embed in embeddings:
        sample = np.asarray(embed[::stride], dtype=np.float32)
        finite = np.isfinite(sample).all(axis=1)
        total += sample[finite].sum(axis=0, dtype=np.float64)
        count += int(finite.sum())
    return (total / max(count, 1)).astype(np.float32)


def hyperplanes(width: int, bits: int) -> "np.ndarray":
    """The ``[width, bits]`` float32 random hyperplanes of the signatures (seeded: always the same)."""
    import numpy as np

    return np.random.default_rng(SIGNATURE_SEED).standard_normal((width, bits)).astype(np.float32)


def signatures(embeddings: Sequence["np.ndarray"], mean: "np.ndarray", bands: int, rows: int,
               progress: Callable[[str, int, int], None]) -> tuple["np.ndarray", "np.ndarray"]:
    """Band keys ``[bands, N]`` uint32 of every clip (videos in order), and ``[N]`` finite-row flags."""
    import numpy as np

    width = int(mean.shape[0])
    planes = hyperplanes(width, bands * rows)  # [D, bands*rows]
    weights = (np.uint32(1) << np.arange(rows, dtype=np.uint32)).astype(np.uint32)  # [rows]
    total = sum(int(e.shape[0]) for e in embeddings)
    keys = np.empty((bands, total), dtype=np.uint32)
    valid = np.empty(total, dtype=bool)
    # gather whole videos into chunks of about _CHUNK_CLIPS clips (one matrix product per chunk)
    position = 0
    pending: list[np.ndarray] = []
    pending_clips = 0

    def flush() -> None:
        nonlocal position, pending, pending_clips
        if not pending:
            return
        chunk = np.concatenate([np.asarray(p, dtype=np.float32) for p in pending]) if len(pending) > 1 \
            else np.array(pending[0], dtype=np.float32, copy=True)  # [n, D], ours to centre in place
        finite = np.isfinite(chunk).all(axis=1)
        chunk -= mean
        if not finite.all():
            chunk[~finite] = 0.0
        bits = (chunk @ planes) > 0  # [n, bands*rows]
        bits = bits.reshape(len(chunk), bands, rows)
        # [bands, n]: the bits of each band as one integer
        keys[:, position:position + len(chunk)] = (bits.astype(np.uint32) * weights).sum(axis=2, dtype=np.uint32).T
        valid[position:position + len(chunk)] = finite
        position += len(chunk)
        progress("signatures", position, total)
        pending, pending_clips = [], 0

    for embed in embeddings:
        for start in range(0, embed.shape[0], _CHUNK_CLIPS):
            part = embed[start:start + _CHUNK_CLIPS]
            pending.append(part)
            pending_clips += int(part.shape[0])
            if pending_clips >= _CHUNK_CLIPS:
                flush()
    flush()
    return keys, valid


def _run_starts(keys: "np.ndarray", video_of: "np.ndarray", valid: "np.ndarray") -> "np.ndarray":
    """Indices of the clips that start a run of equal keys within their video (valid clips only)."""
    import numpy as np

    keep = valid.copy()
    keep[1:] &= (keys[1:] != keys[:-1]) | (video_of[1:] != video_of[:-1])
    return np.flatnonzero(keep)


def bucket_sizes(keys: "np.ndarray", video_of: "np.ndarray", valid: "np.ndarray") -> "np.ndarray":
    """``[N]``: how many run starts of the archive share each clip's key in this band."""
    import numpy as np

    members = _run_starts(keys, video_of, valid)
    unique, counts = np.unique(keys[members], return_counts=True)
    if unique.size == 0:
        return np.zeros(keys.size, dtype=np.int64)
    at = np.minimum(np.searchsorted(unique, keys), unique.size - 1)
    return np.where(unique[at] == keys, counts[at], 0)


def band_pairs(keys: "np.ndarray", video_of: "np.ndarray", valid: "np.ndarray",
               max_bucket: int) -> tuple["np.ndarray", "np.ndarray"]:
    """Candidate clip pairs of one band: global clip indices ``(first, second)`` sharing a key in two videos.

    Only the first clip of each run of equal keys within a video takes part, and buckets larger
    than ``max_bucket`` are ignored (see the module docstring).
    """
    import numpy as np

    members = _run_starts(keys, video_of, valid)  # [M] global clip indices
    order = np.argsort(keys[members], kind="stable")
    members = members[order]
    sorted_keys = keys[members]
    if members.size < 2:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    edges = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    group_starts = np.concatenate([[0], edges])
    group_sizes = np.diff(np.concatenate([group_starts, [members.size]]))
    firsts: list[np.ndarray] = []
    seconds: list[np.ndarray] = []
    for size in np.unique(group_sizes):
        if size < 2 or size > max_bucket:
            continue
        at = group_starts[group_sizes == size]  # [m] starts of the groups of this size
        left, right = np.triu_indices(int(size), k=1)  # all i < j inside a group
        first = members[(at[:, None] + left[None, :]).ravel()]
        second = members[(at[:, None] + right[None, :]).ravel()]
        other = video_of[first] != video_of[second]
        firsts.append(first[other])
        seconds.append(second[other])
    if not firsts:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(firsts), np.concatenate(seconds)


def _votes(first: "np.ndarray", second: "np.ndarray", video_of: "np.ndarray", clip_of: "np.ndarray",
           videos: int) -> tuple["np.ndarray", "np.ndarray"]:
    """Vote keys (video a, video b, offset packed in an int64) of clip pairs, and their counts."""
    import numpy as np

    va, vb = video_of[first], video_of[second]
    ca, cb = clip_of[first], clip_of[second]
    swap = va > vb  # video a is always the lower index
    va, vb = np.where(swap, vb, va), np.where(swap, va, vb)
    ca, cb = np.where(swap, cb, ca), np.where(swap, ca, cb)
    offset = cb - ca
    inside = np.abs(offset) < (1 << (_OFFSET_BITS - 1))
    pair = va[inside] * videos + vb[inside]
    packed = (pair << _OFFSET_BITS) | (offset[inside] + (1 << (_OFFSET_BITS - 1)))
    keys, counts = np.unique(packed, return_counts=True)
    return keys, counts.astype(np.int32)


def vote_offsets(keys: "np.ndarray", counts: "np.ndarray", videos: int, params: DuplicateParams
                 ) -> list[tuple[int, int, int, int]]:
    """``(video a, video b, offset, votes)`` worth verifying, from packed vote keys and their counts
    (``videos``: how many videos the pair numbers count).

    Votes of an offset are summed with those of its two neighbours (a trim that is not a whole
    number of clips splits its votes between two offsets); kept are the local maxima reaching
    ``min_votes``, at most ``max_offsets`` per pair of videos, best first.
    """
    import numpy as np

    if keys.size == 0:
        return []
    order = np.argsort(keys)
    keys, counts = keys[order], counts[order]
    del order
    starts = np.concatenate([[0], np.flatnonzero(keys[1:] != keys[:-1]) + 1])
    keys, counts = keys[starts], np.add.reduceat(counts.astype(np.int64), starts)  # votes summed over bands
    del starts
    # neighbours within the same pair of videos: the offset is in the low bits, so key +- 1, and in
    # the sorted keys a neighbour is the previous or next entry (an offset at the packing edge never
    # has a neighbour across pairs: |offset| < 2^20 - 1)
    below = np.zeros_like(counts)
    below[1:] = np.where(keys[:-1] == keys[1:] - 1, counts[:-1], 0)
    above = np.zeros_like(counts)
    above[:-1] = np.where(keys[1:] == keys[:-1] + 1, counts[1:], 0)
    smoothed = counts + below + above
    # a local maximum of the raw votes (ties: the lower offset wins)
    peak = (counts > below) & (counts >= above)
    chosen = np.flatnonzero(peak & (smoothed >= params.min_votes))
    if chosen.size == 0:
        return []
    half = 1 << (_OFFSET_BITS - 1)
    pair = keys[chosen] >> _OFFSET_BITS
    offset = (keys[chosen] & ((1 << _OFFSET_BITS) - 1)) - half
    votes = smoothed[chosen]
    order = np.lexsort((-votes, pair))  # by pair, best voted first
    out: list[tuple[int, int, int, int]] = []
    taken: dict[int, int] = {}
    for i in order:
        p = int(pair[i])
        if taken.get(p, 0) >= params.max_offsets:
            continue
        taken[p] = taken.get(p, 0) + 1
        a, b = divmod(p, videos)
        out.append((a, b, int(offset[i]), int(votes[i])))
    return out


def signatures_agree(keys: "np.ndarray", starts: "np.ndarray", lengths: "np.ndarray", a: int, b: int, offset: int,
                     params: DuplicateParams) -> bool:
    """Whether some ``min_clips`` aligned clips of videos a and b agree on at least ``PREFILTER_AGREEMENT``
    of their signature bits on average: a check in memory, before the exact one reads the embeddings.

    Unrelated clips agree on about half of the bits (+-3% over 320 bits); clips at the lowest
    ``min_similarity`` worth keeping agree on about three quarters.
    """
    import numpy as np

    first = max(0, -offset)
    last = min(int(lengths[a]), int(lengths[b]) - offset)
    if last - first < params.min_clips:
        return False
    left = keys[:, starts[a] + first:starts[a] + last]  # [bands, L]
    right = keys[:, starts[b] + first + offset:starts[b] + last + offset]
    differ = np.bitwise_count(left ^ right).sum(axis=0, dtype=np.int64)  # [L]
    agree = 1.0 - differ / float(params.bands * params.rows)
    sums = np.concatenate([[0.0], np.cumsum(agree)])
    window = params.min_clips
    best = float(((sums[window:] - sums[:-window]) / window).max())
    return best >= PREFILTER_AGREEMENT


def verify_offset(embed_a: "np.ndarray", embed_b: "np.ndarray", a: int, b: int, offset: int, votes: int,
                  params: DuplicateParams) -> list[SegmentPair]:
    """The matching runs of videos ``a`` and ``b`` aligned at ``offset`` (clip of b - clip of a)."""
    import numpy as np

    length_a, length_b = int(embed_a.shape[0]), int(embed_b.shape[0])
    first = max(0, -offset)
    last = min(length_a, length_b - offset)  # one past the last clip of a with a partner in b
    if last - first < params.min_clips:
        return []
    left = np.asarray(embed_a[first:last], dtype=np.float32)  # [L, D]
    right = np.asarray(embed_b[first + offset:last + offset], dtype=np.float32)  # [L, D]
    cosine = np.einsum("ld,ld->l", left, right) / np.maximum(
        np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1), 1e-12)  # [L]
    cosine = np.where(np.isfinite(cosine), cosine, -1.0)
    # a clip matches when the mean cosine around it (max_gap clips each side) reaches the threshold:
    # one noisy clip neither breaks a run nor starts one; the run's ends are then moved to the
    # outermost clips that match on their own, so the ranges stay exact
    smoothed = _moving_mean(cosine, params.max_gap)
    match = cosine >= params.min_similarity
    pairs = []
    for run_start, run_end in _join(_runs(smoothed >= params.min_similarity, params.max_gap), cosine,
                                    params.min_similarity):
        inside = np.flatnonzero(match[run_start:run_end])
        if inside.size == 0:
            continue
        run_start, run_end = run_start + int(inside[0]), run_start + int(inside[-1]) + 1
        while run_start > 0 and match[run_start - 1]:  # smoothing blurs the ends: matching neighbours belong
            run_start -= 1
        while run_end < match.size and match[run_end]:
            run_end += 1
        if run_end - run_start < params.min_clips:
            continue
        a_start, a_end = first + run_start, first + run_end
        b_start, b_end = a_start + offset, a_end + offset
        similarity = float(cosine[run_start:run_end].mean())
        matched = int(match[run_start:run_end].sum())
        covers_a = (a_end - a_start) >= params.coverage * length_a
        covers_b = (b_end - b_start) >= params.coverage * length_b
        kind = "duplicate" if covers_a and covers_b else "contained" if covers_a or covers_b else "shared"
        if kind == "contained" and covers_b and not covers_a:  # video a is the one contained
            pairs.append(SegmentPair(b, a, b_start, b_end, a_start, a_end, -offset, similarity, matched, votes, kind))
        else:
            pairs.append(SegmentPair(a, b, a_start, a_end, b_start, b_end, offset, similarity, matched, votes, kind))
    return pairs


def _moving_mean(values: "np.ndarray", half: int) -> "np.ndarray":
    """Mean of ``values[i - half : i + half + 1]`` (clipped to the array) at each i."""
    import numpy as np

    if half <= 0:
        return values
    sums = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    index = np.arange(values.size)
    low, high = np.maximum(index - half, 0), np.minimum(index + half + 1, values.size)
    return (sums[high] - sums[low]) / (high - low)


def _runs(match: "np.ndarray", max_gap: int) -> list[tuple[int, int]]:
    """``[start, end)`` of the runs of True in ``match``, gaps of at most ``max_gap`` False bridged."""
    import numpy as np

    padded = np.concatenate([[False], match, [False]]).astype(np.int8)
    changes = np.diff(padded)
    starts = np.flatnonzero(changes == 1)
    ends = np.flatnonzero(changes == -1)
    runs: list[tuple[int, int]] = []
    for start, end in zip(starts.tolist(), ends.tolist()):
        if runs and start - runs[-1][1] <= max_gap:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


def _join(runs: list[tuple[int, int]], cosine: "np.ndarray", threshold: float) -> list[tuple[int, int]]:
    """Join neighbouring runs while the joined stretch, gap included, still averages ``threshold``:
    a copy sampled between the source's frames dips at every cut, yet is one piece of footage."""
    import numpy as np

    if len(runs) < 2:
        return runs
    sums = np.concatenate([[0.0], np.cumsum(cosine, dtype=np.float64)])
    joined = [runs[0]]
    for start, end in runs[1:]:
        first = joined[-1][0]
        if (sums[end] - sums[first]) / (end - first) >= threshold:
            joined[-1] = (first, end)
        else:
            joined.append((start, end))
    return joined


def _drop_overlaps(pairs: list[SegmentPair]) -> list[SegmentPair]:
    """One segment pair per stretch of footage: of two pairs of the same videos whose ranges in
    either video overlap by more than half the shorter, the one with more matched clips (then
    similarity) stays."""
    by_videos: dict[tuple[int, int], list[SegmentPair]] = {}
    for pair in pairs:
        by_videos.setdefault((min(pair.a, pair.b), max(pair.a, pair.b)), []).append(pair)
    kept: list[SegmentPair] = []
    for group in by_videos.values():
        group.sort(key=lambda p: (-p.matched, -p.similarity))
        chosen: list[SegmentPair] = []
        for pair in group:
            if not any(_overlap(pair, other) for other in chosen):
                chosen.append(pair)
        kept.extend(chosen)
    return kept


def _overlap(one: SegmentPair, other: SegmentPair) -> bool:
    """Whether the two pairs' ranges overlap by more than half the shorter, in either video: the same
    footage at a neighbouring offset (a long static shot matches itself shifted) is one finding."""
    def span(pair: SegmentPair, video: int) -> tuple[int, int]:
        return (pair.a_start, pair.a_end) if pair.a == video else (pair.b_start, pair.b_end)

    for video in (one.a, one.b):
        (s1, e1), (s2, e2) = span(one, video), span(other, video)
        if min(e1, e2) - max(s1, s2) > min(e1 - s1, e2 - s2) / 2:
            return True
    return False
