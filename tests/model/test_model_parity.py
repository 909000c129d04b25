"""Parity with the official R2-Tuning code: every r2_head_* and clip_tower_* file of each parity folder.

The files are golden outputs of the unmodified official code (see docs/fidelity.md and the README of
the shared parity folder). The folders are the compact golden set committed in tests/golden, and the
full shared set when present (the ``parity_dir`` fixture runs each test once per folder). Each case is
run through r2cli's faithful path and every stored tensor is compared. When a head file holds the
head's weights, the forward runs from the stored inputs; in every head file, decoding, saliency,
targets and losses also run from the recorded head outputs. Case names and sizes are read from the
files, never assumed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from golden.parity_files import GOLDEN_DIR, head_weights_complete, load_parity, parity_files

torch = pytest.importorskip("torch")

from r2cli.model.checkpoint import load_checkpoint, load_official_checkpoint  # noqa: E402
from r2cli.model.config import NmsConfig  # noqa: E402
from r2cli.model.losses import GroundingTargets, compute_losses  # noqa: E402
from r2cli.model.postprocess import postprocess_boundary  # noqa: E402
from r2cli.model.r2tuning import GroundingOutput, make_points  # noqa: E402

# tolerances from the parity README (float64 recomputation of the official forward is within these)
INTERMEDIATE = dict(atol=1e-5, rtol=1e-5)
FINE = dict(atol=1e-6, rtol=1e-6)
EXACT = dict(atol=0.0, rtol=0.0)
METADATA_KEYS = {"run_mode", "mode", "model_state", "min_logit_gap_top"}


def _files(parity_dir: Path, kind: str) -> list[Path]:
    files = parity_files(parity_dir, kind)
    if not files:
        if parity_dir == GOLDEN_DIR:
            pytest.fail(f"the golden set in {parity_dir} has no {kind} file (run tests/golden/make_golden.py)")
        pytest.skip(f"no {kind}_*.pt files in {parity_dir}")
    return files


def _load(path: Path) -> dict:
    return load_parity(path)


def _state_dict_layout(data: dict) -> dict[str, list[int]]:
    """Every key of the official head with its shape (a compact file lists them in state_dict_shapes)."""
    if "state_dict_shapes" in data:
        return {key: list(shape) for key, shape in data["state_dict_shapes"].items()}
    return {key: list(value.shape) for key, value in data["state_dict"].items()}


def _load_head(data: dict):
    """The official head of a parity file. A compact file keeps only the weights that the post-head
    stages read; the others are zero-filled here, so such a model must never run its forward."""
    if head_weights_complete(data):
        return load_official_checkpoint(data, preset="qvhighlights").model
    stored = data["state_dict"]
    state_dict = {key: stored[key] if key in stored else torch.zeros(shape)
                  for key, shape in data["state_dict_shapes"].items()}
    return load_official_checkpoint({"state_dict": state_dict}, preset="qvhighlights").model


def _recorded_output(inter: dict) -> GroundingOutput:
    """The official head's recorded outputs of one case as a GroundingOutput (official padding)."""
    video_mask = inter["video_msk"].bool()
    points = inter["point"]
    strides = [int(s) for s in torch.unique_consecutive(points[:, 3]).tolist()]
    return GroundingOutput(
        video_emb=inter["video_emb"], adapter_video_emb=inter["adapter_video_emb"],
        query_tokens=inter["adapter_query_emb"], query_emb=inter["query_emb_pooled"],
        levels=list(inter["pymid"]), level_strides=strides, points=points, out_class=inter["out_class"],
        coord_raw=inter["coord_head_raw"], out_coord=inter["out_coord"].clone(), video_mask=video_mask,
        query_mask=inter["query_msk"].bool(), lengths=video_mask.sum(1), official_padding=True,
        coll_v=list(inter["coll_v"]), coll_q=list(inter["coll_q"]))


