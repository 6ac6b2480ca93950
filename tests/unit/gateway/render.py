"""The gateway role's nginx configuration, rendered the way the role renders it, and run."""

import os
import re
import shutil
import subprocess
import time

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.mlserve.tfserving.plugins.module_utils import plan

from ..conftest import REPO
from ..plugins.action.test_fleet_plan import ROLE_DEFAULTS
from ..ports import free_port

ROLE = os.path.join(REPO, "roles", "gateway")


def render_gateway(built, host, tmp_path, gateway_vars):
    """routes.conf and nginx.conf for `host` of the plan `built`, laid out as the role's candidate directory."""
    with open(os.path.join(ROLE, "defaults", "main.yml")) as f:
        variables = yaml.safe_load(f)
    variables.update(ansible_managed="test", _gateway_plan=plan.for_ansible(built)["gateways"][host],
                     _gateway_nginx_version="1.22.1", _gateway_routes_dir="mlserve",
                     _gateway_nginx_pid_file="/run/nginx.pid",
                     gateway_access_log=str(tmp_path / "access.log"), gateway_error_log=str(tmp_path / "error.log"))
    variables.update(("gateway_%s" % k, v) for k, v in built["host_inputs"][host]["gateway"].items())
    variables.update(gateway_vars)  # the plan keeps no keys; the role renders them from the variable
    variables.update(_gateway_keys_on=bool(variables["gateway_api_keys"]),
                     _gateway_limits_on=bool(variables["gateway_client_rate"] or variables["gateway_model_rate"]))
    templar = Templar(loader=DataLoader(), variables=variables)
    (tmp_path / "mlserve").mkdir(exist_ok=True)
    for name, dest in (("nginx.conf.j2", "nginx.conf"), ("routes.conf.j2", "mlserve/routes.conf"),
                       ("clients.conf.j2", "mlserve/clients.conf")):
        with open(os.path.join(ROLE, "templates", name)) as f:
            (tmp_path / dest).write_text(templar.template(trust_as_template(f.read())))
    shutil.copy(os.path.join(ROLE, "files", "tfserving_grpc.js"), tmp_path / "mlserve")
    return tmp_path / "nginx.conf"


def run_gateway(tmp_path, gateway_vars):
    """nginx running as the role renders it for gateway `gw` (`gateway_vars`) in front of one serving host
    (half_plus version 1, at a port nothing listens on)."""
    declaration = [{"name": "half_plus", "source": "/src/half_plus", "versions": [1]}]
    inventory = [plan.host_inputs("s0", {"group_names": ["tfserving"], "tfserving_port_base": free_port(),
                                        "tfserving_address": "127.0.0.1", "firewall_enabled": False}, ROLE_DEFAULTS),
                 plan.host_inputs("gw", dict(gateway_vars, group_names=["gateway"]), ROLE_DEFAULTS)]
    built = plan.build_plan(declaration, inventory, ["all", "tfserving", "gateway"], {"gateway_hosts": ["gw"]})
    assert built["problems"] == []
    return Running(render_gateway(built, "gw", tmp_path, gateway_vars))


class Running:
    """nginx started from a rendered configuration in its directory, with a pid file of its own."""

    def __init__(self, conf):
        self.base = conf.parent
        self.pid_file = self.base / "nginx.pid"
        text = conf.read_text().replace("pid /run/nginx.pid;", "pid %s;" % self.pid_file)
        conf.write_text(re.sub(r"(?m)^user .*;$", "", text))  # workers run as the test's user
        # -p: the modules' relative load_module paths resolve under the prefix.
        (self.base / "modules").symlink_to("/usr/lib/nginx/modules")
        subprocess.run(["nginx", "-p", str(self.base), "-c", str(conf)], check=True, timeout=30)
        self.master = int(self.pid_file.read_text())

    def stop(self):
        stop_nginx(self.master, str(self.pid_file))


def stop_nginx(master, pid_file):
    """SIGTERM (nginx's fast shutdown), then wait until nginx has removed its pid file as it exits."""
    os.kill(master, 15)
    for _ in range(100):
        if not os.path.exists(pid_file):
            return
        time.sleep(0.05)
