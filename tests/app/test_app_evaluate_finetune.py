"""evaluate and finetune: their options own the rules, and the CLI's errors name the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from r2cli.errors import UsageError


def _files(tmp_path: Path) -> tuple[Path, Path]:
    predictions = tmp_path / "preds.jsonl"
    truth = tmp_path / "gt.jsonl"
    predictions.write_text("", encoding="utf-8")
    truth.write_text("", encoding="utf-8")
    return predictions, truth


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"dataset": "kinetics"}, "--dataset must be one of qvhighlights, charades, tacos, ego4d, youtube, tvsum, "
                                  "user, got 'kinetics'"),
        ({"dataset": "youtube", "protocol": "moment_detr"},
         "--protocol applies to moment retrieval (qvhighlights, charades, tacos, ego4d), not youtube"),
        ({"dataset": "tvsum", "split": "test"}, "--split must be one of val, train, got 'test'"),
        ({"dataset": None}, "--dataset is required"),
    ],
)
def test_evaluate_rules(tmp_path, flags, message):
    from r2cli.app.evaluate import EvaluateOptions

    predictions, truth = _files(tmp_path)
    with pytest.raises(UsageError) as caught:
        EvaluateOptions.from_flags(predictions=predictions, ground_truth=truth, **flags)
    assert str(caught.value) == message


def test_evaluate_cli_error_is_one_line(tmp_path, capsys):
    from r2cli.cli.main import main

    predictions, truth = _files(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["evaluate", str(predictions), str(truth), "--dataset", "kinetics"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --dataset must be one of") and err.count("\n") == 1


@pytest.mark.parametrize(
    "flags, message",
    [
        ({}, "--train is required (the training annotations)"),
        ({"resume": True}, "--resume needs --out (the run folder to continue)"),
        ({"train": Path("a.jsonl"), "epochs": 0}, "--epochs must be >= 1, got 0"),
        ({"train": Path("a.jsonl"), "lr": 0.0}, "--lr must be > 0, got 0.0"),
        ({"train": Path("a.jsonl"), "device": "tpu"}, "--device must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
    ],
)
def test_finetune_rules(flags, message):
    from r2cli.app.finetune import FinetuneOptions

    with pytest.raises(UsageError) as caught:
        FinetuneOptions.from_flags(**flags)
    assert str(caught.value) == message


def test_finetune_defaults_live_on_the_options():
    from r2cli.app.finetune import FinetuneOptions

    options = FinetuneOptions.from_flags(train=Path("a.jsonl"))
    assert (options.preset, options.device, options.workers, options.val_batch_size) == ("qvhighlights", "auto", 0, 16)
    assert FinetuneOptions.help("val_batch_size").endswith("Default: 16.")
