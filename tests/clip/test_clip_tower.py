"""CLIP tower behaviour on the tiny random OpenAI-format CLIP (tests/tiny_clip.py): loading, shapes,
batching, validation, and agreement with open_clip's own OpenAI loader."""

from __future__ import annotations

import hashlib
import time

import pytest

torch = pytest.importorskip("torch")

from r2cli.errors import InputError, MissingWeightsError, UsageError  # noqa: E402


def _frames(count: int, size: int = 64, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, size, size), generator=generator, dtype=torch.uint8)


def _reference_model(path):
    """open_clip's own builder for OpenAI state dicts (its fp16 round trip is exact for fp16 weights)."""
    import open_clip

    state = torch.load(path, map_location="cpu", weights_only=True)
    return open_clip.model.build_model_from_openai_state_dict(dict(state), cast_dtype=None).float().eval()


def test_clip_tiny_attributes(tiny_tower, tiny_clip_path):
    tower = tiny_tower
    assert (tower.image_size, tower.video_width, tower.text_width) == (64, 64, 64)
    assert (tower.num_tokens, tower.num_layers, tower.embed_dim, tower.context_length) == (5, 5, 32, 77)
    assert tower.device == "cpu" and tower.precision == "fp32" and tower.quick_gelu is True
    digest = hashlib.sha256(tiny_clip_path.read_bytes()).hexdigest()
    assert tower.weights_id == f"sha256:{digest[:16]}"
    assert all(p.dtype == torch.float32 for p in tower.model.parameters())


def test_clip_tiny_matches_open_clip_openai_loader(tiny_tower, tiny_clip_path):
    reference = _reference_model(tiny_clip_path)
    pixels = tiny_tower.normalize(_frames(3))
    layers, embed = tiny_tower.video_features(pixels, k=2)
    with torch.no_grad():
        expected_embed = reference.encode_image(pixels, normalize=True)
        blocks = reference.visual.forward_intermediates(
            pixels, output_fmt="NLC", output_extra_tokens=True, intermediates_only=True
        )
    assert torch.allclose(embed, expected_embed, atol=1e-5)
    last = torch.cat([blocks["image_intermediates_prefix"][-1], blocks["image_intermediates"][-1]], dim=1)
    assert torch.allclose(layers[:, -1], last, atol=1e-5)
    ids, _ = tiny_tower.tokenize(["a red car", "two people dancing on a stage"])
    _, text_embed = tiny_tower.token_features(ids, k=1)
    with torch.no_grad():
        assert torch.allclose(text_embed, reference.encode_text(ids, normalize=True), atol=1e-5)


def test_clip_tiny_shapes_and_oldest_first(tiny_tower):
    pixels = _frames(4)
    layers, embed = tiny_tower.video_features(pixels, k=4)
    assert layers.shape == (4, 4, 5, 64) and layers.dtype == torch.float32 and layers.device.type == "cpu"
    assert embed.shape == (4, 32)
    assert torch.allclose(embed.norm(dim=-1), torch.ones(4), atol=1e-5)
    all_layers, _ = tiny_tower.video_features(pixels, k=6)  # embedding + 5 blocks
    assert torch.equal(all_layers[:, 2:], layers)
    texts = ["a dog", "a man is cooking pasta in the kitchen"]
    query_layers, query_embed, truncated = tiny_tower.query_features(texts, k=3)
    assert [q.shape for q in query_layers] == [(4, 3, 64), (10, 3, 64)]
    assert query_embed.shape == (2, 32) and truncated == [False, False]


def test_clip_tiny_uint8_input_equals_normalised_input(tiny_tower):
    frames = _frames(3, seed=1)
    from_uint8 = tiny_tower.video_features(frames, k=2)
    from_float = tiny_tower.video_features(tiny_tower.normalize(frames), k=2)
    assert torch.equal(from_uint8[0], from_float[0]) and torch.equal(from_uint8[1], from_float[1])
    on_device = tiny_tower.video_features(frames, k=2, output_device=None)
    assert on_device[0].device.type == tiny_tower.device and torch.equal(on_device[0].cpu(), from_uint8[0])


