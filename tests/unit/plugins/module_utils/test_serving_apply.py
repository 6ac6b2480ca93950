"""serving_apply's engine: container decisions against a fake Docker SDK client,
and config staging and waiting against the TF Serving test double run as a
plain process on 127.0.0.1 (no Docker)."""

import os
import shutil
import time

import docker
import pytest

from ansible_collections.mlserve.tfserving.plugins.module_utils import batching, hardening, serving_apply as sa, serving_host

from ...conftest import FIXTURES
from ...serving_double.double_helpers import Double, free_port, http

MUTATING = ("create", "start", "stop", "remove")


# ---------------------------------------------------------------- a fake of the Docker SDK's client

class FakeContainer:
    def __init__(self, client, name, labels, image_id, status, image="tensorflow/serving:2.19.0", kwargs=None):
        self.client, self.name, self.labels, self.status = client, name, dict(labels), status
        self.kwargs = kwargs = kwargs or {}
        # As docker inspect shows what it was created with.
        self.attrs = {"Image": image_id,
                      "Config": {"Image": image, "Cmd": kwargs.get("command"), "User": kwargs.get("user", "")},
                      "HostConfig": {"ReadonlyRootfs": kwargs.get("read_only", False), "Tmpfs": kwargs.get("tmpfs"),
                                     "CapDrop": kwargs.get("cap_drop"), "SecurityOpt": kwargs.get("security_opt"),
                                     "PidsLimit": kwargs.get("pids_limit")}}
        self.log_lines = []
        self.log_source = None  # a running double's stderr, read as this run's lines
        self.restarted()

    def restarted(self):
        """A new run begins: Docker keeps the earlier runs' lines, stamped here a minute back (this run's: now)."""
        self.run_from = len(self.log_lines)

    def start(self):
        self.client.calls.append(("start", self.name))
        self.status = "running"
        self.restarted()
        self.client.on_start(self)

    def stop(self):
        self.client.calls.append(("stop", self.name))
        self.status = "exited"
        self.client.on_stop(self)

    def remove(self):
        self.client.calls.append(("remove", self.name))
        del self.client.existing[self.name]

    def logs(self, tail, timestamps=False):
        def stamp(at):  # RFC 3339 with nanoseconds, as Docker writes it
            return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + (".%09dZ " % ((at % 1) * 1e9))
        now = time.time()
        lines = [(stamp(now - 60 if i < self.run_from else now) if timestamps else "") + line
                 for i, line in enumerate(self.log_lines + (self.log_source().splitlines() if self.log_source else []))]
        return "".join(line + "\n" for line in lines[-tail:]).encode()


class FakeContainers:
    def __init__(self, client):
        self.client = client

    def get(self, name):
        if name not in self.client.existing:
            raise docker.errors.NotFound("No such container: %s" % name)
        return self.client.existing[name]

    def list(self, all=False, filters=None):
        key, _, value = (filters or {}).get("label", "").partition("=")
        return [c for c in self.client.existing.values()
                if (all or c.status == "running") and (not key or c.labels.get(key) == value)]

    def create(self, **kwargs):
        self.client.calls.append(("create", kwargs["name"]))
        container = FakeContainer(self.client, kwargs["name"], kwargs["labels"], self.client.image_ids[kwargs["image"]],
                                  "created", kwargs["image"], kwargs)
        self.client.existing[kwargs["name"]] = container
        return container


class FakeImages:
    def __init__(self, client):
        self.client = client

    def get(self, reference):
        if reference not in self.client.image_ids:
            raise docker.errors.ImageNotFound("No such image: %s" % reference)
        return type("Image", (), {"id": self.client.image_ids[reference]})()


class FakeClient:
    """containers.get/list/create and images.get of the Docker SDK, recording what changes."""

    def __init__(self, images=None, on_start=None, on_stop=None):
        self.image_ids = dict({"tensorflow/serving:2.19.0": "sha256:aaa"} if images is None else images)
        self.existing = {}
        self.calls = []
        self.on_start = on_start or (lambda container: None)
        self.on_stop = on_stop or (lambda container: None)
        self.containers, self.images = FakeContainers(self), FakeImages(self)

    def add(self, name, labels, image_id="sha256:aaa", status="running", kwargs=None):
        self.existing[name] = FakeContainer(self, name, labels, image_id, status, kwargs=kwargs)
        return self.existing[name]

    def add_like(self, spec, status="running"):
        """The container this spec creates, from the image its reference names now."""
        return self.add(spec["name"], spec["labels"], self.image_ids.get(spec["image"], "sha256:old"), status, spec)

    def mutations(self):
        return [c for c in self.calls if c[0] in MUTATING]


def make_unit(tmp_path, name="tfserving-half_plus", versions=(1, 2), labels=None, topology="shared", **kw):
    """A unit as the roles compute it, its versions in a copy of the fixtures, its config under tmp_path."""
    models = tmp_path / "models"
    if not models.exists():
        shutil.copytree(os.path.join(FIXTURES, "half_plus"), str(models / "half_plus"))
    unit = {"name": name, "model": "half_plus", "topology": topology, "versions": list(versions),
            "labels": dict(labels or {}), "image": "tensorflow/serving:2.19.0",
            "grpc_port": free_port(), "rest_port": free_port(),
            "host_path": str(models / "half_plus"), "container_path": str(models / "half_plus"),
            "resources": {}, "config_dir": str(tmp_path / "etc" / name)}
    unit.update(kw)
    # The collection's own command; the double reads the config where it is on this machine
    # (the last flag wins), and a failed load is not retried so that failures show at once.
    unit["command"] = serving_host.server_command(unit, poll_seconds=1) + [
        "--model_config_file=%s" % os.path.join(unit["config_dir"], "models.config"), "--max_num_load_retries=0"]
    return unit


