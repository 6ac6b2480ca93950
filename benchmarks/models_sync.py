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
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
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


def ansible(args, extra_env):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), **extra_env)
    bin_dir = os.path.dirname(sys.executable)
    return subprocess.run([os.path.join(bin_dir, args[0])] + args[1:], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)


def run_role(inventory, vars_file):
    started = time.monotonic()
    proc = ansible(["ansible-playbook", "-i", inventory, "-e", "@" + vars_file, "benchmarks/models_sync.yml"],
                   {"ANSIBLE_STDOUT_CALLBACK": "json"})
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit("the models role failed:\n%s\n%s" % (proc.stdout[-4000:], proc.stderr[-2000:]))
    report = json.loads(proc.stdout)
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
        host = json.dumps({"lab_host_name": HOST, "lab_host_image": "mlserve-lab:debian12", "lab_host_state": "started"})
        for state in ("absent", "started"):
            proc = ansible(["ansible", "localhost", "-m", "ansible.builtin.include_tasks", "-a", "lab/tasks/host.yml",
                            "-e", json.dumps(dict(json.loads(host), lab_host_state=state))], {})
            if proc.returncode != 0:
                sys.exit("could not prepare the lab host:\n%s%s" % (proc.stdout[-2000:], proc.stderr[-2000:]))
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
        ansible(["ansible", "localhost", "-m", "ansible.builtin.include_tasks", "-a", "lab/tasks/host.yml",
                 "-e", json.dumps({"lab_host_name": HOST, "lab_host_image": "mlserve-lab:debian12",
                                   "lab_host_state": "absent"})], {})
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
