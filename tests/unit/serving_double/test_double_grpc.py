"""gRPC API of the TF Serving test double, called with the stock client (grpcio + tensorflow-serving-api).

Tensors are built with TensorFlow's generated TensorProto classes, not TensorFlow.
"""

import os
import shutil
import struct

import grpc
import pytest
from google.protobuf import text_format
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2, inference_pb2,
                                     input_pb2, model_management_pb2, model_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc, regression_pb2)

from double_helpers import (EXPECTED_DIR, FIXTURES, Double, expected_answers, http, model_config, wait_for,
                            write_config)

HALF_PLUS_OFFSET = {1: 2.0, 2: 3.0, 3: 4.0}
STATES = get_model_status_pb2.ModelVersionStatus.State
UNEVALUABLE_OP = "FFT"  # a real TF op the double does not evaluate


EXPECTED_MODELS = expected_answers()
# Parametrized from these files: without them every case would be skipped, not failed.
assert {"half_plus", "keras_sequential", "tf1_half_plus_two", "tf2_module"} <= set(EXPECTED_MODELS), EXPECTED_DIR


def _unevaluable_model(models):
    """half_plus/1 with its Mul node turned into an op the double cannot evaluate."""
    version = models / "odd" / "1"
    shutil.copytree(str(models / "half_plus" / "1"), str(version))
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((version / "saved_model.pb").read_bytes())
    for node in saved.meta_graphs[0].graph_def.node:
        if node.op == "Mul":
            node.op = UNEVALUABLE_OP
    (version / "saved_model.pb").write_bytes(saved.SerializeToString())
    return models / "odd"


def _shared_double(tmp, models, configs, flags, expected_states):
    """A double for a whole module, with ModelService and PredictionService stubs on one channel."""
    config = write_config(tmp / "models.config", *configs)
    d = Double(tmp, ["--model_config_file=%s" % config, "--max_num_load_retries=0"] + flags)
    channel = grpc.insecure_channel("127.0.0.1:%d" % d.grpc_port)
    try:
        d.wait_rest()
        for name, states in expected_states.items():
            d.wait_states(name, states, timeout=30)
        d.prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        d.model = model_service_pb2_grpc.ModelServiceStub(channel)
        d.models = models
        yield d
    finally:
        channel.close()
        d.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """half_plus versions 0 (broken), 1, 2, 3 with labels, and a model the double cannot evaluate."""
    tmp = tmp_path_factory.mktemp("grpc")
    models = tmp / "models"
    shutil.copytree(FIXTURES, str(models))
    broken = models / "half_plus" / "0"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"\xff\xff not a SavedModel")
    monitoring = tmp / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true path: "/metrics" }\n')
    yield from _shared_double(
        tmp, models,
        [{"name": "half_plus", "base_path": str(models / "half_plus"), "policy": "all {}",
          "labels": {"stable": 1, "canary": 2, "future": 9}},
         {"name": "odd", "base_path": str(_unevaluable_model(models))}],
        ["--allow_version_labels_for_unavailable_models", "--monitoring_config_file=%s" % monitoring],
        {"half_plus": {0: "END", 1: "AVAILABLE", 2: "AVAILABLE", 3: "AVAILABLE"}, "odd": {1: "AVAILABLE"}})


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    """Every model of tests/fixtures/expected, all versions."""
    tmp = tmp_path_factory.mktemp("grpc_expected")
    yield from _shared_double(
        tmp, FIXTURES, [{"name": name, "base_path": os.path.join(FIXTURES, name), "policy": "all {}"}
                        for name in EXPECTED_MODELS], [],
        dict((name, dict((int(v), "AVAILABLE") for v in data["versions"])) for name, data in EXPECTED_MODELS.items()))


# ---------------------------------------------------------------- request builders

def float_tensor(values, shape=None):
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    for size in (shape if shape is not None else [len(values)]):
        tensor.tensor_shape.dim.add(size=size)
    tensor.float_val.extend(values)
    return tensor


def model_spec(spec, name, version=None, label=None, signature=None):
    spec.name = name
    if version is not None:
        spec.version.value = version
    if label is not None:
        spec.version_label = label
    if signature is not None:
        spec.signature_name = signature
    return spec


