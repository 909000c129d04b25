"""`r2cli models list|download|path` through typer's CliRunner."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from r2cli.cli.main import app
from r2cli.errors import MissingWeightsError
from r2cli.paths import weights_cache_dir

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, ["models", *args], env={"COLUMNS": "250"})


def test_registry_cli_path_prints_the_cache_path():
    result = _invoke("path", "ViT-B-32/openai")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(weights_cache_dir() / "clip" / "ViT-B-32.pt")
    result = _invoke("path", "qvhighlights", "--json")
    data = json.loads(result.output)
    assert data["path"] == str(weights_cache_dir() / "checkpoints" / "r2_tuning_qvhighlights-ed516355.pth")
    assert data["cached"] is False and data["clip"] == "ViT-B-32/openai" and data["preset"] == "qvhighlights"


def test_registry_cli_list_shows_entries_and_cache_state(tmp_path):
    result = _invoke("list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    names = [row["name"] for row in rows]
    assert names[0] == "ViT-B-32/openai" and "qvhighlights" in names and "tvsum_vu" in names
    assert all(row["cached"] is False for row in rows)
    table = _invoke("list")
    assert table.exit_code == 0 and "r2_tuning_tacos-81759b55.pth" in table.output
    cached_dir = tmp_path / "cache"
    (cached_dir / "checkpoints").mkdir(parents=True)
    (cached_dir / "checkpoints" / "r2_tuning_tacos-81759b55.pth").write_bytes(b"wrong bytes")
    rows = {row["name"]: row for row in json.loads(_invoke("list", "--verify", "--json", "--cache-dir", str(cached_dir)).output)}
    assert rows["tacos"]["cached"] is True and rows["tacos"]["verified"] is False
    assert "CORRUPT" in _invoke("list", "--verify", "--cache-dir", str(cached_dir)).output


def test_registry_cli_download_offline_raises_the_one_line_error():
    result = _invoke("download", "qvhighlights")
    assert result.exit_code != 0
    assert isinstance(result.exception, MissingWeightsError)  # main() turns it into one line + exit code 4
    assert "\n" not in str(result.exception)


def test_registry_cli_download_from_local_server(weights_server, private_manifest):
    data = b"checkpoint bytes" * 5000
    digest = hashlib.sha256(data).hexdigest()
    filename = f"r2_tuning_demo-{digest[:8]}.pth"
    url = weights_server.add_hub("yeliudev/R2-Tuning", f"checkpoints/{filename}", data)
    private_manifest(checkpoints={"demo": {"filename": filename, "url": url,
                                           "sha256": digest[:8], "preset": "demo", "clip": "Tiny/test"}},
                     clip={"Tiny/test": {"model": "Tiny", "filename": "tiny.pt", "url": "", "sha256": ""}})
    result = _invoke("download", "demo", "--no-clip", "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["name"] == "demo" and row["verified"] is True and row["bytes"] == len(data)
    assert weights_server.gets(f"yeliudev/R2-Tuning/resolve/main/checkpoints/{filename}") == [None]
    plain = _invoke("download", "demo", "--no-clip")
    assert plain.exit_code == 0 and "sha256 ok" in plain.output


@pytest.mark.parametrize("command", [["--help"], ["list", "--help"], ["download", "--help"], ["path", "--help"]])
def test_registry_cli_help_has_examples(command):
    result = _invoke(*command)
    assert result.exit_code == 0 and "Example" in result.output
