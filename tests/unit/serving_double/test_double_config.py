"""models.config parsing, validation, polling and label rules of the TF Serving test double."""

import json
import time

from double_helpers import specific, wait_for, write_config

LABEL_ERROR = ("Request to assign label to version %d of model %s, which is not currently available for inference")


def _half_plus(models, **kw):
    m = {"name": "half_plus", "base_path": str(models / "half_plus")}
    m.update(kw)
    return m


def _start(start_double, config, *extra, poll=True, env=None):
    args = ["--model_config_file=%s" % config, "--file_system_poll_wait_seconds=1"]
    if poll:
        args.append("--model_config_file_poll_wait_seconds=1")
    return start_double(*(args + list(extra)), env=env)


def _fails_with(start_double, tmp_path, text, message, *extra):
    config = tmp_path / "models.config"
    config.write_text(text)
    d = start_double("--model_config_file=%s" % config, *extra)
    assert d.wait_exit() == 255
    assert d.stdout() == "Failed to start server. Error: %s\n" % message
    return d


# ---------------------------------------------------------------- validation at start-up

def test_parsed_by_real_protobuf(start_double, tmp_path, models):
    text = 'model_config_list { config { nme: "half_plus" base_path: "%s" } }\n' % (models / "half_plus")
    d = _fails_with(start_double, tmp_path, text,
                    "INVALID_ARGUMENT: Invalid protobuf file: '%s'" % (tmp_path / "models.config"))
    assert 'has no field named "nme"' in d.stderr()


def test_missing_config_file(start_double, tmp_path):
    d = start_double("--model_config_file=%s" % (tmp_path / "nope.config"))
    assert d.wait_exit() == 255
    assert d.stdout() == "Failed to start server. Error: NOT_FOUND: %s; No such file or directory\n" % (
        tmp_path / "nope.config")


def test_model_platform_required(start_double, tmp_path, models):
    text = 'model_config_list { config { name: "m" base_path: "%s" } }\n' % (models / "half_plus")
    _fails_with(start_double, tmp_path, text, "INVALID_ARGUMENT: Illegal setting neither ModelServerConfig::model_type "
                "(deprecated) nor ModelServerConfig::model_platform, model name is m")


def test_unknown_platform(start_double, tmp_path, models):
    text = 'model_config_list { config { name: "m" base_path: "%s" model_platform: "tensorflw" } }\n' % (
        models / "half_plus")
    _fails_with(start_double, tmp_path, text, "INVALID_ARGUMENT: Model m requests unsupported platform tensorflw")


def test_base_path_must_be_absolute(start_double, tmp_path):
    text = 'model_config_list { config { name: "m" base_path: "models/m" model_platform: "tensorflow" } }\n'
    _fails_with(start_double, tmp_path, text, "INVALID_ARGUMENT: Expected model m to have an absolute path or URI; "
                "got base_path()=models/m")


def test_model_name_only_once(start_double, tmp_path, models):
    text = ('model_config_list { config { name: "m" base_path: "%s" model_platform: "tensorflow" }\n'
            '                    config { name: "m" base_path: "%s" model_platform: "tensorflow" } }\n'
            % (models / "half_plus", models / "keras_linear"))
    _fails_with(start_double, tmp_path, text,
                "INVALID_ARGUMENT: Illegal to list model m multiple times in config list")


def test_label_in_first_config_fails_start_up(start_double, tmp_path, models):
    config = tmp_path / "models.config"
    write_config(config, _half_plus(models, policy=specific(1, 2), labels={"stable": 1}))
    d = start_double("--model_config_file=%s" % config)
    assert d.wait_exit() == 255
    assert d.stdout() == "Failed to start server. Error: FAILED_PRECONDITION: %s\n" % (LABEL_ERROR % (1, "half_plus"))


def test_label_in_first_config_with_allow_flag(start_double, tmp_path, models):
    config = tmp_path / "models.config"
    write_config(config, _half_plus(models, policy=specific(1, 2), labels={"stable": 1, "canary": 2}))
    d = start_double("--model_config_file=%s" % config, "--allow_version_labels_for_unavailable_models").wait_rest()
    d.wait_states("half_plus", {1: "AVAILABLE", 2: "AVAILABLE"})
    assert d.predict("/v1/models/half_plus/labels/stable:predict", [2.0]) == [3.0]
    assert d.predict("/v1/models/half_plus/labels/canary:predict", [2.0]) == [4.0]


def test_empty_config_serves_nothing(start_double, tmp_path):
    config = tmp_path / "models.config"
    config.write_text("")
    d = start_double("--model_config_file=%s" % config).wait_rest()
    assert "Taking no action for empty config." in d.stderr()
    assert d.get("/v1/models/half_plus")[0] == 404


# ---------------------------------------------------------------- polling

def test_config_read_once_without_poll_flag(start_double, tmp_path, models):
    config = tmp_path / "models.config"
    write_config(config, _half_plus(models))
    d = _start(start_double, config, poll=False).wait_rest()
    write_config(config, _half_plus(models), {"name": "keras", "base_path": str(models / "keras_linear")})
    # With polling, the file is read again at once and then every second ("Adding/updating models." each time).
    time.sleep(1.3)
    assert d.stderr().count("Adding/updating models.") == 1
    assert d.get("/v1/models/keras")[0] == 404
    assert d.get("/v1/models/half_plus")[0] == 200


