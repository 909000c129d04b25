"""Checkpoints: official .pth reading with inferred widths, refusal of misfits, r2cli round trips."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from r2cli.errors import CheckpointError, R2Error  # noqa: E402
from r2cli.model.checkpoint import load_checkpoint, save_checkpoint, sidecar_path  # noqa: E402
from r2cli.model.config import ModelConfig, load_preset  # noqa: E402
from r2cli.model.r2tuning import build_model  # noqa: E402

TINY = dict(video_width=24, query_width=16, num_tokens=5, clip_arch="tiny", dims=32, heads=8)  # heads: not in shapes


def random_model(config: ModelConfig, seed: int = 0):
    model = build_model(config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * 0.1)
    return model.eval()


def inputs(config: ModelConfig, t: int = 11, n: int = 4):
    gen = torch.Generator().manual_seed(1)
    video = torch.randn(1, t, config.k, config.num_tokens, config.video_width, generator=gen)
    query = torch.randn(1, n, config.k, config.query_width, generator=gen)
    return video, query


def same_outputs(a, b, config):
    video, query = inputs(config)
    with torch.no_grad():
        pa, pb = a.predict(a(video, query), 0.5)[0], b.predict(b(video, query), 0.5)[0]
    assert torch.equal(pa.saliency, pb.saliency)
    if pa.boundary is not None:
        assert torch.equal(pa.boundary, pb.boundary)


def save_official(model, path, *, prefix="", drop_scale=False):
    state = {prefix + k: v for k, v in model.state_dict().items() if not (drop_scale and k.endswith("_loss_sal.scale"))}
    torch.save({"meta": {"epoch": 3}, "state_dict": state}, path)
    return path


def test_official_checkpoint_round_trip_infers_the_architecture(tmp_path):
    config = ModelConfig(**TINY)
    model = random_model(config)
    path = save_official(model, tmp_path / "head.pth", prefix="module.")
    loaded = load_checkpoint(path, num_tokens=5)
    assert loaded.config.dims == 32 and loaded.config.k == 4 and loaded.config.strides == (1, 2, 4, 8)
    assert (loaded.config.video_width, loaded.config.query_width, loaded.config.use_tef) == (24, 16, True)
    assert loaded.source.endswith("(official)") and not loaded.model.training
    same_outputs(model, loaded.model, config)


def test_official_file_name_implies_the_preset_and_scale_buffer_is_optional(tmp_path):
    config = load_preset("tvsum_bk").model.with_clip(24, 16, 5)
    config = ModelConfig(**{**config.to_dict(), "dims": 32, "heads": 8, "loss": config.loss})
    model = random_model(config)
    path = save_official(model, tmp_path / "r2_tuning_tvsum_bk-0123abcd.pth", drop_scale=True)
    loaded = load_checkpoint(path, num_tokens=5)
    assert loaded.preset is not None and loaded.preset.name == "tvsum_bk"
    assert (loaded.config.strides, loaded.config.coord_head, loaded.config.use_tef) == ((1,), False, False)
    assert not loaded.config.merge_cls_sal and loaded.config.loss.cls_type == "dynamic_bce"
    same_outputs(model, loaded.model, config)


def test_vit_b32_widths_need_no_token_count(tmp_path):
    model = build_model(ModelConfig())
    loaded = load_checkpoint(save_official(model, tmp_path / "qvh.pth"))
    assert (loaded.config.video_width, loaded.config.query_width, loaded.config.num_tokens) == (768, 512, 50)
    assert loaded.model.num_parameters() == 2_836_242


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("adapter.q_map.bias"), r"missing key 'adapter.q_map.bias'"),
    (lambda s: s.__setitem__("adapter.q_map.bias", torch.zeros(31)), r"'adapter.q_map.bias' has shape \[31\].*\[32\]"),
    (lambda s: s.__setitem__("adapter.extra.weight", torch.zeros(2)), r"unexpected key 'adapter.extra.weight'"),
    (lambda s: s.__setitem__("class_head.module.1.bias", torch.full((32,), float("nan"))), "non-finite"),
])
def test_misfit_checkpoints_are_refused_naming_the_first_mismatch(tmp_path, edit, message):
    state = dict(random_model(ModelConfig(**TINY)).state_dict())
    edit(state)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path, num_tokens=5)


def test_unreadable_and_missing_files_are_refused(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.pth")
    torch.save({"state_dict": {"coef": torch.ones(4)}}, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="lacks key"):
        load_checkpoint(tmp_path / "partial.pth")


def test_r2cli_format_round_trip(tmp_path, monkeypatch):
    config = ModelConfig(**TINY)
    model = random_model(config, seed=3)
    path = save_checkpoint(model, tmp_path / "out" / "head.safetensors", clip="sha256:0123456789abcdef",
                           preset="qvhighlights", provenance={"trained_on": "unit test"})
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["format"] == "r2cli-head-v1" and meta["provenance"]["trained_on"] == "unit test"
    monkeypatch.setenv("R2CLI_CHECKPOINT", str(path))
    loaded = load_checkpoint()
    assert loaded.config == config and loaded.clip == "sha256:0123456789abcdef"
    assert loaded.preset.name == "qvhighlights" and loaded.source.endswith("(r2cli)")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    same_outputs(model, loaded.model, config)
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)
    sidecar_path(path).unlink()
    with pytest.raises(CheckpointError, match="sidecar"):
        load_checkpoint(path)


def test_a_name_that_is_not_a_file_goes_to_the_registry():
    with pytest.raises(R2Error):
        load_checkpoint("no-such-checkpoint-name")


def test_a_file_that_is_not_a_checkpoint_is_one_short_line(tmp_path):
    from r2cli.errors import CheckpointError
    from r2cli.model import load_checkpoint

    path = tmp_path / "notes.pth"
    path.write_text("# notes\n\nthese are notes, not weights\n", encoding="utf-8")
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "not a readable PyTorch checkpoint" in message and "\n" not in message
    assert "arbitrary code execution" not in message  # torch's paragraph is replaced by what r2cli expects


@pytest.mark.parametrize("state, message", [
    ({"coef": torch.ones(4)}, "lacks key 'adapter.video_map.2.weight'"),  # not an R2-Tuning head at all
    (None, "cannot tell the CLIP token count"),  # a head for unknown CLIP widths, no token count given
])
def test_shape_errors_name_the_checkpoint_file(tmp_path, state, message):
    """The errors raised while inferring the architecture from shapes say which file they are about."""
    if state is None:
        state = dict(random_model(ModelConfig(**TINY)).state_dict())
    path = tmp_path / "subdir" / "my_head.pth"
    path.parent.mkdir()
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointError, match=message) as caught:
        load_checkpoint(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)
