"""model_place: staged copies put in place, each in one rename, and each read whole, in one task."""

import os
import shutil

from ansible_collections.mlserve.tfserving.plugins.module_utils.saved_model import read_repository
from ansible_collections.mlserve.tfserving.plugins.modules import model_place as module

from ...conftest import FIXTURES
from .module_docs import assert_documentation_matches, module_runner

run = module_runner(module)
SOURCE = os.path.join(FIXTURES, "half_plus")


def checksum(path, version):
    read = read_repository({"path": path, "checksums_only": True, "strict": False, "versions": [version]}, [].append)
    return read["versions"][0]["checksum"]


def staged(tmp_path, *versions):
    """A model base directory holding versions 1 and 2 of the fixture, and `versions` staged as .incoming-<N>."""
    base = tmp_path / "half_plus"
    for version in (1, 2):
        shutil.copytree(os.path.join(SOURCE, str(version)), str(base / str(version)))
    for version, source in versions:
        shutil.copytree(os.path.join(SOURCE, str(source)), str(base / (".incoming-%d" % version)))
    return base


def test_a_new_and_a_replaced_version_are_put_in_place_and_read_as_the_source(capsys, tmp_path, monkeypatch):
    # Version 2 on the host was a copy of 1 (an earlier, different copy); 3 is new.
    # Ansible keeps one process's warnings once each: these are caught as the module gives them.
    warnings = []
    monkeypatch.setattr(module.AnsibleModule, "warn", lambda self, text: warnings.append(text))
    base = staged(tmp_path, (2, 2), (3, 3))
    shutil.rmtree(str(base / "2"))
    shutil.copytree(os.path.join(SOURCE, "1"), str(base / "2"))
    result = run(capsys, {"versions": [{"path": str(base), "version": 2}, {"path": str(base), "version": 3}]})
    assert result["changed"] is True
    assert [(p["version"], [v["checksum"] for v in p["versions"]]) for p in result["placed"]] == [
        (2, [checksum(SOURCE, 2)]), (3, [checksum(SOURCE, 3)])]
    assert "msg" not in result["placed"][0]
    assert [p["replaced"] for p in result["placed"]] == [True, False]
    assert warnings == [
        "version 2 in %s replaced a copy that differed from its source: a server that loaded it serves the old one "
        "until its container restarts. Publish a changed model as a new version number." % base]
    assert sorted(os.listdir(str(base))) == [".manifest-2.json", ".manifest-3.json", "1", "2", "3"]
    assert sorted(os.path.basename(p) for p in result["manifests_written"]) == [".manifest-2.json", ".manifest-3.json"]
    # The next runs' plain read agrees with what was placed.
    assert checksum(str(base), 2) == checksum(SOURCE, 2)


def test_a_copy_that_does_not_read_is_reported_with_its_message_and_the_others_still_placed(capsys, tmp_path):
    base = staged(tmp_path, (3, 3))
    os.makedirs(str(base / ".incoming-4"))
    open(str(base / ".incoming-4" / "variables.txt"), "w").close()
    result = run(capsys, {"versions": [{"path": str(base), "version": 4}, {"path": str(base), "version": 3}]})
    assert "failed" not in result
    four, three = result["placed"]
    assert four["versions"] == [] and "saved_model.pb" in four["msg"], four
    assert three["versions"][0]["checksum"] == checksum(SOURCE, 3)


def test_a_missing_staged_copy_fails_naming_it_and_changes_nothing(capsys, tmp_path):
    base = staged(tmp_path)
    result = run(capsys, {"versions": [{"path": str(base), "version": 3}]})
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"] == ("model_place: %s/.incoming-3 is missing: no copy of version 3 to put in place" % base)
    assert sorted(os.listdir(str(base))) == ["1", "2"]


def test_check_mode_renames_and_reads_nothing(capsys, tmp_path):
    base = staged(tmp_path, (3, 3))
    result = run(capsys, {"versions": [{"path": str(base), "version": 3}]}, check_mode=True)
    assert result["changed"] is True and result["placed"] == [{"path": str(base), "version": 3, "versions": [],
                                                               "replaced": False}]
    assert sorted(os.listdir(str(base))) == [".incoming-3", "1", "2"]


def test_documentation_matches_the_argument_spec(monkeypatch):
    assert_documentation_matches(monkeypatch, module, ["placed", "manifests_written"])
