"""The coarse index's rules (#19): nlist/8 lists probed, at least 32 (measured in
benchmarks/RESULTS-archive.md: at 1,000 video-hours nlist/32 found 95 of 100 planted moments, nlist/8 all);
four-bit fast-scan PQ64 codes above 50 M clips so the 100,000-hour index fits 8 GB; at most 4,096 lists."""

from r2cli.features.coarse_index import IndexSpec, index_spec


def test_nprobe_is_an_eighth_of_the_lists_and_at_least_32():
    assert index_spec(1_800_000).nprobe == 128  # 1,000 video-hours: IVF1024
    assert index_spec(18_000_000).nprobe == 512  # 10,000 video-hours: IVF4096
    assert IndexSpec(nlist=256, codes="SQ8").nprobe == 32
    assert IndexSpec(nlist=16, codes="SQ8").nprobe == 16  # never more lists than exist


def test_codes_shrink_with_the_archive_so_100000_hours_fit_8_gb():
    assert index_spec(1_000_000).codes == "SQ8"
    assert index_spec(18_000_000).factory == "IVF4096,PQ64"  # 10,000 video-hours: 72 B/clip with ids
    spec = index_spec(180_000_000)  # 100,000 video-hours
    assert spec.factory == "IVF4096,PQ64x4fs"
    assert 180_000_000 * (64 // 2 + 8) < 8 * 10**9  # 4-bit codes + faiss's 8-byte ids stay under 8 GB resident


def test_lists_stop_at_4096_so_builds_stay_linear():
    """Probing is a share of the lists, so more lists add build cost (every clip meets every centroid), not speed."""
    assert index_spec(54_000_000).nlist == 4096  # 30,000 video-hours
    assert index_spec(1_800_000_000).nlist == 4096  # 1,000,000 video-hours
    assert index_spec(54_000_000).nprobe == 512


def test_four_bit_codes_ask_more_hits_per_candidate():
    """Fast-scan codes order near ties worse; their hits are re-scored exactly, so more of them are asked."""
    from r2cli.features.coarse_index import FAST_SCAN_HITS_PER_CANDIDATE, HITS_PER_CANDIDATE

    assert index_spec(180_000_000).hits_per_candidate == FAST_SCAN_HITS_PER_CANDIDATE == 100
    assert index_spec(18_000_000).hits_per_candidate == index_spec(100_000).hits_per_candidate == HITS_PER_CANDIDATE
