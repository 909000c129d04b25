"""Hints name only ways the user really has (#22.8), and a Ray address is checked whatever the work (#22.9)."""

from __future__ import annotations

import socket

import pytest

from r2cli.errors import MissingWeightsError
from r2cli.model import registry

from fixtures import make_video
from fixtures import run_cli as run


def test_an_explicit_checkpoint_name_does_not_suggest_the_variable_it_ignores():
    with pytest.raises(MissingWeightsError) as named:
        registry.resolve_checkpoint("tvsum_vt")
    assert "--checkpoint /path/to/" in str(named.value)
    assert "R2CLI_CHECKPOINT" not in str(named.value)
    with pytest.raises(MissingWeightsError) as default:
        registry.resolve_checkpoint(None)
    assert "$R2CLI_CHECKPOINT" in str(default.value)  # the default is where the variable applies


def test_summarize_preset_hint_does_not_name_the_checkpoint_variable(capsys, tmp_path):
    code, _, err = run(capsys, "summarize", "--preset", "tvsum_vt", "--ratio", "0.2", "--workspace", tmp_path / "ws")
    assert code != 0
    assert "tvsum" in err and "--checkpoint /path/to/" in err
    assert "R2CLI_CHECKPOINT" not in err


def test_models_download_does_not_suggest_flags_it_lacks(capsys):
    code, _, err = run(capsys, "models", "download", "qvhighlights")
    assert code != 0
    assert "not cached and cannot be downloaded" in err
    assert "--checkpoint" not in err and "--clip-weights" not in err and "$R2CLI_" not in err


def test_job_warning_names_the_job_key_not_the_flag(capsys, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    make_video(archive / "a.mp4", seconds=1, width=64, height=48, fps=5)
    job = tmp_path / "job.toml"
    job.write_text(f'[job]\nworkspace = "ws"\n\n[index]\npaths = ["archive"]\nclip_weights = "ViT-B-32/openai"\n')
    code, out, err = run(capsys, "run", job)
    assert code != 0
    assert "features = false in " in err and "[index]" in err
    assert "--no-features" not in err


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_index_unreachable_ray_is_an_error_even_with_nothing_to_do(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "index", empty, "--ray", f"127.0.0.1:{_closed_port()}", "--workspace", tmp_path / "ws")
    assert code == 7, err
    assert "cannot reach the Ray cluster at 127.0.0.1:" in err
