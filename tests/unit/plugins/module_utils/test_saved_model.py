"""The stdlib SavedModel reader, checked against protobuf's own decoder."""

import os
import shutil
import time

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from tensorboard.compat.proto import meta_graph_pb2, types_pb2

from ansible_collections.mlserve.tfserving.plugins.module_utils import saved_model as sm

from ...conftest import FIXTURES

VERSION_DIRS = sorted(
    os.path.join(FIXTURES, model, version)
    for model in os.listdir(FIXTURES)
    for version in os.listdir(os.path.join(FIXTURES, model))
)


def _saved_model_class():
    """SavedModel is meta_graph.proto's sibling: field 1 int64, field 2 MetaGraphDef."""
    pool = descriptor_pool.Default()
    try:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName("mlserve_test.SavedModel"))
    except KeyError:
        pass
    f = descriptor_pb2.FileDescriptorProto(name="mlserve_test/saved_model.proto", package="mlserve_test",
                                           dependency=[meta_graph_pb2.DESCRIPTOR.name], syntax="proto3")
    m = f.message_type.add(name="SavedModel")
    m.field.add(name="saved_model_schema_version", number=1, type=3, label=1)
    m.field.add(name="meta_graphs", number=2, type=11, label=3, type_name=".tensorboard.MetaGraphDef")
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("mlserve_test.SavedModel"))


SavedModel = _saved_model_class()


def _reference(version_dir):
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
        return SavedModel.FromString(f.read())


def _ref_shape(shape):
    return None if shape.unknown_rank else [d.size for d in shape.dim]


def test_fixtures_cover_every_kind():
    names = [os.path.relpath(d, FIXTURES) for d in VERSION_DIRS]
    assert names == ["half_plus/1", "half_plus/2", "half_plus/3", "half_plus_incompatible/1",
                     "half_plus_incompatible/2", "keras_linear/1", "keras_linear/2", "keras_sequential/1",
                     "keras_sequential/2", "tf1_half_plus_two/00000002", "tf1_half_plus_two/1",
                     "tf1_half_plus_two_snappy/00000123", "tf2_12_half_plus_two/00000001", "tf2_12_module/1",
                     "tf2_module/0000000002", "tf2_module/1"]


@pytest.mark.parametrize("version_dir", VERSION_DIRS, ids=lambda d: os.path.relpath(d, FIXTURES))
def test_reader_agrees_with_protobuf(version_dir):
    ours = sm.load_saved_model(version_dir)
    ref = _reference(version_dir)
    assert ours["format"] == "pb"
    assert ours["schema_version"] == ref.saved_model_schema_version
    assert len(ours["meta_graphs"]) == len(ref.meta_graphs)
    for mine, theirs in zip(ours["meta_graphs"], ref.meta_graphs):
        assert mine["tags"] == list(theirs.meta_info_def.tags)
        assert mine["tensorflow_version"] == theirs.meta_info_def.tensorflow_version
        assert mine["has_saver"] == theirs.HasField("saver_def")
        assert sorted(mine["signatures"]) == sorted(theirs.signature_def)
        for name, sig in theirs.signature_def.items():
            assert mine["signatures"][name]["method_name"] == sig.method_name
            for side in ("inputs", "outputs"):
                ref_side = getattr(sig, side)
                assert sorted(mine["signatures"][name][side]) == sorted(ref_side)
                for key, info in ref_side.items():
                    got = mine["signatures"][name][side][key]
                    assert got["name"] == info.name
                    assert got["dtype"] == sm.dtype_name(info.dtype)
                    if info.dtype:
                        assert got["dtype"] == types_pb2.DataType.Name(info.dtype)
                    expected_shape = _ref_shape(info.tensor_shape) if info.HasField("tensor_shape") else None
                    assert got["shape"] == expected_shape
        assert [(n["name"], n["op"], n["inputs"]) for n in mine["nodes"]] == \
            [(n.name, n.op, list(n.input)) for n in theirs.graph_def.node]
        for mine_node, node in zip(mine["nodes"], theirs.graph_def.node):
            if node.op == "Const":
                tensor = node.attr["value"].tensor
                assert mine_node["attr"]["value"]["dtype"] == types_pb2.DataType.Name(tensor.dtype)
                assert mine_node["attr"]["value"]["values"] == list(tensor.float_val or tensor.double_val or tensor.int_val
                                                                        or tensor.int64_val or tensor.bool_val)


