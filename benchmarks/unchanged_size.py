#!/usr/bin/env python3
"""What model size costs an unchanged site.yml on the lab: quick (manifests and cache) against full verification.

    .venv/bin/python benchmarks/unchanged_size.py [--gib 4] [--rounds 3]

Needs the lab as `make demo` leaves it. Declares one extra model beside the
lab's, version 1 of the half_plus fixture with an assets/ file (which the
server does not read, so the test double's load stays fast): small (1 MiB),
then of GIB GiB, then small again, so that the machine's drift over the run
cancels out of the comparison. With each size it converges (and waits until
the copies are written back to disk), then times ROUNDS unchanged site.yml
runs with models_verify quick (the default) and one with models_verify full
(every file hashed on the controller and both serving hosts, as every run did
before the manifests). A phase's figure is its fastest run: the noise of
these machines only ever adds time. Prints the seconds each GiB adds, to the
whole run and to the tasks that read the versions (the controller's plan,
the hosts' reads of their copies), and the tasks that grew most: quick must
stay within 0.1 s per GiB. Every timed run must change nothing. Afterwards
the extra model is removed from the lab hosts and the bytes from this
machine.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

import yaml

from lab import REPO, ansible, task_seconds, timed_playbook

# Sorts after the lab's models: no other unit's port moves when it comes or goes.
NAME = "zz_size_bench"
MIB = 1024 * 1024


# The tasks whose work grows with the bytes of the versions: the
# controller's read of every source, each host's read of its copies.
READS = ("Check the declaration, the hosts' variables and every model source, and derive every host's share",
         "Make each model's directory and read the versions already on the host")


def changed(report):
    return sum(host["changed"] for host in report["stats"].values())


def read_seconds(tasks):
    """Seconds of the READS tasks among a run's {task name: seconds} (a role's task is named "<role> : <name>")."""
    return sum(seconds for name, seconds in tasks.items() if name.split(" : ")[-1] in READS)


def write_assets(path, size):
    """`size` bytes of random data (rsync cannot compress them away), written in 64 MiB pieces."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            piece = min(left, 64 * MIB)
            f.write(os.urandom(piece))
            left -= piece


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with open(os.path.join(REPO, "inventories", "lab", "group_vars", "all", "models.yml")) as f:
        lab_models = yaml.safe_load(f)["tfserving_models"]
    work = tempfile.mkdtemp(prefix="mlserve-bench-size-", dir="/var/tmp")
    source = os.path.join(work, NAME)
    shutil.copytree(os.path.join(REPO, "tests", "fixtures", "models", "half_plus", "1"), os.path.join(source, "1"))
    assets = os.path.join(source, "1", "assets", "padding.bin")
    declared = os.path.join(work, "declared.json")
    with open(declared, "w") as f:
        json.dump({"tfserving_models": lab_models + [{"name": NAME, "source": source, "versions": [1]}]}, f)
    site = ["site.yml", "-i", "inventories/lab", "-e", "@" + declared]

    def unchanged(verify):
        seconds, report = timed_playbook(site + ["-e", "models_verify=" + verify])
        if changed(report):
            sys.exit("the unchanged site.yml (models_verify=%s) changed %d tasks" % (verify, changed(report)))
        return seconds, task_seconds(report)

    phases = []
    try:
        for label, size in (("small", MIB), ("big", args.gib * 1024 * MIB), ("small again", MIB)):
            write_assets(assets, size)
            converge, _ = timed_playbook(site)
            # The copies' pages are written back now, not during the timed runs.
            os.sync()
            quick = min((unchanged("quick") for _ in range(args.rounds)), key=lambda run: run[0])
            full = unchanged("full")
            phases.append((quick, full))
            print("%s (%d MiB of assets): converge %.1f s; unchanged, run (reads): quick %.1f s (%.2f s, fastest of %d),"
                  " full %.1f s (%.2f s)" % (label, size // MIB, converge, quick[0], read_seconds(quick[1]),
                                             args.rounds, full[0], read_seconds(full[1])))
        small, big, again = phases
        for index, verify in enumerate(("quick", "full")):
            def per_gib(figure):
                return (figure(big[index]) - (figure(small[index]) + figure(again[index])) / 2) / args.gib
            print("models_verify %s: %.2f s per GiB for the run, %.2f s per GiB for its reads"
                  % (verify, per_gib(lambda run: run[0]), per_gib(lambda run: read_seconds(run[1]))))
            grown = {name: seconds - (small[index][1][name] + again[index][1][name]) / 2
                     for name, seconds in big[index][1].items()}
            print("  grew most: " + "; ".join("%s %+.2f s" % (name.split(" : ")[-1][:60], seconds) for name, seconds
                                            in sorted(grown.items(), key=lambda item: -item[1])[:3]))
        per_gib = (big[0][0] - (small[0][0] + again[0][0]) / 2) / args.gib
        if per_gib > 0.1:
            sys.exit("an unchanged run costs %.2f s per GiB with models_verify quick (at most 0.1)" % per_gib)
    finally:
        timed_playbook(["site.yml", "-i", "inventories/lab"])
        ansible(["ansible", "tfserving", "-i", "inventories/lab", "-b", "-m", "ansible.builtin.shell",
                 "-a", "rm -rf /srv/tfserving/models/%s" % NAME])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
