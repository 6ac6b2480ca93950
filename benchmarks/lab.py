"""What the benchmarks share: running Ansible from this checkout, and lab hosts.

Imported by the scripts beside it; not a benchmark itself.
"""

import collections
import datetime
import json
import os
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def ansible(args, extra_env=None, timeout=1800):
    """Run an Ansible command-line tool of the virtual environment from the repository root."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), **(extra_env or {}))
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), args[0])] + args[1:], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def timed_playbook(args, extra_env=None):
    """(seconds, the json callback's report) of an ansible-playbook run that must succeed."""
    started = time.monotonic()
    proc = ansible(["ansible-playbook"] + args, dict(extra_env or {}, ANSIBLE_STDOUT_CALLBACK="json"))
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit("ansible-playbook %s failed:\n%s\n%s" % (" ".join(args), proc.stdout[-4000:], proc.stderr[-2000:]))
    return elapsed, json.loads(proc.stdout)


def task_runs(report):
    """Task results per host of an ansible-playbook json report: every task a host entered, skipped ones included."""
    return {host: stats["ok"] + stats["failures"] + stats["skipped"] for host, stats in sorted(report["stats"].items())}


def task_seconds(report):
    """{task name: wall seconds} of an ansible-playbook json report; a name that runs more than once is summed."""
    seconds = collections.Counter()
    for play in report["plays"]:
        for task in play["tasks"]:
            if "end" not in task["task"]["duration"]:
                continue  # a task that ran on no host (a meta task, an empty loop) has no end
            span = [datetime.datetime.strptime(task["task"]["duration"][k], "%Y-%m-%dT%H:%M:%S.%fZ")
                    for k in ("start", "end")]
            seconds[task["task"]["name"]] += (span[1] - span[0]).total_seconds()
    return seconds


def lab_host(name, state, image="mlserve-lab:debian12"):
    """Create (started, after removing any old one) or remove (absent) one lab host."""
    for wanted in (["absent", "started"] if state == "started" else ["absent"]):
        proc = ansible(["ansible", "localhost", "-m", "ansible.builtin.include_tasks", "-a", "lab/tasks/host.yml",
                        "-e", json.dumps({"lab_host_name": name, "lab_host_image": image,
                                          "lab_host_state": wanted})])
        if proc.returncode != 0:
            sys.exit("could not make lab host %s %s:\n%s%s" % (name, wanted, proc.stdout[-2000:], proc.stderr[-2000:]))
