"""Every timeline format of `r2cli cut` takes every video `r2cli index` takes, under any legal name.

An archive of sample clips copied under hostile names (markup, quotes, ``&``, ``#``, ``%``, a
leading ``-``, a line break followed by a CMX 3600 event line, CR, ESC, BEL, U+202E, DEL) and of
generated clips at the rates editors know and do not know (variable 20.41 fps, 23.976, 29.97
drop-frame, 50, 59.94, 1 fps) is indexed with the real scan and the tiny CLIP, searched with a tiny
head, and cut with ``r2cli cut --format F`` (in-process, the command's own code path). Each file
is then parsed back by an independent reader (OpenTimelineIO's adapters, xml.etree, the cue
reader, ffprobe) and compared with what the command reported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlparse

import pytest

from r2cli.media.chapters import read_cues
from r2cli.media.timeline import TIMELINE_FORMATS, chapters_vtt_path, edl_timebase, read_timeline
from r2cli.safe_text import one_line

SAMPLES = Path(__file__).resolve().parents[2] / "sample_media"
EDL_EVENT = "001  EVIL     V     C        00:00:00:00 00:00:01:00 00:00:00:00 00:00:01:00"
HOSTILE = {  # hostile name -> the sample clip copied under it
    "<img src=x onerror=alert(1)> #1.mp4": "red_then_blue_cut.mp4",
    "it's \"quoted\" & 100% <b>.mp4": "green_yellow_purple_scenes.mp4",
    "-leading dash.mp4": "portrait_rotated_orange_teal.mp4",
    f"line\n{EDL_EVENT}\n.mp4": "testsrc_pattern_with_beeps.mp4",
    "ctl \r\x1b[31mred\x07 \u202eevil\x7f.mp4": "variable_frame_rate_counter.mp4",
}
RATES = {  # generated clip -> its frame rate (ffmpeg's -r)
    "ntsc film 23.976.mp4": "24000/1001",
    "ntsc 29.97 drop-frame.mp4": "30000/1001",
    "pal 50.mp4": "50",
    "ntsc 59.94.mp4": "60000/1001",
    "one per second.mp4": "1",
}
# control and bidirectional characters that must never reach a text file or a terminal
FORBIDDEN = ["\r", "\x1b", "\x07", "\x7f", "\u202e", "\x85", "\u2028"]


@pytest.fixture(scope="module")
def hostile_results(ffmpeg, tmp_path_factory, tiny_tower, tiny_clip_path, tiny_model_path):
    """moments.parquet of a real search over the hostile archive (every video has moments)."""
    from fixtures import make_video

    from r2cli.app.search import SearchOptions, search
    from r2cli.catalog.scan import scan_archive
    from r2cli.features.extract import extract_features
    from r2cli.paths import resolve_workspace

    root = tmp_path_factory.mktemp("hostile")
    media = root / "media"
    media.mkdir()
    for name, sample in HOSTILE.items():
        shutil.copyfile(SAMPLES / sample, media / name)
    shutil.copyfile(SAMPLES / "variable_frame_rate_counter.mp4", media / "variable_frame_rate_counter.mp4")
    with open(media / "variable_frame_rate_counter.mp4", "ab") as handle:  # other bytes: its own catalog row
        handle.write(b"\x00\x00\x00\x10freer2cli-test")
    for name, rate in RATES.items():
        make_video(media / name, seconds=6 if rate != "1" else 8, width=64, height=48, fps=rate)  # type: ignore[arg-type]
    workspace = resolve_workspace(root / "ws")
    report = scan_archive([media], workspace)
    assert report.new == len(HOSTILE) + 1 + len(RATES), report
    extract_features(workspace, tower=tiny_tower)
    result = search(workspace, ["a coloured scene"], options=SearchOptions(
        checkpoint=str(tiny_model_path("head-random")), clip_weights=str(tiny_clip_path), device="cpu",
        candidates=10_000, top_k=1_000))
    moments = Path(result.files["moments"])
    import pandas as pd

    paths = set(pd.read_parquet(moments)["path"])
    assert {Path(p).name for p in paths} == {*HOSTILE, "variable_frame_rate_counter.mp4", *RATES}
    return moments


def _run(capsys, *args: object) -> tuple[int, str, str]:
    """``r2cli ARGS`` in-process: (exit code, stdout, stderr)."""
    from r2cli.cli.main import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return stopped.value.code, captured.out, captured.err


def _cut(results: Path, out: Path, fmt: str, capsys) -> dict:
    """``r2cli cut RESULTS --format FMT --out OUT --json`` in-process; its JSON document."""
    code, out_text, err = _run(capsys, "cut", results, "--format", fmt, "--out", out, "--json")
    assert code == 0, err
    return json.loads(out_text)


def _written(report: dict) -> list[dict]:
    return [clip for clip in report["clips"] if clip["status"] == "written"]


def _clip_name(clip: dict) -> str:
    segment = clip["segment"]
    return f"{one_line(Path(segment['path']).name)} {one_line(segment['query'])} #{segment['rank']}"


def _file_of(url: str) -> bytes:
    """The file a ``file://`` URL names, as bytes (the exact name, whatever it holds)."""
    parsed = urlparse(url)
    assert parsed.scheme == "file"
    return unquote_to_bytes(parsed.path)


