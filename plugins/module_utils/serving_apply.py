# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine of the serving_apply module: one host's serving units in one pass.

Per unit: models.config (with the label staging TF Serving needs), the
container, and the wait until the server serves what was declared. Waits run
concurrently, under one deadline for the whole host.

Standard library only at import time; the Docker SDK is imported when a
client is made, so these functions can be tested with a fake client.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import hashlib
import json
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from http.client import HTTPException
from urllib.error import HTTPError
from urllib.request import ProxyHandler, build_opener

from ansible_collections.mlserve.tfserving.plugins.module_utils import batching, fleet, gpus, serving_host
from ansible_collections.mlserve.tfserving.plugins.module_utils.hardening import HARDENING

DOCKER_SOCKET = "/var/run/docker.sock"
SERVER_BINARY = "/usr/bin/tensorflow_model_server"
CONFIG_FILE = "models.config"
MONITORING_FILE = "monitoring.config"
SPEC_LABEL = "mlserve.tfserving.spec"
HTTP_TIMEOUT = 3
POLL_SECONDS = 0.5
START_FAILURE_POLL_SECONDS = 3
NANOSECONDS = 1000000000
NO_NEW_PRIVILEGES = "no-new-privileges:true"

# 127.0.0.1 must never go through an http_proxy from the environment.
_OPENER = build_opener(ProxyHandler({}))
_POLL_FLAG = re.compile(r"^--model_config_file_poll_wait_seconds=(\d+)$")


class ApplyError(Exception):
    """The module's failure: `msg` names the host, `result` is what had been done by then."""

    def __init__(self, msg, result):
        super(ApplyError, self).__init__(msg)
        self.msg = msg
        self.result = result


class _Failed(Exception):
    """Problems found on the way, each naming its container; apply() adds the host."""

    def __init__(self, *problems):
        super(_Failed, self).__init__("; ".join(problems))
        self.problems = problems


def docker_client(host, check_mode):
    """The Docker SDK's client; None in check mode on a host the docker role has not prepared yet."""
    try:
        import docker
    except ImportError:
        missing = "the Docker SDK for Python is not installed (Debian package python3-docker)"
    else:
        if os.path.exists(DOCKER_SOCKET):
            try:
                # "auto": newer engines refuse the SDK's default API version (1.41 in python3-docker 5.0).
                return docker.from_env(version="auto")
            except docker.errors.DockerException as e:
                raise ApplyError("%s: cannot talk to the Docker engine: %s" % (host, e), {})
        missing = "the Docker engine is not installed or not running (%s is missing)" % DOCKER_SOCKET
    if check_mode:
        return None
    raise ApplyError("%s: %s" % (host, missing), {})


# ---------------------------------------------------------------- the server's REST API

def get_json(port, path):
    """The JSON answer of GET 127.0.0.1:port/path, errors included; None when nothing answers."""
    try:
        try:
            response = _OPENER.open("http://127.0.0.1:%d%s" % (port, path), timeout=HTTP_TIMEOUT)
        except HTTPError as e:
            response = e  # TF Serving's errors are JSON as well
        with response:
            body = response.read()
    except (HTTPException, OSError):
        return None
    try:
        return json.loads(body.decode("utf-8"))
    except ValueError:
        return {"error": body.decode("utf-8", "replace")[:200]}


def model_status(unit):
    return get_json(unit["rest_port"], "/v1/models/%s" % unit["model"])


def label_problems(unit, labels):
    """Labels that do not resolve to their version yet.

    The status of /labels/L lists every version, so the label's metadata
    (whose model_spec names the version it resolved to) is the check.
    """
    problems = []
    for label in sorted(labels):
        answer = get_json(unit["rest_port"], "/v1/models/%s/labels/%s/metadata" % (unit["model"], label)) or {}
        served = (answer.get("model_spec") or {}).get("version")
        if served != str(labels[label]):
            problems.append("%s: label %s of %s does not name version %d (the server answers %s; a models.config "
                            "the server rejects keeps the old labels: see docker logs %s)"
                            % (unit["name"], label, unit["model"], labels[label],
                               "version %s" % served if served else answer.get("error") or "nothing", unit["name"]))
    return problems


