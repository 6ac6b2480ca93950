#!/usr/bin/env python3
"""How long a rollout and its rollback take on the lab, under load, and how many task runs each host pays.

    .venv/bin/python benchmarks/rollout.py [--rounds 1] [--topology]

Needs the lab as `make demo` leaves it. A site.yml run first puts the lab
back to its inventory (rollout_demo serving version 1) and a second one,
unchanged, is the yardstick: machines here are noisy, so each figure is
also printed as a ratio to it. Each round then rolls out rollout_demo version 3 as a 50 % canary across both
serving hosts (playbooks/rollout.yml), then rolls it back
(playbooks/rollback.yml), while one thread asks rollout_demo's unversioned
path on the gateway (loopback, at most one request in flight, bounded by
the runs). Prints each run's seconds and its ratio to the unchanged
site.yml, its task runs per host, and the requests sent and failed. A failed request or a failed run stops the
benchmark with its cause.

With --topology the rollout instead moves rollout_demo from shared to
isolated (the lab's declaration with that one change, no steps): every
host drops its shared container while the gateway still routes to it, so
each host is drained for that move.
"""

import argparse
import json
import sys
import threading
import urllib.error
import urllib.request

import yaml

from lab import task_runs, timed_playbook

URL = "http://127.0.0.1:18080/v1/models/rollout_demo:predict"
STEPS = [{"model": "rollout_demo", "versions": [1, 3], "labels": {"stable": 1, "canary": 3},
          "split": {"stable": 50, "canary": 50}}]


def isolated_declaration():
    """The lab's declaration, rollout_demo isolated: one container per version instead of the shared one."""
    with open("inventories/lab/group_vars/all/models.yml") as f:
        models = yaml.safe_load(f)["tfserving_models"]
    for model in models:
        if model["name"] == "rollout_demo":
            model["topology"] = "isolated"
            model["routes"].pop("grpc_unversioned", None)  # a shared model's choice
    return models


class Load(threading.Thread):
    """Sends requests one after the other until stopped; counts them and keeps the first failures."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stopping = threading.Event()
        self.sent = 0
        self.failures = []

    def run(self):
        body = json.dumps({"instances": [1.0]}).encode()
        while not self.stopping.is_set():
            self.sent += 1
            try:
                with urllib.request.urlopen(urllib.request.Request(URL, data=body), timeout=10) as answer:
                    answer.read()
            except (urllib.error.URLError, OSError) as exc:
                self.failures.append(str(exc))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--topology", action="store_true", help="roll out rollout_demo isolated instead of a canary")
    args = parser.parse_args()
    timed_playbook(["site.yml", "-i", "inventories/lab"])
    unchanged, _ = timed_playbook(["site.yml", "-i", "inventories/lab"])
    print("unchanged site.yml: %.1f s" % unchanged)
    load = Load()
    load.start()
    try:
        for _ in range(args.rounds):
            change = {"tfserving_models": isolated_declaration()} if args.topology else {"rollout_steps": STEPS}
            for name, playbook in (("rollout", ["playbooks/rollout.yml", "-e", json.dumps(change)]),
                                   ("rollback", ["playbooks/rollback.yml"])):
                seconds, report = timed_playbook(playbook + ["-i", "inventories/lab"])
                print("%s: %.1f s (%.2f x the unchanged site.yml), task runs per host %s"
                      % (name, seconds, seconds / unchanged, json.dumps(task_runs(report))))
    finally:
        load.stopping.set()
        load.join()
    print("load: %d requests, %d failed" % (load.sent, len(load.failures)))
    if load.failures:
        sys.exit("first failures: %s" % load.failures[:3])


if __name__ == "__main__":
    main()
