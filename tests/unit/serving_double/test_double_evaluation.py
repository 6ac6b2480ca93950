"""What the TF Serving test double evaluates: variables, TF2 functions, predict/classify/regress.

Driven by tests/fixtures/expected/<model>.json (TensorFlow's own answers for
the fixture models, written by tests/fixtures/generate_models.py): every case
of every version is checked through a running double's REST API and by
calling evaluation.predict/classify/regress on a loaded servable, as the gRPC
API does. Floats are compared with a relative tolerance of 1e-6 (the double
sums in double precision and rounds to float32 afterwards).
"""

import json
import math
import os
import shutil
import struct

import pytest
from tensorflow.core.framework import attr_value_pb2, function_pb2, node_def_pb2, types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import input_pb2

from double_helpers import EXPECTED_DIR, FIXTURES, Double, expected_answers, write_config

EXPECTED = expected_answers()
CASES = [pytest.param(model, case, id="%s-v%d-%s-%d" % (model, case["version"], case["method"], i))
         for model, doc in sorted(EXPECTED.items()) for i, case in enumerate(doc["cases"])]
VERSIONS = [pytest.param(model, int(v), info, id="%s-v%s" % (model, v))
            for model, doc in sorted(EXPECTED.items()) for v, info in sorted(doc["versions"].items())]
CHECKPOINTS = [v for v in VERSIONS if v.values[2]["checkpoint"]]
FACTS = [pytest.param(fact, id="%s-%s-%d" % (fact["api"], fact["method"], i))
         for i, fact in enumerate(EXPECTED.get("tf1_half_plus_two", {}).get("upstream_facts", []))]
# The tests below are parametrized from the expected files: without them they would be skipped, not failed.
assert CASES and CHECKPOINTS and FACTS, EXPECTED_DIR


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) or (math.isnan(a) and math.isnan(b))


def assert_json_close(got, want, where="$"):
    if isinstance(want, float) or (isinstance(want, int) and isinstance(got, float)):
        assert isinstance(got, (int, float)) and close(got, want), "%s: %r != %r" % (where, got, want)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), "%s: %r != %r" % (where, got, want)
        for i, (g, w) in enumerate(zip(got, want)):
            assert_json_close(g, w, "%s[%d]" % (where, i))
    elif isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), "%s: %r != %r" % (where, got, want)
        for k in want:
            assert_json_close(got[k], want[k], "%s.%s" % (where, k))
    else:
        assert got == want, "%s: %r != %r" % (where, got, want)


def assert_tensor(got, want):
    assert got.dtype == want["dtype"] and got.shape == want["shape"]
    assert_json_close(list(got.values), want["values"])


@pytest.fixture(scope="module")
def ev(double_module):
    return double_module.evaluation


@pytest.fixture(scope="module")
def servable(double_module):
    loaded = {}

    def get(model, version):
        if (model, version) not in loaded:
            directory = EXPECTED[model]["versions"][str(version)]["directory"]
            loaded[model, version] = double_module.load_servable(
                model, version, os.path.join(FIXTURES, model, directory), "serve")
        return loaded[model, version]
    return get


def make_input(double_module, case):
    """The Input proto of a classify/regress case, through the REST API's own JSON conversion."""
    doc = {"examples": case["examples"]}
    if "context" in case:
        doc["context"] = case["context"]
    return double_module.input_from_json(doc)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One double serving every version of every fixture model."""
    tmp = tmp_path_factory.mktemp("evaluation")
    models = tmp / "models"
    shutil.copytree(FIXTURES, str(models))
    config = tmp / "models.config"
    write_config(config, *[{"name": name, "base_path": str(models / name), "policy": "all {}"}
                           for name in sorted(EXPECTED)])
    d = Double(tmp, ["--model_config_file=%s" % config])
    try:
        d.wait_rest(timeout=30)
        for name, doc in EXPECTED.items():
            d.wait_states(name, dict((int(v), "AVAILABLE") for v in doc["versions"]), timeout=30)
        yield d
    finally:
        d.stop()


def check_result(case, result):
    if case["method"] == "classify":
        got = [[[c.label, c.score] for c in cl.classes] for cl in result.classifications]
        want = [[[c["label"], c["score"]] for c in cl["classes"]] for cl in case["result"]["classifications"]]
    else:
        got = [r.value for r in result.regressions]
        want = [r["value"] for r in case["result"]["regressions"]]
    assert_json_close(got, want)


def run_case(double_module, ev, loaded, case):
    """The case's call as the gRPC API makes it."""
    if case["method"] == "predict":
        inputs = dict((alias, ev.Tensor(t["dtype"], t["shape"], t["values"])) for alias, t in case["inputs"].items())
        return ev.predict(loaded, case["signature_name"], inputs, case.get("output_filter", ()))
    return getattr(ev, case["method"])(loaded, case["signature_name"], make_input(double_module, case))