def _exhausted(versions, status):
    """Whether a wanted version is END with an error: its loads are used up and it will not become AVAILABLE."""
    entries = status.get("model_version_status", []) if isinstance(status, dict) else []
    return any(int(e["version"]) in versions and e.get("state") == "END"
               and (e.get("status") or {}).get("error_code", "OK") != "OK" for e in entries)


def wait_unit(unit, target, deadline, settle_until=0.0, status=None, start_failure=None):
    """Poll until every version of `target` is AVAILABLE and every label resolves.

    Returns (problems, last status): no problems when done. Gives up at
    `deadline`, or early when a wanted version's loads are exhausted, but
    only after `settle_until`: until the server re-reads a new models.config,
    its status still shows the old config's failures. `status` is a first
    answer already in hand. `start_failure()`, asked while the server does
    not answer, names a load that made the server stop at start-up (it
    would fail the same way at each restart), and ends the wait.
    """
    checked = dict(unit, versions=target["versions"])
    asked = 0.0
    while True:
        if status is None:
            status = model_status(unit)
        problems = serving_host.status_problems(checked, status) or label_problems(unit, target["labels"])
        now = time.monotonic()
        if not problems or now + POLL_SECONDS > deadline or (now >= settle_until
                                                               and _exhausted(target["versions"], status)):
            return problems, status
        if status is None and start_failure is not None and now - asked >= START_FAILURE_POLL_SECONDS:
            asked = now
            failure = start_failure()
            if failure:
                # An empty status: the server said nothing, and the failure says why.
                return ["%s: %s" % (unit["name"], failure)], {}
        time.sleep(POLL_SECONDS)
        status = None


def _concurrently(function, items):
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(function, items))


# ---------------------------------------------------------------- models.config

def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def write_text(path, text):
    """Replace the file in one rename, so that the polling server never reads half of it."""
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory)
        os.chmod(directory, 0o755)  # makedirs' mode is subject to the umask
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + CONFIG_FILE + ".")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


_SS_LINE = re.compile(r'^\S+\s+\d+\s+\d+\s+\S*:(\d+)\s+\S+(?:\s+users:\(\("([^"]*)",pid=(\d+))?')


def listening_ports(ss_output):
    """Listening TCP sockets from `ss -Hltnp`, as serving_host.port_use_problems takes them.

    A socket whose process this host cannot see (another container's, in
    another PID namespace, on the same network) is kept with no name:
    community.general.listen_ports_facts drops those, and so would miss them.
    """
    listeners = []
    for line in ss_output.splitlines():
        match = _SS_LINE.match(line.strip())
        if match:
            listeners.append({"port": int(match.group(1)), "name": match.group(2) or "",
                              "pid": int(match.group(3) or 0)})
    return listeners


def port_problems(client, units, ss_output, host):
    """Planned ports held by anything but this collection's running containers (which the run replaces)."""
    managed = [] if client is None else serving_host.managed_ports(
        {"Labels": c.labels, "State": c.status}
        for c in client.containers.list(filters={"label": serving_host.MANAGED_LABEL + "=true"}))
    return serving_host.port_use_problems(units, listening_ports(ss_output), managed, host)


def memory_problem(unit, versions):
    """Whether `versions` of the unit, loaded at once, fit its memory limit by TF Serving's estimate (from the
    sizes of their directories on this host; a version not on the host is not counted)."""
    sizes = {}
    for version in versions:
        total = 0
        for root, _, names in os.walk(os.path.join(unit["host_path"], str(version))):
            total += sum(os.lstat(os.path.join(root, name)).st_size for name in names)
        sizes[version] = total
    return fleet.memory_problem(dict(unit, versions=list(versions)), sizes)


