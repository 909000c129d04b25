#!/usr/bin/env bash
# Issue #13 on one GPU host, in one go (about 8 minutes on one H200). Run ON THE DEVICE, in the repo
# root, after benchmarks/gpu/prepare_device_bundle.sh ran here:
#   run(command="bash benchmarks/gpu/run_all.sh", carry=[".gpu_bundle"], timeout_s=600)
# Writes under $OUT (what the device tool brings back; at most 8 files, flat):
#   env.txt, run_all.log, gpu_search.json, gpu_archive_query.json, gpu_index.json, summary.md
# Time budget per part (timeout, seconds), so that a stuck part cannot eat the others' time:
#   setup 30 | search 170 | archive query 130 | index 170 | summary 10  -> at most 510 s
# Each part is independent: a failure is logged and the next part runs. Without CUDA (a check of
# this script on a CPU machine) pass SMOKE=1: every part runs with --smoke.
set -u -o pipefail
OUT=${OUT:-$PWD/benchmarks/_work/gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
BUNDLE=${BUNDLE:-.gpu_bundle}
SMOKE_FLAG=${SMOKE:+--smoke}
T_SEARCH=${T_SEARCH:-170}; T_ARCHIVE=${T_ARCHIVE:-130}; T_INDEX=${T_INDEX:-170}
t0=$(date +%s)
stamp() { echo "[run_all +$(( $(date +%s) - t0 ))s] $*"; }

part() {  # part NAME TIMEOUT COMMAND...
    local name=$1 limit=$2; shift 2
    stamp "start $name (limit ${limit}s)"
    timeout --signal=TERM --kill-after=10 "$limit" "$@"
    local rc=$?
    stamp "end $name rc=$rc"
    echo "$name rc=$rc" >> "$OUT/env.txt"
}

main() {
    stamp "setup"
    {
        date -u; uname -a; nproc; free -g | head -2
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || echo "no nvidia-smi"
        "$PY" -c "import torch, sys; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
        echo "nvcuvid (NVDEC library): $(ldconfig -p 2>/dev/null | grep -c libnvcuvid) in ldconfig; $(ls /usr/local/nvidia/lib64 2>/dev/null | grep -i nvcuvid | tr '\n' ' ')"
    } > "$OUT/env.txt" 2>&1
    cat "$OUT/env.txt"
    if [ -d "$BUNDLE/whl" ] && ! "$PY" -c "import open_clip" 2>/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$BUNDLE"/whl/*.whl \
            && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
    if [ -z "${R2CLI_FFMPEG:-}" ] && ! command -v ffmpeg >/dev/null && [ -s "$BUNDLE/ffmpeg.xz" ]; then
        mkdir -p /tmp/ffbin && "$PY" -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
            "$BUNDLE/ffmpeg.xz" /tmp/ffbin/ffmpeg && chmod +x /tmp/ffbin/ffmpeg
        export R2CLI_FFMPEG=/tmp/ffbin/ffmpeg
    fi
    if [ -z "${R2CLI_FFPROBE:-}" ] && ! command -v ffprobe >/dev/null; then
        export R2CLI_FFPROBE=$PWD/benchmarks/gpu/ffprobe_shim.py
    fi
    echo "ffmpeg: ${R2CLI_FFMPEG:-$(command -v ffmpeg)}; ffprobe: ${R2CLI_FFPROBE:-$(command -v ffprobe)}" | tee -a "$OUT/env.txt"
    "$PY" -c "import open_clip, r2cli; print('open_clip', open_clip.__version__)" 2>&1 | tee -a "$OUT/env.txt"

    part search "$T_SEARCH" "$PY" benchmarks/gpu/gpu_search.py --out "$OUT" --repeat 2 $SMOKE_FLAG
    part archive "$T_ARCHIVE" "$PY" benchmarks/gpu/gpu_archive_query.py --out "$OUT" $SMOKE_FLAG
    part index "$T_INDEX" "$PY" benchmarks/gpu/gpu_index.py --out "$OUT" $SMOKE_FLAG
    part summary 10 "$PY" benchmarks/gpu/summarize.py "$OUT"
    stamp "done"
}

main 2>&1 | tee "$OUT/run_all.log"
