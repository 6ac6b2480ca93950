"""The TF Serving test double's image: build it, run it like tensorflow/serving, ask it on 127.0.0.1.

Uses the local Debian 12 lab image as base (SERVING_DOUBLE_BASE_IMAGE, default
mlserve-lab:debian12); builds that with lab/build-image.sh when it is missing.
"""

import json
import os
import shutil
import subprocess
import uuid

import pytest

from double_helpers import FIXTURES, REPO, free_port, http, wait_for

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
