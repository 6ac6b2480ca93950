"""Command line, start-up checks and ports of the TF Serving test double."""

import socket

from double_helpers import free_port, model_config, port_open, wait_for

from ansible_collections.mlserve.tfserving.plugins.module_utils import fleet


# ---------------------------------------------------------------- parsing (in process)

def test_last_occurrence_wins(double_module):
    values, ok, unknown = double_module.parse_flags(["--port=8500", "--rest_api_port=8501", "--port=9000",
                                                     "--rest_api_port=9001"])
    assert ok and not unknown
    assert (values["port"], values["rest_api_port"]) == (9000, 9001)


def test_defaults(double_module):
    values, ok, unknown = double_module.parse_flags([])
    assert ok and unknown == []
    assert values["port"] == 8500
    assert values["rest_api_port"] == 0
    assert values["model_config_file_poll_wait_seconds"] == 0
    assert values["file_system_poll_wait_seconds"] == 1
    assert values["allow_version_labels_for_unavailable_models"] is False
    assert values["rest_api_timeout_in_ms"] == 30000
    assert values["enable_model_warmup"] is True
    assert values["saved_model_tags"] == "serve"
    assert values["model_name"] == "default"
    assert values["max_num_load_retries"] == 5


def test_booleans_bare_true_false(double_module):
    values, ok, _ = double_module.parse_flags(["--enable_batching", "--enable_model_warmup=false",
                                              "--allow_version_labels_for_unavailable_models=true"])
    assert ok
    assert values["enable_batching"] is True
    assert values["enable_model_warmup"] is False
    assert values["allow_version_labels_for_unavailable_models"] is True


def test_only_name_equals_value_is_understood(double_module):
    values, ok, unknown = double_module.parse_flags(["--port", "9000", "-rest_api_port=1", "rest_api_port=2"])
    assert ok
    assert unknown == ["--port", "9000", "-rest_api_port=1", "rest_api_port=2"]
    assert values["port"] == 8500 and values["rest_api_port"] == 0


def test_bad_values_fail_parsing(double_module):
    for bad in (["--port=abc"], ["--port=80x"], ["--port="], ["--port=99999999999"], ["--enable_batching=yes"],
                ["--enable_batchingX"], ["--per_process_gpu_memory_fraction=lots"]):
        _, ok, _ = double_module.parse_flags(bad)
        assert not ok, bad


def test_unknown_and_double_dash(double_module):
    _, ok, unknown = double_module.parse_flags(["--bogus=1", "--port=1", "--", "--port=2"])
    assert ok
    assert unknown == ["--bogus=1", "--", "--port=2"]
    _, ok, unknown = double_module.parse_flags(["--help"])
    assert not ok


def test_usage_format(double_module):
    text = double_module.usage("tensorflow_model_server")
    assert text.startswith("usage: tensorflow_model_server\nFlags:\n")
    assert "\t--port=8500                      \tint32\tgRPC port" in text
    assert '\t--model_config_file=""' in text
    assert "\t--enable_batching=false" in text


# ---------------------------------------------------------------- the process

def test_unknown_flag_prints_usage_and_keeps_running(start_double, models):
    d = start_double("--model_name=half_plus", "--model_base_path=%s" % (models / "half_plus"),
                     "--rest_api_timout_in_ms=100")
    d.wait_rest()
    out = d.stdout()
    assert out.startswith("unknown argument: --rest_api_timout_in_ms=100\nusage: ")
    assert "Flags:" in out
    assert d.get("/v1/models/half_plus")[0] == 200


def test_bad_value_prints_usage_and_exits_255(start_double, models):
    d = start_double("--model_base_path=%s" % (models / "half_plus"), "--file_system_poll_wait_seconds=fast")
    assert d.wait_exit() == 255
    assert d.stdout().startswith("usage: ")
    assert "Couldn't interpret value fast for flag file_system_poll_wait_seconds." in d.stderr()


