"""In-process checks of the double's loader, JSON layout and version-name parsing.

What it evaluates is checked in test_double_evaluation.py.
"""

import pytest

from double_helpers import FIXTURES


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