def test_clip_tiny_batching_does_not_change_results(tiny_tower):
    frames = _frames(7, seed=2)
    whole, whole_embed = tiny_tower.video_features(frames, k=3, batch_size=64)
    pieces, pieces_embed = tiny_tower.video_features(frames, k=3, batch_size=2)
    assert torch.allclose(whole, pieces, atol=1e-5) and torch.allclose(whole_embed, pieces_embed, atol=1e-6)
    texts = [f"query number {i} about a scene" for i in range(5)]
    one, one_embed, _ = tiny_tower.query_features(texts, k=2, batch_size=1)
    many, many_embed, _ = tiny_tower.query_features(texts, k=2, batch_size=16)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(one, many))
    assert torch.allclose(one_embed, many_embed, atol=1e-6)


def test_clip_tiny_query_positions_do_not_depend_on_padding(tiny_tower):
    """The causal mask means the real tokens never see the padding positions."""
    short, _, _ = tiny_tower.query_features(["a cat"], k=2)
    ids, _ = tiny_tower.tokenize(["a cat"])
    changed = ids.clone()
    changed[0, 5:] = 1234  # garbage after EOT
    layers, _ = tiny_tower.token_features(changed, k=2)
    assert torch.allclose(layers[0, :, :4].permute(1, 0, 2), short[0], atol=1e-6)


def test_clip_tiny_truncation_is_reported():
    from r2cli.features.tokenizer import END_OF_TEXT_ID, START_OF_TEXT_ID, tokenize

    long_text = " ".join(["word"] * 120)
    ids, truncated = tokenize(["short text", long_text, ""])
    assert truncated == [False, True, False]
    assert ids.shape == (3, 77) and ids.dtype == torch.int64
    assert int(ids[1, 0]) == START_OF_TEXT_ID and int(ids[1, -1]) == END_OF_TEXT_ID and bool((ids[1] != 0).all())
    assert ids[2, :2].tolist() == [START_OF_TEXT_ID, END_OF_TEXT_ID] and int(ids[2, 2:].abs().sum()) == 0
    exactly_full = " ".join(["word"] * 75)  # 75 BPE ids + SOT + EOT = 77: fits, not truncated
    ids, truncated = tokenize([exactly_full])
    assert truncated == [False] and int(ids[0, -1]) == END_OF_TEXT_ID


def test_clip_tiny_validation_errors(tiny_tower):
    with pytest.raises(UsageError, match=r"k must be an integer in \[1, 6\]"):
        tiny_tower.video_features(_frames(1), k=7)
    with pytest.raises(UsageError, match="k must be"):
        tiny_tower.query_features(["x"], k=0)
    with pytest.raises(InputError, match=r"\[N, 3, 64, 64\]"):
        tiny_tower.video_features(torch.zeros(2, 3, 32, 32), k=1)
    with pytest.raises(InputError, match="uint8"):
        tiny_tower.normalize(torch.zeros(1, 3, 64, 64))
    with pytest.raises(UsageError, match="list of strings"):
        tiny_tower.query_features("a bare string", k=1)
    with pytest.raises(UsageError, match="batch-size"):
        tiny_tower.video_features(_frames(1), k=1, batch_size=0)


def test_clip_tiny_quick_gelu_matters(tiny_clip_path, tiny_tower):
    from r2cli.features.clip import load_clip

    gelu = load_clip(tiny_clip_path, quick_gelu=False)
    frames = _frames(2, seed=3)
    assert not torch.allclose(gelu.video_features(frames, k=1)[0], tiny_tower.video_features(frames, k=1)[0], atol=1e-4)


def test_clip_tiny_wrapped_and_fp32_state_dicts(tmp_path, tiny_clip_path, tiny_tower):
    from r2cli.features.clip import load_clip

    state = torch.load(tiny_clip_path, map_location="cpu", weights_only=True)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, wrapped)
    frames = _frames(2, seed=4)
    assert torch.equal(load_clip(wrapped).video_features(frames, k=2)[0], tiny_tower.video_features(frames, k=2)[0])
    # float32 weights with bits below fp16 precision must not be rounded through fp16
    fp32 = {k: (v.float() + 1e-5 if v.is_floating_point() else v) for k, v in state.items()}
    path = tmp_path / "fp32.pt"
    torch.save(fp32, path)
    model = load_clip(path).model
    assert torch.equal(model.visual.proj.detach(), fp32["visual.proj"])


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
def test_clip_tiny_torchscript_archive(tmp_path, tiny_clip_path, tiny_tower):
    """OpenAI publishes TorchScript archives; their state dict must load like the plain one."""
    from r2cli.features.clip import load_clip

    reference = _reference_model(tiny_clip_path)
    image = torch.zeros(1, 3, 64, 64)
    traced = torch.jit.trace_module(reference, {"encode_image": (image,)}, check_trace=False)
    archive = tmp_path / "tiny-jit.pt"
    traced.save(str(archive))
    tower = load_clip(archive)
    frames = _frames(2, seed=5)
    assert torch.equal(tower.video_features(frames, k=3)[0], tiny_tower.video_features(frames, k=3)[0])