def spec_of(unit, **kw):
    return sa.desired_container(unit, **kw)


# ---------------------------------------------------------------- the desired container

def test_desired_container(tmp_path):
    unit = make_unit(tmp_path, resources={"memory": "2g", "cpus": 1.5})
    spec = spec_of(unit, log_options={"max-size": "10m", "max-file": 3}, environment={"TZ": "UTC"})
    assert spec["entrypoint"] == ["/usr/bin/tensorflow_model_server"] and spec["command"] == unit["command"]
    assert spec["init"] is True and spec["network_mode"] == "host"
    assert spec["mounts"] == [
        {"Type": "bind", "Source": unit["host_path"], "Target": unit["container_path"], "ReadOnly": True},
        {"Type": "bind", "Source": unit["config_dir"], "Target": "/etc/tfserving", "ReadOnly": True}]
    assert spec["mem_limit"] == "2g" and spec["nano_cpus"] == 1500000000
    assert spec["restart_policy"] == {"Name": "unless-stopped"}
    assert spec["log_config"] == {"type": "json-file", "config": {"max-size": "10m", "max-file": "3"}}
    assert spec["environment"] == {"TZ": "UTC"}
    labels = spec["labels"]
    assert labels[serving_host.MANAGED_LABEL] == "true" and labels["mlserve.tfserving.model"] == "half_plus"
    assert labels["mlserve.tfserving.rest_port"] == str(unit["rest_port"])
    assert labels["mlserve.tfserving.grpc_port"] == str(unit["grpc_port"])
    assert "mlserve.tfserving.version" not in labels and len(labels[sa.SPEC_LABEL]) == 64
    assert spec["healthcheck"]["test"][:3] == ["CMD", "bash", "-c"]
    assert spec["healthcheck"]["test"][3] == (
        "exec 3<>/dev/tcp/127.0.0.1/%d && printf 'GET /v1/models/half_plus HTTP/1.0\\r\\n\\r\\n' >&3 "
        "&& grep -q AVAILABLE <&3" % unit["rest_port"])
    assert (spec["healthcheck"]["interval"], spec["healthcheck"]["start_period"]) == (10 ** 10, 12 * 10 ** 10)
    isolated = spec_of(make_unit(tmp_path, "tfserving-half_plus-v2", [2], topology="isolated"))
    assert isolated["labels"]["mlserve.tfserving.version"] == "2"
    assert "mem_limit" not in isolated and "nano_cpus" not in isolated


def test_a_metrics_path_is_a_label_of_the_container(tmp_path):
    unit = make_unit(tmp_path, metrics_path="/monitoring/prometheus/metrics")
    spec = spec_of(unit)
    assert spec["labels"]["mlserve.tfserving.metrics_path"] == "/monitoring/prometheus/metrics"
    assert "--monitoring_config_file=/etc/tfserving/monitoring.config" in spec["command"]
    # The server reads the path once, at start: another path is another container.
    other = spec_of(dict(unit, metrics_path="/metrics"))
    assert other["command"] == spec["command"] and other["labels"][sa.SPEC_LABEL] != spec["labels"][sa.SPEC_LABEL]
    assert "mlserve.tfserving.metrics_path" not in spec_of(make_unit(tmp_path, "tfserving-plain"))["labels"]


def test_spec_hash_follows_every_setting(tmp_path):
    unit = make_unit(tmp_path)
    base = spec_of(unit)["labels"][sa.SPEC_LABEL]
    assert spec_of(dict(unit))["labels"][sa.SPEC_LABEL] == base
    changed = [spec_of(dict(unit, command=unit["command"] + ["--enable_batching=true"])),
               spec_of(dict(unit, resources={"memory": "1g"})),
               spec_of(dict(unit, image="tensorflow/serving:2.18.0")),
               spec_of(unit, restart_policy="always"),
               spec_of(unit, environment={"A": "1"}),
               spec_of(unit, hardening={"user": "1000:1000"}),
               spec_of(unit, hardening={"tmpfs": {"/tmp": "size=1m"}}),
               spec_of(unit, hardening={"cap_drop": ["NET_RAW"]}),
               spec_of(unit, hardening={"pids_limit": 100})]
    assert len(set([base] + [s["labels"][sa.SPEC_LABEL] for s in changed])) == 10
    # The versions and labels reach the server through models.config, not through the container.
    assert spec_of(dict(unit, versions=[3], labels={"stable": 3}))["labels"][sa.SPEC_LABEL] == base


def test_the_docker_sdk_accepts_the_spec(tmp_path):
    """The kwargs go through the SDK's own argument split and config builders, at python3-docker 5.0's API."""
    from docker.models.containers import _create_container_args
    spec = spec_of(make_unit(tmp_path, resources={"memory": "2g", "cpus": 1.5}), log_options={"max-size": "10m"})
    args = _create_container_args(dict(spec, version="1.41"))
    host_config = args.pop("host_config")
    assert (host_config["ReadonlyRootfs"], host_config["CapDrop"], host_config["SecurityOpt"],
            host_config["PidsLimit"], host_config["Tmpfs"]) == (
        True, ["ALL"], ["no-new-privileges:true"], 4096, {"/tmp": "rw,noexec,nosuid,nodev,size=64m"})
    assert args.pop("name") == spec["name"]
    assert host_config["Init"] is True and host_config["NanoCpus"] == 1500000000
    assert host_config["NetworkMode"] == "host" and host_config["RestartPolicy"] == {"Name": "unless-stopped"}
    assert host_config["Memory"] == 2 * 1024 ** 3 and host_config["LogConfig"] == {
        "Type": "json-file", "Config": {"max-size": "10m"}}
    assert [m["Target"] for m in host_config["Mounts"]] == [spec["mounts"][0]["Target"], "/etc/tfserving"]
    config = docker.types.ContainerConfig("1.41", **args)
    assert config["Entrypoint"] == ["/usr/bin/tensorflow_model_server"] and config["User"] == "65534:65534"
    assert config["Healthcheck"]["StartPeriod"] == 120 * 10 ** 9 and config["Labels"] == spec["labels"]


