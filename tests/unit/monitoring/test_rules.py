"""The alert rules as the role renders them: promtool accepts them, and its rule tests pass (and fail when they should)."""

import os
import shutil
import subprocess

import pytest
import yaml

from .render import render, role_variables

PROMTOOL_TESTS = os.path.join(os.path.dirname(__file__), "promtool")
TEST_FILES = sorted(f for f in os.listdir(PROMTOOL_TESTS) if f.endswith(".test.yml"))
ALERTS = {"TFServingVersionNotAvailable", "TFServingVersionErrorRatioHigh", "TFServingCanaryErrorRatioWorse",
          "TFServingCanaryLatencyWorse", "TFServingGatewayPoolNoLiveServer"}


def promtool(*args, cwd=None):
    return subprocess.run(["promtool"] + list(args), capture_output=True, text=True, timeout=120, cwd=cwd)


def rules_dir(tmp_path, **overrides):
    """The rules rendered with the defaults and `overrides`, beside the promtool test files that load them."""
    (tmp_path / "tfserving.yml").write_text(render("tfserving.rules.yml.j2", role_variables(**overrides)))
    for name in TEST_FILES:
        shutil.copy(os.path.join(PROMTOOL_TESTS, name), tmp_path / name)
    return tmp_path


def test_promtool_accepts_the_rules_with_the_defaults(tmp_path):
    check = promtool("check", "rules", str(rules_dir(tmp_path) / "tfserving.yml"))
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_five_alerts_wait_for_monitoring_alert_for_and_name_the_model(tmp_path):
    rules = yaml.safe_load((rules_dir(tmp_path, monitoring_alert_for="7m") / "tfserving.yml").read_text())
    alerts = dict((r["alert"], r) for g in rules["groups"] for r in g["rules"] if "alert" in r)
    assert set(alerts) == ALERTS
    for name, rule in alerts.items():
        assert rule["for"] == "7m", name
        assert "{{ $labels.model }}" in rule["annotations"]["summary"], name


@pytest.mark.parametrize("name", TEST_FILES)
def test_promtool_rule_tests_pass_with_the_defaults(tmp_path, name):
    run = promtool("test", "rules", name, cwd=rules_dir(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr


# Each threshold comes from its variable: moved past the tests' data, the
# alert the tests expect no longer fires.
@pytest.mark.parametrize("name, overrides", [
    ("errors.test.yml", {"monitoring_alert_error_ratio": 0.2}),
    ("errors.test.yml", {"monitoring_alert_min_rate": 2}),
    ("canary.test.yml", {"monitoring_alert_canary_error_margin": 0.1}),
    ("canary.test.yml", {"monitoring_alert_canary_p99_margin_ms": 300}),
    ("canary.test.yml", {"monitoring_alert_canary_label": "beta"}),
    ("canary.test.yml", {"monitoring_alert_stable_label": "prod"}),
    ("versions.test.yml", {"monitoring_alert_for": "20m"}),
])
def test_promtool_rule_tests_fail_when_a_threshold_moves(tmp_path, name, overrides):
    run = promtool("test", "rules", name, cwd=rules_dir(tmp_path, **overrides))
    assert run.returncode != 0, run.stdout
    assert "FAILED" in run.stdout + run.stderr


def test_a_window_of_its_own_is_used_by_every_rate(tmp_path):
    text = (rules_dir(tmp_path, monitoring_alert_window="10m") / "tfserving.yml").read_text()
    assert "[5m]" not in text
    assert text.count("[10m]") == 5
    check = promtool("check", "rules", str(tmp_path / "tfserving.yml"))
    assert check.returncode == 0, check.stdout + check.stderr