def _close(failures: list[str], where: str, actual, expected, tol: dict) -> None:
    actual = torch.as_tensor(actual).detach().to(torch.float64)
    expected = torch.as_tensor(expected).detach().to(torch.float64)
    if actual.shape != expected.shape:
        failures.append(f"{where}: shape {list(actual.shape)} != expected {list(expected.shape)}")
        return
    if tol is EXACT:
        if not torch.equal(actual, expected):
            failures.append(f"{where}: not exactly equal ({int((actual != expected).sum())} elements differ)")
        return
    if not torch.allclose(actual, expected, atol=tol["atol"], rtol=tol["rtol"], equal_nan=True):
        diff = (actual - expected).abs().nan_to_num(0.0).max().item()
        failures.append(f"{where}: max abs diff {diff:.3g} above atol {tol['atol']} / rtol {tol['rtol']}")


def _run_case(model, bank, case, *, official: bool):
    inputs = case["inputs"]
    b = case["B"]
    video = bank[inputs["video_index"]].reshape(inputs["video_shape"])  # [B, T, k*P*Cv], inf rows = padding
    query = inputs["query"]  # [B, L, k*Cq]
    video_mask = video[:, :, 0].isfinite()
    query_mask = query[:, :, 0].isfinite()
    cfg = model.config
    video = video.view(b, video.size(1), -1, cfg.num_tokens, cfg.video_width)
    query = query.view(b, query.size(1), -1, cfg.query_width)
    with torch.no_grad():
        out = model(video, query, video_mask, query_mask, official_padding=official, record=True)
    return out, video_mask, query_mask


def _check_losses(failures: list[str], tag: str, model, out: GroundingOutput, inputs: dict, ref: dict) -> int:
    checked = 0
    targets = GroundingTargets(boundary=inputs["boundary"], saliency=inputs["saliency"],
                               pos_clip=inputs["pos_clip"], fps=inputs["fps"])
    with torch.no_grad():
        result = compute_losses(model, out, targets)
    for key, value in ref.items():
        where = f"{tag} loss.{key}"
        if key in METADATA_KEYS:
            continue
        if key.startswith("loss_"):
            if key not in result.losses:
                failures.append(f"{where}: not computed")
            else:
                _close(failures, where, result.losses[key], value, FINE)
        elif key == "avg_factor":
            if value != out.out_class.size(0):
                failures.append(f"{where}: {value} != batch size {out.out_class.size(0)}")
        elif key == "cls_tgt":
            _close(failures, where, result.cls_tgt, value, EXACT)
        elif key == "reg_tgt":
            _close(failures, where, result.reg_tgt, value, INTERMEDIATE)
        elif key == "pymid_msk":
            if len(value) != len(result.level_masks):
                failures.append(f"{where}: {len(result.level_masks)} levels, expected {len(value)}")
            for i, (mine, exp) in enumerate(zip(result.level_masks, value)):
                _close(failures, f"{where}[{i}]", mine, exp, EXACT)
        elif key == "video_msk":
            _close(failures, where, out.video_mask.long(), value, EXACT)
        elif key == "point":
            _close(failures, where, out.points, value, EXACT)
        elif key == "coll_q_pooled":
            _close(failures, where, torch.stack(result.coll_q_pooled), value, INTERMEDIATE)
        else:
            failures.append(f"{where}: stored value not checked by this test")
        checked += 1
    return checked


def _check_recorded(failures: list[str], name: str, model, case: dict) -> int:
    """Points, pooling, saliency, decoding, targets and losses from the official head's recorded outputs."""
    inputs, expected = case["inputs"], case["expected"]
    inter = expected["intermediate"]
    out = _recorded_output(inter)
    checked = 0
    shapes = [int(level.shape[1]) for level in out.levels]
    points = make_points(shapes, out.level_strides, tuple(model.config.strides), torch.device("cpu"))
    _close(failures, f"{name} point", points, inter["point"], EXACT)
    with torch.no_grad():
        pooled = model.pooling(out.query_tokens, out.query_mask)
    _close(failures, f"{name} query_emb_pooled", pooled, inter["query_emb_pooled"], INTERMEDIATE)
    checked += 2
    if "out_score" in inter:
        _close(failures, f"{name} out_score", model.clip_query_cosine(out), inter["out_score"], FINE)
        checked += 1
    if "saliency_levels" in inter:
        _close(failures, f"{name} saliency_levels", model.saliency_levels(out)[:, 0], inter["saliency_levels"], FINE)
        checked += 1
    if "test" in expected:
        prediction = model.predict(out, inputs["fps"])[0]
        _close(failures, f"{name} test.saliency", prediction.saliency, expected["test"]["saliency"], FINE)
        _close(failures, f"{name} test.boundary", prediction.boundary, expected["test"]["boundary"], INTERMEDIATE)
        checked += 2
    if "loss" in expected:
        checked += _check_losses(failures, name, model, _recorded_output(inter), inputs, expected["loss"])
    return checked


