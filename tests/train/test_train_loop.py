"""The training step, AMP precision rule, resumable runs, the run folder and the CLI."""

from __future__ import annotations

import json
import random

import pytest

from trainkit import K, TEXT_WIDTH, TOKENS, VIDEO_WIDTH, tiny_preset, write_official_layout

torch = pytest.importorskip("torch")

from r2cli.errors import UsageError  # noqa: E402
from r2cli.train import loop  # noqa: E402
from r2cli.train.data import OfficialFeatureDir, PairDataset, collate, items_from_moments  # noqa: E402
from r2cli.app.finetune import FinetuneOptions  # noqa: E402
from r2cli.train.finetune import finetune  # noqa: E402


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    return write_official_layout(root / "features", videos=6, queries_per_video=2)


@pytest.fixture
def workspace(tmp_path):
    from r2cli.paths import resolve_workspace

    return resolve_workspace(tmp_path / "ws")


def _fixed_batch(layout):
    from r2cli.data import read_qvhighlights

    root, anno = layout
    items = items_from_moments(read_qvhighlights(anno))
    dataset = PairDataset(items, OfficialFeatureDir(root, "qvhighlights", fps=0.5), k=K)
    return collate([dataset.load(i, random.Random(i)) for i in range(5)])


def _tiny_model(seed=0):
    from r2cli.model import ModelConfig, build_model

    torch.manual_seed(seed)
    return build_model(ModelConfig(video_width=VIDEO_WIDTH, query_width=TEXT_WIDTH, num_tokens=TOKENS, clip_arch="tiny",
                                   dims=16, heads=4))


def _one_step(layout, seed):
    model = _tiny_model()
    batch = _fixed_batch(layout)
    optimizer = loop.make_optimizer(model, 1e-3, 1e-4)
    scaler = loop.make_scaler(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(seed)  # dropout / drop-path draws
    step = loop.train_step(model, batch, optimizer, scaler, lr=1e-3, grad_clip=35.0, amp=False)
    delta = {k: model.state_dict()[k] - before[k] for k in before}
    return step, delta


def test_one_step_on_a_fixed_batch_changes_the_weights_the_same_way_twice(layout):
    first, delta_a = _one_step(layout, seed=11)
    second, delta_b = _one_step(layout, seed=11)
    assert first.total == second.total and first.grad_norm == second.grad_norm
    assert set(first.losses) == {"loss_cls", "loss_reg", "loss_sal", "loss_video_cal", "loss_layer_cal"}
    changed = [k for k, d in delta_a.items() if float(d.abs().max()) > 0]
    assert len(changed) > 20  # the step really moved the head
    for key in delta_a:
        assert torch.equal(delta_a[key], delta_b[key]), key
    _, delta_c = _one_step(layout, seed=12)  # other dropout draws: another update
    assert any(not torch.equal(delta_a[k], delta_c[k]) for k in delta_a)


def test_gradient_clipping_bounds_the_update_norm(layout):
    model = _tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    torch.manual_seed(0)
    before = [p.detach().clone() for p in model.parameters()]
    step = loop.train_step(model, _fixed_batch(layout), optimizer, loop.make_scaler(False), lr=1.0,
                           grad_clip=1e-3, amp=False)
    moved = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    assert step.grad_norm > 1e-3
    assert float(moved) == pytest.approx(1e-3, rel=1e-3)  # SGD lr 1: the update is the clipped gradient


def test_heads_and_query_pooling_stay_fp32_inside_autocast():
    model = _tiny_model().eval()
    video = torch.randn(2, 9, *model_video_shape(model))
    query = torch.randn(2, 4, model.config.k, model.config.query_width)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(video, query)
    assert out.query_tokens.dtype == torch.bfloat16  # autocast reached the R2 block ...
    assert out.out_class.dtype == torch.float32  # ... but not the heads or the query pooling
    assert out.out_coord.dtype == torch.float32
    assert out.query_emb.dtype == torch.float32


def model_video_shape(model):
    """[k, P, Cv] of one clip for this head."""
    return (model.config.k, model.config.num_tokens, model.config.video_width)


def test_rng_state_round_trip():
    import numpy as np

    loop.seed_everything(5)
    state = loop.rng_state()
    a = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    loop.set_rng_state(state)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == a


def _options(layout, tmp_path, preset, **extra):
    root, anno = layout
    values = dict(preset=str(preset), train=anno, val=anno, features_dir=root, seed=5, device="cpu",
                  out=tmp_path / "run")
    values.update(extra)
    return FinetuneOptions(**values)


def test_resume_continues_identically(layout, tmp_path, workspace):
    preset = tiny_preset(tmp_path / "tiny.json", epochs=2, batch_size=4, warmup_iters=4, milestones=(1,))
    straight = finetune(workspace, _options(layout, tmp_path, preset, out=tmp_path / "straight"))
    first = finetune(workspace, _options(layout, tmp_path, preset, out=tmp_path / "split", epochs=1, keep_last=1))
    assert first.epochs == 1
    resumed = finetune(workspace, FinetuneOptions(out=tmp_path / "split", resume=True, epochs=2, device="cpu"))
    assert resumed.resumed and resumed.epochs == 2 and resumed.iterations == straight.iterations == 6
    # --keep-last is part of the run: the resumed epochs keep honouring it
    assert [p.name for p in (tmp_path / "split" / "checkpoints").glob("epoch_*.safetensors")] == ["epoch_0002.safetensors"]
    from safetensors.torch import load_file

    a = load_file(str(straight.last_checkpoint))
    b = load_file(str(resumed.last_checkpoint))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]
    events = [json.loads(line)["event"] for line in (tmp_path / "split" / "train_log.jsonl").read_text().splitlines()]
    assert events[0] == "start" and "resume" in events and events[-1] == "end"


