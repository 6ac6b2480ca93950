#!/usr/bin/env python3
"""Time the models role's sync: a first copy, then an unchanged second run.

    .venv/bin/python benchmarks/models_sync.py [--versions 4] [--mb-per-version 10]

Builds a model repository from the half_plus fixture with a few MB of assets
per version, creates one lab host (lab/tasks/host.yml), runs the models role
twice and prints, for each run, the wall time, the bytes rsync transferred
and the number of changed tasks. The second run must transfer 0 bytes and
change nothing; the script exits non-zero otherwise. Needs the lab image
(make images).
"""

import argparse
import json
import os
import re
import shutil
import sys
import tempfile

from lab import REPO, lab_host, timed_playbook

HOST = "mlserve-bench-models"
TRANSFERRED = re.compile(r"Total transferred file size: ([\d,.]+) bytes")


def build_repository(root, versions, mb):
    model = os.path.join(root, "bench")
    for version in range(1, versions + 1):
        target = os.path.join(model, str(version))
        shutil.copytree(os.path.join(REPO, "tests", "fixtures", "models", "half_plus", "1"), target)
        os.makedirs(os.path.join(target, "assets"))
        with open(os.path.join(target, "assets", "vocabulary.bin"), "wb") as f:
            f.write(os.urandom(mb * 1024 * 1024))
    return model


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
    return elapsed, transferred, changed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=4)
    parser.add_argument("--mb-per-version", type=int, default=10)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="mlserve-bench-")
    try:
        model = build_repository(work, args.versions, args.mb_per_version)
        inventory = os.path.join(work, "hosts.yml")
        with open(inventory, "w") as f:
            f.write("all:\n  children:\n    tfserving:\n      hosts:\n        bench:\n"
                    "          ansible_connection: community.docker.docker\n"
                    "          ansible_host: %s\n" % HOST)
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
        for name, (elapsed, transferred, changed) in (("first sync", first), ("unchanged", second)):
            print("%-14s %10.1f %16d %8s" % (name, elapsed, transferred, changed))
        print("unchanged/first time ratio: %.2f" % (second[0] / first[0]))
        if second[1] != 0 or second[2] != 0:
            sys.exit("the unchanged second sync copied %d bytes and changed %s tasks" % (second[1], second[2]))
    finally:
        lab_host(HOST, "absent")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
