#!/usr/bin/env python3
"""Time the models role's sync: a first copy, an unchanged second run, and one big version against plain rsync.

    .venv/bin/python benchmarks/models_sync.py [--versions 4] [--mb-per-version 10] [--big-mb 4096] [--rounds 3]

Builds a model repository from the half_plus fixture with a few MB of assets
per version, creates one lab host (lab/tasks/host.yml), runs the models role
twice and prints, for each run, the wall time, the bytes rsync transferred
and the number of changed tasks. The second run must transfer 0 bytes and
change nothing; the script exits non-zero otherwise. Then it adds one more
version of BIG_MB and times the role's run that copies it against plain
rsync of the same version directory to the same host, over the same
transport (`docker exec`), in ROUNDS alternating rounds (the copy is
removed from the host before each), and prints the role's throughput as a
share of rsync's, the median of the rounds (issue 19 asks at least 70 %),
with the role's longest tasks. Needs the lab image (make images).
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from lab import REPO, lab_host, task_seconds, timed_playbook

sys.path.insert(0, os.path.join(REPO, "collections"))
from ansible_collections.mlserve.tfserving.plugins.action.fleet_plan import role_defaults  # noqa: E402

HOST = "mlserve-bench-models"
TRANSFERRED = re.compile(r"Total transferred file size: ([\d,.]+) bytes")


def add_version(model, version, mb):
    """Version `version` of the half_plus fixture, with `mb` MB of random bytes in assets/ (the server reads none)."""
    target = os.path.join(model, str(version))
    shutil.copytree(os.path.join(REPO, "tests", "fixtures", "models", "half_plus", "1"), target)
    os.makedirs(os.path.join(target, "assets"))
    with open(os.path.join(target, "assets", "vocabulary.bin"), "wb") as f:
        for _ in range(mb):
            f.write(os.urandom(1024 * 1024))
    return target


def build_repository(root, versions, mb):
    model = os.path.join(root, "bench")
    for version in range(1, versions + 1):
        add_version(model, version, mb)
    return model


def plain_rsync(source):
    """Seconds of `rsync -a` of `source` to a fresh directory on the host, as synchronize reaches it."""
    subprocess.run(["docker", "exec", HOST, "rm", "-rf", "/root/plain-rsync"], check=True)
    started = time.monotonic()
    subprocess.run(["rsync", "-a", "--blocking-io", "--rsh", "docker exec -i", source + "/",
                    "%s:/root/plain-rsync/" % HOST], check=True)
    subprocess.run(["docker", "exec", HOST, "sync"], check=True)
    return time.monotonic() - started


def run_role(inventory, vars_file):
    elapsed, report = timed_playbook(["-i", inventory, "-e", "@" + vars_file, "benchmarks/models_sync.yml"])
    transferred = 0
    for play in report["plays"]:
        for task in play["tasks"]:
            for result in task["hosts"].values():
                for item in result.get("results", [result]):
                    for line in item.get("stdout_lines", []) if isinstance(item, dict) else []:
                        m = TRANSFERRED.search(line)
                        if m:
                            transferred += int(m.group(1).replace(",", "").replace(".", ""))
    changed = report["stats"]["bench"]["changed"] if "bench" in report["stats"] else None
    return elapsed, transferred, changed, slowest_tasks(report)


def slowest_tasks(report, count=4):
    """The `count` longest tasks of a run, as "seconds name" lines: where a run's time goes."""
    return ["%6.1f s  %s" % (seconds, name) for name, seconds in task_seconds(report).most_common(count)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=4)
    parser.add_argument("--mb-per-version", type=int, default=10)
    parser.add_argument("--big-mb", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="mlserve-bench-")
    try:
        model = build_repository(work, args.versions, args.mb_per_version)
        inventory = os.path.join(work, "hosts.yml")
        with open(inventory, "w") as f:
            f.write("all:\n  children:\n    tfserving:\n      hosts:\n        bench:\n"
                    "          ansible_connection: community.docker.docker\n"
                    "          ansible_host: %s\n"
                    # No gateway here, and no serving port to filter: only the models role runs.
                    "          firewall_enabled: false\n" % HOST)
        vars_file = os.path.join(work, "vars.json")
        with open(vars_file, "w") as f:
            json.dump({"tfserving_models": [{"name": "bench", "source": model,
                                             "versions": list(range(1, args.versions + 1))}]}, f)
        lab_host(HOST, "started")
        size = args.versions * args.mb_per_version
        print("repository: %d versions, %d MB" % (args.versions, size))
        first = run_role(inventory, vars_file)
        second = run_role(inventory, vars_file)
        print("%-14s %10s %16s %8s" % ("run", "seconds", "bytes copied", "changed"))
        for name, (elapsed, transferred, changed, _) in (("first sync", first), ("unchanged", second)):
            print("%-14s %10.1f %16d %8s" % (name, elapsed, transferred, changed))
        print("unchanged/first time ratio: %.2f" % (second[0] / first[0]))
        if second[1] != 0 or second[2] != 0:
            sys.exit("the unchanged second sync copied %d bytes and changed %s tasks" % (second[1], second[2]))
        big = args.versions + 1
        source = add_version(model, big, args.big_mb)
        with open(vars_file, "w") as f:
            json.dump({"tfserving_models": [{"name": "bench", "source": model, "versions": list(range(1, big + 1))}]}, f)
        # Both copies start from the page cache: read the bytes once first.
        with open(os.path.join(source, "assets", "vocabulary.bin"), "rb") as f:
            while f.read(1 << 24):
                pass
        # Rounds alternate the role and rsync, so that both see the same machine; the ratio is the median's.
        copy = os.path.join(role_defaults()["tfserving_models_root"], "bench")
        ratios = []
        for n in range(1, args.rounds + 1):
            subprocess.run(["docker", "exec", HOST, "rm", "-rf", "%s/%d" % (copy, big),
                            "%s/.manifest-%d.json" % (copy, big)], check=True)
            role, transferred, _, slowest = run_role(inventory, vars_file)
            subprocess.run(["docker", "exec", HOST, "sync"], check=True)
            plain = plain_rsync(source)
            ratios.append(plain / role)
            print("round %d, version %d, %d MB: the role's run that copies it %.1f s (%d bytes), plain rsync %.1f s, "
                  "ratio %.2f" % (n, big, args.big_mb, role, transferred, plain, ratios[-1]))
            print("  the role's longest tasks:\n    " + "\n    ".join(slowest))
        print("role throughput / rsync throughput, median of %d rounds: %.2f (issue 19: at least 0.70)"
              % (len(ratios), statistics.median(ratios)))
    finally:
        lab_host(HOST, "absent")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
