"""prometheus.yml and the flags files as the role renders them from a plan's monitoring part."""

import subprocess

import pytest
import yaml

from ansible_collections.mlserve.tfserving.plugins.module_utils import monitoring

from .render import render, role_variables

PLAN = {
    "url": "http://127.0.0.1:19090",
    "servers": [
        {"host": "lab-serving1", "container": "tfserving-half_plus", "model": "half_plus", "target": "127.0.0.1:18501",
         "metrics_path": "/monitoring/prometheus/metrics"},
        {"host": "lab-serving2", "container": "tfserving-half_plus_iso-v2", "model": "half_plus_iso",
         "target": "127.0.0.1:18603", "metrics_path": "/metrics/tfs"},
    ],
    "versions": [
        {"host": "lab-serving1", "container": "tfserving-half_plus", "model": "half_plus", "version": 1,
         "url": "http://127.0.0.1:18501/v1/models/half_plus/versions/1"},
        {"host": "lab-serving2", "container": "tfserving-half_plus_iso-v2", "model": "half_plus_iso", "version": 2,
         "url": "http://127.0.0.1:18603/v1/models/half_plus_iso/versions/2"},
    ],
    "gateways": [{"host": "lab-gateway1", "requests": "127.0.0.1:18082", "nginx": "127.0.0.1:18083"}],
}


def rendered(tmp_path, plan=PLAN, with_rules=True, **overrides):
    """prometheus.yml as the role writes it, with the rules file it names in tmp_path."""
    variables = role_variables(_monitoring_rules_file=str(tmp_path / "rules" / "tfserving.yml"), **overrides)
    variables["_monitoring_scrape_configs"] = monitoring.scrape_configs(
        plan, monitoring.local_host_port(variables["monitoring_listen_address"], variables["monitoring_port"]),
        monitoring.local_host_port(variables["monitoring_blackbox_listen_address"],
                                   variables["monitoring_blackbox_port"]))
    if with_rules:
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "tfserving.yml").write_text(render("tfserving.rules.yml.j2", variables))
    (tmp_path / "prometheus.yml").write_text(render("prometheus.yml.j2", variables))
    return tmp_path / "prometheus.yml"


def check_config(path):
    return subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("plan", [PLAN, {"url": None, "servers": [], "versions": [], "gateways": []}])
def test_promtool_accepts_the_configuration_and_loads_the_rules(tmp_path, plan):
    check = check_config(rendered(tmp_path, plan))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 12 rules found" in check.stdout + check.stderr


def test_the_configuration_is_refused_until_its_rules_are_written(tmp_path):
    # Why the role writes the rules first.
    check = check_config(rendered(tmp_path, with_rules=False))
    assert check.returncode != 0
    assert "tfserving.yml" in check.stdout + check.stderr


def test_the_jobs_scrape_the_plans_targets_with_their_labels(tmp_path):
    config = yaml.safe_load(rendered(tmp_path, monitoring_scrape_interval="30s").read_text())
    assert config["global"] == {"scrape_interval": "30s", "evaluation_interval": "15s"}
    assert config["rule_files"] == [str(tmp_path / "rules" / "tfserving.yml")]
    jobs = dict((j["job_name"], j) for j in config["scrape_configs"])
    assert list(jobs) == ["prometheus", "tfserving", "tfserving_versions", "gateway_requests", "gateway_nginx"]
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["127.0.0.1:9090"]}]
    assert jobs["tfserving"]["static_configs"][1] == {
        "targets": ["127.0.0.1:18603"], "labels": {"host": "lab-serving2", "container": "tfserving-half_plus_iso-v2",
                                                   "model": "half_plus_iso", "__metrics_path__": "/metrics/tfs"}}
    probes = jobs["tfserving_versions"]
    assert probes["metrics_path"] == "/probe" and probes["params"] == {"module": ["tfserving_available"]}
    assert probes["static_configs"][0] == {
        "targets": ["http://127.0.0.1:18501/v1/models/half_plus/versions/1"],
        "labels": {"host": "lab-serving1", "container": "tfserving-half_plus", "model": "half_plus", "version": "1"}}
    assert probes["relabel_configs"][-1] == {"target_label": "__address__", "replacement": "127.0.0.1:9115"}
    assert jobs["gateway_requests"]["static_configs"] == [
        {"targets": ["127.0.0.1:18082"], "labels": {"gateway": "lab-gateway1"}}]
    assert jobs["gateway_nginx"]["static_configs"] == [
        {"targets": ["127.0.0.1:18083"], "labels": {"gateway": "lab-gateway1"}}]


def flags(name, **overrides):
    """ARGS of an /etc/default file as Debian's init script reads it (sourced by sh)."""
    text = render(name, role_variables(**overrides))
    run = subprocess.run(["sh", "-c", text + '\nprintf "%s\\n" $ARGS'], capture_output=True, text=True, timeout=10)
    assert run.returncode == 0, run.stderr
    return run.stdout.split()


def test_the_flags_name_the_files_the_addresses_and_the_retention():
    assert flags("prometheus.default.j2") == [
        "--config.file=/etc/prometheus/prometheus.yml", "--web.listen-address=0.0.0.0:9090",
        "--storage.tsdb.retention.time=15d"]
    assert flags("blackbox.default.j2") == [
        "--config.file=/etc/prometheus/blackbox.yml", "--web.listen-address=127.0.0.1:9115"]
    assert "--web.listen-address=[::]:19090" in flags("prometheus.default.j2", monitoring_listen_address="::",
                                                      monitoring_port=19090)
