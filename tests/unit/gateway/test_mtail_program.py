"""The gateway's mtail program, run by the real mtail over lines written by the role's log_format."""

import collections
import json
import os
import re
import shutil
import subprocess

import pytest

ROLE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "gateway")
PROGRAM = os.path.join(ROLE, "files", "tfserving.mtail")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def log_format():
    """The tfserving_json format of nginx.conf.j2, as one string of $variables."""
    with open(os.path.join(ROLE, "templates", "nginx.conf.j2")) as f:
        text = f.read()
    body = re.search(r"log_format tfserving_json escape=json\s+(.*?);\n", text, re.S).group(1)
    return "".join(re.findall(r"'([^']*)'", body))


FORMAT = log_format()


def access_line(**values):
    """One line as nginx writes it: every variable of the format, escaped as escape=json does."""
    values = dict({"time_iso8601": "2025-01-01T00:00:00+00:00", "remote_addr": "127.0.0.1", "request_id": "0" * 32,
                   "request_method": "POST", "request_uri": "/v1/models/m:predict", "tfs_status": "200",
                   "tfs_model": "", "tfs_log_version": "unknown", "tfs_label": "", "upstream_addr": "127.0.0.1:18501",
                   "upstream_status": "200", "request_time": "0.001", "upstream_connect_time": "0.000",
                   "upstream_response_time": "0.001", "request_length": "120", "bytes_sent": "250"}, **values)

    def value(match):
        return json.dumps(str(values.pop(match.group(1))))[1:-1]

    line = re.sub(r"\$([a-z0-9_]+)", value, FORMAT)
    assert not values, "not in the log_format: %s" % sorted(values)
    json.loads(line)  # what the format writes is one JSON object
    return line


# (model, version, label, status, request_time)
REQUESTS = [
    ("half_plus", "1", "stable", 200, "0.003"),
    ("half_plus", "1", "stable", 200, "0.005"),   # on a bucket's bound: counted in it
    ("half_plus", "1", "stable", 200, "0.120"),
    ("half_plus", "2", "canary", 200, "0.030"),
    ("half_plus", "2", "canary", 503, "2.000"),
    ("half_plus", "2", "", 200, "0.007"),          # by version or alias: no label
    ("half_plus", "2", "", 404, "0.000"),          # under 1 ms: in the first bucket too
    ("half_plus_iso", "unknown", "", 429, "0.000"),  # refused before a version was chosen
    ("half_plus", "unknown", "", 200, "0.002"),    # gRPC of a shared model: the version is in the protobuf
    ("half_plus_iso", "3", "", 200, "11.500"),     # beyond the last bucket
]


@pytest.fixture(scope="module")
def metrics(tmp_path_factory):
    assert shutil.which("mtail"), "mtail (Debian package) is needed to test the gateway's mtail program"
    log = tmp_path_factory.mktemp("mtail") / "access.json"
    lines = [access_line(tfs_model=m, tfs_log_version=v, tfs_label=l, tfs_status=s, request_time=t)
             for m, v, l, s, t in REQUESTS]
    # Not counted: no model (health checks, undeclared paths), even when a
    # client's path imitates the fields that follow it.
    lines.append(access_line(request_uri="/healthz", request_method="GET", tfs_status=400))
    lines.append(access_line(request_uri='/x","status":200,"model":"evil","version":"1","label":"",', tfs_status=400))
    log.write_text("\n".join(lines) + "\n")
    run = subprocess.run(["mtail", "--one_shot", "--one_shot_format", "prometheus", "--emit_prog_label=false",
                          "--logtostderr", "--address", "127.0.0.1", "--port", "0", "--progs", PROGRAM,
                          "--logs", str(log)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return parse(run.stdout)


def parse(text):
    """Prometheus text exposition -> {(name, sorted labels): value}, and the TYPE lines."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
        elif line and not line.startswith("#"):
            name, labels, value = re.match(r"([a-z_:]+)\{(.*)\} (\S+)$", line).groups()
            samples[(name, tuple(sorted(re.findall(r'([a-z_]+)="([^"]*)"', labels))))] = float(value)
    return samples, types


def series(samples, name):
    return dict((labels, value) for (n, labels), value in samples.items() if n == name)


def test_the_metrics_have_the_agreed_names_and_types(metrics):
    _, types = metrics
    assert types == {"tfserving_gateway_requests_total": "counter",
                     "tfserving_gateway_request_duration_seconds": "histogram"}


def test_requests_are_counted_per_model_version_label_and_status(metrics):
    samples, _ = metrics
    want = collections.Counter((("label", l), ("model", m), ("status", str(s)), ("version", v))
                               for m, v, l, s, _ in REQUESTS)
    assert series(samples, "tfserving_gateway_requests_total") == dict((k, float(n)) for k, n in want.items())


def test_lines_without_a_model_are_not_counted(metrics):
    samples, _ = metrics
    models = set(dict(labels)["model"] for (_, labels) in samples)
    assert models == {"half_plus", "half_plus_iso"}
    assert sum(series(samples, "tfserving_gateway_requests_total").values()) == len(REQUESTS)


def observed(request_time):
    """nginx logs whole milliseconds: 0.000 (under 1 ms) is observed as half a millisecond."""
    return float(request_time) or 0.0005


def test_latency_histogram_has_the_agreed_buckets_sum_and_count(metrics):
    samples, _ = metrics
    groups = collections.defaultdict(list)
    for m, v, l, _, t in REQUESTS:
        groups[(("label", l), ("model", m), ("version", v))].append(observed(t))
    buckets = series(samples, "tfserving_gateway_request_duration_seconds_bucket")
    want = {}
    for key, times in groups.items():
        for bound in BUCKETS:
            want[tuple(sorted(key + (("le", "%g" % bound),)))] = float(sum(t <= bound for t in times))
        want[tuple(sorted(key + (("le", "+Inf"),)))] = float(len(times))
    assert buckets == want
    assert series(samples, "tfserving_gateway_request_duration_seconds_count") == dict(
        (key, float(len(times))) for key, times in groups.items())
    sums = series(samples, "tfserving_gateway_request_duration_seconds_sum")
    assert sums == dict((key, pytest.approx(sum(times))) for key, times in groups.items())
