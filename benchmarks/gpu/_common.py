"""Shared helpers of the GPU benchmark scripts (device choice, timing, JSON output, the head).

Every script in this folder runs on CUDA when present and on the CPU with ``--smoke`` (tiny
sizes), so it can be checked before device minutes are spent. Results go to ``--out`` as JSON
(one file per script) and a markdown block printed to stdout.
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


class MissingApi(RuntimeError):
    """An r2cli API this benchmark relies on is missing (the library drifted): say which."""


def need(module: str, name: str):
    """``getattr(import_module(module), name)`` with one clear line when it is gone."""
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise MissingApi(f"r2cli API {module}.{name} is missing ({exc}); update benchmarks/gpu/ to the new API") from None


def pick_device(requested: str | None) -> str:
    import torch

    if requested and requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise SystemExit(f"--device {requested}: CUDA is not available on this machine")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def sync(device: str) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


@contextlib.contextmanager
def timer(store: dict, key: str, device: str = "cpu"):
    sync(device)
    start = time.perf_counter()
    yield
    sync(device)
    store[key] = round(time.perf_counter() - start, 4)


def machine_info(device: str) -> dict:
    import torch

    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_mem_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return info


def write_result(out: str | os.PathLike | None, name: str, data: dict) -> Path | None:
    """Write ``data`` as ``OUT/name.json`` (when ``out`` is given) and print it."""
    text = json.dumps(data, indent=2, default=str)
    print(text, flush=True)
    if not out:
        return None
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(text + "\n")
    return path


def random_head(device: str, *, official_weights: bool = True, tiny: bool = False):
    """The QVHighlights-architecture head with random weights of the real shapes.

    ``official_weights``: the parity file's randomised head (weights drawn by the official rules,
    ``gate``/``scale`` non-zero so every path matters) when ../shared/parity is there; otherwise
    ``build_model()`` with gate/scale drawn from N(0, 1). ``tiny``: small widths for ``--smoke``.
    """
    import torch

    build_model = need("r2cli.model", "build_model")
    if tiny:  # --smoke: small widths, same code paths
        config_cls = need("r2cli.model.config", "ModelConfig")
        torch.manual_seed(0)
        model = build_model(config_cls(video_width=64, query_width=48, num_tokens=10, dims=32))
        with torch.no_grad():
            model.adapter.gate.normal_()
            model.adapter.scale.normal_()
        return model.to(device).eval()
    parity = REPO.parent / "shared" / "parity" / "r2_head_official.pt"
    if official_weights and parity.exists():
        load = need("r2cli.model.checkpoint", "load_official_checkpoint")
        data = torch.load(parity, weights_only=True)
        model = load({"state_dict": data["state_dict"]}).model
    else:
        torch.manual_seed(0)
        model = build_model()
        with torch.no_grad():
            model.adapter.gate.normal_()
            model.adapter.scale.normal_()
    return model.to(device).eval()


def grounder(model, device: str, **kwargs):
    """``Grounder(model, device, **kwargs)``, passing only the keyword arguments it accepts."""
    cls = need("r2cli.inference.grounding", "Grounder")
    accepted = inspect.signature(cls.__init__).parameters
    dropped = sorted(k for k in kwargs if k not in accepted)
    obj = cls(model, device, **{k: v for k, v in kwargs.items() if k in accepted})
    obj._bench_dropped_kwargs = dropped  # type: ignore[attr-defined]
    return obj


def vitb32_random_weights(folder: Path, *, small: bool = False) -> Path:
    """A random CLIP in OpenAI state-dict layout: ViT-B/32 widths (or tiny ones for ``small``)."""
    import torch

    sys.path.insert(0, str(REPO / "tests"))
    from tiny_clip import tiny_openai_state_dict

    name = "tiny-clip-random-openai.pt" if small else "vit-b-32-random-openai.pt"
    path = folder / name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        if small:
            state = tiny_openai_state_dict()
        else:
            state = tiny_openai_state_dict(vision_width=768, vision_layers=12, patch_size=32, image_size=224,
                                           text_width=512, text_layers=12, embed_dim=512)
        torch.save(state, path)
    return path
