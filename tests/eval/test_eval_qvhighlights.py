"""The worked QVHighlights example scored by the official evaluators: every key must match to the printed digit."""

from __future__ import annotations

import json

import pytest

from r2cli.eval import evaluate_files, evaluate_moments, read_moment_predictions
from r2cli.data.grounding import read_qvhighlights


@pytest.fixture(scope="module")
def example(datasets_dir):
    folder = datasets_dir / "qvhighlights" / "eval_example"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    return folder


@pytest.mark.parametrize(
    "protocol, expected_file",
    [("r2tuning", "metrics_r2tuning_vtg_eval.json"), ("moment_detr", "metrics_official_moment_detr.json")],
)
def test_every_key_matches_the_official_output(example, protocol, expected_file):
    expected = json.loads((example / expected_file).read_text())
    report = evaluate_files(
        "qvhighlights", example / "preds_val_first50.jsonl", example / "gt_val_first50.jsonl", protocol=protocol
    )
    assert report.metrics == expected
    # same key order as the official json (brief first, then sorted sections)
    assert list(report.metrics) == list(expected)
    assert list(report.metrics["brief"]) == list(expected["brief"])
    assert report.num_scored == 50 and not report.missing and not report.extra


def test_pure_function_takes_official_dicts(example):
    expected = json.loads((example / "metrics_r2tuning_vtg_eval.json").read_text())
    predictions = read_moment_predictions(example / "preds_val_first50.jsonl")
    truth = [json.loads(line) for line in (example / "gt_val_first50.jsonl").read_text().splitlines()]
    assert evaluate_moments(predictions, truth) == expected
    # typed records give the same numbers as raw dicts
    assert evaluate_moments(predictions, read_qvhighlights(example / "gt_val_first50.jsonl")) == expected


def test_full_val_file_needs_allow_missing(example, datasets_dir):
    from r2cli.errors import InputError

    full_truth = datasets_dir / "qvhighlights" / "highlight_val_release.jsonl"
    with pytest.raises(InputError, match=r"no prediction for query ids .* and 1495 more \(1500 in all\)"):
        evaluate_files("qvhighlights", example / "preds_val_first50.jsonl", full_truth)
    report = evaluate_files("qvhighlights", example / "preds_val_first50.jsonl", full_truth, allow_missing=True)
    expected = json.loads((example / "metrics_r2tuning_vtg_eval.json").read_text())
    assert report.metrics == expected
    assert len(report.missing) == 1500 and report.extra == []
