"""The controller's code (the fleet plan, the action plugins, the filters) never imports the code that runs on a host."""

import ast
import os

from ...conftest import REPO

PLUGINS = os.path.join(REPO, "plugins")
PREFIX = "ansible_collections.mlserve.tfserving.plugins.module_utils"
# What only a managed host runs: the container engine and the files of its daemons.
HOST_ONLY = {"serving_apply", "serving_host", "config_files", "systemd"}


def module_utils_imported(path):
    """The module_utils names a file imports, directly."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom) and node.module == PREFIX:
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PREFIX + "."):
            found.add(node.module[len(PREFIX) + 1:].split(".")[0])
    return found


def closure(path):
    seen, todo = set(), list(module_utils_imported(path))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(module_utils_imported(os.path.join(PLUGINS, "module_utils", name + ".py")))
    return seen


def test_the_plan_its_action_and_the_filters_import_no_host_code():
    controller = ["module_utils/plan.py"] + ["%s/%s" % (kind, name) for kind in ("action", "filter")
                                            for name in os.listdir(os.path.join(PLUGINS, kind)) if name.endswith(".py")]
    for path in controller:
        imported = closure(os.path.join(PLUGINS, path))
        assert not imported & HOST_ONLY, (path, sorted(imported))
    assert "fleet" in closure(os.path.join(PLUGINS, "action", "fleet_plan.py"))


def test_the_host_modules_are_what_the_check_names():
    assert {"serving_apply", "serving_host"} <= closure(os.path.join(PLUGINS, "modules", "serving_apply.py"))
    assert "config_files" in closure(os.path.join(PLUGINS, "modules", "prometheus_config.py"))
