"""The TF Serving test double's image: build it, run it like tensorflow/serving, ask it on 127.0.0.1.

Uses the local Debian 12 lab image as base (SERVING_DOUBLE_BASE_IMAGE, default
mlserve-lab:debian12); builds that with lab/build-image.sh when it is missing.
"""

import json
import os
import shutil
import subprocess
import uuid

import docker
import grpc
import pytest
import yaml
from tensorflow_serving.apis import prediction_service_pb2_grpc

from ansible_collections.mlserve.tfserving.plugins.module_utils import serving_apply, serving_host
from double_helpers import FIXTURES, REPO, free_port, http, wait_for
from test_double_grpc import predict_request

BASE = os.environ.get("SERVING_DOUBLE_BASE_IMAGE", "mlserve-lab:debian12")


def _run(*argv, timeout=120, check=True):
    result = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                            universal_newlines=True)
    if check and result.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (" ".join(argv), result.returncode, result.stdout,
                                                          result.stderr))
    return result


@pytest.fixture(scope="module")
def image():
    if _run("docker", "image", "inspect", BASE, check=False).returncode != 0:
        assert BASE == "mlserve-lab:debian12", "base image %s is missing" % BASE
        _run(os.path.join(REPO, "lab", "build-image.sh"), "debian12", timeout=1200)
    tag = _run(os.path.join(REPO, "tests", "serving_double", "build.sh"), BASE, timeout=300).stdout.strip()
    assert tag.startswith("mlserve-test/tfserving-double:")
    # A second build with the same inputs is skipped and prints the same tag.
    assert _run(os.path.join(REPO, "tests", "serving_double", "build.sh"), BASE).stdout.strip() == tag
    return tag


@pytest.fixture
def container(image, tmp_path):
    names = []

    def run(*args, env=(), volumes=()):
        name = "tfserving-double-test-%s" % uuid.uuid4().hex[:8]
        argv = ["docker", "run", "-d", "--name", name, "--network", "host"]
        for item in env:
            argv += ["-e", item]
        for item in volumes:
            argv += ["-v", item]
        _run(*(argv + [image] + list(args)))
        names.append(name)
        return name

    yield run
    for name in names:
        _run("docker", "rm", "-f", name, check=False)


def test_image_metadata(image):
    config = json.loads(_run("docker", "image", "inspect", "-f", "{{json .Config}}", image).stdout)
    assert config["Entrypoint"] == ["/usr/bin/tf_serving_entrypoint.sh"]
    assert not config.get("Cmd")
    assert sorted(config["ExposedPorts"]) == ["8500/tcp", "8501/tcp"]
    assert "MODEL_NAME=model" in config["Env"] and "MODEL_BASE_PATH=/models" in config["Env"]
    script = _run("docker", "run", "--rm", "--network", "host", "--entrypoint", "cat", image,
                  "/usr/bin/tf_serving_entrypoint.sh").stdout
    assert ('tensorflow_model_server --port=8500 --rest_api_port=8501 --model_name=${MODEL_NAME} '
            '--model_base_path=${MODEL_BASE_PATH}/${MODEL_NAME} "$@"') in script
    assert "exec" not in script
    probe = _run("docker", "run", "--rm", "--network", "host", "--entrypoint", "bash", image, "-c",
                 "command -v tensorflow_model_server; command -v curl || echo no-curl; command -v wget || echo no-wget")
    assert probe.stdout.split() == ["/usr/bin/tensorflow_model_server", "no-curl", "no-wget"]