def predict_request(name, values, **spec):
    request = predict_pb2.PredictRequest()
    model_spec(request.model_spec, name, **spec)
    request.inputs["x"].CopyFrom(float_tensor(values))
    return request


def input_from_case(case):
    def fill(example, features):
        for key, values in features.items():
            feature = example.features.feature[key]
            if all(isinstance(v, float) for v in values):
                feature.float_list.value.extend(values)
            elif all(isinstance(v, int) for v in values):
                feature.int64_list.value.extend(values)
            else:
                feature.bytes_list.value.extend(v.encode("utf-8") for v in values)

    request_input = input_pb2.Input()
    if "context" in case:
        fill(request_input.example_list_with_context.context, case["context"])
        examples = request_input.example_list_with_context.examples
    else:
        examples = request_input.example_list.examples
    for features in case["examples"]:
        fill(examples.add(), features)
    return request_input


def call_error(method, request):
    """(grpc code name, details) of a failing call."""
    with pytest.raises(grpc.RpcError) as info:
        method(request, timeout=10)
    return info.value.code().name, info.value.details()


def spec_of(response):
    return text_format.MessageToString(response.model_spec, as_one_line=True)


def saved_signatures(path):
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((path / "saved_model.pb").read_bytes())
    return saved.meta_graphs[0].signature_def


# ---------------------------------------------------------------- Predict

@pytest.mark.parametrize("spec,version", [({}, 3), ({"version": 1}, 1), ({"version": 2}, 2), ({"label": "stable"}, 1),
                                          ({"label": "canary"}, 2), ({"signature": "serving_default"}, 3)])
def test_predict_versions_and_labels(served, spec, version):
    response = served.prediction.Predict(predict_request("half_plus", [1.0, 4.0], **spec), timeout=10)
    assert list(response.outputs) == ["y"]
    y = response.outputs["y"]
    assert y.dtype == types_pb2.DT_FLOAT and [d.size for d in y.tensor_shape.dim] == [2]
    assert list(y.float_val) == [0.5 + HALF_PLUS_OFFSET[version], 2.0 + HALF_PLUS_OFFSET[version]]
    # MakeModelSpec: the request's name, the resolved version, the signature (empty reads serving_default).
    assert spec_of(response) == 'name: "half_plus" version { value: %d } signature_name: "serving_default"' % version


def test_predict_reads_tensor_content_and_output_filter(served):
    request = predict_request("half_plus", [], version=1)
    x = request.inputs["x"]
    x.ClearField("float_val")
    x.tensor_shape.dim[0].size = 3
    x.tensor_content = struct.pack("<3f", 0.0, 2.0, -2.0)
    request.output_filter.append("y")
    response = served.prediction.Predict(request, timeout=10)
    assert list(response.outputs["y"].float_val) == [2.0, 3.0, 1.0]


def test_predict_errors(served):
    predict = served.prediction.Predict
    assert call_error(predict, predict_pb2.PredictRequest()) == ("INVALID_ARGUMENT", "Missing ModelSpec")
    assert call_error(predict, predict_request("", [1.0])) == ("INVALID_ARGUMENT", "ModelSpec has no name specified.")
    assert call_error(predict, predict_request("nope", [1.0])) == (
        "NOT_FOUND", "Servable not found for request: Latest(nope)")
    assert call_error(predict, predict_request("half_plus", [1.0], version=7)) == (
        "NOT_FOUND", "Servable not found for request: Specific(half_plus, 7)")
    assert call_error(predict, predict_request("half_plus", [1.0], version=0)) == (
        "NOT_FOUND", "Servable not found for request: Specific(half_plus, 0)")   # its load failed
    assert call_error(predict, predict_request("half_plus", [1.0], label="x")) == (
        "INVALID_ARGUMENT", "Unrecognized servable version label: x")
    # A label may name a version that is not available (the flag allows it): the version is then not found.
    assert call_error(predict, predict_request("half_plus", [1.0], label="future")) == (
        "NOT_FOUND", "Servable not found for request: Specific(half_plus, 9)")
    assert call_error(predict, predict_request("half_plus", [1.0], signature="nope")) == (
        "FAILED_PRECONDITION", 'Serving signature key "nope" not found.')
    filtered = predict_request("half_plus", [1.0])
    filtered.output_filter.append("z")
    assert call_error(predict, filtered) == (
        "INVALID_ARGUMENT", "output tensor alias not found in signature: z Outputs expected to be in the set {y}.")
    malformed = float_tensor([], shape=[2])
    malformed.tensor_content = b"\x00\x00\x80"   # 3 bytes for two floats
    extra = predict_request("half_plus", [1.0])
    extra.inputs["w"].CopyFrom(malformed)  # never parsed: the input count is checked first
    assert call_error(predict, extra) == (
        "INVALID_ARGUMENT", "input size does not match signature: 2!=1 len({w,x}) != len({x}). Sent extra: {w}. "
        "Missing but required: {}.")
    bad = predict_request("half_plus", [])
    bad.inputs["x"].CopyFrom(malformed)
    assert call_error(predict, bad) == ("INVALID_ARGUMENT", "tensor parsing error: x")
    code, message = call_error(predict, predict_request("odd", [1.0]))
    assert code == "UNIMPLEMENTED" and message.startswith("The TF Serving test double cannot evaluate op")


