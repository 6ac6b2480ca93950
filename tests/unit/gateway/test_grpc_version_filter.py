"""The gateway's njs body filter (roles/gateway/files/tfserving_grpc.js), run by the real njs on TF Serving's
own response messages, encoded by protobuf and framed as gRPC frames them, split as the network splits them."""

import base64
import json
import os
import random
import shutil
import subprocess

import pytest
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     inference_pb2, predict_pb2, regression_pb2)

FILES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "gateway", "files")
SERVICE = "/tensorflow.serving.PredictionService/"


def framed(message, compressed=0):
    body = message.SerializeToString()
    return bytes([compressed]) + len(body).to_bytes(4, "big") + body


def predict(version, floats=4):
    response = predict_pb2.PredictResponse()
    response.model_spec.name = "half_plus"
    response.model_spec.version.value = version
    response.model_spec.signature_name = "serving_default"
    out = response.outputs["y"]
    out.dtype = types_pb2.DT_FLOAT
    out.tensor_shape.dim.add(size=floats)
    out.tensor_content = bytes(4 * floats)
    return response


def metadata(version):
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = "half_plus"
    response.model_spec.version.value = version
    response.metadata["signature_def"].value = b"\x0a\x00" * 100
    return response


def classify(version):
    response = classification_pb2.ClassificationResponse()
    response.model_spec.name = "half_plus"
    response.model_spec.version.value = version
    response.result.classifications.add().classes.add(label="", score=3.0)
    return response


def regress(version):
    response = regression_pb2.RegressionResponse()
    response.model_spec.name = "half_plus"
    response.model_spec.version.value = version
    response.result.regressions.add(value=3.0)
    return response


def multi(version):
    response = inference_pb2.MultiInferenceResponse()
    for v in (version, version + 1):
        result = response.results.add()
        result.model_spec.name = "half_plus"
        result.model_spec.version.value = v
        result.regression_result.regressions.add(value=3.0)
    return response


def status():
    response = get_model_status_pb2.GetModelStatusResponse()
    response.model_version_status.add(version=2, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    return response


def run(uri, chunks):
    """The filter over `chunks` of one response; what it logged and how many bytes it passed on."""
    assert shutil.which("njs"), "njs (Debian package) is needed to test the gateway's gRPC version filter"
    script = """
import filter from 'tfserving_grpc.js';
var chunks = %s;
var r = {uri: %s, variables: {tfs_grpc_version: ''}, sent: 0,
         sendBuffer: function (data, flags) { this.sent += data.length; }};
chunks.forEach(function (c, i) { filter.version(r, Buffer.from(c, 'base64'), {last: i == chunks.length - 1}); });
console.log(JSON.stringify({version: r.variables.tfs_grpc_version, sent: r.sent}));
""" % (json.dumps([base64.b64encode(c).decode() for c in chunks]), json.dumps(uri))
    done = subprocess.run(["njs", "-p", FILES, "-"], input=script, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def splits(data, seed):
    """`data` whole, byte by byte (when small), and cut at random places."""
    cuts = sorted(random.Random(seed).sample(range(1, len(data)), min(6, len(data) - 1)))
    out = [[data], [data[i:j] for i, j in zip([0] + cuts, cuts + [len(data)])]]
    if len(data) < 400:
        out.append([data[i:i + 1] for i in range(len(data))])
    return out


@pytest.mark.parametrize("method, response, version", [
    ("Predict", predict(2), "2"),
    ("Predict", predict(1234567, floats=100000), "1234567"),  # outputs of 400 kB before the ModelSpec
    ("GetModelMetadata", metadata(7), "7"),
    ("Classify", classify(3), "3"),
    ("Regress", regress(4), "4"),
    ("MultiInference", multi(5), "5"),  # the first result's
])
def test_the_version_that_answered_is_read_however_the_bytes_arrive(method, response, version):
    data = framed(response)
    for chunks in splits(data, method):
        assert run(SERVICE + method, chunks) == {"version": version, "sent": len(data)}


@pytest.mark.parametrize("uri, data", [
    ("/tensorflow.serving.ModelService/GetModelStatus", framed(status())),  # no ModelSpec in the answer
    (SERVICE + "Predict", framed(predict(2), compressed=1)),  # a compressed message is not read
    (SERVICE + "Predict", framed(predict_pb2.PredictResponse())),  # no ModelSpec
    (SERVICE + "Predict", framed(predict(2))[:40]),  # cut before the ModelSpec
])
def test_what_it_cannot_read_stays_unset_and_passes_unchanged(uri, data):
    for chunks in splits(data, uri):
        assert run(uri, chunks) == {"version": "", "sent": len(data)}


def test_an_error_without_a_message_passes_nothing_and_sets_nothing():
    assert run(SERVICE + "Predict", [b""]) == {"version": "", "sent": 0}