def _same_file(url: str, path: str) -> bool:
    return _file_of(url) == os.fsencode(Path(path).resolve())


def _clean(text: str) -> None:
    for char in FORBIDDEN:
        assert char not in text, repr(char)


@pytest.mark.parametrize("fmt", ["edl", "otio", "fcp7"])
def test_otio_readers_read_every_event_back(fmt, hostile_results, tmp_path, capsys):
    report = _cut(hostile_results, tmp_path / fmt, fmt, capsys)
    cuts = _written(report)
    assert len(cuts) == report["counts"]["written"] >= len(HOSTILE) + len(RATES)
    text = Path(report["timeline"]).read_text(encoding="utf-8")
    first_fps = None
    if fmt == "edl":
        from r2cli.media.probe import probe

        first_fps = probe(cuts[0]["segment"]["path"]).fps
        # one event line per cut: the name's line break and event line stay inside its comment
        assert sum(1 for line in text.splitlines() if line[:3].isdigit()) == len(cuts)
    _clean(text)
    timeline = read_timeline(report["timeline"], fmt, rate=edl_timebase(first_fps) if first_fps else None)
    video = [t for t in timeline.tracks if t.kind == "Video"][0]
    clips = [c for c in video if c.schema_name() == "Clip"]
    assert len(clips) == len(cuts)  # the count cut reports is the count an editor reads
    for clip, cut in zip(clips, cuts):
        assert clip.name == _clip_name(cut)
        assert _same_file(clip.media_reference.target_url, cut["segment"]["path"])
        rate = clip.source_range.start_time.rate
        if fmt != "otio":
            assert clip.source_range.start_time.is_valid_timecode_rate(rate), rate
        # Half a frame of the rate written. An EDL reads its NTSC sources at the nominal timebase (0.1 %
        # off); FCP 7 XML keeps a clip's length on the record side, in frames of the sequence's rate.
        slack = 0.5 / rate + (0.001 * cut["end_s"] if fmt == "edl" else 0) + 1e-6
        length_slack = slack + (1 / timeline.global_start_time.rate if fmt == "fcp7" else 0)
        assert clip.source_range.start_time.to_seconds() == pytest.approx(cut["start_s"], abs=slack)
        assert clip.source_range.end_time_exclusive().to_seconds() == pytest.approx(cut["end_s"], abs=length_slack)


def test_fcpxml_parses_with_etree_and_opentimelineio(hostile_results, tmp_path, capsys):
    report = _cut(hostile_results, tmp_path / "fcpxml", "fcpxml", capsys)
    cuts = _written(report)
    text = Path(report["timeline"]).read_text(encoding="utf-8")
    _clean(text)
    root = ET.fromstring(text.encode("utf-8"))
    formats = {f.get("id"): Fraction(f.get("frameDuration").rstrip("s")) for f in root.iter("format")}
    assets = {a.get("id"): a for a in root.iter("asset")}
    spine = root.find("./project/sequence/spine")
    items = list(spine)
    assert len(items) == len(cuts)
    offset = Fraction(0)
    for item, cut in zip(items, cuts):
        assert item.tag == "asset-clip" and item.get("name") == _clip_name(cut)
        asset = assets[item.get("ref")]
        assert _same_file(asset.get("src"), cut["segment"]["path"])
        assert asset.get("name") == one_line(Path(cut["segment"]["path"]).name)
        frame = formats[item.get("format")]
        assert 1 / frame in (24, 25, 30, 48, 50, 60) or 1 / frame * Fraction(1001, 1000) in (24, 30, 48, 60)
        start, duration = (Fraction(item.get(k).rstrip("s")) for k in ("start", "duration"))
        assert (start / frame).denominator == 1 and (duration / frame).denominator == 1  # on frame boundaries
        assert float(start) == pytest.approx(cut["start_s"], abs=float(frame) / 2 + 1e-9)
        assert float(start + duration) == pytest.approx(cut["end_s"], abs=float(frame) / 2 + 1e-9)
        assert Fraction(item.get("offset").rstrip("s")) == offset  # back to back
        offset += duration
    timeline = read_timeline(report["timeline"], "fcpxml")  # OpenTimelineIO's own FCPXML reader
    clips = [c for t in timeline.tracks for c in t if c.schema_name() == "Clip"]
    assert [c.name for c in clips] == [_clip_name(c) for c in cuts]
    assert all(_same_file(c.media_reference.target_url, cut["segment"]["path"]) for c, cut in zip(clips, cuts))