def missing_versions(units):
    """Served versions whose directory is not on the host: the models role has not put them there."""
    return ["%s: version %d of %s is not on the host (%s/%d is missing); sync it first with the models role "
            "(mlserve.tfserving.models), using the same tfserving_models_root"
            % (unit["name"], version, unit["model"], unit["host_path"], version)
            for unit in units for version in unit["versions"]
            if not os.path.isdir(os.path.join(unit["host_path"], str(version)))]


def plan_unit(unit):
    """The unit's models.config and served versions now, and the steps to its declared state."""
    path = os.path.join(unit["config_dir"], CONFIG_FILE)
    current = read_text(path)
    status = model_status(unit)
    step1, step2 = serving_host.stage_labels(unit["labels"], unit["versions"], serving_host.config_labels(current),
                                             None if status is None else serving_host.available_versions(status))
    return {"unit": unit, "path": path, "current": current, "status": status,
            "steps": [step1] if step1 == step2 else [step1, step2]}


def config_poll_seconds(unit):
    """The server's --model_config_file_poll_wait_seconds (the last occurrence wins, as in the server)."""
    seconds = 0
    for arg in unit["command"]:
        match = _POLL_FLAG.match(arg)
        if match:
            seconds = int(match.group(1))
    return seconds


# ---------------------------------------------------------------- the container

def _hardening_spec(hardening):
    """The Docker SDK's arguments for the settings that are on (an off setting adds nothing)."""
    settings = dict(HARDENING, **(hardening or {}))
    spec = {}
    if settings["user"]:
        spec["user"] = settings["user"]
    if settings["read_only"]:
        spec["read_only"] = True
    if settings["tmpfs"]:
        spec["tmpfs"] = dict(settings["tmpfs"])
    if settings["cap_drop"]:
        spec["cap_drop"] = list(settings["cap_drop"])
    if settings["no_new_privileges"]:
        spec["security_opt"] = [NO_NEW_PRIVILEGES]
    if settings["pids_limit"]:
        spec["pids_limit"] = settings["pids_limit"]
    return spec


def hardening_of(spec):
    """The hardening a spec asks for, in the options' terms (for the diff)."""
    return {"user": spec.get("user", ""), "read_only": spec.get("read_only", False), "tmpfs": spec.get("tmpfs", {}),
            "cap_drop": spec.get("cap_drop", []),
            "no_new_privileges": NO_NEW_PRIVILEGES in spec.get("security_opt", []),
            "pids_limit": spec.get("pids_limit", 0)}


def _container_hardening(attrs):
    """What a container runs with, in the options' terms, from docker inspect."""
    config, host = attrs.get("Config") or {}, attrs.get("HostConfig") or {}
    return {"user": config.get("User") or "", "read_only": bool(host.get("ReadonlyRootfs")),
            "tmpfs": host.get("Tmpfs") or {}, "cap_drop": host.get("CapDrop") or [],
            "no_new_privileges": any(o in ("no-new-privileges", NO_NEW_PRIVILEGES)
                                     for o in host.get("SecurityOpt") or []),
            "pids_limit": host.get("PidsLimit") or 0}


