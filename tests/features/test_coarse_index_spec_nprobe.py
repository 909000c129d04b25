"""The probing rule of the coarse index (#19): nlist/8 lists, at least 32 (measured in
benchmarks/RESULTS-archive.md: at 1,000 video-hours nlist/32 found 95 of 100 planted moments, nlist/8 all)."""

from r2cli.features.coarse_index import IndexSpec, index_spec


def test_nprobe_is_an_eighth_of_the_lists_and_at_least_32():
    assert index_spec(1_800_000).nprobe == 128  # 1,000 video-hours: IVF1024
    assert index_spec(18_000_000).nprobe == 512  # 10,000 video-hours: IVF4096
    assert IndexSpec(nlist=256, codes="SQ8").nprobe == 32
    assert IndexSpec(nlist=16, codes="SQ8").nprobe == 16  # never more lists than exist
