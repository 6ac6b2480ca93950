"""mlserve.tfserving.model_version_info: every failure it promises, and a real run."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.mlserve.tfserving.plugins.module_utils.saved_model import SavedModelError, read_repository
from ansible_collections.mlserve.tfserving.plugins.modules import model_version_info as module

from ...conftest import FIXTURES, REPO
from .module_docs import assert_documentation_matches


def params(path, **overrides):
    base = {"path": str(path), "versions": None, "signature_name": "serving_default", "tags": ["serve"],
            "compatible": True, "strict": True, "checksums_only": False}
    base.update(overrides)
    return base


def copy_model(tmp_path, name="half_plus"):
    target = tmp_path / name
    shutil.copytree(os.path.join(FIXTURES, name), str(target))
    return target


def fails(p, match, warnings=None):
    with pytest.raises(SavedModelError) as e:
        read_repository(p, (warnings if warnings is not None else []).append)
    assert match in str(e.value), str(e.value)
    return str(e.value)


def test_reports_every_declared_version():
    result = read_repository(params(os.path.join(FIXTURES, "half_plus"), versions=[3, 1, 2]), [].append)
    assert [v["version"] for v in result["versions"]] == [1, 2, 3]
    first = result["versions"][0]
    assert first["format"] == "pb" and first["tags"] == ["serve"] and first["directory"] == "1"
    assert first["tensorflow_version"] == "2.21.0"
    assert first["signatures"]["serving_default"]["inputs"]["x"] == {"name": "x:0", "dtype": "DT_FLOAT", "shape": [-1]}
    assert first["file_count"] == 1 and first["total_bytes"] > 0 and len(first["checksum"]) == 64


def test_init_op_signature_is_not_reported():
    result = read_repository(params(os.path.join(FIXTURES, "keras_linear")), [].append)
    assert [sorted(v["signatures"]) for v in result["versions"]] == [["serving_default"], ["serving_default"]]


def test_missing_declared_version(tmp_path):
    model = copy_model(tmp_path)
    message = fails(params(model, versions=[1, 4]), "version 4 is missing (found: 1, 2, 3)")
    assert message.startswith(str(model))


def test_empty_version_directory(tmp_path):
    model = copy_model(tmp_path)
    (model / "4").mkdir()
    fails(params(model, versions=[4]), "version 4 (4): no saved_model.pb or saved_model.pbtxt")


def test_truncated_saved_model(tmp_path):
    model = copy_model(tmp_path)
    pb = model / "2" / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[:400])
    fails(params(model, versions=[1, 2]), "version 2 (2): field of")


def test_pbtxt_variant_is_read(tmp_path):
    from google.protobuf import text_format
    from ..module_utils.test_saved_model import _reference
    model = copy_model(tmp_path)
    text = text_format.MessageToString(_reference(str(model / "2")))
    (model / "2" / "saved_model.pb").unlink()
    (model / "2" / "saved_model.pbtxt").write_text(text)
    result = read_repository(params(model, versions=[1, 2]), [].append)
    assert [v["format"] for v in result["versions"]] == ["pb", "pbtxt"]


def test_wrong_tags(tmp_path):
    fails(params(os.path.join(FIXTURES, "half_plus"), versions=[1], tags=["serve", "gpu"]),
          "version 1 (1): no MetaGraph has the tags [serve, gpu] (found: [serve])")


def test_missing_signature():
    fails(params(os.path.join(FIXTURES, "half_plus"), versions=[1], signature_name="classify"),
          "version 1 (1): signature 'classify' is missing (found: serving_default)")


def test_missing_variables_index(tmp_path):
    model = copy_model(tmp_path, "keras_linear")
    (model / "1" / "variables" / "variables.index").unlink()
    fails(params(model), "version 1 (1): variables/variables.index is missing")


def test_plain_graph_needs_no_variables_directory():
    result = read_repository(params(os.path.join(FIXTURES, "half_plus"), versions=[1]), [].append)
    assert result["versions"][0]["file_count"] == 1


def test_incompatible_signature():
    fails(params(os.path.join(FIXTURES, "half_plus_incompatible")),
          "version 2 (2): signature 'serving_default' is incompatible with version 1: "
          "input 'x' changed dtype from DT_FLOAT to DT_INT64")


def test_incompatible_signature_allowed_when_not_checked():
    result = read_repository(params(os.path.join(FIXTURES, "half_plus_incompatible"), compatible=False), [].append)
    assert len(result["versions"]) == 2


def test_v2_directory_strict_and_lenient(tmp_path):
    model = copy_model(tmp_path)
    shutil.copytree(str(model / "2"), str(model / "v2"))
    fails(params(model, versions=[1]), "directory 'v2' looks like a version but is not a number; TF Serving ignores it")
    warnings = []
    result = read_repository(params(model, versions=[1], strict=False), warnings.append)
    assert [v["version"] for v in result["versions"]] == [1]
    assert len(warnings) == 1 and "'v2'" in warnings[0]


def test_duplicate_version_numbers(tmp_path):
    model = copy_model(tmp_path)
    shutil.copytree(str(model / "1"), str(model / "001"))
    fails(params(model, versions=[1]), "directories '001' and '1' are both version 1")


def test_checksums_only_lists_without_reading(tmp_path):
    model = copy_model(tmp_path)
    (model / "2" / "saved_model.pb").write_bytes(b"not a model")
    result = read_repository(params(model, checksums_only=True), [].append)
    assert [v["version"] for v in result["versions"]] == [1, 2, 3]
    assert "signatures" not in result["versions"][0]
    assert read_repository(params(tmp_path / "absent", checksums_only=True), [].append)["versions"] == []


def ansible_module(args, check=False):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    # The ansible beside this interpreter: the one the tests were installed with.
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-m", "mlserve.tfserving.model_version_info", "-a", args]
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return proc.returncode, result


def test_documentation_matches_the_argument_spec(monkeypatch):
    assert_documentation_matches(monkeypatch, module, {"path", "versions", "manifests_written"})


def test_ansible_runs_the_module_in_check_mode():
    rc, result = ansible_module("path=tests/fixtures/models/half_plus versions=1,2,3", check=True)
    assert rc == 0 and result["changed"] is False
    assert [v["version"] for v in result["versions"]] == [1, 2, 3]


def test_ansible_writes_manifests_beside_the_versions_and_none_in_check_mode(tmp_path):
    model = copy_model(tmp_path)
    args = "path=%s checksums_only=true manifests=use" % model
    rc, checked = ansible_module(args, check=True)
    assert rc == 0 and checked["manifests_written"] == [] and not list(model.glob(".manifest-*"))
    rc, first = ansible_module(args)
    assert rc == 0 and first["changed"] is False
    assert first["manifests_written"] == [str(model / (".manifest-%d.json" % v)) for v in (1, 2, 3)]
    assert checked["versions"] == first["versions"]
    rc, again = ansible_module(args)
    assert rc == 0 and again["manifests_written"] == [] and again["versions"] == first["versions"]


def test_ansible_reports_the_failure(tmp_path):
    model = copy_model(tmp_path)
    (model / "3" / "saved_model.pb").write_bytes(b"\x0a")
    rc, result = ansible_module("path=%s versions=1,2,3" % model)
    assert rc != 0 and result["failed"]
    assert result["msg"].startswith("%s: version 3 (3): " % model)


@pytest.mark.parametrize("make, match", [
    (lambda v: os.symlink("/nonexistent", str(v / "assets.extra")),
     "half_plus: version 1 (1): assets.extra is a symbolic link"),
    (lambda v: os.symlink(str(v / "loop"), str(v / "loop")), "half_plus: version 1 (1): loop is a symbolic link"),
    (lambda v: os.mkfifo(str(v / "pipe")), "half_plus: version 1 (1): pipe is not a regular file or directory"),
])
def test_links_and_special_files_in_a_version_are_named_and_never_read(tmp_path, make, match):
    model = copy_model(tmp_path)
    make(model / "1")
    fails(params(model, versions=[1]), match)
    fails(params(model, versions=[1], checksums_only=True), match)


def test_an_unreadable_file_is_named(tmp_path, monkeypatch):
    """As root every file reads, so the refusal comes from open() itself."""
    model = copy_model(tmp_path)
    real_open = open

    def refusing_open(path, *args, **kwargs):
        if str(path).endswith(os.path.join("1", "saved_model.pb")):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refusing_open)
    fails(params(model, versions=[1]), "half_plus: version 1 (1): saved_model.pb cannot be read: Permission denied")


def test_non_ascii_digits_are_not_versions(tmp_path):
    model = copy_model(tmp_path)
    shutil.copytree(str(model / "1"), str(model / "\u00b2"))
    shutil.copytree(str(model / "1"), str(model / "\u0661"))
    warnings = []
    result = read_repository(params(model, strict=False), warnings.append)
    assert [v["version"] for v in result["versions"]] == [1, 2, 3]
    assert any("'\u0661' looks like a version but is not a number TF Serving reads" in w for w in warnings)
    fails(params(model), "'\u00b2' looks like a version but is not a number TF Serving reads (ASCII digits only)")


def test_a_version_that_links_to_another_is_named(tmp_path):
    model = copy_model(tmp_path)
    shutil.rmtree(str(model / "3"))
    os.symlink("2", str(model / "3"))
    fails(params(model), "directory '3' is the same directory as '2' (a symbolic link)")


def test_zero_padded_directories_are_their_number(tmp_path):
    model = copy_model(tmp_path)
    os.rename(str(model / "2"), str(model / "00000002"))
    result = read_repository(params(model, versions=[2]), [].append)
    assert [(v["version"], v["directory"]) for v in result["versions"]] == [(2, "00000002")]
