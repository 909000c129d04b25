"""The extraction stages run one after the other (no threads) give the threaded pipeline's bytes;
a batch that finishes a video with two of its chunks closes it once (#14)."""

from __future__ import annotations

from pathlib import Path

from fixtures import make_video

from r2cli.catalog.db import Catalog
from r2cli.catalog.queries import list_videos
from r2cli.catalog.scan import scan_archive
from r2cli.features.clip import load_clip
from r2cli.features.extract import extract_features
from r2cli.features.stages import extract_item, list_work, record_success
from r2cli.features.store import FeatureSettings, FeatureStore
from r2cli.media.ffmpeg import describe_tools
from r2cli.paths import resolve_workspace


def feature_files(workspace) -> dict[str, bytes]:
    root = workspace.features_dir
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.safetensors"))}


def test_stages_in_sequence_give_the_pipelines_bytes(ffmpeg, tmp_path, tiny_tower_small_batch):
    archive = tmp_path / "archive"
    make_video(archive / "a.mp4", seconds=7, width=160, height=120)
    make_video(archive / "b.mp4", seconds=5, width=96, height=128, colors=("green", "yellow"))
    threaded = resolve_workspace(tmp_path / "threaded")
    scan_archive([archive], threaded)
    report = extract_features(threaded, tower=tiny_tower_small_batch)
    assert report.videos_extracted == 2 and report.batch_size == 4  # 4 + 3 clips: a batch mixed both videos

    staged = resolve_workspace(tmp_path / "staged")
    scan_archive([archive], staged)
    settings = FeatureSettings.for_tower(tiny_tower_small_batch)
    store = FeatureStore(staged.features_dir)
    extra = {"ffmpeg": getattr(describe_tools().get("ffmpeg"), "version", None)}
    with Catalog.open(staged) as catalog:
        work = list_work(catalog, store, settings)
        assert [Path(item.path).name for item in work.todo] == ["a.mp4", "b.mp4"]
        for item in work.todo:
            record_success(catalog, item, extract_item(item, settings, tiny_tower_small_batch, store, batch_size=4, extra=extra))
        assert list_work(catalog, store, settings).todo == []
    files = feature_files(staged)
    assert len(files) == 2 and files == feature_files(threaded)  # byte for byte, headers included
    assert {v.features_status for v in list_videos(staged)} == {"ok"}


def test_one_batch_finishing_a_video_with_two_chunks_stores_it_once(ffmpeg, tmp_path, tiny_clip_path):
    # 10 s (5 clips) + 38 s (19 clips = chunks of 16 + 3): with batches of 32 the last batch holds
    # both chunks of the long video, which used to be closed twice and then marked failed.
    archive = tmp_path / "archive"
    make_video(archive / "a10.mp4", seconds=10, width=64, height=48)
    make_video(archive / "b38.mp4", seconds=38, width=64, height=48, fps=5)
    workspace = resolve_workspace(tmp_path / "ws")
    scan_archive([archive], workspace)
    tower = load_clip(tiny_clip_path, device="cpu", batch_size=32)
    report = extract_features(workspace, tower=tower)
    assert (report.videos_extracted, report.videos_failed, report.failures) == (2, 0, [])
    assert report.clips == 5 + 19
    videos = {Path(v.path).name: v for v in list_videos(workspace)}
    assert [(v.features_status, v.features_error) for v in videos.values()] == [("ok", None)] * 2


def test_a_later_run_repairs_a_wrong_error_mark(ffmpeg, tmp_path, tiny_tower_small_batch):
    archive = tmp_path / "archive"
    make_video(archive / "a.mp4", seconds=4, width=64, height=48)
    workspace = resolve_workspace(tmp_path / "ws")
    scan_archive([archive], workspace)
    extract_features(workspace, tower=tiny_tower_small_batch)
    from r2cli.catalog.features import record_feature_failure

    (video,) = list_videos(workspace)
    with Catalog.open(workspace) as catalog:  # what the double close left behind
        record_feature_failure(catalog, video.fingerprint, [video.id], "no clips were extracted")
    again = extract_features(workspace, tower=tiny_tower_small_batch)
    assert (again.videos_skipped, again.videos_failed) == (1, 0)
    (video,) = list_videos(workspace)
    assert (video.features_status, video.features_error) == ("ok", None)


class _Recorder:
    def __init__(self) -> None:
        self.fields: list[dict] = []

    def begin(self, stage, total=None, unit="items") -> None: ...
    def set_total(self, stage, total) -> None: ...
    def end(self, stage) -> None: ...
    def warn(self, message) -> None: ...

    def advance(self, stage, amount=1.0, **fields) -> None:
        if stage == "features":
            self.fields.append(fields)


def test_progress_ends_with_every_video_counted(ffmpeg, tmp_path, tiny_tower_small_batch):
    archive = tmp_path / "archive"
    for name, seconds in (("a.mp4", 6), ("b.mp4", 4), ("c.mp4", 0.3)):  # c: too short, fails without a batch
        make_video(archive / name, seconds=seconds, width=64, height=48)
    workspace = resolve_workspace(tmp_path / "ws")
    scan_archive([archive], workspace)
    recorder = _Recorder()
    report = extract_features(workspace, tower=tiny_tower_small_batch, reporter=recorder)
    assert (report.videos_extracted, report.videos_failed) == (2, 1)
    assert recorder.fields[-1]["videos"] == "3/3"
