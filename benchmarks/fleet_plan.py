#!/usr/bin/env python3
"""Time the preflight (the fleet plan) and the gateway render: the lab against a large fleet.

    .venv/bin/python benchmarks/fleet_plan.py [--hosts 200] [--models 10] [--versions 50] [--rounds 2]
                                              [--preflight-only]

Runs benchmarks/files/plan_and_render.yml, which contacts no host, against
the lab inventory (3 hosts, the fixture models) and against a generated
inventory of HOSTS serving hosts and one gateway, with MODELS isolated models
of VERSIONS versions each (one container per version per host: HOSTS x
MODELS x VERSIONS units, and a pool per version over every host). Prints
each run's wall time and the ratio large/lab of the medians, measured in one
run because these machines are noisy. With --preflight-only it runs
playbooks/preflight.yml alone, as a user runs it.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PLAYBOOKS = {False: os.path.join(REPO, "benchmarks", "files", "plan_and_render.yml"),
             True: os.path.join(REPO, "playbooks", "preflight.yml")}


def large_inventory(root, hosts, models, versions):
    """A generated inventory whose model sources are real (copies of the half_plus fixture)."""
    source = os.path.join(root, "bench_model")
    for version in range(1, versions + 1):
        shutil.copytree(os.path.join(REPO, "tests", "fixtures", "models", "half_plus", "1"),
                        os.path.join(source, str(version)))
    declaration = [{"name": "model%02d" % i, "source": source, "versions": list(range(1, versions + 1)),
                    "topology": "isolated", "labels": {"stable": versions}} for i in range(models)]
    inventory = {"all": {
        "vars": {"tfserving_models": declaration, "gateway_http_port": 18080, "gateway_status_port": 18081,
                 "gateway_grpc_port_base": 40000},
        "children": {
            # Documentation addresses (RFC 5737): nothing is contacted.
            "tfserving": {"hosts": dict(("serving%03d" % i, {"tfserving_address": "198.51.100.%d" % (i % 250 + 1)})
                                        for i in range(hosts))},
            "gateway": {"hosts": {"gateway1": {"ansible_host": "192.0.2.10"}}},
        }}}
    path = os.path.join(root, "hosts.yml")
    with open(path, "w") as f:
        json.dump(inventory, f)
    return path


def run(inventory, output, playbook):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    started = time.monotonic()
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory,
                           "-e", "bench_output=%s" % output, playbook],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit("the preflight failed:\n%s\n%s" % (proc.stdout[-4000:], proc.stderr[-2000:]))
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--versions", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--preflight-only", action="store_true")
    args = parser.parse_args()
    playbook = PLAYBOOKS[args.preflight_only]
    root = tempfile.mkdtemp(prefix="mlserve-bench-plan-")
    try:
        large = large_inventory(root, args.hosts, args.models, args.versions)
        lab = os.path.join(REPO, "inventories", "lab")
        times = {"lab": [], "large": []}
        for _ in range(args.rounds):
            # Alternating, so that both see the same machine load.
            times["lab"].append(run(lab, root, playbook))
            times["large"].append(run(large, root, playbook))
        upstreams = None
        if not args.preflight_only:
            with open(os.path.join(root, "gateway1-routes.conf")) as f:
                upstreams = sum(1 for line in f if line.startswith("upstream "))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    units = args.hosts * args.models * args.versions
    for name in ("lab", "large"):
        print("%-6s %s  median %.1f s" % (name, " ".join("%.1f s" % t for t in times[name]),
                                         statistics.median(times[name])))
    print("large fleet: %d serving hosts, %d units%s" % (
        args.hosts, units, "" if upstreams is None else ", %d upstreams in routes.conf" % upstreams))
    print("ratio large/lab: %.2f" % (statistics.median(times["large"]) / statistics.median(times["lab"])))


if __name__ == "__main__":
    main()
