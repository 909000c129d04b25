"""Combine the JSON results of run_all.sh into OUT/summary.md, with the issue's targets checked.

Usage:  python benchmarks/gpu/summarize.py OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGETS = "Targets (issue #13): search >= 40,000 pairs/s bf16 and >= 20,000 fp32 at 256x64; one query over 1,000 h < 2 s; index >= 500 video-hours per wall-hour of 720p30."


def targets(results: dict) -> list[str]:
    lines = []
    search = results.get("gpu_search", {}).get("cases", {})
    for key, goal in (("all_bf16", 40_000), ("all_fp32", 20_000)):
        if key in search:
            got = search[key]["pairs_per_s"]
            lines.append(f"- search {key}: {got:,.0f} pairs/s (target {goal:,}): {'MET' if got >= goal else 'not met'}")
    archive = results.get("gpu_archive_query")
    if archive:
        coarse = archive["coarse"].get("torch_resident_s")
        for key, row in (archive.get("fine") or {}).items():
            if key.startswith("candidates_"):
                best = min(row["grounder_fp16_page_cache_s"], row["int8_read_dequant_head_s"], row["device_resident_head_s"])
                total = (coarse or 0) + best
                lines.append(f"- one query, {key.split('_')[1]} candidates: coarse {coarse} s + best fine {best} s = "
                             f"{total:.3f} s (target < 2 s, recall {archive['recall'].get(key.split('_')[1], '?')})")
    index = results.get("gpu_index", {}).get("sizes", {})
    for size, r in index.items():
        best = max(r["index"]["vh_per_h"], r.get("nvdec_index", {}).get("vh_per_h", 0))
        lines.append(f"- index {size}: {r['index']['vh_per_h']} video-h/wall-h CPU decode, "
                     f"{r.get('nvdec_index', {}).get('vh_per_h', '-')} NVDEC (target 500 for 720p): "
                     f"{'MET' if best >= 500 else 'not met'}")
    return lines


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path(".")
    results = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}
    parts = ["# GPU benchmark summary", "", TARGETS, "", *targets(results), ""]
    for name in ("gpu_search", "gpu_archive_query", "gpu_index", "quantize_tokens"):
        if name in results:
            module = __import__(name)
            try:
                parts += [module.markdown(results[name]), ""]
            except Exception as exc:  # a partial result must not hide the others
                parts += [f"### {name}: cannot render ({exc!r})", ""]
        elif name != "quantize_tokens":  # that one is a CPU measurement, not part of run_all
            parts += [f"### {name}: no result (see run_all.log)", ""]
    text = "\n".join(parts)
    (out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
