"""What Prometheus scrapes and what the collection asks it: rollout gates, their verdicts, and the PromQL itself."""

import subprocess

import pytest
import yaml

from ansible_collections.mlserve.tfserving.plugins.module_utils import metrics, monitoring

WHERE = "rollout_steps[0].analysis"
GOOD = {"window": "60s", "min_requests": 200, "max_error_ratio": 0.01, "max_p99_ms": 50}


# ---------------------------------------------------------------- the gate's own input

@pytest.mark.parametrize("text, expected", [
    ("60s", 60), ("5m", 300), ("1h", 3600), ("999999s", 999999),
    ("0s", None), ("1000000s", None), ("1d", None), ("60", None), ("60 s", None), ("60s\n", None), ("", None),
    (60, None), (None, None),
])
def test_seconds_of_a_duration(text, expected):
    assert metrics.seconds(text) == expected


def test_a_whole_gate_has_no_problem():
    assert metrics.analysis_problems(GOOD, WHERE) == []
    assert metrics.analysis_problems({"window": "5m", "max_p99_ms": 0.5, "max_wait": "5m"}, WHERE) == []
    assert metrics.analysis_problems({"window": "1h", "max_error_ratio": 0}, WHERE) == []


@pytest.mark.parametrize("analysis, problem", [
    ("60s", "rollout_steps[0].analysis: '60s' must be a mapping such as " + metrics.ANALYSIS_EXAMPLE),
    (dict(GOOD, threshold=1), "rollout_steps[0].analysis.threshold: unknown key; valid keys are window, min_requests, "
                              "max_error_ratio, max_p99_ms, max_unknown_ratio, max_wait"),
    (dict(GOOD, window="60"), "rollout_steps[0].analysis.window: '60' is not a duration; use seconds, minutes or hours "
                              "such as 60s, 5m or 1h"),
    (dict(GOOD, max_wait=300), "rollout_steps[0].analysis.max_wait: 300 is not a duration; use seconds, minutes or "
                               "hours such as 60s, 5m or 1h"),
    ({"max_error_ratio": 0.01}, "rollout_steps[0].analysis.window: missing; how long the canary's traffic is measured, "
                                "e.g. 60s"),
    (dict(GOOD, min_requests=0), "rollout_steps[0].analysis.min_requests: 0 is not a number of requests (1 or more)"),
    (dict(GOOD, min_requests="200"), "rollout_steps[0].analysis.min_requests: '200' is not a number of requests "
                                     "(1 or more)"),
    (dict(GOOD, min_requests=True), "rollout_steps[0].analysis.min_requests: True is not a number of requests "
                                    "(1 or more)"),
    (dict(GOOD, max_error_ratio=1.5), "rollout_steps[0].analysis.max_error_ratio: 1.5 is not a ratio from 0 to 1 "
                                      "(0.01 is 1 %)"),
    (dict(GOOD, max_error_ratio="1%"), "rollout_steps[0].analysis.max_error_ratio: '1%' is not a ratio from 0 to 1 "
                                       "(0.01 is 1 %)"),
    (dict(GOOD, max_error_ratio=False), "rollout_steps[0].analysis.max_error_ratio: False is not a ratio from 0 to 1 "
                                        "(0.01 is 1 %)"),
    (dict(GOOD, max_unknown_ratio=-0.1), "rollout_steps[0].analysis.max_unknown_ratio: -0.1 is not a ratio from 0 "
                                         "to 1 (0.01 is 1 %)"),
    (dict(GOOD, max_p99_ms=0), "rollout_steps[0].analysis.max_p99_ms: 0 is not a number of milliseconds above 0"),
    (dict(GOOD, max_p99_ms="50ms"), "rollout_steps[0].analysis.max_p99_ms: '50ms' is not a number of milliseconds "
                                    "above 0"),
    ({"window": "60s", "min_requests": 10}, "rollout_steps[0].analysis: judges nothing; give max_error_ratio, "
                                            "max_p99_ms or both"),
    (dict(GOOD, window="5m", max_wait="60s"), "rollout_steps[0].analysis.max_wait: 60s is shorter than the window "
                                              "(5m); it bounds the whole wait for enough requests"),
])
def test_each_bad_gate_value_is_named_with_where_its_value_and_what_is_valid(analysis, problem):
    assert metrics.analysis_problems(analysis, WHERE) == [problem]


