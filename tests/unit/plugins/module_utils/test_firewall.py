"""The serving hosts' nftables rules: rendering, and their effect inside a network namespace of the test's own."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from ansible_collections.mlserve.tfserving.plugins.filter.firewall import FilterModule
from ansible_collections.mlserve.tfserving.plugins.module_utils import firewall

from ...conftest import REPO

PROBE = os.path.join(REPO, "molecule", "resources", "firewall_probe.py")
FIREWALL = {"profile": "p", "gateways": {"gw": ["127.0.0.2"]}, "allowed": []}
UNITS = [{"name": "tfserving-a", "grpc_port": 21500, "rest_port": 21501},
         {"name": "tfserving-b-v1", "grpc_port": 21502, "rest_port": 21503}]


def test_the_file_replaces_only_its_own_table_in_one_transaction():
    text = firewall.render(FIREWALL, UNITS, "s1")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert lines[:3] == ["table inet mlserve_tfserving", "delete table inet mlserve_tfserving",
                         "table inet mlserve_tfserving {"]
    assert "flush ruleset" not in text
    assert sum(line.startswith("table ") for line in lines) == 2  # and no other table
    assert "\t\telements = { 21500, 21501, 21502, 21503 }" in lines
    assert "\t\ttcp dport @serving_ports jump serving_ports" in lines
    assert "\t\tmeta l4proto tcp reject with tcp reset comment \"not a gateway\"" in lines
    assert "\t#   127.0.0.2: gateway gw" in text.splitlines()


def test_the_host_itself_is_127_0_0_1_and_1_only():
    lines = firewall.render(FIREWALL, UNITS, "s1").splitlines()
    assert [line.strip() for line in lines if "the host itself\"" in line] == [
        'ip saddr 127.0.0.1 accept comment "the host itself"', 'ip6 saddr ::1 accept comment "the host itself"']
    assert not any("127.0.0.0/8" in line or "iif" in line for line in lines)


def test_sources_are_split_by_family_and_overlaps_merged():
    text = firewall.render({"gateways": {"gw1": ["192.0.2.10", "2001:db8::7"], "gw2": ["192.0.2.0/24"]},
                            "allowed": ["198.51.100.7", "198.51.100.6", "2001:db8::/64"]},
                           [{"grpc_port": 8500, "rest_port": 8501}], "s1")
    elements = [line.strip() for line in text.splitlines() if "elements" in line]
    # An interval set refuses overlapping elements: the gateway's /32 is inside the /24.
    assert elements == ["elements = { 8500, 8501 }", "elements = { 192.0.2.0/24, 198.51.100.6/31 }",
                        "elements = { 2001:db8::/64 }", "elements = { 8501 }"]


def test_no_ports_and_no_sources_still_render_a_valid_file():
    text = firewall.render({"gateways": {}, "allowed": []}, [], "s1")
    assert "elements" not in text
    assert "\t#   no one" in text.splitlines()


def test_the_role_names_the_table_the_rules_create():
    with open(os.path.join(REPO, "roles", "firewall", "vars", "main.yml")) as f:
        assert yaml.safe_load(f)["_firewall_table"] == firewall.TABLE


def test_the_filter_is_the_renderer():
    assert FilterModule().filters()["nft_ruleset"](FIREWALL, UNITS, "s1") == firewall.render(FIREWALL, UNITS, "s1")


@pytest.mark.parametrize("value, problem", [
    ("192.0.2.10", None), ("2001:db8::1", None), ("192.0.2.0/24", None), ("127.0.0.2", None),
    ("gw.example", "is not an IP address or network"), ("192.0.2.10/24", "is not an IP address or network"),
    ("fe80::1%eth0", "is not an IP address or network"), (3232235530, "is not an IP address or network"),
    ("0.0.0.0/0", "would let every address in; set firewall_enabled: false on the serving hosts instead"),
])
def test_only_addresses_and_networks_are_sources(value, problem):
    assert firewall.network_problem(value) == problem


# These two need root, nft, unshare and ip (lab/engine.sh installs them, as `make unit` runs it): they fail
# rather than skip without them, so that a run without the real check cannot pass.
def test_nft_checks_the_file():
    text = firewall.render(dict(FIREWALL, allowed=["2001:db8::/64", "198.51.100.0/24"]), UNITS, "s1")
    subprocess.run(["unshare", "-n", "nft", "-c", "-f", "-"], input=text, text=True, check=True)


def test_in_a_namespace_only_the_gateway_and_the_host_itself_reach_the_serving_ports(tmp_path):
    rules = tmp_path / "firewall.nft"
    rules.write_text(firewall.render(FIREWALL, UNITS, "s1"))
    sources = ["127.0.0.1", "127.0.0.2", "127.0.0.3"] + (["::1"] if os.path.exists("/proc/net/if_inet6") else [])
    run = subprocess.run(["unshare", "-n", sys.executable, PROBE, str(rules), "--ports", "21500,21503",
                          "--outside", "21504", "--sources", ",".join(sources)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    probe = json.loads(run.stdout)
    assert probe["tables"] == ["inet mlserve_tfserving", "inet probe_other_owner"]
    outcome = dict((source, dict((port, r[0]) for port, r in ports.items())) for source, ports in probe["results"].items())
    for source in ("127.0.0.1", "127.0.0.2", "::1"):
        if source in outcome:
            assert outcome[source] == {"21500": "accepted", "21503": "accepted", "21504": "accepted"}, source
    assert outcome["127.0.0.3"] == {"21500": "refused", "21503": "refused", "21504": "accepted"}
    # A reset, at once: not a timeout.
    assert all(seconds < 1 for _, seconds in probe["results"]["127.0.0.3"].values())


# ---------------------------------------------------------------- monitoring hosts: the REST ports only

MONITORED = dict(FIREWALL, monitors={"mon": ["127.0.0.4", "2001:db8::9"]})


def test_monitoring_hosts_are_let_in_to_the_rest_ports_only():
    text = firewall.render(MONITORED, UNITS, "s1")
    lines = text.splitlines()
    rest = lines.index("\tset rest_ports {")
    assert lines[rest + 1:rest + 4] == ["\t\ttype inet_service", "\t\telements = { 21501, 21503 }", "\t}"]
    monitors_v4 = lines.index("\tset monitors_v4 {")
    assert lines[monitors_v4 + 3] == "\t\telements = { 127.0.0.4 }"
    monitors_v6 = lines.index("\tset monitors_v6 {")
    assert lines[monitors_v6 + 3] == "\t\telements = { 2001:db8::9 }"
    assert "\t#   127.0.0.4: monitoring host mon" in lines and "\t#   2001:db8::9: monitoring host mon" in lines
    chain = lines[lines.index("\tchain serving_ports {"):]
    accepts = [line.strip() for line in chain if "@monitors" in line]
    assert accepts == ["tcp dport @rest_ports ip saddr @monitors_v4 accept",
                       "tcp dport @rest_ports ip6 saddr @monitors_v6 accept"]
    # Before the reset, or they would never be reached.
    assert chain.index("\t\t" + accepts[1]) < chain.index("\t\tmeta l4proto tcp reject with tcp reset comment "
                                                          "\"not a gateway\"")
    # Not among the gateways' sources, which reach every port.
    allowed_v4 = lines.index("\tset allowed_v4 {")
    assert lines[allowed_v4 + 3] == "\t\telements = { 127.0.0.2 }"


def test_without_monitoring_hosts_the_monitor_sets_are_empty():
    lines = firewall.render(FIREWALL, UNITS, "s1").splitlines()
    assert "\t#   no monitoring host" in lines
    for name in ("monitors_v4", "monitors_v6"):
        start = lines.index("\tset %s {" % name)
        assert lines[start + 3] == "\t}"


def test_host_firewalls_carry_the_monitoring_hosts_sources():
    hosts = [{"name": "s1", "address": "192.0.2.1", "firewall": {"enabled": True, "allowed_sources": [],
                                                                  "gateway_sources": [],
                                                                  "rules_file": "/etc/tfserving/firewall.nft"}},
             {"name": "gw", "address": "192.0.2.9", "firewall": {"enabled": True, "allowed_sources": [],
                                                                  "gateway_sources": []}},
             {"name": "mon", "address": "192.0.2.5", "firewall": {"enabled": True, "allowed_sources": [],
                                                                   "gateway_sources": ["2001:db8::5"]}}]
    assert firewall.host_firewalls(hosts, {"s1": "p"}, ["gw"], ["mon"]) == {
        "s1": {"profile": "p", "gateways": {"gw": ["192.0.2.9"]}, "monitors": {"mon": ["2001:db8::5"]},
               "allowed": []}}
    bad = [dict(hosts[2], address="mon.example", firewall=dict(hosts[2]["firewall"], gateway_sources=[]))]
    problems = firewall.plan_problems(hosts[:2] + bad, ["s1"], ["gw"], ["mon"])
    assert [p for p in problems if "mon" in p] == [
        "firewall_gateway_sources on mon is not set and its address 'mon.example' (tfserving_address, ansible_host or "
        "the inventory name) is not an IP address or network; " + firewall.WHY + ": set firewall_gateway_sources on "
        "mon to the addresses its connections to the serving hosts come from"]


def test_nft_checks_the_file_with_monitoring_hosts():
    text = firewall.render(dict(MONITORED, allowed=["198.51.100.0/24"]), UNITS, "s1")
    subprocess.run(["unshare", "-n", "nft", "-c", "-f", "-"], input=text, text=True, check=True)
    # No unit at all: an empty REST port set still loads.
    subprocess.run(["unshare", "-n", "nft", "-c", "-f", "-"], input=firewall.render(MONITORED, [], "s1"), text=True,
                   check=True)


def test_in_a_namespace_a_monitoring_host_reaches_the_rest_ports_and_not_grpc(tmp_path):
    rules = tmp_path / "firewall.nft"
    rules.write_text(firewall.render(MONITORED, UNITS, "s1"))
    run = subprocess.run(["unshare", "-n", sys.executable, PROBE, str(rules), "--ports", "21500,21501,21503",
                          "--outside", "21504", "--sources", "127.0.0.2,127.0.0.3,127.0.0.4"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    outcome = dict((source, dict((port, r[0]) for port, r in ports.items()))
                   for source, ports in json.loads(run.stdout)["results"].items())
    assert outcome == {
        "127.0.0.2": {"21500": "accepted", "21501": "accepted", "21503": "accepted", "21504": "accepted"},
        "127.0.0.3": {"21500": "refused", "21501": "refused", "21503": "refused", "21504": "accepted"},
        "127.0.0.4": {"21500": "refused", "21501": "accepted", "21503": "accepted", "21504": "accepted"},
    }
