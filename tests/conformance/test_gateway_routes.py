"""Every route of the lab gateway, REST and gRPC, answers as TensorFlow said the route's version must.

Driven by the routes the gateway itself lists (playbooks/routes.yml
-e routes_json=FILE) and by the answers TensorFlow computed for each fixture
version (tests/fixtures/expected). gRPC goes through the stock client:
grpcio and tensorflow-serving-api's stubs, TensorProto built with the
protobuf classes (no TensorFlow). Traffic stays on loopback and is bounded:
one call per route and case.
"""

import json
import math
import urllib.error
import urllib.request

import grpc
import pytest
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

TIMEOUT = 10


def close(got, want):
    """float32 answers: equal up to float32 rounding of the last step."""
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(close(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(close(g, w) for g, w in zip(got, want))
    if isinstance(want, float):
        return isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-6)
    return got == want


def predict_cases(expected, fixture, versions):
    """The predict cases TensorFlow computed for these versions, each with its version."""
    return [c for c in expected[fixture]["cases"]
            if c["method"] == "predict" and c["version"] in versions and c.get("rest") and "error" not in c]


def versions_of(route):
    return [route["version"]] if route["version"] is not None else sorted(int(v) for v in route["split"])


def tensor_proto(spec):
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DataType.Value(spec["dtype"]))
    for size in spec["shape"]:
        proto.tensor_shape.dim.add(size=size)
    field = {"DT_FLOAT": "float_val", "DT_DOUBLE": "double_val", "DT_INT32": "int_val", "DT_INT64": "int64_val"}
    getattr(proto, field[spec["dtype"]]).extend(spec["values"])
    return proto


def flat_values(proto):
    for field in ("float_val", "double_val", "int_val", "int64_val"):
        values = list(getattr(proto, field))
        if values:
            return values
    return []


def routes_of(routes, protocol):
    return [r for r in routes if r["protocol"] == protocol]


def route_id(route):
    where = route["url"] or "%s %s %s" % (route["target"], json.dumps(route["model_spec"], sort_keys=True),
                                           json.dumps(route["metadata"], sort_keys=True))
    return "%s %s" % (route["protocol"], where)


def test_the_gateway_lists_rest_and_grpc_routes_for_every_model(routes, fixture_of):
    for model in fixture_of:
        kinds = set(r["protocol"] for r in routes if r["model"] == model)
        assert kinds == {"rest", "grpc"}, (model, kinds)


def test_every_rest_route_answers_as_tensorflow_did(routes, fixture_of, expected):
    failures = []
    for route in routes_of(routes, "rest"):
        cases = predict_cases(expected, fixture_of[route["model"]], versions_of(route))
        assert cases, "no TensorFlow answers for %s" % route_id(route)
        for case in cases[:1] if route["version"] is None else cases:
            body = json.dumps(case["rest"]["request"]).encode()
            request = urllib.request.Request(route["url"] + ":predict", data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
                    got = json.load(answer)
            except urllib.error.HTTPError as e:
                failures.append("%s: HTTP %d %s" % (route_id(route), e.code, e.read()[:200]))
                continue
            # A split route may answer with any of its versions: one of theirs must match.
            wanted = [c["rest"]["response"] for c in cases if c["rest"]["request"] == case["rest"]["request"]]
            if not any(close(got, w) for w in wanted):
                failures.append("%s: %s, TensorFlow: %s" % (route_id(route), got, wanted))
    assert not failures, "\n".join(failures)


def test_every_grpc_route_answers_with_its_version_as_tensorflow_did(routes, fixture_of, expected):
    failures = []
    for route in routes_of(routes, "grpc"):
        cases = predict_cases(expected, fixture_of[route["model"]], versions_of(route))
        assert cases, "no TensorFlow answers for %s" % route_id(route)
        with grpc.insecure_channel(route["target"]) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for case in cases[:1] if route["version"] is None else cases:
                request = predict_pb2.PredictRequest()
                request.model_spec.name = route["model_spec"]["name"]
                if "version" in route["model_spec"]:
                    request.model_spec.version.value = route["model_spec"]["version"]
                if "version_label" in route["model_spec"]:
                    request.model_spec.version_label = route["model_spec"]["version_label"]
                request.model_spec.signature_name = case["signature_name"]
                for alias, spec in case["inputs"].items():
                    request.inputs[alias].CopyFrom(tensor_proto(spec))
                try:
                    answer = stub.Predict(request, metadata=sorted(route["metadata"].items()), timeout=TIMEOUT)
                except grpc.RpcError as e:
                    failures.append("%s: %s %s" % (route_id(route), e.code().name, e.details()))
                    continue
                version = answer.model_spec.version.value
                if version not in versions_of(route):
                    failures.append("%s: answered by version %d" % (route_id(route), version))
                    continue
                want = next(c for c in cases if c["version"] == version and c["inputs"] == case["inputs"]
                            and c["signature_name"] == case["signature_name"])
                for alias, spec in want["outputs"].items():
                    got = answer.outputs[alias]
                    if [d.size for d in got.tensor_shape.dim] != spec["shape"] or not close(flat_values(got),
                                                                                          spec["values"]):
                        failures.append("%s: %s = %s, TensorFlow (version %d): %s"
                                        % (route_id(route), alias, flat_values(got), version, spec["values"]))
    assert not failures, "\n".join(failures)


def test_an_undeclared_model_is_not_found_on_every_grpc_listener(routes):
    failures = []
    for target in sorted(set(r["target"] for r in routes_of(routes, "grpc"))):
        with grpc.insecure_channel(target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "undeclared_model"
            request.inputs["x"].CopyFrom(tensor_proto({"dtype": "DT_FLOAT", "shape": [1], "values": [1.0]}))
            with pytest.raises(grpc.RpcError) as e:
                stub.Predict(request, timeout=TIMEOUT)
            if e.value.code() != grpc.StatusCode.NOT_FOUND:
                failures.append("%s: %s %s" % (target, e.value.code().name, e.value.details()))
    assert not failures, "\n".join(failures)
