# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What runs on a serving host: a planned unit's server files and command, and the answers read there.

The controller (the fleet plan, fleet.py, the filters) plans the units; the
serving_apply module renders them with these functions on the host and
reads the server's status and the engine's containers. The controller never
imports this file (tests/unit/plugins/module_utils/test_controller_imports.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.mlserve.tfserving.plugins.module_utils import batching
from ansible_collections.mlserve.tfserving.plugins.module_utils.fleet import (CONTAINER_CONFIG,
                                                                             CONTAINER_MONITORING_CONFIG, server_flags)


def models_config(unit, labels=None, versions=None):
    """The text protobuf models.config of one unit.

    `labels`/`versions` default to the unit's own; the label staging passes
    the intermediate state instead.
    """
    labels = unit["labels"] if labels is None else labels
    versions = unit["versions"] if versions is None else versions
    lines = [
        "# Rendered by mlserve.tfserving for %s; changes are picked up by polling." % unit["name"],
        "model_config_list {",
        "  config {",
        '    name: "%s"' % unit["model"],
        '    base_path: "%s"' % unit["container_path"],
        '    model_platform: "tensorflow"',
        "    model_version_policy {",
        "      specific {",
    ]
    lines += ["        versions: %d" % v for v in sorted(versions)]
    lines += ["      }", "    }"]
    lines += ['    version_labels { key: "%s" value: %d }' % (k, labels[k]) for k in sorted(labels)]
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def stage_labels(wanted_labels, wanted_versions, current_labels, available):
    """The two steps TF Serving needs to move labels (see the reference).

    A label may only point at a version that is AVAILABLE when the config is
    applied, or the whole config is rejected. Returns (step1, step2):
    step 1 serves every wanted version plus the versions the current labels
    still point at, with each label kept at its current target unless the
    wanted target is already available; step 2 is the wanted state. When no
    label has to wait, step 1 equals step 2 and one write is enough.
    `available` None: the server did not answer. A label it holds where it
    is wanted stays (with allow_version_labels_for_unavailable_models the
    server never refuses a label it holds at that version), so a slow
    server does not lose its labels for a poll.
    """
    unknown = available is None
    available = set(available or ())
    labels_now = {}
    versions_now = set(wanted_versions)
    for label, target in wanted_labels.items():
        if target in available or (unknown and current_labels.get(label) == target):
            labels_now[label] = target
        elif current_labels.get(label) in available:
            labels_now[label] = current_labels[label]
            versions_now.add(current_labels[label])
        # else: a new label on a version still loading; add it in step 2.
    step1 = {"versions": sorted(versions_now), "labels": labels_now}
    step2 = {"versions": sorted(wanted_versions), "labels": dict(wanted_labels)}
    return step1, step2

def _flag_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def server_command(unit, flags=None, poll_seconds=5):
    """The container command: tensorflow_model_server flags, `--name=value` only.

    Config changes reach the server through polling (no restart), a gRPC
    port can never be shared silently (so_reuseport off), and a restarted
    container starts again: without the allow flag, the labels in the
    config it restarts with name versions not loaded yet, and the server
    refuses to start.
    """
    rendered = {
        "allow_version_labels_for_unavailable_models": True,
        "file_system_poll_wait_seconds": 1,
        "grpc_channel_arguments": "grpc.so_reuseport=0",
    }
    rendered.update(server_flags(flags, unit))
    if unit.get("batching"):
        rendered.update({"enable_batching": True, "batching_parameters_file": batching.CONTAINER_FILE})
    if unit.get("metrics_path"):
        rendered["monitoring_config_file"] = CONTAINER_MONITORING_CONFIG
    rendered.update({
        "port": unit["grpc_port"],
        "rest_api_port": unit["rest_port"],
        "model_config_file": CONTAINER_CONFIG,
        "model_config_file_poll_wait_seconds": poll_seconds,
    })
    return ["--%s=%s" % (name, _flag_value(rendered[name])) for name in sorted(rendered)]


def monitoring_config(unit):
    """The unit's MonitoringConfig (text protobuf): Prometheus metrics at its metrics_path on the REST port."""
    return 'prometheus_config {\n  enable: true\n  path: "%s"\n}\n' % unit["metrics_path"]


_LABEL_LINE = re.compile(r'version_labels\s*\{\s*key:\s*"([^"]+)"\s*value:\s*(\d+)\s*\}')


def config_labels(text):
    """The labels of a models.config this collection rendered (empty if none)."""
    return dict((k, int(v)) for k, v in _LABEL_LINE.findall(text or ""))


def available_versions(status):
    """Version numbers a TF Serving status answer reports AVAILABLE."""
    if not isinstance(status, dict):
        return []
    return sorted(int(v["version"]) for v in status.get("model_version_status", [])
                  if v.get("state") == "AVAILABLE")

def status_problems(unit, status):
    """Why the unit's versions are not all AVAILABLE, in the server's own words."""
    if not isinstance(status, dict) or "model_version_status" not in status:
        error = status.get("error") if isinstance(status, dict) else status
        return ["%s: %s" % (unit["name"], error or "no status answer from 127.0.0.1:%d" % unit["rest_port"])]
    by_version = dict((int(v["version"]), v) for v in status["model_version_status"])
    problems = []
    for version in unit["versions"]:
        entry = by_version.get(version)
        if entry is None:
            problems.append("%s: version %d of %s is not loaded" % (unit["name"], version, unit["model"]))
        elif entry.get("state") != "AVAILABLE":
            detail = entry.get("status", {})
            problems.append("%s: version %d of %s is %s (%s%s)" % (
                unit["name"], version, unit["model"], entry.get("state"), detail.get("error_code", ""),
                (": " + detail["error_message"]) if detail.get("error_message") else ""))
    return problems


def port_use_problems(units, listeners, managed, host=None):
    """Planned ports already held by something that is not this collection's container.

    `listeners`: listen_ports_facts entries (port, pid, name); `managed`: the
    ports (ints) that running containers of this collection hold, which the
    role will itself replace or remove.
    """
    problems = []
    where = " on %s" % host if host else ""
    held = {}
    for listener in listeners:
        held.setdefault(int(listener["port"]), listener)
    for unit in units:
        for key, kind in (("grpc_port", "gRPC"), ("rest_port", "REST")):
            port = unit[key]
            if port in held and port not in managed:
                listener = held[port]
                name = listener.get("name") or ""
                who = ("%s (pid %s)" % (name, listener.get("pid")) if name and name != "unknown"
                       else "a process this host cannot name (another container or namespace)")
                problems.append("port %d%s is claimed by %s (%s) and already held by %s; free it, pin another "
                                "port, or change tfserving_port_base" % (port, where, unit["name"], kind, who))
    return problems


MANAGED_LABEL = "mlserve.tfserving.managed"


def managed_ports(containers):
    """Ports that this collection's running containers hold, from their labels.

    `containers`: docker_host_info's verbose container list.
    """
    ports = []
    for container in containers or []:
        labels = container.get("Labels") or {}
        if labels.get(MANAGED_LABEL) != "true" or container.get("State") != "running":
            continue
        ports += [int(labels[k]) for k in ("mlserve.tfserving.grpc_port", "mlserve.tfserving.rest_port") if k in labels]
    return sorted(ports)