# ---------------------------------------------------------------- hardening

HARDENING_KEYS = ("user", "read_only", "tmpfs", "cap_drop", "security_opt", "pids_limit")
OFF = {"user": "", "read_only": False, "tmpfs": {}, "cap_drop": [], "no_new_privileges": False, "pids_limit": 0}


def test_containers_are_hardened_by_default(tmp_path):
    spec = spec_of(make_unit(tmp_path))
    assert dict((k, spec[k]) for k in HARDENING_KEYS) == {
        "user": "65534:65534", "read_only": True, "tmpfs": {"/tmp": "rw,noexec,nosuid,nodev,size=64m"},
        "cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"], "pids_limit": 4096}
    assert sa.hardening_of(spec) == sa.HARDENING


@pytest.mark.parametrize("name", sorted(OFF))
def test_each_hardening_setting_turns_off_alone(tmp_path, name):
    unit = make_unit(tmp_path)
    spec = spec_of(unit, hardening={name: OFF[name]})
    key = "security_opt" if name == "no_new_privileges" else name
    assert key not in spec  # Docker's and the image's own default
    assert sa.hardening_of(spec) == dict(sa.HARDENING, **{name: OFF[name]})
    assert [k for k in HARDENING_KEYS if k in spec] == [k for k in HARDENING_KEYS if k != key]
    assert spec["labels"][sa.SPEC_LABEL] != spec_of(unit)["labels"][sa.SPEC_LABEL]


def test_hardening_all_off_leaves_the_image_defaults_and_overrides_are_passed_as_given(tmp_path):
    unit = make_unit(tmp_path)
    assert not [k for k in HARDENING_KEYS if k in spec_of(unit, hardening=OFF)]
    custom = {"user": "1000:1000", "tmpfs": {"/tmp": "size=1m", "/var/cache/x": ""}, "cap_drop": ["NET_RAW"],
              "pids_limit": 64}
    spec = spec_of(unit, hardening=custom)
    assert (spec["user"], spec["tmpfs"], spec["cap_drop"], spec["pids_limit"]) == (
        "1000:1000", {"/tmp": "size=1m", "/var/cache/x": ""}, ["NET_RAW"], 64)
    assert spec["read_only"] is True and spec["security_opt"] == ["no-new-privileges:true"]


def test_hardening_problems_name_the_variable_the_value_and_what_is_valid():
    assert hardening.hardening_problems(sa.HARDENING) == [] and hardening.hardening_problems(OFF) == []
    assert hardening.hardening_problems({"cap_drop": ["cap_net_raw", "Sys_Admin"], "tmpfs": {"/run": "mode=1777,uid=1"},
                                  "user": "0:0"}) == []
    bad = {"user": "nobody", "read_only": "yes", "tmpfs": {"tmp": "", "/": "", "/t": "size=1m,exec=1,suid"},
           "cap_drop": ["ALL", "NET_RAWW", 3], "no_new_privileges": 1, "pids_limit": -1}
    assert hardening.hardening_problems(bad, "serving_") == [
        "serving_user: 'nobody' is not a numeric uid:gid; use e.g. \"65534:65534\" (nobody), or \"\" for the "
        "image's own user",
        "serving_read_only: 'yes' is not true or false",
        "serving_no_new_privileges: 1 is not true or false",
        "serving_tmpfs: '/' is not an absolute path below /",
        "serving_tmpfs: /t has options Docker's tmpfs does not take: exec=1 (use e.g. rw, noexec, nosuid, nodev, "
        "size=64m, mode=1777, uid=N, gid=N)",
        "serving_tmpfs: 'tmp' is not an absolute path below /",
        "serving_cap_drop: 'NET_RAWW', 3 are not Linux capabilities; use ALL or names such as NET_RAW",
        "serving_pids_limit: -1 is not a number of processes; use a positive integer (threads count), or 0 for "
        "no limit"]
    for value in ("1000", "1000:", ":1000", 1000, "1000:1000 "):
        assert hardening.hardening_problems({"user": value}), value
    assert hardening.hardening_problems({"tmpfs": "/tmp", "cap_drop": "ALL", "pids_limit": True}) == [
        "tmpfs: '/tmp' is not a mapping of container path to mount options, such as "
        "{\"/tmp\": \"rw,noexec,nosuid,size=64m\"}; {} mounts none",
        "cap_drop: 'ALL' is not a list of capabilities, such as [ALL]; [] drops none",
        "pids_limit: True is not a number of processes; use a positive integer (threads count), or 0 for no limit"]


def test_a_hardening_change_shows_in_the_diff_and_recreates(tmp_path):
    unit = make_unit(tmp_path)
    client = FakeClient()
    client.add_like(spec_of(unit, hardening=OFF))  # as made before hardening, or with it off
    result = sa.apply(client, check_mode=True, units=[unit], host="h1")
    assert result["units"][unit["name"]]["container"] == "recreated"
    [change] = [d for d in result["diff"] if d["before_header"] == "container %s" % unit["name"]]
    assert change["before"]["hardening"] == OFF and change["after"]["hardening"] == sa.HARDENING
    assert converge(client, spec_of(unit)) == "recreated"
    created = client.existing[unit["name"]]
    assert sa._container_hardening(created.attrs) == sa.HARDENING
    assert created.kwargs["security_opt"] == ["no-new-privileges:true"]
    assert converge(client, spec_of(unit, hardening=dict(sa.HARDENING))) == "unchanged"


# ---------------------------------------------------------------- container decisions

