"""``r2cli finetune``: train an R2-Tuning head with a preset's official recipe.

Features come either from the authors' released layout (``features_dir``) or from the r2cli
workspace (catalog + feature store; videos named by path are indexed first). Every epoch writes a
checkpoint in r2cli format, validates with the preset's selection metric, keeps the best one and
appends to ``train_log.jsonl``; ``state.pt`` holds what ``resume`` needs.

Run folder::

    <out>/run.json                     settings, preset, seed, final summary
    <out>/preset.json                  the effective preset (recipe and overrides)
    <out>/train_log.jsonl              one JSON object per event (start, iteration, epoch, validation, end)
    <out>/checkpoints/epoch_0001.safetensors (+ .json sidecar)   every epoch
    <out>/best.safetensors (+ .json)   best epoch by the selection metric
    <out>/state.pt                     weights, optimizer, GradScaler, epoch, iteration, RNG states
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli._atomic import atomic_output, write_json_atomic
from r2cli.errors import InputError, UsageError
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    from r2cli.app.finetune import FinetuneOptions
    from r2cli.model.config import Preset
    from r2cli.paths import Workspace

LOG_FILE = "train_log.jsonl"
STATE_FILE = "state.pt"
BEST_FILE = "best.safetensors"
CHECKPOINT_DIR = "checkpoints"
STAGE_EPOCH = "train"
STAGE_VALIDATION = "validate"


@dataclass
class FinetuneResult:
    """What a run did and where its outputs are."""

    run_id: str
    out_dir: Path
    preset: str  # preset name
    seed: int
    epochs: int  # epochs completed in total (including resumed ones)
    iterations: int  # global iterations completed
    selection_metric: str  # the metric that picks the best epoch
    best_value: float | None  # its best value (None without validation)
    best_epoch: int | None  # 1-based epoch of the best value
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    history: list[dict[str, Any]]  # per epoch: epoch, loss, lr, seconds, metrics
    files: dict[str, Path]
    counts: dict[str, int]  # train_items, val_items, iterations_per_epoch, parameters, skipped_items, indexed_videos
    device: str
    amp: bool
    resumed: bool = False
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# Preset and annotations


def resolve_preset(options: FinetuneOptions) -> "Preset":
    """The preset with the run's overrides applied (epochs, batch size, lr, model fields).

    Raises:
        UsageError: unknown preset or an override that breaks a rule.
    """
    from r2cli.model.config import ModelConfig, Preset, load_preset

    preset = options.preset if isinstance(options.preset, Preset) else load_preset(str(options.preset))
    train = preset.train
    changes: dict[str, Any] = {}
    if options.epochs is not None:
        changes["epochs"] = options.epochs
    if options.batch_size is not None:
        changes["batch_size"] = options.batch_size
    if options.lr is not None:
        changes["lr"] = float(options.lr)
    train = replace(train, **changes)
    train.validate()
    model = preset.model
    if options.model_overrides:
        data = model.to_dict()
        unknown = sorted(set(options.model_overrides) - set(data))
        if unknown:
            raise UsageError(f"unknown model field(s) {unknown}; known: {sorted(data)}")
        for key, value in options.model_overrides.items():
            if key == "loss" and isinstance(value, dict):
                data["loss"] = {**data["loss"], **value}
            else:
                data[key] = value
        try:
            model = ModelConfig.from_dict(data, where="model override")
        except InputError as exc:
            raise UsageError(str(exc)) from None
    return replace(preset, train=train, model=model)


@dataclass
class _Data:
    train_items: list
    val_items: list
    highlight_videos: Any = None


def read_annotations(preset: "Preset", train: Any, val: Any, *, official_layout: bool) -> _Data:
    """Training and validation items for the preset's dataset family.

    Grounding presets read the benchmark's reader in the official layout and the user format (QVHighlights
    JSON Lines with ``vid`` or ``video`` paths) with the feature store; TVSum/YouTube read the annotation
    JSON and take the preset domain's train/val split (``val`` defaults to the train file).

    Raises:
        InputError: an annotation file breaks its format (file, line and field named).
        UsageError: a file is missing.
    """
    from r2cli.train.data import HIGHLIGHT_DATASETS, items_from_highlights, items_from_moments

    for flag, path in (("--train", train), ("--val", val)):
        if path is not None and not Path(path).is_file():
            raise UsageError(f"{flag} {path}: file not found")
    dataset = preset.dataset
    if dataset in HIGHLIGHT_DATASETS:
        from r2cli.data import read_tvsum, read_youtube_highlights

        reader = read_tvsum if dataset == "tvsum" else read_youtube_highlights
        videos = reader(train)
        val_videos = videos if val is None or Path(val) == Path(train) else reader(val)
        return _Data(items_from_highlights(dataset, videos, preset.domain, "train"),
                     items_from_highlights(dataset, val_videos, preset.domain, "val"), val_videos)

    def read(path):
        if official_layout or str(path).endswith(".txt"):
            from r2cli.data import read_grounding_annotations

            return read_grounding_annotations(dataset, path)
        from r2cli.data import read_user_annotations

        return read_user_annotations(path)

    train_items = items_from_moments(read(train), min_duration=preset.data.min_video_len)
    if not train_items:
        raise InputError(f"{train}: no annotation is at least {preset.data.min_video_len:g} s long (data.min_video_len)")
    val_items = items_from_moments(read(val)) if val is not None else []
    return _Data(train_items, val_items)


# ----------------------------------------------------------------------------------------------
# Helpers


def _device(name: str) -> str:
    from r2cli.features.clip import resolve_device

    return resolve_device(name)


def _identity(options: FinetuneOptions, preset: "Preset") -> dict[str, Any]:
    return {
        "preset": preset.name,
        "train": str(Path(options.train).resolve()) if options.train else None,
        "features_dir": str(Path(options.features_dir).resolve()) if options.features_dir else None,
        "batch_size": preset.train.batch_size,
        "lr": preset.train.lr,
        "model": preset.model.to_dict(),
    }


class _Log:
    """Append-only JSON Lines training log."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, event: str, **values: Any) -> None:
        record = {"event": event, "time": round(time.time(), 3), **values}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _preset_reference(preset: "Preset", out_dir: Path) -> str:
    """What a checkpoint sidecar records as its preset: the name when unchanged, else the saved JSON path."""
    from r2cli.model.config import list_presets, load_preset

    if preset.name in list_presets():
        named = load_preset(preset.name)
        if named.model == preset.model and named.data == preset.data:
            return preset.name
    return str((out_dir / "preset.json").resolve())