def test_large_requests_are_read_and_long_messages_truncated(served):
    label = "L" * (5 << 20)  # beyond gRPC's default 4 MB: the server reads it all
    code, message = call_error(served.prediction.Predict, predict_request("half_plus", [1.0], label=label))
    assert code == "INVALID_ARGUMENT"
    assert message == ("Unrecognized servable version label: " + label)[:1024] + "...TRUNCATED"


def test_version_and_label_are_one_oneof_the_last_sent_wins(served):
    """ModelSpec cannot carry both: on the wire the field parsed last replaces the other."""
    first = predict_request("half_plus", [1.0], version=1).SerializeToString()
    second = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(version_label="canary")).SerializeToString()
    with grpc.insecure_channel("127.0.0.1:%d" % served.grpc_port) as channel:  # fed pre-serialized bytes
        predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                                      response_deserializer=predict_pb2.PredictResponse.FromString)
        response = predict(first + second, timeout=10)
    assert response.model_spec.version.value == 2
    assert list(response.outputs["y"].float_val) == [3.5]


# ---------------------------------------------------------------- GetModelMetadata

def metadata_request(name, fields=("signature_def",), **spec):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    model_spec(request.model_spec, name, **spec)
    request.metadata_field.extend(fields)
    return request


@pytest.mark.parametrize("spec,version", [({}, 3), ({"version": 2}, 2), ({"label": "stable"}, 1)])
def test_metadata_is_the_signature_def_map(served, spec, version):
    response = served.prediction.GetModelMetadata(metadata_request("half_plus", **spec), timeout=10)
    assert spec_of(response) == 'name: "half_plus" version { value: %d }' % version  # no signature name
    assert list(response.metadata) == ["signature_def"]
    any_ = response.metadata["signature_def"]
    assert any_.type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert any_.Unpack(signatures)
    assert dict(signatures.signature_def) == dict(saved_signatures(served.models / "half_plus" / str(version)))


def test_metadata_errors(served):
    metadata = served.prediction.GetModelMetadata
    assert call_error(metadata, get_model_metadata_pb2.GetModelMetadataRequest()) == (
        "INVALID_ARGUMENT", "Missing ModelSpec")
    assert call_error(metadata, metadata_request("half_plus", fields=())) == (
        "INVALID_ARGUMENT", "GetModelMetadataRequest must specify at least one metadata_field")
    assert call_error(metadata, metadata_request("half_plus", fields=("signature_def", "graph"))) == (
        "INVALID_ARGUMENT", "Metadata field graph is not supported")
    assert call_error(metadata, metadata_request("nope")) == (
        "NOT_FOUND", "Servable not found for request: Latest(nope)")
    assert call_error(metadata, metadata_request("half_plus", version=7)) == (
        "NOT_FOUND", "Servable not found for request: Specific(half_plus, 7)")
    assert call_error(metadata, metadata_request("half_plus", label="x")) == (
        "INVALID_ARGUMENT", "Unrecognized servable version label: x")


# ---------------------------------------------------------------- GetModelStatus

def status_request(name, **spec):
    request = get_model_status_pb2.GetModelStatusRequest()
    model_spec(request.model_spec, name, **spec)
    return request