def test_clip_tiny_rejects_files_that_are_not_vit_clip(tmp_path, tiny_clip_path):
    from r2cli.features.clip import load_clip

    state = torch.load(tiny_clip_path, map_location="cpu", weights_only=True)
    broken = {k: v for k, v in state.items() if k != "visual.proj"}
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(InputError, match="missing key 'visual.proj'"):
        load_clip(tmp_path / "broken.pt")
    torch.save({"visual.layer1.0.conv1.weight": torch.zeros(1), "visual.attnpool.positional_embedding": torch.zeros(1)},
               tmp_path / "resnet.pt")
    with pytest.raises(InputError, match="ResNet"):
        load_clip(tmp_path / "resnet.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="cannot read CLIP weights"):
        load_clip(tmp_path / "garbage.pt")
    with pytest.raises(MissingWeightsError, match="does not exist"):
        load_clip(tmp_path / "absent.pt")


def test_clip_tiny_environment_default(monkeypatch, tiny_clip_path, tiny_tower):
    from r2cli.features.clip import load_clip

    monkeypatch.setenv("R2CLI_CLIP_WEIGHTS", str(tiny_clip_path))
    assert load_clip().weights_id == tiny_tower.weights_id


def test_clip_default_weights_offline_fail_fast_in_one_line():
    from r2cli.features.clip import load_clip

    started = time.monotonic()
    with pytest.raises(MissingWeightsError) as caught:
        load_clip()  # HF_HUB_OFFLINE=1 and an empty cache (tests/conftest.py)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "\n" not in message
    assert "CLIP weights 'ViT-B-32/openai' are not cached" in message
    assert "https://openaipublic.azureedge.net/clip/models/40d3657" in message
    assert "--clip-weights /path/to/ViT-B-32.pt" in message


def test_clip_devices():
    from r2cli.features.clip import resolve_device

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(UsageError, match="--device"):
        resolve_device("toaster")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="needs a CUDA GPU"):
            resolve_device("cuda")


def _watch_loaded_tensors(monkeypatch):
    """Wrap ``read_state_dict`` so the test keeps weak references to every tensor read from a file."""
    import weakref

    import r2cli.features.clip as clip

    watched: list = []
    original = clip.read_state_dict

    def reading(path):
        state = original(path)
        watched.extend((name, weakref.ref(tensor)) for name, tensor in state.items())
        return state

    monkeypatch.setattr(clip, "read_state_dict", reading)
    return watched


def test_clip_load_keeps_no_copy_of_the_file(monkeypatch, tiny_clip_path):
    """The fp16 file's tensors are all released once converted (no state dict, no intermediate copy
    is kept); each weight exists once, as the model's parameter."""
    import gc

    from r2cli.features.clip import load_clip

    import r2cli.features.clip as clip

    watched = _watch_loaded_tensors(monkeypatch)
    alive_when_built: list = []
    check = clip._check_supported

    def checking(model, source):  # runs once the model is built, inside load_clip
        gc.collect()
        alive_when_built.extend(name for name, ref in watched if ref() is not None)
        return check(model, source)

    monkeypatch.setattr(clip, "_check_supported", checking)
    tower = load_clip(tiny_clip_path, precision="bf16")
    assert watched and alive_when_built == []  # released while loading, not only when load_clip returns
    parameters = list(tower.model.parameters())
    assert all(p.dtype == torch.bfloat16 for p in parameters)
    assert len({p.data_ptr() for p in parameters}) == len(parameters)  # no two parameters share a copy


