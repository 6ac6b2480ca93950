#!/usr/bin/env python3
"""How long a converge takes: the lab's site.yml first and unchanged, and a host's units loading side by side.

    .venv/bin/python benchmarks/converge.py [--skip-lab] [--skip-units] [--load-seconds 5] [--units 12]

lab: recreates the lab hosts (lab/down.yml, lab/up.yml: what `make demo`
  builds), runs `site.yml -i inventories/lab` on them, then again; prints
  both times, the changed count of the second run (must be 0) and the ratio,
  and the second run's task runs per host (skipped ones included).
units: one serving host whose versions each take LOAD_SECONDS to load
  (the test double's SERVING_DOUBLE_LOAD_DELAY_SECONDS); times the serving
  role bringing up 2 isolated units, removing them, then bringing up UNITS;
  prints both times and their ratio (units load concurrently: the ratio
  stays near 1, where loading one after the other would make it UNITS/2).
Needs the lab images (make images); traffic stays on loopback.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

from lab import REPO, lab_host, task_runs, timed_playbook

HOST = "mlserve-bench-units"


def changed(report):
    return sum(host["changed"] for host in report["stats"].values())


def lab():
    for playbook in ("lab/down.yml", "lab/up.yml"):
        timed_playbook([playbook])
    first, _ = timed_playbook(["site.yml", "-i", "inventories/lab"])
    second, report = timed_playbook(["site.yml", "-i", "inventories/lab"])
    print("lab site.yml: first %.1f s, unchanged %.1f s (%d changed), unchanged/first %.2f"
          % (first, second, changed(report), second / first))
    print("unchanged site.yml, task runs per host: %s; of them skipped: %s" % (
        json.dumps(task_runs(report)),
        json.dumps(dict((host, stats["skipped"]) for host, stats in sorted(report["stats"].items())))))
    if changed(report):
        sys.exit("the unchanged site.yml changed %d tasks" % changed(report))


def units(count, load_seconds):
    work = tempfile.mkdtemp(prefix="mlserve-bench-units-")
    try:
        source = os.path.join(work, "slow")
        for version in range(1, count + 1):
            shutil.copytree(os.path.join(REPO, "tests", "fixtures", "models", "half_plus", "1"),
                            os.path.join(source, str(version)))
        inventory = os.path.join(work, "inventory")
        os.makedirs(inventory)
        # The lab's settings (serving image archive, engine options), on a port range of its own.
        os.symlink(os.path.join(REPO, "inventories", "lab", "group_vars"), os.path.join(inventory, "group_vars"))
        with open(os.path.join(inventory, "hosts.yml"), "w") as f:
            json.dump({"all": {"children": {"tfserving": {"hosts": {HOST: {
                "ansible_connection": "community.docker.docker", "tfserving_port_base": 24500}}}}}}, f)

        def declare(versions):
            path = os.path.join(work, "vars-%d.json" % len(versions))
            with open(path, "w") as f:
                json.dump({"tfserving_models": [{"name": "slow", "source": source, "versions": versions,
                                                 "topology": "isolated"}] if versions else [],
                           "serving_environment": {"SERVING_DOUBLE_LOAD_DELAY_SECONDS": str(load_seconds)}}, f)
            return ["-i", inventory, "-e", "@" + path, "benchmarks/files/serving_host.yml"]

        lab_host(HOST, "started")
        timed_playbook(declare(list(range(1, count + 1))) + ["-e", "bench_step=setup"])
        # A first, untimed run loads the serving image onto the host.
        for versions in ([1], []):
            timed_playbook(declare(versions) + ["-e", "bench_step=serve"])
        few, _ = timed_playbook(declare([1, 2]) + ["-e", "bench_step=serve"])
        timed_playbook(declare([]) + ["-e", "bench_step=serve"])
        many, _ = timed_playbook(declare(list(range(1, count + 1))) + ["-e", "bench_step=serve"])
        print("serving role, versions loading %d s each: 2 units %.1f s, %d units %.1f s, ratio %.2f"
              % (load_seconds, few, count, many, many / few))
    finally:
        lab_host(HOST, "absent")
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-lab", action="store_true")
    parser.add_argument("--skip-units", action="store_true")
    parser.add_argument("--units", type=int, default=12)
    parser.add_argument("--load-seconds", type=int, default=5)
    args = parser.parse_args()
    if not args.skip_lab:
        lab()
    if not args.skip_units:
        units(args.units, args.load_seconds)


if __name__ == "__main__":
    main()