def test_every_problem_of_a_gate_at_once():
    problems = metrics.analysis_problems({"windw": "60s", "min_requests": -1, "max_p99_ms": -5}, "analysis")
    assert [p.split(":")[0] for p in problems] == [
        "analysis.windw", "analysis.window", "analysis.min_requests", "analysis.max_p99_ms"]


def test_gate_defaults_wait_at_most_three_windows_for_one_request():
    assert metrics.gate({"window": "60s", "max_error_ratio": 0.01}) == {
        "window": "60s", "window_seconds": 60, "min_requests": 1, "max_error_ratio": 0.01, "max_p99_ms": None,
        "max_unknown_ratio": 0.05, "max_wait_seconds": 180}
    gate = metrics.gate(dict(GOOD, window="2m", max_wait="10m"))
    assert (gate["window_seconds"], gate["min_requests"], gate["max_p99_ms"], gate["max_wait_seconds"]) == (
        120, 200, 50, 600)


# ---------------------------------------------------------------- verdicts

QUERIES = dict(metrics.version_queries("half_plus", 2, "60s"), unknown_ratio=metrics.unknown_query("half_plus", "60s"))


def figures(**kw):
    return dict({"model": "half_plus", "version": 2, "requests": 412.0, "rate": 6.87, "error_ratio": 0.0,
                 "p99_ms": 9.94, "queries": QUERIES}, **kw)


def test_a_version_within_its_thresholds_passes():
    gate = metrics.gate(GOOD)
    assert metrics.judge(figures(), gate) == (
        "pass", "half_plus version 2 holds: 412 requests, error_ratio 0.0000, p99_ms 9.9 in the last 60s")
    # A threshold is a limit, not a bound to stay under.
    assert metrics.judge(figures(error_ratio=0.01, p99_ms=50.0), gate)[0] == "pass"
    # A latency that is not judged need not be there.
    assert metrics.judge(figures(p99_ms=None), metrics.gate({"window": "60s", "max_error_ratio": 0.01})) == (
        "pass", "half_plus version 2 holds: 412 requests, error_ratio 0.0000, p99_ms - in the last 60s")


@pytest.mark.parametrize("requests", [0.0, 199.0])
def test_too_few_requests_is_wait_not_a_verdict(requests):
    assert metrics.judge(figures(requests=requests, error_ratio=0.5), metrics.gate(GOOD)) == (
        "wait", "half_plus version 2 had %d requests in the last 60s, fewer than min_requests 200" % requests)


def test_a_gate_passes_only_on_evidence():
    gate = metrics.gate(GOOD)
    assert metrics.judge(figures(requests=None), gate) == (
        "wait", "half_plus version 2: Prometheus has no series for it in the last 60s (query: %s); no request "
                "reached it through a gateway, or the gateways' mtail is not scraped" % QUERIES["requests"])
    assert metrics.judge(figures(p99_ms=None), gate) == (
        "wait", "half_plus version 2: Prometheus has no series for its p99_ms in the last 60s (query: %s)"
                % QUERIES["p99_ms"])
    assert metrics.judge(figures(errors={"p99_ms": "timeout: query timed out"}), gate) == (
        "wait", "half_plus version 2: Prometheus did not answer the p99_ms query (%s): timeout: query timed out"
                % QUERIES["p99_ms"])
    # The default allows 5 % of the model's traffic unattributed; a step may allow more or less.
    assert metrics.judge(figures(unknown_ratio=0.05), gate)[0] == "pass"
    state, why = metrics.judge(figures(unknown_ratio=0.0501), gate)
    assert state == "wait" and why.startswith('half_plus version 2: 0.0501 of half_plus\'s requests in the last 60s '
                                              'went to no known version (version="unknown"')
    assert metrics.judge(figures(unknown_ratio=0.5), metrics.gate(dict(GOOD, max_unknown_ratio=0.6)))[0] == "pass"
    # A breach is evidence enough, whatever else is missing.
    assert metrics.judge(figures(p99_ms=None, unknown_ratio=0.9, error_ratio=0.5), gate)[0] == "fail"
    # A canary that answered only errors without a version (a shared model's gRPC calls) has no requests of
    # its own: the wait names the unattributed share, not a missing scrape.
    for requests in (None, 0.0):
        state, why = metrics.judge(figures(requests=requests, error_ratio=None, unknown_ratio=0.5), gate)
        assert state == "wait" and "0.5000 of half_plus's requests in the last 60s went to no known version" in why