# ---------------------------------------------------------------- TensorFlow's answers, every case

@pytest.mark.parametrize("model,case", CASES)
def test_case_by_direct_call(double_module, ev, servable, model, case):
    loaded = servable(model, case["version"])
    if "error" in case:
        with pytest.raises(ev.Status) as e:
            run_case(double_module, ev, loaded, case)
        assert e.value.code == case["error"]["code"]
        assert case["error"]["message_contains"] in e.value.message
        return
    got = run_case(double_module, ev, loaded, case)
    if case["method"] == "predict":
        assert sorted(got) == sorted(case["outputs"])
        for alias, want in case["outputs"].items():
            assert_tensor(got[alias], want)
    else:
        check_result(case, got)


@pytest.mark.parametrize("model,case", [c for c in CASES if c.values[1]["rest"]])
def test_case_through_rest(server, model, case):
    path = "/v1/models/%s/versions/%d:%s" % (model, case["version"], case["method"])
    code, text, _ = server.post(path, case["rest"]["request"])
    if case["rest"]["response"] is None:
        assert code == 400, text
        assert case["error"]["message_contains"] in json.loads(text)["error"]
        return
    assert code == 200, text
    assert_json_close(json.loads(text), case["rest"]["response"])


@pytest.mark.parametrize("model,version,info", CHECKPOINTS)
def test_checkpoint_read_by_the_bundle_reader(ev, model, version, info):
    bundle = ev.Bundle(os.path.join(FIXTURES, model, info["directory"], "variables", "variables"))
    assert set(info["checkpoint"]) <= set(bundle.entries)
    for key, want in info["checkpoint"].items():
        assert_tensor(bundle.read(key), want)


@pytest.mark.parametrize("model,version,info", VERSIONS)
def test_meta_graph_def_and_signatures(double_module, servable, model, version, info):
    loaded = servable(model, version)
    assert type(loaded.meta_graph_def).__name__ == "MetaGraphDef"
    assert sorted(loaded.meta_graph_def.signature_def) == sorted(info["signatures"]) == sorted(loaded.signatures)
    for name, want in info["signatures"].items():
        got = loaded.meta_graph_def.signature_def[name]
        assert got.method_name == want["method_name"]
        assert dict((k, v.name) for k, v in got.outputs.items()) == dict(
            (k, v["name"]) for k, v in want["outputs"].items())


def test_the_fixtures_ops_are_all_evaluated(ev):
    evaluated = set(ev.evaluated_ops())
    for model, doc in EXPECTED.items():
        assert set(doc["inference_ops"]) <= evaluated, model


# ---------------------------------------------------------------- answers of TF Serving's own tests (half_plus_two)

@pytest.mark.parametrize("fact", FACTS)
def test_upstream_facts(double_module, ev, servable, server, fact):
    model = servable("tf1_half_plus_two", 1)
    if fact["api"] == "rest":
        code, text, _ = server.post("/v1/models/tf1_half_plus_two/versions/1:%s" % fact["method"], fact["request"])
        assert code == 200, text
        assert_json_close(json.loads(text), fact["response"])
    elif fact["method"] == "predict":
        for output_filter in (fact["output_filter"], []):
            got = run_case(double_module, ev, model, dict(fact, output_filter=output_filter))
            assert_tensor(got["y"], fact["outputs"]["y"])
            assert ev.tensor_to_proto(got["y"]).float_val == [3.0]
    elif fact["method"] == "multi_inference":
        for task, want in zip(fact["tasks"], fact["results"]):
            method = "classify" if task["method_name"].endswith("classify") else "regress"
            case = dict(fact, method=method, signature_name=task["signature_name"], result=want)
            check_result(case, run_case(double_module, ev, model, case))
    else:
        check_result(fact, run_case(double_module, ev, model, fact))


def test_rest_layout_of_classify_and_regress(server):
    code, text, _ = server.post("/v1/models/tf1_half_plus_two/versions/1:classify",
                                {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}, {"x": 1.0}]})
    assert (code, text) == (200, '{\n    "results": [[["", 3.0]], [["", 2.5]]\n    ]\n}')
    code, text, _ = server.post("/v1/models/tf1_half_plus_two/versions/1:regress",
                                {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}, {"x": 1.0}]})
    assert (code, text) == (200, '{\n    "results": [3.0, 2.5]\n}')


# ---------------------------------------------------------------- error paths