def desired_container(unit, restart_policy="unless-stopped", log_options=None, environment=None, hardening=None):
    """Keyword arguments of the Docker SDK's containers.create() for the unit.

    `hardening`: settings of HARDENING (name -> value; a missing one takes
    its default), already checked by hardening_problems.

    Labels carry the port plan (read back by serving_host.managed_ports) and a hash
    of everything else, so that a changed spec is found without comparing
    the engine's own rendering of each setting.
    """
    resources = unit.get("resources") or {}
    labels = {
        serving_host.MANAGED_LABEL: "true",
        "mlserve.tfserving.model": unit["model"],
        "mlserve.tfserving.topology": unit["topology"],
        "mlserve.tfserving.rest_port": str(unit["rest_port"]),
        "mlserve.tfserving.grpc_port": str(unit["grpc_port"]),
    }
    if unit["topology"] == "isolated":
        labels["mlserve.tfserving.version"] = str(unit["versions"][0])
    # The server reads its monitoring config and batching parameters once, at
    # start: a new path or new parameters recreate the container.
    if unit.get("metrics_path"):
        labels["mlserve.tfserving.metrics_path"] = unit["metrics_path"]
    parameters = server_files(unit)[batching.FILE]
    if parameters:
        labels["mlserve.tfserving.batching"] = hashlib.sha256(parameters.encode("utf-8")).hexdigest()[:16]
    spec = {
        "name": unit["name"],
        "image": unit["image"],
        # The official image's entrypoint script runs the server without exec;
        # calling the server directly, under an init, lets signals reach it.
        "entrypoint": [SERVER_BINARY],
        "command": list(unit["command"]),
        "init": True,
        "network_mode": "host",
        "mounts": [
            {"Type": "bind", "Source": unit["host_path"], "Target": unit["container_path"], "ReadOnly": True},
            # The directory, not the file: a replaced file keeps reaching the server.
            {"Type": "bind", "Source": unit["config_dir"], "Target": os.path.dirname(fleet.CONTAINER_CONFIG),
             "ReadOnly": True},
        ],
        "restart_policy": {"Name": restart_policy},
        "log_config": {"type": "json-file", "config": dict((k, str(v)) for k, v in (log_options or {}).items())},
        "environment": dict((k, str(v)) for k, v in (environment or {}).items()),
        "labels": labels,
        # The image has no curl: bash's /dev/tcp asks the REST API for the model's status.
        "healthcheck": {
            "test": ["CMD", "bash", "-c",
                     r"exec 3<>/dev/tcp/127.0.0.1/%d && printf 'GET /v1/models/%s HTTP/1.0\r\n\r\n' >&3 "
                     r"&& grep -q AVAILABLE <&3" % (unit["rest_port"], unit["model"])],
            "interval": 10 * NANOSECONDS,
            "timeout": 5 * NANOSECONDS,
            "retries": 3,
            "start_period": 120 * NANOSECONDS,
        },
    }
    spec.update(_hardening_spec(hardening))
    if resources.get("memory") is not None:
        spec["mem_limit"] = resources["memory"]
    if resources.get("cpus") is not None:
        spec["nano_cpus"] = int(round(float(resources["cpus"]) * NANOSECONDS))
    if unit.get("gpus") is not None:
        spec["device_requests"] = [gpus.device_request(unit["gpus"])]
    labels[SPEC_LABEL] = hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":"))
                                        .encode("utf-8")).hexdigest()
    return spec


def container_action(container, spec, image_id):
    """created, recreated, started or unchanged. `image_id` None: the image is not on the host."""
    if container is None:
        return "created"
    if container.labels.get(SPEC_LABEL) != spec["labels"][SPEC_LABEL]:
        return "recreated"
    if image_id is not None and container.attrs.get("Image") != image_id:
        return "recreated"
    if container.status not in ("running", "restarting"):
        return "started"
    return "unchanged"


def _get_container(client, name):
    from docker.errors import NotFound
    try:
        return client.containers.get(name)
    except NotFound:
        return None


def _image_id(client, reference, cache):
    from docker.errors import NotFound
    if reference not in cache:
        try:
            cache[reference] = client.images.get(reference).id
        except NotFound:
            cache[reference] = None
    return cache[reference]


def _discard(container):
    container.stop()
    container.remove()


def converge_container(client, spec, image_id, before, check_mode):
    """Make the container match `spec` (in check mode, only decide); returns the action."""
    action = container_action(before, spec, image_id)
    if check_mode or action == "unchanged":
        return action
    if action != "started" and image_id is None:
        # Checked before removing anything: the running container stays.
        raise _Failed("container %s: image %s is not on the host; pull or load it first"
                      % (spec["name"], spec["image"]))
    if action == "recreated":
        _discard(before)
    container = before if action == "started" else client.containers.create(**spec)
    container.start()
    return action