def test_run_folder_holds_log_checkpoints_and_the_best_epoch(layout, tmp_path, workspace):
    from r2cli.model import load_checkpoint

    preset = tiny_preset(tmp_path / "tiny.json", epochs=3, batch_size=5, warmup_iters=2, milestones=(2,))
    result = finetune(workspace, _options(layout, tmp_path, preset, keep_last=2))
    out = result.out_dir
    assert sorted(p.name for p in (out / "checkpoints").glob("*.safetensors")) == ["epoch_0002.safetensors",
                                                                                   "epoch_0003.safetensors"]
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    validations = [r for r in records if r["event"] == "validation"]
    assert len(validations) == 3 and all("MR-full-mAP" in r["metrics"] for r in validations)
    values = [r["value"] for r in validations]
    assert result.best_value == max(values) and result.best_epoch == values.index(max(values)) + 1
    iterations = [r for r in records if r["event"] == "iteration"]
    assert iterations[-1]["iteration"] == result.iterations == 3 * 3  # 12 items / batch 5 -> 3 per epoch
    lrs = [r["lr"] for r in records if r["event"] == "epoch"]
    assert lrs[2] == pytest.approx(5e-5)  # milestone 2 (0-based): decayed in the third epoch
    best = load_checkpoint(result.best_checkpoint)
    sidecar = json.loads(result.best_checkpoint.with_suffix(".json").read_text())
    assert sidecar["provenance"]["epoch"] == result.best_epoch and best.config.dims == 16
    assert best.preset is not None and best.preset.data.fps == 0.5
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished" and run["seed"] == 5
    with pytest.raises(UsageError, match="already holds a training run"):
        finetune(workspace, _options(layout, tmp_path, preset))


def test_same_seed_same_run_on_cpu(layout, tmp_path, workspace):
    preset = tiny_preset(tmp_path / "tiny.json", epochs=1, batch_size=4)
    a = finetune(workspace, _options(layout, tmp_path, preset, out=tmp_path / "a"))
    b = finetune(workspace, _options(layout, tmp_path, preset, out=tmp_path / "b"))
    c = finetune(workspace, _options(layout, tmp_path, preset, out=tmp_path / "c", seed=6))
    assert a.history[0]["loss"] == b.history[0]["loss"] != c.history[0]["loss"]


def test_resume_refuses_other_settings(layout, tmp_path, workspace):
    preset = tiny_preset(tmp_path / "tiny.json", epochs=1, batch_size=4)
    finetune(workspace, _options(layout, tmp_path, preset))
    with pytest.raises(UsageError, match="batch_size"):
        finetune(workspace, FinetuneOptions(out=tmp_path / "run", resume=True, epochs=2, batch_size=3, device="cpu"))


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "--epochs must be >= 1, got 0"),
    ({"lr": -1.0}, "--lr must be > 0"),
    ({"amp": True}, "--amp needs a CUDA device"),
    ({"model_overrides": {"width": 3}}, "unknown model field"),
])
def test_bad_options_name_the_flag(layout, tmp_path, workspace, kwargs, message):
    preset = tiny_preset(tmp_path / "tiny.json")
    with pytest.raises(UsageError, match=message):
        finetune(workspace, _options(layout, tmp_path, preset, **kwargs))


def test_cli_finetune_json(layout, tmp_path, capsys):
    from typer.testing import CliRunner

    from r2cli.cli.main import app

    root, anno = layout
    preset = tiny_preset(tmp_path / "tiny.json", epochs=1, batch_size=6)
    result = CliRunner().invoke(app, [
        "finetune", "--preset", str(preset), "--train", str(anno), "--val", str(anno), "--features-dir", str(root),
        "--seed", "1", "--device", "cpu", "--out", str(tmp_path / "cli"), "--model-set", "dims=8", "--json",
        "--workspace", str(tmp_path / "ws"),
    ])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["epochs"] == 1 and data["iterations"] == 2 and data["best_epoch"] == 1
    assert json.loads((tmp_path / "cli" / "preset.json").read_text())["model"]["dims"] == 8
    from r2cli.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", "--preset", str(preset), "--train", str(tmp_path / "nope.jsonl"), "--features-dir", str(root),
              "--device", "cpu", "--workspace", str(tmp_path / "ws")])
    assert exit_info.value.code == 2
    assert "nope.jsonl: file not found" in capsys.readouterr().err