def test_an_error_ratio_over_its_limit_fails_naming_metric_value_threshold_and_query():
    state, why = metrics.judge(figures(error_ratio=0.0512), metrics.gate(GOOD))
    assert state == "fail"
    assert why == ("half_plus version 2: error_ratio over the last 60s is 0.0512, above max_error_ratio 0.01 "
                   "(412 requests; query: %s)" % QUERIES["error_ratio"])


def test_a_p99_over_its_limit_fails_naming_metric_value_threshold_and_query():
    state, why = metrics.judge(figures(p99_ms=75.0), metrics.gate(GOOD))
    assert state == "fail"
    assert why == ("half_plus version 2: p99_ms over the last 60s is 75.0 ms, above max_p99_ms 50 "
                   "(412 requests; query: %s)" % QUERIES["p99_ms"])


def test_only_the_given_thresholds_are_judged():
    errors_only = metrics.gate({"window": "60s", "max_error_ratio": 0.01})
    assert metrics.judge(figures(p99_ms=5000.0), errors_only)[0] == "pass"
    latency_only = metrics.gate({"window": "60s", "max_p99_ms": 50})
    assert metrics.judge(figures(error_ratio=1.0), latency_only)[0] == "pass"
    assert metrics.judge(figures(p99_ms=float("inf")), latency_only)[0] == "fail"


# ---------------------------------------------------------------- Prometheus's answers

def vector(*values):
    return {"status": "success", "data": {"resultType": "vector",
                                          "result": [{"metric": {}, "value": [1700000000.5, v]} for v in values]}}


def test_the_number_of_an_instant_query():
    assert metrics.scalar(vector("12.5")) == 12.5
    assert metrics.scalar(vector("0")) == 0.0
    assert metrics.scalar(vector("+Inf")) == float("inf")


def test_no_traffic_is_no_number():
    assert metrics.scalar(vector()) is None
    assert metrics.scalar(vector("NaN")) is None  # 0 / 0: no request in the window
    assert metrics.scalar({"status": "success", "data": {}}) is None


@pytest.mark.parametrize("answer", [
    {"status": "error", "errorType": "bad_data", "error": "parse error at char 5"},
    None, "success", {"data": {"result": []}},
])
def test_an_answer_that_is_not_a_success_raises(answer):
    with pytest.raises(ValueError, match="Prometheus answered"):
        metrics.scalar(answer)


# ---------------------------------------------------------------- what Prometheus scrapes

def unit(name, model, rest_port, versions, metrics_path="/monitoring/prometheus/metrics"):
    return {"name": name, "model": model, "rest_port": rest_port, "versions": versions, "metrics_path": metrics_path}


HOSTS = {
    "s1": {"address": "192.0.2.1"},
    "s6": {"address": "2001:db8::6"},
    "gw": {"address": "192.0.2.9", "gateway": {"metrics_enabled": True, "mtail_port": 3903,
                                               "nginx_exporter_port": 9113}},
    "gw6": {"address": "2001:db8::9", "gateway": {"metrics_enabled": True, "mtail_port": 18082,
                                                  "nginx_exporter_port": 18083}},
    "quiet": {"address": "192.0.2.10", "gateway": {"metrics_enabled": False, "mtail_port": 3903,
                                                   "nginx_exporter_port": 9113}},
    "mon": {"address": "2001:db8::5", "monitoring": {"port": 19090}},
    "mon2": {"address": "192.0.2.6", "monitoring": {"port": 9090}},
}
PLAN = {
    "hosts": {"s1": {"profile": "a"}, "s6": {"profile": "b"}},
    "profiles": {
        "a": {"units": [unit("tfserving-half_plus", "half_plus", 18501, [1, 2]),
                        unit("tfserving-iso-v3", "iso", 18503, [3])]},
        "b": {"units": [unit("tfserving-half_plus", "half_plus", 8501, [2], metrics_path=None)]},
    },
}


