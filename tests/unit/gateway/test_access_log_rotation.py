"""The gateway's access log rotated under load: the real nginx, logrotate and mtail, the role's rule and script.

logrotate runs the role's rendered rule (templates/logrotate.j2) several
times while requests flow; its postrotate is the role's handoff script
(files/access-log-handoff). mtail, with the role's program, follows the log
under the name the script moves. Every request sent must be counted once,
and be in the log files.
"""

import gzip
import http.client
import os
import shutil
import signal
import sys
import subprocess
import threading
import time
import urllib.request

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ..ports import free_port
from .test_mtail_program import FORMAT, PROGRAM, ROLE

ROTATIONS = 15
# Rotations this close together lose 30 to 45 % of the lines for mtail when
# it follows nginx's own name of the log, as Debian's nginx rule rotates it.
GAP = 0.1
THREADS = 4
# Bounds the load whatever the machine's speed.
MAX_REQUESTS = 200000
MAX_SECONDS = 60


def render_rule(tmp_path, log, followed, pid_file, error_log=None):
    """The role's rule; `error_log`: the error log the plan says it rotates too (gateway.log_rotation)."""
    variables = {"ansible_managed": "test", "gateway_access_log": str(log),
                 "_gateway_plan": {"rotate": {"error_log": error_log and str(error_log)}},
                 "_gateway_access_log_followed": str(followed), "_gateway_nginx_pid_file": str(pid_file),
                 "_gateway_handoff": os.path.join(ROLE, "files", "access-log-handoff"),
                 "gateway_access_log_rotate_period": "daily", "gateway_access_log_rotate_size": "100M",
                 # More than the rotations: every rotated file is kept, to count its lines.
                 "gateway_access_log_rotate_keep": ROTATIONS + 5, "gateway_reload_timeout": 10}
    with open(os.path.join(ROLE, "templates", "logrotate.j2")) as f:
        text = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(f.read()))
    rule = tmp_path / "logrotate.conf"
    rule.write_text(text)
    return rule


def nginx_conf(tmp_path, log, port):
    """nginx answering every request itself, logging it in the role's tfserving_json format."""
    variables = "".join("    map $uri $%s { default %s; }\n" % (name, value) for name, value in (
        ("tfs_model", "half_plus"), ("tfs_log_version", "1"), ("tfs_label", "stable"), ("tfs_status", "$status")))
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        # Workers reopen the log themselves: as root, since the test's directory is root's alone.
        "user root;\npid %s;\nerror_log %s;\nworker_processes 2;\nevents { worker_connections 256; }\n"
        "http {\n    log_format tfserving_json escape=json '%s';\n%s"
        "    server {\n        listen 127.0.0.1:%d;\n        access_log %s tfserving_json;\n"
        "        location / { return 200 'ok'; }\n    }\n}\n"
        % (tmp_path / "nginx.pid", tmp_path / "error.log", FORMAT, variables, port, log))
    return conf


def wait_for(check, what, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("waited %ds for %s" % (seconds, what))


def counted(metrics_port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % metrics_port, timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("tfserving_gateway_requests_total{")))


def lines_on_disk(directory, log):
    total = 0
    for name in os.listdir(directory):
        if name.startswith(log.name) and not name.endswith(".mtail"):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(os.path.join(directory, name), "rb") as f:
                total += sum(1 for _ in f)
    return total


