"""The learning-rate schedule against hand-computed values (spec section 4.1)."""

from __future__ import annotations

import pytest

from r2cli.errors import UsageError
from r2cli.train.schedule import StepSchedule


def test_warmup_is_linear_from_a_thousandth_of_the_base():
    schedule = StepSchedule(base_lr=5e-4, milestones=(20,), warmup_iters=500, warmup_ratio=0.001)
    assert schedule.lr_at(0, 0, 0) == pytest.approx(5e-7)
    # n = 250: 5e-4 * (1 - 0.999 * 0.5) = 2.5025e-4
    assert schedule.lr_at(250, 1, 226) == pytest.approx(2.5025e-4)
    # n = 499: 5e-4 * (1 - 0.999 / 500) = 4.99001e-4
    assert schedule.lr_at(499, 2, 452) == pytest.approx(4.99001e-4)
    assert schedule.lr_at(500, 2, 452) == pytest.approx(5e-4)


def test_step_decay_at_the_milestone_with_a_zero_based_epoch():
    schedule = StepSchedule(base_lr=5e-4, milestones=(20,), warmup_iters=500)
    per_epoch = 226  # QVHighlights: 7,218 x 4 / 128
    epoch = lambda e, i=0: schedule.lr_at(e * per_epoch + i, e, e * per_epoch)  # noqa: E731
    assert epoch(19, 225) == pytest.approx(5e-4)  # epoch 20 (1-based) still at base
    assert epoch(20) == pytest.approx(5e-5)  # epoch 21 (1-based) decayed
    assert epoch(29, 225) == pytest.approx(5e-5)
    two = StepSchedule(base_lr=1.0, milestones=(2, 4), gamma=0.5)
    assert [two.epoch_lr(e) for e in range(6)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_warmup_ending_inside_a_decayed_epoch_writes_the_undecayed_base_until_the_next_epoch():
    # 4 iterations per epoch, warm-up 6 iterations, decay at epoch 1 (0-based)
    schedule = StepSchedule(base_lr=1.0, milestones=(1,), warmup_iters=6, warmup_ratio=0.001)
    table = schedule.table(iterations_per_epoch=4, epochs=3)
    warm = [1 - 0.999 * (1 - n / 6) for n in range(6)]
    assert table[:6] == pytest.approx(warm)
    assert table[6:8] == pytest.approx([1.0, 1.0])  # official quirk: the hook resets lr to the base
    assert table[8:] == pytest.approx([0.1] * 4)  # next epoch: the step schedule again


def test_no_warmup_and_constant_schedules():
    constant = StepSchedule(base_lr=5e-4, milestones=(), warmup_iters=0)
    assert set(constant.table(3, 4)) == {5e-4}
    tvsum = StepSchedule(base_lr=5e-4, milestones=(), warmup_iters=50)  # TVSum: 1 iteration per epoch
    assert tvsum.lr_at(49, 49, 49) == pytest.approx(5e-4 * (1 - 0.999 / 50))
    assert tvsum.lr_at(50, 50, 50) == pytest.approx(5e-4)


def test_from_recipe_reads_a_preset():
    from r2cli.model import load_preset

    schedule = StepSchedule.from_recipe(load_preset("charades").train)
    assert (schedule.base_lr, schedule.milestones, schedule.warmup_iters) == (2.5e-4, (30,), 500)
    assert StepSchedule.from_recipe(load_preset("charades").train, lr=1e-3).base_lr == 1e-3


@pytest.mark.parametrize("kwargs, message", [
    ({"base_lr": 0.0}, "--lr must be > 0"),
    ({"base_lr": 1.0, "milestones": (5, 2)}, "milestones must be increasing"),
    ({"base_lr": 1.0, "warmup_iters": -1}, "warm-up iterations"),
])
def test_bad_schedules_name_the_rule(kwargs, message):
    with pytest.raises(UsageError, match=message):
        StepSchedule(**kwargs)
