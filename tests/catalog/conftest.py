"""Fixtures of the catalog tests: workspaces, tiny generated clips, distinct copies of one clip."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalogkit import distinct_copy


@pytest.fixture
def workspace(tmp_path):
    from r2cli.paths import resolve_workspace

    return resolve_workspace(tmp_path / "ws")


@pytest.fixture(scope="session")
def base_clip(ffmpeg, tmp_path_factory) -> Path:
    """A 1 s 64x48 red/blue clip at 10 fps.

    ffmpeg -f lavfi -i color=c=red:s=64x48:r=10:d=0.5 -f lavfi -i color=c=blue:s=64x48:r=10:d=0.5
           -filter_complex "concat=n=2,drawbox=..." -c:v libx264 -preset ultrafast -pix_fmt yuv420p base.mp4
    """
    from media import make_video

    return make_video(tmp_path_factory.mktemp("base") / "base.mp4", seconds=1, width=64, height=48, fps=10)


@pytest.fixture
def make_copy(base_clip):
    """``make_copy(path, tag)``: a distinct valid clip at ``path``."""

    def make(path: Path, tag: int | str) -> Path:
        return distinct_copy(base_clip, Path(path), tag)

    return make
