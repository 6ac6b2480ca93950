"""mlserve.tfserving.serving_apply: the AnsibleModule glue around the engine."""

import os
import sys

import pytest

from ansible_collections.mlserve.tfserving.plugins.module_utils import serving_apply as engine
from ansible_collections.mlserve.tfserving.plugins.modules import serving_apply as module

from ..module_utils.test_serving_apply import FakeClient, make_unit
from .module_docs import assert_documentation_matches, module_runner


run = module_runner(module)


@pytest.fixture
def no_engine(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "DOCKER_SOCKET", str(tmp_path / "docker.sock"))
    return str(tmp_path / "docker.sock")


def test_documentation_matches_the_argument_spec(monkeypatch):
    assert_documentation_matches(monkeypatch, module, {"units", "removed", "diff"})


def test_check_mode_without_docker_reports_every_unit_created(tmp_path, capsys, no_engine):
    units = [make_unit(tmp_path, "tfserving-a", labels={"stable": 1}), make_unit(tmp_path, "tfserving-b")]
    result = run(capsys, {"units": units, "host": "h1"}, check_mode=True)
    assert result["changed"] is True and "diff" not in result and "failed" not in result
    assert [(n, u["container"]) for n, u in sorted(result["units"].items())] == [
        ("tfserving-a", "created"), ("tfserving-b", "created")]
    assert result["units"]["tfserving-a"]["steps"] == 2 and result["removed"] == []
    assert not os.path.exists(str(tmp_path / "etc"))
    with_diff = run(capsys, {"units": units, "host": "h1"}, check_mode=True, diff=True)
    assert [d["after_header"] for d in with_diff["diff"]] == [
        units[0]["config_dir"] + "/models.config", "container tfserving-a",
        units[1]["config_dir"] + "/models.config", "container tfserving-b"]


def test_without_the_engine_it_fails_naming_it(tmp_path, capsys, no_engine):
    result = run(capsys, {"units": [make_unit(tmp_path)], "host": "h1"})
    assert result["failed"] is True
    assert result["msg"] == "h1: the Docker engine is not installed or not running (%s is missing)" % no_engine


def test_without_the_sdk_it_fails_naming_the_package(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "docker", None)  # import docker raises ImportError
    result = run(capsys, {"units": [make_unit(tmp_path)], "host": "h1"})
    assert result["msg"] == "h1: the Docker SDK for Python is not installed (Debian package python3-docker)"


def test_a_failure_returns_what_was_done(tmp_path, capsys, monkeypatch):
    client = FakeClient()
    monkeypatch.setattr(engine, "docker_client", lambda host, check_mode: client)
    unit = make_unit(tmp_path)
    result = run(capsys, {"units": [unit], "host": "h1", "wait_timeout": 1}, diff=True)
    assert result["failed"] is True and result["changed"] is True
    assert result["msg"].startswith("h1: tfserving-half_plus: no status answer from 127.0.0.1:%d" % unit["rest_port"])
    assert result["units"]["tfserving-half_plus"]["container"] == "created" and len(result["diff"]) == 2
    assert client.mutations() == [("create", "tfserving-half_plus"), ("start", "tfserving-half_plus")]
    created = client.containers.get("tfserving-half_plus").kwargs
    assert created["restart_policy"] == {"Name": "unless-stopped"}
    assert (created["user"], created["read_only"], created["cap_drop"], created["security_opt"],
            created["pids_limit"]) == ("65534:65534", True, ["ALL"], ["no-new-privileges:true"], 4096)
    after = [d["after"] for d in result["diff"] if d["after_header"] == "container tfserving-half_plus"]
    assert after[0]["hardening"] == engine.HARDENING


def test_hardening_options_reach_the_container_and_off_values_leave_the_image_defaults(tmp_path, capsys,
                                                                                        monkeypatch):
    client = FakeClient()
    monkeypatch.setattr(engine, "docker_client", lambda host, check_mode: client)
    # As the role passes them: templated, so numbers and booleans may arrive as strings.
    run(capsys, {"units": [make_unit(tmp_path)], "host": "h1", "wait_timeout": 1, "user": "", "read_only": "false",
                 "tmpfs": {}, "cap_drop": [], "no_new_privileges": False, "pids_limit": "0"})
    created = client.containers.get("tfserving-half_plus").kwargs
    assert not set(created) & {"user", "read_only", "tmpfs", "cap_drop", "security_opt", "pids_limit"}


def test_bad_hardening_fails_before_anything_changes(tmp_path, capsys, monkeypatch):
    client = FakeClient()
    monkeypatch.setattr(engine, "docker_client", lambda host, check_mode: client)
    unit = make_unit(tmp_path)
    result = run(capsys, {"units": [unit], "host": "h1", "user": "root", "cap_drop": ["ALL", "NOPE"],
                          "pids_limit": -5})
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"] == (
        "h1: user: 'root' is not a numeric uid:gid; use e.g. \"65534:65534\" (nobody), or \"\" for the image's own "
        "user; cap_drop: 'NOPE' is not a Linux capability; use ALL or names such as NET_RAW; pids_limit: -5 is not "
        "a number of processes; use a positive integer (threads count), or 0 for no limit")
    assert client.calls == [] and not os.path.exists(unit["config_dir"])


@pytest.mark.parametrize("check_mode", [False, True])
def test_an_engine_that_does_not_answer_fails_in_both_modes(tmp_path, capsys, monkeypatch, check_mode):
    (tmp_path / "docker.sock").write_text("")
    monkeypatch.setattr(engine, "DOCKER_SOCKET", str(tmp_path / "docker.sock"))
    monkeypatch.setenv("DOCKER_HOST", "unix://%s" % (tmp_path / "nothing.sock"))
    result = run(capsys, {"units": [make_unit(tmp_path)], "host": "h1"}, check_mode=check_mode)
    assert result["failed"] is True
    assert result["msg"].startswith("h1: cannot talk to the Docker engine: Error while fetching server API version")