def _summary(container):
    if container is None:
        return {}
    return {"image": container.attrs["Config"]["Image"], "image_id": container.attrs["Image"],
            "command": container.attrs["Config"]["Cmd"], "spec": container.labels.get(SPEC_LABEL),
            "hardening": _container_hardening(container.attrs), "status": container.status}


# What TF Serving logs at each failed load of a version (util/retrier.cc), and
# when that stops it at start-up (main.cc: it exits, and a restart fails alike).
_LOAD_ERROR = re.compile(r"Loading servable: \{name: (\S+) version: (\d+)\} failed: (.*)$")
_START_FAILED = "Failed to start server"
# A version the server is still loading, as serving_host.status_problems names it.
_LOADING = re.compile(r"version (\d+) of (\S+) is LOADING")
# Docker's times (a log line's timestamp): RFC 3339 in UTC, up to nanoseconds.
_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z\Z")


def _container_logs(client, name, lines, since):
    """The container and its last `lines` log lines, without Docker's timestamps, of those logged from `since`
    (a UNIX time) on: Docker keeps every run's logs, and a failure logged before this apply
    began (a crash loop since put right) is not this run's."""
    from docker.errors import DockerException
    try:
        container = _get_container(client, name)
        text = container.logs(tail=lines, timestamps=True).decode("utf-8", "replace") if container else ""
    except DockerException as e:
        return None, "container state unknown: %s" % e
    if container is None:
        return None, "the container is gone"
    kept = []
    for line in text.strip().splitlines():
        stamp, _, rest = line.partition(" ")
        at = _instant(stamp)
        if at is None:
            kept.append(line)
        elif at >= since:
            kept.append(rest)
    return container, kept


def _instant(text):
    """One of Docker's RFC 3339 times (a log line's timestamp) as a UNIX time, or None."""
    match = _TIMESTAMP.match(text)
    if not match:
        return None
    return calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")) + float("0." + (match.group(2) or "0"))


def _load_failures(lines):
    """Each failed load the server logged, in order: (model, version, status)."""
    return [(m.group(1), int(m.group(2)), m.group(3)) for m in (_LOAD_ERROR.search(line) for line in lines) if m]


def _load_failure(lines, how=""):
    """The last failed load the server logged: 'version N of M failed to load<how>: STATUS', or None."""
    failures = _load_failures(lines)
    if not failures:
        return None
    model, version, status = failures[-1]
    return "version %d of %s failed to load%s: %s" % (version, model, how, status)


def start_failure(client, name, since):
    """The version whose load stopped the server at start-up, in the server's words; None if there is none.
    `since`: as _container_logs takes it."""
    container, lines = _container_logs(client, name, 50, since)
    if container is None or not any(_START_FAILED in line for line in lines):
        return None
    return _load_failure(lines, ", and the server stopped at start-up") or (
        "the server stopped at start-up: %s" % [line for line in lines if _START_FAILED in line][-1])


def _container_note(client, name, since):
    """For a server that never answered: the container's state, and the load failure that holds its start-up
    back (TF Serving answers nothing until every first load is done, retries included), else its last log lines."""
    container, lines = _container_logs(client, name, 50, since)
    if container is None:
        return " (%s)" % lines
    failure = _load_failure(lines)
    if failure:
        return " (container %s; %s)" % (container.status, failure)
    return " (container %s; last log lines: %s)" % (container.status, " | ".join(lines[-3:]) or "none")