def _write_json(path: Path, data: Any) -> None:
    write_json_atomic(path, data, default=_json_default)


def _copy_checkpoint(source: Path, target: Path) -> None:
    from r2cli.model.checkpoint import sidecar_path

    for src, dst in ((source, target), (sidecar_path(source), sidecar_path(target))):
        with atomic_output(dst) as tmp:
            shutil.copyfile(src, tmp)


# ----------------------------------------------------------------------------------------------
# The run: named steps


@dataclass
class _Features:
    """The data the run trains and validates on (``counts``: skipped_items, indexed_videos)."""

    train_set: Any  # PairDataset
    validation: Any  # loop.ValidationSet | None
    counts: dict[str, int]
    tower_id: str | None  # the CLIP weights that made store features (None in the official layout)
    official: bool


@dataclass
class _Training:
    """What every epoch uses."""

    model: Any
    optimizer: Any
    scaler: Any
    schedule: Any  # StepSchedule
    device: str
    amp: bool
    log: _Log
    reporter: Reporter


def _resumed_options(options: FinetuneOptions, out_dir: Path) -> tuple[FinetuneOptions, dict[str, Any]]:
    """The options of the run being resumed (its own effective preset, recipe and overrides included;
    --epochs may extend it) and its saved state."""
    from r2cli.train import loop

    saved_state = loop.load_state(out_dir / STATE_FILE)
    run_info = json.loads((out_dir / "run.json").read_text(encoding="utf-8"))
    saved = run_info["options"]
    options = replace(options, preset=str(out_dir / "preset.json"), model_overrides={},
                      train=options.train or saved["train"], val=options.val or saved.get("val"),
                      features_dir=options.features_dir or saved.get("features_dir"),
                      clip_weights=options.clip_weights or saved.get("clip_weights"),
                      keep_last=options.keep_last if options.keep_last is not None else saved.get("keep_last"))
    return options, saved_state


