"""Version discovery, policies, states and start-up ordering of the TF Serving test double."""

import json
import os
import shutil
import time

from double_helpers import port_open, specific, wait_for, write_config


def _single(start_double, base, *extra, env=None):
    return start_double("--model_name=m", "--model_base_path=%s" % base, "--file_system_poll_wait_seconds=1",
                        "--max_num_load_retries=0", *extra, env=env)


def _with_policy(start_double, tmp_path, base, policy, *extra):
    config = tmp_path / "models.config"
    write_config(config, {"name": "m", "base_path": str(base), "policy": policy})
    return start_double("--model_config_file=%s" % config, "--file_system_poll_wait_seconds=1",
                        "--max_num_load_retries=0", *extra)


# ---------------------------------------------------------------- discovery

def test_only_numeric_names_are_versions(start_double, models):
    base = models / "half_plus"
    shutil.move(str(base / "3"), str(base / "v3"))        # looks like a version, silently ignored
    shutil.copytree(str(base / "v3"), str(base / "3.0"))
    shutil.copytree(str(base / "v3"), str(base / ".incoming-4"))
    d = _single(start_double, base).wait_rest()
    d.wait_states("m", {2: "AVAILABLE"})
    assert d.states("m") == {2: "AVAILABLE"}
    assert d.predict("/v1/models/m:predict", [2.0]) == [4.0]   # version 2: 0.5*x + 3


def test_leading_zeros_parse_as_the_number(start_double, models):
    base = models / "half_plus"
    shutil.move(str(base / "3"), str(base / "00000123"))
    d = _single(start_double, base).wait_rest()
    d.wait_states("m", {123: "AVAILABLE"})
    assert d.predict("/v1/models/m/versions/123:predict", [2.0]) == [5.0]


def test_two_names_for_one_number_one_is_ignored(start_double, models):
    base = models / "half_plus"
    shutil.rmtree(str(base / "3"))
    shutil.move(str(base / "1"), str(base / "001"))
    shutil.copytree(str(base / "2"), str(base / "1"))          # "1" (offset 3) and "001" (offset 2)
    d = _single(start_double, base).wait_rest()
    d.wait_states("m", {2: "AVAILABLE"})
    shutil.rmtree(str(base / "2"))
    d.wait_states("m", {1: "AVAILABLE", 2: "END"})
    assert d.predict("/v1/models/m/versions/1:predict", [2.0]) == [4.0]  # loaded from "1", "001" ignored
    assert "Duplicate version directories detected. Version 1 will be loaded from 1, 001 will be ignored." in d.stderr()


def test_new_version_directory_is_picked_up(start_double, models):
    base = models / "half_plus"
    shutil.move(str(base / "3"), str(base / ".incoming-3"))
    d = _single(start_double, base).wait_rest()
    d.wait_states("m", {2: "AVAILABLE"})
    os.rename(str(base / ".incoming-3"), str(base / "3"))
    d.wait_states("m", {3: "AVAILABLE", 2: "END"}, timeout=5)
    assert d.predict("/v1/models/m:predict", [2.0]) == [5.0]


def test_removing_every_version_unloads_the_model(start_double, models):
    base = models / "half_plus"
    d = _single(start_double, base).wait_rest()
    d.wait_states("m", {3: "AVAILABLE"})
    for v in ("1", "2", "3"):
        shutil.rmtree(str(base / v))
    d.wait_states("m", {3: "END"}, timeout=5)
    assert d.json("POST", "/v1/models/m:predict", {"instances": [1.0]}) == (
        404, {"error": "Servable not found for request: Latest(m)"})


# ---------------------------------------------------------------- policies

def test_policy_latest_default_is_one(start_double, models):
    d = _single(start_double, models / "half_plus").wait_rest()
    d.wait_states("m", {3: "AVAILABLE"})
    assert d.states("m") == {3: "AVAILABLE"}


def test_policy_latest_num_versions(start_double, tmp_path, models):
    d = _with_policy(start_double, tmp_path, models / "half_plus", "latest { num_versions: 2 }").wait_rest()
    assert d.wait_states("m", {3: "AVAILABLE", 2: "AVAILABLE"}) == {3: "AVAILABLE", 2: "AVAILABLE"}


def test_policy_latest_zero_is_one(start_double, tmp_path, models):
    d = _with_policy(start_double, tmp_path, models / "half_plus", "latest { num_versions: 0 }").wait_rest()
    d.wait_states("m", {3: "AVAILABLE"})
    time.sleep(0.3)
    assert d.states("m") == {3: "AVAILABLE"}