@pytest.mark.parametrize("version_dir", VERSION_DIRS, ids=lambda d: os.path.relpath(d, FIXTURES))
def test_text_format_reads_the_same(version_dir, tmp_path):
    text = text_format.MessageToString(_reference(version_dir))
    target = tmp_path / "v"
    target.mkdir()
    (target / "saved_model.pbtxt").write_text(text)
    from_text = sm.load_saved_model(str(target))
    from_binary = sm.load_saved_model(version_dir)
    assert from_text["format"] == "pbtxt"
    from_text["format"] = "pb"
    assert from_text == from_binary


def test_half_plus_constants_prove_the_version():
    for version, offset in ((1, 2.0), (2, 3.0), (3, 4.0)):
        nodes = sm.load_saved_model(os.path.join(FIXTURES, "half_plus", str(version)))["meta_graphs"][0]["nodes"]
        consts = dict((n["name"], n["attr"]["value"]["values"]) for n in nodes if n["op"] == "Const")
        assert consts == {"a": [0.5], "b": [offset]}


def test_packed_tensor_content_is_decoded():
    tensor = meta_graph_pb2.MetaGraphDef()
    node = tensor.graph_def.node.add(name="c", op="Const")
    value = node.attr["value"].tensor
    value.dtype = types_pb2.DT_FLOAT
    value.tensor_shape.dim.add(size=3)
    value.tensor_content = b"\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40"  # 1.0, 2.0, 3.0
    data = SavedModel(saved_model_schema_version=1, meta_graphs=[tensor]).SerializeToString()
    parsed = sm.parse_saved_model(data)["meta_graphs"][0]["nodes"][0]["attr"]["value"]
    assert parsed == {"dtype": "DT_FLOAT", "shape": [3], "values": [1.0, 2.0, 3.0]}


@pytest.mark.parametrize("cut", [1, 10, 100, 500])
def test_truncated_bytes_fail(cut):
    with open(os.path.join(FIXTURES, "half_plus", "1", "saved_model.pb"), "rb") as f:
        data = f.read()
    with pytest.raises(sm.SavedModelError, match="runs past|truncated"):
        sm.parse_saved_model(data[:-cut])


def test_empty_and_missing_files_fail(tmp_path):
    with pytest.raises(sm.SavedModelError, match="empty"):
        sm.parse_saved_model(b"")
    with pytest.raises(sm.SavedModelError, match="no saved_model.pb or saved_model.pbtxt"):
        sm.load_saved_model(str(tmp_path))


def test_broken_text_fails():
    with pytest.raises(sm.SavedModelError, match="expected"):
        sm.parse_saved_model_text("meta_graphs { meta_info_def { tags: ")


def test_needs_variables():
    keras = sm.load_saved_model(os.path.join(FIXTURES, "keras_linear", "1"))["meta_graphs"][0]
    plain = sm.load_saved_model(os.path.join(FIXTURES, "half_plus", "1"))["meta_graphs"][0]
    assert sm.needs_variables(keras)
    assert not sm.needs_variables(plain)


def _sig(**inputs):
    return {"inputs": dict((k, {"name": k, "dtype": d, "shape": s}) for k, (d, s) in inputs.items()),
            "outputs": {"y": {"name": "y", "dtype": "DT_FLOAT", "shape": [-1]}}}


@pytest.mark.parametrize("new, reason", [
    (_sig(x=("DT_FLOAT", [-1])), None),
    (_sig(x=("DT_FLOAT", [8])), None),
    (_sig(x=("DT_INT64", [-1])), "changed dtype from DT_FLOAT to DT_INT64"),
    (_sig(x=("DT_FLOAT", [-1, 3])), "changed rank from 1 to 2"),
    (_sig(z=("DT_FLOAT", [-1])), "input 'x' was removed"),
    (_sig(x=("DT_FLOAT", [-1]), z=("DT_FLOAT", [-1])), "input 'z' was added"),
])
def test_signature_compatibility(new, reason):
    ok, why = sm.signature_compatible(_sig(x=("DT_FLOAT", [-1])), new)
    assert ok == (reason is None)
    if reason:
        assert reason in why


