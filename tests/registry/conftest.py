"""Fixtures for registry tests: a private manifest and a bounded local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class WeightsServer:
    """Serves in-memory files over HTTP with Range support; records what clients asked for."""

    base_url: str
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    truncate: set[str] = field(default_factory=set)  # paths whose body is cut in half once
    ignore_range: set[str] = field(default_factory=set)  # paths answered with 200 and the full body

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"


def _handler_for(server_state: WeightsServer):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            byte_range = self.headers.get("Range")
            server_state.requests.append((name, byte_range))
            body = server_state.files.get(name)
            if body is None:
                self.send_error(404, "Not Found")
                return
            start = 0
            if byte_range and name not in server_state.ignore_range:
                start = int(byte_range.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if name in server_state.truncate:
                server_state.truncate.discard(name)
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def weights_server(monkeypatch):
    """A local HTTP server (daemon thread, shut down after the test); the network is allowed for 127.0.0.1 only."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("R2CLI_OFFLINE", raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    state = WeightsServer(base_url="")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(state))
    httpd.timeout = 5
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def private_manifest(tmp_path, monkeypatch):
    """Write a manifest into a temporary models/ folder and point R2CLI_MODELS_DIR at it.

    Returns a function ``write(checkpoints=..., clip=...)`` taking the manifest sections.
    """
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("R2CLI_MODELS_DIR", str(folder))

    def write(checkpoints: dict | None = None, clip: dict | None = None, aliases: dict | None = None) -> Path:
        document = {
            "format": "r2cli-pretrained-v1",
            "default_checkpoint": next(iter(checkpoints or {}), ""),
            "default_clip": next(iter(clip or {}), ""),
            "clip_aliases": aliases or {},
            "clip": clip or {},
            "checkpoints": checkpoints or {},
        }
        path = folder / "pretrained.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        return path

    return write