def test_clip_load_uses_fp32_file_tensors_in_place(monkeypatch, tmp_path, tiny_clip_path):
    """An fp32 file loaded in fp32: every parameter is backed by the memory the file was read into (no copy)."""
    from r2cli.features.clip import load_clip

    state = torch.load(tiny_clip_path, map_location="cpu", weights_only=True)
    path = tmp_path / "fp32.pt"
    torch.save({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, path)
    watched = _watch_loaded_tensors(monkeypatch)
    read_pointers = set()
    original = load_clip.__globals__["read_state_dict"]

    def reading(file):
        loaded = original(file)
        read_pointers.update(tensor.data_ptr() for tensor in loaded.values())
        return loaded

    monkeypatch.setattr("r2cli.features.clip.read_state_dict", reading)
    model = load_clip(path).model
    parameters = list(model.parameters())
    assert watched and parameters and all(p.data_ptr() in read_pointers for p in parameters)


def test_clip_lazy_text_tower(monkeypatch, tmp_path, tiny_clip_path, tiny_tower):
    """lazy_text leaves the text weights unread (and their memory unused) until a text call, then
    gives exactly the eager tower's outputs."""
    import gc
    import shutil

    from r2cli.features.clip import load_clip

    path = tmp_path / "weights.pt"
    shutil.copy(tiny_clip_path, path)
    watched = _watch_loaded_tensors(monkeypatch)
    tower = load_clip(path, lazy_text=True)
    gc.collect()
    assert not tower.text_tower_loaded
    assert [name for name, ref in watched if ref() is not None] == []  # the text tensors read were dropped
    text_parameters = [p for p in tower._model.transformer.parameters()] + [tower._model.token_embedding.weight]
    assert all(p.is_meta for p in text_parameters)  # no storage behind the text tower yet
    frames = _frames(3, seed=9)
    assert torch.equal(tower.video_features(frames, k=3)[1], tiny_tower.video_features(frames, k=3)[1])
    assert not tower.text_tower_loaded
    layers, embed, _ = tower.query_features(["a dog on a beach", "x"], k=2)
    expected_layers, expected_embed, _ = tiny_tower.query_features(["a dog on a beach", "x"], k=2)
    assert tower.text_tower_loaded and torch.equal(embed, expected_embed)
    assert all(torch.equal(a, b) for a, b in zip(layers, expected_layers))
    assert all(not p.is_meta for p in tower.model.parameters())


def test_clip_lazy_text_refuses_a_changed_file(tmp_path, tiny_clip_path):
    import os
    import shutil

    from r2cli.features.clip import load_clip

    path = tmp_path / "weights.pt"
    shutil.copy(tiny_clip_path, path)
    tower = load_clip(path, lazy_text=True)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(InputError, match="changed after the CLIP tower was loaded"):
        tower.query_features(["a dog"])
    assert tower.video_features(_frames(1), k=1)[0].shape == (1, 1, 5, 64)  # the image side still works


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_clip_fp16_outputs_equal_fp32_outputs_rounded(tiny_clip_path, precision):
    """The indexer asks for fp16 outputs per batch (no fp32 copy): the numbers equal fp32 outputs cast to fp16."""
    from r2cli.features.clip import load_clip

    tower = load_clip(tiny_clip_path, precision=precision, lazy_text=True)
    frames = _frames(5, seed=3)
    layers32, embed32 = tower.video_features(frames, k=3, batch_size=2)
    layers16, embed16 = tower.video_features(frames, k=3, batch_size=2, output_dtype=torch.float16)
    assert layers16.dtype == embed16.dtype == torch.float16
    assert torch.equal(layers16, layers32.to(torch.float16)) and torch.equal(embed16, embed32.to(torch.float16))


class _NotATensor:
    """A Python object in a weights file: torch's weights-only reader refuses to unpickle it."""


def test_clip_refusal_of_a_pickle_with_objects_never_advises_weights_only_false(tmp_path, tiny_clip_path):
    from r2cli.features.clip import load_clip

    state = torch.load(tiny_clip_path, map_location="cpu", weights_only=True)
    path = tmp_path / "with-objects.pt"
    torch.save({**state, "extra": _NotATensor()}, path)
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file")
    for file, found in ((path, "it holds Python objects besides tensors, which r2cli does not unpickle"), (tmp_path / "garbage.pt", "not a PyTorch weights file")):
        with pytest.raises(InputError) as caught:
            load_clip(file)
        message = str(caught.value)
        assert message.startswith(f"{file}: cannot read CLIP weights ({found}; pass OpenAI's .pt file"), message
        assert "weights_only" not in message and "trust" not in message and "\n" not in message
