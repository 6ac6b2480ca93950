"""Client access at the lab gateway: keys, per-model permissions and the per-client rate, REST and gRPC.

Runs after molecule's default scenario turned access on (side_effect/access.yml):
MLSERVE_ACCESS_JSON holds the keys and the burst the gateway was given, besides
what conftest.py needs. Bounded traffic on loopback: a few calls per check and
one burst of `burst + 20` calls per protocol.
"""

import json
import os

import grpc
import pytest
from clients import TIMEOUT, predict_cases, predict_request, rest_predict, routes_of
from tensorflow_serving.apis import prediction_service_pb2_grpc


@pytest.fixture(scope="module")
def access():
    with open(os.environ["MLSERVE_ACCESS_JSON"]) as f:
        settings = json.load(f)
    settings["keys"] = dict((entry["name"], entry["key"]) for entry in settings["api_keys"])
    return settings


def one_route(routes, protocol, model, fixture_of, expected):
    """A route of `model` that names one version, and a TensorFlow case for it."""
    route = next(r for r in routes_of(routes, protocol) if r["model"] == model and r["version"] is not None
                 and not r["metadata"])
    return route, predict_cases(expected, fixture_of[model], [route["version"]])[0]


def bearer(key):
    return {"Authorization": "Bearer %s" % key}


def grpc_code(route, case, metadata):
    with grpc.insecure_channel(route["target"]) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            stub.Predict(predict_request(route, case), metadata=metadata, timeout=TIMEOUT)
        except grpc.RpcError as e:
            return e.code(), e.details()
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize("model", ["half_plus", "keras_sequential"])
def test_rest_needs_a_known_key_for_the_model(routes, fixture_of, expected, access, model):
    route, case = one_route(routes, "rest", model, fixture_of, expected)
    status, answer, _ = rest_predict(route, case)
    assert (status, sorted(answer)) == (401, ["error"]), answer
    assert "API key" in answer["error"]
    assert rest_predict(route, case, bearer("not-a-key-0123456789abcdef"))[0] == 401
    assert rest_predict(route, case, bearer(access["keys"]["everyone"]))[0] == 200
    status, answer, _ = rest_predict(route, case, bearer(access["keys"]["keras_only"]))
    if model == "keras_sequential":
        assert status == 200, answer
    else:
        assert (status, answer) == (403, {"error": "This API key may not call model %s" % model})


@pytest.mark.parametrize("model", ["half_plus", "keras_sequential"])
def test_grpc_needs_a_known_key_for_the_model(routes, fixture_of, expected, access, model):
    route, case = one_route(routes, "grpc", model, fixture_of, expected)
    assert grpc_code(route, case, [])[0] == grpc.StatusCode.UNAUTHENTICATED
    assert grpc_code(route, case, [("authorization", "Bearer not-a-key-0123456789abcdef")])[0] == \
        grpc.StatusCode.UNAUTHENTICATED
    assert grpc_code(route, case, [("authorization", "Bearer %s" % access["keys"]["everyone"])]) == \
        (grpc.StatusCode.OK, "")
    code, details = grpc_code(route, case, [("authorization", "Bearer %s" % access["keys"]["keras_only"])])
    if model == "keras_sequential":
        assert code == grpc.StatusCode.OK, details
    else:
        assert (code, details) == (grpc.StatusCode.PERMISSION_DENIED, "This API key may not call model %s" % model)


def test_over_its_rate_a_client_gets_429_in_tf_servings_error_shape(routes, fixture_of, expected, access):
    route, case = one_route(routes, "rest", "half_plus", fixture_of, expected)
    answers = [rest_predict(route, case, bearer(access["keys"]["flood"])) for _ in range(access["client_burst"] + 20)]
    statuses = [status for status, _, _ in answers]
    assert statuses[0] == 200 and set(statuses) == {200, 429}, statuses
    refused = [answer for status, answer, _ in answers if status == 429]
    assert all(sorted(answer) == ["error"] and "rate limit" in answer["error"] for answer in refused), refused[:1]


def test_over_its_rate_a_grpc_client_gets_resource_exhausted(routes, fixture_of, expected, access):
    route, case = one_route(routes, "grpc", "half_plus", fixture_of, expected)
    metadata = [("authorization", "Bearer %s" % access["keys"]["flood"])]
    codes = [grpc_code(route, case, metadata)[0] for _ in range(access["client_burst"] + 20)]
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes and set(codes) <= {grpc.StatusCode.OK,
                                                                          grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
