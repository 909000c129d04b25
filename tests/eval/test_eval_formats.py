"""Submission readers/writers and the `r2cli evaluate` command (typer CliRunner)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from r2cli.errors import InputError
from r2cli.eval import (
    MomentPrediction,
    SaliencyPrediction,
    evaluate_files,
    read_moment_predictions,
    read_saliency_predictions,
    write_moment_predictions,
    write_saliency_predictions,
)


def _write_lines(path, *records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_moment_predictions_round_trip(tmp_path):
    written = write_moment_predictions(
        [MomentPrediction(qid=3, query="a dog", vid="v1", windows=[(1, 4.5, 0.9)], saliency=[0.1, 0.2])],
        tmp_path / "out" / "sub.jsonl",
    )
    line = json.loads(written.read_text())
    assert list(line) == ["qid", "query", "vid", "pred_relevant_windows", "pred_saliency_scores"]
    assert line["pred_relevant_windows"] == [[1.0, 4.5, 0.9]]
    (record,) = read_moment_predictions(written)
    assert record["qid"] == 3 and record["pred_saliency_scores"] == [0.1, 0.2]


def test_saliency_predictions_round_trip(tmp_path):
    path = write_saliency_predictions([SaliencyPrediction(vid="Se3oxnaPsz0", scores=[1, 2], domain="BK")], tmp_path / "s.jsonl")
    assert read_saliency_predictions(path)[0]["pred_saliency_scores"] == [1.0, 2.0]


def test_writer_refuses_nan(tmp_path):
    with pytest.raises(InputError, match="finite numbers"):
        write_moment_predictions([MomentPrediction(qid=1, windows=[(0, 1, float("nan"))])], tmp_path / "x.jsonl")
    assert not list(tmp_path.iterdir())  # no partial file left behind


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r"line 2: not valid JSON"),
        ({"query": "x", "pred_relevant_windows": []}, r"line 2: required field 'qid' is missing"),
        ({"qid": 2}, r"line 2: needs field 'pred_relevant_windows' or 'pred_saliency_scores'"),
        ({"qid": 2, "pred_relevant_windows": [[0, 1]]}, r"line 2: field 'pred_relevant_windows\[0\]' must be \[start, end, score\]"),
        ({"qid": 2, "pred_saliency_scores": [0.1]}, r"line 2: every line must carry the same fields as .*line 1"),
        ({"qid": 2, "pred_relevant_windows": [[0, 1, "high"]]}, r"line 2: field 'pred_relevant_windows\[0\]'"),
    ],
)
def test_bad_prediction_lines_name_line_and_field(tmp_path, line, message):
    path = _write_lines(tmp_path / "p.jsonl", {"qid": 1, "pred_relevant_windows": [[0, 1, 0.5]]}, line)
    with pytest.raises(InputError, match=message):
        read_moment_predictions(path)


def _grounding_files(tmp_path):
    truth = _write_lines(
        tmp_path / "test.jsonl",
        {"qid": "s1_0", "query": "q", "duration": 60.0, "vid": "s1", "relevant_windows": [[0, 10]]},
        {"qid": "s1_1", "query": "q", "duration": 60.0, "vid": "s1", "relevant_windows": [[10, 20]]},
    )
    predictions = _write_lines(
        tmp_path / "pred.jsonl",
        {"qid": "s1_0", "pred_relevant_windows": [[0, 5, 0.9]]},  # IoU 0.5
        {"qid": "s1_1", "pred_relevant_windows": [[12, 20, 0.9]]},  # IoU 0.8
    )
    return predictions, truth


@pytest.mark.parametrize("dataset", ["charades", "tacos", "ego4d"])
def test_cli_json_prints_official_keys(tmp_path, dataset):
    from r2cli.cli.main import app

    predictions, truth = _grounding_files(tmp_path)
    result = CliRunner().invoke(app, ["evaluate", "--dataset", dataset, str(predictions), str(truth), "--json"])
    assert result.exit_code == 0, result.output
    brief = json.loads(result.stdout)
    # R1@0.5: both (0.5 and 0.8 >= 0.5); R1@0.7: one; mIoU (0.5 + 0.8) / 2 = 65
    assert brief["MR-full-R1@0.3"] == 100.0 and brief["MR-full-R1@0.5"] == 100.0
    assert brief["MR-full-R1@0.7"] == 50.0 and brief["MR-full-mIoU"] == 65.0
    assert "HL-min-VeryGood-mAP" not in brief


def test_cli_table_and_detail(tmp_path):
    from r2cli.cli.main import app

    predictions, truth = _grounding_files(tmp_path)
    runner = CliRunner()
    table = runner.invoke(app, ["evaluate", "-d", "tacos", str(predictions), str(truth)], env={"COLUMNS": "120"})
    assert table.exit_code == 0 and "MR-full-R1@0.7" in table.stdout and "50.00" in table.stdout
    detail = runner.invoke(app, ["evaluate", "-d", "tacos", str(predictions), str(truth), "--json", "--detail"])
    assert json.loads(detail.stdout)["full"]["MR-R1"]["0.95"] == 0.0


def test_cli_missing_ids_and_allow_missing(tmp_path):
    from r2cli.cli.main import main

    predictions, truth = _grounding_files(tmp_path)
    _write_lines(predictions, {"qid": "s1_0", "pred_relevant_windows": [[0, 5, 0.9]]})
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "-d", "tacos", str(predictions), str(truth), "--json"])
    assert exit_info.value.code == InputError.exit_code
    report = evaluate_files("tacos", predictions, truth, allow_missing=True)
    assert report.missing == ["s1_1"] and report.brief["MR-full-R1@0.5"] == 100.0


def test_cli_rejects_domain_for_grounding(tmp_path):
    from r2cli.errors import UsageError

    predictions, truth = _grounding_files(tmp_path)
    with pytest.raises(UsageError, match="--domain applies to youtube and tvsum only"):
        evaluate_files("tacos", predictions, truth, domains=["dog"])


def test_cli_qvhighlights_example_json(datasets_dir):
    from r2cli.cli.main import app

    example = datasets_dir / "qvhighlights" / "eval_example"
    expected = json.loads((example / "metrics_r2tuning_vtg_eval.json").read_text())["brief"]
    args = ["evaluate", "--dataset", "qvhighlights", str(example / "preds_val_first50.jsonl"), str(example / "gt_val_first50.jsonl"), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == expected


def test_cli_tvsum_domain(datasets_dir, tmp_path):
    from r2cli.cli.main import app
    from r2cli.data.highlights import read_tvsum

    anno = datasets_dir / "tvsum" / "tvsum_anno.json"
    videos = read_tvsum(anno)
    path = write_saliency_predictions(
        [SaliencyPrediction(vid=v.vid, scores=[sum(r) for r in v.scores]) for v in videos.values()], tmp_path / "t.jsonl"
    )
    result = CliRunner().invoke(app, ["evaluate", "-d", "tvsum", str(path), str(anno), "--domain", "bk", "--domain", "VU", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"mAP", "BK", "VU"}
    assert data["mAP"] == round((data["BK"]["mAP"] + data["VU"]["mAP"]) / 2, 5)


def test_cli_detail_without_json_adds_the_nested_table(tmp_path):
    from r2cli.cli.main import app

    predictions, truth = _grounding_files(tmp_path)
    runner = CliRunner()
    args = ["evaluate", "-d", "tacos", str(predictions), str(truth)]
    plain = runner.invoke(app, args, env={"COLUMNS": "120"})
    detail = runner.invoke(app, [*args, "--detail"], env={"COLUMNS": "120"})
    assert plain.exit_code == 0 and detail.exit_code == 0, detail.output
    assert "full MR-R1 @0.95" not in plain.stdout
    assert "full MR-R1 @0.95" in detail.stdout  # the flag changes the output without --json too


def test_protocol_is_refused_for_saliency_datasets(tmp_path):
    from r2cli.errors import UsageError

    predictions, truth = _grounding_files(tmp_path)
    with pytest.raises(UsageError, match="--protocol applies to moment retrieval"):
        evaluate_files("tvsum", predictions, truth, protocol="moment_detr")