def test_version(start_double):
    d = start_double("--version")
    assert d.wait_exit() == 0
    assert d.stdout().startswith("TensorFlow ModelServer: ")


def test_arguments_after_the_entrypoints_override_them(start_double, models):
    # The image's entrypoint passes --port=8500 --rest_api_port=8501 first; "$@" comes last and wins.
    rest = free_port()
    d = start_double("--port=1", "--rest_api_port=2", "--model_name=half_plus",
                     "--model_base_path=%s" % (models / "half_plus"),
                     "--port=%d" % free_port(), "--rest_api_port=%d" % rest, rest_port=rest)
    d.wait_rest()
    assert d.get("/v1/models/half_plus")[0] == 200


def test_needs_a_model(start_double):
    d = start_double()
    assert d.wait_exit() == 255
    assert d.stdout() == ("Failed to start server. Error: INVALID_ARGUMENT: Both server_options.model_base_path "
                          "and server_options.model_config_file are empty!\n")


def test_model_name_and_base_path_ignored_with_config_file(start_double, models, tmp_path):
    config = tmp_path / "models.config"
    config.write_text(model_config({"name": "from_config", "base_path": str(models / "half_plus")}))
    d = start_double("--model_name=from_flags", "--model_base_path=/does/not/exist",
                     "--model_config_file=%s" % config)
    d.wait_rest()
    assert d.get("/v1/models/from_config")[0] == 200
    assert d.get("/v1/models/from_flags")[0] == 404


def test_the_plan_refuses_the_thread_flags_the_server_refuses_at_start_in_its_words(start_double, models):
    flags = {"tensorflow_session_parallelism": 2, "tensorflow_intra_op_parallelism": 2,
             "tensorflow_inter_op_parallelism": 2}
    d = start_double("--model_base_path=%s" % (models / "half_plus"),
                     *["--%s=%s" % (name, value) for name, value in flags.items()])
    assert d.wait_exit() == 255
    error = d.stdout().strip().split("INVALID_ARGUMENT: ", 1)[1]
    [problem] = fleet.server_flag_problems(flags)
    assert error in problem


def test_batching_parameters_file_needs_enable_batching(start_double, models, tmp_path):
    batching = tmp_path / "batching.config"
    batching.write_text("max_batch_size { value: 32 }\nbatch_timeout_micros { value: 1000 }\n"
                        "num_batch_threads { value: 2 }\nallowed_batch_sizes: 8\nallowed_batch_sizes: 32\n")
    d = start_double("--model_base_path=%s" % (models / "half_plus"), "--batching_parameters_file=%s" % batching)
    assert d.wait_exit() == 255
    assert d.stdout() == ("Failed to start server. Error: INVALID_ARGUMENT: server_options.batching_parameters_file "
                          "is set without setting server_options.enable_batching to true.\n")
    ok = start_double("--model_base_path=%s" % (models / "half_plus"), "--model_name=half_plus",
                      "--enable_batching", "--batching_parameters_file=%s" % batching)
    ok.wait_rest()
    batching.write_text("max_batch_size: 32\n")  # not a wrapper message: invalid
    bad = start_double("--model_base_path=%s" % (models / "half_plus"), "--enable_batching=true",
                       "--batching_parameters_file=%s" % batching)
    assert bad.wait_exit() == 255
    assert "Invalid protobuf file: '%s'" % batching in bad.stdout()


def test_rest_off_by_default(start_double, models):
    grpc = free_port()
    d = start_double("--port=%d" % grpc, "--rest_api_port=0", "--model_base_path=%s" % (models / "half_plus"))
    d.wait_log("Running gRPC ModelServer at 0.0.0.0:%d ..." % grpc)
    assert port_open(grpc)
    assert "Exporting HTTP/REST API" not in d.stderr()
    assert d.proc.poll() is None