def test_fixed_dimension_change_is_incompatible():
    ok, why = sm.signature_compatible(_sig(x=("DT_FLOAT", [-1, 3])), _sig(x=("DT_FLOAT", [-1, 4])))
    assert not ok and "dimension 1 from 3 to 4" in why


def test_removed_output_is_incompatible():
    new = _sig(x=("DT_FLOAT", [-1]))
    new["outputs"] = {}
    ok, why = sm.signature_compatible(_sig(x=("DT_FLOAT", [-1])), new)
    assert not ok and "output 'y' was removed" in why


def _tree(root, files):
    for rel, content in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def test_checksum_ignores_order_and_timestamps(tmp_path):
    files = [("saved_model.pb", b"graph"), ("variables/variables.index", b"idx"), ("assets/a.txt", b"a")]
    _tree(tmp_path / "one", files)
    _tree(tmp_path / "two", list(reversed(files)))
    os.utime(tmp_path / "two" / "saved_model.pb", (1, 1))
    os.chmod(tmp_path / "two" / "assets" / "a.txt", 0o600)
    one = sm.directory_checksum(str(tmp_path / "one"))[:3]
    assert one == sm.directory_checksum(str(tmp_path / "two"))[:3]
    assert one[1:] == (3, 9)


def test_checksum_sees_content_and_names(tmp_path):
    _tree(tmp_path / "one", [("a", b"x")])
    _tree(tmp_path / "two", [("a", b"y")])
    _tree(tmp_path / "three", [("b", b"x")])
    sums = set(sm.directory_checksum(str(tmp_path / d))[0] for d in ("one", "two", "three"))
    assert len(sums) == 3


def _rewrite_keeping_stat(path, content):
    """Change a file's bytes, keeping its size, mtime and inode (only its ctime moves)."""
    before = os.stat(path)
    with open(path, "r+b") as f:
        f.write(content)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_file_whose_stat_is_unchanged_is_not_read_again(tmp_path):
    _tree(tmp_path, [("saved_model.pb", b"graph"), ("assets/big", b"0123456789")])
    first = sm.directory_checksum(str(tmp_path))
    assert sorted(first[3]) == ["assets/big", "saved_model.pb"]
    # Trusting the earlier read: its sha256 is taken unread (here one the file does not have).
    known = dict(first[3], **{"assets/big": first[3]["assets/big"][:4] + ["0" * 64]})
    assert sm.directory_checksum(str(tmp_path), known)[0] != first[0]
    assert sm.directory_checksum(str(tmp_path), first[3]) == first


def test_a_write_that_keeps_size_mtime_and_inode_is_read_again(tmp_path):
    """An archive extracted with its mtimes kept, into an inode the old file freed: only the ctime tells."""
    _tree(tmp_path, [("assets/big", b"0123456789")])
    first = sm.directory_checksum(str(tmp_path))
    time.sleep(0.01)  # a later ctime, at any timestamp granularity the tests run on
    _rewrite_keeping_stat(tmp_path / "assets" / "big", b"9876543210")
    again = sm.directory_checksum(str(tmp_path), first[3])
    assert again[0] != first[0]
    assert again == sm.directory_checksum(str(tmp_path))


def test_an_entry_of_an_earlier_shape_is_read_again(tmp_path):
    """Manifests and caches written before the ctime was recorded: [size, mtime, inode, sha256]."""
    _tree(tmp_path, [("assets/big", b"0123456789")])
    first = sm.directory_checksum(str(tmp_path))
    old = {"assets/big": first[3]["assets/big"][:3] + ["0" * 64]}
    assert sm.directory_checksum(str(tmp_path), old) == first