def converge(client, spec, check_mode=False):
    before = client.existing.get(spec["name"])
    return sa.converge_container(client, spec, client.image_ids.get(spec["image"]), before, check_mode)


@pytest.mark.parametrize("check_mode", [False, True])
def test_container_decisions(tmp_path, check_mode):
    unit = make_unit(tmp_path)
    spec = spec_of(unit)
    cases = []
    client = FakeClient()
    cases.append((client, "created", [("create", unit["name"]), ("start", unit["name"])]))
    client = FakeClient()
    client.add_like(spec)
    cases.append((client, "unchanged", []))
    client = FakeClient()
    client.add_like(spec_of(dict(unit, command=unit["command"] + ["--enable_batching=true"])))
    recreate = [("stop", unit["name"]), ("remove", unit["name"]), ("create", unit["name"]), ("start", unit["name"])]
    cases.append((client, "recreated", recreate))
    client = FakeClient()
    client.add_like(spec)
    client.image_ids[unit["image"]] = "sha256:bbb"  # the tag now names another image
    cases.append((client, "recreated", recreate))
    client = FakeClient()
    client.add_like(spec, status="exited")
    cases.append((client, "started", [("start", unit["name"])]))
    for client, action, calls in cases:
        assert converge(client, spec, check_mode) == action
        assert client.mutations() == ([] if check_mode else calls), action
        if not check_mode and action != "unchanged":
            assert client.existing[unit["name"]].status == "running"
            assert client.existing[unit["name"]].labels == spec["labels"]


def test_missing_image_fails_before_removing_anything(tmp_path):
    unit = make_unit(tmp_path)
    client = FakeClient(images={})
    client.add_like(spec_of(dict(unit, command=["--changed"])), status="running")
    with pytest.raises(sa._Failed) as e:
        converge(client, spec_of(unit))
    assert str(e.value) == "container tfserving-half_plus: image tensorflow/serving:2.19.0 is not on the host; " \
                           "pull or load it first"
    assert client.mutations() == []
    # Same spec, image untagged since: it keeps running.
    client = FakeClient(images={})
    client.add_like(spec_of(unit))
    assert converge(client, spec_of(unit)) == "unchanged"


def test_undeclared_managed_containers_are_removed_only(tmp_path):
    client = FakeClient()
    client.add("tfserving-old", {serving_host.MANAGED_LABEL: "true"}, status="exited")
    client.add("tfserving-kept", {serving_host.MANAGED_LABEL: "true"})
    client.add("tfserving-mine", {"owner": "someone else"})
    unit = make_unit(tmp_path, "tfserving-kept")
    result = sa.apply(client, check_mode=True, units=[unit], host="h1")
    assert result["removed"] == ["tfserving-old"] and client.mutations() == []
    result = sa.apply(client, units=[], host="h1")
    assert sorted(result["removed"]) == ["tfserving-kept", "tfserving-old"] and result["changed"] is True
    assert sorted(client.existing) == ["tfserving-mine"]
    assert sa.apply(client, units=[], host="h1", remove_undeclared=False)["changed"] is False


def test_check_mode_changes_nothing(tmp_path):
    units = [make_unit(tmp_path, "tfserving-a", labels={"stable": 1}), make_unit(tmp_path, "tfserving-b")]
    client = FakeClient()
    client.add_like(spec_of(units[1]))
    result = sa.apply(client, check_mode=True, units=units, host="h1")
    assert client.mutations() == [] and not os.path.exists(str(tmp_path / "etc"))
    assert result["changed"] is True
    assert result["units"]["tfserving-a"] == {"container": "created", "config_changed": True, "steps": 2,
                                              "versions": [1, 2], "labels": {"stable": 1}}
    assert result["units"]["tfserving-b"]["container"] == "unchanged"
    config_diffs = [d for d in result["diff"] if d["before_header"].endswith("models.config")]
    assert [d["after"] for d in config_diffs] == [serving_host.models_config(u) for u in units]
    assert [d["before_header"] for d in result["diff"] if d["before_header"].startswith("container")] == [
        "container tfserving-a"]
    # No Docker on the host yet: every unit would be created.
    result = sa.apply(None, check_mode=True, units=units, host="h1")
    assert [u["container"] for u in result["units"].values()] == ["created", "created"]
    assert not os.path.exists(str(tmp_path / "etc"))


def test_config_is_written_atomically_and_only_when_it_differs(tmp_path):
    path = str(tmp_path / "etc" / "u" / "models.config")
    sa.write_text(path, "one\n")
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    assert oct(os.stat(os.path.dirname(path)).st_mode & 0o777) == "0o755"
    assert os.listdir(os.path.dirname(path)) == ["models.config"]
    unit = make_unit(tmp_path)
    plan = sa.plan_unit(unit)
    result = {"units": {unit["name"]: {"config_changed": False}}}
    plan["current"] = serving_host.models_config(unit, *[plan["steps"][0][k] for k in ("labels", "versions")])
    sa._write_step(plan, 0, result, check_mode=False)
    assert result["units"][unit["name"]]["config_changed"] is False and not os.path.exists(plan["path"])


def test_check_mode_shows_the_monitoring_config_it_would_write(tmp_path):
    unit = make_unit(tmp_path, metrics_path="/monitoring/prometheus/metrics")
    result = sa.apply(None, check_mode=True, units=[unit], host="h1")
    assert result["changed"] is True and not os.path.exists(str(tmp_path / "etc"))
    assert result["diff"][0] == {"before_header": os.path.join(unit["config_dir"], "monitoring.config"), "before": "",
                                 "after_header": os.path.join(unit["config_dir"], "monitoring.config"),
                                 "after": serving_host.monitoring_config(unit)}