def test_status_lists_versions_highest_first(served):
    for spec in ({}, {"label": "stable"}):  # a label is ignored: every version is listed
        response = served.model.GetModelStatus(status_request("half_plus", **spec), timeout=10)
        assert [(s.version, STATES.Name(s.state)) for s in response.model_version_status] == [
            (3, "AVAILABLE"), (2, "AVAILABLE"), (1, "AVAILABLE"), (0, "END")]
        ok = response.model_version_status[0].status
        assert ok.error_code == 0 and ok.error_message == ""
        failed = response.model_version_status[3].status
        assert failed.error_code == 15  # DATA_LOSS
        assert failed.error_message == "Can't parse %s as binary proto" % (
            served.models / "half_plus" / "0" / "saved_model.pb")


def test_status_of_one_version_and_errors(served):
    response = served.model.GetModelStatus(status_request("half_plus", version=2), timeout=10)
    assert text_format.MessageToString(response, as_one_line=True) == (
        "model_version_status { version: 2 state: AVAILABLE status { } }")
    status = served.model.GetModelStatus
    assert call_error(status, get_model_status_pb2.GetModelStatusRequest()) == ("INVALID_ARGUMENT", "Missing ModelSpec")
    assert call_error(status, status_request("nope")) == ("NOT_FOUND", "Could not find any versions of model nope")
    assert call_error(status, status_request("half_plus", version=7)) == (
        "NOT_FOUND", "Could not find version 7 of model half_plus")


# ---------------------------------------------------------------- Classify, Regress, MultiInference

def test_classify_and_regress_errors(served):
    for method, request_class, kind in (
            (served.prediction.Classify, classification_pb2.ClassificationRequest, "classification"),
            (served.prediction.Regress, regression_pb2.RegressionRequest, "regression")):
        assert call_error(method, request_class()) == ("INVALID_ARGUMENT", "Missing ModelSpec")
        request = request_class(input=input_from_case({"examples": [{"x": [1.0]}]}))
        model_spec(request.model_spec, "nope")
        assert call_error(method, request) == ("NOT_FOUND", "Servable not found for request: Latest(nope)")
        model_spec(request.model_spec, "half_plus", label="x")
        assert call_error(method, request) == ("INVALID_ARGUMENT", "Unrecognized servable version label: x")
        model_spec(request.model_spec, "half_plus", version=1)
        code, message = call_error(method, request)  # half_plus has a predict signature only: its input is "x"
        assert code == "INVALID_ARGUMENT"
        assert message.startswith("No %s inputs found in SignatureDef: inputs {\n  key: \"x\"" % kind)


def multi_request(*tasks):
    request = inference_pb2.MultiInferenceRequest(input=input_from_case({"examples": [{"x": [1.0]}]}))
    for name, signature, method in tasks:
        task = request.tasks.add(method_name=method)
        model_spec(task.model_spec, name, signature=signature)
    return request


def test_multi_inference_errors(served):
    multi = served.prediction.MultiInference
    classify, regress = "tensorflow/serving/classify", "tensorflow/serving/regress"
    assert call_error(multi, multi_request()) == ("INVALID_ARGUMENT", "ModelSpec has no name specified.")
    assert call_error(multi, multi_request(("nope", "", classify))) == (
        "NOT_FOUND", "Servable not found for request: Latest(nope)")
    assert call_error(multi, multi_request(("half_plus", "", classify), ("", "b", regress))) == (
        "INVALID_ARGUMENT", "Found ModelSpec with an empty model name.")
    assert call_error(multi, multi_request(("half_plus", "", classify), ("odd", "b", regress))) == (
        "INVALID_ARGUMENT", "All ModelSpecs in a MultiInferenceRequest must access the same model name.")
    assert call_error(multi, multi_request(("half_plus", "", classify), ("half_plus", "serving_default", regress))) == (
        "INVALID_ARGUMENT", "Duplicate evaluation of signature: serving_default")
    assert call_error(multi, multi_request(("half_plus", "nope", classify))) == (
        "INVALID_ARGUMENT", "Requested signature not found in model graph: nope")
    assert call_error(multi, multi_request(("half_plus", "", "tensorflow/serving/predict"))) == (
        "UNIMPLEMENTED", "Unsupported signature method_name: tensorflow/serving/predict")


# ---------------------------------------------------------------- answers computed by TensorFlow