def _retry_notes(client, name, since, problems):
    """The problems of a server that answers, each version still LOADING with the last load failure the
    server logged for it: while TF Serving retries a load, the version's status says nothing of why."""
    loading = [_LOADING.search(problem) for problem in problems]
    if not any(loading):
        return problems
    container, lines = _container_logs(client, name, 50, since)
    failed = dict(((model, version), status) for model, version, status in
                  (_load_failures(lines) if container is not None else []))
    noted = []
    for problem, match in zip(problems, loading):
        status = failed.get((match.group(2), int(match.group(1)))) if match else None
        noted.append(problem + " (its load failed, and the server retries it: %s)" % status if status else problem)
    return noted


# ---------------------------------------------------------------- the whole host

def apply(client, check_mode=False, units=None, host=None, restart_policy="unless-stopped", log_options=None,
          environment=None, hardening=None, remove_undeclared=True, wait_timeout=300):
    """Apply one host's units; returns the module's result or raises ApplyError.

    `client` None means no Docker on the host yet, which only check mode
    accepts: every unit is then reported as created.
    """
    began = time.time()  # the engine stamps log lines with this host's clock
    units = units or []
    plans = _concurrently(plan_unit, units)
    for plan in plans:
        plan["spec"] = desired_container(plan["unit"], restart_policy, log_options, environment, hardening)
    result = {"changed": False, "removed": [], "diff": [], "units": dict(
        (p["unit"]["name"], {"container": None, "config_changed": False, "steps": len(p["steps"]),
                             "versions": p["steps"][-1]["versions"], "labels": p["steps"][-1]["labels"]})
        for p in plans)}
    try:
        # Before anything changes: the first step of a label move serves the old and the new versions at once.
        memory = [p for p in (memory_problem(plan["unit"], plan["steps"][0]["versions"]) for plan in plans) if p]
        if memory:
            raise _Failed(*memory)
        if client is not None:
            no_gpus = gpus.engine_problem(units, _engine_runtimes(client, units))
            if no_gpus:
                raise _Failed(no_gpus)
        # Configs first: a (re)created container starts with its config, and its mount needs the directory.
        for plan in plans:
            _write_server_files(plan, check_mode)
            _write_step(plan, 0, result, check_mode)
        if client is None:
            for entry in result["units"].values():
                entry["container"] = "created"
        else:
            _converge_containers(client, plans, result, check_mode, remove_undeclared)
        if check_mode:
            for plan in plans:
                if len(plan["steps"]) == 2:
                    _write_step(plan, 1, result, check_mode)
        else:
            _wait_steps(client, plans, result, time.monotonic() + wait_timeout, began)
    except _Failed as e:
        raise ApplyError("; ".join("%s: %s" % (host, p) for p in e.problems), _finish(result, plans))
    except OSError as e:
        raise ApplyError("%s: %s" % (host, e), _finish(result, plans))
    return _finish(result, plans)


def server_files(unit):
    """The files beside models.config that the unit's server reads at start: name -> text, or None for none."""
    return {MONITORING_FILE: serving_host.monitoring_config(unit) if unit.get("metrics_path") else None,
            batching.FILE: batching.render(unit["batching"]) if unit.get("batching") else None}


def _engine_runtimes(client, units):
    """The engine's runtimes (docker info), asked only when a unit wants GPUs."""
    from docker.errors import DockerException
    if not any(u.get("gpus") is not None for u in units):
        return {}
    try:
        return client.info().get("Runtimes") or {}
    except DockerException as e:
        raise _Failed("asking the Docker engine for its runtimes: %s" % e)


def _write_server_files(plan, check_mode):
    """Write (or remove) the unit's server_files; each change is in the diff, and the spec label restarts it."""
    unit = plan["unit"]
    for name, text in sorted(server_files(unit).items()):
        path = os.path.join(unit["config_dir"], name)
        current = read_text(path)
        if current == text:
            continue
        if not check_mode:
            if text is None:
                os.unlink(path)
            else:
                write_text(path, text)
        plan.setdefault("file_diffs", []).append({"before_header": path, "before": current or "",
                                                  "after_header": path if text is not None else path + " (removed)",
                                                  "after": text or ""})