def test_init_starts_from_a_checkpoint(layout, tmp_path, workspace):
    from safetensors.torch import load_file

    preset = tiny_preset(tmp_path / "tiny.json", epochs=1, batch_size=6)
    base = finetune(workspace, _options(layout, tmp_path, preset, out=tmp_path / "base"))
    tuned = finetune(workspace, _options(layout, tmp_path, preset, out=tmp_path / "tuned", seed=9, lr=1e-12,
                                         init=str(base.last_checkpoint)))
    start, end = load_file(str(base.last_checkpoint)), load_file(str(tuned.last_checkpoint))
    for key in start:
        assert torch.allclose(start[key], end[key], atol=1e-6), key  # a vanishing lr: the init weights remain
    scratch = finetune(workspace, _options(layout, tmp_path, preset, out=tmp_path / "scratch", seed=9, lr=1e-12))
    assert not torch.allclose(load_file(str(scratch.last_checkpoint))["adapter.video_map.2.weight"],
                              start["adapter.video_map.2.weight"])


def test_missing_features_dir_is_named_before_the_annotations(tmp_path, workspace):
    from r2cli.errors import InputError

    anno = tmp_path / "mine.jsonl"  # the user format: valid for the store, not for the official layout
    anno.write_text('{"video": "clips/a.mp4", "query": "x", "relevant_windows": [[0, 2]]}\n', encoding="utf-8")
    preset = tiny_preset(tmp_path / "tiny.json")
    options = FinetuneOptions(preset=str(preset), train=anno, features_dir=tmp_path / "nope", device="cpu",
                              out=tmp_path / "run")
    with pytest.raises(InputError, match=r"--features-dir .*nope: folder clip_b32_vid_k4/ is missing"):
        finetune(workspace, options)


def test_out_that_is_a_file_is_one_error(layout, tmp_path, workspace):
    from r2cli.errors import InputError

    taken = tmp_path / "taken"
    taken.write_text("not a folder", encoding="utf-8")
    preset = tiny_preset(tmp_path / "tiny.json", epochs=1, batch_size=6)
    with pytest.raises(InputError, match=r"--out .*taken: is a file, expected a folder"):
        finetune(workspace, _options(layout, tmp_path, preset, out=taken))


def test_cli_bad_model_set_is_one_line(tmp_path, capsys):
    from r2cli.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", "--train", str(tmp_path / "a.jsonl"), "--model-set", "dims", "--workspace", str(tmp_path / "ws")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --model-set must look like FIELD=VALUE, got 'dims'"


def test_a_new_run_never_writes_over_or_prunes_checkpoints_it_did_not_write(layout, tmp_path, workspace):
    """`finetune --out DIR --keep-last 1`: DIR's own epoch files are not a run to resume; refused, kept (#18)."""
    from r2cli.errors import UsageError

    preset = tiny_preset(tmp_path / "tiny.json", epochs=2, batch_size=4, warmup_iters=4, milestones=(1,))
    out = tmp_path / "theirs"
    (out / "checkpoints").mkdir(parents=True)
    theirs = out / "checkpoints" / "epoch_0001.safetensors"
    theirs.write_bytes(b"someone else's weights")
    with pytest.raises(UsageError, match="epoch_0001.safetensors"):
        finetune(workspace, _options(layout, tmp_path, preset, out=out, keep_last=1))
    assert theirs.read_bytes() == b"someone else's weights"


def test_keep_last_prunes_only_epochs_the_run_recorded(layout, tmp_path, workspace):
    """A file put among the run's checkpoints later is not the run's to remove."""
    from r2cli.train.finetune import _drop_old_epochs

    preset = tiny_preset(tmp_path / "tiny.json", epochs=2, batch_size=4, warmup_iters=4, milestones=(1,))
    result = finetune(workspace, _options(layout, tmp_path, preset, out=tmp_path / "run"))
    folder = result.out_dir / "checkpoints"
    stranger = folder / "epoch_0000.safetensors"
    stranger.write_bytes(b"not from this run")
    _drop_old_epochs(result.out_dir, 1)
    assert sorted(p.name for p in folder.glob("epoch_*.safetensors")) == ["epoch_0000.safetensors",
                                                                         "epoch_0002.safetensors"]
    assert not (folder / "epoch_0001.json").exists() and (folder / "epoch_0002.json").exists()
