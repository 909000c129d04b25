"""The GPU benchmark scripts (benchmarks/gpu/) run end to end on the CPU with --smoke.

They exist to be run on a GPU host in one prepared go (run_all.sh); these tests keep them from
rotting while no GPU is at hand: each script runs as a program, with real ffmpeg and the real
r2cli code paths, and its JSON result must hold the numbers the GPU run will report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GPU = REPO / "benchmarks" / "gpu"
pytestmark = pytest.mark.slow


def run_script(name: str, out: Path, *args: str, env: dict | None = None) -> dict:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run([sys.executable, str(GPU / f"{name}.py"), "--smoke", "--device", "cpu", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=300, env=full_env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / f"{name}.json").read_text())


def test_gpu_search_smoke(tmp_path):
    result = run_script("gpu_search", tmp_path)
    cases = result["cases"]
    assert set(cases) == {"all_fp32", "q1_fp32", "q8_fp32"}
    assert cases["all_fp32"]["pairs"] == 6 * 4 and cases["q8_fp32"]["pairs"] == 4 * 2
    assert all(c["pairs_per_s"] > 0 and c["resident"]["pairs_per_s"] > 0 for c in cases.values())
    assert result["profile"]["top_cpu_ops"]
    # batched and batch-1 grounding agree (the invariance the GPU run re-checks in bf16)
    assert result["checks"]["batch_invariance_fp32"]["max_saliency_diff"] < 1e-4


def test_gpu_archive_query_smoke(tmp_path):
    result = run_script("gpu_archive_query", tmp_path, "--work", str(tmp_path / "work"))
    assert result["prototype_matches_library"]["same_candidate_set"]
    assert result["prototype_matches_library"]["max_window_score_diff"] < 1e-2
    assert set(result["recall"]) == {"6", "3"} and result["recall"]["6"] >= result["recall"]["3"]
    fine = result["fine"]["candidates_4"]
    assert all(fine[k] > 0 for k in ("grounder_fp16_page_cache_s", "int8_read_dequant_head_s", "device_resident_head_s"))
    assert result["fine"]["bytes_per_window_int8"] < 0.6 * result["fine"]["bytes_per_window_fp16"]


def test_gpu_index_smoke_with_shim_and_same_frames(tmp_path):
    # no ffprobe: the shim must stand in (the GPU image has only imageio-ffmpeg's ffmpeg)
    result = run_script("gpu_index", tmp_path, "--work", str(tmp_path / "work"),
                        env={"R2CLI_FFPROBE": str(GPU / "ffprobe_shim.py")})
    assert result["ffprobe"].endswith("ffprobe_shim.py")
    for size in ("320x180", "480x270"):
        r = result["sizes"][size]
        assert r["index"]["clips"] == r["decode_1"]["clips"] == 6  # 12 s at 0.5 fps
        assert r["index"]["vh_per_h"] > 0 and r["clip_only"]["images_per_s"] > 0
        # the hwaccel path (-hwaccel none on the CPU) selects exactly the CPU path's frames
        assert r["nvdec_same_frames"] == {"same_clip_count": True, "same_timestamps": True,
                                          "pixel_max_abs_diff": 0, "pixel_mean_abs_diff": 0.0}
        assert r["nvdec_index"]["max_layer_diff_vs_cpu_decode"] == 0.0
        assert r["nvdec_index_patched_modules"]


def test_ffprobe_shim_matches_ffprobe(tmp_path):
    if shutil.which("ffprobe") is None:
        pytest.skip("needs the real ffprobe to compare with")
    from r2cli.media.frames import probe_stream

    plain, rotated = tmp_path / "a.mp4", tmp_path / "r.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=200x112:r=25:d=1",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-vf", "setsar=4/3", str(plain)], check=True)
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(plain), "-c", "copy",
                    "-metadata:s:v:0", "rotate=270", str(rotated)], check=True)
    for path in (plain, rotated):
        assert probe_stream(path, ffprobe=str(GPU / "ffprobe_shim.py")) == probe_stream(path)
    assert probe_stream(rotated).rotation != 0
    bad = subprocess.run([sys.executable, str(GPU / "ffprobe_shim.py"), "-v", "error", "-of", "json", "-show_streams",
                          "-show_format", "-select_streams", "v", str(tmp_path / "missing.mp4")],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "missing.mp4" in bad.stderr


def test_quantize_tokens_smoke(tmp_path):
    result = run_script("quantize_tokens", tmp_path)
    vit = result["sets"]["vitb32"]
    assert vit["int8_token"]["bytes_ratio_vs_fp16"] < 0.55 and vit["fp8_raw"]["bytes_ratio_vs_fp16"] == 0.5
    # fp16 is the floor; 8-bit round trips are lossy but bounded
    assert vit["fp16"]["token_rel_error"] < vit["int8_channel"]["token_rel_error"] < 0.05
    assert 0 < vit["int8_token"]["head"]["saliency_max_abs_diff"] < 0.05