def test_rest_port_equal_to_grpc_port_is_skipped(start_double, models):
    port = free_port()
    d = start_double("--port=%d" % port, "--rest_api_port=%d" % port, "--model_base_path=%s" % (models / "half_plus"),
                     rest_port=port)
    d.wait_log("server_options.http_port cannot be same as grpc_port. Please use a different port for HTTP/REST "
               "API. Skipped exporting HTTP/REST API.")
    assert d.proc.poll() is None
    assert port_open(port)  # the gRPC listener
    assert "Exporting HTTP/REST API" not in d.stderr()


def test_grpc_port_taken_by_another_socket_fails(start_double, models):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        d = start_double("--port=%d" % holder.getsockname()[1], "--model_base_path=%s" % (models / "half_plus"))
        assert d.wait_exit() == 255
        assert d.stdout() == "Failed to start server. Error: INVALID_ARGUMENT: Failed to BuildAndStart gRPC server\n"
    finally:
        holder.close()


def test_grpc_port_shared_silently_unless_so_reuseport_0(start_double, models):
    grpc = free_port()
    base = "--model_base_path=%s" % (models / "half_plus")
    first = start_double("--port=%d" % grpc, base, "--model_name=half_plus").wait_rest()
    second = start_double("--port=%d" % grpc, base, "--model_name=half_plus").wait_rest()
    assert first.proc.poll() is None and second.proc.poll() is None
    third = start_double("--port=%d" % grpc, base, "--grpc_channel_arguments=grpc.so_reuseport=0")
    assert third.wait_exit() == 255
    assert "Failed to BuildAndStart gRPC server" in third.stdout()


def test_rest_port_taken_logs_and_keeps_serving_grpc(start_double, models):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        rest = holder.getsockname()[1]
        d = start_double("--rest_api_port=%d" % rest, "--model_base_path=%s" % (models / "half_plus"), rest_port=rest)
        d.wait_log("Failed to start HTTP Server at localhost:%d" % rest)
        assert d.proc.poll() is None
        assert port_open(d.grpc_port)
    finally:
        holder.close()


def test_prometheus_metrics_page(start_double, models, tmp_path):
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n')
    d = start_double("--model_name=half_plus", "--model_base_path=%s" % (models / "half_plus"),
                     "--monitoring_config_file=%s" % monitoring).wait_rest()
    assert d.post("/v1/models/half_plus:predict", {"instances": [1.0]})[0] == 200
    code, text, headers = d.get("/monitoring/prometheus/metrics")
    assert code == 200 and headers["Content-Type"] == "text/plain"
    assert "# TYPE :tensorflow:serving:request_count counter" in text
    assert ':tensorflow:serving:request_count{model_name="half_plus",status="OK"} 1' in text
    assert ':tensorflow:cc:saved_model:load_attempt_count{model_path="%s",status="success"} 1' % (
        models / "half_plus" / "3") in text
    plain = start_double("--model_name=half_plus", "--model_base_path=%s" % (models / "half_plus")).wait_rest()
    assert plain.get("/monitoring/prometheus/metrics")[0] == 404


def test_bad_monitoring_config_fails_start(start_double, models, tmp_path):
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text("prometheus_config { enabled: true }\n")
    d = start_double("--model_base_path=%s" % (models / "half_plus"), "--monitoring_config_file=%s" % monitoring)
    assert d.wait_exit() == 255
    assert d.stdout() == "Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf file: '%s'\n" % monitoring


def test_accepted_flags_do_not_break_start(start_double, models):
    d = start_double("--model_name=half_plus", "--model_base_path=%s" % (models / "half_plus"),
                     "--rest_api_timeout_in_ms=5000", "--rest_api_num_threads=2", "--grpc_max_threads=2",
                     "--tensorflow_intra_op_parallelism=1", "--tensorflow_inter_op_parallelism=1",
                     "--enable_model_warmup=false", "--saved_model_tags=serve",
                     "--enable_grpc_healthcheck_service", "--grpc_channel_arguments=grpc.max_connection_age_ms=2000")
    d.wait_rest()
    assert wait_for(lambda: d.states("half_plus").get(3) == "AVAILABLE", 5)
