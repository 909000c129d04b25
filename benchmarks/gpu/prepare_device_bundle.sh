#!/usr/bin/env bash
# Run HERE (a machine with PyPI), in the repository root, before the device call. The device machine
# reaches no registry, so what it lacks travels in .gpu_bundle/ (git-ignored through
# .git/info/exclude; name it in the run tool's `carry`):
#   .gpu_bundle/whl/        open_clip_torch + ftfy + wcwidth wheels (cp312, manylinux x86_64): the
#                           device image has torch, timm, regex, huggingface_hub... but not these
#   .gpu_bundle/ffmpeg.xz   the static ffmpeg binary of the imageio-ffmpeg wheel (ffmpeg 9 with
#                           libx264, NVDEC/cuvid and -hwaccel cuda), xz-compressed: the wheel itself
#                           (68 MB) is over the 64 MiB a device call may carry, the binary in xz ~50 MB.
# The device image has no ffprobe either: benchmarks/gpu/ffprobe_shim.py stands in (see gpu_index.py).
# Usage: bash benchmarks/gpu/prepare_device_bundle.sh [--no-ffmpeg]
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
PIP=${PIP:-python3 -m pip}
IMAGEIO_FFMPEG=${IMAGEIO_FFMPEG:-imageio-ffmpeg==0.8.1}
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qx '/.gpu_bundle/' "$exclude" 2>/dev/null || echo '/.gpu_bundle/' >> "$exclude"
mkdir -p .gpu_bundle/whl
platforms="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64"
$PIP download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $platforms \
    -d .gpu_bundle/whl open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth
if [ "${1:-}" != "--no-ffmpeg" ] && [ ! -s .gpu_bundle/ffmpeg.xz ]; then
    tmp=$(mktemp -d)
    $PIP download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $platforms -d "$tmp" "$IMAGEIO_FFMPEG"
    (cd "$tmp" && python3 -m zipfile -e imageio_ffmpeg-*.whl x >/dev/null)
    bin=$(ls "$tmp"/x/imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-* | head -1)
    chmod +x "$bin"
    "$bin" -hide_banner -version | head -1
    nice xz -T0 -6 -c "$bin" > .gpu_bundle/ffmpeg.xz
    rm -rf "$tmp"
fi
du -sh .gpu_bundle; ls -la .gpu_bundle .gpu_bundle/whl
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
bundle_bytes=$(du -sb .gpu_bundle | cut -f1)
echo "working tree ${tree_bytes} B + bundle ${bundle_bytes} B = $((tree_bytes + bundle_bytes)) B (limit 67108864 B)"
