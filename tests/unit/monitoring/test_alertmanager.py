"""alertmanager.yml as the role renders it, checked by the real amtool, and the checks of its variables."""

import subprocess

import pytest
import yaml

from ansible_collections.mlserve.tfserving.plugins.module_utils import alerting

from .render import render, role_variables

WEBHOOK = {"name": "oncall", "webhook_url": "https://hooks.example.com/tfserving"}
SMTP = {"smarthost": "mail.example.com:587", "from": "alerts@example.com", "auth_username": "alerts",
        "auth_password": "s3cret"}


def checked(tmp_path, **overrides):
    """The rendered file, after amtool check-config accepted it, as a mapping."""
    path = tmp_path / "alertmanager.yml"
    variables = role_variables(**overrides)
    variables["_monitoring_alertmanager_config"] = alerting.config(
        variables["monitoring_alertmanager_receivers"], variables["monitoring_alertmanager_route"],
        variables["monitoring_alertmanager_inhibit_rules"], variables["monitoring_alertmanager_smtp"])
    path.write_text(render("alertmanager.yml.j2", variables))
    check = subprocess.run(["amtool", "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    return yaml.safe_load(path.read_text())


def test_the_role_defaults_send_nothing_and_inhibit_a_version_s_probes_by_its_pool(tmp_path):
    config = checked(tmp_path)
    assert config["receivers"] == [{"name": "none"}] and config["route"]["receiver"] == "none"
    assert config["route"]["group_by"] == ["alertname", "model", "version"]
    assert config["inhibit_rules"] == [{"source_matchers": ['alertname="TFServingGatewayPoolNoLiveServer"'],
                                        "target_matchers": ['alertname="TFServingVersionNotAvailable"'],
                                        "equal": ["model", "version"]}]


def test_webhook_and_email_receivers_are_told_of_resolved_alerts_too(tmp_path):
    config = checked(tmp_path, monitoring_alertmanager_receivers=[
        WEBHOOK, {"name": "team", "email_to": "team@example.com"}], monitoring_alertmanager_smtp=SMTP)
    assert config["route"]["receiver"] == "oncall"
    assert config["receivers"] == [
        {"name": "oncall", "webhook_configs": [{"url": WEBHOOK["webhook_url"], "send_resolved": True}]},
        {"name": "team", "email_configs": [{"to": "team@example.com", "send_resolved": True}]}]
    assert config["global"] == {"smtp_smarthost": "mail.example.com:587", "smtp_from": "alerts@example.com",
                                "smtp_auth_username": "alerts", "smtp_auth_password": "s3cret"}


def test_the_role_defaults_have_no_problem():
    variables = role_variables()
    assert alerting.problems(variables["monitoring_alertmanager_receivers"], variables["monitoring_alertmanager_route"],
                             variables["monitoring_alertmanager_inhibit_rules"],
                             variables["monitoring_alertmanager_smtp"]) == []


@pytest.mark.parametrize("receivers, route, inhibit_rules, smtp, problem", [
    ([{"name": "oncall"}], {}, [], {},
     "monitoring_alertmanager_receivers[0] (oncall): has no webhook_url and no email_to; give it a webhook URL "
     "(http:// or https://) or an email address"),
    ([{"name": "oncall", "webhook_url": "hooks.example.com/x"}], {}, [], {},
     "monitoring_alertmanager_receivers[0] (oncall): webhook_url 'hooks.example.com/x' is not an http:// or https:// "
     "URL"),
    ([{"name": "team", "email_to": "team@example.com"}], {}, [], {"smarthost": "mail.example.com:25"},
     "monitoring_alertmanager_receivers[0] (team): email_to needs monitoring_alertmanager_smtp.smarthost and .from "
     "(the mail server and the sender)"),
    ([WEBHOOK, dict(WEBHOOK)], {}, [], {},
     "monitoring_alertmanager_receivers[1] (oncall): the name 'oncall' is empty, taken or reserved ('none' is the "
     "collection's silent receiver); give each receiver a name of its own"),
    ([WEBHOOK], {"receiver": "oncall", "routes": [{"receiver": "pager"}]}, [], {},
     "monitoring_alertmanager_route.routes[0].receiver: 'pager' is not one of monitoring_alertmanager_receivers "
     "(oncall)"),
    ([], {}, [{"source_matchers": ['alertname="A"'], "target_matchers": ['alertname="B"'], "equal": ["modle"]}], {},
     "monitoring_alertmanager_inhibit_rules[0].equal: 'modle' is not a label of the collection's alerts; use "
     "alertname, severity, model, version, label, host, container, instance, job"),
    ([], {}, [], "mail.example.com",
     "monitoring_alertmanager_smtp: is not a mapping such as {smarthost: mail.example.com:587, from: "
     "alerts@example.com}"),
])
def test_each_problem_names_its_variable_and_value(receivers, route, inhibit_rules, smtp, problem):
    assert alerting.problems(receivers, route, inhibit_rules, smtp) == [problem]