def _check_head_file(path: Path) -> tuple[list[str], int]:
    data = _load(path)
    failures: list[str] = []
    model = _load_head(data)
    forward = head_weights_complete(data)  # a compact golden file has no weights to run the forward
    checked = 0
    for case in data["cases"]:
        name = f"{path.name}:{case['name']}"
        inputs, expected = case["inputs"], case["expected"]
        # forward from the inputs (when the file has the weights); a batch of one: both paths must agree
        official_runs = ([True] + ([False] if case["B"] == 1 else [])) if forward else []
        for official in official_runs:
            tag = f"{name}[{'official' if official else 'product'}]"
            out, video_mask, query_mask = _run_case(model, data["video_bank"], case, official=official)
            inter = expected.get("intermediate", {})
            produced = {
                "video_msk": video_mask.long(), "query_msk": query_mask.long(),
                "adapter_video_emb": out.adapter_video_emb, "video_emb": out.video_emb,
                "adapter_query_emb": out.query_tokens, "query_emb_pooled": out.query_emb,
                "tem_inputs": torch.stack(out.tem_inputs), "tem_outputs": torch.stack(out.tem_outputs),
                "coll_v": torch.stack(out.coll_v), "coll_q": torch.stack(out.coll_q),
                "point": out.points, "out_class": out.out_class, "coord_head_raw": out.coord_raw,
                "out_coord": out.out_coord,
            }
            for key, value in inter.items():
                if key in METADATA_KEYS:
                    continue
                where = f"{tag} intermediate.{key}"
                if key == "pymid":
                    if len(value) != len(out.levels):
                        failures.append(f"{where}: {len(out.levels)} levels, expected {len(value)}")
                    for i, (mine, ref) in enumerate(zip(out.levels, value)):
                        _close(failures, f"{where}[{i}]", mine, ref, INTERMEDIATE)
                elif key == "pymid_shapes":
                    if [list(level.shape) for level in out.levels] != [list(s) for s in value]:
                        failures.append(f"{where}: {[list(lv.shape) for lv in out.levels]} != {value}")
                elif key == "out_score":
                    _close(failures, where, model.clip_query_cosine(out), value, FINE)
                elif key == "saliency_levels":
                    _close(failures, where, model.saliency_levels(out)[:, 0], value, FINE)
                elif key in produced:
                    exact = key in ("video_msk", "query_msk", "point")
                    _close(failures, where, produced[key], value, EXACT if exact else INTERMEDIATE)
                else:
                    failures.append(f"{where}: stored tensor not checked by this test")
                checked += 1
            if "test" in expected:
                prediction = model.predict(out, inputs["fps"])[0]
                _close(failures, f"{tag} test.saliency", prediction.saliency, expected["test"]["saliency"], FINE)
                _close(failures, f"{tag} test.boundary", prediction.boundary, expected["test"]["boundary"],
                       INTERMEDIATE)
                checked += 2
            if "loss" in expected:
                checked += _check_losses(failures, tag, model, out, inputs, expected["loss"])
        checked += _check_recorded(failures, f"{name}[recorded outputs]", model, case)
    return failures, checked


def test_every_head_case_matches_the_official_code(parity_dir):
    total = 0
    for path in _files(parity_dir, "r2_head"):
        failures, checked = _check_head_file(path)
        assert not failures, "\n".join(failures[:20])
        total += checked
    assert total > 0


def test_state_dict_keys_and_order_equal_the_official_ones(parity_dir):
    for path in _files(parity_dir, "r2_head"):
        data = _load(path)
        layout = _state_dict_layout(data)
        model = _load_head(data)
        assert list(model.state_dict()) == list(layout), path.name
        assert {key: list(value.shape) for key, value in model.state_dict().items()} == layout, path.name


