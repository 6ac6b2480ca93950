"""Warmup: the double replays a version's warmup records while it loads, and a failing record fails the load."""

import os
import struct

from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

WARMUP = os.path.join("00000123", "assets.extra", "tf_serving_warmup_requests")


def _start(start_double, base, *extra):
    return start_double("--model_name=m", "--model_base_path=%s" % base, "--max_num_load_retries=0", *extra)


def _frame(double_module, record):
    length = struct.pack("<Q", len(record))
    crc = double_module.saved_model.masked_crc32c
    return length + struct.pack("<I", crc(length)) + record + struct.pack("<I", crc(record))


def test_the_records_are_replayed_before_the_version_serves(start_double, models):
    base = models / "tf1_half_plus_two_snappy"
    d = _start(start_double, base).wait_rest()
    d.wait_states("m", {123: "AVAILABLE"})
    log = d.stderr()
    assert ("Finished reading warmup data for model at %s. Number of warmup records read: 4." % (base / WARMUP)) in log
    assert log.index("Number of warmup records read") < log.index("Successfully loaded servable version")
    assert d.predict("/v1/models/m:predict", [2.0]) == [3.0]


def test_a_failing_record_fails_the_load_with_the_servers_message(start_double, models, double_module):
    base = models / "tf1_half_plus_two_snappy"
    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = "nope"
    record = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    (base / WARMUP).write_bytes(_frame(double_module, record.SerializeToString()))
    d = _start(start_double, base)
    assert d.wait_exit() == 255
    assert ("Loading servable: {name: m version: 123} failed: FAILED_PRECONDITION: Serving signature key \"nope\" "
            "not found.") in d.stderr()
    # With warmup off, the same version loads.
    _start(start_double, base, "--enable_model_warmup=false").wait_rest().wait_states("m", {123: "AVAILABLE"})


def test_a_damaged_file_is_data_loss(start_double, models):
    base = models / "tf1_half_plus_two_snappy"
    data = bytearray((base / WARMUP).read_bytes())
    data[20] ^= 0x01  # inside record 1's data, which starts at byte 12
    (base / WARMUP).write_bytes(bytes(data))
    d = _start(start_double, base)
    assert d.wait_exit() == 255
    assert ("failed: DATA_LOSS: corrupted record at 12. Please verify your warmup data is in TFRecord format."
            in d.stderr())