def _device_amp_seed(options: FinetuneOptions, recipe: Any, saved_state: dict[str, Any] | None) -> tuple[str, bool, int]:
    """The device, whether it trains in fp16 autocast, and the seed (the resumed run's, or a new one)."""
    device = _device(options.device)
    on_cuda = device.startswith("cuda")
    if options.amp and not on_cuda:
        raise UsageError("--amp needs a CUDA device (mixed precision is fp16 autocast on the GPU)")
    amp = bool(on_cuda and (options.amp if options.amp is not None else recipe.amp == "fp16"))
    seed = int(options.seed) if options.seed is not None else (
        int(saved_state["identity"]["seed"]) if saved_state else int.from_bytes(os.urandom(4), "little") % 90_000_000 + 10_000_000)
    return device, amp, seed


def _read_features(workspace: "Workspace", options: FinetuneOptions, preset: "Preset", device: str,
                   reporter: Reporter, warn) -> _Features:
    """The training and validation sets, from the official layout or the feature store (indexing
    videos first where ``index_missing``)."""
    from r2cli.train import loop
    from r2cli.train.data import OfficialFeatureDir, PairDataset

    official = options.features_dir is not None
    fps = preset.data.fps
    # The feature folder is checked before the annotations: a wrong --features-dir is the likelier mistake,
    # and annotation errors in the official layout read as if the file were wrong.
    source = OfficialFeatureDir(options.features_dir, preset.dataset, fps=fps) if official else None
    data = read_annotations(preset, options.train, options.val, official_layout=official)
    counts = {"skipped_items": 0, "indexed_videos": 0}
    k = preset.model.k
    tower_id = None
    if official:
        val_source = source
    else:
        if preset.dataset in ("tvsum", "youtube"):
            raise UsageError(f"{preset.dataset} presets train on the official feature layout; pass --features-dir")
        from r2cli.features.clip import load_clip
        from r2cli.train.sources import store_features

        tower = load_clip(options.clip_weights, device=device, reporter=reporter)
        tower_id = tower.weights_id
        resolved = store_features(workspace, data.train_items, tower=tower, fps=fps, k=k,
                                  index_missing=options.index_missing, reporter=reporter)
        source, data.train_items = resolved.source, resolved.items
        counts["skipped_items"] += len(resolved.skipped)
        counts["indexed_videos"] += resolved.indexed
        val_source = None
        if data.val_items:
            val_resolved = store_features(workspace, data.val_items, tower=tower, fps=fps, k=k,
                                          index_missing=options.index_missing, reporter=reporter)
            val_source, data.val_items = val_resolved.source, val_resolved.items
            counts["skipped_items"] += len(val_resolved.skipped)
            counts["indexed_videos"] += val_resolved.indexed
    train_set = PairDataset(data.train_items, source, max_saliency=preset.data.max_saliency, k=k)
    validation = None
    if data.val_items:
        kind = data.val_items[0].kind
        validation = loop.ValidationSet(
            dataset=PairDataset(data.val_items, val_source, max_saliency=preset.data.max_saliency, k=k), kind=kind,
            unit=preset.data.unit, nms=preset.data.nms, videos=data.highlight_videos, domain=preset.domain)
    else:
        warn("no validation annotations (--val): every epoch is saved but no best checkpoint is chosen")
    return _Features(train_set, validation, counts, tower_id, official)


