"""REST paths, JSON shapes, codes and messages of the TF Serving test double."""

import json
import shutil

import pytest

from double_helpers import FIXTURES, Double, http, specific, write_config

HALF_PLUS_OFFSET = {1: 2.0, 2: 3.0, 3: 4.0}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rest")
    models = tmp / "models"
    shutil.copytree(FIXTURES, str(models))
    config = tmp / "models.config"
    write_config(config,
                 {"name": "half_plus", "base_path": str(models / "half_plus"), "policy": specific(1, 2, 3),
                  "labels": {"stable": 1, "canary": 3}},
                 {"name": "keras", "base_path": str(models / "keras_linear")},
                 {"name": "incompatible", "base_path": str(models / "half_plus_incompatible"), "policy": "all {}"})
    d = Double(tmp, ["--model_config_file=%s" % config, "--allow_version_labels_for_unavailable_models"])
    try:
        d.wait_rest()
        d.wait_states("half_plus", {1: "AVAILABLE", 2: "AVAILABLE", 3: "AVAILABLE"})
        d.wait_states("incompatible", {1: "AVAILABLE", 2: "AVAILABLE"})
        d.wait_states("keras", {2: "AVAILABLE"})
        yield d
    finally:
        d.stop()


def error(server, method, path, body=None):
    code, text, headers = http(method, server.base + path, body)
    assert headers["Content-Type"] == "application/json"
    parsed = json.loads(text)
    assert list(parsed) == ["error"] and isinstance(parsed["error"], str)
    return code, parsed["error"]


# ---------------------------------------------------------------- status