def test_container_serves_on_host_network(container, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(os.path.join(FIXTURES, "half_plus"), str(models / "half_plus"))
    os.chmod(str(tmp_path), 0o755)
    grpc, rest = free_port(), free_port()
    name = container("--port=%d" % grpc, "--rest_api_port=%d" % rest, env=["MODEL_NAME=half_plus"],
                     volumes=["%s:/models/half_plus:ro" % (models / "half_plus")])
    base = "http://127.0.0.1:%d" % rest

    def answered():
        try:
            return http("GET", base + "/v1/models/half_plus", timeout=1)
        except OSError:
            return None
    code, text, _ = wait_for(answered, 30, interval=0.2, what="container REST on 127.0.0.1:%d" % rest)
    assert code == 200
    assert json.loads(text)["model_version_status"][0] == {
        "version": "3", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    code, text, _ = http("POST", base + "/v1/models/half_plus:predict", {"instances": [2.0]})
    assert (code, json.loads(text)) == (200, {"predictions": [5.0]})
    # The health check a role can run inside the container: bash's /dev/tcp, no curl.
    probe = _run("docker", "exec", name, "bash", "-c",
                 "exec 3<>/dev/tcp/127.0.0.1/%d && printf 'GET /v1/models/half_plus HTTP/1.0\\r\\n\\r\\n' >&3 "
                 "&& cat <&3" % rest)
    assert "HTTP/1.0 200" in probe.stdout.splitlines()[0] and '"AVAILABLE"' in probe.stdout
    logs = _run("docker", "logs", name).stderr
    assert "Exporting HTTP/REST API at:localhost:%d" % rest in logs
    # Even as root on a writable root filesystem the server writes nothing (no bytecode, no caches), so a
    # read-only one takes nothing away; the only change is the mount point Docker made for the models.
    assert _run("docker", "diff", name).stdout.splitlines() == ["C /models", "A /models/half_plus"]


def _role_hardening():
    """The serving role's default hardening, as it passes it to serving_apply."""
    with open(os.path.join(REPO, "roles", "serving", "defaults", "main.yml")) as f:
        defaults = yaml.safe_load(f)
    return dict((name, defaults["serving_" + name]) for name in serving_apply.HARDENING)


def _exec(name, script):
    return _run("docker", "exec", name, "bash", "-c", script, check=False)


@pytest.fixture
def applied(image, tmp_path):
    """Runs half_plus (versions 1 and 2, stable -> 1) the way serving_apply does, with the given hardening."""
    models = tmp_path / "models"
    shutil.copytree(os.path.join(FIXTURES, "half_plus"), str(models / "half_plus"))
    os.chmod(str(tmp_path), 0o755)
    client = docker.from_env(version="auto")
    names = []

    def apply(hardening):
        name = "tfserving-hardening-test-%s" % uuid.uuid4().hex[:8]
        names.append(name)
        unit = {"name": name, "model": "half_plus", "topology": "shared", "versions": [1, 2],
                "labels": {"stable": 1}, "image": image, "grpc_port": free_port(), "rest_port": free_port(),
                "host_path": str(models / "half_plus"), "container_path": "/models/half_plus", "resources": {},
                "config_dir": str(tmp_path / "etc" / name)}
        unit["command"] = serving_host.server_command(unit, poll_seconds=1)
        result = serving_apply.apply(client, units=[unit], host="test", hardening=hardening,
                                     remove_undeclared=False, wait_timeout=60)
        assert result["units"][name]["container"] == "created"
        return client, unit, name

    yield apply
    for name in names:
        try:
            client.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass


def test_the_roles_hardened_container_serves_read_only_models(applied):
    """The container serving_apply makes with the role's defaults: non-root, read-only, no capabilities."""
    hardening = _role_hardening()
    assert hardening == serving_apply.HARDENING
    client, unit, name = applied(hardening)
    attrs = client.containers.get(name).attrs
    host = attrs["HostConfig"]
    assert (attrs["Config"]["User"], host["ReadonlyRootfs"], host["CapDrop"], host["SecurityOpt"],
            host["PidsLimit"], host["Tmpfs"]) == (
        "65534:65534", True, ["ALL"], ["no-new-privileges:true"], 4096,
        {"/tmp": "rw,noexec,nosuid,nodev,size=64m"})
    # REST and gRPC answer, each version with its own numbers (y = 0.5 x + version + 1).
    code, text, _ = http("POST", "http://127.0.0.1:%d/v1/models/half_plus/labels/stable:predict"
                         % unit["rest_port"], {"instances": [2.0]})
    assert (code, json.loads(text)) == (200, {"predictions": [3.0]})
    with grpc.insecure_channel("127.0.0.1:%d" % unit["grpc_port"]) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            predict_request("half_plus", [2.0], version=2), timeout=10)
    assert response.model_spec.version.value == 2 and list(response.outputs["y"].float_val) == [4.0]
    # Every process of the container: nobody, no capabilities at all, no way to gain any.
    fields = {}
    for line in _exec(name, "cat /proc/[0-9]*/status").stdout.splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "CapEff", "CapPrm", "CapBnd", "NoNewPrivs"):
            fields.setdefault(key, set()).add(tuple(value.split()))
    assert fields == {"Uid": {("65534",) * 4}, "Gid": {("65534",) * 4}, "CapEff": {("0000000000000000",)},
                      "CapPrm": {("0000000000000000",)}, "CapBnd": {("0000000000000000",)},
                      "NoNewPrivs": {("1",)}}
    # Nothing outside the tmpfs is writable: not the root filesystem, the models or the config.
    for path in ("/x", "/usr/bin/x", "/models/half_plus/x", "/etc/tfserving/x"):
        touched = _exec(name, "touch %s" % path)
        assert touched.returncode != 0 and "Read-only file system" in touched.stderr, (path, touched.stderr)
    assert _exec(name, "touch /tmp/x && echo ok").stdout.split() == ["ok"]
    assert _exec(name, "id -u; id -g").stdout.split() == ["65534", "65534"]
    # The health check (bash's /dev/tcp) works as nobody too.
    wait_for(lambda: client.containers.get(name).attrs["State"]["Health"]["Status"] == "healthy", 40,
             interval=1, what="the health check of %s" % name)


def test_hardening_off_leaves_the_images_defaults(applied):
    off = {"user": "", "read_only": False, "tmpfs": {}, "cap_drop": [], "no_new_privileges": False, "pids_limit": 0}
    client, unit, name = applied(off)
    attrs = client.containers.get(name).attrs
    host = attrs["HostConfig"]
    assert (attrs["Config"]["User"], host["ReadonlyRootfs"], host.get("CapDrop"), host.get("SecurityOpt"),
            host.get("PidsLimit") or 0, host.get("Tmpfs")) == ("", False, None, None, 0, None)
    assert _exec(name, "id -u; touch /x && echo written").stdout.split() == ["0", "written"]
    code, text, _ = http("POST", "http://127.0.0.1:%d/v1/models/half_plus/versions/2:predict" % unit["rest_port"],
                         {"instances": [2.0]})
    assert (code, json.loads(text)) == (200, {"predictions": [4.0]})
