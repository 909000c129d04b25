"""The training step, mixed precision, seeding, checkpoint state and per-epoch validation.

One iteration follows the official engine (spec section 4.1): set the scheduled learning rate,
forward (autocast fp16 on CUDA with the heads, query pooling and losses in fp32), backward through
a GradScaler, unscale, clip the global L2 norm to 35, step, update the scaler, zero the gradients.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from r2cli._atomic import atomic_output
from r2cli.errors import CheckpointError, InputError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from r2cli.train.data import Batch, PairDataset

STATE_FORMAT = "r2cli-train-state-v1"


# ----------------------------------------------------------------------------------------------
# Seeds and RNG state


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) and ask cuDNN for deterministic kernels (official)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states in a form ``torch.load(weights_only=True)`` accepts."""
    import numpy as np
    import torch

    name, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [name, keys.tolist(), int(position), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    import numpy as np
    import torch

    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------
# Precision


def _float_output(out: Any) -> Any:
    """Every floating tensor of a GroundingOutput as float32 (the loss block runs in fp32)."""
    import torch

    changes = {}
    for f in fields(out):
        value = getattr(out, f.name)
        if torch.is_tensor(value) and value.is_floating_point():
            changes[f.name] = value.float()
        elif isinstance(value, list) and value and all(torch.is_tensor(v) for v in value):
            changes[f.name] = [v.float() if v.is_floating_point() else v for v in value]
    return replace(out, **changes)


@dataclass
class StepResult:
    """What one optimisation step did."""

    losses: dict[str, float]  # every weighted term
    total: float  # their sum
    grad_norm: float  # global L2 norm of the gradients before clipping (inf/nan when AMP skipped the step)
    lr: float  # rate used
    skipped: bool  # GradScaler skipped the step (non-finite gradients)


def make_optimizer(model: Any, lr: float, weight_decay: float) -> "torch.optim.Optimizer":
    """AdamW over every trainable parameter, one group, no decay exclusions (official)."""
    import torch

    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)


def make_scaler(enabled: bool) -> "torch.amp.GradScaler":
    """GradScaler with PyTorch's defaults (init 2^16, growth 2 every 2000 steps, backoff 0.5)."""
    import torch

    return torch.amp.GradScaler("cuda", enabled=enabled)


def train_step(model: Any, batch: "Batch", optimizer: Any, scaler: Any, *, lr: float, grad_clip: float | None,
               amp: bool, official_padding: bool = True) -> StepResult:
    """One optimisation step on ``batch`` (already on the model's device).

    Raises:
        InputError: the batch does not fit the head.
    """
    import torch

    from r2cli.model.losses import GroundingTargets, compute_losses

    for group in optimizer.param_groups:
        group["lr"] = lr
    model.train()
    device_type = "cuda" if batch.video.is_cuda else "cpu"
    targets = GroundingTargets(boundary=batch.boundary, saliency=batch.saliency, pos_clip=batch.pos_clip,
                               fps=batch.fps)
    # the model keeps its heads and query pooling in fp32 under autocast; the loss block runs in fp32
    with torch.autocast(device_type=device_type, dtype=torch.float16, enabled=amp):
        out = model(batch.video, batch.query, batch.video_mask, batch.query_mask,
                    official_padding=official_padding)
    with torch.autocast(device_type=device_type, enabled=False):
        result = compute_losses(model, _float_output(out) if amp else out, targets)
    scaler.scale(result.total).backward()
    scaler.unscale_(optimizer)
    params = [p for p in model.parameters() if p.requires_grad]
    if grad_clip is not None:
        norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    else:
        norm = torch.linalg.vector_norm(torch.stack([p.grad.detach().norm() for p in params if p.grad is not None]))
    scale_before = scaler.get_scale() if amp else 1.0
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    skipped = bool(amp and scaler.get_scale() < scale_before)
    return StepResult(losses={k: float(v.detach()) for k, v in result.losses.items()}, total=float(result.total.detach()),
                      grad_norm=float(norm), lr=lr, skipped=skipped)


# ----------------------------------------------------------------------------------------------
# Validation


@dataclass
class ValidationSet:
    """Validation items with what their evaluator needs."""

    dataset: "PairDataset"  # items + features
    kind: str  # "grounding", "tvsum" or "youtube"
    unit: float | None = None  # window rounding (grounding)
    nms: Any = None  # NmsConfig or None (grounding)
    videos: Any = None  # TVSum/YouTube: the whole annotation mapping
    domain: str | None = None  # TVSum/YouTube domain


