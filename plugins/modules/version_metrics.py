#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: version_metrics
short_description: Ask Prometheus for each model version's traffic at the gateway, and judge a canary by it
version_added: 0.2.0
description:
  - Reads, for each given (model, version), its request count and rate, error ratio and p99 latency over a window,
    from the gateway metrics that mtail exports (C(tfserving_gateway_requests_total) and
    C(tfserving_gateway_request_duration_seconds)) through Prometheus's HTTP API.
  - With O(analysis) it is a rollout gate. It first waits one window, so that the figures measure the traffic of
    the split that was just made live. A version holds when it had at least C(min_requests) requests, an error
    ratio of at most C(max_error_ratio) and a p99 of at most C(max_p99_ms), and when at most C(max_unknown_ratio)
    of its model's requests were logged with C(version="unknown") (the gateway could not tell their version).
    A version that breaks a threshold fails the task at once, naming the metric, its value, the threshold and the
    query.
  - It passes only on evidence. When there are too few requests, no series for a judged figure, a query that
    Prometheus refuses or cannot answer, or too large an unknown share, it asks again until C(max_wait) has passed
    since the start, then fails without promoting, saying which.
  - An error is a request the version answered with a 4xx or 5xx status, except 401, 403 and 429, which the
    gateway itself answers before any version is asked.
  - Standard library only; it runs where Prometheus is reachable, usually the controller (C(delegate_to)).
author:
  - mlserve maintainers
options:
  url:
    description: Prometheus's base URL, such as C(http://192.0.2.5:9090) (the fleet plan's C(monitoring.url)).
    type: str
    required: true
  versions:
    description: The versions to read, each C({model, version}).
    type: list
    elements: dict
    required: true
  window:
    description: The window of every figure when O(analysis) is not given, such as C(5m).
    type: str
    default: 5m
  analysis:
    description:
      - A rollout step's gate, as C(rollout_steps[].analysis) takes it, already checked by the rollout playbook.
      - C(window) (required), C(min_requests) (default 1), C(max_error_ratio), C(max_p99_ms),
        C(max_unknown_ratio) (default 0.05), C(max_wait) (default three windows).
    type: dict
  poll_seconds:
    description: How often the gate asks again while there are too few requests.
    type: int
    default: 5
  timeout:
    description: Seconds each HTTP request to Prometheus may take.
    type: int
    default: 10
attributes:
  check_mode:
    support: full
    details: In check mode a gate does not wait; the figures are read once and not judged.
notes:
  - Prometheus must scrape the gateways' mtail (the monitoring role does, from the fleet plan).
"""

EXAMPLES = r"""
- name: Read the last five minutes of two versions
  mlserve.tfserving.version_metrics:
    url: "{{ tfserving_plan.plan.monitoring.url }}"
    versions: [{model: half_plus, version: 1}, {model: half_plus, version: 2}]
  delegate_to: localhost
  run_once: true
  register: figures

- name: Hold the canary to its thresholds
  mlserve.tfserving.version_metrics:
    url: "{{ tfserving_plan.plan.monitoring.url }}"
    versions: [{model: half_plus, version: 2}]
    analysis: {window: 60s, min_requests: 200, max_error_ratio: 0.01, max_p99_ms: 50}
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
metrics:
  description:
    - One entry per version, with the queries behind each figure. A figure is null when the window had no request.
    - A gate's entries also have C(unknown_ratio), the share of the model's requests logged with
      C(version="unknown"), and C(errors), each query that Prometheus did not answer with why.
  returned: always
  type: list
  elements: dict
  sample:
    - model: half_plus
      version: 2
      requests: 412.0
      rate: 6.87
      error_ratio: 0.0
      p99_ms: 9.9
      queries: {requests: "sum(increase(tfserving_gateway_requests_total{model=\"half_plus\",version=\"2\"}[60s]))"}
verdict:
  description: With O(analysis), C(pass), C(fail) or C(not judged) (check mode).
  returned: when analysis is given
  type: str
reasons:
  description: Why, one line per version.
  returned: when analysis is given
  type: list
  elements: str
waited:
  description: Seconds the gate waited in all.
  returned: when analysis is given
  type: int
