"""mlserve.tfserving.prometheus_config against a real Prometheus (Debian's) on 127.0.0.1, in a directory of the test's own.

There is no systemd here: the service's main process is the test's Prometheus, `systemctl start` and
`restart` start it again and return at once (as for a simple service), and its log is Prometheus's
standard error.
"""

import grp
import json
import os
import subprocess
import time
import urllib.request

import pytest

from ansible_collections.mlserve.tfserving.plugins.modules import prometheus_config as module

from ...ports import free_port
from .module_docs import assert_documentation_matches, module_runner

RULES = "groups:\n  - name: %s\n    rules:\n      - record: job:up:sum\n        expr: sum(up)\n"


class Prometheus:
    def __init__(self, base):
        self.base, self.port = base, free_port()
        self.config, self.rules = str(base / "prometheus.yml"), str(base / "rules" / "fleet.yml")
        self.loaded_file, self.log = str(base / "loaded.sha256"), str(base / "prometheus.log")
        self.enabled = True
        os.makedirs(os.path.dirname(self.rules))
        for entry in self.files("first"):
            with open(entry["path"], "w") as f:
                f.write(entry["content"])
        self.start()
        deadline = time.monotonic() + 30
        # Its metrics answer before it has read its configuration (the gauge is 0 until then), its API once
        # it is ready.
        while (module.reload_gauges(self.metrics_url(), "prometheus") or (False,))[0] is not True \
                or not module.ready(self.metrics_url()):
            assert time.monotonic() < deadline and self.process.poll() is None, open(self.log).read()
            time.sleep(0.1)

    def start(self):
        """Start Prometheus and return at once, as systemd does for a simple service."""
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(
                ["prometheus", "--config.file=" + self.config, "--web.listen-address=127.0.0.1:%d" % self.port,
                 "--storage.tsdb.path=" + str(self.base / "data")], stdout=log, stderr=subprocess.STDOUT)

    def systemctl(self, argv):
        """What `systemctl start|restart|show|enable prometheus` does to this Prometheus."""
        if argv[1:] == ["show", "--property=Id,LoadState,ActiveState,UnitFileState", "--", "prometheus"]:
            return 0, "Id=prometheus.service\nLoadState=loaded\nActiveState=active\nUnitFileState=%s\n" % (
                "enabled" if self.enabled else "disabled"), ""
        if argv[1:] == ["enable", "prometheus"]:
            self.enabled = True
            return 0, "", ""
        assert argv[1:] in (["start", "prometheus"], ["restart", "prometheus"]), argv
        if self.process.poll() is None:
            self.stop()
        self.start()
        return 0, "", ""

    def metrics_url(self):
        return "http://127.0.0.1:%d/metrics" % self.port

    def files(self, group, config_extra="", check=True):
        return [{"path": self.rules, "content": RULES % group, "check": ["promtool", "check", "rules", "%s"] if check else []},
                {"path": self.config, "content": "global:\n  scrape_interval: 1m\n%srule_files:\n  - %s\n"
                 % (config_extra, self.rules), "check": ["promtool", "check", "config", "%s"] if check else []}]

    def args(self, files, **extra):
        return dict({"files": files, "service": "prometheus", "metrics_url": self.metrics_url(),
                     "metric_prefix": "prometheus", "loaded_file": self.loaded_file, "timeout": 20}, **extra)

    def groups(self):
        """The rule groups Prometheus runs now."""
        with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/rules" % self.port, timeout=5) as reply:
            return [group["name"] for group in json.load(reply)["data"]["groups"]]

    def live(self, path):
        with open(path) as f:
            return f.read()

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def prometheus(tmp_path, monkeypatch):
    running = Prometheus(tmp_path)
    monkeypatch.setattr(module, "main_pid",
                        lambda _module, service: running.process.pid if running.process.poll() is None else None)
    run_command = module.AnsibleModule.run_command
    monkeypatch.setattr(module.AnsibleModule, "run_command", lambda self, argv, **kwargs: running.systemctl(argv)
                        if argv[0] == "systemctl" else run_command(self, argv, **kwargs))
    monkeypatch.setattr(module, "journal", lambda _module, service, since: open(running.log).read()[-2000:])
    yield running
    running.stop()


run = module_runner(module)


