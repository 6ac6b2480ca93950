# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus for the fleet: what it scrapes and probes, from the plan's monitoring part.

plugins/filter/monitoring.py wraps these functions and roles/monitoring writes
their results into prometheus.yml.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible_collections.mlserve.tfserving.plugins.module_utils import metrics

# The module of the blackbox exporter that probes one version's status URL
# (roles/monitoring/templates/blackbox.yml.j2 defines it).
PROBE_MODULE = "tfserving_available"
# A listen address that means every address is reached on loopback.
_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}


def host_port(address, port):
    """`address:port` as Prometheus and the exporters take it: an IPv6 address in brackets."""
    address = str(address).strip("[]")
    try:
        bracket = ipaddress.ip_address(address).version == 6
    except ValueError:  # a host name
        bracket = False
    return ("[%s]:%s" if bracket else "%s:%s") % (address, port)


def local_host_port(address, port):
    """Where a client on the same host reaches a server listening on `address:port`."""
    return host_port(_WILDCARDS.get(str(address), address), port)


def _static(target, labels):
    return {"targets": [target], "labels": dict((k, str(v)) for k, v in labels.items())}


def scrape_configs(monitoring, prometheus, blackbox):
    """The scrape_configs of prometheus.yml, one job per kind of target.

    `monitoring`: the plan's monitoring part (servers, versions, gateways;
    servers and versions compact or not, metrics.compact_scrape_plan);
    `prometheus` and `blackbox`: where Prometheus and the blackbox exporter
    listen, as `address:port` (a wildcard address is reached on loopback).
    Every target carries the labels the alert rules group by.
    """
    monitoring = monitoring or {}
    servers, versions = metrics.scrape_targets(monitoring)
    jobs = [{"job_name": "prometheus", "static_configs": [{"targets": [prometheus]}]}]
    # Each server's metrics path rides on its target: one job for all of them.
    jobs.append({"job_name": "tfserving", "static_configs": [
        _static(s["target"], {"host": s["host"], "container": s["container"], "model": s["model"],
                              "__metrics_path__": s["metrics_path"]})
        for s in servers]})
    # The blackbox exporter asks each version's URL; Prometheus asks the
    # exporter, naming the URL as the probe's target and as the instance.
    jobs.append({
        "job_name": "tfserving_versions",
        "metrics_path": "/probe",
        "params": {"module": [PROBE_MODULE]},
        "static_configs": [_static(v["url"], {"host": v["host"], "container": v["container"], "model": v["model"],
                                              "version": v["version"]})
                           for v in versions],
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
            {"target_label": "__address__", "replacement": blackbox},
        ],
    })
    for job, key in (("gateway_requests", "requests"), ("gateway_nginx", "nginx")):
        jobs.append({"job_name": job, "static_configs": [
            _static(g[key], {"gateway": g["host"]}) for g in monitoring.get("gateways") or [] if g.get(key)]})
    return jobs


def port_problems(ports, listeners=None, host=None):
    """Ports of the monitoring host that collide with each other or are taken.

    `ports`: what -> (port, program), the program that may hold that port
    itself (a run after the first finds it there); `listeners`: the host's
    listen_ports_facts entries. A process name is the kernel's, cut to 15
    characters.
    """
    problems = []
    where = " on %s" % host if host else ""
    claims = {}
    held = dict((int(entry["port"]), entry) for entry in listeners or [])
    for what, (port, program) in sorted(ports.items()):
        if not (isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536):
            problems.append("%s port %r%s is not a port from 1 to 65535" % (what, port, where))
            continue
        if port in claims:
            problems.append("%s and %s%s both want port %d; give each its own (monitoring_port, "
                            "monitoring_blackbox_port, monitoring_alertmanager_port)" % (claims[port], what, where, port))
            continue
        claims[port] = what
        name = (held.get(port) or {}).get("name") or "unknown"
        if port in held and name != program[:15]:
            who = ("%s (pid %s)" % (name, held[port].get("pid")) if name != "unknown"
                   else "a process this host cannot name (another container or namespace)")
            problems.append("%s port %d%s is already held by %s; free it or choose another port"
                            % (what, port, where, who))
    return problems
