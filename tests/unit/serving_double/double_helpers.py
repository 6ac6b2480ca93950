"""Helpers for the TF Serving test double's tests.

Every server runs as a subprocess on 127.0.0.1 with free ports, over
temporary copies of tests/fixtures/models, and is killed at teardown. Every
wait is bounded.
"""

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

# Absolute: this file is also imported as the top-level double_helpers (conftest.py).
from unit.ports import free_port  # noqa: F401 (the tests of the double take it from here)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DOUBLE_DIR = os.path.join(REPO, "tests", "serving_double")
SERVER = os.path.join(DOUBLE_DIR, "model_server_double.py")
FIXTURES = os.path.join(REPO, "tests", "fixtures", "models")
EXPECTED_DIR = os.path.join(REPO, "tests", "fixtures", "expected")


def expected_answers():
    """tests/fixtures/expected/<model>.json, by model: the cases and answers TensorFlow computed."""
    answers = {}
    for name in sorted(os.listdir(EXPECTED_DIR)):
        if name.endswith(".json"):
            with open(os.path.join(EXPECTED_DIR, name)) as f:
                answers[name[:-len(".json")]] = json.load(f)
    return answers


def load_double_module():
    spec = importlib.util.spec_from_file_location("model_server_double_under_test", SERVER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def double_module():
    return load_double_module()


def port_open(port, timeout=0.2):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def http(method, url, body=None, timeout=5, headers=None):
    """(status code, body text, headers) for any answer, errors included."""
    data = body if body is None or isinstance(body, bytes) else (
        body.encode("utf-8") if isinstance(body, str) else json.dumps(body).encode("utf-8"))
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8"), dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8"), dict(e.headers)


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))


class Double:
    """One tensorflow_model_server double process."""

    def __init__(self, tmp_path, args, env=None, grpc_port=None, rest_port=None, name="double"):
        self.grpc_port = grpc_port if grpc_port is not None else free_port()
        self.rest_port = rest_port if rest_port is not None else free_port()
        self.stdout_path = str(tmp_path / ("%s-%d.stdout" % (name, self.grpc_port)))
        self.stderr_path = str(tmp_path / ("%s-%d.stderr" % (name, self.grpc_port)))
        full_env = dict(os.environ)
        full_env.update(env or {})
        argv = [sys.executable, SERVER]
        if not any(a.startswith("--port=") for a in args):
            argv.append("--port=%d" % self.grpc_port)
        if not any(a.startswith("--rest_api_port=") for a in args):
            argv.append("--rest_api_port=%d" % self.rest_port)
        argv.extend(args)
        self.argv = argv
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=full_env,
                                         cwd=str(tmp_path))

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.rest_port

    def stdout(self):
        with open(self.stdout_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stderr(self):
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_rest(self, timeout=10):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("double exited with %s\nstdout:\n%s\nstderr:\n%s"
                                     % (self.proc.returncode, self.stdout()[-2000:], self.stderr()[-4000:]))
            return port_open(self.rest_port)
        wait_for(ready, timeout, what="REST port %d" % self.rest_port)
        return self

    def wait_exit(self, timeout=10):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("double still running after %ss\nstderr:\n%s" % (timeout, self.stderr()[-4000:]))

    def wait_log(self, text, timeout=10, count=1):
        return wait_for(lambda: self.stderr().count(text) >= count, timeout, what="log %r x%d" % (text, count))

    def get(self, path, **kw):
        return http("GET", self.base + path, **kw)

    def post(self, path, body, **kw):
        return http("POST", self.base + path, body, **kw)

    def json(self, method, path, body=None):
        code, text, _ = http(method, self.base + path, body)
        return code, json.loads(text)

    def states(self, model):
        code, text, _ = self.get("/v1/models/%s" % model)
        if code != 200:
            return {}
        return dict((int(s["version"]), s["state"]) for s in json.loads(text)["model_version_status"])

    def wait_states(self, model, expected, timeout=8):
        """Wait until the status lists exactly `expected` ({version: state}) for the versions it names."""
        def check():
            states = self.states(model)
            return states if all(states.get(v) == s for v, s in expected.items()) else False
        return wait_for(check, timeout, what="%s states %r" % (model, expected))

    def predict(self, path, values):
        code, text, _ = self.post(path, {"instances": values})
        assert code == 200, text
        return json.loads(text)["predictions"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def start_double(tmp_path):
    started = []

    def start(*args, env=None, **kw):
        d = Double(tmp_path, list(args), env=env, name="double%d" % len(started), **kw)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


@pytest.fixture
def models(tmp_path):
    """A fresh copy of the fixture models: models / 'half_plus' / '1' ..."""
    root = tmp_path / "models"
    shutil.copytree(FIXTURES, str(root))
    return root


def model_config(*models_):
    """models.config text for dicts {name, base_path, policy?, labels?, platform?}."""
    lines = ["model_config_list {"]
    for m in models_:
        lines.append("  config {")
        lines.append('    name: "%s"' % m["name"])
        lines.append('    base_path: "%s"' % m["base_path"])
        if m.get("platform", "tensorflow") is not None:
            lines.append('    model_platform: "%s"' % m.get("platform", "tensorflow"))
        if m.get("policy"):
            lines.append("    model_version_policy { %s }" % m["policy"])
        for label, version in sorted(m.get("labels", {}).items()):
            lines.append('    version_labels { key: "%s" value: %d }' % (label, version))
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_config(path, *models_):
    """Write atomically (rename), as a deployment tool would."""
    text = model_config(*models_)
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, str(path))
    return str(path)


def specific(*versions):
    return "specific { %s }" % " ".join("versions: %d" % v for v in versions)