@pytest.mark.parametrize("change", [
    lambda path: path.write_bytes(b"01234567890"),  # another size
    lambda path: (path.write_bytes(b"9876543210"), os.utime(path, ns=(1, 10 ** 9))),  # another mtime
    # Another file put in its place (a new inode: the old one is still in use while it is written).
    lambda path: (path.with_name("new").write_bytes(b"9876543210"), os.utime(path.with_name("new"), ns=(1, 1)),
                  os.replace(str(path.with_name("new")), str(path))),
])
def test_a_changed_size_mtime_or_inode_is_read_again(tmp_path, change):
    _tree(tmp_path, [("assets/big", b"0123456789")])
    os.utime(tmp_path / "assets" / "big", ns=(1, 1))
    first = sm.directory_checksum(str(tmp_path))
    change(tmp_path / "assets" / "big")
    again = sm.directory_checksum(str(tmp_path), first[3])
    assert again[0] != first[0]
    assert again == sm.directory_checksum(str(tmp_path))


def test_manifests_beside_each_version_are_written_used_and_rewritten(tmp_path):
    version = tmp_path / "3"
    _tree(version, [("saved_model.pb", b"graph"), ("assets/big", b"0123456789")])
    manifests = sm.Manifests("use")
    first = sm.directory_checksum(str(version))
    manifests.put(str(version), first[3], manifests.get(str(version)))
    assert manifests.written == [str(tmp_path / ".manifest-3.json")]
    assert sm.scan_model_base(str(tmp_path)) == ({3: "3"}, [])
    # Bytes that changed under an unchanged stat (a failing disk; here the manifest says so): use trusts it.
    stale = dict(first[3], **{"assets/big": first[3]["assets/big"][:4] + ["0" * 64]})
    manifests.put(str(version), stale, first[3])
    assert sm.directory_checksum(str(version), manifests.get(str(version)))[0] != first[0]
    # rewrite (models_verify: full) reads every file, and keeps what it read.
    full = sm.Manifests("rewrite")
    assert full.get(str(version)) is None
    audited = sm.directory_checksum(str(version), full.get(str(version)))
    assert audited == first
    full.put(str(version), audited[3], None)
    assert sm.directory_checksum(str(version), manifests.get(str(version)))[0] == first[0]


def test_manifests_are_not_written_in_check_mode_nor_when_off_nor_unchanged(tmp_path):
    _tree(tmp_path / "1", [("saved_model.pb", b"graph")])
    files = sm.directory_checksum(str(tmp_path / "1"))[3]
    for manifests in (sm.Manifests("use", check_mode=True), sm.Manifests("off")):
        manifests.put(str(tmp_path / "1"), files, None)
        assert manifests.written == [] and not (tmp_path / ".manifest-1.json").exists()
    manifests = sm.Manifests("use")
    manifests.put(str(tmp_path / "1"), files, files)
    assert manifests.written == []


def test_an_unreadable_manifest_means_reading_the_files(tmp_path):
    _tree(tmp_path / "1", [("saved_model.pb", b"graph")])
    (tmp_path / ".manifest-1.json").write_text("{not json")
    assert sm.Manifests("use").get(str(tmp_path / "1")) is None


def test_scan_follows_tf_serving_discovery(tmp_path):
    for name in ("1", "00000123", "v2", "2.0", ".incoming-3", "assets", "001"):
        (tmp_path / name).mkdir()
    (tmp_path / "7").write_text("a file, not a version")
    versions, problems = sm.scan_model_base(str(tmp_path))
    assert versions == {1: "001", 123: "00000123"}
    assert any("'001' and '1' are both version 1" in p for p in problems)
    assert any("'v2' looks like a version" in p for p in problems)
    assert any("'2.0' looks like a version" in p for p in problems)
    assert not any("incoming" in p or "assets" in p for p in problems)


def test_scan_of_a_missing_base_fails(tmp_path):
    with pytest.raises(sm.SavedModelError, match="is not a directory"):
        sm.scan_model_base(str(tmp_path / "nope"))


def test_fixture_copy_round_trip(tmp_path):
    shutil.copytree(os.path.join(FIXTURES, "half_plus"), str(tmp_path / "m"))
    assert sm.scan_model_base(str(tmp_path / "m")) == ({1: "1", 2: "2", 3: "3"}, [])
