#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: prometheus_config
short_description: Write a Prometheus-family daemon's files once their checks accept them, and make sure the daemon loaded them
version_added: 0.3.0
description:
  - For Prometheus and the daemons built like it (the blackbox exporter, Alertmanager), which reload their
    configuration on C(SIGHUP) and report the outcome as the gauges C(<prefix>_config_last_reload_successful) and
    C(<prefix>_config_last_reload_success_timestamp_seconds).
  - Each file that differs from the live one, in the order of O(files), is written beside it, checked there with
    its O(files[].check) command, such as C(promtool check config), and put in place by an atomic rename. A check
    sees the files before it in place, as C(promtool check config) needs the rule files it names.
  - When a check refuses a file, the module fails with the checker's message. That file and the ones after it are
    not written, and the daemon keeps running what it loaded; files before it that changed are in place, and the
    loaded sum makes the next run load them.
  - Once every file is in place, the daemon is made to run them. It is reloaded (C(SIGHUP) to the service's main process, as Debian's units do),
    restarted when a file read only at start changed (O(files[].restart), such as the command-line flags), or
    started when it is not running.
  - The module then reads O(metrics_url) until the daemon reports a successful load newer than the one before. A
    load the daemon refuses fails the module, with the daemon's log lines since the reload. A daemon it started or
    restarted must also answer C(/-/ready) (where it has that page), as Prometheus does once it has read its data.
  - With O(enabled), the service is also enabled at boot, so one task keeps the daemon configured, running and
    started at boot.
  - O(loaded_file) records the sum of the files the daemon last loaded. A run that failed between writing and
    loading is therefore loaded by the next run, even though the files are already in place.
author:
  - mlserve maintainers
options:
  files:
    description: The daemon's files, in the order they are checked and put in place; also that of the loaded sum.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: The file's absolute path.
        type: str
        required: true
      content:
        description: The file's text.
        type: str
        required: true
      mode:
        description: Its mode, such as C(0644) (the default).
        type: raw
      group:
        description: Its group, when not root's, such as the daemon's for a file only the daemon may read.
        type: str
      check:
        description:
          - The command that checks the file before it is put in place, as an argument vector in which C(%s) stands
            for the file's path, such as C([promtool, check, rules, "%s"]) or
            C([prometheus-blackbox-exporter, --config.check, "--config.file=%s"]). No check when empty.
        type: list
        elements: str
        default: []
      restart:
        description: Whether the daemon reads the file only when it starts, so that a change restarts it.
        type: bool
        default: false
  service:
    description: The system service that runs the daemon.
    type: str
    required: true
  metrics_url:
    description: The daemon's own metrics, such as C(http://127.0.0.1:9090/metrics).
    type: str
    required: true
  metric_prefix:
    description: The prefix of its reload gauges, such as C(prometheus), C(blackbox_exporter) or C(alertmanager).
    type: str
    required: true
  loaded_file:
    description: Where the sum of the files the daemon last loaded is kept.
    type: path
    required: true
  timeout:
    description: Seconds to wait for the daemon to report the load; the module fails when it has not by then.
    type: int
    default: 60
  enabled:
    description:
      - Whether the service is made to start at boot (C(systemctl enable) when it is not enabled yet).
      - C(false) leaves the service's start at boot as it is.
    type: bool
    default: true
notes:
  - Supports check mode (what would change, with C(--diff); nothing is written or checked) and diff mode.
"""

EXAMPLES = r"""
- name: Write Prometheus's flags, rules and configuration once promtool accepts them, and have Prometheus load them
  mlserve.tfserving.prometheus_config:
    files:
      - {path: /etc/default/prometheus, content: "{{ lookup('ansible.builtin.template', 'prometheus.default.j2') }}",
         check: [sh, -n, "%s"], restart: true}
      - {path: /etc/prometheus/rules/fleet.yml, content: "{{ lookup('ansible.builtin.template', 'rules.yml.j2') }}",
         check: [promtool, check, rules, "%s"]}
      - {path: /etc/prometheus/prometheus.yml, content: "{{ lookup('ansible.builtin.template', 'prometheus.yml.j2') }}",
         check: [promtool, check, config, "%s"]}
    service: prometheus
    metrics_url: http://127.0.0.1:9090/metrics
    metric_prefix: prometheus
    loaded_file: /etc/prometheus/loaded.sha256
"""

RETURN = r"""
written:
  description: The paths whose contents were written, or would be in check mode.
  type: list
  elements: str
  returned: always
action:
  description: What the daemon was asked to do, C(reload), C(restart), C(start) or C(none).
  type: str
  returned: always
enabled_changed:
  description: Whether the service was enabled at boot by this run (or would be, in check mode).
  type: bool
  returned: always
"""

import os
import signal
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves.urllib.error import HTTPError
from ansible.module_utils.six.moves.urllib.parse import urlsplit, urlunsplit
from ansible.module_utils.urls import open_url
from ansible_collections.mlserve.tfserving.plugins.module_utils.config_files import (
    changed_files, checked_file_options, checked_files, diff_of, loaded_sum, put_in_place, read, write)
from ansible_collections.mlserve.tfserving.plugins.module_utils.systemd import enabled, unit_states


def main_pid(module, service):
    """The service's main process, or None when it is not running."""
    rc, out, _ = module.run_command(["systemctl", "show", "--property", "MainPID", "--value", service])
    pid = int(out.strip()) if rc == 0 and out.strip().isdigit() else 0
    return pid if pid and os.path.exists("/proc/%d" % pid) else None


