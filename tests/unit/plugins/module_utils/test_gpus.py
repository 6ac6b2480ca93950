"""GPUs: what a declaration may ask for, the device requests Docker gets, and the engine check on a host."""

import docker
import pytest

from ansible_collections.mlserve.tfserving.plugins.module_utils import gpus
from ansible_collections.mlserve.tfserving.plugins.module_utils import serving_apply as sa

from .test_serving_apply import FakeClient, make_unit


@pytest.mark.parametrize("value, request_", [
    ("all", {"Driver": "", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}),
    (2, {"Driver": "", "Count": 2, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}),
    ([0, "GPU-3a2f"], {"Driver": "", "Count": 0, "DeviceIDs": ["0", "GPU-3a2f"], "Capabilities": [["gpu"]],
                       "Options": {}}),
])
def test_each_form_becomes_the_device_request_docker_run_gpus_makes(value, request_, tmp_path):
    """--gpus all: Count -1; --gpus 2: Count 2; --gpus '"device=0,GPU-3a2f"': the IDs (as the docker CLI sends them)."""
    assert gpus.problems(value, "gpus") == []
    spec = sa.desired_container(make_unit(tmp_path, gpus=value))
    from docker.models.containers import _create_container_args
    host_config = _create_container_args(dict(spec, version="1.41"))["host_config"]
    assert host_config["DeviceRequests"] == [request_]
    assert isinstance(docker.types.DeviceRequest(**spec["device_requests"][0]), docker.types.DeviceRequest)


def test_a_unit_without_gpus_has_no_device_request(tmp_path):
    assert "device_requests" not in sa.desired_container(make_unit(tmp_path))


@pytest.mark.parametrize("value", [0, -1, True, "2", "some", [], [0, 0], ["0", 0], [""], ["0,1"], [-1], [1.5]])
def test_anything_else_is_refused_naming_what_is_valid(value):
    [problem] = gpus.problems(value, "tfserving_models[0].gpus")
    assert problem.startswith("tfserving_models[0].gpus: %r " % (value,))


def unit(name, gpus_=None, image="tensorflow/serving:2.19.0-gpu", shared=False):
    return {"name": name, "gpus": gpus_, "image": image, "gpus_shared": shared}


def test_the_host_findings():
    # A GPU host: one device pinned twice is refused unless both may share it.
    found, warnings = gpus.host_findings([unit("a", [0]), unit("b", [0, 1]), unit("c", "all")], True)
    assert found == ["GPU 0 is pinned by a and b; give each its own device, or set gpus_shared: true on their models "
                     "if they may share it"] and warnings == []
    assert gpus.host_findings([unit("a", [0], shared=True), unit("b", [0], shared=True)], True) == ([], [])
    # A host without GPUs.
    found, _ = gpus.host_findings([unit("a", 1)], False)
    assert found == ["a: gpus (1) on a host without GPUs (serving_gpu_host: false); serve the model on GPU hosts "
                     "(hosts: a group of them) or set serving_gpu_host: true where they are"]
    # Images: a -gpu build without gpus, gpus with a CPU build.
    assert gpus.host_findings([unit("a"), unit("b", "all", image="tensorflow/serving:2.19.0")], True)[1] == [
        "a: image tensorflow/serving:2.19.0-gpu without gpus: the container gets no GPU and serves on the CPU; "
        "declare gpus for it",
        "b: gpus (all) with image tensorflow/serving:2.19.0, which is not a -gpu build: TF Serving's CPU build does "
        "not use them"]
    assert gpus.is_gpu_image("registry.example:5000/tensorflow/serving:2.19.0-devel-gpu")
    assert not gpus.is_gpu_image("gpu-mirror:5000/tensorflow/serving:2.19.0")


def test_the_engine_check_names_the_units_and_what_to_install(tmp_path):
    asking = [unit("tfserving-embedder-v4", "all"), unit("tfserving-ranker")]
    problem = gpus.engine_problem(asking, {"runc": {}}, path=[str(tmp_path)])
    assert problem == (
        "tfserving-embedder-v4 asks for GPUs, and this host's Docker engine has no GPU support: neither the nvidia "
        "runtime nor nvidia-container-runtime-hook is installed. Install the NVIDIA Container Toolkit (package "
        "nvidia-container-toolkit) and the NVIDIA driver, run nvidia-ctk runtime configure --runtime=docker, and "
        "restart Docker")
    assert gpus.engine_problem(asking, {"runc": {}, "nvidia": {}}, path=[str(tmp_path)]) is None
    (tmp_path / gpus.HOOK).write_text("")
    assert gpus.engine_problem(asking, {"runc": {}}, path=[str(tmp_path)]) is None
    assert gpus.engine_problem([unit("tfserving-ranker")], {}) is None


def test_serving_apply_refuses_gpus_the_engine_cannot_give_before_anything_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(gpus, "HOOK_PATH", (str(tmp_path),))
    client = FakeClient()
    client.info = lambda: {"Runtimes": {"runc": {"path": "runc"}}}
    asking = make_unit(tmp_path, gpus="all")
    with pytest.raises(sa.ApplyError) as e:
        sa.apply(client, units=[asking, make_unit(tmp_path, "tfserving-other")], host="host1")
    assert e.value.msg.startswith("host1: tfserving-half_plus asks for GPUs, and this host's Docker engine has no GPU "
                                  "support")
    assert client.mutations() == [] and not (tmp_path / "etc").exists()
