"""QVHighlights highlight detection on hand-derived cases."""

from __future__ import annotations

import pytest

from r2cli.eval import evaluate_moments
from r2cli.eval.highlights import binary_average_precision


def test_binary_ap_hand_cases():
    # thresholds .9/.8/.7/.1 -> (P, R) = (1, .5), (.5, .5), (2/3, 1), (.5, 1); levels 1 -> 2/3 and .5 -> 1
    assert binary_average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx((2 / 3 + 1) / 2)
    # tied scores share one threshold: (.5, .5) then (2/3, 1); interpolation lifts level .5 to 2/3
    assert binary_average_precision([1, 0, 1], [0.5, 0.5, 0.1]) == pytest.approx(2 / 3)
    # all-negative / all-positive columns short-circuit
    assert binary_average_precision([0, 0, 0], [3, 2, 1]) == 0.0
    assert binary_average_precision([1, 1], [0, 1]) == 1.0


def _query(predicted):
    truth = {
        "qid": 1,
        "duration": 8,  # 4 clips of 2 s
        "relevant_windows": [[2, 6]],
        "relevant_clip_ids": [1, 2],
        "saliency_scores": [[4, 4, 4], [2, 3, 1]],
    }
    return [{"qid": 1, "pred_saliency_scores": predicted}], [truth]


def test_hl_levels_hand_derived():
    predictions, truth = _query([0.1, 0.5, 0.9, 0.2])
    metrics = evaluate_moments(predictions, truth)
    # argmax = clip 2, scored (2, 3, 1): VeryGood (>= 4) misses, Good and Fair hit through the max over annotators
    assert metrics["HL-min-VeryGood"]["HL-Hit1"] == 0.0
    assert metrics["HL-min-Good"]["HL-Hit1"] == 100.0
    assert metrics["HL-min-Fair"]["HL-Hit1"] == 100.0
    # VeryGood labels [0,1,0,0] for each annotator: ranked clip2 (neg), clip1 (pos) -> AP 0.5
    assert metrics["HL-min-VeryGood"]["HL-mAP"] == 50.0
    # Good: annotators 0 and 2 -> [0,1,0,0] -> 0.5; annotator 1 -> [0,1,1,0] -> 1; mean 2/3
    assert metrics["HL-min-Good"]["HL-mAP"] == 66.67
    assert list(metrics["brief"]) == [
        "HL-min-Fair-mAP", "HL-min-Fair-Hit1", "HL-min-Good-mAP", "HL-min-Good-Hit1",
        "HL-min-VeryGood-mAP", "HL-min-VeryGood-Hit1",
    ]  # fmt: skip
    assert "MR-full-mAP" not in metrics["brief"]  # no pred_relevant_windows -> no MR keys


def test_hl_predictions_shorter_or_longer_than_the_video():
    # shorter: padded with zeros; the argmax (clip 1) is a VeryGood hit
    predictions, truth = _query([0.0, 1.0])
    assert evaluate_moments(predictions, truth)["HL-min-VeryGood"] == {"HL-mAP": 100.0, "HL-Hit1": 100.0}
    # longer: the argmax of the full list is clip 5, beyond the 4 clips -> Hit1 0; mAP uses the first 4 scores
    predictions, truth = _query([0.0, 1.0, 0.0, 0.0, 0.0, 5.0])
    assert evaluate_moments(predictions, truth)["HL-min-VeryGood"] == {"HL-mAP": 100.0, "HL-Hit1": 0.0}