def test_status_all_versions_highest_first(server):
    code, text, headers = server.get("/v1/models/half_plus")
    assert code == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(text) == {"model_version_status": [
        {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        for v in (3, 2, 1)]}
    assert text.startswith('{\n "model_version_status": [\n  {\n   "version": "3",\n   "state": "AVAILABLE",')


def test_status_one_version(server):
    code, body = server.json("GET", "/v1/models/half_plus/versions/2")
    assert (code, body) == (200, {"model_version_status": [
        {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})


def test_status_under_a_label_lists_every_version(server):
    # GetModelStatus ignores the label: /labels/{l} answers like /v1/models/{m}, even for unknown labels.
    assert server.json("GET", "/v1/models/half_plus/labels/stable") == server.json("GET", "/v1/models/half_plus")
    assert server.json("GET", "/v1/models/half_plus/labels/nope")[0] == 200


def test_status_errors(server):
    assert error(server, "GET", "/v1/models/nope") == (404, "Could not find any versions of model nope")
    assert error(server, "GET", "/v1/models/half_plus/versions/7") == (
        404, "Could not find version 7 of model half_plus")
    assert error(server, "GET", "/v1/models") == (400, "Missing model name in request.")
    assert error(server, "GET", "/v1/models/half_plus/versions/stable") == (
        400, "Malformed request: GET /v1/models/half_plus/versions/stable")
    assert error(server, "GET", "/v1/models/half_plus/versions/99999999999999999999") == (
        400, "Failed to convert version: 99999999999999999999 to numeric.")
    assert error(server, "PUT", "/v1/models/half_plus", b"{}") == (400, "Malformed request: PUT /v1/models/half_plus")
    assert error(server, "DELETE", "/v1/models/half_plus") == (400, "Malformed request: DELETE /v1/models/half_plus")
    assert error(server, "POST", "/v1/models/half_plus", b"{}") == (400, "Malformed request: POST /v1/models/half_plus")
    assert error(server, "GET", "/v1/models/half_plus:predict") == (
        400, "Malformed request: GET /v1/models/half_plus:predict")


def test_paths_are_case_insensitive_and_names_url_decoded(server):
    assert server.get("/V1/MODELS/half_plus/VERSIONS/1")[0] == 200
    assert server.get("/v1/models/half%5Fplus")[0] == 200


def test_outside_v1_is_libevent_404(server):
    code, text, headers = server.get("/")
    assert code == 404 and headers["Content-Type"].startswith("text/html")
    assert "<TITLE>404 Not Found</TITLE>" in text
    assert server.get("/v2/models/half_plus")[0] == 404


# ---------------------------------------------------------------- metadata

def _signature(dtype):
    dim = {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}
    return {"inputs": {"x": {"dtype": dtype, "tensor_shape": dim, "name": "x:0"}},
            "outputs": {"y": {"dtype": "DT_FLOAT", "tensor_shape": dim, "name": "y:0"}},
            "method_name": "tensorflow/serving/predict", "defaults": {}}


def test_metadata_latest(server):
    code, text, _ = server.get("/v1/models/half_plus/metadata")
    assert code == 200
    assert json.loads(text) == {"model_spec": {"name": "half_plus", "signature_name": "", "version": "3"},
                                "metadata": {"signature_def": {"signature_def": {
                                    "serving_default": _signature("DT_FLOAT")}}}}
    assert text.startswith('{\n"model_spec":{\n "name": "half_plus",\n "signature_name": "",\n "version": "3"\n}\n,\n'
                           '"metadata": {"signature_def": {\n "signature_def": {')


def test_metadata_by_version_and_label(server):
    assert server.json("GET", "/v1/models/half_plus/versions/1/metadata")[1]["model_spec"]["version"] == "1"
    assert server.json("GET", "/v1/models/half_plus/labels/canary/metadata")[1]["model_spec"]["version"] == "3"
    body = server.json("GET", "/v1/models/incompatible/versions/2/metadata")[1]
    assert body["metadata"]["signature_def"]["signature_def"]["serving_default"] == _signature("DT_INT64")


def test_metadata_of_a_tf2_export(server):
    code, body = server.json("GET", "/v1/models/keras/metadata")
    assert code == 200
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert sorted(signatures) == ["__saved_model_init_op", "serving_default"]
    assert signatures["serving_default"]["inputs"]["x"]["name"] == "serving_default_x:0"
    assert signatures["__saved_model_init_op"]["outputs"]["__saved_model_init_op"] == {
        "dtype": "DT_INVALID", "tensor_shape": {"dim": [], "unknown_rank": True}, "name": "NoOp"}


def test_metadata_errors(server):
    assert error(server, "GET", "/v1/models/nope/metadata") == (404, "Servable not found for request: Latest(nope)")
    assert error(server, "GET", "/v1/models/half_plus/versions/7/metadata") == (
        404, "Servable not found for request: Specific(half_plus, 7)")
    assert error(server, "GET", "/v1/models/half_plus/labels/nope/metadata") == (
        400, "Unrecognized servable version label: nope")


# ---------------------------------------------------------------- predict

@pytest.mark.parametrize("version", [1, 2, 3])
def test_predict_numbers_prove_the_version(server, version):
    expected = [0.5 * x + HALF_PLUS_OFFSET[version] for x in (1.0, 2.0, 5.0)]
    assert server.predict("/v1/models/half_plus/versions/%d:predict" % version, [1.0, 2.0, 5.0]) == expected


def test_predict_latest_and_labels(server):
    assert server.predict("/v1/models/half_plus:predict", [2.0]) == [5.0]                 # latest = 3
    assert server.predict("/v1/models/half_plus/labels/stable:predict", [2.0]) == [3.0]   # 1
    assert server.predict("/v1/models/half_plus/labels/canary:predict", [2.0]) == [5.0]   # 3


def test_predict_row_format_layout(server):
    code, text, headers = server.post("/v1/models/half_plus/versions/1:predict", {"instances": [1.0, 2.0, 5.0]})
    assert code == 200 and headers["Content-Type"] == "application/json"
    assert text == '{\n    "predictions": [2.5, 3.0, 4.5\n    ]\n}'


def test_predict_columnar_format(server):
    code, text, _ = server.post("/v1/models/half_plus/versions/2:predict", {"inputs": [1.0, 2.0]})
    assert code == 200
    assert json.loads(text) == {"outputs": [3.5, 4.0]}
    assert text == '{\n    "outputs": [\n        3.5,\n        4.0\n    ]\n}'
    code, text, _ = server.post("/v1/models/half_plus/versions/2:predict", {"inputs": {"x": [1.0]}})
    assert json.loads(text) == {"outputs": [3.5]}


def test_predict_named_instances_and_signature_name(server):
    body = {"signature_name": "serving_default", "instances": [{"x": 1.0}, {"x": 3.0}]}
    assert server.json("POST", "/v1/models/half_plus/versions/3:predict", body) == (200, {"predictions": [4.5, 5.5]})


def test_predict_broadcasts_and_rounds_like_float32(server):
    assert server.predict("/v1/models/half_plus/versions/1:predict", [[1.0], [3.0]]) == [[2.5], [3.5]]
    code, text, _ = server.post("/v1/models/half_plus/versions/1:predict", {"instances": [0.1]})
    assert text == '{\n    "predictions": [2.05\n    ]\n}'


def test_predict_int64_signature(server):
    assert server.predict("/v1/models/incompatible/versions/2:predict", [2, 4]) == [4.0, 5.0]
    assert error(server, "POST", "/v1/models/incompatible/versions/2:predict", {"instances": [1.5]}) == (
        400, "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: 1.5 Type: "
             "Number is not of expected type: int64")


def test_predict_not_found(server):
    assert error(server, "POST", "/v1/models/nope:predict", {"instances": [1.0]}) == (
        404, "Servable not found for request: Latest(nope)")
    assert error(server, "POST", "/v1/models/half_plus/versions/7:predict", {"instances": [1.0]}) == (
        404, "Servable not found for request: Specific(half_plus, 7)")
    assert error(server, "POST", "/v1/models/half_plus/labels/nope:predict", {"instances": [1.0]}) == (
        400, "Unrecognized servable version label: nope")
    assert error(server, "POST", "/v1/models/half_plus/versions/canary:predict", {"instances": [1.0]}) == (
        400, "Malformed request: POST /v1/models/half_plus/versions/canary:predict")


def test_predict_request_errors(server):
    path = "/v1/models/half_plus/versions/1:predict"
    assert error(server, "POST", path, b"") == (400, "JSON Parse error: The document is empty")
    code, message = error(server, "POST", path, b"{nope")
    assert code == 400 and message.startswith("JSON Parse error: ") and "at offset: 1" in message
    assert error(server, "POST", path, b"[1]") == (400, "JSON Value: [1] Is not object")
    assert error(server, "POST", path, {"foo": 1}) == (400, "Missing 'inputs' or 'instances' key")
    assert error(server, "POST", path, {"instances": [1.0], "inputs": [1.0]}) == (
        400, 'JSON Value: {\n    "instances": [1.0],\n    "inputs": [1.0]\n} Not formatted correctly expecting only '
             "one of 'inputs' or 'instances' keys to exist ")
    assert error(server, "POST", path, {"instances": []})[1].endswith(" No values in 'instances' array")
    assert error(server, "POST", path, {"instances": 1.0})[1].endswith(" Expecting 'instances' to be an list/array")
    assert error(server, "POST", path, {"instances": ["a"]}) == (
        400, "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: \"a\" Type: "
             "String is not of expected type: float")
    assert error(server, "POST", path, {"instances": [[1.0], 2.0]})[0] == 400
    assert error(server, "POST", path, {"signature_name": "nope", "instances": [1.0]}) == (
        400, 'Serving signature name: "nope" not found in signature def')
    assert error(server, "POST", path, {"signature_name": 3, "instances": [1.0]})[1].endswith(
        "not formatted correctly. 'signature_name' key must be a string value.")
    assert error(server, "POST", path, {"inputs": {"z": [1.0]}}) == (400, "Missing named input: x in 'inputs' object.")


def test_predict_on_a_tf2_export_with_variables(server):
    # keras_linear/2 is y = 3 * x + 1, with w and b restored from variables/ and read inside a function.
    assert server.predict("/v1/models/keras:predict", [1.0, 2.0]) == [4.0, 7.0]


# ---------------------------------------------------------------- classify / regress

def test_classify_and_regress_on_a_predict_signature(server):
    code, message = error(server, "POST", "/v1/models/half_plus:classify", {"examples": [{"x": 1.0}]})
    assert code == 400
    assert message.startswith('No classification inputs found in SignatureDef: inputs {\n  key: "x"\n  value {\n'
                              '    name: "x:0"\n    dtype: DT_FLOAT\n')
    assert message.endswith('method_name: "tensorflow/serving/predict"\n')
    code, message = error(server, "POST", "/v1/models/half_plus/versions/1:regress", {"examples": [{"x": 1.0}]})
    assert code == 400 and message.startswith("No regression inputs found in SignatureDef: ")


def test_classify_and_regress_request_errors(server):
    for verb in ("classify", "regress"):
        code, message = error(server, "POST", "/v1/models/half_plus:%s" % verb, {"instances": [1.0]})
        assert code == 400
        assert message.endswith(" When method is classify, key 'examples' is expected and was not found")
        assert error(server, "POST", "/v1/models/half_plus:%s" % verb, {"examples": [1.0]}) == (
            400, "Example must be JSON object but got JSON Number")
        assert error(server, "POST", "/v1/models/nope:%s" % verb, {"examples": [{"x": 1.0}]}) == (
            404, "Servable not found for request: Latest(nope)")


def test_cors_preflight_without_support(server):
    code, _, _ = http("OPTIONS", server.base + "/v1/models/half_plus", headers={"Origin": "http://example.test"})
    assert code == 200
    code, _, _ = http("OPTIONS", server.base + "/v1/models/half_plus")
    assert code == 400