def _value_field(dtype):
    return {"DT_FLOAT": "float_val", "DT_DOUBLE": "double_val", "DT_INT64": "int64_val", "DT_STRING": "string_val",
            "DT_BOOL": "bool_val"}.get(dtype, "int_val")


def tensor_from_case(case_tensor):
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DataType.Value(case_tensor["dtype"]))
    for size in case_tensor["shape"]:
        tensor.tensor_shape.dim.add(size=size)
    values = case_tensor["values"]
    if case_tensor["dtype"] == "DT_STRING":
        values = [v.encode("utf-8") for v in values]
    getattr(tensor, _value_field(case_tensor["dtype"])).extend(values)
    return tensor


def result_of(result):
    """ClassificationResult / RegressionResult as the expected files write them."""
    if hasattr(result, "classifications"):
        return {"classifications": [{"classes": [{"label": c.label, "score": pytest.approx(c.score, rel=1e-6)}
                                                 for c in entry.classes]} for entry in result.classifications]}
    return {"regressions": [{"value": pytest.approx(r.value, rel=1e-6)} for r in result.regressions]}


def expected_cases(*methods):
    return [pytest.param(model, case, id="%s-v%d-%d" % (model, case["version"], index))
            for model, data in EXPECTED_MODELS.items() for index, case in enumerate(data["cases"])
            if case["method"] in methods]


def multi_inference_cases():
    """A regress and a classify case of one version with the same examples make a MultiInference request."""
    cases = []
    for model, data in EXPECTED_MODELS.items():
        regress = [c for c in data["cases"] if c["method"] == "regress" and "error" not in c]
        for classify in (c for c in data["cases"] if c["method"] == "classify" and "error" not in c):
            for other in regress:
                if all(other.get(k) == classify.get(k) for k in ("version", "examples", "context")):
                    cases.append(pytest.param(model, [other, classify],
                                              id="%s-v%d-%s+%s" % (model, other["version"], other["signature_name"],
                                                                   classify["signature_name"])))
    return cases


def check_error(call, request, case):
    code, message = call_error(call, request)
    assert code == case["error"]["code"] and case["error"]["message_contains"] in message


@pytest.mark.parametrize("model,case", expected_cases("predict"))
def test_predict_answers_what_tensorflow_computed(computed, model, case):
    request = predict_pb2.PredictRequest(output_filter=case.get("output_filter", []))
    model_spec(request.model_spec, model, version=case["version"], signature=case["signature_name"])
    for alias, tensor in case["inputs"].items():
        request.inputs[alias].CopyFrom(tensor_from_case(tensor))
    if "error" in case:
        return check_error(computed.prediction.Predict, request, case)
    response = computed.prediction.Predict(request, timeout=30)
    assert sorted(response.outputs) == sorted(case["outputs"])
    for alias, expected in case["outputs"].items():
        tensor = response.outputs[alias]
        assert types_pb2.DataType.Name(tensor.dtype) == expected["dtype"]
        assert [d.size for d in tensor.tensor_shape.dim] == expected["shape"]
        values = list(getattr(tensor, _value_field(expected["dtype"])))
        assert values == pytest.approx(expected["values"], rel=1e-5, abs=1e-6)
    assert response.model_spec.version.value == case["version"]


@pytest.mark.parametrize("model,case", expected_cases("classify", "regress"))
def test_classify_and_regress_answer_what_tensorflow_computed(computed, model, case):
    classify = case["method"] == "classify"
    request = (classification_pb2.ClassificationRequest if classify else regression_pb2.RegressionRequest)(
        input=input_from_case(case))
    model_spec(request.model_spec, model, version=case["version"], signature=case["signature_name"])
    call = computed.prediction.Classify if classify else computed.prediction.Regress
    if "error" in case:
        return check_error(call, request, case)
    response = call(request, timeout=30)
    assert result_of(response.result) == case["result"]
    assert spec_of(response) == 'name: "%s" version { value: %d } signature_name: "%s"' % (
        model, case["version"], case["signature_name"] or "serving_default")