def test_predict_errors(ev, servable):
    model = servable("tf1_half_plus_two", 1)
    x = ev.Tensor("DT_FLOAT", [1, 1], [2.0])

    def status(*args):
        with pytest.raises(ev.Status) as e:
            ev.predict(model, *args)
        return e.value.code, e.value.message

    assert status("nope", {"x": x}) == ("FAILED_PRECONDITION", 'Serving signature key "nope" not found.')
    assert status("", {"z": x}) == (
        "INVALID_ARGUMENT", "Signature input alias: x(feed name: x:0) not found in request and no default value "
        "provided. Inputs expected to be in the request {z}, or default input alias set: ")
    assert status("", {"x": x, "z": x}) == (
        "INVALID_ARGUMENT", "input size does not match signature: 2!=1 len({x,z}) != len({x}). Sent extra: {z}. "
        "Missing but required: {}.")
    assert status("", {}) == (
        "INVALID_ARGUMENT", "input size does not match signature: 0!=1 len({}) != len({x}). Sent extra: {}. "
        "Missing but required: {x}.")
    assert status("", {"x": x}, ["nope"]) == (
        "INVALID_ARGUMENT", "output tensor alias not found in signature: nope Outputs expected to be in the set {y}.")
    assert status("", {"x": x}, ["y", "y"]) == ("INVALID_ARGUMENT", "duplicate output tensor alias: y")
    assert status("", {"x": ev.Tensor("DT_INT64", [1, 1], [2])}) == (
        "INVALID_ARGUMENT", "Expects arg[0] to be float but int64 is provided")
    code, message = status("classify_x_to_y", {"inputs": ev.Tensor("DT_STRING", [1], [b"\xff garbage"])})
    assert code == "INVALID_ARGUMENT" and "Could not parse example input" in message


def test_classify_and_regress_errors(double_module, ev, servable):
    model = servable("tf1_half_plus_two", 1)
    one = double_module.input_from_json({"examples": [{"x": 1.0}]})

    def status(method, signature, input_proto=one):
        with pytest.raises(ev.Status) as e:
            getattr(ev, method)(model, signature, input_proto)
        return e.value.code, e.value.message

    assert status("classify", "nope") == ("INVALID_ARGUMENT", "No signature was found with the name: nope")
    code, message = status("regress", "")
    assert code == "INVALID_ARGUMENT" and message.startswith('No regression inputs found in SignatureDef: inputs {')
    code, message = status("classify", "serving_default")
    assert code == "INVALID_ARGUMENT" and message.startswith('No classification inputs found in SignatureDef: inputs {')
    code, message = status("regress", "classify_x_to_y")
    assert message.startswith("No regression outputs found in SignatureDef: inputs {\n  key: \"inputs\"\n")
    assert message.endswith('method_name: "tensorflow/serving/classify"\n')
    code, message = status("classify", "regress_x_to_y")
    assert message.startswith('Expected classification signature outputs to contain at least one of "classes" or '
                              '"scores". Signature was: ')
    assert status("regress", "regress_x_to_y", input_pb2.Input()) == (
        "INVALID_ARGUMENT", "Input is empty.")
    bad = double_module.input_from_json({"examples": [{"x": "text"}]})
    code, message = status("regress", "regress_x_to_y", bad)
    assert code == "INVALID_ARGUMENT"
    assert "Name: <unknown>, Key: x, Index: 0.  Data types don't match. Data type: string but expected type: float" \
        in message
    ev.set_signature_method_name_check(True)
    try:
        assert status("regress", "classify_x_to_y") == (
            "INVALID_ARGUMENT", "Expected regression signature method_name to be tensorflow/serving/regress. Was: "
            "tensorflow/serving/classify")
    finally:
        ev.set_signature_method_name_check(False)


def test_rest_classify_request_conversion(double_module):
    """FillClassificationRequestFromJson: numbers, strings, base64, lists, context."""
    proto = double_module.input_from_json({"context": {"c": [1, 2]}, "examples": [
        {"f": 1.5, "i": 3, "s": "text", "b": {"b64": "aGk="}, "l": [0.5, 2.0], "t": True}]})
    assert proto.WhichOneof("kind") == "example_list_with_context"
    assert list(proto.example_list_with_context.context.features.feature["c"].int64_list.value) == [1, 2]
    feature = proto.example_list_with_context.examples[0].features.feature
    assert list(feature["f"].float_list.value) == [1.5]
    assert list(feature["i"].int64_list.value) == [3]
    assert list(feature["s"].bytes_list.value) == [b"text"]
    assert list(feature["b"].bytes_list.value) == [b"hi"]
    assert list(feature["l"].float_list.value) == [0.5, 2.0]
    assert list(feature["t"].int64_list.value) == [1]
    with pytest.raises(double_module.Status) as e:
        double_module.input_from_json({"examples": [{"m": [1.0, 2]}]})
    assert e.value.message == "Unexpected element type in feature: m expecting type: float"
    with pytest.raises(double_module.Status) as e:
        double_module.input_from_json({"examples": [{"m": [[1.0]]}]})
    assert e.value.message == "Feature: m has element with unexpected JSON type: Array"
    with pytest.raises(double_module.Status) as e:
        double_module.input_from_json({"examples": [{"m": None}]})
    assert e.value.message == "Feature: m has element with unexpected JSON type: Null"


# ---------------------------------------------------------------- hand-built graphs: ops, functions, result checks