@pytest.mark.parametrize("fmt", ["vtt", "srt", "chapters"])
def test_caption_and_chapter_files_hold_one_cue_per_cut(fmt, hostile_results, tmp_path, capsys, ffmpeg):
    report = _cut(hostile_results, tmp_path / fmt, fmt, capsys)
    cuts = _written(report)
    timeline = Path(report["timeline"])
    texts = [timeline.read_text(encoding="utf-8")]
    cue_file = chapters_vtt_path(timeline) if fmt == "chapters" else timeline
    if fmt == "chapters":
        texts.append(cue_file.read_text(encoding="utf-8"))
        holder = tmp_path / "holder.mp4"
        subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                        "color=c=black:s=64x48:r=5:d=200", "-i", str(timeline), "-map", "0", "-map_metadata", "1",
                        "-map_chapters", "1", "-c:v", "libx264", "-preset", "ultrafast", str(holder)], check=True)
        probed = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_chapters", "-of", "json", str(holder)],
                                           check=True, capture_output=True, text=True).stdout)["chapters"]
        assert [c["tags"]["title"] for c in probed] == [
            f"{one_line(c['segment']['query'])} ({one_line(Path(c['segment']['path']).name)} #{c['segment']['rank']})"
            for c in cuts]
    for text in texts:
        _clean(text)
    cues = read_cues(cue_file)
    assert len(cues) == len(cuts)
    for cue, cut in zip(cues, cuts):
        name = one_line(Path(cut["segment"]["path"]).name)
        assert name in cue.text or name.replace("-->", "-- >") in cue.text


def test_every_format_names_the_rate_it_chose(hostile_results, tmp_path, capsys):
    """Variable 20.41 fps and 1 fps have no timecode: FCP 7 and FCPXML place them at a rate they
    take and say so; sources at 23.976, 29.97, 50 and 59.94 fps are placed at their own rate."""
    for fmt in TIMELINE_FORMATS:
        report = _cut(hostile_results, tmp_path / fmt, fmt, capsys)
        named = " ".join(report["warnings"])
        if fmt in ("fcp7", "fcpxml"):
            assert "variable_frame_rate_counter.mp4 is 20.408 fps" in named
            assert one_line("ctl \r\x1b[31mred\x07 \u202eevil\x7f.mp4") + " is 20.408 fps" in named
            assert "one per second.mp4 is 1 fps" in named and "frames of 24 fps" in named
            for steady in ("23.976.mp4", "29.97 drop-frame.mp4", "pal 50.mp4", "59.94.mp4"):
                assert steady not in named, (fmt, named)
        elif fmt in ("otio", "vtt", "srt", "chapters"):
            assert report["warnings"] == []


def test_non_utf8_names_round_trip(source_video, tmp_path):
    """A name that is not UTF-8 (which `r2cli index` declines, but a library caller may pass) is
    written as its exact bytes in the file URL and shown with ``\\xNN`` in names."""
    from r2cli.media.timeline import TimelineEvent, write_events

    raw = os.fsencode(tmp_path) + b"/caf\xe9 \xff\xfe-%41.mp4"
    shutil.copyfile(source_video, raw)
    path = os.fsdecode(raw)
    event = TimelineEvent(path, 1.0, 2.0, fps=25, name=f"{Path(path).name} #1", query="q", rank=1)
    shown = "caf\\xe9 \\xff\\xfe-%41.mp4"
    for fmt in TIMELINE_FORMATS:
        target = tmp_path / ("t.chapters.txt" if fmt == "chapters" else f"t.{fmt}")
        written = write_events(fmt, [event], target)
        _clean(written.read_text(encoding="utf-8"))  # and it is UTF-8
        if fmt in ("vtt", "srt", "chapters"):
            (cue,) = read_cues(chapters_vtt_path(written) if fmt == "chapters" else written)
            assert cue.text == f"q ({shown} #1)"
            continue
        timeline = read_timeline(written, fmt, rate=25)
        (clip,) = [c for t in timeline.tracks[:1] for c in t if c.schema_name() == "Clip"]
        assert _file_of(clip.media_reference.target_url) == raw
        assert clip.name == f"{shown} #1"


@pytest.fixture(scope="module")
def one_per_video(hostile_results):
    """The best moment of each video of the search (a short cut list that names every source)."""
    from r2cli.outputs import read_results, write_table

    frame = read_results(hostile_results).df
    best = frame.sort_values("rank_in_query").groupby("path", sort=False).head(1)
    return write_table("moments", best.to_dict("records"), hostile_results.parent / "one_per_video.parquet")


