#!/usr/bin/env python3
"""Throughput and latency through the gateway against the same server directly.

    make demo        # the lab fleet, once
    .venv/bin/python benchmarks/gateway.py [--seconds 10] [--connections 8] [--rounds 3]

Uses the lab inventory. The gateway is first applied with every serving host
but one drained, so both paths end at the same server (lab-serving1's
half_plus container); afterwards the gateway is applied again as declared.
wrk (from Debian) sends POST :predict requests to loopback, alternating
direct and gateway runs for the given number of rounds so that both see the
same machine noise; then h2load (nghttp2's, from Debian) does the same with
gRPC Predict calls, whose answers pass the gateway's njs filter that reads
the version. Prints each run, then the medians and their ratios: gateway
throughput / direct throughput, and the latency the gateway adds (p99 for
REST; h2load reports the mean).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DIRECT = "http://127.0.0.1:18501/v1/models/half_plus/versions/1:predict"
GATEWAY = "http://127.0.0.1:18080/v1/models/half_plus/versions/1:predict"
LUA = """wrk.method = "POST"
wrk.body = '{"instances": [1.0, 2.0, 5.0]}'
wrk.headers["Content-Type"] = "application/json"
"""
GRPC_DIRECT = "http://127.0.0.1:18500"
GRPC_GATEWAY = "http://127.0.0.1:18090"
PREDICT = "/tensorflow.serving.PredictionService/Predict"
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def apply_gateway(drained):
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    proc = subprocess.run(
        [os.path.join(bin_dir, "ansible-playbook"), "-i", "inventories/lab", "playbooks/gateway.yml",
         "-e", '{"gateway_drained_hosts": %s}' % drained],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        sys.exit("applying the gateway failed (is the lab up? make demo):\n%s" % proc.stdout[-3000:])


def millis(text):
    number, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * UNITS[unit]


def wrk(url, script, seconds, connections):
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", "%ds" % seconds, "--latency",
                          "-s", script, url], capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = millis(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = millis(re.search(r"\s99%\s+(\S+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if errors or socket_errors:
        sys.exit("wrk saw failed requests on %s:\n%s" % (url, out))
    return {"rps": rps, "p50": p50, "p99": p99}


def grpc_body():
    """One framed gRPC PredictRequest of version 1 (the stock protos), and a check that both paths answer it."""
    import grpc
    from tensorflow.core.framework import tensor_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus"
    request.model_spec.version.value = 1
    x = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0, 2.0, 5.0])
    x.tensor_shape.dim.add(size=3)
    request.inputs["x"].CopyFrom(x)
    for target in (GRPC_DIRECT, GRPC_GATEWAY):
        with grpc.insecure_channel(target[len("http://"):]) as channel:
            answer = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10)
        if answer.model_spec.version.value != 1:
            sys.exit("%s answered with version %d" % (target, answer.model_spec.version.value))
    body = request.SerializeToString()
    return b"\0" + len(body).to_bytes(4, "big") + body


def h2load(base, body_file, seconds, connections):
    # A number of calls (900 per connection), not a duration: nginx closes an HTTP/2 connection after
    # keepalive_requests (1000) requests, and h2load does not open another.
    calls = connections * 900
    out = subprocess.run(["h2load", "-n", str(calls), "-c", str(connections), "-t", "2", "-m", "1",
                          "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", body_file,
                          base + PREDICT], capture_output=True, text=True, timeout=seconds + 60).stdout
    done = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    if not done or done.group(3) != "0" or done.group(4) != "0":
        sys.exit("h2load saw failed calls on %s:\n%s" % (base, out))
    rps = float(re.search(r"finished in \S+, ([\d.]+) req/s", out).group(1))
    mean = millis(re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out).group(1))
    return {"rps": rps, "mean": mean}


def report(runs, keys):
    median = dict((name, dict((k, statistics.median(r[k] for r in results)) for k in keys))
                  for name, results in runs.items())
    print()
    for name in ("direct", "gateway"):
        print("median %-7s: %8.1f req/s  %s" % (name, median[name]["rps"], "  ".join(
            "%s %6.2f ms" % (k, median[name][k]) for k in keys[1:])))
    print("gateway/direct throughput ratio: %.3f" % (median["gateway"]["rps"] / median["direct"]["rps"]))
    print("%s added by the gateway: %+.2f ms" % (keys[-1], median["gateway"][keys[-1]] - median["direct"][keys[-1]]))


def alternate(rounds, paths, run, keys):
    """Direct and gateway runs, one after the other in each round; prints each run."""
    runs = {"direct": [], "gateway": []}
    for n in range(rounds):
        for name, target in paths:
            result = run(target)
            runs[name].append(result)
            print("round %d %-7s %8.1f req/s  %s" % (n + 1, name, result["rps"], "  ".join(
                "%s %6.2f ms" % (k, result[k]) for k in keys[1:])))
    report(runs, keys)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    apply_gateway('["lab-serving2"]')
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".lua") as script, \
                tempfile.NamedTemporaryFile("wb", suffix=".grpc") as body:
            script.write(LUA)
            script.flush()
            body.write(grpc_body())
            body.flush()
            wrk(GATEWAY, script.name, 2, args.connections)  # warm both paths' connections
            print("REST (wrk, POST :predict)")
            alternate(args.rounds, (("direct", DIRECT), ("gateway", GATEWAY)),
                      lambda url: wrk(url, script.name, args.seconds, args.connections), ("rps", "p50", "p99"))
            print("\ngRPC (h2load, Predict)")
            alternate(args.rounds, (("direct", GRPC_DIRECT), ("gateway", GRPC_GATEWAY)),
                      lambda base: h2load(base, body.name, args.seconds, args.connections), ("rps", "mean"))
    finally:
        apply_gateway("[]")


if __name__ == "__main__":
    main()