@pytest.mark.parametrize("model,cases", multi_inference_cases())
def test_multi_inference_answers_what_tensorflow_computed(computed, model, cases):
    request = inference_pb2.MultiInferenceRequest(input=input_from_case(cases[0]))
    for case in cases:
        task = request.tasks.add(method_name="tensorflow/serving/" + case["method"])
        model_spec(task.model_spec, model, version=case["version"], signature=case["signature_name"])
    response = computed.prediction.MultiInference(request, timeout=30)
    assert len(response.results) == len(cases)
    for result, case in zip(response.results, cases):
        kind = result.WhichOneof("result")
        assert kind == ("classification_result" if case["method"] == "classify" else "regression_result")
        assert result_of(getattr(result, kind)) == case["result"]
        assert spec_of(result) == 'name: "%s" version { value: %d } signature_name: "%s"' % (
            model, case["version"], case["signature_name"] or "serving_default")


# ---------------------------------------------------------------- metrics

def test_grpc_requests_are_counted_like_rest(served):
    def count(status):
        text = http("GET", served.base + "/metrics")[1]
        line = ':tensorflow:serving:request_count{model_name="odd",status="%s"} ' % status
        found = [x for x in text.splitlines() if x.startswith(line)]
        return int(found[0][len(line):]) if found else 0

    before = dict((status, count(status)) for status in ("OK", "UNIMPLEMENTED", "INVALID_ARGUMENT"))
    served.prediction.GetModelMetadata(metadata_request("odd"), timeout=10)  # not counted by the real server
    call_error(served.prediction.Predict, predict_request("odd", [1.0]))
    regress = regression_pb2.RegressionRequest(input=input_from_case({"examples": [{"x": [1.0]}]}))
    model_spec(regress.model_spec, "odd")
    call_error(served.prediction.Regress, regress)  # a predict signature: INVALID_ARGUMENT
    assert count("UNIMPLEMENTED") == before["UNIMPLEMENTED"] + 1
    assert count("INVALID_ARGUMENT") == before["INVALID_ARGUMENT"] + 1
    assert count("OK") == before["OK"]


# ---------------------------------------------------------------- HandleReloadConfigRequest

def reload_request(*models, metric_names=()):
    request = model_management_pb2.ReloadConfigRequest(metric_names=list(metric_names))
    text_format.Parse(model_config(*models), request.config)
    return request


def test_reload_adds_a_model_and_a_rejected_one_keeps_the_old_config(start_double, models):
    half_plus = {"name": "half_plus", "base_path": str(models / "half_plus"), "policy": "all {}"}
    config = write_config(models / "models.config", half_plus)
    d = start_double("--model_config_file=%s" % config, "--max_num_load_retries=0").wait_rest()
    d.wait_states("half_plus", {1: "AVAILABLE", 2: "AVAILABLE", 3: "AVAILABLE"})
    with grpc.insecure_channel("127.0.0.1:%d" % d.grpc_port) as channel:
        model = model_service_pb2_grpc.ModelServiceStub(channel)
        prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        added = dict(half_plus, labels={"stable": 2})
        new = {"name": "a_new", "base_path": str(models / "half_plus"), "policy": "specific { versions: 1 }"}
        response = model.HandleReloadConfigRequest(
            reload_request(added, new, metric_names=["/tensorflow/cc/saved_model/load_attempt_count", "/x"]),
            timeout=30)
        # The new model is loaded before the answer; load attempts of the first cell (sorted labels) went up by 1.
        assert text_format.MessageToString(response, as_one_line=True) == (
            'status { } metric { name: "/tensorflow/cc/saved_model/load_attempt_count" int64_value_increase: 1 } '
            'metric { name: "/x" int64_value_increase: 0 }')
        assert list(prediction.Predict(predict_request("a_new", [2.0]), timeout=10).outputs["y"].float_val) == [3.0]
        assert list(prediction.Predict(predict_request("half_plus", [2.0], label="stable"),
                                       timeout=10).outputs["y"].float_val) == [4.0]

        third = {"name": "third", "base_path": str(models / "half_plus")}
        rejected = dict(half_plus, labels={"stable": 2, "canary": 9})
        assert call_error(model.HandleReloadConfigRequest, reload_request(rejected, new, third)) == (
            "FAILED_PRECONDITION", "Request to assign label to version 9 of model half_plus, which is not currently "
            "available for inference")
        assert call_error(model.GetModelStatus, status_request("third")) == (
            "NOT_FOUND", "Could not find any versions of model third")
        assert list(prediction.Predict(predict_request("half_plus", [2.0], label="stable"),
                                       timeout=10).outputs["y"].float_val) == [4.0]
        assert call_error(prediction.Predict, predict_request("half_plus", [2.0], label="canary")) == (
            "INVALID_ARGUMENT", "Unrecognized servable version label: canary")

        assert call_error(model.HandleReloadConfigRequest, model_management_pb2.ReloadConfigRequest()) == (
            "INVALID_ARGUMENT", "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
            "ModelConfigList is currently supported")
    log = d.stderr()
    assert "\nConfig entry\n\tindex : 1\n\tpath : %s\n\tname : a_new\n\tplatform : tensorflow\n" % (
        models / "half_plus") in log
    assert "ReloadConfig failed: Request to assign label to version 9 of model half_plus" in log