def test_config_poll_seconds_last_flag_wins():
    assert sa.config_poll_seconds({"command": ["--model_config_file_poll_wait_seconds=5", "--port=1",
                                               "--model_config_file_poll_wait_seconds=2"]}) == 2
    assert sa.config_poll_seconds({"command": []}) == 0


# ---------------------------------------------------------------- against the serving double

class Servers:
    """A FakeClient whose containers are TF Serving doubles: start runs one with the container's command."""

    def __init__(self, tmp_path, env=None):
        self.tmp_path, self.env, self.running = tmp_path, env, {}
        self.client = FakeClient(on_start=self.start, on_stop=self.stop)

    def start(self, container):
        self.running[container.name] = Double(self.tmp_path, container.kwargs["command"], env=self.env,
                                              name=container.name)
        container.log_source = self.running[container.name].stderr

    def stop(self, container):
        self.running.pop(container.name).stop()

    def apply(self, units, **kw):
        return sa.apply(self.client, units=units, host="host1", **kw)

    def stop_all(self):
        for double in self.running.values():
            double.stop()


@pytest.fixture
def servers(tmp_path):
    made = []

    def make(env=None):
        made.append(Servers(tmp_path, env))
        return made[-1]

    yield make
    for s in made:
        s.stop_all()


def label_version(unit, label):
    answer = sa.get_json(unit["rest_port"], "/v1/models/half_plus/labels/%s/metadata" % label)
    return answer["model_spec"]["version"]


def test_label_moves_to_a_new_version_in_two_steps(tmp_path, servers):
    s = servers()
    unit = make_unit(tmp_path, versions=[1, 2], labels={"stable": 1})
    first = s.apply([unit])
    assert first["units"][unit["name"]]["container"] == "created" and first["units"][unit["name"]]["steps"] == 2
    assert label_version(unit, "stable") == "1"
    assert sa.get_json(unit["rest_port"], "/v1/models/nope") == {"error": "Could not find any versions of model nope"}
    moved = dict(unit, versions=[2, 3], labels={"stable": 3})
    result = s.apply([moved])
    assert result["units"][unit["name"]] == {"container": "unchanged", "config_changed": True, "steps": 2,
                                             "versions": [2, 3], "labels": {"stable": 3}}
    assert label_version(unit, "stable") == "3"
    assert sa.read_text(os.path.join(unit["config_dir"], "models.config")) == serving_host.models_config(moved)
    log = s.running[unit["name"]].stderr()
    assert "not currently available for inference" not in log
    assert "Successfully loaded servable version {name: half_plus version: 3}" in log
    assert s.client.mutations() == [("create", unit["name"]), ("start", unit["name"])]


def test_a_label_move_that_would_not_fit_the_memory_limit_changes_nothing(tmp_path, servers):
    """Step 1 of a move loads the old and the new version at once: TF Serving's estimate of both must fit."""
    s = servers()
    unit = make_unit(tmp_path, versions=[1], labels={"stable": 1})
    s.apply([unit])
    config = sa.read_text(os.path.join(unit["config_dir"], "models.config"))
    size = lambda v: sum(os.path.getsize(os.path.join(r, n))  # noqa: E731
                         for r, _, ns in os.walk(os.path.join(unit["host_path"], str(v))) for n in ns)
    # Enough for version 3 alone, the declared state, not for 1 and 3 during the move.
    limit = int(size(3) * 1.2) + 1
    moved = dict(unit, versions=[3], labels={"stable": 3}, resources={"memory": "%db" % limit})
    with pytest.raises(sa.ApplyError) as e:
        s.apply([moved])
    assert e.value.msg.startswith("host1: tfserving-half_plus: versions 1, 3 of half_plus, loaded at once, need about ")
    assert e.value.msg.endswith("above resources.memory %db; raise resources.memory, or serve fewer versions in one "
                                "container (topology: isolated)" % limit)
    assert sa.read_text(os.path.join(unit["config_dir"], "models.config")) == config
    assert s.client.mutations() == [("create", unit["name"]), ("start", unit["name"])]
    assert label_version(unit, "stable") == "1"


def monitored_unit(tmp_path, metrics_path, **kw):
    """A unit with a metrics page; the double reads its monitoring.config where it is on this machine."""
    unit = make_unit(tmp_path, metrics_path=metrics_path, **kw)
    unit["command"] = unit["command"] + ["--monitoring_config_file=%s" % os.path.join(unit["config_dir"],
                                                                                      "monitoring.config")]
    return unit


def metrics_page(unit, path):
    return http("GET", "http://127.0.0.1:%d%s" % (unit["rest_port"], path))[0]


def test_the_monitoring_config_is_written_beside_models_config_and_the_server_answers_prometheus(tmp_path, servers):
    s = servers()
    unit = monitored_unit(tmp_path, "/monitoring/prometheus/metrics", labels={"stable": 1})
    path = os.path.join(unit["config_dir"], "monitoring.config")
    first = s.apply([unit])
    assert first["changed"] is True and first["units"][unit["name"]]["container"] == "created"
    assert sa.read_text(path) == 'prometheus_config {\n  enable: true\n  path: "/monitoring/prometheus/metrics"\n}\n'
    assert {"before_header": path, "before": "", "after_header": path, "after": sa.read_text(path)} in first["diff"]
    assert metrics_page(unit, "/monitoring/prometheus/metrics") == 200
    again = s.apply([unit])
    assert again["changed"] is False and again["diff"] == []
    assert again["units"][unit["name"]]["container"] == "unchanged"
    # Another path: a new config and a new container, which answers there.
    moved = dict(unit, metrics_path="/metrics")
    third = s.apply([moved])
    assert third["changed"] is True and third["units"][unit["name"]]["container"] == "recreated"
    assert [d["before"] for d in third["diff"] if d["before_header"] == path] == [serving_host.monitoring_config(unit)]
    assert sa.read_text(path) == serving_host.monitoring_config(moved)
    assert metrics_page(unit, "/metrics") == 200 and metrics_page(unit, "/monitoring/prometheus/metrics") == 404


