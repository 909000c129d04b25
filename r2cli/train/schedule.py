"""The official learning-rate schedule (spec section 4.1), as pure arithmetic.

Two rules act together:

* an epoch-wise step decay, set at the start of every epoch:
  ``lr = base * gamma ** (number of milestones <= epoch)`` with a 0-based epoch index;
* an iteration-wise linear warm-up over the first ``warmup_iters`` global iterations:
  ``lr = base * (1 - (1 - ratio) * (1 - n / W))``, from ``ratio * base`` at ``n = 0`` up to ``base``.
  While it is active it ignores the step decay. When it finishes (``n == W``) the official hook
  writes the undecayed ``base`` once, and that value stays until the next epoch starts.

No torch here: the trainer asks for the value and writes it into the optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass

from r2cli.errors import UsageError


@dataclass(frozen=True)
class StepSchedule:
    """Warm-up + step decay of one training run."""

    base_lr: float  # the recipe's lr
    milestones: tuple[int, ...] = ()  # 0-based epochs at whose start lr is multiplied by gamma
    gamma: float = 0.1  # decay factor per milestone
    warmup_iters: int = 0  # linear warm-up length, in global iterations (0: none)
    warmup_ratio: float = 0.001  # the warm-up starts at base_lr * warmup_ratio

    def __post_init__(self) -> None:
        if not self.base_lr > 0:
            raise UsageError(f"--lr must be > 0, got {self.base_lr}")
        if not self.gamma > 0:
            raise UsageError(f"schedule gamma must be > 0, got {self.gamma}")
        if self.warmup_iters < 0:
            raise UsageError(f"warm-up iterations must be >= 0, got {self.warmup_iters}")
        if not 0 < self.warmup_ratio <= 1:
            raise UsageError(f"warm-up ratio must be in (0, 1], got {self.warmup_ratio}")
        if list(self.milestones) != sorted(self.milestones) or any(m < 0 for m in self.milestones):
            raise UsageError(f"milestones must be increasing epochs >= 0, got {list(self.milestones)}")

    @classmethod
    def from_recipe(cls, train_config, *, lr: float | None = None) -> "StepSchedule":
        """Build from a preset's ``TrainConfig`` (``lr`` overrides its base rate)."""
        return cls(
            base_lr=float(lr if lr is not None else train_config.lr),
            milestones=tuple(int(m) for m in train_config.milestones),
            gamma=float(train_config.gamma),
            warmup_iters=int(train_config.warmup_iters),
            warmup_ratio=float(train_config.warmup_ratio),
        )

    def epoch_lr(self, epoch: int) -> float:
        """Step-decayed rate of the 0-based ``epoch``."""
        decays = sum(1 for milestone in self.milestones if milestone <= epoch)
        return self.base_lr * self.gamma**decays

    def warmup_lr(self, iteration: int) -> float:
        """Warm-up rate of global ``iteration`` (< warmup_iters)."""
        progress = iteration / self.warmup_iters
        return self.base_lr * (1 - (1 - self.warmup_ratio) * (1 - progress))

    def lr_at(self, iteration: int, epoch: int, epoch_start: int) -> float:
        """The rate used for global ``iteration`` (0-based) inside ``epoch`` that began at ``epoch_start``.

        Raises:
            UsageError: negative counters or an iteration before its epoch's start.
        """
        if iteration < 0 or epoch < 0 or not 0 <= epoch_start <= iteration:
            raise UsageError(f"bad schedule position: iteration {iteration}, epoch {epoch}, epoch start {epoch_start}")
        if iteration < self.warmup_iters:
            return self.warmup_lr(iteration)
        if self.warmup_iters > 0 and epoch_start <= self.warmup_iters:
            return self.base_lr  # the warm-up ended inside this epoch: the official hook wrote the undecayed base
        return self.epoch_lr(epoch)

    def table(self, iterations_per_epoch: int, epochs: int) -> list[float]:
        """The rate of every global iteration of a run (for plots and tests)."""
        if iterations_per_epoch < 1:
            raise UsageError(f"iterations per epoch must be >= 1, got {iterations_per_epoch}")
        out = []
        for epoch in range(epochs):
            start = epoch * iterations_per_epoch
            out.extend(self.lr_at(start + i, epoch, start) for i in range(iterations_per_epoch))
        return out