def _make_model(options: FinetuneOptions, preset: "Preset", train_set: Any, seed: int) -> tuple[Any, "Preset"]:
    """The head (built, or loaded from --init) at the features' CLIP widths, and the preset it fits."""
    from r2cli.train import loop

    probe = train_set.load(0, random.Random(0))
    video_width, num_tokens = int(probe.video.shape[-1]), int(probe.video.shape[-2])
    query_width = int(probe.query.shape[-1])
    config = preset.model
    if (config.video_width, config.query_width, config.num_tokens) != (video_width, query_width, num_tokens):
        config = config.with_clip(video_width, query_width, num_tokens)
        preset = replace(preset, model=config)
    loop.seed_everything(seed)
    if options.init:
        from r2cli.model import load_checkpoint

        loaded = load_checkpoint(options.init, preset=preset, num_tokens=num_tokens, video_width=video_width)
        if (loaded.config.video_width, loaded.config.query_width, loaded.config.num_tokens) != (
                video_width, query_width, num_tokens):
            raise UsageError(f"--init {options.init}: the checkpoint expects CLIP widths "
                             f"({loaded.config.video_width}, {loaded.config.query_width}, {loaded.config.num_tokens}) "
                             f"but the features have ({video_width}, {query_width}, {num_tokens})")
        return loaded.model, replace(preset, model=loaded.config)
    from r2cli.model import build_model

    return build_model(config), preset


