"""The controller's code (the fleet plan and its action plugin) never imports the code that runs on a host."""

import ast
import os

from ...conftest import REPO

PLUGINS = os.path.join(REPO, "plugins")
PREFIX = "ansible_collections.mlserve.tfserving.plugins.module_utils"
# What only a managed host runs: the container engine and the files of its daemons.
HOST_ONLY = {"serving_apply", "config_files"}


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


def test_the_plan_and_its_action_import_no_host_code():
    for path in ("action/fleet_plan.py", "module_utils/plan.py"):
        imported = closure(os.path.join(PLUGINS, path))
        assert "fleet" in imported and not imported & HOST_ONLY, (path, sorted(imported))


def test_the_host_modules_are_what_the_check_names():
    assert "serving_apply" in closure(os.path.join(PLUGINS, "modules", "serving_apply.py"))
    assert "config_files" in closure(os.path.join(PLUGINS, "modules", "prometheus_config.py"))
