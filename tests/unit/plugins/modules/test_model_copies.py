"""model_copies: a serving host's model directories made and read in one task."""

import grp
import os
import pwd
import shutil
import stat

from ansible_collections.mlserve.tfserving.plugins.module_utils.saved_model import read_repository
from ansible_collections.mlserve.tfserving.plugins.modules import model_copies as module

from ...conftest import FIXTURES
from .module_docs import assert_documentation_matches, module_runner

run = module_runner(module)
OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def args(*paths, **extra):
    return dict({"paths": [str(p) for p in paths], "owner": OWNER, "group": GROUP}, **extra)


def test_missing_directories_are_made_and_copies_are_read_as_a_plain_read_lists_them(capsys, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(os.path.join(FIXTURES, "half_plus"), str(root / "half_plus"))
    os.chmod(root / "half_plus", 0o755)
    result = run(capsys, args(root / "half_plus", root / "resnet", mode="0750"))
    assert result["changed"] and result["directories"] == [str(root / "half_plus"), str(root / "resnet")]
    assert stat.S_IMODE(os.stat(root / "resnet").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(root / "half_plus").st_mode) == 0o750
    plain = read_repository({"path": str(root / "half_plus"), "checksums_only": True, "strict": False,
                             "versions": None}, [].append)
    assert result["copies"] == [plain, {"path": str(root / "resnet"), "versions": []}]
    assert [v["version"] for v in plain["versions"]] == [1, 2, 3]
    # A manifest is written beside each version, and that is no change.
    assert len(result["manifests_written"]) == 3
    again = run(capsys, args(root / "half_plus", root / "resnet", mode="0750"))
    assert not again["changed"] and again["directories"] == [] and again["manifests_written"] == []
    assert again["copies"] == result["copies"]


def test_check_mode_names_what_it_would_make_and_makes_nothing(capsys, tmp_path):
    result = run(capsys, args(tmp_path / "models" / "half_plus"), check_mode=True)
    assert result["changed"] and result["directories"] == [str(tmp_path / "models" / "half_plus")]
    assert result["copies"] == [{"path": str(tmp_path / "models" / "half_plus"), "versions": []}]
    assert os.listdir(tmp_path) == []


def test_a_directory_tf_serving_would_skip_is_a_warning_not_a_version(capsys, tmp_path, monkeypatch):
    shutil.copytree(os.path.join(FIXTURES, "half_plus", "1"), str(tmp_path / "m" / "v2"))
    # Ansible keeps one process's warnings once each: these are caught as the module gives them.
    warnings = []
    monkeypatch.setattr(module.AnsibleModule, "warn", lambda self, text: warnings.append(text))
    result = run(capsys, args(tmp_path / "m"))
    assert result["copies"][0]["versions"] == []
    assert warnings == ["%s: directory 'v2' looks like a version but is not a number; TF Serving ignores it "
                        "(name version directories 1, 2, 3...)" % (tmp_path / "m")]


def test_bad_input_is_named_before_anything_is_made(capsys, tmp_path):
    result = run(capsys, args(tmp_path / "m", owner="no-such-user-mlserve", group="no-such-group-mlserve", mode="rwx"))
    assert result["failed"]
    assert result["msg"] == ("model_copies: owner: 'no-such-user-mlserve' is not a user of this host; "
                             "group: 'no-such-group-mlserve' is not a group of this host; "
                             "mode: 'rwx' is not an octal mode such as 0755")
    result = run(capsys, args("models/m"))
    assert result["failed"] and result["msg"] == "model_copies: paths: 'models/m' is not an absolute path"
    assert os.listdir(tmp_path) == []


def test_the_documentation_is_the_argument_spec(monkeypatch):
    assert_documentation_matches(monkeypatch, module, ["copies", "directories", "manifests_written"])
