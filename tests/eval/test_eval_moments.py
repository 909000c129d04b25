"""Moment-retrieval metrics on small hand-derived cases (Charades-STA / TACoS / Ego4D style) and quirks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from r2cli.errors import InputError
from r2cli.eval import evaluate_moments
from r2cli.eval.moments import average_precision_detection, temporal_iou_cross, temporal_iou_paired


def _truth(qid, *windows, duration=60):
    return {"qid": qid, "query": "q", "vid": "v", "duration": duration, "relevant_windows": [list(w) for w in windows]}


def _pred(qid, *rows):
    return {"qid": qid, "pred_relevant_windows": [list(r) for r in rows]}


# Three single-window queries, as in Charades-STA / TACoS / Ego4D-NLQ.
# q1: GT [0,10]; first pred [0,5] -> IoU 5/10 = 0.5; second pred [0,10] -> IoU 1.
# q2: GT [10,20]; pred [12,20] -> IoU 8/10 = 0.8.
# q3: GT [0,4]; pred [6,8] -> IoU 0.
HAND_TRUTH = [_truth("s1_0", (0, 10)), _truth("s1_1", (10, 20)), _truth("s2_0", (0, 4))]
HAND_PREDICTIONS = [
    _pred("s1_0", (0, 5, 0.9), (0, 10, 0.8)),
    _pred("s1_1", (12, 20, 0.5)),
    _pred("s2_0", (6, 8, 0.7)),
]


def test_hand_derived_r1_miou_r5_map():
    brief = evaluate_moments(HAND_PREDICTIONS, HAND_TRUTH)["brief"]
    # R1 uses the first window: IoUs 0.5, 0.8, 0 -> @0.3 2/3, @0.5 2/3 (0.5 >= 0.5), @0.7 1/3
    assert brief["MR-full-R1@0.3"] == 66.67
    assert brief["MR-full-R1@0.5"] == 66.67
    assert brief["MR-full-R1@0.7"] == 33.33
    # mIoU = (0.5 + 0.8 + 0) / 3 = 0.43333
    assert brief["MR-full-mIoU"] == 43.33
    # R5: q1's best pair is [0,10] (IoU 1) -> @0.7: q1, q2 yes, q3 no
    assert brief["MR-full-R5@0.7"] == 66.67
    # mAP. q1 at 0.5: [0,5] is a TP (0.5 >= 0.5), [0,10] finds its GT taken -> FP: P=[1, .5], R=[1, 1] -> AP 1.
    #   q1 above 0.5: [0,5] FP, [0,10] TP: P=[0, .5], R=[0, 1] -> interpolated AP 0.5.
    # q2: AP 1 for thresholds <= 0.8 (0.5..0.8, 7 of them), 0 for 0.85, 0.9, 0.95. q3: AP 0.
    # mAP@0.5 = (1 + 1 + 0) / 3; mAP@0.75 = (0.5 + 1 + 0) / 3
    assert brief["MR-full-mAP@0.5"] == 66.67
    assert brief["MR-full-mAP@0.75"] == 50.0
    # average = (2/3 + 6 * 0.5 + 3 * 0.5/3) / 10 = 0.416667
    assert brief["MR-full-mAP"] == 41.67


def test_empty_buckets_fall_back_to_full_set():
    metrics = evaluate_moments(HAND_PREDICTIONS, HAND_TRUTH)
    # every GT is <= 10 s long: "short" holds all three; middle and long are empty and use the full sets
    assert metrics["short"] == metrics["full"]
    assert metrics["brief"]["MR-middle-mAP"] == metrics["brief"]["MR-long-mAP"] == 41.67


def test_r1_uses_the_first_window_in_list_order_not_the_best_scored():
    truth = [_truth(1, (0, 10))]
    predictions = [_pred(1, (50, 60, 0.1), (0, 10, 0.9))]
    brief = evaluate_moments(predictions, truth)["brief"]
    assert brief["MR-full-R1@0.5"] == 0.0  # the first row [50,60] misses
    assert brief["MR-full-mAP"] == 100.0  # mAP re-sorts by score: [0,10] ranks first
    assert brief["MR-full-R5@0.5"] == 100.0  # R5 looks at the first 5 rows


def test_map_takes_the_first_10_windows_in_list_order():
    truth = [_truth(1, (0, 10))]
    misses = [(20 + 2 * i, 21 + 2 * i, 0.5) for i in range(10)]
    predictions = [_pred(1, *misses, (0, 10, 1.0))]  # the 11th row is perfect and the highest scored
    assert evaluate_moments(predictions, truth)["brief"]["MR-full-mAP"] == 0.0
    predictions = [_pred(1, *misses[:9], (0, 10, 0.0))]  # 10th row, lowest score: rank 10 of 10 -> P = 1/10
    assert evaluate_moments(predictions, truth)["brief"]["MR-full-mAP"] == 10.0


def test_r1_picks_the_gt_window_with_highest_iou():
    truth = [_truth(1, (0, 10), (30, 40))]
    predictions = [_pred(1, (31, 40, 1.0))]  # IoU 0.9 with the second GT window
    assert evaluate_moments(predictions, truth)["brief"]["MR-full-R1@0.7"] == 100.0


def test_ties_in_score_keep_list_order_in_map():
    # two rows with the same score: the first in list order ranks first (stable sort)
    truth = [_truth(1, (0, 10))]
    first_hits = [_pred(1, (0, 10, 0.5), (40, 50, 0.5))]
    first_misses = [_pred(1, (40, 50, 0.5), (0, 10, 0.5))]
    assert evaluate_moments(first_hits, truth)["brief"]["MR-full-mAP"] == 100.0
    assert evaluate_moments(first_misses, truth)["brief"]["MR-full-mAP"] == 50.0  # P=[0, .5], R=[0, 1]


def test_iou_functions_keep_the_official_edge_cases():
    cross = temporal_iou_cross(np.array([[5, 5]]), np.array([[5, 5], [0, 10]]))
    assert math.isnan(cross[0, 0]) and cross[0, 1] == 0
    paired = temporal_iou_paired(np.array([[0, 2], [5, 5]]), np.array([[4, 6], [5, 5]]))
    assert paired.tolist() == [0.0, 0.0]
    # a zero-length prediction on a zero-length GT counts as a match in mAP (NaN is never "< threshold")
    assert average_precision_detection([[5, 5]], [[5, 5, 1.0]]).tolist() == [1.0] * 10


def test_moment_detr_protocol_has_no_r5_and_a_150s_long_bucket():
    truth = [_truth(1, (0, 200), duration=300), _truth(2, (0, 40), duration=300)]
    predictions = [_pred(1, (0, 200, 1.0)), _pred(2, (0, 10, 1.0))]
    detr = evaluate_moments(predictions, truth, protocol="moment_detr")
    r2 = evaluate_moments(predictions, truth)
    assert "MR-R5" not in detr["full"] and "0.3" not in detr["full"]["MR-R1"]
    # the 200 s window is "long" for R2-Tuning (30, inf) but not for Moment-DETR (30, 150]
    assert r2["long"]["MR-R1"]["0.5"] == 50.0
    assert detr["long"]["MR-R1"]["0.5"] == 0.0


def test_prediction_without_windows_is_an_error_naming_the_query():
    with pytest.raises(InputError, match="no predicted window for query ids 1"):
        evaluate_moments([_pred(1)], [_truth(1, (0, 10))])


def test_missing_and_extra_ids():
    truth = [_truth(i, (0, 10)) for i in range(8)]
    predictions = [_pred(i, (0, 10, 1.0)) for i in range(2, 10)]
    with pytest.raises(InputError) as error:
        evaluate_moments(predictions, truth)
    message = str(error.value)
    assert "no prediction for query ids 0, 1" in message
    assert "not in the ground truth: 8, 9" in message
    brief = evaluate_moments(predictions, truth, allow_missing=True)["brief"]
    assert brief["MR-full-R1@0.7"] == 100.0


def test_many_missing_ids_are_summarised():
    truth = [_truth(i, (0, 10)) for i in range(20)]
    with pytest.raises(InputError, match=r"0, 1, 2, 3, 4 and 14 more \(19 in all\)"):
        evaluate_moments([_pred(19, (0, 10, 1.0))], truth)


def test_int_and_string_qids_match():
    assert evaluate_moments([_pred("7", (0, 10, 1.0))], [_truth(7, (0, 10))])["brief"]["MR-full-mAP"] == 100.0


def test_repeated_prediction_ids_are_rejected():
    with pytest.raises(InputError, match="predictions repeat query ids 1"):
        evaluate_moments([_pred(1, (0, 1, 1)), _pred(1, (0, 1, 1))], [_truth(1, (0, 10))])
