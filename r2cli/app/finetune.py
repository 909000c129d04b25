"""The ``finetune`` use case: train an R2-Tuning head with a preset's official recipe.

``FinetuneOptions`` owns every default and rule of ``r2cli finetune``; ``None`` means "the
preset's value". The training itself is ``r2cli.train.finetune.finetune``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.app.options import Options, device_rule, option
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    from r2cli.paths import Workspace
    from r2cli.train.finetune import FinetuneResult


@dataclass(frozen=True)
class FinetuneOptions(Options):
    """Everything that shapes a training run."""

    preset: str = option("qvhighlights", help="Preset name (models/presets) or a preset JSON file: architecture "
                                              "+ recipe. The library also takes a Preset object.", flag="--preset")
    train: Path | None = option(None, help="Training annotations: QVHighlights-format JSON Lines (vid or video "
                                           "path per line), a benchmark file, or youtube_anno.json / tvsum_anno.json.",
                                exists=True)
    val: Path | None = option(None, help="Validation annotations, scored every epoch with the preset's selection "
                                         "metric. TVSum/YouTube default: the train file's val split.", exists=True)
    features_dir: Path | None = option(None, help="Features in the official released layout "
                                                  "(DIR/clip_b32_vid_k4/<vid>.npy, DIR/clip_b32_txt_k4/<qid>.npy) "
                                                  "instead of the r2cli feature store.", exists=True)
    init: str | None = option(None, help="Start from this checkpoint (file or registry name). Default: scratch.")
    epochs: int | None = option(None, help="Override the preset's epochs.", minimum=1)
    batch_size: int | None = option(None, help="Override the preset's training batch size.", minimum=1)
    lr: float | None = option(None, help="Override the preset's learning rate (warm-up and decay scale with it).",
                              above=0)
    # ModelConfig fields, e.g. {"dims": 128}; the CLI's repeated --model-set FIELD=VALUE
    model_overrides: dict[str, Any] = field(default_factory=dict)
    seed: int | None = option(None, help="Random seed (a CPU run is then repeatable). Default: a random one, logged.")
    device: str = option("auto", help="Where training runs: auto (a GPU when present), cpu, cuda or cuda:N.",
                         check=device_rule)
    amp: bool | None = option(None, help="fp16 mixed precision. Default: on with CUDA, as the recipe.")
    workers: int = option(0, help="Data-loading processes (0: in process).", minimum=0)
    out: Path | None = option(None, help="Run folder. Default: <workspace>/runs/<run id>.")
    resume: bool = option(False, help="Continue the run in --out from its last epoch.")
    clip_weights: str | None = option(None, help="CLIP weights for store features and queries.")
    index_missing: bool = option(True, help="Index annotation videos given by path that lack features.",
                                 flag="--index")
    official_padding: bool = option(True, help="Train with the official padded-batch behaviour (default) or the "
                                               "batch-invariant path.")
    val_batch_size: int = option(16, help="Pairs per validation forward (results do not depend on it).", minimum=1)
    log_every: int = option(10, help="Iterations between iteration records in the log.", minimum=1, job=False)
    keep_last: int | None = option(None, help="Keep only the newest N epoch checkpoints (best is always kept).",
                                   minimum=1)
    validate_every: int = option(1, help="Epochs between validations (the official engine: 1).", minimum=1)

    def check(self):
        if self.train is None and not self.resume:
            return ("train",), "{0} is required (the training annotations)"
        if self.resume and self.out is None:
            return ("resume", "out"), "{0} needs {1} (the run folder to continue)"
        return None


def run_finetune(workspace: "Workspace", options: FinetuneOptions, *,
                 reporter: Reporter = NULL_REPORTER) -> "FinetuneResult":
    """Train a head; see ``r2cli.train.finetune.finetune`` for the run folder and the errors."""
    from r2cli.train.finetune import finetune

    return finetune(workspace, options, reporter=reporter)