def attr_value(ev, value):
    """An AttrValue from a plain Python value ("DT_..." strings are types, tuples are shapes)."""
    a = attr_value_pb2.AttrValue()
    if isinstance(value, ev.Tensor):
        a.tensor.CopyFrom(ev.tensor_to_proto(value))
    elif isinstance(value, bool):
        a.b = value
    elif isinstance(value, int):
        a.i = value
    elif isinstance(value, str) and value.startswith("DT_"):
        a.type = types_pb2.DataType.Value(value)
    elif isinstance(value, str):
        a.func.name = value
    elif isinstance(value, tuple):
        for d in value:
            a.shape.dim.add().size = d
    elif value and all(isinstance(v, str) for v in value):
        a.list.type.extend(types_pb2.DataType.Value(v) for v in value)
    elif value and all(isinstance(v, tuple) for v in value):
        for shape in value:
            s = a.list.shape.add()
            for d in shape:
                s.dim.add().size = d
    else:
        a.list.i.extend(value)
        a.list.SetInParent()
    return a


def node(ev, name, op, inputs=(), **attrs):
    n = node_def_pb2.NodeDef(name=name, op=op, input=list(inputs))
    for key, value in attrs.items():
        n.attr[key].CopyFrom(attr_value(ev, value))
    return n


def const(ev, name, dtype, shape, values):
    return node(ev, name, "Const", value=ev.Tensor(dtype, shape, values), dtype=dtype)


def write_model(double_module, directory, nodes, signatures, functions=()):
    """A SavedModel without variables, written by hand, loaded by the double -> LoadedModel."""
    saved = saved_model_pb2.SavedModel()
    meta = saved.meta_graphs.add()
    meta.meta_info_def.tags.append("serve")
    meta.graph_def.node.extend(nodes)
    meta.graph_def.library.function.extend(functions)
    for name, (method, inputs, outputs) in signatures.items():
        sig = meta.signature_def[name]
        sig.method_name = method
        for alias, tensor in inputs.items():
            sig.inputs[alias].name = tensor
            sig.inputs[alias].dtype = types_pb2.DT_STRING if alias == "inputs" else types_pb2.DT_FLOAT
        for alias, tensor in outputs.items():
            sig.outputs[alias].name = tensor
    os.makedirs(str(directory), exist_ok=True)
    with open(os.path.join(str(directory), "saved_model.pb"), "wb") as f:
        f.write(saved.SerializeToString())
    return double_module.load_servable("hand", 1, str(directory), "serve")


def run_graph(double_module, tmp_path, nodes, feeds, fetches, functions=()):
    model = write_model(double_module, tmp_path / "graph", nodes, {}, functions)
    return model.session.run(feeds, fetches)


def test_assignments_keep_the_variables_state_across_requests(double_module, ev, tmp_path):
    """TF Serving's saved_model_counter: signatures that Assign, AssignAdd and AssignSub a VariableV2, whose value
    the next request sees (predict_impl_test.cc PredictionWithCustomizedSignatures)."""
    scalar = lambda name, value: const(ev, name, "DT_FLOAT", [], [value])  # noqa: E731
    nodes = [node(ev, "counter", "VariableV2", dtype="DT_FLOAT", shape=()), scalar("zero", 0.0), scalar("one", 1.0),
             node(ev, "delta", "Placeholder", dtype="DT_FLOAT"),
             node(ev, "reset", "Assign", ["counter", "zero"], T="DT_FLOAT"),
             node(ev, "incr", "AssignAdd", ["counter", "one"], T="DT_FLOAT"),
             node(ev, "incr_by", "AssignAdd", ["counter", "delta"], T="DT_FLOAT"),
             node(ev, "decr", "AssignSub", ["counter", "one"], T="DT_FLOAT"),
             const(ev, "pair", "DT_FLOAT", [2], [1.0, 1.0]),
             node(ev, "incr_pair", "AssignAdd", ["counter", "pair"], T="DT_FLOAT")]
    session = write_model(double_module, tmp_path / "counter", nodes, {}).session
    with pytest.raises(double_module.Status) as e:
        session.run({}, ["incr"])
    assert e.value.code == "FAILED_PRECONDITION" and "Attempting to use uninitialized value counter" in e.value.message
    three = ev.Tensor("DT_FLOAT", [], [3.0])
    answers = [session.run(feeds, [fetch])[0].values for fetch, feeds in (
        ("reset", {}), ("incr", {}), ("incr", {}), ("decr", {}), ("counter", {}), ("incr_by", {"delta:0": three}))]
    assert answers == [[0.0], [1.0], [2.0], [1.0], [1.0], [4.0]]
    with pytest.raises(double_module.Status) as e:
        session.run({}, ["incr_pair"])
    assert e.value.code == "INVALID_ARGUMENT" and "Parameters and update must be the same size" in e.value.message
    assert session.run({}, ["counter"])[0].values == [4.0]


