"""The blackbox exporter's module tfserving_available, run against a status answer on loopback."""

import http.server
import subprocess
import threading
import time
import urllib.request

import pytest

from ..ports import free_port
from .render import render, role_variables

# What TF Serving answers for GET /v1/models/M/versions/N.
STATUS = '{\n "model_version_status": [\n  {\n   "version": "2",\n   "state": "%s",\n   "status": {\n' \
         '    "error_code": "OK",\n    "error_message": ""\n   }\n  }\n ]\n}\n'
ANSWERS = {
    "/available": (200, STATUS % "AVAILABLE"),
    "/loading": (200, STATUS % "LOADING"),
    "/end": (200, STATUS % "END"),
    # An error answer that quotes the state must not pass.
    "/missing": (404, '{"error": "Servable not found ... \\"state\\": \\"AVAILABLE\\""}'),
}


class Status(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code, body = ANSWERS[self.path]
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def blackbox_config(tmp_path):
    path = tmp_path / "blackbox.yml"
    path.write_text(render("blackbox.yml.j2", role_variables()))
    return path


def test_the_exporter_accepts_the_modules(blackbox_config):
    check = subprocess.run(["prometheus-blackbox-exporter", "--config.check", "--config.file=%s" % blackbox_config],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr


@pytest.fixture
def probe(blackbox_config):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    listen = "127.0.0.1:%d" % free_port()
    exporter = subprocess.Popen(["prometheus-blackbox-exporter", "--config.file=%s" % blackbox_config,
                                 "--web.listen-address=%s" % listen],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def ask(path):
        target = "http://127.0.0.1:%d%s" % (server.server_address[1], path)
        url = "http://%s/probe?module=tfserving_available&target=%s" % (listen, target)
        with urllib.request.urlopen(url, timeout=10) as answer:
            lines = answer.read().decode().splitlines()
        return [line.split()[1] for line in lines if line.startswith("probe_success ")][0]

    for _ in range(100):
        try:
            urllib.request.urlopen("http://%s/metrics" % listen, timeout=1).close()
            break
        except OSError:
            assert exporter.poll() is None, exporter.stderr.read().decode()
            time.sleep(0.1)
    yield ask
    exporter.terminate()
    exporter.wait(timeout=10)
    server.shutdown()


@pytest.mark.parametrize("path, success", [("/available", "1"), ("/loading", "0"), ("/end", "0"), ("/missing", "0")])
def test_only_an_available_version_passes(probe, path, success):
    assert probe(path) == success