def _open_run_folder(workspace: "Workspace", options: FinetuneOptions, out_dir: Path | None, identity: dict[str, Any],
                     saved_state: dict[str, Any] | None) -> tuple[str, Path]:
    """The run id and folder: the resumed run's (its identity checked), or a new one that holds no run yet."""
    from r2cli.outputs.runs import make_run_folder, new_run_id
    from r2cli.train import loop

    if saved_state is not None:
        loop.check_identity(saved_state["identity"], identity, out_dir)
        run_id = json.loads((out_dir / "run.json").read_text(encoding="utf-8"))["run_id"]
    else:
        run_id = new_run_id()
        out_dir = out_dir or (workspace.runs_dir / run_id)
        if (out_dir / STATE_FILE).exists():
            raise UsageError(f"--out {out_dir} already holds a training run; pass --resume to continue it "
                             "or choose another folder")
        # a new run writes (and --keep-last prunes) these names: never over checkpoints it did not write
        foreign = sorted((out_dir / CHECKPOINT_DIR).glob("epoch_*"))
        if (out_dir / BEST_FILE).exists():
            foreign.append(out_dir / BEST_FILE)
        if foreign:
            raise UsageError(f"--out {out_dir} already holds {foreign[0].relative_to(out_dir)} ({len(foreign)} "
                             "checkpoint files in all) but no run to resume; choose another folder")
    make_run_folder(out_dir)
    (out_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    return run_id, out_dir


def _restore(training: _Training, saved_state: dict[str, Any] | None,
             selection_metric: str) -> tuple[int, int, list[dict[str, Any]], dict[str, Any]]:
    """Where the epochs start: (epoch, iteration, history, best), from the saved state when resuming."""
    from r2cli.train import loop

    best: dict[str, Any] = {"metric": selection_metric, "value": None, "epoch": None, "per_key": {}}
    if saved_state is None:
        return 0, 0, [], best
    training.model.load_state_dict(saved_state["model"])
    training.optimizer.load_state_dict(saved_state["optimizer"])
    training.scaler.load_state_dict(saved_state["scaler"])
    loop.set_rng_state(saved_state["rng"])
    return (int(saved_state["epoch"]), int(saved_state["iteration"]), list(saved_state["history"]),
            dict(saved_state["best"]))


def _train_epoch(training: _Training, options: FinetuneOptions, recipe: Any, train_set: Any, *, epoch: int,
                 iteration: int, seed: int, per_epoch: int) -> tuple[dict[str, Any], int]:
    """One pass over the training set: the epoch's record and the iteration reached."""
    import torch

    from r2cli.train import loop
    from r2cli.train.data import batches, collate, epoch_order

    pin = training.device.startswith("cuda")
    epoch_started = time.monotonic()
    order = epoch_order(len(train_set), repeat=recipe.repeat, seed=seed, epoch=epoch)
    loader = torch.utils.data.DataLoader(train_set, batch_sampler=batches(order, recipe.batch_size),
                                         collate_fn=collate, num_workers=options.workers, pin_memory=pin)
    epoch_start_iter = iteration
    stage = f"{STAGE_EPOCH} {epoch + 1}/{recipe.epochs}"
    training.reporter.begin(stage, total=per_epoch, unit="iterations")
    total_loss, steps, skipped_steps = 0.0, 0, 0
    term_sums: dict[str, float] = {}
    for batch in loader:
        batch = batch.to(training.device, non_blocking=pin)
        lr = training.schedule.lr_at(iteration, epoch, epoch_start_iter)
        step = loop.train_step(training.model, batch, training.optimizer, training.scaler, lr=lr,
                               grad_clip=recipe.grad_clip, amp=training.amp, official_padding=options.official_padding)
        if not training.amp:
            loop.ensure_finite(step.total, f"the training loss at iteration {iteration + 1}")
        iteration += 1
        steps += 1
        skipped_steps += int(step.skipped)
        total_loss += step.total
        for name, value in step.losses.items():
            term_sums[name] = term_sums.get(name, 0.0) + value
        if iteration % options.log_every == 0 or steps == per_epoch:
            training.log.write("iteration", epoch=epoch + 1, iteration=iteration, lr=lr, loss=step.total,
                               grad_norm=step.grad_norm, skipped=step.skipped, **step.losses)
        training.reporter.advance(stage, 1, loss=f"{step.total:.4f}", lr=f"{lr:.2e}")
    training.reporter.end(stage)
    record: dict[str, Any] = {
        "epoch": epoch + 1, "iteration": iteration, "loss": total_loss / max(steps, 1),
        "losses": {k: v / max(steps, 1) for k, v in term_sums.items()}, "lr": training.schedule.lr_at(
            iteration - 1, epoch, epoch_start_iter) if steps else None,
        "train_seconds": round(time.monotonic() - epoch_started, 3), "skipped_steps": skipped_steps,
    }
    training.log.write("epoch", **record)
    return record, iteration


def _validate_epoch(training: _Training, options: FinetuneOptions, validation: Any, selection_metric: str,
                    record: dict[str, Any], best: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Validate after an epoch: its metrics (also added to ``record``, each key's best to ``best``) and
    whether the selection metric improved."""
    from r2cli.train import loop

    epoch = record["epoch"]
    validation_started = time.monotonic()
    training.reporter.begin(STAGE_VALIDATION, total=len(validation.dataset), unit="items")
    metrics = loop.validate(training.model, validation, device=training.device, batch_size=options.val_batch_size)
    training.reporter.advance(STAGE_VALIDATION, len(validation.dataset))
    training.reporter.end(STAGE_VALIDATION)
    record["metrics"] = metrics
    record["validation_seconds"] = round(time.monotonic() - validation_started, 3)
    for key, value in metrics.items():  # each key's best tracked on its own (official EvalHook)
        if isinstance(value, (int, float)) and value > best["per_key"].get(key, float("-inf")):
            best["per_key"][key] = value
    value = metrics.get(selection_metric)
    if value is None:
        raise InputError(f"the validation metrics have no {selection_metric!r} "
                         f"(got {sorted(metrics)}); the preset's train.selection_metric does not fit the data")
    improved = best["value"] is None or value > best["value"]
    training.log.write("validation", epoch=epoch, metrics=metrics, selection=selection_metric,
                       value=value, best=improved)
    return metrics, improved


def _record_epoch_files(checkpoint: Path) -> None:
    """Record an epoch checkpoint and its sidecar in the folder's ledger (``--keep-last`` prunes only those)."""
    from r2cli.ownership import record_written

    for path in (checkpoint, checkpoint.with_suffix(".json")):
        if path.exists():
            record_written(path)


def _drop_old_epochs(out_dir: Path, keep_last: int) -> None:
    """``--keep-last``: remove the older epoch checkpoints this run recorded writing (never another file)."""
    from r2cli.ownership import is_recorded

    epochs_on_disk = [path for path in sorted((out_dir / CHECKPOINT_DIR).glob("epoch_*.safetensors"))
                      if is_recorded(path)]
    for old in epochs_on_disk[: -keep_last]:
        sidecar = old.with_suffix(".json")
        old.unlink(missing_ok=True)
        if is_recorded(sidecar):
            sidecar.unlink(missing_ok=True)


def _running_record(run_id: str, options: FinetuneOptions, preset: "Preset", seed: int, training: _Training,
                    features: _Features) -> dict[str, Any]:
    """``run.json`` while the run goes on (``counts`` is the features' dict, filled in by the caller)."""
    return {
        "run_id": run_id, "kind": "finetune", "preset": preset.name, "seed": seed, "device": training.device,
        "amp": training.amp,
        "options": {k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in asdict(options).items()
                    if k != "preset"},
        "clip_weights": features.tower_id, "counts": features.counts, "official_layout": features.official,
        "status": "running",
    }


def _run_files(out_dir: Path, last_checkpoint: Path | None) -> tuple[dict[str, Path], Path | None, Path | None]:
    """The run's files by role, its best checkpoint (None without one) and its last one (this session's
    last epoch, else the newest on disk: a resumed run that had no epoch left)."""
    if last_checkpoint is None:
        existing = sorted((out_dir / CHECKPOINT_DIR).glob("epoch_*.safetensors"))
        last_checkpoint = existing[-1] if existing else None
    files = {"log": out_dir / LOG_FILE, "state": out_dir / STATE_FILE, "run": out_dir / "run.json",
             "preset": out_dir / "preset.json"}
    best_path = out_dir / BEST_FILE if (out_dir / BEST_FILE).is_file() else None
    if best_path is not None:
        files["best"] = best_path
    if last_checkpoint is not None:
        files["last"] = last_checkpoint
    return files, best_path, last_checkpoint


# ----------------------------------------------------------------------------------------------
# The run


def finetune(workspace: "Workspace", options: FinetuneOptions, *, reporter: Reporter = NULL_REPORTER) -> FinetuneResult:
    """Train a head with the preset's recipe; see the module docstring for the run folder.

    Args:
        workspace: catalog, feature store and default run folder.
        options: ``FinetuneOptions``.
        reporter: progress (stages ``train`` in iterations and ``validate`` in items) and warnings.

    Raises:
        UsageError: bad options, unknown preset, --resume of an incompatible run.
        InputError: annotation files break their format; features do not fit the labels.
        FeatureError: features are missing or unreadable.
        CheckpointError: ``init`` does not fit, or the state to resume is unreadable.
        MissingWeightsError: CLIP weights or the init checkpoint are not available offline.
        CatalogError: store mode without a catalog.
    """
    from r2cli.model.checkpoint import save_checkpoint
    from r2cli.train import loop
    from r2cli.train.schedule import StepSchedule

    options.validate()
    started = time.monotonic()
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        reporter.warn(message)

    out_dir = Path(options.out).expanduser().resolve() if options.out else None
    saved_state = None
    if options.resume:
        options, saved_state = _resumed_options(options, out_dir)
    preset = resolve_preset(options)
    recipe = preset.train
    device, amp, seed = _device_amp_seed(options, recipe, saved_state)

    features = _read_features(workspace, options, preset, device, reporter, warn)
    train_set, validation, counts, tower_id = features.train_set, features.validation, features.counts, features.tower_id
    model, preset = _make_model(options, preset, train_set, seed)
    model = model.to(device)
    optimizer = loop.make_optimizer(model, recipe.lr, recipe.weight_decay)
    training = _Training(model=model, optimizer=optimizer, scaler=loop.make_scaler(amp),
                         schedule=StepSchedule.from_recipe(recipe), device=device, amp=amp, log=None,
                         reporter=reporter)

    identity = {**_identity(options, preset), "seed": seed}
    run_id, out_dir = _open_run_folder(workspace, options, out_dir, identity, saved_state)
    _write_json(out_dir / "preset.json", preset.to_dict())
    preset_ref = _preset_reference(preset, out_dir)
    log = training.log = _Log(out_dir / LOG_FILE)
    start_epoch, iteration, history, best = _restore(training, saved_state, recipe.selection_metric)

    counts.update({
        "train_items": len(train_set),
        "val_items": len(validation.dataset) if validation else 0,
        "iterations_per_epoch": math.ceil(len(train_set) * recipe.repeat / recipe.batch_size),
        "parameters": int(model.num_parameters()),
    })
    run_json = _running_record(run_id, options, preset, seed, training, features)
    _write_json(out_dir / "run.json", run_json)
    log.write("resume" if saved_state else "start", run_id=run_id, preset=preset.name, seed=seed, device=device,
              amp=amp, epoch=start_epoch, iteration=iteration, counts=counts, recipe=asdict(recipe))

    last_checkpoint = None
    provenance_base = {"run_id": run_id, "seed": seed, "train": str(options.train)}
    for epoch in range(start_epoch, recipe.epochs):
        record, iteration = _train_epoch(training, options, recipe, train_set, epoch=epoch, iteration=iteration,
                                         seed=seed, per_epoch=counts["iterations_per_epoch"])
        checkpoint = out_dir / CHECKPOINT_DIR / f"epoch_{epoch + 1:04d}.safetensors"
        metrics = improved = None
        if validation is not None and ((epoch + 1) % options.validate_every == 0 or epoch + 1 == recipe.epochs):
            metrics, improved = _validate_epoch(training, options, validation, recipe.selection_metric, record, best)
        provenance = {**provenance_base, "epoch": epoch + 1, "iteration": iteration,
                      "metrics": metrics or {}}
        save_checkpoint(model, checkpoint, clip=tower_id, preset=preset_ref, provenance=provenance)
        _record_epoch_files(checkpoint)
        last_checkpoint = checkpoint
        if metrics is not None and improved:
            best.update({"value": metrics[recipe.selection_metric], "epoch": epoch + 1})
            _copy_checkpoint(checkpoint, out_dir / BEST_FILE)
        history.append(record)
        loop.save_state(out_dir / STATE_FILE, model=model, optimizer=optimizer, scaler=training.scaler,
                        epoch=epoch + 1, iteration=iteration, best=best, history=history, identity=identity)
        if options.keep_last is not None:
            _drop_old_epochs(out_dir, options.keep_last)

    log.write("end", epochs=len(history), iteration=iteration, best=best,
              seconds=round(time.monotonic() - started, 3))
    files, best_path, last_checkpoint = _run_files(out_dir, last_checkpoint)
    run_json.update({"status": "finished", "best": best, "history": history, "iterations": iteration,
                     "warnings": warnings})
    _write_json(out_dir / "run.json", run_json)
    return FinetuneResult(
        run_id=run_id, out_dir=out_dir, preset=preset.name, seed=seed, epochs=len(history), iterations=iteration,
        selection_metric=recipe.selection_metric, best_value=best["value"], best_epoch=best["epoch"],
        best_checkpoint=best_path, last_checkpoint=last_checkpoint, history=history, files=files, counts=counts,
        device=device, amp=amp, resumed=saved_state is not None, warnings=warnings,
    )
