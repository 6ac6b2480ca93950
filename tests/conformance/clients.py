"""What the conformance tests share: the stock client's messages, TensorFlow's answers, tolerances."""

import json
import math

from tensorflow.core.framework import tensor_pb2, types_pb2

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


def predict_request(route, case):
    """The stock client's PredictRequest for a gRPC route and one of TensorFlow's cases."""
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = route["model_spec"]["name"]
    if "version" in route["model_spec"]:
        request.model_spec.version.value = route["model_spec"]["version"]
    if "version_label" in route["model_spec"]:
        request.model_spec.version_label = route["model_spec"]["version_label"]
    request.model_spec.signature_name = case["signature_name"]
    for alias, spec in case["inputs"].items():
        request.inputs[alias].CopyFrom(tensor_proto(spec))
    return request


def rest_predict(route, case, headers=None):
    """POST a case's REST request to a route; returns (HTTP status, JSON answer, the version header)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(route["url"] + ":predict", data=json.dumps(case["rest"]["request"]).encode(),
                                     method="POST", headers=dict({"Content-Type": "application/json"}, **(headers or {})))
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            return answer.status, json.load(answer), answer.headers.get("X-Model-Version")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), e.headers.get("X-Model-Version")
