"""Every route of the lab gateway, REST and gRPC, answers as TensorFlow said the route's version must.

Driven by the routes the gateway itself lists (playbooks/routes.yml
-e routes_json=FILE) and by the answers TensorFlow computed for each fixture
version (tests/fixtures/expected). gRPC goes through the stock client:
grpcio and tensorflow-serving-api's stubs, TensorProto built with the
protobuf classes (no TensorFlow). Traffic stays on loopback and is bounded:
one call per route and case.
"""

import collections
import re
import time

import grpc
import pytest
from clients import (TIMEOUT, close, flat_values, predict_cases, predict_request, rest_predict, route_id, routes_of,
                     tensor_proto, versions_of)
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc


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
            status, got, version = rest_predict(route, case)
            if status != 200:
                failures.append("%s: HTTP %d %s" % (route_id(route), status, got))
                continue
            # A split route may answer with any of its versions: the one the gateway names must match.
            wanted = [c["rest"]["response"] for c in cases if c["rest"]["request"] == case["rest"]["request"]
                      and str(c["version"]) == version]
            if not wanted or not any(close(got, w) for w in wanted):
                failures.append("%s: %s from version %s, TensorFlow: %s" % (route_id(route), got, version, wanted))
    assert not failures, "\n".join(failures)


def test_every_grpc_route_answers_with_its_version_as_tensorflow_did(routes, fixture_of, expected):
    failures = []
    for route in routes_of(routes, "grpc"):
        cases = predict_cases(expected, fixture_of[route["model"]], versions_of(route))
        assert cases, "no TensorFlow answers for %s" % route_id(route)
        with grpc.insecure_channel(route["target"]) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for case in cases[:1] if route["version"] is None else cases:
                request = predict_request(route, case)
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


def test_an_undeclared_version_or_label_of_an_isolated_model_is_not_found_at_the_gateway(routes, fixture_of, expected):
    failures = []
    for route in routes_of(routes, "grpc"):
        if not route["metadata"]:
            continue
        key = next(iter(route["metadata"]))
        case = predict_cases(expected, fixture_of[route["model"]], [route["version"]])[0]
        with grpc.insecure_channel(route["target"]) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            with pytest.raises(grpc.RpcError) as e:
                stub.Predict(predict_request(route, case), metadata=[(key, "undeclared99")], timeout=TIMEOUT)
            if e.value.code() != grpc.StatusCode.NOT_FOUND:
                failures.append("%s %s=undeclared99: %s %s" % (route["target"], key, e.value.code().name,
                                                               e.value.details()))
    assert not failures, "\n".join(failures)


def test_no_grpc_call_reloads_a_server_through_the_gateway(routes):
    """HandleReloadConfigRequest with an empty config would unload every model: the gateway refuses it itself."""
    from tensorflow_serving.apis import get_model_status_pb2, model_management_pb2, model_service_pb2_grpc

    failures = []
    for target in sorted(set(r["target"] for r in routes_of(routes, "grpc"))):
        with grpc.insecure_channel(target) as channel:
            models = model_service_pb2_grpc.ModelServiceStub(channel)
            with pytest.raises(grpc.RpcError) as e:
                models.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(), timeout=TIMEOUT)
            if e.value.code() != grpc.StatusCode.PERMISSION_DENIED:
                failures.append("%s: reload answered %s %s" % (target, e.value.code().name, e.value.details()))
            # A method the gateway does not know is not passed either.
            unknown = channel.unary_unary("/tensorflow.serving.SessionService/SessionRun")
            with pytest.raises(grpc.RpcError) as e:
                unknown(b"", timeout=TIMEOUT)
            if e.value.code() != grpc.StatusCode.UNIMPLEMENTED:
                failures.append("%s: SessionRun answered %s %s" % (target, e.value.code().name, e.value.details()))
    # Every model's versions are still AVAILABLE, asked through the allowed status method.
    for route in routes_of(routes, "grpc"):
        if route["label"] is not None or route["version"] is None or route["metadata"]:
            continue
        with grpc.insecure_channel(route["target"]) as channel:
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = route["model"]
            request.model_spec.version.value = route["version"]
            status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=TIMEOUT)
            states = [(s.version, get_model_status_pb2.ModelVersionStatus.State.Name(s.state))
                      for s in status.model_version_status]
            if states != [(route["version"], "AVAILABLE")]:
                failures.append("%s %s: %s" % (route["target"], route["model_spec"], states))
    assert not failures, "\n".join(failures)


def requests_by_version(metrics_text):
    """mtail's tfserving_gateway_requests_total, summed by (model, version) over labels and statuses."""
    counts = collections.Counter()
    for labels, value in re.findall(r'^tfserving_gateway_requests_total\{([^}]*)\} (\S+)$', metrics_text, re.M):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        counts[(fields["model"], fields["version"])] += int(float(value))
    return counts


def settled(read, timeout=30):
    """The counts once mtail has read what the earlier tests sent: unchanged for a second (bounded wait)."""
    deadline = time.monotonic() + timeout
    last = requests_by_version(read())
    while time.monotonic() < deadline:
        time.sleep(1)
        now = requests_by_version(read())
        if now == last:
            return now
        last = now
    raise AssertionError("the gateway's counts did not settle within %d s" % timeout)


def test_every_grpc_call_is_counted_under_the_version_that_answered(routes, fixture_of, expected, gateway_metrics):
    """Shared models too: the gateway reads the version from the answer's ModelSpec. mtail's counter of each
    (model, version) grows by exactly the calls that version answered, and "unknown" not at all."""
    calls = 20  # of Predict and of GetModelMetadata, per route
    before = settled(gateway_metrics)
    answered = collections.Counter()
    for route in routes_of(routes, "grpc"):
        predict = predict_request(route, predict_cases(expected, fixture_of[route["model"]], versions_of(route))[0])
        metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        metadata.model_spec.CopyFrom(predict.model_spec)
        metadata.model_spec.ClearField("signature_name")
        with grpc.insecure_channel(route["target"]) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for call, request in [(stub.Predict, predict)] * calls + [(stub.GetModelMetadata, metadata)] * calls:
                answer = call(request, metadata=sorted(route["metadata"].items()), timeout=TIMEOUT)
                answered[(route["model"], str(answer.model_spec.version.value))] += 1
    # A label in the ModelSpec is a shared model's: the server, not the gateway, chose the version.
    assert any("version_label" in route["model_spec"] for route in routes_of(routes, "grpc")), \
        "no gRPC route of a shared model among the routes"
    # mtail counts a line once nginx has written it: bounded wait until the counts settle.
    deadline = time.monotonic() + 30
    while True:
        grown = requests_by_version(gateway_metrics())
        grown.subtract(before)
        grown = {key: n for key, n in grown.items() if n}
        if grown == dict(answered) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert grown == dict(answered)