"""

import json
import time
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import ProxyHandler, build_opener

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mlserve.tfserving.plugins.module_utils import metrics


class QueryError(Exception):
    """Prometheus did not answer a query: refused it (its errorType and error), or could not be reached."""


def ask(opener, url, query, timeout):
    """One instant query's number (None without traffic)."""
    try:
        with opener.open("%s/api/v1/query?%s" % (url.rstrip("/"), urlencode({"query": query})),
                         timeout=timeout) as r:
            answer = json.loads(r.read().decode("utf-8"))
    except HTTPError as e:
        # Prometheus says why in the body of its 4xx and 5xx answers.
        try:
            body = json.loads(e.read().decode("utf-8"))
            raise QueryError("%s: %s" % (body["errorType"], body["error"]))
        except (ValueError, KeyError, TypeError):
            raise QueryError(str(e))
    except (IOError, OSError, ValueError) as e:
        raise QueryError("could not be asked: %s" % e)
    try:
        return metrics.scalar(answer)
    except ValueError as e:
        raise QueryError(str(e))


def figures(ask_one, versions, window, judged=False):
    """Each version's figures; with `judged`, also its model's unattributed share, and each query's error."""
    result = []
    for entry in versions:
        queries = metrics.version_queries(entry["model"], entry["version"], window)
        if judged:
            queries["unknown_ratio"] = metrics.unknown_query(entry["model"], window)
        row = {"model": entry["model"], "version": entry["version"], "queries": queries}
        errors = {}
        for name, query in queries.items():
            try:
                row[name] = ask_one(query)
            except QueryError as e:
                if not judged:
                    raise
                row[name], errors[name] = None, str(e)
        if judged:
            row["errors"] = errors
        result.append(row)
    return result


def analyse(ask_one, versions, gate, poll_seconds, clock=time):
    """The gate: one window, then judged figures until a verdict or max_wait.

    Returns {verdict, msg, metrics, reasons, waited}; msg is set when the verdict is "fail".
    """
    started = clock.monotonic()
    clock.sleep(gate["window_seconds"])
    while True:
        rows = figures(ask_one, versions, gate["window"], judged=True)
        verdicts = [metrics.judge(row, gate) for row in rows]
        result = {"metrics": rows, "reasons": [why for _, why in verdicts],
                  "waited": int(clock.monotonic() - started)}
        failed = [why for state, why in verdicts if state == "fail"]
        if failed:
            return dict(result, verdict="fail", msg="The canary does not hold: " + "; ".join(failed))
        if all(state == "pass" for state, _ in verdicts):
            return dict(result, verdict="pass")
        if clock.monotonic() - started + poll_seconds > gate["max_wait_seconds"]:
            return dict(result, verdict="fail", msg="No evidence to judge the canary by after %d s (max_wait): %s" % (
                result["waited"], "; ".join(why for state, why in verdicts if state == "wait")))
        clock.sleep(poll_seconds)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            versions=dict(type="list", elements="dict", required=True),
            window=dict(type="str", default="5m"),
            analysis=dict(type="dict"),
            poll_seconds=dict(type="int", default=5),
            timeout=dict(type="int", default=10),
        ),
        supports_check_mode=True,
    )
    p = module.params
    # Prometheus is reached directly, like the servers: a proxy would not know these addresses.
    opener = build_opener(ProxyHandler({}))

    def ask_one(query):
        return ask(opener, p["url"], query, p["timeout"])

    problems = metrics.analysis_problems(p["analysis"], "analysis") if p["analysis"] is not None else []
    if p["analysis"] is None and metrics.seconds(p["window"]) is None:
        problems.append("window: %r is not a duration such as 60s or 5m" % p["window"])
    if problems:
        module.fail_json(msg="; ".join(problems))
    try:
        if p["analysis"] is None:
            module.exit_json(changed=False, metrics=figures(ask_one, p["versions"], p["window"]))
        gate = metrics.gate(p["analysis"])
        if module.check_mode:
            rows = figures(ask_one, p["versions"], gate["window"])
            module.exit_json(changed=False, metrics=rows, verdict="not judged", reasons=[], waited=0)
    except QueryError as e:
        module.fail_json(msg="Prometheus at %s: %s" % (p["url"], e))
    result = analyse(ask_one, p["versions"], gate, p["poll_seconds"], time)
    if result["verdict"] == "fail":
        module.fail_json(changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
