"""mlserve.tfserving.version_metrics against a fake Prometheus on 127.0.0.1 that answers its HTTP API."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from ansible_collections.mlserve.tfserving.plugins.module_utils import metrics
from ansible_collections.mlserve.tfserving.plugins.modules import version_metrics as module

from .module_docs import assert_documentation_matches, module_runner

V2 = {"model": "half_plus", "version": 2}
GATE = {"window": "60s", "min_requests": 200, "max_error_ratio": 0.01, "max_p99_ms": 50}


class Clock:
    """time.monotonic and time.sleep of the module: sleeping advances the clock at once."""

    def __init__(self):
        self.now, self.sleeps = 1000.0, []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class Prometheus:
    """GET /api/v1/query as Prometheus answers it; `figures(model, version, name, window)` gives each number.

    A figure of None is an empty vector (no series), "NaN" is 0 / 0; a model's unknown_ratio is asked with
    version None. A query that is not one of version_queries' or unknown_query's is answered 400 with
    Prometheus's error body.
    """

    def __init__(self, figures):
        self.figures, self.asked = figures, []
        known = {}
        prometheus = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlparse(self.path)
                query = parse_qs(url.query).get("query", [""])[0]
                prometheus.asked.append(query)
                if url.path != "/api/v1/query" or query not in known:
                    self.answer(400, {"status": "error", "errorType": "bad_data", "error": "unknown query"})
                    return
                value = prometheus.figures(*known[query])
                result = [] if value is None else [{"metric": {}, "value": [1700000000.123, str(value)]}]
                self.answer(200, {"status": "success", "data": {"resultType": "vector", "result": result}})

            def answer(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        for model, version in (("half_plus", 1), ("half_plus", 2), ("iso", 3)):
            for window in ("60s", "5m", "2m"):
                for name, query in metrics.version_queries(model, version, window).items():
                    known[query] = (model, version, name, window)
                known[metrics.unknown_query(model, window)] = (model, None, "unknown_ratio", window)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def healthy(model, version, name, window):
    return {"requests": 412, "rate": 6.87, "error_ratio": 0.002, "p99_ms": 9.9, "unknown_ratio": 0.0}[name]


@pytest.fixture
def prometheus():
    started = []

    def start(figures=healthy):
        started.append(Prometheus(figures))
        return started[-1]

    yield start
    for p in started:
        p.stop()


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(module, "time", fake)
    return fake


run = module_runner(module)


def test_documentation_matches_the_argument_spec(monkeypatch):
    assert_documentation_matches(monkeypatch, module, {"metrics", "verdict", "reasons", "waited"})


def test_without_analysis_it_reports_each_versions_figures_over_the_window(capsys, prometheus, clock):
    def figures(model, version, name, window):
        assert window == "5m"  # the default
        if version == 1:  # no traffic: empty answers and 0 / 0
            return {"requests": 0, "rate": 0, "error_ratio": "NaN", "p99_ms": None}[name]
        return healthy(model, version, name, window)

    p = prometheus(figures)
    result = run(capsys, {"url": p.url + "/", "versions": [{"model": "half_plus", "version": 1}, V2]})
    assert result["changed"] is False and "failed" not in result and "verdict" not in result
    assert result["metrics"] == [
        {"model": "half_plus", "version": 1, "requests": 0.0, "rate": 0.0, "error_ratio": None, "p99_ms": None,
         "queries": metrics.version_queries("half_plus", 1, "5m")},
        {"model": "half_plus", "version": 2, "requests": 412.0, "rate": 6.87, "error_ratio": 0.002, "p99_ms": 9.9,
         "queries": metrics.version_queries("half_plus", 2, "5m")},
    ]
    assert len(p.asked) == 8 and clock.sleeps == []


def test_a_canary_within_its_thresholds_passes_after_one_window(capsys, prometheus, clock):
    p = prometheus()
    result = run(capsys, {"url": p.url, "versions": [V2], "analysis": GATE})
    assert "failed" not in result and result["changed"] is False
    assert result["verdict"] == "pass"
    assert result["reasons"] == [
        "half_plus version 2 holds: 412 requests, error_ratio 0.0020, p99_ms 9.9 in the last 60s"]
    # The figures of the split just made live: one whole window first.
    assert clock.sleeps == [60] and result["waited"] == 60
    assert sorted(set(p.asked)) == sorted(list(metrics.version_queries("half_plus", 2, "60s").values())
                                          + [metrics.unknown_query("half_plus", "60s")])


def test_a_canary_over_its_error_ratio_fails_naming_metric_value_and_threshold(capsys, prometheus, clock):
    def figures(model, version, name, window):
        return dict(requests=500, rate=8.3, error_ratio=0.05, p99_ms=9.9, unknown_ratio=0.5)[name] if version == 2 else healthy(
            model, version, name, window)

    p = prometheus(figures)
    result = run(capsys, {"url": p.url, "versions": [{"model": "half_plus", "version": 1}, V2], "analysis": GATE})
    assert result["failed"] is True and result["verdict"] == "fail"
    assert result["msg"] == (
        "The canary does not hold: half_plus version 2: error_ratio over the last 60s is 0.0500, above "
        "max_error_ratio 0.01 (500 requests; query: %s)"
        % metrics.version_queries("half_plus", 2, "60s")["error_ratio"])
    assert result["reasons"][0].startswith("half_plus version 1 holds")
    assert [m["error_ratio"] for m in result["metrics"]] == [0.002, 0.05]
    assert clock.sleeps == [60]  # at once: no waiting on a failed canary


def test_a_canary_over_its_p99_fails(capsys, prometheus, clock):
    p = prometheus(lambda model, version, name, window: dict(requests=500, rate=8.3, error_ratio=0.0,
                                                             p99_ms=120.5, unknown_ratio=0.0)[name])
    result = run(capsys, {"url": p.url, "versions": [V2], "analysis": GATE})
    assert result["failed"] is True
    assert "p99_ms over the last 60s is 120.5 ms, above max_p99_ms 50" in result["msg"]


def test_too_few_requests_are_asked_again_until_there_are_enough(capsys, prometheus, clock):
    # Traffic reaches 200 requests a window 30 s after the first look.
    p = prometheus(lambda model, version, name, window: (
        (50 if clock.now < 1090 else 250) if name == "requests" else healthy(model, version, name, window)))
    result = run(capsys, {"url": p.url, "versions": [V2], "analysis": GATE})
    assert result["verdict"] == "pass", result
    assert clock.sleeps == [60] + [5] * 6 and result["waited"] == 90


def test_too_few_requests_until_max_wait_fails_without_a_verdict_on_the_canary(capsys, prometheus, clock):
    p = prometheus(lambda model, version, name, window: 5 if name == "requests" else healthy(model, version, name,
                                                                                             window))
    result = run(capsys, {"url": p.url, "versions": [V2], "analysis": GATE, "poll_seconds": 10})
    assert result["failed"] is True and result["verdict"] == "fail"
    # max_wait defaults to three windows, counted from the start.
    assert result["msg"] == ("No evidence to judge the canary by after 180 s (max_wait): half_plus version 2 had 5 "
                             "requests in the last 60s, fewer than min_requests 200")
    assert clock.sleeps == [60] + [10] * 12 and sum(clock.sleeps) <= 180
    longer = run(capsys, {"url": p.url, "versions": [V2], "analysis": dict(GATE, window="2m", max_wait="5m")})
    assert longer["msg"].startswith("No evidence to judge the canary by after 300 s (max_wait)")


def test_check_mode_reads_once_and_judges_nothing(capsys, prometheus, clock):
    p = prometheus(lambda model, version, name, window: 5 if name == "requests" else healthy(model, version, name,
                                                                                             window))
    result = run(capsys, {"url": p.url, "versions": [V2], "analysis": GATE}, check_mode=True)
    assert "failed" not in result
    assert (result["verdict"], result["reasons"], result["waited"]) == ("not judged", [], 0)
    assert result["metrics"][0]["requests"] == 5.0
    assert clock.sleeps == [] and len(p.asked) == 4


@pytest.mark.parametrize("args, message", [
    ({"analysis": {"window": "60", "max_error_ratio": 2}},
     "analysis.window: '60' is not a duration; use seconds, minutes or hours such as 60s, 5m or 1h; "
     "analysis.max_error_ratio: 2 is not a ratio from 0 to 1 (0.01 is 1 %)"),
    ({"analysis": {"window": "60s"}}, "analysis: judges nothing; give max_error_ratio, max_p99_ms or both"),
    ({"window": "5"}, "window: '5' is not a duration such as 60s or 5m"),
])
def test_bad_input_fails_before_prometheus_is_asked(capsys, prometheus, clock, args, message):
    p = prometheus()
    result = run(capsys, dict({"url": p.url, "versions": [V2]}, **args))
    assert result["failed"] is True and result["msg"] == message
    assert p.asked == [] and clock.sleeps == []


def test_prometheus_errors_name_its_url(capsys, prometheus, clock):
    p = prometheus()
    # A version the fake does not know: Prometheus answers 400 with an error body.
    result = run(capsys, {"url": p.url, "versions": [{"model": "resnet", "version": 1}]})
    assert result["failed"] is True and result["msg"] == "Prometheus at %s: bad_data: unknown query" % p.url
    url = p.url
    p.stop()
    result = run(capsys, {"url": url, "versions": [V2], "timeout": 2})
    assert result["failed"] is True and result["msg"].startswith("Prometheus at %s: could not be asked: " % url)


def test_a_breach_fails_at_once_even_when_much_of_the_traffic_is_unattributed(capsys, prometheus, clock):
    # The error ratio figure above came with unknown_ratio 0.5: a failure is evidence enough.
    def figures(model, version, name, window):
        return dict(requests=500, rate=8.3, error_ratio=0.05, p99_ms=9.9, unknown_ratio=0.5)[name]

    result = run(capsys, {"url": prometheus(figures).url, "versions": [V2], "analysis": GATE})
    assert result["verdict"] == "fail" and "error_ratio over the last 60s is 0.0500" in result["msg"]
    assert clock.sleeps == [60]


def no_evidence(capsys, prometheus, clock, figures, analysis=GATE):
    """The gate's failure message once max_wait (three windows) has passed without evidence."""
    result = run(capsys, {"url": prometheus(figures).url, "versions": [V2], "analysis": analysis})
    assert result["failed"] is True and result["verdict"] == "fail"
    assert result["msg"].startswith("No evidence to judge the canary by after 180 s (max_wait): half_plus version 2")
    assert sum(clock.sleeps) <= 180 and len(clock.sleeps) > 20
    return result["msg"]