def test_scrape_plan_lists_servers_with_a_metrics_page_every_version_url_and_gateways_with_metrics():
    scrape = metrics.scrape_plan(HOSTS, PLAN, ["quiet", "gw6", "gw"], ["mon2", "mon"])
    assert scrape["url"] == "http://[2001:db8::5]:19090"  # the first monitoring host by name
    assert scrape["servers"] == [
        {"host": "s1", "container": "tfserving-half_plus", "model": "half_plus", "target": "192.0.2.1:18501",
         "metrics_path": "/monitoring/prometheus/metrics"},
        {"host": "s1", "container": "tfserving-iso-v3", "model": "iso", "target": "192.0.2.1:18503",
         "metrics_path": "/monitoring/prometheus/metrics"},
    ]
    assert scrape["versions"] == [
        {"host": "s1", "container": "tfserving-half_plus", "model": "half_plus", "version": 1,
         "url": "http://192.0.2.1:18501/v1/models/half_plus/versions/1"},
        {"host": "s1", "container": "tfserving-half_plus", "model": "half_plus", "version": 2,
         "url": "http://192.0.2.1:18501/v1/models/half_plus/versions/2"},
        {"host": "s1", "container": "tfserving-iso-v3", "model": "iso", "version": 3,
         "url": "http://192.0.2.1:18503/v1/models/iso/versions/3"},
        # Without a metrics page its versions are still probed.
        {"host": "s6", "container": "tfserving-half_plus", "model": "half_plus", "version": 2,
         "url": "http://[2001:db8::6]:8501/v1/models/half_plus/versions/2"},
    ]
    assert scrape["gateways"] == [
        {"host": "gw", "requests": "192.0.2.9:3903", "nginx": "192.0.2.9:9113"},
        {"host": "gw6", "requests": "[2001:db8::9]:18082", "nginx": "[2001:db8::9]:18083"},
    ]


def test_without_a_monitoring_host_there_is_no_url_but_still_targets():
    scrape = metrics.scrape_plan(HOSTS, PLAN, ["gw"], [])
    assert scrape["url"] is None
    assert len(scrape["servers"]) == 2 and len(scrape["gateways"]) == 1
    assert metrics.scrape_plan(HOSTS, {"hosts": {}, "profiles": {}}, [], []) == {
        "url": None, "servers": [], "versions": [], "gateways": []}


def test_the_compact_scrape_plan_of_a_task_result_gives_the_same_targets_and_prometheus_the_same_jobs():
    scrape = metrics.scrape_plan(HOSTS, PLAN, ["gw"], ["mon"])
    compact = metrics.compact_scrape_plan(scrape)
    # One text instead of a dict per target; the rest as it was.
    assert sorted(compact) == ["gateways", "targets", "url"] and isinstance(compact["targets"], str)
    assert (compact["url"], compact["gateways"]) == (scrape["url"], scrape["gateways"])
    assert metrics.scrape_targets(compact) == metrics.scrape_targets(scrape) == (scrape["servers"], scrape["versions"])
    # Compacting a compact plan (a plan taken again later in the run) changes nothing.
    assert metrics.compact_scrape_plan(compact) is compact
    assert monitoring.scrape_configs(compact, "127.0.0.1:9090", "127.0.0.1:9115") == monitoring.scrape_configs(
        scrape, "127.0.0.1:9090", "127.0.0.1:9115")


def test_ports_that_are_not_ports_are_left_to_the_problems_not_scraped():
    hosts = dict(HOSTS, gw={"address": "192.0.2.9", "gateway": {"metrics_enabled": True, "mtail_port": "abc",
                                                                "nginx_exporter_port": 9113}},
                 mon={"address": "192.0.2.5", "monitoring": {"port": None}})
    scrape = metrics.scrape_plan(hosts, PLAN, ["gw"], ["mon"])
    assert scrape["url"] is None and scrape["gateways"] == []


