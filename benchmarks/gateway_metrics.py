#!/usr/bin/env python3
"""The throughput the gateway's metrics pipeline costs, and its CPU per request.

    .venv/bin/python benchmarks/gateway_metrics.py [--seconds 8] [--rounds 7] [--connections 8] [--max-cost 5]

Everything on 127.0.0.1, nothing installed or changed on the host. The
gateway runs as in this project: nginx with the role's nginx.conf and
routes.conf rendered for one model (label stable, the unversioned path),
writing its JSON access log in every round, in front of a pool of two TF
Serving test doubles (tests/serving_double) kept alive like the role's
upstreams. The doubles' inference bounds the throughput, as TF Serving's
does in production, rather than a static answer.

wrk sends POST :predict to the gateway, alternating rounds without metrics
(mtail and the exporter stopped) and with them: mtail (the role's program)
tailing the log and prometheus-nginx-exporter reading stub_status, both
scraped every second (5-15 times more often than Prometheus usually does).
Every other round starts with metrics on. Prints each round, the median of
the rounds' with/without throughput ratios and, less noisy, the CPU time
mtail and the exporter used per logged request, and their share of the
machine's busy CPU and of the benchmark's own (gateway, doubles, wrk and
metrics; other load on the machine is not in it). Exits 1 when metrics cost
more than --max-cost percent of the throughput, or when mtail did not count
every request the gateway logged.
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ROLE = os.path.join(REPO, "roles", "gateway")
DOUBLE = os.path.join(REPO, "tests", "serving_double", "model_server_double.py")
MODEL = os.path.join(REPO, "tests", "fixtures", "models", "half_plus")
sys.path.insert(0, os.path.join(REPO, "collections"))

from ansible.parsing.dataloader import DataLoader  # noqa: E402
from ansible.template import Templar  # noqa: E402
import yaml  # noqa: E402

from ansible_collections.mlserve.tfserving.plugins.module_utils import fleet, gateway  # noqa: E402

# The doubles load the newest version of the fixture (latest policy).
VERSION = max(int(v) for v in os.listdir(MODEL) if v.isdigit())
PORTS = {"http": 28180, "status": 28181, "mtail": 28182, "exporter": 28183}
DOUBLES = [(28500, 28501), (28510, 28511)]  # gRPC, REST of each double
LUA = """wrk.method = "POST"
wrk.body = '{"instances": [1.0, 2.0, 5.0]}'
wrk.headers["Content-Type"] = "application/json"
"""
TICK = os.sysconf("SC_CLK_TCK")


def render_gateway(workdir, access_log):
    """The role's nginx.conf and routes.conf for one model on both doubles, as the role renders them."""
    models = fleet.normalize_models([{"name": "half_plus", "source": "/src/half_plus", "versions": [VERSION],
                                      "labels": {"stable": VERSION}, "routes": {"default": "stable"}}])
    backends = [{"host": "double%d" % n, "address": "127.0.0.1",
                 "units": [{"model": "half_plus", "versions": [VERSION], "topology": "shared",
                            "rest_port": rest, "grpc_port": grpc}]}
                for n, (grpc, rest) in enumerate(DOUBLES, 1)]
    routing = gateway.gateway_plan(models, backends, {"grpc_port_base": None})
    with open(os.path.join(ROLE, "defaults", "main.yml")) as f:
        variables = yaml.safe_load(f)
    with open(os.path.join(ROLE, "vars", "main.yml")) as f:
        variables.update(yaml.safe_load(f))
    variables.update(
        ansible_managed="benchmark", _gateway_nginx_version="1.22.1", _gateway_routes_dir="mlserve",
        _gateway_keys_on=False, _gateway_limits_on=False, gateway_listen_address="127.0.0.1",
        gateway_http_port=PORTS["http"], gateway_status_port=PORTS["status"], gateway_access_log=access_log,
        gateway_error_log=os.path.join(workdir, "error.log"),
        _gateway_plan=dict(routing, upstreams=gateway.render_upstreams(routing, {
            "max_fails": variables["gateway_max_fails"], "fail_timeout": variables["gateway_fail_timeout"],
            "upstream_keepalive": variables["gateway_upstream_keepalive"]})))
    templar = Templar(loader=DataLoader(), variables=variables)
    os.makedirs(os.path.join(workdir, "mlserve"), exist_ok=True)
    for name, dest in (("nginx.conf.j2", "nginx.conf"), ("routes.conf.j2", "mlserve/routes.conf")):
        with open(os.path.join(ROLE, "templates", name)) as f:
            text = f.read()
        try:  # ansible-core 2.19 renders only trusted templates
            from ansible.template import trust_as_template
            text = trust_as_template(text)
        except ImportError:
            pass
        rendered = templar.template(text)
        if name == "nginx.conf.j2":  # this run's own pid file, and the user running it
            rendered = rendered.replace("pid /run/nginx.pid;", "pid %s/nginx.pid;" % workdir)
            rendered = re.sub(r"(?m)^user .*;$", "", rendered)
        with open(os.path.join(workdir, dest), "w") as f:
            f.write(rendered)
    shutil.copy(os.path.join(ROLE, "files", "tfserving_grpc.js"), os.path.join(workdir, "mlserve"))
    # nginx is started with -p workdir: the modules' relative load_module paths resolve there.
    os.symlink("/usr/lib/nginx/modules", os.path.join(workdir, "modules"))
    return os.path.join(workdir, "nginx.conf")


