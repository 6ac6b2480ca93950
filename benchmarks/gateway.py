#!/usr/bin/env python3
"""Throughput and latency through the gateway against the same server directly.

    make demo        # the lab fleet, once
    .venv/bin/python benchmarks/gateway.py [--seconds 10] [--connections 8] [--rounds 3]

Uses the lab inventory. The gateway is first applied with every serving host
but one drained, so both paths end at the same server (lab-serving1's
half_plus container); afterwards the gateway is applied again as declared.
wrk (from Debian) sends POST :predict requests to loopback, alternating
direct and gateway runs for the given number of rounds so that both see the
same machine noise. Prints each run, then the medians and their ratios:
gateway throughput / direct throughput, and the p99 latency the gateway adds.
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    apply_gateway('["lab-serving2"]')
    runs = {"direct": [], "gateway": []}
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
            script.write(LUA)
            script.flush()
            wrk(GATEWAY, script.name, 2, args.connections)  # warm both paths' connections
            for n in range(args.rounds):
                for name, url in (("direct", DIRECT), ("gateway", GATEWAY)):
                    result = wrk(url, script.name, args.seconds, args.connections)
                    runs[name].append(result)
                    print("round %d %-7s %8.1f req/s  p50 %6.2f ms  p99 %6.2f ms"
                          % (n + 1, name, result["rps"], result["p50"], result["p99"]))
    finally:
        apply_gateway("[]")

    median = dict((name, dict((k, statistics.median(r[k] for r in results)) for k in ("rps", "p50", "p99")))
                  for name, results in runs.items())
    print()
    print("median direct : %8.1f req/s  p50 %6.2f ms  p99 %6.2f ms" % tuple(median["direct"][k] for k in ("rps", "p50", "p99")))
    print("median gateway: %8.1f req/s  p50 %6.2f ms  p99 %6.2f ms" % tuple(median["gateway"][k] for k in ("rps", "p50", "p99")))
    print("gateway/direct throughput ratio: %.3f" % (median["gateway"]["rps"] / median["direct"]["rps"]))
    print("p99 added by the gateway: %+.2f ms" % (median["gateway"]["p99"] - median["direct"]["p99"]))


if __name__ == "__main__":
    main()
