"""What a serving host renders and reads (module_utils/serving_host.py): models.config and its label staging,
the server's command and monitoring config, the server's status and the engine's containers."""

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from ansible_collections.mlserve.tfserving.plugins.module_utils import serving_host

from .test_fleet import model, plan


def parse_config(text):
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


@pytest.mark.parametrize("declared", [
    model(labels={"stable": 1, "canary": 2}),
    model(versions=[3]),
    model(name="iso", topology="isolated", versions=[1, 2, 3]),
])
def test_every_rendered_config_parses_as_the_real_proto(declared):
    for unit in plan(declared):
        parsed = parse_config(serving_host.models_config(unit))
        [config] = parsed.model_config_list.config
        assert config.name == declared["name"]
        assert config.base_path == "/models/%s" % declared["name"]
        assert config.model_platform == "tensorflow"
        assert list(config.model_version_policy.specific.versions) == unit["versions"]
        assert dict(config.version_labels) == unit["labels"]


def test_staged_config_parses_too():
    [unit] = plan(model(labels={"stable": 2}))
    parsed = parse_config(serving_host.models_config(unit, labels={"stable": 1}, versions=[1, 2]))
    assert dict(parsed.model_config_list.config[0].version_labels) == {"stable": 1}


def test_label_move_to_a_loading_version_takes_two_steps():
    step1, step2 = serving_host.stage_labels({"stable": 2}, [2], {"stable": 1}, available=[1])
    assert step1 == {"versions": [1, 2], "labels": {"stable": 1}}
    assert step2 == {"versions": [2], "labels": {"stable": 2}}


def test_label_move_to_an_available_version_takes_one_step():
    step1, step2 = serving_host.stage_labels({"stable": 2}, [1, 2], {"stable": 1}, available=[1, 2])
    assert step1 == step2 == {"versions": [1, 2], "labels": {"stable": 2}}


def test_new_label_on_a_loading_version_waits_for_step_two():
    step1, step2 = serving_host.stage_labels({"canary": 3}, [1, 3], {}, available=[1])
    assert step1 == {"versions": [1, 3], "labels": {}}
    assert step2["labels"] == {"canary": 3}


def test_a_server_that_does_not_answer_keeps_the_labels_it_holds_where_they_are_wanted():
    """A slow status answer is not a server without versions: an unchanged config is not rewritten without labels."""
    step1, step2 = serving_host.stage_labels({"stable": 1, "canary": 2}, [1, 2], {"stable": 1, "canary": 2},
                                             available=None)
    assert step1 == step2 == {"versions": [1, 2], "labels": {"stable": 1, "canary": 2}}
    # A move still waits for the new target, which nothing says is AVAILABLE.
    step1, step2 = serving_host.stage_labels({"stable": 2}, [2], {"stable": 1}, available=None)
    assert step1 == {"versions": [2], "labels": {}} and step2 == {"versions": [2], "labels": {"stable": 2}}


def test_a_unit_with_a_metrics_path_reads_its_monitoring_config_beside_models_config():
    [unit] = plan(model())
    unit["metrics_path"] = "/monitoring/prometheus/metrics"
    command = serving_host.server_command(unit, {"tensorflow_intra_op_parallelism": 2}, poll_seconds=2)
    assert "--monitoring_config_file=/etc/tfserving/monitoring.config" in command
    assert command == sorted(command)  # the flags stay in name order, so the spec hash is stable
    assert serving_host.monitoring_config(unit) == (
        'prometheus_config {\n  enable: true\n  path: "/monitoring/prometheus/metrics"\n}\n')


@pytest.mark.parametrize("metrics_path", [None, ""])
def test_without_a_metrics_path_there_is_no_monitoring_flag(metrics_path):
    [unit] = plan(model())
    plain = serving_host.server_command(unit, poll_seconds=2)
    unit["metrics_path"] = metrics_path
    assert serving_host.server_command(unit, poll_seconds=2) == plain
    assert not any(flag.startswith("--monitoring_config_file") for flag in plain)


def test_server_command_renders_known_flags_in_name_value_form():
    [unit] = plan(model())
    command = serving_host.server_command(unit, {"rest_api_num_threads": 8, "rest_api_timeout_in_ms": 5000}, poll_seconds=2)
    assert command == [
        "--allow_version_labels_for_unavailable_models=true",
        "--file_system_poll_wait_seconds=1",
        "--grpc_channel_arguments=grpc.so_reuseport=0",
        "--model_config_file=/etc/tfserving/models.config",
        "--model_config_file_poll_wait_seconds=2",
        "--port=18500",
        "--rest_api_num_threads=8",
        "--rest_api_port=18501",
        "--rest_api_timeout_in_ms=5000",
    ]


def test_config_labels_reads_back_what_was_rendered():
    [unit] = plan(model(labels={"stable": 1, "canary": 2}))
    assert serving_host.config_labels(serving_host.models_config(unit)) == {"stable": 1, "canary": 2}
    assert serving_host.config_labels("") == {}


STATUS = {"model_version_status": [
    {"version": "3", "state": "LOADING", "status": {"error_code": "OK", "error_message": ""}},
    {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
    {"version": "1", "state": "END", "status": {"error_code": "NOT_FOUND", "error_message": "not there"}},
]}


def test_available_versions():
    assert serving_host.available_versions(STATUS) == [2]
    assert serving_host.available_versions({"error": "Could not find any versions of model m"}) == []
    assert serving_host.available_versions(None) == []


def test_status_problems_quote_the_server():
    [unit] = plan(model(versions=[1, 2, 3]))
    assert serving_host.status_problems(unit, STATUS) == [
        "tfserving-half_plus: version 1 of half_plus is END (NOT_FOUND: not there)",
        "tfserving-half_plus: version 3 of half_plus is LOADING (OK)",
    ]
    assert serving_host.status_problems(unit, {"error": "Could not find any versions of model half_plus"}) == [
        "tfserving-half_plus: Could not find any versions of model half_plus"]
    assert serving_host.status_problems(unit, "Connection refused") == ["tfserving-half_plus: Connection refused"]


def test_port_use_problems_name_the_other_process():
    [unit] = plan(model())
    listeners = [{"port": 18501, "pid": 42, "name": "python3"}, {"port": 18500, "pid": 0, "name": "unknown"}]
    problems = serving_host.port_use_problems([unit], listeners, managed=[], host="h1")
    assert problems == [
        "port 18500 on h1 is claimed by tfserving-half_plus (gRPC) and already held by a process this host cannot "
        "name (another container or namespace); free it, pin another port, or change tfserving_port_base",
        "port 18501 on h1 is claimed by tfserving-half_plus (REST) and already held by python3 (pid 42); free it, "
        "pin another port, or change tfserving_port_base",
    ]
    assert serving_host.port_use_problems([unit], listeners, managed=[18500, 18501]) == []


def test_managed_ports_come_from_running_containers_of_this_collection():
    containers = [
        {"State": "running", "Labels": {"mlserve.tfserving.managed": "true", "mlserve.tfserving.rest_port": "18501",
                                        "mlserve.tfserving.grpc_port": "18500"}},
        {"State": "exited", "Labels": {"mlserve.tfserving.managed": "true", "mlserve.tfserving.rest_port": "18503"}},
        {"State": "running", "Labels": {"mlserve.tfserving.rest_port": "18505"}},
    ]
    assert serving_host.managed_ports(containers) == [18500, 18501]
    assert serving_host.managed_ports(None) == []