def host(serving_enabled=True, serving_path="/monitoring/prometheus/metrics", port=9090, flags=None, **gateway):
    return {"monitoring": {"serving_enabled": serving_enabled, "serving_path": serving_path, "port": port},
            "flags": flags or {},
            "gateway": dict({"metrics_enabled": True, "mtail_port": 3903, "nginx_exporter_port": 9113}, **gateway)}


def test_the_defaults_have_no_problem():
    assert metrics.host_problems(host(), True, True, True) == []
    assert metrics.host_problems(host(serving_enabled=False, serving_path=None), True, False, False) == []
    assert metrics.host_problems(host(metrics_enabled=False, mtail_port="x"), False, True, False) == []


@pytest.mark.parametrize("inputs, roles, problem", [
    (host(serving_enabled="yes"), (True, False, False),
     "serving_monitoring_enabled: 'yes' is not a boolean; use true or false"),
    (host(serving_path="metrics"), (True, False, False),
     "serving_monitoring_path: 'metrics' is not a URL path such as /monitoring/prometheus/metrics"),
    (host(serving_path="/metrics page"), (True, False, False),
     "serving_monitoring_path: '/metrics page' is not a URL path such as /monitoring/prometheus/metrics"),
    (host(flags={"monitoring_config_file": "/etc/m.config"}), (True, False, False),
     "serving_flags.monitoring_config_file: written by the collection while serving_monitoring_enabled is true; "
     "remove the flag or turn monitoring off"),
    (host(metrics_enabled=None), (False, True, False),
     "gateway_metrics_enabled: None is not a boolean; use true or false"),
    (host(mtail_port=0), (False, True, False), "gateway_mtail_port: 0 is not a port; use an integer from 1 to 65535"),
    (host(nginx_exporter_port="9113"), (False, True, False),
     "gateway_nginx_exporter_port: '9113' is not a port; use an integer from 1 to 65535"),
    (host(port=70000), (False, False, True), "monitoring_port: 70000 is not a port; use an integer from 1 to 65535"),
])
def test_bad_metrics_variables_are_named_with_their_value(inputs, roles, problem):
    assert metrics.host_problems(inputs, *roles) == [problem]


def test_a_host_is_checked_only_for_its_own_roles():
    bad = host(serving_enabled="yes", metrics_enabled="yes", port="x")
    assert metrics.host_problems(bad, False, False, False) == []
    # Monitoring off: its path and the flag are the user's.
    assert metrics.host_problems(host(serving_enabled=False, serving_path=7,
                                      flags={"monitoring_config_file": "/m"}), True, False, False) == []


# ---------------------------------------------------------------- the PromQL, run by Prometheus's own promtool

def test_version_queries_select_one_version_over_the_window():
    queries = metrics.version_queries("half_plus", 2, "60s")
    assert sorted(queries) == ["error_ratio", "p99_ms", "rate", "requests"]
    assert queries["requests"] == 'sum(increase(tfserving_gateway_requests_total{model="half_plus",version="2"}[60s]))'
    assert all('model="half_plus",version="2"' in q and "[60s]" in q for q in queries.values())


def series(name, values, **labels):
    return {"series": "%s{%s}" % (name, ",".join('%s="%s"' % item for item in sorted(labels.items()))),
            "values": values}


def requests(version, label, status, values, model="m"):
    return series(metrics.REQUESTS, values, model=model, version=version, label=label, status=status)


def buckets(version, label, per_step, model="m"):
    """Histogram buckets that grow by per_step[le] each 15 s (cumulative, as Prometheus exposes them)."""
    return [series(metrics.DURATION, "0+%sx20" % increase, model=model, version=version, label=label, le=le)
            for le, increase in per_step]


def expect(query, value):
    return {"expr": query, "eval_time": "5m", "exp_samples": [{"labels": "{}", "value": value}]}


def near(query, value):
    """promtool compares exactly; interpolations and sums of inexact rates are off in the last bits."""
    return expect("abs((%s) - %r) < bool 1e-9" % (query, value), 1)