def test_postprocess_matches_the_official_evaluation(parity_dir):
    seen = 0
    for path in _files(parity_dir, "r2_head"):
        for case in _load(path).get("postprocess", []):
            nms = case["nms_cfg"]
            config = None if nms is None else NmsConfig(type=nms["type"], threshold=nms.get("thres", 0.7),
                                                        sigma=nms.get("sigma", 0.5))
            out = postprocess_boundary(case["input_boundary"], case["duration"], case["unit"], config)
            expected = case["output_boundary"]
            where = f"{path.name}:{case['name']}"
            assert out.shape == expected.shape, where
            scored = expected[:, 2] != 0
            # rows with a score keep their order; zero-score rows come from an unstable sort: compare as multisets
            assert torch.equal(out[: int(scored.sum())], expected[scored]), where
            assert torch.equal(out[:, 2] != 0, scored), where
            mine_zero = sorted(map(tuple, out[out[:, 2] == 0].tolist()))
            assert mine_zero == sorted(map(tuple, expected[~scored].tolist())), where
            seen += 1
    if not seen:
        if parity_dir == GOLDEN_DIR:
            pytest.fail("the golden set holds no post-processing case (run tests/golden/make_golden.py)")
        pytest.skip("the parity files hold no post-processing cases")


def _clip_files(parity_dir: Path) -> list[Path]:
    return _files(parity_dir, "clip_tower")


def test_e2e_head_loads_with_inferred_widths(parity_dir, tmp_path):
    for path in _clip_files(parity_dir):
        e2e = _load(path)["e2e"]
        head_file = tmp_path / f"{path.name.split('.')[0]}-head.pth"
        torch.save({"state_dict": e2e["head_state_dict"], "meta": {}}, head_file)
        config = e2e["head_config"]
        video_width, query_width, num_tokens = config["arch_dims"]
        loaded = load_checkpoint(head_file, num_tokens=num_tokens)
        assert loaded.config.dims == config["dims"]
        assert (loaded.config.video_width, loaded.config.query_width) == (video_width, query_width)
        assert loaded.config.num_tokens == num_tokens
        assert loaded.config.use_tef and loaded.config.coord_head
        assert loaded.config.strides == tuple(config["strides"])


@pytest.mark.skipif(importlib.util.find_spec("r2cli.features.clip") is None,
                    reason="r2cli.features.clip (the CLIP tower module) is not available")
def test_e2e_cache_path_reproduces_official_expectations(parity_dir, tmp_path):
    from r2cli.features.clip import load_clip

    for path in _clip_files(parity_dir):
        data = _load(path)
        e2e = data["e2e"]
        clip_file = tmp_path / f"{path.name.split('.')[0]}-clip.pt"
        torch.save(dict(data["state_dict"]), clip_file)
        tower = load_clip(clip_file)
        head_file = tmp_path / f"{path.name.split('.')[0]}-head.pth"
        torch.save({"state_dict": e2e["head_state_dict"]}, head_file)
        loaded = load_checkpoint(head_file, num_tokens=tower.num_tokens, video_width=tower.video_width)
        k = loaded.config.k
        frames = e2e["inputs"]["frames_uint8"]  # [T, 3, S, S]
        video_layers, _ = tower.video_features(frames, k=k)  # [T, k, P, Cv]
        tokens = e2e["inputs"]["query"][0]
        query_text = next(q for q, ids in zip(data["queries"], data["tokens"]) if torch.equal(ids, tokens))
        query_layers, _, _ = tower.query_features([query_text], k=k)  # [L, k, Cq]
        # the cache path stores float16 features
        video = video_layers.half()[None]
        query = query_layers[0].half()[None]
        with torch.no_grad():
            out = loaded.model(video, query)
            prediction = loaded.model.predict(out, e2e["inputs"]["fps"])[0]
        expected = e2e["expected"]
        torch.testing.assert_close(prediction.saliency, expected["cache_path_saliency"], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(prediction.boundary, expected["cache_path_boundary"], atol=1e-4, rtol=1e-4)
