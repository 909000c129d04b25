"""Fixtures for registry tests: a private manifest and a bounded local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest


HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"  # the X-Repo-Commit a Hub answers with


@dataclass
class WeightsServer:
    """Serves in-memory files over HTTP with HEAD and Range support, as the Hugging Face Hub does for
    ``/<org>/<repo>/resolve/<revision>/<path>`` (ETag and X-Repo-Commit headers) and as a plain web
    server does for any other path; records what clients asked for."""

    base_url: str
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, path, Range header)
    truncate: set[str] = field(default_factory=set)  # paths whose body is cut in half once
    ignore_range: set[str] = field(default_factory=set)  # paths answered with 200 and the full body

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def add(self, name: str, data: bytes) -> str:
        """Serve ``data`` at a plain path; returns its URL."""
        self.files[name] = data
        return self.url(name)

    def add_hub(self, repo: str, path_in_repo: str, data: bytes, revision: str = "main") -> str:
        """Serve ``data`` as a Hub file of ``repo``; returns its resolve URL."""
        return self.add(f"{repo}/resolve/{revision}/{path_in_repo}", data)

    def gets(self, name: str) -> list[str | None]:
        """The Range headers of the GET requests for ``name``, in order."""
        return [byte_range for method, path, byte_range in self.requests if method == "GET" and path == name]


def _handler_for(server_state: WeightsServer):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def _headers_for(self, name: str, body: bytes) -> None:
            self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
            if "/resolve/" in name:
                self.send_header("X-Repo-Commit", HUB_COMMIT)
            self.send_header("Accept-Ranges", "bytes")

        def _missing(self) -> None:
            self.send_response(404, "Not Found")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_HEAD(self) -> None:
            name = self.path.lstrip("/")
            server_state.requests.append(("HEAD", name, None))
            body = server_state.files.get(name)
            if body is None:
                self._missing()
                return
            self.send_response(200)
            self._headers_for(name, body)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            byte_range = self.headers.get("Range")
            server_state.requests.append(("GET", name, byte_range))
            body = server_state.files.get(name)
            if body is None:
                self._missing()
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
            self._headers_for(name, body)
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
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    # huggingface_hub reads HF_HUB_OFFLINE once, when imported (tests/conftest.py sets it for every test);
    # a fresh process without the variable starts with False, as here.
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
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