def predict_items(model: Any, validation: ValidationSet, *, device: str, batch_size: int = 16) -> list[dict[str, Any]]:
    """Official prediction dicts for every validation item (fp32, no autocast, batch-invariant path).

    Grounding: ``{qid, query, vid, pred_relevant_windows (clamped, rounded, NMS), pred_saliency_scores}``;
    TVSum/YouTube: ``{vid, pred_saliency_scores}``.
    """
    import torch

    from r2cli.model.postprocess import postprocess_boundary
    from r2cli.train.data import collate

    dataset = validation.dataset
    model.eval()
    predictions: list[dict[str, Any]] = []
    order = list(range(len(dataset)))
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            samples = [dataset.load(i, random.Random(i)) for i in chunk]
            batch = collate(samples).to(device)
            out = model(batch.video.float(), batch.query.float(), batch.video_mask, batch.query_mask,
                        official_padding=False)
            pairs = model.predict(out, batch.fps)
            for position, pair in zip(chunk, pairs):
                item = dataset.items[position]
                saliency = [float(v) for v in pair.saliency.cpu()]
                if validation.kind == "grounding":
                    rows = postprocess_boundary(pair.boundary.float().cpu(), float(item.duration), validation.unit,
                                                validation.nms)
                    windows = [[float(s), float(e), float(c)] for s, e, c in rows.tolist()]
                    record = item.annotation
                    predictions.append({"qid": record.qid, "query": record.query, "vid": record.vid or item.key,
                                        "pred_relevant_windows": windows, "pred_saliency_scores": saliency})
                else:
                    predictions.append({"vid": item.key, "pred_saliency_scores": saliency})
    return predictions


def score_predictions(predictions: list[dict[str, Any]], validation: ValidationSet) -> dict[str, Any]:
    """The evaluator's flat metrics: the R2-Tuning brief (grounding) or ``{"mAP": ...}`` (TVSum/YouTube).

    Raises:
        InputError: from the evaluator.
    """
    from r2cli.eval import evaluate_moments, evaluate_tvsum, evaluate_youtube

    if validation.kind == "grounding":
        truth = [replace(item.annotation, duration=item.duration) for item in validation.dataset.items]
        return dict(evaluate_moments(predictions, truth)["brief"])
    evaluate = evaluate_tvsum if validation.kind == "tvsum" else evaluate_youtube
    result = evaluate(predictions, validation.videos, domains=[validation.domain], split="val")
    return {"mAP": result["mAP"]}


def validate(model: Any, validation: ValidationSet, *, device: str, batch_size: int = 16) -> dict[str, Any]:
    """Predict and score the validation set; returns the flat metrics."""
    return score_predictions(predict_items(model, validation, device=device, batch_size=batch_size), validation)


# ----------------------------------------------------------------------------------------------
# Training state (resume)


def save_state(path: Any, *, model: Any, optimizer: Any, scaler: Any, epoch: int, iteration: int,
               best: dict[str, Any], history: list[dict[str, Any]], identity: dict[str, Any]) -> None:
    """Write everything ``--resume`` needs, atomically: weights, optimizer, scaler, counters, RNG states."""
    import torch

    state = {
        "format": STATE_FORMAT,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": int(epoch),
        "iteration": int(iteration),
        "rng": rng_state(),
        "best": best,
        "history": history,
        "identity": identity,
    }
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Any) -> dict[str, Any]:
    """Read a state file written by :func:`save_state`.

    Raises:
        CheckpointError: missing, unreadable or not a training state.
    """
    import torch

    if not path.is_file():
        raise CheckpointError(f"{path}: no training state to resume from (was the run started with this --out?)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files
        raise CheckpointError(f"{path}: unreadable training state ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not an r2cli training state (format {STATE_FORMAT})")
    return state


def check_identity(saved: dict[str, Any], current: dict[str, Any], where: Any) -> None:
    """Refuse to resume a run with different data or recipe.

    Raises:
        UsageError: naming the first setting that differs.
    """
    for key, value in current.items():
        if key in saved and saved[key] != value:
            raise UsageError(f"--resume: {where} was trained with {key}={saved[key]!r}, now {value!r}; "
                             "start a new run (another --out) or pass the same settings")


def ensure_finite(value: float, what: str) -> None:
    """Raise InputError when a loss became NaN/inf (bad features or labels)."""
    if value != value or value in (float("inf"), float("-inf")):
        raise InputError(f"{what} is not finite ({value}); check the features and annotations")