def batched_unit(tmp_path, params, name="tfserving-half_plus", **kw):
    """A unit with batching; the double reads its batching.config where it is on this machine."""
    unit = make_unit(tmp_path, name=name, batching=params, **kw)
    unit["command"] = unit["command"] + ["--batching_parameters_file=%s" % os.path.join(unit["config_dir"],
                                                                                        "batching.config")]
    return unit


def test_batching_parameters_reach_the_server_and_a_change_restarts_only_their_unit(tmp_path, servers):
    s = servers()
    params = {"max_batch_size": 8, "batch_timeout_micros": 1000, "allowed_batch_sizes": [4, 8]}
    unit = batched_unit(tmp_path, params)
    plain = make_unit(tmp_path, "tfserving-plain")
    path = os.path.join(unit["config_dir"], "batching.config")
    first = s.apply([unit, plain])
    assert "--enable_batching=true" in unit["command"] and "--enable_batching=true" not in plain["command"]
    assert sa.read_text(path) == batching.render(params)
    assert {"before_header": path, "before": "", "after_header": path, "after": batching.render(params)} in first["diff"]
    assert not os.path.exists(os.path.join(plain["config_dir"], "batching.config"))
    # The server wrapped each version's session for batching, as TF Serving logs it.
    assert s.running[unit["name"]].stderr().count("Wrapping session to perform batch processing") == 2
    assert "Wrapping session" not in s.running[plain["name"]].stderr()
    assert s.apply([unit, plain])["changed"] is False
    # New parameters: the server reads them at start, so its container is recreated; the other stays.
    wider = batched_unit(tmp_path, dict(params, max_batch_size=16, allowed_batch_sizes=[4, 16]))
    second = s.apply([wider, plain])
    assert [second["units"][u["name"]]["container"] for u in (unit, plain)] == ["recreated", "unchanged"]
    assert [d["before"] for d in second["diff"] if d["before_header"] == path] == [batching.render(params)]
    assert "max_batch_size { value: 16 }" in sa.read_text(path)
    # Batching off: the file goes, and the container starts without it.
    third = s.apply([make_unit(tmp_path), plain])
    assert third["units"][unit["name"]]["container"] == "recreated" and not os.path.exists(path)
    assert {"before_header": path, "before": batching.render(wider["batching"]),
            "after_header": path + " (removed)", "after": ""} in third["diff"]
    assert "Wrapping session" not in s.running[unit["name"]].stderr()


def test_unchanged_units_cost_one_status_request_each(tmp_path, servers, monkeypatch):
    s = servers()
    units = [make_unit(tmp_path, "tfserving-u%02d" % i, versions=[1, 2], labels={"stable": 2}) for i in range(12)]
    s.apply(units, wait_timeout=60)
    requests = []
    real_get_json = sa.get_json
    monkeypatch.setattr(sa, "get_json", lambda p, path: requests.append(path) or real_get_json(p, path))
    calls = len(s.client.calls)
    started = time.monotonic()
    result = s.apply(units)
    elapsed = time.monotonic() - started
    assert result["changed"] is False and result["diff"] == [] and s.client.calls[calls:] == []
    assert sorted(requests) == sorted(["/v1/models/half_plus"] * 12
                                      + ["/v1/models/half_plus/labels/stable/metadata"] * 12)
    assert elapsed < 1.0, elapsed


def test_units_are_waited_for_concurrently(tmp_path, servers):
    delay, count = 2.0, 4
    s = servers(env={"SERVING_DOUBLE_LOAD_DELAY_SECONDS": str(delay)})
    units = [make_unit(tmp_path, "tfserving-c%d" % i, versions=[1]) for i in range(count)]
    s.apply(units, wait_timeout=60)
    started = time.monotonic()
    result = s.apply([dict(u, versions=[1, 2]) for u in units], wait_timeout=60)
    elapsed = time.monotonic() - started
    assert all(u["config_changed"] and u["container"] == "unchanged" for u in result["units"].values())
    for unit in units:
        assert serving_host.available_versions(sa.model_status(unit)) == [1, 2]
    # One load each (plus the server's config poll): in sequence they would take count * delay at least.
    assert delay <= elapsed < 0.7 * count * delay, elapsed


def test_a_recreated_container_is_waited_for(tmp_path, servers):
    s = servers()
    unit = make_unit(tmp_path, versions=[1, 2])  # no label, whose check would hide a stale status
    s.apply([unit])
    old = s.running[unit["name"]]
    changed = dict(unit, command=unit["command"] + ["--enable_model_warmup=false"])
    result = s.apply([changed])
    assert result["units"][unit["name"]]["container"] == "recreated"
    assert s.running[unit["name"]] is not old and old.proc.poll() is not None
    # What the old server answered before must not stand in for the new one.
    assert serving_host.available_versions(sa.model_status(unit)) == [1, 2]


def test_hung_servers_are_asked_concurrently(tmp_path, monkeypatch):
    """Servers that accept connections and never answer cost one request timeout in all, not one each."""
    import socket
    monkeypatch.setattr(sa, "HTTP_TIMEOUT", 1)
    units = [make_unit(tmp_path, "tfserving-h%d" % i) for i in range(4)]
    listeners = []
    try:
        for unit in units:
            listeners.append(socket.socket())
            listeners[-1].bind(("127.0.0.1", unit["rest_port"]))
            listeners[-1].listen(8)
        client = FakeClient()
        for unit in units:
            client.add_like(spec_of(unit))
        started = time.monotonic()
        with pytest.raises(sa.ApplyError) as e:
            sa.apply(client, units=units, host="host1", wait_timeout=1)
        elapsed = time.monotonic() - started
    finally:
        for listener in listeners:
            listener.close()
    assert e.value.msg.count("no status answer") == 4 and client.mutations() == []
    # Planning and waiting each take one timeout; one unit after another would take 8.
    assert elapsed < 4, elapsed


