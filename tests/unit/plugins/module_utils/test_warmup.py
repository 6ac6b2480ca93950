"""Warmup records (assets.extra/tf_serving_warmup_requests), checked as TF Serving replays them, before any copy."""

import os
import shutil
import struct

import pytest
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from ansible_collections.mlserve.tfserving.plugins.action import fleet_plan
from ansible_collections.mlserve.tfserving.plugins.module_utils import saved_model as sm

from ...conftest import FIXTURES

MODEL = os.path.join(FIXTURES, "tf1_half_plus_two_snappy")
WARMUP = os.path.join("assets.extra", "tf_serving_warmup_requests")


def frame(record):
    """One TFRecord: length, its masked CRC, the record, its masked CRC."""
    length = struct.pack("<Q", len(record))
    return (length + struct.pack("<I", sm.masked_crc32c(length)) + record
            + struct.pack("<I", sm.masked_crc32c(record)))


@pytest.fixture
def version(tmp_path):
    """A copy of the fixture's version 123, whose warmup file TensorFlow's TFRecord writer wrote."""
    path = tmp_path / "m" / "00000123"
    shutil.copytree(os.path.join(MODEL, "00000123"), str(path))
    return path


def records(version):
    with open(str(version / WARMUP), "rb") as f:
        return list(sm.tfrecords(f.read()))


def write(version, data):
    (version / WARMUP).write_bytes(data)


def check(version):
    return sm.check_version(str(version), ["serve"], "serving_default")


def test_tensorflows_records_are_read_and_counted(version):
    found = records(version)
    assert [offset for offset, _ in found][0] == 0 and len(found) == 4
    # The framing here is TensorFlow's: the same records framed again give its bytes.
    assert b"".join(frame(r) for _, r in found) == (version / WARMUP).read_bytes()
    kinds = [prediction_log_pb2.PredictionLog.FromString(r).WhichOneof("log_type") for _, r in found]
    assert kinds == ["predict_log", "classify_log", "regress_log", "multi_inference_log"]
    assert check(version)["warmup_records"] == 4


def test_no_warmup_file_is_zero_records(version):
    os.remove(str(version / WARMUP))
    assert check(version)["warmup_records"] == 0


def test_a_changed_byte_is_named_by_its_record(version):
    second = records(version)[1][0]
    data = bytearray((version / WARMUP).read_bytes())
    data[second + 12 + 3] ^= 0x01  # inside record 2's data
    write(version, bytes(data))
    with pytest.raises(sm.SavedModelError) as e:
        check(version)
    assert str(e.value) == ("assets.extra/tf_serving_warmup_requests, record 2: corrupted record at %d; TF Serving "
                            "fails the load on it (DATA_LOSS: it is not a valid TFRecord file)" % (second + 12))


def test_a_cut_file_is_named_by_its_last_record(version):
    last = records(version)[3][0]
    write(version, (version / WARMUP).read_bytes()[:-3])
    with pytest.raises(sm.SavedModelError) as e:
        check(version)
    assert str(e.value).startswith("assets.extra/tf_serving_warmup_requests, record 4: truncated record at %d;"
                                   % (last + 12))


def predict_log(signature_name):
    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = signature_name
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def test_a_request_for_a_signature_the_version_lacks(version):
    good = [r for _, r in records(version)]
    write(version, b"".join(frame(r) for r in good[:2] + [predict_log("nope").SerializeToString()]))
    with pytest.raises(sm.SavedModelError) as e:
        check(version)
    assert str(e.value) == (
        "assets.extra/tf_serving_warmup_requests, record 3 asks for signature 'nope', which this version does not "
        "have (found: classify_x2_to_y3, classify_x_to_y, regress_x2_to_y3, regress_x_to_y, regress_x_to_y2, "
        "serving_default)")


def test_logs_tf_serving_does_not_replay_and_records_that_are_not_logs(version):
    session_run = prediction_log_pb2.PredictionLog()
    session_run.session_run_log.SetInParent()
    write(version, frame(session_run.SerializeToString()))
    with pytest.raises(sm.SavedModelError) as e:
        check(version)
    assert str(e.value) == ("assets.extra/tf_serving_warmup_requests, record 1: a session_run_log, which TF Serving "
                            "does not replay (it fails the load: UNIMPLEMENTED); use predict, classify, regress or "
                            "multi_inference logs")
    write(version, frame(predict_log("").SerializeToString()) + frame(b"\xff\xff not a proto"))
    with pytest.raises(sm.SavedModelError) as e:
        check(version)
    assert str(e.value).startswith("assets.extra/tf_serving_warmup_requests, record 2 (at byte %d): not a "
                                   "PredictionLog (" % len(frame(predict_log("").SerializeToString())))


def test_at_most_the_records_tf_serving_reads(version):
    one = frame(predict_log("").SerializeToString())
    write(version, one * sm.WARMUP_MAX_RECORDS)
    assert check(version)["warmup_records"] == 1000
    write(version, one * (sm.WARMUP_MAX_RECORDS + 1))
    with pytest.raises(sm.SavedModelError) as e:
        check(version)
    assert str(e.value) == ("assets.extra/tf_serving_warmup_requests holds more than 1000 records, the most TF "
                            "Serving replays; it fails the load")


def test_the_plan_refuses_a_broken_warmup_file_before_any_copy(version):
    write(version, (version / WARMUP).read_bytes()[:-3])
    model = {"name": "m", "source": str(version.parent), "versions": [123], "signature": "serving_default"}
    with pytest.raises(ValueError) as e:
        fleet_plan.source_reader(None)(model)
    assert str(e.value).startswith("%s: version 123 (00000123): assets.extra/tf_serving_warmup_requests, record 4: "
                                   "truncated record at " % version.parent)