@pytest.fixture
def gateway(tmp_path):
    for command in ("nginx", "mtail", "logrotate"):
        assert shutil.which(command), "%s (Debian package) is needed for the rotation test" % command
    log = tmp_path / "tfserving-access.json"
    followed = tmp_path / "tfserving-access.json.mtail"
    port, metrics_port = free_port(), free_port()
    conf = nginx_conf(tmp_path, log, port)
    subprocess.run(["nginx", "-c", str(conf), "-p", str(tmp_path)], check=True, timeout=30)
    pid = int(wait_for(lambda: (tmp_path / "nginx.pid").exists() and (tmp_path / "nginx.pid").read_text().strip(),
                       "nginx's pid file"))
    programs = tmp_path / "progs"
    programs.mkdir()
    shutil.copy(PROGRAM, programs)
    mtail = None
    try:
        # What the link unit does before mtail starts.
        subprocess.run([os.path.join(ROLE, "files", "access-log-handoff"), "--link", str(log), str(followed)],
                       check=True, timeout=30)
        mtail = subprocess.Popen(["mtail", "--progs", str(programs), "--logs", str(followed), "--logtostderr",
                                  "--emit_prog_label=false", "--address", "127.0.0.1", "--port", str(metrics_port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: counted(metrics_port) is not None, "mtail's metrics")
        yield {"tmp": tmp_path, "log": log, "port": port, "metrics_port": metrics_port, "pid": pid,
               "rule": render_rule(tmp_path, log, followed, tmp_path / "nginx.pid")}
    finally:
        if mtail:
            mtail.kill()
            mtail.wait(timeout=30)
        os.kill(pid, signal.SIGQUIT)


def send(port, stop, sent, failures):
    """Requests on one keep-alive connection until `stop`, counting the answered ones."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    n = 0
    try:
        while not stop.is_set() and sum(sent) + n < MAX_REQUESTS:
            connection.request("POST", "/v1/models/half_plus/versions/1:predict", body=b"{}")
            answer = connection.getresponse()
            answer.read()
            if answer.status == 200:
                n += 1
            else:
                failures.append(answer.status)
    finally:
        connection.close()
        sent.append(n)


def test_every_request_is_counted_across_rotations_under_load(gateway):
    stop, sent, failures = threading.Event(), [], []
    threads = [threading.Thread(target=send, args=(gateway["port"], stop, sent, failures)) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    rotated = []
    try:
        for _ in range(ROTATIONS):
            time.sleep(GAP)
            run = subprocess.run(["logrotate", "--force", "--state", str(gateway["tmp"] / "logrotate.state"),
                                  str(gateway["rule"])], capture_output=True, text=True, timeout=60)
            assert run.returncode == 0, run.stderr
            # The load was still on when this rotation and its handoff ended.
            rotated.append(all(thread.is_alive() for thread in threads))
    finally:
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join(timeout=MAX_SECONDS)
    assert time.monotonic() - started < MAX_SECONDS + 30
    assert not failures
    assert rotated == [True] * ROTATIONS
    total = sum(sent)
    assert total > 1000
    # Every rotation made a file: the newest plain, the others compressed.
    names = sorted(os.listdir(gateway["tmp"]))
    assert "tfserving-access.json.1" in names
    assert len([n for n in names if n.startswith("tfserving-access.json.") and n.endswith(".gz")]) == ROTATIONS - 1
    assert lines_on_disk(gateway["tmp"], gateway["log"]) == total
    # mtail catches up, then holds exactly the number sent: no line lost, none counted twice.
    wait_for(lambda: counted(gateway["metrics_port"]) >= total, "mtail to count %d requests" % total)
    time.sleep(1)
    assert counted(gateway["metrics_port"]) == total
    # nginx reopened its log on USR1: the same master all along.
    assert int((gateway["tmp"] / "nginx.pid").read_text()) == gateway["pid"]


def test_an_error_log_outside_debians_rule_rotates_and_nginx_reopens_it(tmp_path):
    log, followed, error_log = tmp_path / "tfserving-access.json", tmp_path / "access.mtail", tmp_path / "error.log"
    conf = nginx_conf(tmp_path, log, free_port())
    subprocess.run(["nginx", "-c", str(conf), "-p", str(tmp_path)], check=True, timeout=30)
    pid = int(wait_for(lambda: (tmp_path / "nginx.pid").exists() and (tmp_path / "nginx.pid").read_text().strip(),
                       "nginx's pid file"))
    try:
        subprocess.run([os.path.join(ROLE, "files", "access-log-handoff"), "--link", str(log), str(followed)],
                       check=True, timeout=30)
        with open(str(error_log), "a") as f:
            f.write("an error\n")  # an empty log is not rotated (notifempty)
        old = os.stat(error_log).st_ino
        rule = render_rule(tmp_path, log, followed, tmp_path / "nginx.pid", error_log=error_log)
        run = subprocess.run(["logrotate", "--force", "--state", str(tmp_path / "logrotate.state"), str(rule)],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert os.stat(str(error_log) + ".1").st_ino == old
        new = os.stat(error_log).st_ino

        def holds():
            held = set()
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    held.add(os.stat("/proc/%d/fd/%s" % (pid, fd)).st_ino)
                except OSError:
                    pass  # closed meanwhile
            return held
        # USR1, not a restart: the same master now writes to the new file only.
        wait_for(lambda: new in holds() and old not in holds(), "nginx to reopen its error log")
        assert int((tmp_path / "nginx.pid").read_text()) == pid
    finally:
        os.kill(pid, signal.SIGQUIT)


def test_the_rule_names_only_the_access_log_when_the_plan_rotates_no_error_log(tmp_path):
    rule = render_rule(tmp_path, tmp_path / "access.json", tmp_path / "access.mtail", tmp_path / "nginx.pid")
    assert [line for line in rule.read_text().splitlines() if line.endswith(" {")] == ["%s {" % (tmp_path / "access.json")]


# A stand-in for an nginx process that holds the log: on USR1 it keeps
# writing to the old file for a while (a worker finishing a long request),
# then notes the time and reopens the log, as nginx does.
HOLDER = r"""
import os, signal, sys, time
log, closed_at, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
asked = []
signal.signal(signal.SIGUSR1, lambda *_: asked.append(time.time()))
out = open(log, "ab", buffering=0)
print("ready", flush=True)
while not asked or time.time() < asked[0] + delay:
    out.write(b"old\n")
    time.sleep(0.05)
with open(closed_at, "w") as f:
    f.write(repr(time.time()))
out.close()
out = open(log, "ab", buffering=0)
time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
    log, followed = tmp_path / "access.json", tmp_path / "access.json.mtail"
    started = []

    def start(delay):
        subprocess.run([os.path.join(ROLE, "files", "access-log-handoff"), "--link", str(log), str(followed)],
                       check=True, timeout=30)
        process = subprocess.Popen([sys.executable, "-c", HOLDER, str(log), str(tmp_path / "closed_at"), str(delay)],
                                   stdout=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout.readline() == "ready\n"
        (tmp_path / "pid").write_text("%d\n" % process.pid)
        os.rename(log, str(log) + ".1")
        log.write_text("")
        return log, followed

    yield start
    for process in started:
        process.kill()
        process.wait(timeout=30)


def handoff(log, followed, timeout):
    run = subprocess.run([os.path.join(ROLE, "files", "access-log-handoff"), str(log), str(followed),
                          str(log.parent / "pid"), str(timeout)], capture_output=True, text=True, timeout=60)
    return run, time.time()


def test_mtail_name_moves_only_once_nginx_has_left_the_old_file(holder):
    log, followed = holder(delay=1.5)
    run, ended = handoff(log, followed, timeout=10)
    assert run.returncode == 0, run.stderr
    assert ended >= float((log.parent / "closed_at").read_text())
    assert os.stat(followed).st_ino == os.stat(log).st_ino
    # Every line written after the signal is in the old file, which mtail read to its end before moving on.
    assert (log.parent / "access.json.1").read_text().count("old\n") >= 1.5 / 0.05 - 5


def test_a_handoff_that_waits_too_long_says_so_and_hands_over(holder):
    log, followed = holder(delay=600)
    run, _ = handoff(log, followed, timeout=1)
    assert run.returncode == 1
    assert "access-log-handoff: nginx (%s ) still holds the rotated %s after 1s: mtail may miss lines" % (
        (log.parent / "pid").read_text().strip(), log) in run.stderr
    assert os.stat(followed).st_ino == os.stat(log).st_ino


def test_linking_again_leaves_the_two_names_only(tmp_path):
    log, followed = tmp_path / "access.json", tmp_path / "access.json.mtail"
    for _ in range(2):  # mtail started, then restarted
        subprocess.run([os.path.join(ROLE, "files", "access-log-handoff"), "--link", str(log), str(followed)],
                       check=True, timeout=30)
    assert sorted(os.listdir(tmp_path)) == ["access.json", "access.json.mtail"]
    assert os.stat(log).st_ino == os.stat(followed).st_ino and os.stat(log).st_nlink == 2