def test_policy_all(start_double, tmp_path, models):
    d = _with_policy(start_double, tmp_path, models / "half_plus", "all {}").wait_rest()
    d.wait_states("m", {1: "AVAILABLE", 2: "AVAILABLE", 3: "AVAILABLE"})
    assert [d.predict("/v1/models/m/versions/%d:predict" % v, [2.0]) for v in (1, 2, 3)] == [[3.0], [4.0], [5.0]]


def test_policy_specific(start_double, tmp_path, models):
    d = _with_policy(start_double, tmp_path, models / "half_plus", specific(1, 3, 9)).wait_rest()
    d.wait_states("m", {1: "AVAILABLE", 3: "AVAILABLE"})
    assert d.states("m") == {1: "AVAILABLE", 3: "AVAILABLE"}
    assert ("Version 9 of servable m, which was requested to be served as a 'specific' version in the servable's "
            "version policy, was not found in the file system") in d.stderr()


# ---------------------------------------------------------------- states

def test_status_shape_and_order_with_end_versions(start_double, models):
    base = models / "half_plus"
    d = _single(start_double, base).wait_rest()
    d.wait_states("m", {3: "AVAILABLE"})
    shutil.rmtree(str(base / "3"))
    d.wait_states("m", {3: "END", 2: "AVAILABLE"}, timeout=5)
    code, body = d.json("GET", "/v1/models/m")
    assert code == 200
    assert body == {"model_version_status": [
        {"version": "3", "state": "END", "status": {"error_code": "OK", "error_message": ""}},
        {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}


def test_new_version_loads_before_old_unloads(start_double, models):
    base = models / "half_plus"
    shutil.move(str(base / "3"), str(base / ".incoming-3"))
    d = _single(start_double, base, env={"SERVING_DOUBLE_LOAD_DELAY_SECONDS": "0.6",
                                         "SERVING_DOUBLE_UNLOAD_DELAY_SECONDS": "0.6"}).wait_rest()
    d.wait_states("m", {2: "AVAILABLE"})
    os.rename(str(base / ".incoming-3"), str(base / "3"))
    seen = []

    def observe():
        states = d.states("m")
        if states and (not seen or seen[-1] != states):
            seen.append(states)
        if states.get(3) == "AVAILABLE" and states.get(2) == "LOADING":
            raise AssertionError("impossible")
        return states.get(2) == "END"
    wait_for(observe, 8, interval=0.05, what="2 to END")
    assert {2: "AVAILABLE", 3: "START"} in seen or {2: "AVAILABLE", 3: "LOADING"} in seen
    assert {3: "LOADING", 2: "AVAILABLE"} in seen           # old version still serves while the new one loads
    assert {3: "AVAILABLE", 2: "UNLOADING"} in seen         # unloaded only after the new one is AVAILABLE
    for states in seen:
        assert "AVAILABLE" in states.values(), seen      # never without a serving version
    assert d.predict("/v1/models/m:predict", [2.0]) == [5.0]


def test_failed_load_is_end_with_error_and_old_version_keeps_serving(start_double, models):
    base = models / "half_plus"
    shutil.move(str(base / "3"), str(base / ".incoming-3"))
    d = _single(start_double, base).wait_rest()
    d.wait_states("m", {2: "AVAILABLE"})
    (base / ".incoming-3" / "saved_model.pb").write_bytes(b"\x0a\xff\xff\xff\xff\x0f garbage")
    os.rename(str(base / ".incoming-3"), str(base / "3"))
    d.wait_states("m", {3: "END"}, timeout=5)
    code, body = d.json("GET", "/v1/models/m/versions/3")
    assert body == {"model_version_status": [{"version": "3", "state": "END", "status": {
        "error_code": "DATA_LOSS",
        "error_message": "Can't parse %s as binary proto" % (base / "3" / "saved_model.pb")}}]}
    assert d.states("m")[2] == "AVAILABLE"
    assert d.predict("/v1/models/m:predict", [2.0]) == [4.0]


def test_version_without_saved_model(start_double, models):
    base = models / "half_plus"
    os.makedirs(str(base / "4"))
    d = _single(start_double, base)
    assert d.wait_exit() == 255
    assert d.stdout() == ("Failed to start server. Error: UNKNOWN: 1 servable(s) did not become available: "
                          "{{{name: m version: 4} due to error: NOT_FOUND: Specified file path does not appear to "
                          "contain a SavedModel bundle (should have a file called `saved_model.pb`)\n"
                          "Specified file path: %s}, }\n" % (base / "4"))


def test_load_retries(start_double, models):
    base = models / "half_plus"
    (base / "3" / "saved_model.pb").write_bytes(b"\xff")
    d = start_double("--model_name=m", "--model_base_path=%s" % base, "--max_num_load_retries=2",
                     "--load_retry_interval_micros=100000")
    assert d.wait_exit() == 255
    failed = "Loading servable: {name: m version: 3} failed: DATA_LOSS: Can't parse %s as binary proto" % (
        base / "3" / "saved_model.pb")
    assert d.stderr().count(failed) == 3  # each try, as util/retrier.cc logs it
    assert d.stderr().count("Retrying of Loading servable: {name: m version: 3} retry:") == 2
    assert "Retrying of Loading servable: {name: m version: 3} exhausted max_num_retries: 2" in d.stderr()
    assert "due to error: DATA_LOSS: Can't parse" in d.stdout()


def test_states_start_and_loading_are_reported(start_double, tmp_path, models):
    config = tmp_path / "models.config"
    write_config(config, {"name": "m", "base_path": str(models / "half_plus"), "policy": specific(1, 2)})
    d = start_double("--model_config_file=%s" % config, env={"SERVING_DOUBLE_LOAD_DELAY_SECONDS": "0.6"})
    d.wait_rest(timeout=10)
    # REST opened once version 2 (loaded first: highest) was AVAILABLE; version 1 is waiting or loading.
    seen = []

    def observe():
        state = d.states("m").get(1)
        if not seen or seen[-1] != state:
            seen.append(state)
        return state == "AVAILABLE"
    wait_for(observe, 5, interval=0.05, what="version 1 AVAILABLE")
    assert d.states("m")[2] == "AVAILABLE"
    assert seen[0] in ("START", "LOADING") and "LOADING" in seen, seen
    assert seen == [s for s in ("START", "LOADING", "AVAILABLE") if s in seen], seen


# ---------------------------------------------------------------- start-up ordering

def test_rest_port_opens_only_after_models_loaded(start_double, models):
    d = _single(start_double, models / "half_plus", env={"SERVING_DOUBLE_LOAD_DELAY_SECONDS": "0.8"})
    d.wait_log("Loading servable version {name: m version: 3}", timeout=5)
    assert not port_open(d.rest_port) and not port_open(d.grpc_port)
    d.wait_rest(timeout=10)
    log = d.stderr()
    assert log.index("Successfully loaded servable version {name: m version: 3}") < log.index(
        "Running gRPC ModelServer") < log.index("Exporting HTTP/REST API at:localhost:%d" % d.rest_port)


def test_model_without_versions_waits_forever(start_double, models, tmp_path):
    base = tmp_path / "empty_model"
    base.mkdir()
    (base / "v1").mkdir()
    d = _single(start_double, base)
    d.wait_log("No versions of servable m found under base path %s. Did you forget to name your leaf directory "
               "as a number (eg. '/1/')?" % base, count=2, timeout=5)
    assert d.proc.poll() is None and not port_open(d.rest_port)
    shutil.copytree(str(models / "half_plus" / "1"), str(base / "7"))
    d.wait_rest(timeout=5)
    assert d.predict("/v1/models/m:predict", [2.0]) == [3.0]


def test_missing_base_path_waits(start_double, tmp_path, models):
    base = tmp_path / "later"
    d = _single(start_double, base)
    d.wait_log("FileSystemStoragePathSource encountered a filesystem access error: Could not find base path %s for "
               "servable m with error NOT_FOUND: %s not found" % (base, base), timeout=5)
    assert not port_open(d.rest_port)
    shutil.copytree(str(models / "half_plus"), str(base))
    d.wait_rest(timeout=5)
    assert json.loads(d.get("/v1/models/m")[1])["model_version_status"][0]["version"] == "3"


def test_failure_knob_fails_inference_of_its_version_only(start_double, models):
    # SERVING_DOUBLE_FAIL_VERSIONS: the broken canary of molecule/default's canary side effect.
    config_dir = models.parent
    write_config(config_dir / "models.config", {"name": "m", "base_path": str(models / "half_plus"),
                                                "policy": "specific { versions: 1 versions: 2 }"})
    d = start_double("--model_config_file=%s" % (config_dir / "models.config"), "--file_system_poll_wait_seconds=1",
                     env={"SERVING_DOUBLE_FAIL_VERSIONS": "other:1, m:2"}).wait_rest()
    d.wait_states("m", {1: "AVAILABLE", 2: "AVAILABLE"})
    assert d.predict("/v1/models/m/versions/1:predict", [2.0]) == [3.0]
    code, body = d.json("POST", "/v1/models/m/versions/2:predict", {"instances": [2.0]})
    assert code == 500
    assert "SERVING_DOUBLE_FAIL_VERSIONS: version 2 of m fails every inference" in body["error"]
    code, body = d.json("GET", "/v1/models/m/versions/2")
    assert (code, body["model_version_status"][0]["state"]) == (200, "AVAILABLE")
