"""Parity with the official R2-Tuning code: every r2_head_*.pt and clip_tower_*.pt in the parity folder.

The files are golden outputs of the unmodified official code (see the README in that folder). Each
case is run through r2cli's faithful path and every stored tensor is compared. Case names and sizes
are read from the files, never assumed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from r2cli.model.checkpoint import load_checkpoint, load_official_checkpoint  # noqa: E402
from r2cli.model.config import NmsConfig  # noqa: E402
from r2cli.model.losses import GroundingTargets, compute_losses  # noqa: E402
from r2cli.model.postprocess import postprocess_boundary  # noqa: E402

# tolerances from the parity README (float64 recomputation of the official forward is within these)
INTERMEDIATE = dict(atol=1e-5, rtol=1e-5)
FINE = dict(atol=1e-6, rtol=1e-6)
EXACT = dict(atol=0.0, rtol=0.0)
METADATA_KEYS = {"run_mode", "mode", "model_state", "min_logit_gap_top"}


def _files(parity_dir: Path, pattern: str) -> list[Path]:
    files = sorted(parity_dir.glob(pattern))
    if not files:
        pytest.skip(f"no {pattern} files in {parity_dir}")
    return files


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


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


def _check_head_file(path: Path) -> tuple[list[str], int]:
    data = _load(path)
    failures: list[str] = []
    loaded = load_official_checkpoint(data, preset="qvhighlights")
    model = loaded.model
    checked = 0
    for case in data["cases"]:
        name = f"{path.name}:{case['name']}"
        inputs, expected = case["inputs"], case["expected"]
        official_runs = [True] + ([False] if case["B"] == 1 else [])  # batch of one: both paths must agree
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
                ref = expected["loss"]
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
    return failures, checked


def test_every_head_case_matches_the_official_code(parity_dir):
    total = 0
    for path in _files(parity_dir, "r2_head_*.pt"):
        failures, checked = _check_head_file(path)
        assert not failures, "\n".join(failures[:20])
        total += checked
    assert total > 0


def test_state_dict_keys_and_order_equal_the_official_ones(parity_dir):
    for path in _files(parity_dir, "r2_head_*.pt"):
        data = _load(path)
        model = load_official_checkpoint(data).model
        assert list(model.state_dict()) == list(data["state_dict"])


def test_postprocess_matches_the_official_evaluation(parity_dir):
    seen = 0
    for path in _files(parity_dir, "r2_head_*.pt"):
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
        pytest.skip("the parity files hold no post-processing cases")


def _clip_files(parity_dir: Path) -> list[Path]:
    return _files(parity_dir, "clip_tower_*.pt")


def test_e2e_head_loads_with_inferred_widths(parity_dir, tmp_path):
    for path in _clip_files(parity_dir):
        e2e = _load(path)["e2e"]
        head_file = tmp_path / f"{path.stem}-head.pth"
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
        clip_file = tmp_path / f"{path.stem}-clip.pt"
        torch.save(dict(data["state_dict"]), clip_file)
        tower = load_clip(clip_file)
        head_file = tmp_path / f"{path.stem}-head.pth"
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
