"""The docker role's daemon.json, rendered as the role renders it: the options, and the nvidia runtime with the toolkit."""

import json
import os

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ..conftest import REPO

ROLE = os.path.join(REPO, "roles", "docker")


def daemon_json(**overrides):
    variables = {}
    for part in ("defaults", "vars"):
        with open(os.path.join(ROLE, part, "main.yml")) as f:
            variables.update((k, trust_as_template(v) if isinstance(v, str) else v)
                             for k, v in yaml.safe_load(f).items())
    variables.update(overrides)
    with open(os.path.join(ROLE, "templates", "daemon.json.j2")) as f:
        text = f.read()
    return json.loads(Templar(loader=DataLoader(), variables=variables).template(trust_as_template(text)))


def test_without_the_toolkit_daemon_json_is_the_options():
    assert daemon_json() == {"log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"}}


@pytest.mark.parametrize("options", [{}, {"runtimes": {"crun": {"path": "/usr/bin/crun"}}}])
def test_the_toolkit_adds_the_nvidia_runtime_beside_the_others(options):
    config = daemon_json(docker_nvidia_toolkit=True, docker_daemon_options=options)
    assert config["runtimes"] == dict(options.get("runtimes", {}),
                                      nvidia={"path": "nvidia-container-runtime", "args": []})
