"""The coarse stage of picture queries: every stored clip scored exactly, or the approximate index's hits (#20.2, #19.1).

A picture query's moments are runs of consecutive clips whose similarity is within ``margin`` of
the query's best clip in the archive (``r2cli.inference.visual.runs_to_moments``). An exact scan
scores every clip of every selected video. Through the coarse index (``r2cli.features.coarse_index``,
chosen by the text search's own rule, ``r2cli.inference.search.coarse_stage_for``) only these clips
are scored, each exactly from the stored fp16 embedding (the index's quantised scores only choose
which clips are looked at, never a moment's score):

1. Hits: the index is asked for ``hits_per_query(top_k)`` clips per query (``HITS_PER_MOMENT``
   per moment kept, at least ``MIN_HITS``). Hits in videos the search did not select, deleted
   videos, and videos whose feature file changed since the index was built are dropped; videos
   the index does not hold (added or re-extracted since) are scored whole.
2. The query's best clip is the best exact score found so far, so the match threshold is
   ``best - margin`` as in the exact scan (equal whenever the archive's best clip is among the hits).
3. Runs are grown exactly: while a matching clip has a neighbour not yet scored, the
   ``EXPAND_CLIPS`` clips on each side of that neighbour are scored (and the best and threshold
   taken again). So every run that holds a hit ends at a scored clip below the threshold or at the
   video's edge: the index's recall can miss a whole run, never cut one short.
4. Enough hits: when a query's last hit still scores (by the index) at least what a moment needs to
   be kept (the ``top_k``-th moment's score, or the threshold / ``min_score`` while fewer moments
   were found), an unseen run might outrank one kept, so the index is asked again for twice as many
   hits, up to ``MAX_HITS`` (or until it has no more to give).

The result is per video ``[T, Q]`` exact similarities with ``-inf`` at the clips not scored (and
``None`` for a video none of whose clips was scored), which ``r2cli.app.search_visual`` turns into
moments unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

HITS_PER_MOMENT = 32  # index hits asked per moment kept (a run of similar clips takes many of them)
MIN_HITS = 256  # index hits asked per query at least
MAX_HITS = 16_384  # the most hits a query is given after doubling
EXPAND_CLIPS = 16  # clips scored on each side of an unscored neighbour of a matching clip, per step


def hits_per_query(top_k: int) -> int:
    """Index hits asked per picture query in the first round: ``max(MIN_HITS, HITS_PER_MOMENT * top_k)``."""
    return min(MAX_HITS, max(MIN_HITS, HITS_PER_MOMENT * int(top_k)))


@dataclass
class PictureScores:
    """Exact similarities of the clips the coarse stage scored, per selected video."""

    similarities: list["np.ndarray | None"]  # per video [T, Q] float32; -inf: not scored; None: nothing scored
    clips_scored: int  # clip embeddings scored exactly
    rounds: int = 0  # index searches made (0: exact scan)
    hits_per_query: int = 0  # hits asked per query in the last index search

    def counts(self) -> dict[str, int]:
        """What the run's counts record of the coarse stage."""
        data = {"clips": int(self.clips_scored)}
        if self.rounds:
            data.update(index_rounds=int(self.rounds), index_hits_per_query=int(self.hits_per_query))
        return data


def stage_record(stage: Any) -> dict[str, Any]:
    """``settings.coarse`` of a picture search: the stage's record, and the run-growing rule on the index path."""
    data = stage.record()
    if stage.path == "index":
        data.update(max_clips_per_query=MAX_HITS, expand_clips=EXPAND_CLIPS,
                    moments="runs grown exactly around the hits")
    return data


def picture_scores(query_embeddings: "np.ndarray", features: Sequence[Any], stage: Any = None, *, margin: float,
                   min_run: int, top_k: int, min_score: float | None = None) -> PictureScores:
    """The coarse stage of picture queries: an exact scan, or the index's hits grown into whole runs.

    ``query_embeddings`` is ``[Q, D]`` (normalised); ``features`` the selected videos' stored features
    (``embed`` ``[T, D]``); ``stage`` a ``r2cli.inference.search.CoarseStage`` over ``features`` (None or
    path ``exact``: every clip is scored). ``margin``, ``min_run``, ``top_k`` and ``min_score`` are the
    moment rule's, used on the index path to grow runs and to decide whether more hits are needed.
    """
    from r2cli.inference.visual import exact_clip_similarities

    if stage is None or stage.path != "index":
        similarities = exact_clip_similarities(query_embeddings, [f.embed for f in features])
        return PictureScores(similarities=list(similarities), clips_scored=int(sum(s.shape[0] for s in similarities)))
    return _Indexed(query_embeddings, features, stage, margin=margin, min_run=min_run, top_k=top_k,
                    min_score=min_score).run()