def test_no_series_is_no_evidence(capsys, prometheus, clock):
    msg = no_evidence(capsys, prometheus, clock, lambda model, version, name, window: None)
    assert msg.endswith(": Prometheus has no series for it in the last 60s (query: %s); no request reached it "
                        "through a gateway, or the gateways' mtail is not scraped"
                        % metrics.version_queries("half_plus", 2, "60s")["requests"])


def test_no_latency_series_is_no_evidence(capsys, prometheus, clock):
    msg = no_evidence(capsys, prometheus, clock, lambda model, version, name, window: (
        None if name == "p99_ms" else healthy(model, version, name, window)))
    assert msg.endswith(": Prometheus has no series for its p99_ms in the last 60s (query: %s)"
                        % metrics.version_queries("half_plus", 2, "60s")["p99_ms"])
    # Without max_p99_ms the latency is not judged, and not needed.
    errors_only = {"window": "60s", "min_requests": 200, "max_error_ratio": 0.01}
    assert run(capsys, {"url": prometheus(lambda model, version, name, window: (
        None if name == "p99_ms" else healthy(model, version, name, window))).url, "versions": [V2],
        "analysis": errors_only})["verdict"] == "pass"


def test_a_refused_query_is_no_evidence(capsys, prometheus, clock):
    # A model the fake does not know: every query is refused with Prometheus's error body.
    result = run(capsys, {"url": prometheus().url, "versions": [{"model": "resnet", "version": 1}], "analysis": GATE})
    assert result["verdict"] == "fail"
    assert result["msg"].startswith("No evidence to judge the canary by after 180 s (max_wait): resnet version 1: "
                                    "Prometheus did not answer the error_ratio query (")
    assert result["msg"].endswith("): bad_data: unknown query")
    assert result["metrics"][0]["errors"]["requests"] == "bad_data: unknown query"


def test_too_much_unattributed_traffic_is_no_evidence(capsys, prometheus, clock):
    def figures(model, version, name, window):
        return 0.25 if name == "unknown_ratio" else healthy(model, version, name, window)

    msg = no_evidence(capsys, prometheus, clock, figures)
    assert msg.endswith(': 0.2500 of half_plus\'s requests in the last 60s went to no known version '
                        '(version="unknown", such as a shared model\'s gRPC error answers), above max_unknown_ratio 0.05; the '
                        'requests judged are not the traffic (query: %s)' % metrics.unknown_query("half_plus", "60s"))
    # A share the step allows passes.
    result = run(capsys, {"url": prometheus(figures).url, "versions": [V2],
                          "analysis": dict(GATE, max_unknown_ratio=0.3)})
    assert result["verdict"] == "pass"
