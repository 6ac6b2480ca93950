"""The canary gate of version_metrics against a real Prometheus (Debian's), scraping the gateway's metrics.

An exporter on loopback serves tfserving_gateway_requests_total and the duration histogram as mtail
exports them, each model with its own traffic; Prometheus scrapes it every second. Every case is a
model of its own, and the gates run at the same time: one window, then polls until max_wait.
"""

import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.request import ProxyHandler, build_opener

import pytest

from ansible_collections.mlserve.tfserving.plugins.module_utils import metrics
from ansible_collections.mlserve.tfserving.plugins.modules import version_metrics as module

from ...serving_double.double_helpers import free_port

GATE = {"window": "5s", "min_requests": 20, "max_error_ratio": 0.1, "max_p99_ms": 500, "max_wait": "12s"}
# Per model: requests a second by (version, status), and whether the duration histogram is exported.
TRAFFIC = {
    "healthy": ({("2", "200"): 10, ("1", "200"): 10}, True),
    "failing": ({("2", "200"): 5, ("2", "500"): 5}, True),
    "quiet": ({("2", "200"): 1}, True),
    "silent": ({("1", "200"): 10}, True),
    "grpc": ({("2", "200"): 10, ("unknown", "200"): 10}, True),
    # A canary of a shared model that fails every gRPC call: its errors carry no version.
    "grpcfailing": ({("1", "200"): 10, ("unknown", "500"): 10}, True),
    "nolatency": ({("2", "200"): 10}, False),
}


class Exporter:
    """GET /metrics: every model's counters, grown at their rate since the start (all requests take 10 ms)."""

    def __init__(self):
        self.started = time.monotonic()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = exporter.text().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def text(self):
        elapsed = time.monotonic() - self.started
        lines = ["# TYPE tfserving_gateway_requests_total counter",
                 "# TYPE tfserving_gateway_request_duration_seconds histogram"]
        for model, (rates, histogram) in sorted(TRAFFIC.items()):
            served = {}
            for (version, status), rate in sorted(rates.items()):
                count = int(rate * elapsed)
                served[version] = served.get(version, 0) + count
                lines.append('tfserving_gateway_requests_total{model="%s",version="%s",label="",status="%s"} %d'
                             % (model, version, status, count))
            for version, count in sorted(served.items()) if histogram else ():
                labels = 'model="%s",version="%s",label=""' % (model, version)
                lines += ['tfserving_gateway_request_duration_seconds_bucket{%s,le="0.005"} 0' % labels,
                          'tfserving_gateway_request_duration_seconds_bucket{%s,le="0.01"} %d' % (labels, count),
                          'tfserving_gateway_request_duration_seconds_bucket{%s,le="+Inf"} %d' % (labels, count),
                          'tfserving_gateway_request_duration_seconds_sum{%s} %.3f' % (labels, count * 0.01),
                          'tfserving_gateway_request_duration_seconds_count{%s} %d' % (labels, count)]
        return "\n".join(lines) + "\n"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def start_prometheus(tmp, scraped, *flags):
    assert shutil.which("prometheus"), "prometheus (Debian package) is needed for the gate's tests"
    port = free_port()
    config = tmp / ("prometheus-%d.yml" % port)
    config.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                      "scrape_configs:\n  - job_name: gateway_requests\n"
                      "    static_configs: [{targets: ['127.0.0.1:%d']}]\n" % scraped)
    process = subprocess.Popen(["prometheus", "--config.file=%s" % config, "--storage.tsdb.path=%s" % (tmp / str(port)),
                                "--web.listen-address=127.0.0.1:%d" % port] + list(flags),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port
    deadline = time.monotonic() + 30
    while True:
        try:
            with build_opener(ProxyHandler({})).open(url + "/-/ready", timeout=1) as r:
                if r.status == 200:
                    return process, url
        except OSError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "Prometheus did not start"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prometheus")
    exporter = Exporter()
    processes = []
    try:
        process, url = start_prometheus(tmp, exporter.port)
        processes.append(process)
        # This one refuses every query that reads more than one sample.
        process, refusing = start_prometheus(tmp, exporter.port, "--query.max-samples=1")
        processes.append(process)
        closed = "http://127.0.0.1:%d" % free_port()
        opener = build_opener(ProxyHandler({}))
        cases = {model: (url, model) for model in TRAFFIC}
        cases.update(refused=(refusing, "healthy"), unreachable=(closed, "healthy"))

        def gate(case):
            where, model = cases[case]
            return module.analyse(lambda query: module.ask(opener, where, query, 2),
                                  [{"model": model, "version": 2}], metrics.gate(GATE), 1)

        with ThreadPoolExecutor(len(cases)) as pool:
            yield dict(zip(cases, pool.map(gate, cases)))
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        exporter.stop()


def test_a_canary_with_evidence_passes_and_a_failing_one_fails_at_once(verdicts):
    assert verdicts["healthy"]["verdict"] == "pass", verdicts["healthy"]
    assert verdicts["healthy"]["reasons"][0].startswith("healthy version 2 holds: ")
    failing = verdicts["failing"]
    assert failing["verdict"] == "fail" and failing["waited"] < 10, failing
    assert failing["msg"].startswith("The canary does not hold: failing version 2: error_ratio over the last 5s is 0.")


@pytest.mark.parametrize("case, reason", [
    ("quiet", "quiet version 2 had %d requests in the last 5s, fewer than min_requests 20"),
    ("silent", "silent version 2: Prometheus has no series for it in the last 5s (query: "),
    ("nolatency", "nolatency version 2: Prometheus has no series for its p99_ms in the last 5s (query: "),
    ("grpc", "grpc version 2: 0.5000 of grpc's requests in the last 5s went to no known version "
             '(version="unknown", such as a shared model\'s gRPC error answers), above max_unknown_ratio 0.05'),
    ("grpcfailing", "grpcfailing version 2: 0.5000 of grpcfailing's requests in the last 5s went to no known "
                    'version (version="unknown", such as a shared model\'s gRPC error answers)'),
    ("refused", "healthy version 2: Prometheus did not answer the error_ratio query ("),
    ("unreachable", "healthy version 2: Prometheus did not answer the error_ratio query ("),
])
def test_without_evidence_the_gate_fails_at_max_wait_saying_why(verdicts, case, reason):
    result = verdicts[case]
    assert result["verdict"] == "fail", result
    assert 10 <= result["waited"] <= 13, result
    prefix = "No evidence to judge the canary by after %d s (max_wait): " % result["waited"]
    assert result["msg"].startswith(prefix), result["msg"]
    why = result["msg"][len(prefix):]
    if "%d" in reason:
        # 1 a second over 5 s, as Prometheus extrapolates it
        requests = int(why.split(" had ")[1].split()[0])
        assert 3 <= requests <= 7, why
        reason = reason % requests
    assert why.startswith(reason), why
    if case == "refused":
        assert why.endswith("): execution: query processing would load too many samples into memory in query "
                            "execution"), why
    if case == "unreachable":
        assert "): could not be asked: <urlopen error [Errno 111] Connection refused>" in why, why