@pytest.mark.parametrize("fmt", ["fcp7", "media"])
def test_the_terminal_shows_names_and_never_runs_them(fmt, one_per_video, tmp_path, capsys):
    """Tables, warnings and the summary line show every name on one line, control characters as
    escapes (``\\x1b``), so a name cannot colour, retitle or reorder the terminal; --json keeps
    the exact names as JSON escapes."""
    code, out, err = _run(capsys, "cut", one_per_video, "--format", fmt, "--out", tmp_path / fmt)
    assert code == 0, err
    for char in FORBIDDEN:
        assert char not in out and char not in err, repr(char)
    if fmt == "fcp7":  # the rate warning names the hostile source, escaped
        assert "ctl \\r\\x1b[31mred\\x07 \\u202eevil\\x7f.mp4 is 20.408 fps" in err
    else:  # the clips table names each source whole, on one line
        assert "line\\n001" in out
    code, out, err = _run(capsys, "cut", one_per_video, "--format", fmt, "--out", tmp_path / f"{fmt}-json", "--json")
    assert code == 0, err
    for char in FORBIDDEN:
        assert char not in out and char not in err, repr(char)
    sources = {Path(c["segment"]["path"]).name for c in json.loads(out)["clips"]}
    assert set(HOSTILE) <= sources  # exact names, read back from the JSON escapes


def test_an_error_naming_a_hostile_file_is_one_escaped_line(tmp_path, capsys):
    missing = tmp_path / "gone \x1b]0;owned\x07\n\u202e.parquet"
    code, out, err = _run(capsys, "cut", missing, "--out", tmp_path / "out")
    assert code != 0 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")
    for char in FORBIDDEN:
        assert char not in err
    assert "gone \\x1b]0;owned\\x07\\n\\u202e.parquet" in err


def test_a_reel_name_cannot_add_lines_to_the_concat_list(source_video, silent_video, tmp_path):
    """The reel's pieces are listed for ffmpeg's concat demuxer by their own names, not through the
    folder named after the reel: a reel name holding a line break and a ``file`` line is only a name."""
    from r2cli.media.probe import probe
    from r2cli.media.reels import make_reel
    from r2cli.media.segments import Segment

    reel = tmp_path / "reel\nfile 'injected.mp4'\n.mp4"
    report = make_reel([Segment(str(source_video), 1.0, 2.0)], reel)
    assert report.reel == str(reel) and report.counts()["written"] == 1
    assert probe(reel).duration == pytest.approx(1.0, abs=2 / 25)  # the one piece, nothing injected
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [reel.name]


@pytest.mark.parametrize("fmt", ["edl", "otio", "fcpxml", "fcp7"])
@pytest.mark.parametrize("fps", [1000 / 49, 24000 / 1001, 30000 / 1001, 50, 60000 / 1001, 1, 15, 120, 7])
def test_any_rate_first_or_after_another_writes_and_reads_back(fmt, fps, tmp_path):
    """The first source sets the EDL's timebase and the FCP sequence's rate: every rate may come first."""
    from opentimelineio.opentime import RationalTime

    from r2cli.media.timeline import TimelineEvent, editor_rate, rate_warnings, write_events

    odd = TimelineEvent("/m/odd.mp4", 2.0, 5.0, fps=fps, name="odd #1", duration_s=9.0)
    pal = TimelineEvent("/m/pal.mp4", 1.0, 2.0, fps=25, name="pal #2", duration_s=4.0)
    for order in ([odd, pal], [pal, odd]):
        path = write_events(fmt, order, tmp_path / f"{order[0].name[:3]}.{fmt}", force=True)
        timeline = read_timeline(path, fmt, rate=edl_timebase(order[0].fps))
        clips = [c for t in timeline.tracks[:1] for c in t if c.schema_name() == "Clip"]
        assert [c.name for c in clips] == [e.name for e in order]
        for clip, event in zip(clips, order):
            rate = clip.source_range.start_time.rate
            if fmt in ("edl", "fcp7"):
                assert RationalTime.is_valid_timecode_rate(rate)
            if fmt != "fcpxml":  # OpenTimelineIO's FCPXML reader reads rates as integers
                assert clip.source_range.start_time.to_seconds() == pytest.approx(event.start_s, abs=0.5 / rate + 2e-3)
        warned = any("odd.mp4" in w for w in rate_warnings(fmt, order))
        if fmt in ("fcp7", "fcpxml"):  # warned exactly when the rate is not the source's own
            assert warned == (abs(float(editor_rate(fps)) - fps) > 1e-3)
        elif fmt == "otio":
            assert not warned