# ---------------------------------------------------------------- server

def test_so_reuseport_shares_the_port_between_two_servers(start_double, models):
    first = start_double("--model_name=first", "--model_base_path=%s" % (models / "half_plus")).wait_rest()
    second = start_double("--port=%d" % first.grpc_port, "--model_name=second",
                          "--model_base_path=%s" % (models / "half_plus")).wait_rest()
    assert first.proc.poll() is None and second.proc.poll() is None
    seen = set()

    def answered_by_both():
        # A channel with its own subchannel pool opens a new connection, which the kernel hands to either server.
        with grpc.insecure_channel("127.0.0.1:%d" % first.grpc_port,
                                   options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            try:
                model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_request("first"), timeout=10)
                seen.add("first")
            except grpc.RpcError as e:
                assert (e.code(), e.details()) == (grpc.StatusCode.NOT_FOUND, "Could not find any versions of model "
                                                   "first")
                seen.add("second")
        return seen == {"first", "second"}

    wait_for(answered_by_both, 20, interval=0, what="both servers answering on one port")


def test_unix_socket_and_channel_arguments(start_double, models, tmp_path):
    sock = tmp_path / "grpc.sock"
    d = start_double("--model_name=half_plus", "--model_base_path=%s" % (models / "half_plus"),
                     "--grpc_socket_path=%s" % sock, "--grpc_channel_arguments=grpc.max_receive_message_length=100")
    d.wait_log("Running gRPC ModelServer at UNIX socket %s ..." % sock)
    with grpc.insecure_channel("unix:%s" % sock) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        assert list(stub.Predict(predict_request("half_plus", [2.0]), timeout=10).outputs["y"].float_val) == [5.0]
        # The flag's channel arguments win over the unlimited message size.
        code, message = call_error(stub.Predict, predict_request("half_plus", [2.0] * 100))
        assert code == "RESOURCE_EXHAUSTED"


def test_health_service_only_with_its_flag(start_double, models):
    base = "--model_base_path=%s" % (models / "half_plus")
    with_health = start_double("--model_name=half_plus", base, "--enable_grpc_healthcheck_service").wait_rest()
    without = start_double("--model_name=half_plus", base).wait_rest()

    def request(service):  # grpc.health.v1.HealthCheckRequest on the wire: field 1, a short service name
        return b"\n" + bytes([len(service)]) + service.encode("ascii") if service else b""

    serving, unknown = b"\x08\x01", b"\x08\x03"  # HealthCheckResponse {status: SERVING / SERVICE_UNKNOWN}
    with grpc.insecure_channel("127.0.0.1:%d" % with_health.grpc_port) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        for service in ("", "ModelService", "PredictionService"):
            assert check(request(service), timeout=10) == serving
        assert call_error(check, request("nope")) == ("NOT_FOUND", "service name unknown")
        too_long = b"\n\xc9\x01" + b"x" * 201  # a 201-byte name (varint length), over gRPC's limit of 200
        assert call_error(check, too_long) == ("INVALID_ARGUMENT", "could not parse request")
        watch = channel.unary_stream("/grpc.health.v1.Health/Watch")
        for service, answer in (("PredictionService", serving), ("nope", unknown)):
            stream = watch(request(service), timeout=10)
            assert next(stream) == answer
            stream.cancel()
    with grpc.insecure_channel("127.0.0.1:%d" % without.grpc_port) as channel:
        code, _ = call_error(channel.unary_unary("/grpc.health.v1.Health/Check"), request(""))
        assert code == "UNIMPLEMENTED"