def wait_for(check, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("%s: not ready after %d s" % (what, timeout))


def port_open(port):
    socket.create_connection(("127.0.0.1", port), 0.2).close()
    return True


def scrape(url):
    with urllib.request.urlopen(url, timeout=2) as answer:
        return answer.read().decode()


def start_double(workdir, grpc, rest):
    with open(os.path.join(workdir, "double-%d.log" % rest), "wb") as log:
        proc = subprocess.Popen([sys.executable, DOUBLE, "--port=%d" % grpc, "--rest_api_port=%d" % rest,
                                 "--model_name=half_plus", "--model_base_path=%s" % MODEL],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=workdir)

    def available():
        if proc.poll() is not None:
            raise RuntimeError("the double on %d exited with %s" % (rest, proc.returncode))
        status = json.loads(scrape("http://127.0.0.1:%d/v1/models/half_plus" % rest))
        return any(s["state"] == "AVAILABLE" for s in status["model_version_status"])
    return proc, available


def nginx(conf, workdir):
    run = subprocess.run(["nginx", "-p", workdir, "-c", conf], capture_output=True, text=True, timeout=30)
    if run.returncode != 0:
        raise RuntimeError("nginx refused %s: %s" % (conf, run.stderr))


def stop_nginx(pidfile):
    try:
        with open(pidfile) as f:
            pid = int(f.read())
    except (OSError, ValueError):
        return
    os.kill(pid, 3)  # SIGQUIT: graceful
    for _ in range(100):
        if not os.path.exists("/proc/%d" % pid):
            return
        time.sleep(0.05)


def cpu_seconds(pid):
    """utime + stime of one process (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy():
    """Seconds of CPU the whole machine spent not idle (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK  # minus idle and iowait


def logged_lines(path, offset):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().count(b"\n")


class Metrics:
    """mtail and the nginx exporter, as the role runs them, each scraped every second."""

    def __init__(self, workdir, access_log):
        program = os.path.join(workdir, "tfserving.mtail")
        shutil.copy(os.path.join(ROLE, "files", "tfserving.mtail"), program)
        self.commands = [
            ["mtail", "--progs", program, "--logs", access_log, "--address", "127.0.0.1",
             "--port", str(PORTS["mtail"]), "--emit_prog_label=false", "--logtostderr"],
            ["prometheus-nginx-exporter",
             "-nginx.scrape-uri=http://127.0.0.1:%d/nginx_status" % PORTS["status"],
             "-web.listen-address=127.0.0.1:%d" % PORTS["exporter"]]]
        self.urls = ["http://127.0.0.1:%d/metrics" % PORTS[p] for p in ("mtail", "exporter")]
        self.procs = []
        self.stop = threading.Event()
        self.thread = None
        self.scrapes = 0

    def __enter__(self):
        try:
            self.procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                          for c in self.commands]
            for what in ("mtail", "exporter"):
                wait_for(lambda: port_open(PORTS[what]), what)
            time.sleep(1)  # mtail's tailer starts at the log's end: let it get there before the round
            self.thread = threading.Thread(target=self.loop, daemon=True)
            self.thread.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def loop(self):
        while not self.stop.wait(1.0):
            for url in self.urls:
                scrape(url)
                self.scrapes += 1

    def cpu(self):
        """CPU seconds of mtail and of the exporter."""
        return [cpu_seconds(p.pid) for p in self.procs]

    def counted(self):
        """Every request mtail counted; a few are 499, cut off when wrk stops."""
        return sum(float(v) for v in re.findall(r"(?m)^tfserving_gateway_requests_total\{[^}]*\} (\S+)$",
                                                scrape(self.urls[0])))

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread:
            self.thread.join()
        for proc in self.procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wrk(url, script, seconds, connections):
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", "%ds" % seconds, "-s", script, url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    if re.search(r"Non-2xx or 3xx responses|Socket errors", out):
        raise RuntimeError("wrk saw failed requests on %s:\n%s" % (url, out))
    time.sleep(1.2)  # the requests wrk left in flight are answered and logged before anything else starts
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def children(pid):
    """The processes whose parent is pid (nginx's workers)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % entry) as f:
                if entry.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except OSError:
            pass
    return found


def wrk_cpu():
    """CPU seconds of this script's finished children: the wrk runs."""
    times = os.times()
    return times.children_user + times.children_system


def with_metrics(args, workdir, access_log, url, script, stack):
    """One round with metrics on: throughput, logged and counted requests, CPU seconds."""
    with Metrics(workdir, access_log) as metrics:
        offset = os.path.getsize(access_log)
        before = (metrics.cpu(), machine_busy(), sum(cpu_seconds(p) for p in stack) + wrk_cpu())
        rps = wrk(url, script, args.seconds, args.connections)
        requests = logged_lines(access_log, offset)
        # mtail reads the log's tail; its CPU counts until it has caught up.
        try:
            wait_for(lambda: metrics.counted() >= requests, "mtail's count", 10)
        except RuntimeError:
            raise RuntimeError("mtail counted %d of the %d requests logged" % (metrics.counted(), requests))
        mtail, exporter = [after - first for after, first in zip(metrics.cpu(), before[0])]
        stack_cpu = sum(cpu_seconds(p) for p in stack) + wrk_cpu() - before[2] + mtail + exporter
        return {"rps": rps, "requests": requests, "counted": metrics.counted(), "scrapes": metrics.scrapes,
                "cpu": mtail + exporter, "mtail": mtail, "busy": machine_busy() - before[1], "stack": stack_cpu}


def measure(args, workdir, access_log, stack):
    """Rounds of both conditions; returns each round's throughputs and the with-metrics figures.

    `stack`: pids of the gateway and the doubles, whose CPU (with wrk's and
    the metrics') is the benchmark's own, apart from other load on the machine.
    """
    url = "http://127.0.0.1:%d/v1/models/half_plus:predict" % PORTS["http"]
    script = os.path.join(workdir, "predict.lua")
    with open(script, "w") as f:
        f.write(LUA)
    wrk(url, script, 2, args.connections)  # warm the doubles and the upstream connections
    rounds = []
    for n in range(args.rounds):
        # Every other round starts with metrics on, so a drift of the machine weighs on both conditions.
        for condition in ("without", "with") if n % 2 == 0 else ("with", "without"):
            if condition == "without":
                without = wrk(url, script, args.seconds, args.connections)
            else:
                figures = with_metrics(args, workdir, access_log, url, script, stack)
        figures["without"] = without
        rounds.append(figures)
        print("round %d: without %7.1f req/s, with %7.1f req/s, ratio %.3f | %d logged, %d counted, %d scrapes | "
              "mtail+exporter %.2f s CPU: %.1f us/request, %.1f %% of the machine's busy CPU, %.1f %% of the "
              "benchmark's" % (n + 1, without, figures["rps"], figures["rps"] / without, figures["requests"],
                               figures["counted"], figures["scrapes"], figures["cpu"],
                               figures["cpu"] * 1e6 / figures["requests"], 100 * figures["cpu"] / figures["busy"],
                               100 * figures["cpu"] / figures["stack"]), flush=True)
    return rounds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--max-cost", type=float, default=5.0, help="percent of throughput")
    args = parser.parse_args()
    # About 5 s of setup, starting and catching up per round besides wrk's time.
    if not 1 <= args.rounds or args.rounds * (2 * args.seconds + 5) > 180:
        parser.error("keep --rounds * (2 * --seconds + 5) within 3 minutes")
    for tool in ("nginx", "wrk", "mtail", "prometheus-nginx-exporter"):
        if not shutil.which(tool):
            sys.exit("%s is needed (Debian package)" % tool)

    workdir = tempfile.mkdtemp(prefix="gateway-metrics-")
    access_log = os.path.join(workdir, "access.json")
    doubles = []
    try:
        checks = []
        for grpc, rest in DOUBLES:
            proc, available = start_double(workdir, grpc, rest)
            doubles.append(proc)
            checks.append((available, "the double on %d" % rest))
        for check, what in checks:
            wait_for(check, what)
        nginx(render_gateway(workdir, access_log), workdir)
        wait_for(lambda: port_open(PORTS["http"]), "the gateway")
        with open(os.path.join(workdir, "nginx.pid")) as f:
            master = int(f.read())
        rounds = measure(args, workdir, access_log, [master] + children(master) + [p.pid for p in doubles])
    except RuntimeError as e:
        sys.exit(str(e))
    finally:
        stop_nginx(os.path.join(workdir, "nginx.pid"))
        for proc in doubles:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)

    totals = dict((key, sum(r[key] for r in rounds))
                  for key in ("requests", "counted", "cpu", "mtail", "busy", "stack"))
    ratio = statistics.median(r["rps"] / r["without"] for r in rounds)
    print()
    print("median without metrics: %8.1f req/s" % statistics.median(r["without"] for r in rounds))
    print("median with metrics   : %8.1f req/s" % statistics.median(r["rps"] for r in rounds))
    print("median with/without ratio of the rounds: %.3f (cost %.1f %%, limit %.1f %%)"
          % (ratio, (1 - ratio) * 100, args.max_cost))
    print("mtail + exporter CPU with metrics on: %.1f us per logged request (mtail %.1f); %.1f %% of the machine's "
          "busy CPU, %.1f %% of the benchmark's (gateway, doubles, wrk, metrics)"
          % (totals["cpu"] * 1e6 / totals["requests"], totals["mtail"] * 1e6 / totals["requests"],
             100 * totals["cpu"] / totals["busy"], 100 * totals["cpu"] / totals["stack"]))
    print("mtail counted %d of the %d requests the gateway logged with metrics on"
          % (totals["counted"], totals["requests"]))
    failed = False
    if totals["counted"] != totals["requests"]:
        print("FAIL: mtail's count differs from the requests the gateway logged")
        failed = True
    if (1 - ratio) * 100 > args.max_cost:
        print("FAIL: the metrics pipeline costs more than %.1f %% of the gateway's throughput" % args.max_cost)
        failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