def test_failed_versions_are_reported_in_the_servers_words(tmp_path, servers):
    s = servers()
    corrupt = make_unit(tmp_path, "tfserving-corrupt", versions=[1, 2])
    missing = make_unit(tmp_path, "tfserving-missing", versions=[1, 2], labels={"stable": 2})
    fine = make_unit(tmp_path, "tfserving-fine", versions=[1])
    s.apply([corrupt, missing, fine])
    pb = tmp_path / "models" / "half_plus" / "3" / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[:400])
    started = time.monotonic()
    with pytest.raises(sa.ApplyError) as e:
        s.apply([dict(corrupt, versions=[1, 2, 3]), dict(missing, versions=[1, 4], labels={"stable": 4}),
                 dict(fine, versions=[1, 2])], wait_timeout=8)
    elapsed = time.monotonic() - started
    problems = e.value.msg.split("; host1: ")
    assert problems[0].startswith("host1: tfserving-corrupt: version 3 of half_plus is END (DATA_LOSS: Can't parse ")
    assert problems[1] == "tfserving-missing: version 4 of half_plus is not loaded"
    assert len(problems) == 2, e.value.msg
    # Everything done so far is reported; the missing version held its label back.
    units = e.value.result["units"]
    assert units["tfserving-fine"]["config_changed"] and units["tfserving-missing"]["steps"] == 2
    assert label_version(missing, "stable") == "2"
    assert serving_host.available_versions(sa.model_status(fine)) == [1, 2]
    assert 7 <= elapsed < 12, elapsed  # the missing version used the whole timeout, and no more


def test_a_failed_load_fails_without_waiting_for_the_timeout(tmp_path, servers):
    s = servers()
    unit = make_unit(tmp_path, versions=[1])
    s.apply([unit])
    pb = tmp_path / "models" / "half_plus" / "3" / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[:400])
    started = time.monotonic()
    with pytest.raises(sa.ApplyError) as e:
        s.apply([dict(unit, versions=[1, 3])], wait_timeout=60)
    assert "version 3 of half_plus is END (DATA_LOSS" in e.value.msg
    assert time.monotonic() - started < 10
    # Repaired and declared again, after a run without it: the old failure in the status is not taken as new.
    s.apply([unit])
    time.sleep(2.5)  # the server re-reads models.config every second: let it drop version 3 from its policy
    shutil.copy(os.path.join(FIXTURES, "half_plus", "3", "saved_model.pb"), str(pb))
    assert s.apply([dict(unit, versions=[1, 3])], wait_timeout=30)["units"][unit["name"]]["versions"] == [1, 3]


def test_a_version_still_retrying_its_load_at_the_timeout_is_named_with_its_logged_failure(tmp_path, servers):
    """While TF Serving retries a failed load the version stays LOADING, and its status says nothing of why."""
    s = servers()
    unit = make_unit(tmp_path, versions=[1], labels={"stable": 1})
    unit["command"] = unit["command"] + ["--max_num_load_retries=100", "--load_retry_interval_micros=500000"]
    s.apply([unit])
    pb = tmp_path / "models" / "half_plus" / "3" / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[:400])
    with pytest.raises(sa.ApplyError) as e:
        s.apply([dict(unit, versions=[1, 3], labels={"stable": 3})], wait_timeout=6)
    assert e.value.msg.startswith("host1: tfserving-half_plus: version 3 of half_plus is LOADING"), e.value.msg
    assert "LOADING (OK) (its load failed, and the server retries it: DATA_LOSS: Can't parse " in e.value.msg, e.value.msg
    assert label_version(unit, "stable") == "1"  # the label waited for version 3


def test_a_retried_load_is_quoted_only_for_its_own_version():
    """Another version's failure, or one of a version that is not LOADING, is not this problem's cause."""
    client = FakeClient()
    client.add("tfserving-half_plus", {}).log_lines = [
        "E tensorflow_serving/util/retrier.cc:37] Loading servable: {name: half_plus version: 2} failed: "
        "NOT_FOUND: 100% of the files are gone",
        "E tensorflow_serving/util/retrier.cc:37] Loading servable: {name: half_plus version: 4} failed: "
        "DATA_LOSS: truncated"]
    problems = ["tfserving-half_plus: version 3 of half_plus is LOADING (OK)",
                "tfserving-half_plus: version 2 of half_plus is LOADING (OK)",
                "tfserving-half_plus: version 4 of half_plus is END (DATA_LOSS: truncated)"]
    assert sa._retry_notes(client, "tfserving-half_plus", 0, problems) == [
        problems[0], problems[1] + " (its load failed, and the server retries it: NOT_FOUND: 100% of the files are "
        "gone)", problems[2]]


def test_a_server_that_never_answers_shows_its_container(tmp_path):
    unit = make_unit(tmp_path)
    client = FakeClient(on_start=lambda c: c.log_lines.extend(["Loading servable", "did not become available"]))
    with pytest.raises(sa.ApplyError) as e:
        sa.apply(client, units=[unit], host="host1", wait_timeout=1)
    assert e.value.msg == ("host1: tfserving-half_plus: no status answer from 127.0.0.1:%d (container running; last "
                           "log lines: Loading servable | did not become available)" % unit["rest_port"])
    assert e.value.result["units"][unit["name"]]["container"] == "created" and e.value.result["changed"] is True


