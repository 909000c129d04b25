"""The duplicate finder on generated embeddings (no ffmpeg, no torch): offsets, kinds, the bucket cap,
damaged rows, and the options' rules (#20.3)."""

from __future__ import annotations

import numpy as np
import pytest

from r2cli.app.duplicates import DuplicatesOptions
from r2cli.errors import UsageError
from r2cli.inference.duplicates import DuplicateParams, find_duplicates

WIDTH = 64


def _unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _video(rng, clips, common):
    return _unit(0.7 * common + rng.standard_normal((clips, WIDTH)) / np.sqrt(WIDTH))


def _noisy(rng, embed, noise=0.3):
    return _unit(embed + rng.standard_normal(embed.shape) * noise / np.sqrt(WIDTH))


def _params(**changes):
    return DuplicatesOptions.from_flags(min_length=10, **changes).params(1.0)


@pytest.fixture
def archive():
    rng = np.random.default_rng(0)
    common = _unit(rng.standard_normal(WIDTH))
    videos = [_video(rng, int(n), common) for n in rng.integers(60, 200, size=30)]
    source = videos[3]
    trimmed = _noisy(rng, source[20:70])  # clips 20..69 of video 3
    compilation = np.concatenate([_video(rng, 25, common), _noisy(rng, videos[7][:40]), _video(rng, 30, common)])
    reencode = _noisy(rng, videos[11])
    return videos + [trimmed, compilation, reencode]


def test_planted_copies_are_found_with_offsets_and_kinds(archive):
    search = find_duplicates(archive, _params())
    found = {(p.a, p.b): p for p in search.pairs}
    trimmed, compilation, reencode = 30, 31, 32
    assert set(found) == {(trimmed, 3), (7, compilation), (11, reencode)}, search.pairs
    pair = found[(trimmed, 3)]
    assert pair.kind == "contained" and pair.offset == 20 and (pair.b_start, pair.b_end) == (20, 70)
    pair = found[(7, compilation)]
    assert pair.kind == "shared" and pair.offset == 25 and (pair.a_start, pair.a_end) == (0, 40)  # part of 7
    pair = found[(11, reencode)]
    assert pair.kind == "duplicate" and pair.offset == 0 and pair.similarity > 0.9
    # sublinear candidates: far fewer clip pairs than all pairs of clips
    clips = search.counts["clips"]
    assert search.counts["candidate_pairs"] < clips * (clips - 1) / 2 / 100


def test_footage_seen_everywhere_is_not_matched(archive):
    """A 15-clip ident at the start of 40 videos is in buckets of 40: above --max-bucket it says nothing."""
    rng = np.random.default_rng(1)
    ident = _unit(rng.standard_normal((15, WIDTH)))
    videos = [np.concatenate([_noisy(rng, ident, 0.05), v]) for v in archive[:30]] + archive[30:]
    videos += [np.concatenate([_noisy(rng, ident, 0.05), _video(rng, 50, _unit(rng.standard_normal(WIDTH)))])
               for _ in range(10)]
    capped = find_duplicates(videos, _params(max_bucket=20))
    assert all(p.a_start >= 15 or p.a >= 30 for p in capped.pairs if p.kind == "shared") and \
        not any(p.a_end <= 15 and p.b_end <= 15 for p in capped.pairs), capped.pairs
    uncapped = find_duplicates(videos, _params(max_bucket=100))
    assert sum(p.a_end <= 16 for p in uncapped.pairs) > sum(p.a_end <= 16 for p in capped.pairs)


def test_damaged_rows_never_match(archive):
    damaged = [v.copy() for v in archive]
    damaged[32][:] = np.nan  # the re-encode's features are damaged
    search = find_duplicates(damaged, _params())
    assert not any(32 in (p.a, p.b) for p in search.pairs)


def test_results_do_not_depend_on_the_run(archive):
    assert find_duplicates(archive, _params()).pairs == find_duplicates(archive, _params()).pairs


def test_options_rules_and_seconds_to_clips():
    with pytest.raises(UsageError, match=r"--rows must be in \[1, 32\], got 40"):
        DuplicatesOptions.from_flags(rows=40)
    with pytest.raises(UsageError, match=r"--coverage must be in \(0, 1\], got 0"):
        DuplicatesOptions.from_flags(coverage=0.0)
    params = DuplicatesOptions.from_flags(min_length=10, max_gap=4).params(0.5)
    assert (params.min_clips, params.max_gap) == (5, 2)
    assert DuplicatesOptions.help("min_similarity").endswith("Default: 0.85.")
    with pytest.raises(UsageError):
        DuplicateParams(bands=1, rows=33, max_bucket=2, min_votes=1, max_offsets=1, min_similarity=0.5,
                        min_clips=1, max_gap=0, coverage=0.5)
