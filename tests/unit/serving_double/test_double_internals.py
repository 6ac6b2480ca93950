"""In-process checks of the double's graph evaluator, JSON layout and version-name parsing."""

import pytest

from double_helpers import FIXTURES


def _tensor(m, dtype, shape, values):
    return m.Tensor(dtype, shape, values)


def _node(name, op, inputs=(), **attr):
    return {"name": name, "op": op, "inputs": list(inputs), "attr": attr}


def test_evaluates_the_fixture_graph(double_module):
    m = double_module
    model = m.load_servable("half_plus", 2, "%s/half_plus/2" % FIXTURES, "serve")
    out = model.evaluator.run({"x:0": _tensor(m, "DT_FLOAT", [2], [1.0, 4.0])}, ["y:0"])
    assert out[0].shape == [2] and out[0].values == [3.5, 5.0]


def test_evaluates_plain_ops(double_module):
    m = double_module
    def const(name, shape, values):
        return _node(name, "Const", value={"dtype": "DT_FLOAT", "shape": shape, "values": values})

    nodes = [
        _node("x", "Placeholder", dtype="DT_FLOAT"),
        const("w", [2, 2], [1.0, 2.0, 3.0, 4.0]),
        const("b", [2], [0.5]),            # one value fills the whole tensor, as in TensorProto
        _node("mm", "MatMul", ["x", "w"]),
        _node("ba", "BiasAdd", ["mm", "b"]),
        _node("r", "Relu", ["neg"]),
        _node("neg", "Neg", ["ba"]),
        _node("d", "RealDiv", ["ba", "two"]),
        const("two", [], [2.0]),
        _node("s", "Sub", ["d", "ba"]),
        _node("c", "Cast", ["ba"], DstT="DT_INT64"),
        _node("y", "Identity", ["s", "^x"]),
    ]
    ev = m.GraphEvaluator(nodes)
    x = _tensor(m, "DT_FLOAT", [1, 2], [1.0, 1.0])
    ba, r, d, y, c = ev.run({"x:0": x}, ["ba:0", "r", "d:0", "y:0", "c:0"])
    assert ba.shape == [1, 2] and ba.values == [4.5, 6.5]
    assert r.values == [0.0, 0.0]
    assert d.values == [2.25, 3.25]
    assert y.values == [-2.25, -3.25]
    assert c.dtype == "DT_INT64" and c.values == [4, 6]


def test_unfed_placeholder_and_unknown_op(double_module):
    m = double_module
    ev = m.GraphEvaluator([_node("x", "Placeholder", dtype="DT_FLOAT"), _node("f", "StatefulPartitionedCall", ["x"])])
    with pytest.raises(m.Status) as e:
        ev.run({}, ["x:0"])
    assert e.value.code == "INVALID_ARGUMENT"
    with pytest.raises(m.Status) as e:
        ev.run({"x:0": _tensor(m, "DT_FLOAT", [1], [1.0])}, ["f:0"])
    assert e.value.code == "UNIMPLEMENTED" and "StatefulPartitionedCall" in e.value.message


def test_keras_export_loads_but_is_not_evaluated(double_module):
    m = double_module
    model = m.load_servable("keras", 1, "%s/keras_linear/1" % FIXTURES, "serve")
    assert "serving_default" in model.signatures
    with pytest.raises(m.Status) as e:
        model.evaluator.run({"serving_default_x:0": _tensor(m, "DT_FLOAT", [1], [1.0])}, ["StatefulPartitionedCall:0"])
    assert e.value.code == "UNIMPLEMENTED"


def test_wrong_tags(double_module):
    m = double_module
    with pytest.raises(m.Status) as e:
        m.load_servable("half_plus", 1, "%s/half_plus/1" % FIXTURES, "serve,gpu")
    assert e.value.code == "NOT_FOUND"
    assert e.value.message.startswith("Could not find meta graph def matching supplied tags: { gpu serve }.")


def test_version_names_parse_like_simple_atoi(double_module):
    parse = double_module.parse_version_number
    assert parse("3") == 3
    assert parse("00000123") == 123
    assert parse(" 7 ") == 7
    assert parse("+4") == 4
    for name in ("v2", "2.0", "0x10", ".incoming-3", "", "3a", "99999999999999999999"):
        assert parse(name) is None, name


def test_float_formatting(double_module):
    fmt = double_module.format_float
    f32 = double_module.f32
    assert fmt(2.5, False) == "2.5"
    assert fmt(3.0, False) == "3.0"
    assert fmt(f32(0.1), False) == "0.1"
    assert fmt(f32(1.0 / 3.0), False) == "0.333333343"
    assert fmt(1e6, False) == "1e+06"
    assert fmt(0.1, True) == "0.1"


def test_pretty_writer_layout(double_module):
    assert double_module.error_json('x "y"') == '{\n    "error": "x \\"y\\""\n}'
    assert double_module.json_debug_string({"a": [1, 2], "b": {}}) == '{\n    "a": [1, 2],\n    "b": {}\n}'
    # Like JsonWriterWithLimit: tokens stop once 256 bytes are written (a token is never cut).
    assert len(double_module.json_debug_string({"k": list(range(1000))})) < 270
