"""The monitoring role's templates, rendered the way the role renders them."""

import os

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.mlserve.tfserving.plugins.module_utils import alerting, metrics, monitoring

from ..conftest import REPO

ROLE = os.path.join(REPO, "roles", "monitoring")


def role_variables(**overrides):
    """The role's defaults and its internal variables, with `overrides`.

    The internal variables that call the collection's filters are computed
    here with the functions behind those filters.
    """
    with open(os.path.join(ROLE, "defaults", "main.yml")) as f:
        variables = yaml.safe_load(f)
    with open(os.path.join(ROLE, "vars", "main.yml")) as f:
        variables.update(yaml.safe_load(f))
    assert {"_monitoring_listen", "_monitoring_blackbox_listen", "_monitoring_alertmanager_listen",
            "_monitoring_alertmanager_local", "_monitoring_alertmanager_config", "_monitoring_errors",
            "_monitoring_attributed"} <= set(variables)
    variables.update(ansible_managed="test")
    variables.update(overrides)
    variables.update(
        _monitoring_listen=monitoring.host_port(variables["monitoring_listen_address"], variables["monitoring_port"]),
        _monitoring_blackbox_listen=monitoring.host_port(variables["monitoring_blackbox_listen_address"],
                                                         variables["monitoring_blackbox_port"]),
        _monitoring_alertmanager_listen=monitoring.host_port(variables["monitoring_alertmanager_listen_address"],
                                                             variables["monitoring_alertmanager_port"]),
        _monitoring_alertmanager_local=monitoring.local_host_port(variables["monitoring_alertmanager_listen_address"],
                                                                  variables["monitoring_alertmanager_port"]),
        _monitoring_alertmanager_config=alerting.config(
            variables["monitoring_alertmanager_receivers"], variables["monitoring_alertmanager_route"],
            variables["monitoring_alertmanager_inhibit_rules"], variables["monitoring_alertmanager_smtp"]),
        _monitoring_errors=metrics.selector("errors"), _monitoring_attributed=metrics.selector("attributed"))
    return variables


def render(name, variables):
    """The text of templates/`name` rendered with `variables`."""
    with open(os.path.join(ROLE, "templates", name)) as f:
        text = f.read()
    # The template action's default: a newline after a block tag is removed.
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar.template(trust_as_template(text), overrides={"trim_blocks": True})