def _write_step(plan, index, result, check_mode):
    unit = plan["unit"]
    text = serving_host.models_config(unit, plan["steps"][index]["labels"], plan["steps"][index]["versions"])
    if text != plan.get("written", plan["current"]):
        if not check_mode:
            write_text(plan["path"], text)
        plan["written"] = text
        plan["settle_until"] = time.monotonic() + config_poll_seconds(unit) + 1
        result["units"][unit["name"]]["config_changed"] = True


def _converge_containers(client, plans, result, check_mode, remove_undeclared):
    from docker.errors import DockerException
    names = set(result["units"])
    images = {}
    where = "listing this collection's containers"
    try:
        if remove_undeclared:
            # Before any unit starts: an undeclared container may hold a port that a unit is about to take.
            for container in client.containers.list(all=True, filters={"label": serving_host.MANAGED_LABEL + "=true"}):
                if container.name not in names:
                    where = "container %s" % container.name
                    result["diff"].append({"before_header": where, "before": _summary(container),
                                           "after_header": where + " (removed)", "after": {}})
                    if not check_mode:
                        _discard(container)
                    result["removed"].append(container.name)
        for plan in plans:
            spec = plan["spec"]
            where = "container %s" % spec["name"]
            plan["image_id"] = _image_id(client, spec["image"], images)
            plan["before"] = _get_container(client, spec["name"])
            result["units"][spec["name"]]["container"] = converge_container(
                client, spec, plan["image_id"], plan["before"], check_mode)
    except DockerException as e:
        raise _Failed("%s: %s" % (where, e))


def _wait_steps(client, plans, result, deadline, began):
    """Wait for every unit's step 1 at once, then write step 2 where labels had to wait, and wait for that.
    `began`: when the apply began (a UNIX time); the containers' logs count from then on."""
    problems = []
    failed = set()

    def wait(job):
        plan, index = job
        name = plan["unit"]["name"]
        # The status read while planning still describes an unchanged container's server.
        first = plan["status"] if index == 0 and result["units"][name]["container"] == "unchanged" else None
        found, status = wait_unit(plan["unit"], plan["steps"][index], deadline, plan.get("settle_until", 0.0), first,
                                  lambda: start_failure(client, name, began))
        if found and status is None:
            found[-1] += _container_note(client, name, began)
        elif found:
            found = _retry_notes(client, name, began, found)
        return found

    for index in (0, 1):
        todo = [p for p in plans if len(p["steps"]) > index and p["unit"]["name"] not in failed]
        if index:
            for plan in todo:
                _write_step(plan, index, result, False)
        for plan, found in zip(todo, _concurrently(wait, [(p, index) for p in todo])):
            if found:
                failed.add(plan["unit"]["name"])
                problems += found
    if problems:
        raise _Failed(*problems)


def _finish(result, plans):
    """The result with its diff (config text and container summary per changed unit) and `changed`."""
    for plan in plans:
        name = plan["unit"]["name"]
        entry = result["units"][name]
        result["diff"] += plan.get("file_diffs", [])
        if entry["config_changed"]:
            result["diff"].append({"before_header": plan["path"], "before": plan["current"] or "",
                                   "after_header": plan["path"], "after": plan["written"]})
        if entry["container"] not in (None, "unchanged"):
            spec = plan["spec"]
            result["diff"].append({
                "before_header": "container %s" % name, "before": _summary(plan.get("before")),
                "after_header": "container %s" % name,
                "after": {"image": spec["image"], "image_id": plan.get("image_id"), "command": spec["command"],
                          "spec": spec["labels"][SPEC_LABEL], "hardening": hardening_of(spec), "status": "running"}})
    result["changed"] = bool(result["removed"]) or any("file_diffs" in p for p in plans) or any(
        u["container"] not in (None, "unchanged") or u["config_changed"] for u in result["units"].values())
    return result