def test_the_queries_give_the_figures_prometheus_computes(tmp_path):
    # 21 samples 15 s apart (0 s .. 300 s); at 5 m the 1 m window holds 4 steps of each counter.
    two = metrics.version_queries("m", "2", "1m")
    one = metrics.version_queries("m", "1", "1m")
    three = metrics.version_queries("m", "3", "1m")
    half = [("0.005", 0), ("0.01", 25), ("0.025", 45), ("0.05", 49), ("0.1", 50), ("0.25", 50), ("+Inf", 50)]
    slow = [("0.005", 0), ("5", 0), ("10", 10), ("+Inf", 10)]
    inputs = [
        # Version 2: 40 + 20 OK, 20 refused by the gateway (not the version's errors), 4 + 4 errors.
        requests("2", "canary", "200", "0+10x20"), requests("2", "stable", "200", "0+5x20"),
        requests("2", "canary", "429", "0+5x20"), requests("2", "canary", "500", "0+1x20"),
        requests("2", "", "404", "0+1x20"),
        # Version 1 never failed: it has no error series at all.
        requests("1", "stable", "200", "0+3x20"),
        # Version 3 was only refused: a series of its own, yet no error of its own.
        requests("3", "canary", "200", "0+2x20"), requests("3", "canary", "401", "0+2x20"),
        requests("3", "canary", "403", "0+2x20"),
        # Another model with the same version number must not count.
        requests("2", "canary", "500", "0+100x20", model="other"),
    ] + buckets("2", "canary", half) + buckets("2", "stable", half) + buckets("1", "stable", slow) + buckets(
        "2", "canary", slow, model="other")
    tests = {"rule_files": [], "evaluation_interval": "15s", "tests": [{
        "interval": "15s",
        "input_series": inputs,
        "promql_expr_test": [
            expect(two["requests"], 88),
            # A sum of per-series rates (none exact in binary): its last bit follows the series' order.
            near(two["rate"], 88 / 60.0),
            expect(two["error_ratio"], 8 / 88.0),
            # 400 requests in the window: the 396th is half way into the 0.05..0.1 bucket (392..400).
            near(two["p99_ms"], 75),
            expect(one["requests"], 12), expect(one["error_ratio"], 0), near(one["p99_ms"], 9950),
            expect(three["requests"], 24), expect(three["error_ratio"], 0),
        ],
    }, {
        "interval": "15s",
        # No traffic in the window: no figure (the module turns the empty answers into None).
        "input_series": [requests("2", "canary", "500", "1+0x20")],
        "promql_expr_test": [expect(two["requests"], 0),
                             # 0 / 0: one sample, NaN (the one value not equal to itself).
                             expect("count(%s)" % two["error_ratio"], 1),
                             expect("absent((%s) == (%s))" % (two["error_ratio"], two["error_ratio"]), 1),
                             {"expr": two["p99_ms"], "eval_time": "5m", "exp_samples": []}],
    }]}
    path = tmp_path / "queries_test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    # Fails, not skips, without promtool (Debian package prometheus; lab/engine.sh installs it).
    run = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_promtool_fails_a_wrong_figure(tmp_path):
    """The check above can fail: the same input with a wrong expectation is refused."""
    query = metrics.version_queries("m", "2", "1m")["error_ratio"]
    tests = {"rule_files": [], "evaluation_interval": "15s", "tests": [{
        "interval": "15s",
        "input_series": [requests("2", "canary", "200", "0+10x20"), requests("2", "canary", "429", "0+10x20")],
        "promql_expr_test": [expect(query, 0.5)]}]}
    path = tmp_path / "wrong_test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    run = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "FAILED" in run.stdout + run.stderr, run.stdout + run.stderr


def test_the_rules_and_the_gate_share_one_error_selector():
    assert metrics.selector("errors") == metrics.ERRORS == 'status=~"[45]..",status!~"401|403|429"'
    assert metrics.selector("attributed") == 'version!="unknown"'
    assert metrics.ERRORS in metrics.version_queries("m", 1, "60s")["error_ratio"]
    with pytest.raises(ValueError, match="'error' is not a selector; use one of attributed, errors"):
        metrics.selector("error")
