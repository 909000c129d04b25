"""TorchScript archives given as CLIP weights are read as data: nothing in them runs (#18.6).

The README promises "nothing in a weights file is executed". ``torch.jit.load`` runs a scripted
``__setstate__`` while it loads; these tests build such archives with ``torch.jit.script`` and check
that r2cli refuses them before the code runs, while an archive of tensors (the form OpenAI ships)
still loads.
"""

from __future__ import annotations

import zipfile
from typing import Tuple

import pytest

torch = pytest.importorskip("torch")

from r2cli.errors import InputError  # noqa: E402

_MARK = "R2CLI-TORCHSCRIPT-PAYLOAD-RAN"


class _RestoresWithCode(torch.nn.Module):
    """A module whose TorchScript ``__setstate__`` prints a mark: the side effect a loader must not cause."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, bool]:
        return (self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, bool]) -> None:
        print("R2CLI-TORCHSCRIPT-PAYLOAD-RAN")
        self.weight = state[0]
        self.training = state[1]


@pytest.fixture
def payload_archive(tmp_path):
    with pytest.warns(FutureWarning):  # torch marks torch.jit.script deprecated
        scripted = torch.jit.script(_RestoresWithCode())
    path = tmp_path / "ViT-B-32.pt"
    scripted.save(str(path))
    return path


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_the_payload_is_real(payload_archive, capfd):
    """torch.jit.load does run the archive's code: the mark below is what r2cli must never print."""
    torch.jit.load(str(payload_archive))
    assert _MARK in capfd.readouterr().out


def test_torchscript_with_setstate_is_refused_before_it_runs(payload_archive, capfd):
    from r2cli.features.clip import load_clip

    with pytest.raises(InputError) as caught:
        load_clip(payload_archive)
    message = str(caught.value)
    assert message.startswith(f"{payload_archive}: cannot read CLIP weights (a TorchScript archive")
    assert "__setstate__" in message and "\n" not in message
    assert _MARK not in capfd.readouterr().out


def _rewrite(source, target, rename):
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            new.writestr(rename(item.filename), old.read(item.filename))


def test_torchscript_state_needing_code_is_refused_without_its_code_file(payload_archive, tmp_path, capfd):
    """The pickled state of a class with __setstate__ is no attribute dict: refused even when the
    archive's code files are renamed so that no source mentions __setstate__."""
    from r2cli.features._openai_weights import read_state_dict

    hidden = tmp_path / "hidden.pt"
    _rewrite(payload_archive, hidden, lambda name: name.replace(".py", ".txt") if "/code/" in name else name)
    with pytest.raises(InputError, match=r"restores itself with code \(__setstate__\)"):
        read_state_dict(hidden)
    assert _MARK not in capfd.readouterr().out


def test_torchscript_with_a_foreign_global_is_refused(payload_archive, tmp_path):
    """data.pkl naming anything but tensors, storages, OrderedDict and __torch__ classes is refused unread."""
    import pickle

    from r2cli.features._openai_weights import read_state_dict

    with zipfile.ZipFile(payload_archive) as archive:
        root = next(n for n in archive.namelist() if n.endswith("/data.pkl")).split("/")[0]
    evil = tmp_path / "evil.pt"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr(f"{root}/data.pkl", b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR.")
        archive.writestr(f"{root}/constants.pkl", pickle.dumps(()))
    with pytest.raises(InputError, match=r"names os\.system, which r2cli does not unpickle"):
        read_state_dict(evil)
    assert not (tmp_path / "pwned").exists()


def test_torchscript_archive_of_tensors_reads_like_torch_jit(tmp_path, tiny_clip_path, tiny_tower):
    """A scripted module holding only tensors (as OpenAI's ViT-B-32.pt): the same tensors as torch.jit gives."""
    from r2cli.features._openai_weights import read_state_dict
    from r2cli.features.clip import load_clip

    state = torch.load(tiny_clip_path, map_location="cpu", weights_only=True)

    class Holder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.visual = torch.nn.Module()
            for name, value in state.items():  # OpenAI's key names, nested as submodules
                owner = self
                *path, leaf = name.split(".")
                for part in path:
                    if not hasattr(owner, part):
                        owner.add_module(part, torch.nn.Module())
                    owner = getattr(owner, part)
                owner.register_parameter(leaf, torch.nn.Parameter(value.clone(), requires_grad=False))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.warns(FutureWarning):
        scripted = torch.jit.script(Holder())
    archive = tmp_path / "tiny-scripted.pt"
    scripted.save(str(archive))
    read = read_state_dict(archive)
    assert set(read) == set(state)
    assert all(torch.equal(read[name], state[name]) and read[name].dtype == state[name].dtype for name in state)
    frames = torch.randint(0, 256, (2, 3, 64, 64), generator=torch.Generator().manual_seed(7), dtype=torch.uint8)
    assert torch.equal(load_clip(archive).video_features(frames, k=2)[0], tiny_tower.video_features(frames, k=2)[0])