def test_reload_adds_and_removes_models(start_double, tmp_path, models):
    config = tmp_path / "models.config"
    write_config(config, _half_plus(models))
    d = _start(start_double, config).wait_rest()
    write_config(config, _half_plus(models), {"name": "keras", "base_path": str(models / "keras_linear")})
    d.wait_states("keras", {2: "AVAILABLE"})
    write_config(config, {"name": "keras", "base_path": str(models / "keras_linear")})
    d.wait_states("half_plus", {3: "END"})  # unloaded, still listed
    code, body = d.json("POST", "/v1/models/half_plus:predict", {"instances": [1.0]})
    assert (code, body) == (404, {"error": "Servable not found for request: Latest(half_plus)"})


def test_unreadable_new_config_keeps_old(start_double, tmp_path, models):
    config = tmp_path / "models.config"
    write_config(config, _half_plus(models))
    d = _start(start_double, config).wait_rest()
    config.write_text("model_config_list { config { name: 'half_plus' ")
    d.wait_log("Failed to read ModelServerConfig file: Invalid protobuf file: '%s'" % config, timeout=5)
    assert d.predict("/v1/models/half_plus:predict", [2.0]) == [5.0]
    assert d.proc.poll() is None


def test_invalid_new_config_rejected(start_double, tmp_path, models):
    config = tmp_path / "models.config"
    write_config(config, _half_plus(models))
    d = _start(start_double, config).wait_rest()
    write_config(config, _half_plus(models), _half_plus(models))
    d.wait_log("PollFilesystemAndReloadConfig failed to ReloadConfig: Illegal to list model half_plus multiple times "
               "in config list", timeout=5)
    assert d.predict("/v1/models/half_plus:predict", [2.0]) == [5.0]


def test_label_on_unavailable_version_rejects_whole_config_every_poll(start_double, tmp_path, models):
    config = tmp_path / "models.config"
    write_config(config, _half_plus(models, policy=specific(1)))
    d = _start(start_double, config).wait_rest()
    d.wait_states("half_plus", {1: "AVAILABLE"})
    # Label on an AVAILABLE version: accepted.
    write_config(config, _half_plus(models, policy=specific(1), labels={"stable": 1}))
    wait_for(lambda: d.post("/v1/models/half_plus/labels/stable:predict", {"instances": [2.0]})[0] == 200, 5)
    # One step: add version 2 and move the label to it at once -> the whole config is rejected.
    write_config(config, _half_plus(models, policy=specific(1, 2), labels={"stable": 2}))
    message = "PollFilesystemAndReloadConfig failed to ReloadConfig: " + LABEL_ERROR % (2, "half_plus")
    d.wait_log(message, count=2, timeout=6)  # again on every poll
    # ... and the old config is kept: version 2 was never loaded, the label still points at 1.
    assert d.states("half_plus") == {1: "AVAILABLE"}
    assert d.predict("/v1/models/half_plus/labels/stable:predict", [2.0]) == [3.0]
    # Two steps: (1) add version 2, wait for AVAILABLE; (2) move the label and drop version 1.
    write_config(config, _half_plus(models, policy=specific(1, 2), labels={"stable": 1}))
    d.wait_states("half_plus", {1: "AVAILABLE", 2: "AVAILABLE"})
    write_config(config, _half_plus(models, policy=specific(2), labels={"stable": 2}))
    d.wait_states("half_plus", {1: "END", 2: "AVAILABLE"})
    assert d.predict("/v1/models/half_plus/labels/stable:predict", [2.0]) == [4.0]


def test_allow_flag_exempts_only_new_labels(start_double, tmp_path, models):
    config = tmp_path / "models.config"
    write_config(config, _half_plus(models, policy=specific(1), labels={"stable": 1}))
    d = _start(start_double, config, "--allow_version_labels_for_unavailable_models").wait_rest()
    d.wait_states("half_plus", {1: "AVAILABLE"})
    # Moving an existing label to a version that is not available: still rejected.
    write_config(config, _half_plus(models, policy=specific(1, 3), labels={"stable": 3}))
    d.wait_log(LABEL_ERROR % (3, "half_plus"), timeout=5)
    assert 3 not in d.states("half_plus")
    # A new label on a version that is not available yet: accepted (and the version gets loaded).
    write_config(config, _half_plus(models, policy=specific(1, 3), labels={"stable": 1, "canary": 3}))
    d.wait_states("half_plus", {1: "AVAILABLE", 3: "AVAILABLE"}, timeout=6)
    assert d.predict("/v1/models/half_plus/labels/canary:predict", [2.0]) == [5.0]
    assert d.predict("/v1/models/half_plus/labels/stable:predict", [2.0]) == [3.0]


def test_new_label_before_its_version_loads_answers_404(start_double, tmp_path, models):
    config = tmp_path / "models.config"
    write_config(config, _half_plus(models, policy=specific(1)))
    d = _start(start_double, config, "--allow_version_labels_for_unavailable_models",
               env={"SERVING_DOUBLE_LOAD_DELAY_SECONDS": "1.0"}).wait_rest(timeout=10)
    write_config(config, _half_plus(models, policy=specific(1, 2), labels={"canary": 2}))
    # Before the poll the label is unknown (400); once accepted it resolves to a version still loading (404).
    code, text, _ = wait_for(lambda: (lambda r: r if r[0] == 404 else None)(
        d.post("/v1/models/half_plus/labels/canary:predict", {"instances": [1.0]})), 5, what="404 on canary")
    assert json.loads(text) == {"error": "Servable not found for request: Specific(half_plus, 2)"}
    d.wait_states("half_plus", {2: "AVAILABLE"}, timeout=8)
    assert d.predict("/v1/models/half_plus/labels/canary:predict", [1.0]) == [3.5]
