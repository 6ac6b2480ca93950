"""plugins/module_utils/monitoring.py: addresses, scrape jobs, port checks; and the role's variables."""

import os

import pytest
import yaml

from ansible_collections.mlserve.tfserving.plugins.filter.monitoring import FilterModule
from ansible_collections.mlserve.tfserving.plugins.module_utils import alerting, metrics, monitoring

from .render import ROLE


@pytest.mark.parametrize("address, expected", [("0.0.0.0", "0.0.0.0:9090"), ("::", "[::]:9090"),
                                               ("[::1]", "[::1]:9090"), ("127.0.0.1", "127.0.0.1:9090"),
                                               ("prom.example.test", "prom.example.test:9090")])
def test_host_port_brackets_ipv6_only(address, expected):
    assert monitoring.host_port(address, 9090) == expected


@pytest.mark.parametrize("address, expected", [("0.0.0.0", "127.0.0.1:9090"), ("::", "[::1]:9090"),
                                               ("", "127.0.0.1:9090"), ("127.0.0.2", "127.0.0.2:9090")])
def test_a_wildcard_listener_is_reached_on_loopback(address, expected):
    assert monitoring.local_host_port(address, 9090) == expected


def test_scrape_jobs_of_an_empty_plan_scrape_prometheus_only():
    jobs = monitoring.scrape_configs(None, "127.0.0.1:9090", "127.0.0.1:9115")
    assert [j["job_name"] for j in jobs] == ["prometheus", "tfserving", "tfserving_versions", "gateway_requests",
                                             "gateway_nginx"]
    assert [j["static_configs"] for j in jobs[1:]] == [[], [], [], []]


def test_label_values_are_strings_and_a_gateway_without_an_exporter_is_left_out():
    jobs = dict((j["job_name"], j) for j in monitoring.scrape_configs({
        "versions": [{"host": "s1", "container": "c", "model": "m", "version": 12, "url": "http://[::1]:1/v1/models/m"}],
        "gateways": [{"host": "g1", "requests": "127.0.0.1:3903", "nginx": None},
                     {"host": "g2", "requests": "127.0.0.1:4903", "nginx": "127.0.0.1:4113"}]},
        "127.0.0.1:9090", "[::1]:9115"))
    assert jobs["tfserving_versions"]["static_configs"][0]["labels"]["version"] == "12"
    assert jobs["tfserving_versions"]["relabel_configs"][-1]["replacement"] == "[::1]:9115"
    assert [c["labels"]["gateway"] for c in jobs["gateway_requests"]["static_configs"]] == ["g1", "g2"]
    assert [c["labels"]["gateway"] for c in jobs["gateway_nginx"]["static_configs"]] == ["g2"]


PORTS = {"Prometheus": (9090, "prometheus"), "blackbox exporter": (9115, "prometheus-blackbox-exporter")}


def test_free_ports_or_ports_held_by_their_own_programs_are_fine():
    assert monitoring.port_problems(PORTS) == []
    # The kernel cuts a process name to 15 characters.
    assert monitoring.port_problems(PORTS, [{"port": 9090, "name": "prometheus", "pid": 7},
                                            {"port": 9115, "name": "prometheus-blac", "pid": 8}]) == []


def test_a_port_held_by_another_process_is_named():
    problems = monitoring.port_problems(PORTS, [{"port": 9115, "name": "prometheus", "pid": 7},
                                                {"port": 9090, "name": "unknown", "pid": None}], "mon1")
    assert problems == [
        "Prometheus port 9090 on mon1 is already held by a process this host cannot name (another container or "
        "namespace); free it or choose another port",
        "blackbox exporter port 9115 on mon1 is already held by prometheus (pid 7); free it or choose another port"]


def test_one_port_for_both_or_no_port_is_refused():
    assert monitoring.port_problems({"Prometheus": (9090, "prometheus"), "blackbox exporter": (9090, "x")}) == [
        "Prometheus and blackbox exporter both want port 9090; give each its own (monitoring_port, "
        "monitoring_blackbox_port, monitoring_alertmanager_port)"]
    assert monitoring.port_problems({"Prometheus": (70000, "prometheus"), "blackbox exporter": (True, "x")}) == [
        "Prometheus port 70000 is not a port from 1 to 65535", "blackbox exporter port True is not a port from 1 to 65535"]


def test_the_filters_are_the_module_utils_functions():
    assert FilterModule().filters() == {
        "monitoring_host_port": monitoring.host_port, "monitoring_local_host_port": monitoring.local_host_port,
        "monitoring_port_problems": monitoring.port_problems, "monitoring_scrape_configs": monitoring.scrape_configs,
        "monitoring_selector": metrics.selector, "monitoring_alertmanager_config": alerting.config}


def test_every_role_variable_has_its_default_in_the_argument_specs():
    with open(os.path.join(ROLE, "defaults", "main.yml")) as f:
        defaults = yaml.safe_load(f)
    with open(os.path.join(ROLE, "meta", "argument_specs.yml")) as f:
        options = yaml.safe_load(f)["argument_specs"]["main"]["options"]
    specified = dict((k, v["default"]) for k, v in options.items() if not v.get("required"))
    assert specified == defaults
    assert all(k.startswith("monitoring_") for k in defaults)
