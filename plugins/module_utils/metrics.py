# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What Prometheus scrapes and what the collection asks it.

Standard library only. The fleet plan (plan.py) derives the scrape targets
with :func:`scrape_plan`; the monitoring role templates them. The
``version_metrics`` module asks Prometheus the per-version queries of
:func:`version_queries` (the status report's columns) and judges a rollout
step's canary with :func:`judge` (``rollout_steps[].analysis``).

The gateway's per-version figures come from its access log, turned into
metrics by mtail on the gateway host (roles/gateway/files/tfserving.mtail):
``tfserving_gateway_requests_total{model, version, label, status}`` and the
histogram ``tfserving_gateway_request_duration_seconds``. TF Serving's own
request counter has no version label, so a shared container's versions can
only be told apart at the gateway.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.mlserve.tfserving.plugins.module_utils import fleet

REQUESTS = "tfserving_gateway_requests_total"
DURATION = "tfserving_gateway_request_duration_seconds_bucket"
# The version's own failures: 401, 403 and 429 are the gateway refusing the
# client before any version is asked. The alert rules use the same matchers.
ERRORS = 'status=~"[45]..",status!~"401|403|429"'
# Prometheus durations as rollout_steps[].analysis takes them.
DURATION_TEXT = re.compile(r"\A([1-9][0-9]{0,5})(s|m|h)\Z")
SECONDS = {"s": 1, "m": 60, "h": 3600}

# The version the gateway logs for a request it cannot attribute to one (a
# gRPC call to a shared model, whose version is inside the protobuf; an
# answer the gateway gave before any version was asked).
UNKNOWN_VERSION = "unknown"
ANALYSIS_KEYS = ("window", "min_requests", "max_error_ratio", "max_p99_ms", "max_unknown_ratio", "max_wait")
# The selectors the queries here and the monitoring role's alert rules share
# (its vars take them through the monitoring_selector filter).
SELECTORS = {"errors": ERRORS, "attributed": 'version!="%s"' % UNKNOWN_VERSION}
# A gate judges a sample of the model's traffic: more than this share of it
# unattributed and the sample is not the traffic.
DEFAULT_MAX_UNKNOWN_RATIO = 0.05
ANALYSIS_EXAMPLE = "{window: 60s, min_requests: 200, max_error_ratio: 0.01, max_p99_ms: 50}"


def selector(name):
    """One of SELECTORS, as PromQL label matchers: errors (a version's own failures) or attributed (a known version)."""
    if name not in SELECTORS:
        raise ValueError("%r is not a selector; use one of %s" % (name, ", ".join(sorted(SELECTORS))))
    return SELECTORS[name]


def seconds(text):
    """Seconds of a duration such as "60s", "5m" or "1h"; None when it is not one."""
    match = DURATION_TEXT.match(text) if isinstance(text, str) else None
    return int(match.group(1)) * SECONDS[match.group(2)] if match else None


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def analysis_problems(analysis, where):
    """Problems of one rollout step's `analysis`, each naming `where` (e.g. rollout_steps[0].analysis)."""
    if not isinstance(analysis, dict):
        return ["%s: %r must be a mapping such as %s" % (where, analysis, ANALYSIS_EXAMPLE)]
    problems = ["%s.%s: unknown key; valid keys are %s" % (where, key, ", ".join(ANALYSIS_KEYS))
                for key in sorted(set(analysis) - set(ANALYSIS_KEYS))]
    for key in ("window", "max_wait"):
        if key in analysis and seconds(analysis[key]) is None:
            problems.append("%s.%s: %r is not a duration; use seconds, minutes or hours such as 60s, 5m or 1h"
                            % (where, key, analysis[key]))
    if "window" not in analysis:
        problems.append("%s.window: missing; how long the canary's traffic is measured, e.g. 60s" % where)
    count = analysis.get("min_requests", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        problems.append("%s.min_requests: %r is not a number of requests (1 or more)" % (where, count))
    for key in ("max_error_ratio", "max_unknown_ratio"):
        ratio = analysis.get(key)
        if ratio is not None and not (_number(ratio) and 0 <= ratio <= 1):
            problems.append("%s.%s: %r is not a ratio from 0 to 1 (0.01 is 1 %%)" % (where, key, ratio))
    ratio = analysis.get("max_error_ratio")
    p99 = analysis.get("max_p99_ms")
    if p99 is not None and not (_number(p99) and p99 > 0):
        problems.append("%s.max_p99_ms: %r is not a number of milliseconds above 0" % (where, p99))
    if ratio is None and p99 is None:
        problems.append("%s: judges nothing; give max_error_ratio, max_p99_ms or both" % where)
    window, wait = seconds(analysis.get("window")), seconds(analysis.get("max_wait"))
    if window and wait and wait < window:
        problems.append("%s.max_wait: %s is shorter than the window (%s); it bounds the whole wait for enough "
                        "requests" % (where, analysis["max_wait"], analysis["window"]))
    return problems


def gate(analysis):
    """An analysis with its defaults: max_wait is three windows."""
    window = seconds(analysis["window"])
    return {"window": analysis["window"], "window_seconds": window,
            "min_requests": analysis.get("min_requests", 1),
            "max_error_ratio": analysis.get("max_error_ratio"), "max_p99_ms": analysis.get("max_p99_ms"),
            "max_unknown_ratio": analysis.get("max_unknown_ratio", DEFAULT_MAX_UNKNOWN_RATIO),
            "max_wait_seconds": seconds(analysis.get("max_wait")) or 3 * window}


def _selector(model, version, extra=""):
    return '{model="%s",version="%s"%s}' % (model, version, "," + extra if extra else "")


def version_queries(model, version, window):
    """The PromQL behind each figure of one version, over `window` (e.g. "60s").

    A version without errors has no error series at all: `or vector(0)`
    makes its count 0 instead of no answer.
    """
    every = _selector(model, version)
    return {
        "requests": "sum(increase(%s%s[%s]))" % (REQUESTS, every, window),
        "rate": "sum(rate(%s%s[%s]))" % (REQUESTS, every, window),
        "error_ratio": "(sum(increase(%s%s[%s])) or vector(0)) / sum(increase(%s%s[%s]))"
                       % (REQUESTS, _selector(model, version, ERRORS), window, REQUESTS, every, window),
        "p99_ms": "1000 * histogram_quantile(0.99, sum by (le) (rate(%s%s[%s])))" % (DURATION, every, window),
    }


def unknown_query(model, window):
    """The share of the model's requests over `window` that the gateway could not attribute to a version."""
    every = '{model="%s"}' % model
    return "(sum(increase(%s%s[%s])) or vector(0)) / sum(increase(%s%s[%s]))" % (
        REQUESTS, _selector(model, UNKNOWN_VERSION), window, REQUESTS, every, window)


def scalar(answer):
    """The one number of a Prometheus instant-query answer; None when it has none (no traffic, NaN)."""
    if not isinstance(answer, dict) or answer.get("status") != "success":
        raise ValueError("Prometheus answered %r" % (answer,))
    result = answer.get("data", {}).get("result") or []
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if value != value else value  # NaN: no request in the window


def judge(figures, gate_):
    """"pass", "wait" (no evidence yet) or "fail", and why, for one version's figures.

    `figures`: {model, version, requests, error_ratio, p99_ms, unknown_ratio, queries, errors}; `errors`
    names the queries Prometheus did not answer. A gate passes only on evidence: a figure it judges that
    Prometheus did not give (a refused query, no series), too few requests, or too much of the model's
    traffic not attributed to a version is "wait", which fails the step once max_wait has passed.
    """
    name = "%s version %s" % (figures["model"], figures["version"])
    errors = figures.get("errors") or {}
    if errors:
        metric = sorted(errors)[0]
        return "wait", "%s: Prometheus did not answer the %s query (%s): %s" % (
            name, metric, figures["queries"][metric], errors[metric])
    requests = figures.get("requests")
    enough = requests is not None and requests >= gate_["min_requests"]
    # A breach fails on the evidence there is; passing needs all of it.
    checks = (("error_ratio", "max_error_ratio", "%.4f"), ("p99_ms", "max_p99_ms", "%.1f ms"))
    missing = []
    for metric, limit, form in checks if enough else ():
        value = figures.get(metric)
        if gate_[limit] is None:
            continue
        if value is None:
            missing.append(metric)
        elif value > gate_[limit]:
            return "fail", ("%s: %s over the last %s is %s, above %s %s (%d requests; query: %s)"
                            % (name, metric, gate_["window"], form % value, limit, gate_[limit], requests,
                               figures["queries"][metric]))
    # Before the version's own count: when the model's traffic is not attributed, a version without
    # requests may be one whose every answer was an error without a version.
    unknown = figures.get("unknown_ratio") or 0.0
    if unknown > gate_["max_unknown_ratio"]:
        return "wait", ("%s: %.4f of %s's requests in the last %s went to no known version (version=\"%s\", such "
                        "as a shared model's gRPC error answers), above max_unknown_ratio %s; the requests judged "
                        "are not the traffic (query: %s)" % (name, unknown, figures["model"], gate_["window"],
                                                             UNKNOWN_VERSION, gate_["max_unknown_ratio"],
                                                             figures["queries"]["unknown_ratio"]))
    if requests is None:
        return "wait", ("%s: Prometheus has no series for it in the last %s (query: %s); no request reached it "
                        "through a gateway, or the gateways' mtail is not scraped"
                        % (name, gate_["window"], figures["queries"]["requests"]))
    if not enough:
        return "wait", ("%s had %d requests in the last %s, fewer than min_requests %d"
                        % (name, requests, gate_["window"], gate_["min_requests"]))
    if missing:
        return "wait", ("%s: Prometheus has no series for its %s in the last %s (query: %s)"
                        % (name, missing[0], gate_["window"], figures["queries"][missing[0]]))
    return "pass", "%s holds: %d requests, error_ratio %s, p99_ms %s in the last %s" % (
        name, requests, _shown(figures.get("error_ratio"), "%.4f"), _shown(figures.get("p99_ms"), "%.1f"),
        gate_["window"])


def _shown(value, form):
    return "-" if value is None else form % value


def _url(address, port):
    return "%s:%d" % ("[%s]" % address if ":" in address else address, port)


def scrape_plan(hosts, plan, gateway_names, monitor_names):
    """Prometheus's targets and address, from the plan's serving profiles and the hosts' inputs.

    `hosts`: host_inputs() by name. Returns {url, servers, versions,
    gateways}: `url` is the first monitoring host's Prometheus (None without
    one); `servers` every container whose metrics page is on; `versions`
    every (container, version) status URL, which the blackbox exporter
    probes for AVAILABLE; `gateways` each gateway's mtail and nginx exporter.
    """
    servers, versions = [], []
    for name, entry in sorted(plan["hosts"].items()):
        address = hosts[name]["address"]
        for unit in plan["profiles"][entry["profile"]]["units"]:
            labels = {"host": name, "container": unit["name"], "model": unit["model"]}
            if unit.get("metrics_path"):
                servers.append(dict(labels, target=_url(address, unit["rest_port"]),
                                    metrics_path=unit["metrics_path"]))
            versions += [dict(labels, version=v, url="http://%s/v1/models/%s/versions/%d"
                              % (_url(address, unit["rest_port"]), unit["model"], v)) for v in unit["versions"]]
    gateways = []
    for name in sorted(gateway_names):
        settings = hosts[name]["gateway"]
        # A bad port is host_problems' to report (the plan is refused); it is not a target.
        if settings.get("metrics_enabled") is True and _port(settings.get("mtail_port")) and _port(
                settings.get("nginx_exporter_port")):
            gateways.append({"host": name, "requests": _url(hosts[name]["address"], settings["mtail_port"]),
                             "nginx": _url(hosts[name]["address"], settings["nginx_exporter_port"])})
    monitors = sorted(monitor_names)
    url = ("http://%s" % _url(hosts[monitors[0]]["address"], hosts[monitors[0]]["monitoring"]["port"])
           if monitors and _port(hosts[monitors[0]]["monitoring"]["port"]) else None)
    return {"url": url, "servers": servers, "versions": versions, "gateways": gateways}


def compact_scrape_plan(scrape):
    """The scrape plan as a task result carries it: `servers` and `versions` as one JSON text, `targets`.

    Ansible processes a task result object by object, and `versions` has a
    probe per served version on every host (100,000 at 200 hosts x 500
    units); the same lists as one text cost it almost nothing.
    """
    if "targets" in scrape:  # compacted before
        return scrape
    compact = dict((key, value) for key, value in scrape.items() if key not in ("servers", "versions"))
    compact["targets"] = json.dumps({"servers": scrape["servers"], "versions": scrape["versions"]},
                                    separators=(",", ":"))
    return compact


def scrape_targets(scrape):
    """(servers, versions) of a scrape plan, compact or not."""
    if "targets" in scrape:
        targets = json.loads(scrape["targets"])
        return targets["servers"], targets["versions"]
    return scrape.get("servers") or [], scrape.get("versions") or []


def host_problems(host, serving, gateway_host, monitor):
    """Problems of one host's metrics variables (build_plan adds the host's name)."""
    problems = []
    settings = host["monitoring"]
    if serving:
        if not isinstance(settings["serving_enabled"], bool):
            problems.append("serving_monitoring_enabled: %r is not a boolean; use true or false"
                            % (settings["serving_enabled"],))
        path = settings["serving_path"]
        if settings["serving_enabled"] is True and not (isinstance(path, str) and re.match(r"\A/[A-Za-z0-9_./-]*\Z", path)):
            problems.append("serving_monitoring_path: %r is not a URL path such as /monitoring/prometheus/metrics"
                            % (path,))
        if settings["serving_enabled"] is True and "monitoring_config_file" in (host["flags"] or {}):
            problems.append("serving_flags.monitoring_config_file: written by the collection while "
                            "serving_monitoring_enabled is true; remove the flag or turn monitoring off")
    if gateway_host:
        gateway = host["gateway"]
        if not isinstance(gateway.get("metrics_enabled"), bool):
            problems.append("gateway_metrics_enabled: %r is not a boolean; use true or false"
                            % (gateway.get("metrics_enabled"),))
        elif gateway["metrics_enabled"]:
            for key in ("mtail_port", "nginx_exporter_port"):
                if not _port(gateway.get(key)):
                    problems.append("gateway_%s: %r is not a port; use an integer from 1 to 65535"
                                    % (key, gateway.get(key)))
    if monitor and not _port(settings["port"]):
        problems.append("monitoring_port: %r is not a port; use an integer from 1 to 65535" % (settings["port"],))
    return problems


def _port(value):
    return fleet._is_int(value) and 1 <= value <= 65535
