#!/usr/bin/env python3
"""Load TF Serving's own test SavedModels in the serving double and ask what TF Serving's tests ask.

    .venv/bin/python tests/upstream/check_testdata.py TESTDATA
    .venv/bin/python tests/upstream/check_testdata.py --fleet TESTDATA

TESTDATA is tensorflow_serving/servables/tensorflow/testdata from a checkout
of tensorflow/serving, fetched for the check and never committed (no network
here reaches it in CI, so this is a script, not a unit test). Every model is
served at once from one models.config, as a user would declare them; each
line printed is one request and whether the double gave the answer that TF
Serving's tests pin (tensorflow_model_server_test.py, predict_impl_test.cc,
http_rest_api_handler_test.cc). Exits 1 if any differs.

With --fleet the models go through the collection instead, as a user's
would: declared with their zero-padded version directories, site.yml
deploys them on the lab (`make demo` first), and the REST requests go
through the lab gateway. The lab keeps serving them until site.yml runs
again with the lab's own declaration.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import grpc
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, inference_pb2,
                                     model_service_pb2_grpc, get_model_status_pb2, predict_pb2,
                                     prediction_service_pb2_grpc, regression_pb2)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from unit.ports import free_port  # noqa: E402 (the unit tests' ports: never the same one twice)

SERVER = os.path.join(HERE, "..", "serving_double", "model_server_double.py")
# name in models.config -> (testdata directory, versions)
MODELS = {
    "half_plus_two": ("saved_model_half_plus_two_cpu", [123]),
    "half_plus_two_tf2": ("saved_model_half_plus_two_tf2_cpu", [123]),
    "half_plus_two_2_versions": ("saved_model_half_plus_two_2_versions", [123, 124]),
    "half_plus_two_config": ("saved_model_half_plus_two_cpu_with_saved_model_config", [123]),
    "half_plus_two_empty_config": ("saved_model_half_plus_two_cpu_with_empty_saved_model_config", [123]),
    "half_plus_three": ("saved_model_half_plus_three", [123]),
    "counter": ("saved_model_counter", [123]),
}
# The signature a model's versions all have, where it is not serving_default.
SIGNATURES = {"counter": "get_counter"}
FAILED = []
# The lab gateway's REST port (inventories/lab/group_vars/all/gateway.yml).
LAB_GATEWAY_PORT = 18080


def check(what, got, want):
    ok = got == want
    print("%s %s: %s" % ("ok  " if ok else "FAIL", what, json.dumps(got) if ok else "got %r, want %r" % (got, want)))
    if not ok:
        FAILED.append(what)


def rest(port, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        return {"http": e.code, "body": json.loads(e.read())}


def example(**features):
    proto = example_pb2.Example()
    for key, value in features.items():
        proto.features.feature[key].float_list.value.append(value)
    return proto


def scalar(value):
    return tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[value])


def grpc_checks(channel):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    for model in ("half_plus_two", "half_plus_two_tf2"):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = "serving_default"
        request.inputs["x"].CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[2.0]))
        request.inputs["x"].tensor_shape.dim.add(size=1)
        request.output_filter.append("y")
        answer = stub.Predict(request, timeout=10)
        check("gRPC Predict %s x=2" % model, (list(answer.outputs["y"].float_val), answer.model_spec.version.value),
              ([3.0], 123))

        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = "classify_x_to_y"
        request.input.example_list.examples.append(example(x=2.0))
        answer = stub.Classify(request, timeout=10)
        check("gRPC Classify %s classify_x_to_y x=2" % model,
              [[c.score for c in r.classes] for r in answer.result.classifications], [[3.0]])

        request = regression_pb2.RegressionRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = "regress_x_to_y"
        request.input.example_list.examples.append(example(x=2.0))
        answer = stub.Regress(request, timeout=10)
        check("gRPC Regress %s regress_x_to_y x=2" % model, [r.value for r in answer.result.regressions], [3.0])

        request = inference_pb2.MultiInferenceRequest()
        for signature, method in (("regress_x_to_y", "tensorflow/serving/regress"),
                                  ("classify_x_to_y", "tensorflow/serving/classify")):
            task = request.tasks.add()
            task.model_spec.name = model
            task.model_spec.signature_name = signature
            task.method_name = method
        request.input.example_list.examples.append(example(x=2.0))
        answer = stub.MultiInference(request, timeout=10)
        check("gRPC MultiInference %s" % model,
              [answer.results[0].regression_result.regressions[0].value,
               answer.results[1].classification_result.classifications[0].classes[0].score], [3.0, 3.0])

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = model
        answer = stub.GetModelMetadata(request, timeout=10)
        check("gRPC GetModelMetadata %s has signature_def" % model, "signature_def" in answer.metadata, True)

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_three"
    request.inputs["x"].CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[2.0]))
    request.inputs["x"].tensor_shape.dim.add(size=1)
    check("gRPC Predict half_plus_three x=2", list(stub.Predict(request, timeout=10).outputs["y"].float_val), [4.0])

    # predict_impl_test.cc PredictionWithCustomizedSignatures, in its order: the counter's state carries over.
    answers = []
    for signature, inputs in (("get_counter", {}), ("incr_counter", {}), ("reset_counter", {}), ("incr_counter", {}),
                              ("incr_counter_by", {"delta": scalar(3.0)})):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "counter"
        request.model_spec.signature_name = signature
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(value)
        answers.append(list(stub.Predict(request, timeout=10).outputs["output"].float_val))
    check("gRPC Predict counter get, incr, reset, incr, incr_by 3", answers, [[0.0], [1.0], [0.0], [1.0], [4.0]])

    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
        get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "half_plus_two"}), timeout=10)
    check("gRPC GetModelStatus half_plus_two", [(s.version, s.state, s.status.error_code)
                                                for s in status.model_version_status], [(123, 30, 0)])


def rest_checks(port):
    base = "/v1/models/half_plus_two"
    check("REST predict row", rest(port, "POST", base + ":predict", {"instances": [2.0, 3.0, 4.0]}),
          {"predictions": [3.0, 3.5, 4.0]})
    check("REST predict columnar", rest(port, "POST", base + ":predict", {"inputs": [2.0, 3.0, 4.0]}),
          {"outputs": [3.0, 3.5, 4.0]})
    check("REST predict (docker test)", rest(port, "POST", base + ":predict", {"instances": [1.0, 2.0, 5.0]}),
          {"predictions": [2.5, 3.0, 4.5]})
    check("REST classify", rest(port, "POST", base + ":classify",
                                {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}),
          {"results": [[["", 3.0]]]})
    check("REST regress", rest(port, "POST", base + ":regress",
                               {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}), {"results": [3.0]})
    check("REST status", rest(port, "GET", base), {"model_version_status": [
        {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
    metadata = rest(port, "GET", base + "/metadata")
    check("REST metadata signatures", (metadata.get("model_spec"), sorted(
        metadata.get("metadata", {}).get("signature_def", {}).get("signature_def", {}))),
        ({"name": "half_plus_two", "signature_name": "", "version": "123"},
         ["classify_x_to_y", "regress_x2_to_y3", "regress_x_to_y", "regress_x_to_y2", "serving_default"]))
    versions = rest(port, "GET", "/v1/models/half_plus_two_2_versions")
    check("REST status of 2_versions", [(v["version"], v["state"]) for v in versions["model_version_status"]],
          [("124", "AVAILABLE"), ("123", "AVAILABLE")])
    # http_rest_api_handler_test.cc, on a half_plus_two with the same a, b, c.
    path = "/v1/models/half_plus_two_2_versions/versions/123"
    check("REST predict 2x2", rest(port, "POST", path + ":predict", {"instances": [[1.0, 2.0], [3.0, 4.0]]}),
          {"predictions": [[2.5, 3.0], [3.5, 4.0]]})
    check("REST regress x=80", rest(port, "POST", path + ":regress",
                                    {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}), {"results": [42]})
    check("REST classify x=20", rest(port, "POST", path + ":classify",
                                     {"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}]}),
          {"results": [[["", 12]]]})
    for model in ("half_plus_two_config", "half_plus_two_empty_config"):
        check("REST predict %s" % model, rest(port, "POST", "/v1/models/%s:predict" % model, {"instances": [2.0]}),
              {"predictions": [3.0]})


def fleet(testdata):
    """site.yml with the testdata models as the lab's declaration; then TF Serving's REST checks at the gateway."""
    declaration = {"tfserving_models": [
        dict({"name": name, "source": os.path.abspath(os.path.join(testdata, directory)), "versions": versions},
             **({"signature": SIGNATURES[name]} if name in SIGNATURES else {}))
        for name, (directory, versions) in MODELS.items()]}
    work = tempfile.mkdtemp(prefix="upstream-fleet-")
    extra = os.path.join(work, "declaration.json")
    with open(extra, "w") as f:
        json.dump(declaration, f)
    repo = os.path.join(HERE, "..", "..")
    run = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "site.yml",
                          "-i", "inventories/lab", "-e", "@" + extra], cwd=repo)
    check("site.yml deploys the testdata models on the lab", run.returncode, 0)
    if run.returncode == 0:
        rest_checks(LAB_GATEWAY_PORT)


def double(testdata):
    """Every model in one double, from one models.config; REST and gRPC checks straight at it."""
    work = tempfile.mkdtemp(prefix="upstream-testdata-")
    config = os.path.join(work, "models.config")
    with open(config, "w") as f:
        f.write("model_config_list {\n")
        for name, (directory, versions) in MODELS.items():
            f.write('  config { name: "%s" base_path: "%s" model_platform: "tensorflow"\n'
                    "    model_version_policy { specific { %s } } }\n"
                    % (name, os.path.abspath(os.path.join(testdata, directory)),
                       " ".join("versions: %d" % v for v in versions)))
        f.write("}\n")
    grpc_port, rest_port = free_port(), free_port()
    log = open(os.path.join(work, "server.log"), "w")
    server = subprocess.Popen([sys.executable, SERVER, "--port=%d" % grpc_port, "--rest_api_port=%d" % rest_port,
                               "--model_config_file=%s" % config], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.poll() is None:
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/v1/models/counter" % rest_port, timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        else:
            sys.exit("the double did not start; see %s" % log.name)
        rest_checks(rest_port)
        with grpc.insecure_channel("127.0.0.1:%d" % grpc_port) as channel:
            grpc_checks(channel)
    finally:
        server.terminate()
        server.wait(10)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("testdata", help="tensorflow_serving/servables/tensorflow/testdata of a checkout")
    parser.add_argument("--fleet", action="store_true", help="deploy them with site.yml on the lab and ask the gateway")
    args = parser.parse_args()
    (fleet if args.fleet else double)(args.testdata)
    print("%d checks failed" % len(FAILED) if FAILED else "every check answered as TF Serving's tests pin")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