def test_new_rules_are_checked_put_in_place_and_loaded_before_the_module_returns(capsys, prometheus):
    assert prometheus.groups() == ["first"]
    result = run(capsys, prometheus.args(prometheus.files("second")))
    assert result["changed"] and result["action"] == "reload" and result["written"] == [prometheus.rules]
    assert prometheus.groups() == ["second"]
    again = run(capsys, prometheus.args(prometheus.files("second")))
    assert not again["changed"] and again["action"] == "none"


def test_a_proxy_of_the_environment_is_not_used_to_ask_the_daemon(capsys, prometheus, monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    result = run(capsys, prometheus.args(prometheus.files("second")))
    assert result["action"] == "reload" and not result.get("failed")


def test_files_in_place_that_prometheus_never_loaded_are_loaded_by_the_next_run(capsys, prometheus):
    run(capsys, prometheus.args(prometheus.files("first")))
    # A run that failed after writing: the file is live, Prometheus still runs the old one.
    with open(prometheus.rules, "w") as f:
        f.write(RULES % "second")
    assert prometheus.groups() == ["first"]
    result = run(capsys, prometheus.args(prometheus.files("second")))
    assert result["changed"] and result["written"] == [] and result["action"] == "reload"
    assert prometheus.groups() == ["second"]


def test_each_file_is_checked_with_the_files_before_it_in_place(capsys, prometheus):
    # As on a fresh host: `promtool check config` refuses a configuration whose rule file does not exist.
    os.unlink(prometheus.rules)
    os.unlink(prometheus.config)
    result = run(capsys, prometheus.args(prometheus.files("second")))
    assert result["action"] == "reload" and result["written"] == [prometheus.rules, prometheus.config]
    assert prometheus.groups() == ["second"]


def test_a_file_its_check_refuses_changes_no_file_and_nothing_loaded(capsys, prometheus):
    stamp = module.reload_gauges(prometheus.metrics_url(), "prometheus")[1]
    files = prometheus.files("second")
    files[0]["content"] = files[0]["content"].replace("sum(up)", "sum(up")
    result = run(capsys, prometheus.args(files))
    assert result["failed"] and not result["changed"] and result["written"] == []
    assert result["msg"].startswith("promtool refused the new %s; prometheus keeps running the "
                                    "configuration it loaded. It said: " % prometheus.rules)
    assert "unclosed left parenthesis" in result["msg"]
    assert prometheus.live(prometheus.rules) == RULES % "first" and prometheus.groups() == ["first"]
    assert module.reload_gauges(prometheus.metrics_url(), "prometheus")[1] == stamp
    assert os.listdir(os.path.dirname(prometheus.rules)) == ["fleet.yml"]


def test_a_refused_file_leaves_the_files_before_it_in_place_and_says_so(capsys, prometheus):
    files = prometheus.files("second")
    files[1]["content"] = files[1]["content"].replace("scrape_interval: 1m", "scrape_interval: 1 minute")
    result = run(capsys, prometheus.args(files))
    assert result["failed"] and result["changed"] and result["written"] == [prometheus.rules]
    assert prometheus.live(prometheus.rules) == RULES % "second" and prometheus.groups() == ["first"]
    # The next good run loads them: the loaded sum does not match.
    result = run(capsys, prometheus.args(prometheus.files("second")))
    assert result["action"] == "reload" and result["written"] == []
    assert prometheus.groups() == ["second"]


def test_a_configuration_prometheus_refuses_to_load_fails_the_run_with_its_log_and_the_next_run_loads_again(
        capsys, prometheus):
    run(capsys, prometheus.args(prometheus.files("first")))
    # No check, so that Prometheus itself is the one to refuse it.
    refused = prometheus.files("second", config_extra="scrape_configs:\n  - job_name: x\n    scrape_interval: 1h\n"
                                                      "    scrape_timeout: 2h\n", check=False)
    result = run(capsys, prometheus.args(refused))
    assert result["failed"]
    assert result["msg"].startswith("prometheus refused the configuration written (%s does not report a successful "
                                    "load after the reload); its log: " % prometheus.metrics_url())
    assert "Error reloading config" in result["msg"] and "scrape timeout greater than scrape interval" in result["msg"]
    assert prometheus.groups() == ["first"]
    result = run(capsys, prometheus.args(prometheus.files("second")))
    assert result["action"] == "reload" and prometheus.groups() == ["second"]


def test_check_mode_shows_the_diff_and_a_restart_for_a_file_read_at_start_and_changes_nothing(capsys, prometheus):
    run(capsys, prometheus.args(prometheus.files("first")))
    flags = {"path": str(prometheus.base / "flags"), "content": 'ARGS="--x"\n', "check": ["sh", "-n", "%s"],
             "restart": True}
    result = run(capsys, prometheus.args(prometheus.files("second") + [flags]), check_mode=True, diff=True)
    assert result["changed"] and result["action"] == "restart"
    assert result["written"] == [prometheus.rules, flags["path"]]
    assert result["diff"][0]["before"] == RULES % "first" and result["diff"][0]["after"] == RULES % "second"
    assert prometheus.live(prometheus.rules) == RULES % "first" and not os.path.exists(flags["path"])
    assert prometheus.groups() == ["first"]


def test_a_changed_file_read_at_start_restarts_prometheus_and_a_stopped_one_is_started(capsys, prometheus):
    run(capsys, prometheus.args(prometheus.files("first")))
    before = prometheus.process.pid
    flags = {"path": str(prometheus.base / "flags"), "content": 'ARGS="--x"\n', "check": ["sh", "-n", "%s"],
             "restart": True}
    result = run(capsys, prometheus.args(prometheus.files("second") + [flags]))
    # The module returned once the new process had loaded the new rules.
    assert result["action"] == "restart" and prometheus.process.pid != before
    assert prometheus.groups() == ["second"]
    prometheus.stop()
    result = run(capsys, prometheus.args(prometheus.files("third") + [flags]))
    assert result["action"] == "start" and result["written"] == [prometheus.rules]
    assert prometheus.groups() == ["third"]


def test_a_file_only_the_daemon_s_group_may_read_gets_that_group_and_mode(capsys, prometheus):
    files = prometheus.files("first")
    files[0].update(mode="0640", group="daemon")
    result = run(capsys, prometheus.args(files))
    assert result["written"] == [prometheus.rules] and result["action"] == "reload"
    status = os.stat(prometheus.rules)
    assert (status.st_mode & 0o777, status.st_gid) == (0o640, grp.getgrnam("daemon").gr_gid)
    assert not run(capsys, prometheus.args(files))["changed"]


def test_bad_input_is_named_before_anything_is_written(capsys, prometheus):
    result = run(capsys, prometheus.args([{"path": "prometheus.yml", "content": ""},
                                          {"path": "/x.yml", "content": "", "check": ["promtool", "check", "config"]},
                                          {"path": "/y.yml", "content": "", "mode": "rw"},
                                          {"path": "/z.yml", "content": "", "group": "no-such-group-mlserve"}]))
    assert result["failed"]
    assert result["msg"] == ("prometheus_config: files[0].path: 'prometheus.yml' is not an absolute path; "
                             "files[1].check: ['promtool', 'check', 'config'] has no %s for the file to check; "
                             "files[2].mode: 'rw' is not an octal mode such as 0644; "
                             "files[3].group: 'no-such-group-mlserve' is not a group of this host")
    assert not os.path.exists("/x.yml")


def test_a_service_not_started_at_boot_is_enabled_without_a_reload_and_then_left_alone(capsys, prometheus):
    run(capsys, prometheus.args(prometheus.files("first")))
    stamp = module.reload_gauges(prometheus.metrics_url(), "prometheus")[1]
    prometheus.enabled = False
    checked = run(capsys, prometheus.args(prometheus.files("first")), check_mode=True)
    assert checked["changed"] and checked["enabled_changed"] and not prometheus.enabled
    result = run(capsys, prometheus.args(prometheus.files("first")))
    assert result["changed"] and result["enabled_changed"] and result["action"] == "none"
    assert prometheus.enabled
    assert module.reload_gauges(prometheus.metrics_url(), "prometheus")[1] == stamp
    again = run(capsys, prometheus.args(prometheus.files("first")))
    assert not again["changed"] and not again["enabled_changed"]
    prometheus.enabled = False
    left = run(capsys, prometheus.args(prometheus.files("first"), enabled=False))
    assert not left["changed"] and not prometheus.enabled


def test_the_documentation_is_the_argument_spec(monkeypatch):
    assert_documentation_matches(monkeypatch, module, ["written", "action", "enabled_changed"])
