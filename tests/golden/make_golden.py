"""Derive the compact golden parity set (tests/golden/*.pt.xz) from the full shared parity files.

The shared files (``r2_head_official.pt``, ``clip_tower_official.pt``; about 40 MB, see the README
next to them) were produced by the unmodified official R2-Tuning code at the commit that
docs/fidelity.md names, on CPU, with random weights. This script only *selects* from them: it
never computes an expected value, so every number in the golden set is one the official code wrote.

What is kept, per kind (the file format stays the one of the parity README):

* CLIP towers (``clip_tower_golden.pt.xz``): everything, including the tiny random CLIP state dict.
  Rows of ``token_embedding.weight`` that no stored token id selects are set to zero (the towers
  read only the rows of the ids they are given, so no stored output changes; this is what makes the
  49408-row table compress to almost nothing). ``e2e.inputs.video`` (the normalised frames, which no
  test reads: they are rebuilt from ``e2e.inputs.frames_uint8``) is dropped.
* End-to-end tiny head: ``e2e`` with its 64-wide head state dict, inside the CLIP file.
* Post-processing: all ``postprocess`` cases of the head file (they are a few hundred bytes).
* Head forward and losses (``r2_head_golden.pt.xz``): the cases named in ``HEAD_CASES`` (T < 8,
  fps 1 with a too-short window, and the padded batch of three, which carries the batch-contrastive
  loss). Batches are never sliced (in the official code a sample's result depends on how its batch
  was padded), whole cases are kept. The head's random weights are 2.8 M float32 values (11 MB,
  10.4 MB after xz: random mantissas do not compress), so by default only the weights that the
  post-head stages read are kept (``pooling.att.weight``, ``loss._loss_sal.scale``), with
  every key's shape under ``state_dict_shapes``; the tests then check decoding, saliency, targets
  and every loss from the recorded head outputs (``expected.intermediate``), and the state-dict
  layout. ``--keep-head-weights`` keeps the whole state dict, the video bank, the inputs and every
  intermediate instead, so the full forward also runs from a fresh clone (about 12 MB more).

Run it with the shared folder present, from the repository root:

    python tests/golden/make_golden.py                      # reads ../shared/parity (or $R2CLI_PARITY_DIR)
    python tests/golden/make_golden.py --source /path/to/parity --out tests/golden

Running it twice gives byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import lzma
import os
import sys
from collections import OrderedDict
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
HEAD_CASES = ("b1_t7_l5", "b1_t23_l9_fps1", "b3_padded_train")
POST_HEAD_WEIGHTS = ("pooling.att.weight", "loss._loss_sal.scale")
# intermediates that only a forward from the inputs can reproduce (dropped when the weights are)
FORWARD_ONLY_INTERMEDIATES = ("tem_inputs", "tem_outputs")
INPUTS_FOR_FORWARD = ("video_index", "video_shape", "video_finite_sum_f64", "video_num_inf_rows", "query")
XZ_PRESET = 9


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_xz(obj: dict, path: Path) -> int:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = lzma.compress(buffer.getvalue(), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=XZ_PRESET)
    path.write_bytes(data)
    return len(data)


def _provenance(source: Path, omitted: list[str]) -> dict:
    return {
        "derived_from": source.name,
        "derived_from_sha256": _sha256(source),
        "generator": "tests/golden/make_golden.py",
        "omitted": omitted,
    }


def golden_head(source: Path, keep_weights: bool) -> dict:
    data = torch.load(source, map_location="cpu", weights_only=True)
    by_name = {case["name"]: case for case in data["cases"]}
    missing = [name for name in HEAD_CASES if name not in by_name]
    if missing:
        raise SystemExit(f"{source}: cases {missing} are absent (found {sorted(by_name)})")
    omitted = [f"cases {sorted(set(by_name) - set(HEAD_CASES))}"]
    cases = []
    for name in HEAD_CASES:
        case = dict(by_name[name])
        if not keep_weights:
            case["inputs"] = {k: v for k, v in case["inputs"].items() if k not in INPUTS_FOR_FORWARD}
            expected = dict(case["expected"])
            expected["intermediate"] = {k: v for k, v in expected["intermediate"].items()
                                        if k not in FORWARD_ONLY_INTERMEDIATES}
            case["expected"] = expected
        cases.append(case)
    out = {key: data[key] for key in ("format", "seed", "config", "versions")}
    out["set"] = "golden"
    state_dict = data["state_dict"]
    if keep_weights:
        out["state_dict"] = state_dict
        out["video_bank"] = data["video_bank"]
    else:
        out["state_dict"] = OrderedDict((k, state_dict[k]) for k in POST_HEAD_WEIGHTS)
        out["state_dict_shapes"] = OrderedDict((k, list(v.shape)) for k, v in state_dict.items())
        omitted += [f"state_dict except {list(POST_HEAD_WEIGHTS)} (shapes kept in state_dict_shapes)",
                    "video_bank", f"inputs {list(INPUTS_FOR_FORWARD)}",
                    f"expected.intermediate {list(FORWARD_ONLY_INTERMEDIATES)}"]
    out["cases"] = cases
    out["postprocess"] = data["postprocess"]
    out["golden"] = _provenance(source, omitted)
    return out


def golden_clip(source: Path) -> dict:
    data = torch.load(source, map_location="cpu", weights_only=True)
    out = dict(data)
    out["set"] = "golden"
    state_dict = OrderedDict(data["state_dict"])
    used = torch.cat([data["tokens"].flatten(), data["e2e"]["inputs"]["query"].flatten()]).unique()
    table = state_dict["token_embedding.weight"].clone()
    keep = torch.zeros(table.size(0), dtype=torch.bool)
    keep[used] = True
    table[~keep] = 0
    state_dict["token_embedding.weight"] = table
    out["state_dict"] = state_dict
    e2e = dict(data["e2e"])
    e2e["inputs"] = {k: v for k, v in e2e["inputs"].items() if k != "video"}
    out["e2e"] = e2e
    out["golden"] = _provenance(source, [
        f"token_embedding.weight rows of the {table.size(0) - int(keep.sum())} token ids no stored query uses "
        "(set to zero)",
        "e2e.inputs.video (the normalised e2e frames; e2e.inputs.frames_uint8 is kept)",
    ])
    return out


def main(argv: list[str] | None = None) -> int:
    default_source = os.environ.get("R2CLI_PARITY_DIR") or str(
        Path(os.environ.get("R2CLI_SHARED_DIR", REPO.parent / "shared")) / "parity")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=Path(default_source),
                        help="folder with r2_head_official.pt and clip_tower_official.pt (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write the golden files (default: %(default)s)")
    parser.add_argument("--keep-head-weights", action="store_true",
                        help="keep the head's whole state dict and inputs (about 12 MB more)")
    args = parser.parse_args(argv)
    head_src = args.source / "r2_head_official.pt"
    clip_src = args.source / "clip_tower_official.pt"
    for path in (head_src, clip_src):
        if not path.is_file():
            print(f"make_golden: {path} not found (pass --source FOLDER)", file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for name, obj in (("r2_head_golden.pt.xz", golden_head(head_src, args.keep_head_weights)),
                      ("clip_tower_golden.pt.xz", golden_clip(clip_src))):
        size = _write_xz(obj, args.out / name)
        print(f"{args.out / name}: {size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