def test_a_server_held_back_by_load_retries_names_the_load_status(tmp_path):
    """TF Serving answers nothing while a first load is retried: the last failure it logged says why."""
    unit = make_unit(tmp_path)
    client = FakeClient(on_start=lambda c: c.log_lines.extend([
        "I tensorflow_serving/core/loader_harness.cc:76] Loading servable version {name: half_plus version: 1}",
        "E tensorflow_serving/util/retrier.cc:37] Loading servable: {name: half_plus version: 1} failed: "
        "DATA_LOSS: bad block type in /models/half_plus/1/variables/variables.index",
        "I tensorflow_serving/util/retrier.cc:46] Retrying of Loading servable: {name: half_plus version: 1} "
        "retry: 1"]))
    with pytest.raises(sa.ApplyError) as e:
        sa.apply(client, units=[unit], host="host1", wait_timeout=1)
    assert e.value.msg == ("host1: tfserving-half_plus: no status answer from 127.0.0.1:%d (container running; "
                           "version 1 of half_plus failed to load: DATA_LOSS: bad block type in "
                           "/models/half_plus/1/variables/variables.index)" % unit["rest_port"])


def test_a_start_up_failure_logged_before_this_apply_is_not_this_runs(tmp_path):
    """Version 1 crashed the server before its files were put right; the container, started again, is still
    loading and says nothing yet: the wait must not quote the old failure, but wait (here until its timeout)."""
    unit = make_unit(tmp_path, versions=(1,))
    client = FakeClient(on_start=lambda c: c.log_lines.append(
        "I tensorflow_serving/core/loader_harness.cc:76] Loading servable version {name: half_plus version: 1}"))
    container = client.add_like(sa.desired_container(unit), status="exited")
    container.log_lines = ["E tensorflow_serving/util/retrier.cc:37] Loading servable: {name: half_plus version: 1} "
                           "failed: DATA_LOSS: truncated", "Failed to start server. Error: UNKNOWN: 1 servable(s) "
                           "did not become available"]
    with pytest.raises(sa.ApplyError) as e:
        sa.apply(client, units=[unit], host="host1", wait_timeout=2)
    assert e.value.msg == ("host1: tfserving-half_plus: no status answer from 127.0.0.1:%d (container running; "
                           "last log lines: I tensorflow_serving/core/loader_harness.cc:76] Loading servable version "
                           "{name: half_plus version: 1})" % unit["rest_port"])


def test_versions_missing_on_the_host_are_named_before_anything_changes(tmp_path):
    (tmp_path / "half_plus" / "1").mkdir(parents=True)
    units = [{"name": "tfserving-half_plus", "model": "half_plus", "versions": [1, 2],
              "host_path": str(tmp_path / "half_plus")}]
    assert sa.missing_versions(units) == [
        "tfserving-half_plus: version 2 of half_plus is not on the host (%s/half_plus/2 is missing); sync it first "
        "with the models role (mlserve.tfserving.models), using the same tfserving_models_root" % tmp_path]
    (tmp_path / "half_plus" / "2").mkdir()
    assert sa.missing_versions(units) == []


SS_OUTPUT = """\
LISTEN 0      5          127.0.0.1:29990      0.0.0.0:*    users:(("python3",pid=4317,fd=3))
LISTEN 0      128                *:19500            *:*    users:(("python3",pid=10298,fd=3))
LISTEN 0      128                *:19501            *:*
LISTEN 0      4096            [::1]:29991          [::]:*
"""


def test_ss_sockets_are_read_with_and_without_a_visible_process():
    assert sa.listening_ports(SS_OUTPUT) == [
        {"port": 29990, "name": "python3", "pid": 4317}, {"port": 19500, "name": "python3", "pid": 10298},
        {"port": 19501, "name": "", "pid": 0}, {"port": 29991, "name": "", "pid": 0}]


def test_planned_ports_held_by_others_are_problems_but_our_running_containers_are_not():
    client = FakeClient()
    client.add("tfserving-half_plus", {"mlserve.tfserving.managed": "true", "mlserve.tfserving.rest_port": "19501",
                                       "mlserve.tfserving.grpc_port": "19500"})
    units = [{"name": "tfserving-half_plus", "grpc_port": 19500, "rest_port": 29990},
             {"name": "tfserving-other", "grpc_port": 29991, "rest_port": 19501}]
    assert sa.port_problems(client, units, SS_OUTPUT, "h1") == [
        "port 29990 on h1 is claimed by tfserving-half_plus (REST) and already held by python3 (pid 4317); free it, "
        "pin another port, or change tfserving_port_base",
        "port 29991 on h1 is claimed by tfserving-other (gRPC) and already held by a process this host cannot name "
        "(another container or namespace); free it, pin another port, or change tfserving_port_base"]


def test_a_server_that_stopped_at_start_up_is_named_with_the_version_and_its_load_error(tmp_path):
    """TF Serving exits when a first load fails; its log names the version and the error, and the wait ends."""
    unit = make_unit(tmp_path, versions=(1,))
    client = FakeClient()
    container = client.add_like(sa.desired_container(unit), status="restarting")
    container.log_lines = (
        "I tensorflow_serving/core/loader_harness.cc:76] Loading servable version {name: half_plus version: 1}\n"
        "E tensorflow_serving/util/retrier.cc:37] Loading servable: {name: half_plus version: 1} failed: "
        "NOT_FOUND: Could not find meta graph def matching supplied tags: { missing }.\n"
        "Failed to start server. Error: UNKNOWN: 1 servable(s) did not become available\n").splitlines()
    started = time.monotonic()
    with pytest.raises(sa.ApplyError) as e:
        sa.apply(client, units=[unit], host="host1", wait_timeout=60)
    assert time.monotonic() - started < 15
    assert ("host1: tfserving-half_plus: version 1 of half_plus failed to load, and the server stopped at start-up: "
            "NOT_FOUND: Could not find meta graph def matching supplied tags: { missing }.") in e.value.msg
