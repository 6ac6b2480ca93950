"""mlserve.tfserving.nginx_config against a real nginx on 127.0.0.1, started in a directory of the test's own."""

import json
import os
import subprocess
import time
import urllib.request

import pytest

from ansible_collections.mlserve.tfserving.plugins.modules import nginx_config as module

from ...gateway.render import stop_nginx
from ...ports import free_port
from .module_docs import assert_documentation_matches, module_runner


class Gateway:
    """nginx running <root>/nginx.conf, which includes mlserve/routes.conf (a relative include, as the role's)."""

    def __init__(self, base):
        self.base, self.root, self.port = str(base), str(base / "etc"), free_port()
        self.pid_file = os.path.join(self.base, "nginx.pid")
        os.makedirs(os.path.join(self.root, "mlserve"))
        for entry in (self.main(), self.routes("v1")):
            with open(os.path.join(self.root, entry["path"]), "w") as f:
                f.write(entry["content"])
        subprocess.run(["nginx", "-p", self.base, "-c", os.path.join(self.root, "nginx.conf")], check=True, timeout=30)
        self.master = int(open(self.pid_file).read())
        # The master forks its workers after it writes its pid file (a busy machine shows the gap).
        deadline = time.monotonic() + 10
        while len(module.workers(self.master)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)

    def main(self, extra=""):
        return {"path": "nginx.conf", "content": (
            "pid %s;\nerror_log %s/error.log;\nworker_processes 2;\nevents {}\n"
            "http {\n  access_log off;\n  include mlserve/routes.conf;\n%s}\n" % (self.pid_file, self.base, extra))}

    def routes(self, answer, directive="return 200"):
        return {"path": "mlserve/routes.conf",
                "content": "server {\n  listen 127.0.0.1:%d;\n  location / { %s \"%s\\n\"; }\n}\n"
                           % (self.port, directive, answer)}

    def args(self, files, **extra):
        return dict({"files": files, "root": self.root, "candidate": os.path.join(self.root, "mlserve", "candidate"),
                     "loaded_file": os.path.join(self.root, "mlserve", "loaded.sha256"), "pid_file": self.pid_file,
                     "reload_timeout": 20}, **extra)

    def answer(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/" % self.port, timeout=5) as reply:
            return reply.read().decode().strip()

    def live(self, path):
        with open(os.path.join(self.root, path)) as f:
            return f.read()

    def workers(self):
        return module.workers(self.master)

    def stop(self):
        stop_nginx(self.master, self.pid_file)


@pytest.fixture
def gateway(tmp_path):
    running = Gateway(tmp_path)
    yield running
    running.stop()


run = module_runner(module)


def test_a_new_route_is_checked_put_in_place_and_served_once_the_old_workers_are_gone(capsys, gateway):
    old = gateway.workers()
    assert old and gateway.answer() == "v1"
    result = run(capsys, gateway.args([gateway.main(), gateway.routes("v2")]))
    assert result["changed"] and result["action"] == "reload" and result["written"] == ["mlserve/routes.conf"]
    assert gateway.answer() == "v2"
    assert not old & gateway.workers() and not any(os.path.exists("/proc/%d" % pid) for pid in old)
    again = run(capsys, gateway.args([gateway.main(), gateway.routes("v2")]))
    assert not again["changed"] and again["action"] == "none"


def test_a_configuration_nginx_refuses_changes_no_file_and_no_route(capsys, gateway):
    run(capsys, gateway.args([gateway.main(), gateway.routes("v1")]))
    workers = gateway.workers()
    result = run(capsys, gateway.args([gateway.main(), gateway.routes("v2", directive="retrun 200")]))
    assert result["failed"]
    assert result["msg"].startswith("nginx refused the new configuration (%s/mlserve/candidate); the running gateway "
                                    "keeps the last good one. nginx said: " % gateway.root)
    assert 'unknown directive "retrun"' in result["msg"]
    assert "v1" in gateway.live("mlserve/routes.conf") and gateway.answer() == "v1" and gateway.workers() == workers


def test_nginx_s_message_about_a_secret_file_shows_no_quoted_text(capsys, gateway):
    secret = {"path": "mlserve/clients.conf", "content": "map $http_x_api_key $client {\n  \"s3cret\" team;\n"}
    result = run(capsys, gateway.args([gateway.main("  include mlserve/clients.conf;\n"), gateway.routes("v1")],
                                      secret_files=[secret]))
    assert result["failed"] and "nginx refused" in result["msg"]
    assert "s3cret" not in json.dumps(result) and '"(not shown)"' in result["msg"]
    assert not os.path.exists(os.path.join(gateway.root, "mlserve", "clients.conf"))


def test_secret_files_are_written_with_their_mode_and_without_diff_and_removed_when_absent(capsys, gateway):
    secret = {"path": "mlserve/clients.conf", "content": "map $http_x_api_key $client {\n  \"s3cret\" team;\n}\n"}
    files = [gateway.main("  include mlserve/clients.conf;\n"), gateway.routes("v1")]
    result = run(capsys, gateway.args(files, secret_files=[secret]), diff=True)
    assert result["written"] == ["nginx.conf", "mlserve/clients.conf"]
    assert [d["after_header"] for d in result["diff"]] == [os.path.join(gateway.root, "nginx.conf")]
    assert "s3cret" not in json.dumps(result)
    assert os.stat(os.path.join(gateway.root, "mlserve", "clients.conf")).st_mode & 0o777 == 0o640
    result = run(capsys, gateway.args([gateway.main(), gateway.routes("v1")], absent=["mlserve/clients.conf"]))
    assert result["removed"] == ["mlserve/clients.conf"] and result["action"] == "reload"
    assert not os.path.exists(os.path.join(gateway.root, "mlserve", "clients.conf"))
    assert gateway.answer() == "v1"


def test_files_in_place_that_nginx_never_loaded_are_reloaded_by_the_next_run(capsys, gateway):
    run(capsys, gateway.args([gateway.main(), gateway.routes("v1")]))
    # A run that failed after writing: the files are live, nginx still runs the old ones.
    with open(os.path.join(gateway.root, "mlserve", "routes.conf"), "w") as f:
        f.write(gateway.routes("v2")["content"])
    assert gateway.answer() == "v1"
    result = run(capsys, gateway.args([gateway.main(), gateway.routes("v2")]))
    assert result["changed"] and result["written"] == [] and result["action"] == "reload"
    assert gateway.answer() == "v2"


def test_check_mode_shows_the_diff_and_changes_nothing(capsys, gateway):
    run(capsys, gateway.args([gateway.main(), gateway.routes("v1")]))
    before = gateway.live("mlserve/routes.conf")
    result = run(capsys, gateway.args([gateway.main(), gateway.routes("v2")]), check_mode=True, diff=True)
    assert result["changed"] and result["written"] == ["mlserve/routes.conf"]
    assert result["diff"][0]["before"] == before and '"v2\\n"' in result["diff"][0]["after"]
    assert gateway.live("mlserve/routes.conf") == before and gateway.answer() == "v1"
    assert not os.path.exists(os.path.join(gateway.root, "mlserve", "candidate", "mlserve", "routes.conf"))


def test_bad_input_is_named_before_anything_is_written(capsys, gateway):
    result = run(capsys, gateway.args([gateway.main(), {"path": "../escape.conf", "content": ""},
                                       {"path": "x.conf", "content": "", "mode": "rw"}], main="other.conf"))
    assert result["failed"]
    assert result["msg"] == ("nginx_config: files[1].path: '../escape.conf' is not a path relative to root; "
                             "files[2].mode: 'rw' is not an octal mode such as 0644; "
                             "main: 'other.conf' is not one of the files")


def test_the_documentation_is_the_argument_spec(monkeypatch):
    assert_documentation_matches(monkeypatch, module, ["written", "removed", "action"])
