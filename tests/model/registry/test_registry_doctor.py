"""`r2cli doctor` checks the weights files a run would use: $R2CLI_CLIP_WEIGHTS / $R2CLI_CHECKPOINT (#22.7)."""

from __future__ import annotations

import json

from fixtures import run_cli as run


def test_doctor_fails_on_a_weights_variable_naming_no_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    ws = ["--workspace", str(tmp_path / "ws")]
    monkeypatch.setenv("R2CLI_CLIP_WEIGHTS", str(tmp_path / "nonexistent.pt"))
    monkeypatch.setenv("R2CLI_CHECKPOINT", str(tmp_path / "gone" / "head.pth"))
    code, out, err = run(capsys, "doctor", *ws)
    assert code == 3, err
    assert f"$R2CLI_CLIP_WEIGHTS is set to {tmp_path / 'nonexistent.pt'}, which does not exist" in out
    assert f"$R2CLI_CHECKPOINT is set to {tmp_path / 'gone' / 'head.pth'}, which does not exist" in out
    assert err.startswith("error: $R2CLI_CLIP_WEIGHTS is set to") and "1 more" in err
    code, out, _ = run(capsys, "doctor", *ws, "--json")
    report = json.loads(out)
    assert code == 3 and report["ok"] is False
    assert [w["state"] for w in report["weights"]] == ["missing", "missing"]


def test_doctor_shows_the_files_in_use(tmp_path, monkeypatch, capsys):
    clip = tmp_path / "my clip.pt"
    clip.write_bytes(b"0" * 16)
    monkeypatch.setenv("R2CLI_CLIP_WEIGHTS", str(clip))
    monkeypatch.setenv("R2CLI_CHECKPOINT", "no_such_checkpoint")
    code, out, err = run(capsys, "doctor", "--workspace", str(tmp_path / "ws"), "--json")
    report = json.loads(out)
    assert code == 3 and "no_such_checkpoint" in err
    clip_row, checkpoint_row = report["weights"]
    assert clip_row == {"kind": "clip", "spec": str(clip), "source": "$R2CLI_CLIP_WEIGHTS", "path": str(clip),
                        "state": "local file", "problem": None}
    assert checkpoint_row["source"] == "$R2CLI_CHECKPOINT" and checkpoint_row["problem"]
    monkeypatch.delenv("R2CLI_CHECKPOINT")
    code, out, err = run(capsys, "doctor", "--workspace", str(tmp_path / "ws"), "--json")
    assert code == 0, err
    assert json.loads(out)["weights"][1]["state"] == "not cached (downloaded on first use)"
