"""checked_files: several files in one task, each put in place only once its check accepts it."""

import os
import stat

from ansible_collections.mlserve.tfserving.plugins.modules import checked_files as module

from .module_docs import assert_documentation_matches, module_runner

run = module_runner(module)

SH = ["/bin/sh", "-n", "%s"]


def files(base, script="echo one\n", rule="a\n"):
    return [{"path": str(base / "bin" / "hook"), "content": script, "mode": "0755", "check": SH},
            # The rule is accepted only while the hook before it says "one": a check sees the files before it.
            {"path": str(base / "rule"), "content": rule,
             "check": ["/bin/sh", "-c", 'grep -q one "$0" && test -s "$1"', str(base / "bin" / "hook"), "%s"]}]


def test_new_files_are_written_with_their_modes_and_a_second_run_changes_nothing(capsys, tmp_path):
    result = run(capsys, {"files": files(tmp_path)})
    assert result["changed"] and result["written"] == [str(tmp_path / "bin" / "hook"), str(tmp_path / "rule")]
    assert (tmp_path / "bin" / "hook").read_text() == "echo one\n"
    assert stat.S_IMODE(os.stat(tmp_path / "bin" / "hook").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "rule").st_mode) == 0o644
    again = run(capsys, {"files": files(tmp_path)})
    assert not again["changed"] and again["written"] == []


def test_only_the_files_that_differ_are_written_and_named(capsys, tmp_path):
    run(capsys, {"files": files(tmp_path)})
    os.chmod(tmp_path / "bin" / "hook", 0o700)
    result = run(capsys, {"files": files(tmp_path, rule="b\n")})
    assert result["written"] == [str(tmp_path / "bin" / "hook"), str(tmp_path / "rule")]
    assert stat.S_IMODE(os.stat(tmp_path / "bin" / "hook").st_mode) == 0o755
    result = run(capsys, {"files": files(tmp_path, rule="c\n")})
    assert result["written"] == [str(tmp_path / "rule")] and (tmp_path / "rule").read_text() == "c\n"


def test_a_refused_file_is_not_written_nor_the_ones_after_it_and_the_ones_before_are_named(capsys, tmp_path):
    run(capsys, {"files": files(tmp_path)})
    result = run(capsys, {"files": files(tmp_path, script="echo two\n", rule="b\n")})
    assert result["failed"] and result["changed"] and result["written"] == [str(tmp_path / "bin" / "hook")]
    assert result["msg"].startswith("/bin/sh refused the new %s; it and the files after it are as they were."
                                    % (tmp_path / "rule"))
    assert (tmp_path / "rule").read_text() == "a\n" and (tmp_path / "bin" / "hook").read_text() == "echo two\n"
    assert sorted(os.listdir(tmp_path)) == ["bin", "rule"]

    result = run(capsys, {"files": files(tmp_path, script="echo one\nif\n")})
    assert result["failed"] and not result["changed"] and result["written"] == []
    assert "refused the new %s" % (tmp_path / "bin" / "hook") in result["msg"] and "Syntax error" in result["msg"]
    assert (tmp_path / "bin" / "hook").read_text() == "echo two\n" and os.listdir(tmp_path / "bin") == ["hook"]


def test_check_mode_names_and_diffs_what_would_change_and_writes_nothing(capsys, tmp_path):
    run(capsys, {"files": files(tmp_path)})
    result = run(capsys, {"files": files(tmp_path, rule="b\n")}, check_mode=True, diff=True)
    assert result["changed"] and result["written"] == [str(tmp_path / "rule")]
    assert result["diff"] == [{"before_header": str(tmp_path / "rule"), "after_header": str(tmp_path / "rule"),
                               "before": "a\n", "after": "b\n"}]
    assert (tmp_path / "rule").read_text() == "a\n"


def test_bad_input_is_named_before_anything_is_written(capsys, tmp_path):
    result = run(capsys, {"files": [{"path": "rule", "content": ""},
                                    {"path": str(tmp_path / "x"), "content": "", "check": ["true"]},
                                    {"path": str(tmp_path / "y"), "content": "", "mode": "rwx"}]})
    assert result["failed"]
    assert result["msg"] == ("checked_files: files[0].path: 'rule' is not an absolute path; "
                             "files[1].check: ['true'] has no %s for the file to check; "
                             "files[2].mode: 'rwx' is not an octal mode such as 0644")
    assert os.listdir(tmp_path) == []


def test_the_documentation_is_the_argument_spec(monkeypatch):
    assert_documentation_matches(monkeypatch, module, ["written"])
