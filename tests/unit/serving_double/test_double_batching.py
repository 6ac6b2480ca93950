"""Request batching in the TF Serving test double, and the collection's batching parameters against it.

TF Serving reads --batching_parameters_file at start, creates the shared
batch scheduler then (num_batch_threads), and wraps each version's session
for batching when it loads it (allowed_batch_sizes, the queue options): what
fails there fails that version's load.
"""

import pytest
from google.protobuf import descriptor, json_format, text_format

from ansible_collections.mlserve.tfserving.plugins.module_utils import batching

EVERY_FIELD = {"max_batch_size": 16, "batch_timeout_micros": 2000, "max_enqueued_batches": 4, "num_batch_threads": 2,
               "thread_pool_name": 'pool "a"', "allowed_batch_sizes": [4, 8, 16], "pad_variable_length_inputs": True,
               "enable_large_batch_splitting": True, "max_execution_batch_size": 8}


def start_batched(start_double, models, tmp_path, params, *args):
    path = tmp_path / "batching.config"
    path.write_text(batching.render(params))
    return start_double("--model_name=half_plus", "--model_base_path=%s" % (models / "half_plus"),
                        "--enable_batching=true", "--batching_parameters_file=%s" % path, *args)


def test_the_fields_are_those_of_the_message_the_server_parses(double_module):
    def kind(field):
        if field.is_repeated:
            return "int64_list"
        if field.type == descriptor.FieldDescriptor.TYPE_BOOL:
            return "bool_plain"
        return {"Int64Value": "int64", "StringValue": "string", "BoolValue": "bool"}[field.message_type.name]
    fields = double_module.BatchingParameters.DESCRIPTOR.fields
    assert dict((f.name, (f.number, kind(f))) for f in fields) == batching.FIELDS


def test_a_rendered_file_parses_back_to_every_value(double_module):
    message = text_format.Parse(batching.render(EVERY_FIELD), double_module.BatchingParameters())
    parsed = json_format.MessageToDict(message, preserving_proto_field_name=True)
    # JSON writes int64 as strings.
    assert parsed == dict(EVERY_FIELD, max_batch_size="16", batch_timeout_micros="2000", max_enqueued_batches="4",
                          num_batch_threads="2", allowed_batch_sizes=["4", "8", "16"], max_execution_batch_size="8")
    assert batching.problems(EVERY_FIELD, "batching") == []


def test_a_batched_version_loads_and_the_server_logs_its_wrapping(start_double, models, tmp_path):
    d = start_batched(start_double, models, tmp_path, {"max_batch_size": 8, "allowed_batch_sizes": [2, 8]})
    d.wait_rest()
    assert d.wait_states("half_plus", {3: "AVAILABLE"})
    assert d.predict("/v1/models/half_plus:predict", [1.0, 2.0]) is not None
    assert d.stderr().count("Wrapping session to perform batch processing") == 1


def test_at_vlog_level_1_the_server_logs_the_parameters_it_read(start_double, models, tmp_path):
    path = tmp_path / "batching.config"
    path.write_text(batching.render({"max_batch_size": 8, "num_batch_threads": 2}))
    d = start_double("--model_name=half_plus", "--model_base_path=%s" % (models / "half_plus"),
                     "--enable_batching=true", "--batching_parameters_file=%s" % path,
                     env={"TF_CPP_MAX_VLOG_LEVEL": "1"})
    d.wait_rest()
    d.wait_states("half_plus", {3: "AVAILABLE"})
    assert ("Wrapping session to perform batch processing using session config batching params: max_batch_size {\n"
            "  value: 8\n}\nnum_batch_threads {\n  value: 2\n}\n") in d.stderr()


@pytest.mark.parametrize("params, error", [
    ({"max_batch_size": 8, "allowed_batch_sizes": [4, 6]},
     "Last entry in allowed_batch_sizes must match max_batch_size; last entry was 6; expected 8"),
    # Without max_batch_size the limit is the scheduler's default, 1000.
    ({"allowed_batch_sizes": [4, 8]},
     "Last entry in allowed_batch_sizes must match max_batch_size; last entry was 8; expected 1000"),
    ({"max_batch_size": 8, "enable_large_batch_splitting": True, "max_execution_batch_size": 16},
     "When enable_large_batch_splitting is true, input_batch_size_limit must be greater than or equal to "
     "max_execution_batch_size."),
])
def test_what_fails_a_load_is_what_the_plan_refuses_quoting_the_server(params, error, start_double, models,
                                                                        tmp_path):
    d = start_batched(start_double, models, tmp_path, params, "--max_num_load_retries=0")
    # A version that fails its first load stops the server at start.
    assert d.wait_exit(timeout=20) == 255
    assert "{name: half_plus version: 3} failed: INVALID_ARGUMENT: %s" % error in d.stderr()
    [problem] = batching.problems(params, "batching")
    assert error in problem


def test_no_batch_threads_fails_the_start_and_the_plan_refuses_it(start_double, models, tmp_path):
    d = start_batched(start_double, models, tmp_path, {"num_batch_threads": 0})
    assert d.wait_exit() == 255
    assert d.stdout() == "Failed to start server. Error: INVALID_ARGUMENT: num_batch_threads must be positive; was 0\n"
    assert batching.problems({"num_batch_threads": 0}, "batching") == [
        "batching.num_batch_threads: 0 is not valid; use an integer from 1"]