class _Indexed:
    """The index path of ``picture_scores`` (see the module doc): state shared by its steps."""

    def __init__(self, query_embeddings: "np.ndarray", features: Sequence[Any], stage: Any, *, margin: float,
                 min_run: int, top_k: int, min_score: float | None) -> None:
        import numpy as np

        self.queries = np.ascontiguousarray(query_embeddings, dtype=np.float32)  # [Q, D]
        self.features = features
        self.stage = stage
        self.margin, self.min_run, self.top_k, self.min_score = float(margin), int(min_run), int(top_k), min_score
        self.similarities: list[np.ndarray | None] = [None] * len(features)
        self.scored: list[np.ndarray | None] = [None] * len(features)  # per video [T] bool
        self.clips_scored = 0

    # -- exact scoring ------------------------------------------------------------------------

    def _ensure(self, v: int) -> None:
        import numpy as np

        if self.similarities[v] is None:
            clips = int(self.features[v].num_clips)
            self.similarities[v] = np.full((clips, len(self.queries)), -np.inf, dtype=np.float32)
            self.scored[v] = np.zeros(clips, dtype=bool)

    def _score_mask(self, v: int, wanted: "np.ndarray") -> None:
        """Score exactly the clips of video ``v`` in ``wanted`` ([T] bool) not scored yet, span by span."""
        import numpy as np

        wanted = wanted & ~self.scored[v]
        if not wanted.any():
            return
        edges = np.flatnonzero(np.diff(np.concatenate([[0], wanted.astype(np.int8), [0]])))
        embed = self.features[v].embed
        for start, end in zip(edges[0::2].tolist(), edges[1::2].tolist()):
            sims = np.asarray(embed[start:end], dtype=np.float32) @ self.queries.T  # [clips, Q]
            sims[~np.isfinite(sims)] = -np.inf  # a damaged clip never matches
            self.similarities[v][start:end] = sims
            self.scored[v][start:end] = True
            self.clips_scored += end - start

    def _score_around(self, v: int, centres: "np.ndarray", radius: int) -> None:
        """Score the clips within ``radius`` of each clip in ``centres`` (clip indices of video ``v``)."""
        import numpy as np

        clips = int(self.features[v].num_clips)
        change = np.zeros(clips + 1, dtype=np.int32)
        np.add.at(change, np.clip(centres - radius, 0, clips), 1)
        np.add.at(change, np.clip(centres + radius + 1, 0, clips), -1)
        self._score_mask(v, np.cumsum(change[:-1]) > 0)

    # -- the rule -----------------------------------------------------------------------------

    def thresholds(self) -> "np.ndarray":
        """``[Q]`` best exact score so far minus ``margin`` (-inf for a query with no finite score)."""
        import numpy as np

        best = np.full(len(self.queries), -np.inf, dtype=np.float32)
        for sims in self.similarities:
            if sims is not None and len(sims):
                best = np.maximum(best, sims.max(axis=0))
        return np.where(np.isfinite(best), best - self.margin, -np.inf)

    def _grow(self) -> None:
        """Score the neighbours of matching clips until every run ends at a scored clip or the video's edge."""
        import numpy as np

        while True:
            limits = self.thresholds()  # [Q]; a higher best only shortens runs, whose ends are scored
            grew = False
            for v, sims in enumerate(self.similarities):
                if sims is None or self.scored[v].all():
                    continue
                match = (np.isfinite(sims) & (sims >= limits[None, :])).any(axis=1)  # [T]; unscored: -inf
                need = np.zeros_like(match)
                need[1:] |= match[:-1]
                need[:-1] |= match[1:]
                need &= ~self.scored[v]
                if need.any():
                    self._score_around(v, np.flatnonzero(need), EXPAND_CLIPS)
                    grew = True
            if not grew:
                return

    def _cutoffs(self) -> "np.ndarray":
        """``[Q]``: the score a moment needs to be kept (``top_k``-th found, else the threshold / min_score)."""
        import numpy as np

        from r2cli.inference.visual import runs_to_moments

        limits = self.thresholds()
        cutoffs = np.empty(len(self.queries), dtype=np.float64)
        for q in range(len(self.queries)):
            if not np.isfinite(limits[q]):  # no hit of this query was selected yet: nothing is kept
                cutoffs[q] = -np.inf
                continue
            peaks = []
            for sims in self.similarities:
                if sims is None:
                    continue
                rows = runs_to_moments(sims[:, q], threshold=float(limits[q]), min_run=self.min_run, fps=1.0,
                                       duration=float(len(sims)))
                peaks.extend(rows[:, 2].tolist())
            if self.min_score is not None:
                peaks = [p for p in peaks if p >= self.min_score]
            if len(peaks) >= self.top_k:
                cutoffs[q] = sorted(peaks, reverse=True)[self.top_k - 1]
            else:
                cutoffs[q] = max(float(limits[q]), self.min_score if self.min_score is not None else -np.inf)
        return cutoffs

    # -- the rounds ---------------------------------------------------------------------------

    def run(self) -> PictureScores:
        import numpy as np

        for v in self.stage.unindexed:  # not in the index (added or re-extracted since): scored whole
            self._ensure(v)
            self._score_mask(v, np.ones(int(self.features[v].num_clips), dtype=bool))
        hits = int(self.stage.clips_per_query)
        rounds = 0
        while True:
            rounds += 1
            approx, positions, clips = self.stage.index.search(self.queries, hits, self.stage.nprobe)
            by_video: dict[int, list[int]] = {}
            for position, clip in zip(positions.ravel().tolist(), clips.ravel().tolist()):
                for v in self.stage.plan_positions.get(position, ()) if position >= 0 else ():
                    by_video.setdefault(v, []).append(clip)  # deleted or unselected videos have no plan position
            for v, centres in by_video.items():
                self._ensure(v)
                self._score_around(v, np.asarray(centres, dtype=np.int64), 0)
            self._grow()
            if hits >= MAX_HITS:
                break
            cutoffs = self._cutoffs()
            more = False
            for q in range(len(self.queries)):
                valid = np.flatnonzero(positions[q] >= 0)
                # the index gave all it could reach, or its last hit cannot beat a moment kept
                if len(valid) == hits and float(approx[q, valid[-1]]) >= cutoffs[q]:
                    more = True
            if not more:
                break
            hits = min(MAX_HITS, hits * 2)
        return PictureScores(similarities=self.similarities, clips_scored=self.clips_scored, rounds=rounds,
                             hits_per_query=hits)