def test_array_and_math_ops(double_module, ev, tmp_path):
    x = ev.Tensor("DT_FLOAT", [2, 3], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    i32 = lambda name, values: const(ev, name, "DT_INT32", [len(values)], values)  # noqa: E731
    nodes = [
        node(ev, "x", "Placeholder", dtype="DT_FLOAT"),
        i32("shape", [3, -1]), node(ev, "reshape", "Reshape", ["x", "shape"], T="DT_FLOAT"),
        const(ev, "axis1", "DT_INT32", [], [1]), node(ev, "concat", "ConcatV2", ["x", "x", "axis1"], N=2),
        i32("b", [0, 1]), i32("e", [0, 3]), i32("s", [1, 1]),
        node(ev, "slice", "StridedSlice", ["x", "b", "e", "s"], begin_mask=1, end_mask=1),
        i32("b1", [1]), i32("e1", [2]), i32("s1", [1]),
        node(ev, "row", "StridedSlice", ["x", "b1", "e1", "s1"], shrink_axis_mask=1),
        node(ev, "shape_of", "Shape", ["x"], out_type="DT_INT32"),
        node(ev, "pack", "Pack", ["row", "row"], axis=1, N=2),
        node(ev, "expand", "ExpandDims", ["x", "axis1"]),
        node(ev, "squeeze", "Squeeze", ["expand"], squeeze_dims=[1]),
        node(ev, "sum", "Sum", ["x", "axis1"]),
        const(ev, "axis0", "DT_INT32", [], [0]), node(ev, "mean", "Mean", ["x", "axis0"], keep_dims=True),
        const(ev, "logits", "DT_FLOAT", [1, 2], [0.0, math.log(2.0)]), node(ev, "softmax", "Softmax", ["logits"]),
        i32("multiples", [1, 2]), node(ev, "tile", "Tile", ["logits", "multiples"]),
        const(ev, "c", "DT_FLOAT", [2], [-1.5, 2.7]), node(ev, "cast", "Cast", ["c"], DstT="DT_INT64"),
        node(ev, "sigmoid", "Sigmoid", ["c"]), node(ev, "tanh", "Tanh", ["c"]), node(ev, "relu", "Relu", ["c"]),
        node(ev, "mm", "MatMul", ["x", "x"], transpose_b=True),
        node(ev, "idn", "IdentityN", ["c", "row"], T=["DT_FLOAT", "DT_FLOAT"]),
        node(ev, "argmax", "ArgMax", ["x", "axis1"]),
    ]
    out = run_graph(double_module, tmp_path, nodes, {"x:0": x}, [
        "reshape", "concat", "slice", "row", "shape_of", "pack", "expand", "squeeze", "sum", "mean", "softmax",
        "tile", "cast", "sigmoid:0", "tanh", "relu", "mm", "idn:1", "argmax"])
    got = dict((name, (t.shape, t.values)) for name, t in zip([
        "reshape", "concat", "slice", "row", "shape_of", "pack", "expand", "squeeze", "sum", "mean", "softmax",
        "tile", "cast", "sigmoid", "tanh", "relu", "mm", "idn1", "argmax"], out))
    assert got["reshape"] == ([3, 2], x.values)
    assert got["concat"] == ([2, 6], [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 4.0, 5.0, 6.0])
    assert got["slice"] == ([2, 2], [2.0, 3.0, 5.0, 6.0])
    assert got["row"] == ([3], [4.0, 5.0, 6.0])
    assert got["shape_of"] == ([2], [2, 3])
    assert got["pack"] == ([3, 2], [4.0, 4.0, 5.0, 5.0, 6.0, 6.0])
    assert got["expand"] == ([2, 1, 3], x.values) and got["squeeze"] == ([2, 3], x.values)
    assert got["sum"] == ([2], [6.0, 15.0]) and got["mean"] == ([1, 3], [2.5, 3.5, 4.5])
    assert got["softmax"][0] == [1, 2]
    assert_json_close(got["softmax"][1], [1.0 / 3.0, 2.0 / 3.0])
    assert got["tile"][0] == [1, 4]
    assert got["cast"] == ([2], [-1, 2])
    assert_json_close(got["sigmoid"][1], [1 / (1 + math.exp(1.5)), 1 / (1 + math.exp(-2.7))])
    assert_json_close(got["tanh"][1], [math.tanh(-1.5), math.tanh(2.7)])
    assert got["relu"] == ([2], [0.0, 2.700000047683716]) and str(got["relu"][1][0]) == "0.0"
    assert got["mm"] == ([2, 2], [14.0, 32.0, 32.0, 77.0])
    assert got["idn1"] == ([3], [4.0, 5.0, 6.0])
    assert got["argmax"] == ([2], [2, 2])


def test_shape_errors_name_the_node(double_module, ev, tmp_path):
    nodes = [node(ev, "x", "Placeholder", dtype="DT_FLOAT"), const(ev, "w", "DT_FLOAT", [3, 1], [1.0, 1.0, 1.0]),
             node(ev, "mm", "MatMul", ["x", "w"]), node(ev, "add", "AddV2", ["x", "w"])]
    model = write_model(double_module, tmp_path / "m", nodes, {})
    for fetch, text in (("mm", "Matrix size-incompatible: In[0]: [2,2], In[1]: [3,1]"),
                        ("add", "Incompatible shapes: [2,2] vs. [3,1]")):
        with pytest.raises(ev.Status) as e:
            model.session.run({"x": ev.Tensor("DT_FLOAT", [2, 2], [1.0] * 4)}, [fetch])
        assert e.value.code == "INVALID_ARGUMENT" and e.value.message == "%s\n\t [[{{node %s}}]]" % (text, fetch)
    with pytest.raises(ev.Status) as e:
        model.session.run({}, ["mm"])
    assert e.value.message.startswith("You must feed a value for placeholder tensor 'x' with dtype float")


def function_def(ev, name, args, rets, nodes, control=()):
    f = function_pb2.FunctionDef()
    f.signature.name = name
    for arg, dtype in args:
        f.signature.input_arg.add(name=arg, type=types_pb2.DataType.Value(dtype))
    for ret, source in rets:
        f.signature.output_arg.add(name=ret, type=types_pb2.DT_FLOAT)
        f.ret[ret] = source
    f.node_def.extend(nodes)
    for target in control:
        f.control_ret[target] = target
    return f


def test_functions_variables_and_nested_calls(double_module, ev, tmp_path):
    """TF2's shape: graph VarHandleOps captured by StatefulPartitionedCall, "node:output:index" naming inside."""
    inner = function_def(ev, "inner", [("x", "DT_FLOAT"), ("v", "DT_RESOURCE")], [("out", "mul:z:0")], [
        node(ev, "read", "ReadVariableOp", ["v"], dtype="DT_FLOAT"),
        node(ev, "mul", "Mul", ["x", "read:value:0"], T="DT_FLOAT")], control=["read"])
    outer = function_def(ev, "outer", [("x", "DT_FLOAT"), ("v", "DT_RESOURCE")], [("y", "id:output:0")], [
        node(ev, "call", "PartitionedCall", ["x", "v"], f="inner"),
        node(ev, "one", "Const", value=ev.Tensor("DT_FLOAT", [], [1.0]), dtype="DT_FLOAT"),
        node(ev, "add", "AddV2", ["call:output:0", "one:output:0"]),
        node(ev, "id", "Identity", ["add:z:0", "^call"])])
    nodes = [node(ev, "x", "Placeholder", dtype="DT_FLOAT"),
             node(ev, "v", "VarHandleOp", dtype="DT_FLOAT", shared_name="w"),
             const(ev, "init_value", "DT_FLOAT", [], [3.0]),
             node(ev, "assign", "AssignVariableOp", ["v", "init_value"], dtype="DT_FLOAT"),
             node(ev, "f", "StatefulPartitionedCall", ["x", "v"], f="outer")]
    model = write_model(double_module, tmp_path / "m", nodes, {}, [inner, outer])
    with pytest.raises(ev.Status) as e:
        model.session.run({"x:0": ev.Tensor("DT_FLOAT", [2], [1.0, 2.0])}, ["f:0"])
    assert e.value.code == "FAILED_PRECONDITION" and e.value.message.startswith("Could not find variable w.")
    model.session.run({}, [], ["assign"])
    assert model.session.variables[("", "w")].values == [3.0]
    [y] = model.session.run({"x:0": ev.Tensor("DT_FLOAT", [2], [1.0, 2.0])}, ["f:0"])
    assert (y.shape, y.values) == ([2], [4.0, 7.0])


def test_parse_example_v1_with_defaults_and_types(double_module, ev, tmp_path):
    strings = lambda name, values: const(ev, name, "DT_STRING", [len(values)], values)  # noqa: E731
    nodes = [node(ev, "in", "Placeholder", dtype="DT_STRING"), strings("names", []),
             const(ev, "kf", "DT_STRING", [], [b"f"]), const(ev, "ki", "DT_STRING", [], [b"i"]),
             const(ev, "ks", "DT_STRING", [], [b"s"]),
             const(ev, "df", "DT_FLOAT", [2], [7.0, 8.0]), const(ev, "di", "DT_INT64", [0], []),
             const(ev, "ds", "DT_STRING", [], [b"none"]),
             node(ev, "parse", "ParseExample", ["in", "names", "kf", "ki", "ks", "df", "di", "ds"], Nsparse=0,
                  Ndense=3, sparse_types=[], Tdense=["DT_FLOAT", "DT_INT64", "DT_STRING"],
                  dense_shapes=[(2,), (), (1,)])]
    model = write_model(double_module, tmp_path / "m", nodes, {})
    examples = double_module.input_from_json({"examples": [{"i": 5, "s": "yes"}, {"i": 6, "f": [1.0, 2.0]}]})
    serialized = ev.input_to_serialized_example_tensor(examples)
    f, i, s = model.session.run({"in": serialized}, ["parse:0", "parse:1", "parse:2"])
    assert (f.shape, f.values) == ([2, 2], [7.0, 8.0, 1.0, 2.0])
    assert (i.dtype, i.shape, i.values) == ("DT_INT64", [2], [5, 6])
    assert (s.shape, s.values) == ([2, 1], [b"yes", b"none"])


def classify_model(double_module, ev, directory):
    """Scores [batch, 2] = [x, -x] from tf.Examples; classes tiled from constants."""
    strings = lambda name, shape, values: const(ev, name, "DT_STRING", shape, values)  # noqa: E731
    i32 = lambda name, values: const(ev, name, "DT_INT32", [len(values)], values)  # noqa: E731
    nodes = [
        node(ev, "in", "Placeholder", dtype="DT_STRING"), strings("names", [0], []), strings("none", [0], []),
        strings("keys", [1], [b"x"]), const(ev, "required", "DT_FLOAT", [0], []),
        node(ev, "parse", "ParseExampleV2", ["in", "names", "none", "keys", "none", "required"], num_sparse=0,
             sparse_types=[], ragged_value_types=[], ragged_split_types=[], Tdense=["DT_FLOAT"], dense_shapes=[(1,)]),
        node(ev, "neg", "Neg", ["parse:0"]), const(ev, "axis", "DT_INT32", [], [1]),
        node(ev, "scores", "ConcatV2", ["parse:0", "neg", "axis"], N=2),
        node(ev, "shape", "Shape", ["in"], out_type="DT_INT32"),
        i32("b", [0]), i32("e", [1]), i32("s", [1]),
        node(ev, "batch", "StridedSlice", ["shape", "b", "e", "s"], shrink_axis_mask=1),
        const(ev, "one", "DT_INT32", [], [1]), node(ev, "multiples", "Pack", ["batch", "one"], N=2),
        strings("labels2", [1, 2], [b"pos", b""]), node(ev, "classes", "Tile", ["labels2", "multiples"]),
        strings("labels3", [1, 3], [b"a", b"b", b"c"]), node(ev, "classes3", "Tile", ["labels3", "multiples"]),
        i32("flat", [-1]), node(ev, "flat_scores", "Reshape", ["scores", "flat"]),
    ]
    method = "tensorflow/serving/classify"
    signatures = {
        "both": (method, {"inputs": "in:0"}, {"classes": "classes:0", "scores": "scores:0"}),
        "classes_only": (method, {"inputs": "in:0"}, {"classes": "classes:0"}),
        "scores_only": (method, {"inputs": "in:0"}, {"scores": "scores:0"}),
        "mismatch": (method, {"inputs": "in:0"}, {"classes": "classes3:0", "scores": "scores:0"}),
        "rank": (method, {"inputs": "in:0"}, {"scores": "flat_scores:0"}),
        "strings": (method, {"inputs": "in:0"}, {"scores": "classes:0"}),
        "wide": ("tensorflow/serving/regress", {"inputs": "in:0"}, {"outputs": "scores:0"}),
        "flat": ("tensorflow/serving/regress", {"inputs": "in:0"}, {"outputs": "flat_scores:0"}),
    }
    return write_model(double_module, directory, nodes, signatures)


def test_classification_results_and_output_checks(double_module, ev, tmp_path):
    model = classify_model(double_module, ev, tmp_path / "m")
    two = double_module.input_from_json({"examples": [{"x": 1.5}, {"x": -2.0}]})
    pairs = lambda result: [[(c.label, c.score) for c in cl.classes] for cl in result.classifications]  # noqa
    assert pairs(ev.classify(model, "both", two)) == [[("pos", 1.5), ("", -1.5)], [("pos", -2.0), ("", 2.0)]]
    assert pairs(ev.classify(model, "classes_only", two)) == [[("pos", 0.0), ("", 0.0)]] * 2
    assert pairs(ev.classify(model, "scores_only", two)) == [[("", 1.5), ("", -1.5)], [("", -2.0), ("", 2.0)]]
    one = double_module.input_from_json({"examples": [{"x": 1.0}]})
    for signature, message in (
            ("mismatch", "Tensors class and score should match in dim_size(1). Got 3 vs. 2"),
            ("rank", "Expected Tensor shape: [batch_size num_classes] but got [2]"),
            ("strings", "Expected scores Tensor of DT_FLOAT. Got: DT_STRING")):
        with pytest.raises(ev.Status) as e:
            ev.classify(model, signature, one)
        assert (e.value.code, e.value.message) == ("INVALID_ARGUMENT", message)
    with pytest.raises(ev.Status) as e:
        ev.regress(model, "wide", one)
    assert e.value.message == "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got [1,2]"
    with pytest.raises(ev.Status) as e:
        ev.regress(model, "flat", one)
    assert e.value.message == "Input batch size did not match output batch size: 1 vs. 2"
    assert double_module.make_json_from_classification_result(ev.classify(model, "both", two)) == (
        '{\n    "results": [[["pos", 1.5], ["", -1.5]], [["pos", -2.0], ["", 2.0]]\n    ]\n}')


def test_unevaluable_op_is_unimplemented(double_module, ev, tmp_path):
    nodes = [node(ev, "x", "Placeholder", dtype="DT_FLOAT"), node(ev, "y", "Erf", ["x"], T="DT_FLOAT")]
    model = write_model(double_module, tmp_path / "m", nodes, {
        "serving_default": ("tensorflow/serving/predict", {"x": "x:0"}, {"y": "y:0"})})
    with pytest.raises(ev.Status) as e:
        ev.predict(model, "", {"x": ev.Tensor("DT_FLOAT", [1], [1.0])})
    assert e.value.code == "UNIMPLEMENTED"
    assert e.value.message.startswith("The TF Serving test double cannot evaluate op Erf (node 'y')")


# ---------------------------------------------------------------- the TensorBundle at load time

def copy_version(tmp_path, model, directory):
    target = tmp_path / model
    shutil.copytree(os.path.join(FIXTURES, model, directory), str(target))
    return target


def test_damaged_bundles_fail_the_load(double_module, tmp_path):
    load = lambda path: double_module.load_servable("m", 1, str(path), "serve")  # noqa: E731
    index = lambda path: str(path / "variables" / "variables.index")  # noqa: E731
    data = lambda path: str(path / "variables" / "variables.data-00000-of-00001")  # noqa: E731

    bad_magic = copy_version(tmp_path / "a", "tf2_module", "1")
    with open(index(bad_magic), "r+b") as f:
        f.seek(-1, os.SEEK_END)
        f.write(b"\0")
    with pytest.raises(double_module.Status) as e:
        load(bad_magic)
    assert e.value.code == "DATA_LOSS" and "not an sstable (bad magic number)" in e.value.message

    flipped = copy_version(tmp_path / "b", "tf2_module", "1")
    with open(data(flipped), "r+b") as f:
        first = f.read(4)
        f.seek(0)
        f.write(struct.pack("<f", struct.unpack("<f", first)[0] + 1.0))
    with pytest.raises(double_module.Status) as e:
        load(flipped)
    assert e.value.code == "DATA_LOSS" and "Checksum does not match" in e.value.message

    missing = copy_version(tmp_path / "c", "keras_sequential", "1")
    os.remove(data(missing))
    with pytest.raises(double_module.Status) as e:
        load(missing)
    assert e.value.code == "NOT_FOUND" and e.value.message.endswith("; No such file or directory")


def test_unevaluable_model_answers_501_over_rest(double_module, ev, tmp_path):
    base = tmp_path / "models" / "erf"
    nodes = [node(ev, "x", "Placeholder", dtype="DT_FLOAT"), node(ev, "y", "Erf", ["x"], T="DT_FLOAT")]
    write_model(double_module, base / "1", nodes, {
        "serving_default": ("tensorflow/serving/predict", {"x": "x:0"}, {"y": "y:0"})})
    d = Double(tmp_path, ["--model_name=erf", "--model_base_path=%s" % base])
    try:
        d.wait_rest(timeout=30)
        code, text, _ = d.post("/v1/models/erf:predict", {"instances": [1.0]})
        assert code == 501
        assert json.loads(text)["error"].startswith("The TF Serving test double cannot evaluate op Erf")
    finally:
        d.stop()


def test_tensor_proto_conversion(ev):
    proto = ev.tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.5])
    proto.tensor_shape.dim.add().size = 3
    t = ev.tensor_from_proto(proto)
    assert (t.dtype, t.shape, t.values) == ("DT_FLOAT", [3], [1.5, 1.5, 1.5])  # padded like Tensor::FromProto
    content = ev.tensor_pb2.TensorProto(dtype=types_pb2.DT_INT64, tensor_content=struct.pack("<2q", -1, 7))
    content.tensor_shape.dim.add().size = 2
    assert ev.tensor_from_proto(content).values == [-1, 7]
    back = ev.tensor_to_proto(ev.Tensor("DT_STRING", [2], [b"a", b"\xff"]))
    assert back.dtype == types_pb2.DT_STRING and list(back.string_val) == [b"a", b"\xff"]
    assert [d.size for d in back.tensor_shape.dim] == [2]
    for bad in (ev.tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0, 2.0]),   # 2 values, scalar
                ev.tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, tensor_content=b"\0\0"),  # 2 bytes for int32
                ev.tensor_pb2.TensorProto(dtype=types_pb2.DT_INVALID)):
        with pytest.raises(ev.Status) as e:
            ev.tensor_from_proto(bad)
        assert e.value.code == "INVALID_ARGUMENT"