def reload_gauges(url, prefix):
    """(successful, timestamp) from the daemon's metrics, or None when it does not answer.

    Never through a proxy of the environment: the daemon is on this host.
    """
    try:
        text = open_url(url, timeout=5, use_proxy=False).read().decode("utf-8")
    except Exception:  # not listening yet, starting, stopping: the caller waits
        return None
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in (prefix + "_config_last_reload_successful", prefix + "_config_last_reload_success_timestamp_seconds"):
            values[name] = float(value)
    if len(values) < 2:
        return None
    return (values[prefix + "_config_last_reload_successful"] == 1,
            values[prefix + "_config_last_reload_success_timestamp_seconds"])


def wait_for_load(url, prefix, before, timeout, clock=time):
    """'loaded', 'refused' or 'silent': the daemon's report of a load after `before`, its gauges then (or None)."""
    deadline = clock.monotonic() + timeout
    while True:
        gauges = reload_gauges(url, prefix)
        if gauges is not None:
            successful, stamp = gauges
            if successful and (before is None or stamp > before[1]):
                return "loaded"
            # Only a failure after a success is ours: an earlier failed load leaves the gauge at 0 too.
            if not successful and before is not None and before[0]:
                return "refused"
        if clock.monotonic() >= deadline:
            return "silent"
        clock.sleep(0.2)


def ready(url):
    """Whether the daemon behind `url` (its metrics) says it is ready: /-/ready answers 200, or it has no such page."""
    try:
        open_url(urlunsplit(urlsplit(url)._replace(path="/-/ready", query="")), timeout=5, use_proxy=False).read()
        return True
    except HTTPError as e:
        return e.code == 404
    except Exception:  # not listening: not ready
        return False


def wait_until_ready(url, timeout, clock=time):
    """Whether the daemon became ready within `timeout` seconds (a started Prometheus reads its data first)."""
    deadline = clock.monotonic() + timeout
    while not ready(url):
        if clock.monotonic() >= deadline:
            return False
        clock.sleep(0.2)
    return True


def journal(module, service, since):
    """The service's log since `since` (seconds since the epoch), its last lines."""
    rc, out, err = module.run_command(["journalctl", "--unit", service, "--since", "@%d" % int(since),
                                       "--output", "cat", "--no-pager"])
    lines = (out if rc == 0 else err).strip().splitlines()
    return " | ".join(lines[-5:]) or "(nothing logged)"


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type="list", elements="dict", required=True,
                       options=checked_file_options(restart=dict(type="bool", default=False))),
            service=dict(type="str", required=True),
            metrics_url=dict(type="str", required=True),
            metric_prefix=dict(type="str", required=True),
            loaded_file=dict(type="path", required=True),
            timeout=dict(type="int", default=60),
            enabled=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    files = checked_files(module, "prometheus_config")
    written = changed_files(files)
    total = loaded_sum([entry["content"] for entry in files])
    pid = main_pid(module, p["service"])
    action = "none"
    if pid is None:
        action = "start"
    elif any(entry["restart"] for entry in written):
        action = "restart"
    elif written or read(p["loaded_file"]) != total.encode("ascii"):
        action = "reload"
    enable = p["enabled"] and not enabled(unit_states(module, [p["service"]], "prometheus_config")[0])
    result = dict(changed=action != "none" or bool(written) or enable, written=[entry["path"] for entry in written],
                  action=action, enabled_changed=enable)
    if module._diff:
        result["diff"] = diff_of(written)
    if module.check_mode:
        module.exit_json(**result)
    put_in_place(module, written, "%s keeps running the configuration it loaded" % p["service"], action="none")
    if enable:
        rc, out, err = module.run_command(["systemctl", "enable", p["service"]])
        if rc != 0:
            module.fail_json(msg="%s could not be enabled at boot: %s" % (p["service"], (err or out).strip()),
                             **dict(result, enabled_changed=False))
    # Files written always call for a start, restart or reload.
    if action == "none":
        module.exit_json(**result)
    before = reload_gauges(p["metrics_url"], p["metric_prefix"]) if pid else None
    since = time.time()
    if action == "reload":
        os.kill(pid, signal.SIGHUP)
    else:
        rc, out, err = module.run_command(["systemctl", action, p["service"]])
        if rc != 0:
            module.fail_json(msg="%s did not %s: %s; its log: %s" % (p["service"], action, (err or out).strip(),
                                                                    journal(module, p["service"], since)), **result)
    outcome = wait_for_load(p["metrics_url"], p["metric_prefix"], before, p["timeout"])
    if outcome != "loaded":
        module.fail_json(
            msg="%s %s the configuration written (%s does not report a successful load after the %s%s); its log: %s"
                % (p["service"], "refused" if outcome == "refused" else "did not confirm", p["metrics_url"], action,
                   "" if outcome == "refused" else " within %d s" % p["timeout"], journal(module, p["service"], since)),
            **result)
    # What runs next may ask the daemon: a started one answers only once it is ready.
    if action != "reload" and not wait_until_ready(p["metrics_url"], p["timeout"]):
        module.fail_json(msg="%s loaded its configuration but was not ready within %d s; its log: %s"
                             % (p["service"], p["timeout"], journal(module, p["service"], since)), **result)
    write(p["loaded_file"], total.encode("ascii"), 0o644)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
