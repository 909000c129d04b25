"""YouTube Highlights and TVSum mAP on hand-derived cases, including TVSum's lower-median ties."""

from __future__ import annotations

import pytest

from r2cli.data.highlights import TVSumVideo, YouTubeVideo
from r2cli.errors import InputError, UsageError
from r2cli.eval import evaluate_tvsum, evaluate_youtube
from r2cli.eval.domains import trapezoid_average_precision, tvsum_domain_map

DOG_VAL = ("a2nj7XCo2Rk", "9rP5yF9EC3Y")  # first two dog/val ids of the official split
BK_VAL = "Se3oxnaPsz0"


def _youtube(vid, match, domain="dog"):
    return YouTubeVideo(
        vid=vid, domain=domain, title="t", fps=30.0, num_frames=100 * len(match),
        clips=tuple((50.0 * i, 50.0 * i + 100) for i in range(len(match))), match=tuple(match), mturk=None,
    )  # fmt: skip


def _tvsum(vid, column, domain="BK"):
    return TVSumVideo(
        vid=vid, domain=domain, title="t", fps=30.0, num_frames=60 * len(column),
        scores=tuple((float(v),) * 20 for v in column),
    )  # fmt: skip


def test_youtube_hand_derived():
    videos = {DOG_VAL[0]: _youtube(DOG_VAL[0], [1, -1, 0, 1]), DOG_VAL[1]: _youtube(DOG_VAL[1], [-1, 1])}
    predictions = [
        {"vid": DOG_VAL[0], "pred_saliency_scores": [0.9, 0.8, 0.7, 0.1]},
        {"vid": DOG_VAL[1], "pred_saliency_scores": [0.2, 0.1]},
    ]
    # video 1: labels (match > 0; 0 counts negative) ranked [1,0,0,1]:
    #   step 1 rec .5 prc 1 -> .5*(1+1)/2 = .5; step 4 rec 1 prc .5 -> .5*(1/3+.5)/2 = .208333 -> AP .708333
    # video 2: ranked [0,1]: step 2 rec 1 prc .5 -> 1*(0+.5)/2 = .25
    # dog mAP = (.708333 + .25) / 2 = .479167
    result = evaluate_youtube(predictions, videos, domains=["dog"])
    assert result == {"mAP": 0.47917, "dog": {"mAP": 0.47917}}


def test_youtube_score_count_must_match_clips():
    videos = {DOG_VAL[0]: _youtube(DOG_VAL[0], [1, -1, 0, 1])}
    with pytest.raises(InputError, match=r"one score per clip of video 'a2nj7XCo2Rk' \(4\), got 3"):
        evaluate_youtube([{"vid": DOG_VAL[0], "pred_saliency_scores": [1, 2, 3]}], videos, domains=["dog"])


def test_tvsum_top5_hand_derived():
    # every annotator rates [1,1,1,1,5,5,5,5]: lower median 1, positives = shots 4..7
    videos = {BK_VAL: _tvsum(BK_VAL, [1, 1, 1, 1, 5, 5, 5, 5])}
    scores = [0.9, 0.1, 0.2, 0.3, 0.8, 0.7, 0.05, 0.04]
    # top 5 by score: shots 0,4,5,3,2 -> labels [0,1,1,0,0], 2 positives among them:
    #   step 2 rec .5 prc .5 -> .5*(0+.5)/2 = .125; step 3 rec 1 prc 2/3 -> .5*(.5+2/3)/2 = .291667 -> .416667
    result = evaluate_tvsum([{"vid": BK_VAL, "pred_saliency_scores": scores}], videos, domains=["bk"])
    assert result == {"mAP": 0.41667, "BK": {"mAP": 0.41667}}


def test_tvsum_ties_use_the_lower_median_and_strict_greater():
    # ratings [1,1,2,2]: lower median 1 -> positives are the two 2s (an upper median, 2, would give none;
    # ">=" would make every shot positive)
    column = [1, 1, 2, 2]
    # scores rank shot 0 first, then shot 2: top-5 labels [0,1,0,1] -> .5*(0+.5)/2 + .5*(1/3+.5)/2 = .333333
    assert tvsum_domain_map([([[v] * 20 for v in column], [0.9, 0.1, 0.8, 0.0])]) == pytest.approx(0.125 + 0.5 * (1 / 3 + 0.5) / 2)
    # tied predicted scores keep clip order (stable): ranked labels [0,0,1,1]
    assert tvsum_domain_map([([[v] * 20 for v in column], [0.5, 0.5, 0.5, 0.5])]) == pytest.approx(
        0.5 * (0 + 1 / 3) / 2 + 0.5 * (1 / 3 + 0.5) / 2
    )


def test_tvsum_scores_are_truncated_to_the_annotation_and_checked():
    videos = {BK_VAL: _tvsum(BK_VAL, [1, 1, 1, 1, 5, 5, 5, 5])}
    longer = [0.0] * 4 + [1.0] * 4 + [9.0] * 3  # 3 extra scores are dropped, not ranked
    assert evaluate_tvsum([{"vid": BK_VAL, "pred_saliency_scores": longer}], videos, domains=["BK"])["mAP"] == 1.0
    with pytest.raises(InputError, match="differ by < 5"):
        evaluate_tvsum([{"vid": BK_VAL, "pred_saliency_scores": [1.0] * 13}], videos, domains=["BK"])


def test_trapezoid_without_positives_is_zero():
    assert trapezoid_average_precision([0, 0, 0]) == 0


def test_domain_errors_and_allow_missing():
    videos = {DOG_VAL[0]: _youtube(DOG_VAL[0], [1, -1]), DOG_VAL[1]: _youtube(DOG_VAL[1], [-1, 1])}
    one = [{"vid": DOG_VAL[0], "pred_saliency_scores": [0.9, 0.1]}]
    with pytest.raises(InputError, match="no prediction for video ids '9rP5yF9EC3Y'"):
        evaluate_youtube(one, videos)
    assert evaluate_youtube(one, videos, allow_missing=True) == {"mAP": 1.0, "dog": {"mAP": 1.0}}
    unknown = one + [{"vid": "not-a-video", "pred_saliency_scores": [1.0]}]
    with pytest.raises(InputError, match="not in the ground truth: 'not-a-video'"):
        evaluate_youtube(unknown, videos, allow_missing=False, domains=["dog"])
    with pytest.raises(UsageError, match="--domain for youtube must be one of"):
        evaluate_youtube(one, videos, domains=["cats"])


def test_real_annotations_with_oracle_predictions(datasets_dir):
    from r2cli.data.highlights import read_tvsum, read_youtube_highlights

    youtube = read_youtube_highlights(datasets_dir / "youtube" / "youtube_anno.json")
    oracle = [{"vid": v.vid, "pred_saliency_scores": [float(m) for m in v.match]} for v in youtube.values()]
    result = evaluate_youtube(oracle, youtube)  # train-split predictions are ignored, val ones scored
    assert result["mAP"] == 1.0 and set(result) == {"mAP", "dog", "gymnastics", "parkour", "skating", "skiing", "surfing"}
    tvsum = read_tvsum(datasets_dir / "tvsum" / "tvsum_anno.json")
    mean_rating = [{"vid": v.vid, "pred_saliency_scores": [sum(r) for r in v.scores]} for v in tvsum.values()]
    result = evaluate_tvsum(mean_rating, tvsum)
    assert len(result) == 11 and 0.5 < result["mAP"] <= 1.0
