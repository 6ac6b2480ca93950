"""mlserve.tfserving.firewall_rules run as Ansible runs it, inside a network namespace of the test's own.

Needs root, nft and unshare (lab/engine.sh installs them): it fails rather than skips without them.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.mlserve.tfserving.plugins.module_utils import firewall
from ansible_collections.mlserve.tfserving.plugins.modules import firewall_rules as module

from ...conftest import REPO
from .module_docs import assert_documentation_matches

TABLE = "inet mlserve_tfserving"
GATEWAY = {"profile": "p", "gateways": {"gw": ["127.0.0.2"]}, "allowed": []}


def rules(port):
    return firewall.render(GATEWAY, [{"name": "tfserving-a", "grpc_port": port, "rest_port": port + 1}], "s1")


class Namespace:
    """A network namespace kept by a sleeping process; the module and nft run in it through nsenter."""

    def __init__(self, base):
        self.holder = subprocess.Popen(["unshare", "-n", "sleep", "300"])
        self.path, self.base = str(base / "tfserving" / "firewall.nft"), base
        # Until unshare has run, the holder is in this machine's namespace: nothing may enter it before.
        deadline = time.monotonic() + 10
        while os.readlink("/proc/%d/ns/net" % self.holder.pid) == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline and self.holder.poll() is None, "unshare -n did not start"
            time.sleep(0.01)

    def enter(self, argv, **kwargs):
        return subprocess.run(["nsenter", "-t", str(self.holder.pid), "-n"] + argv, capture_output=True, text=True,
                              timeout=60, **kwargs)

    def module(self, content, check_mode=False, diff=False, **extra):
        args = self.base / "args.json"
        args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(
            {"content": content, "path": self.path, "table": TABLE, "_ansible_check_mode": check_mode,
             "_ansible_diff": diff}, **extra)}))
        run = self.enter([sys.executable, module.__file__, str(args)],
                         env=dict(os.environ, PYTHONPATH=os.path.join(REPO, "collections")))
        return json.loads(run.stdout)

    def loaded(self):
        """The kernel's table, or None."""
        listed = self.enter(["nft", "list", "table"] + TABLE.split())
        return listed.stdout if listed.returncode == 0 else None

    def file(self):
        with open(self.path) as f:
            return f.read()

    def stop(self):
        self.holder.kill()
        self.holder.wait()


@pytest.fixture
def namespace(tmp_path):
    held = Namespace(tmp_path)
    yield held
    held.stop()


def test_new_rules_are_checked_written_and_loaded_and_a_second_run_changes_nothing(namespace):
    result = namespace.module(rules(21500))
    assert result["changed"] and result["written"] and result["loaded"], result
    assert namespace.file() == rules(21500) and "21500" in namespace.loaded()
    again = namespace.module(rules(21500))
    assert not again["changed"] and not again["written"] and not again["loaded"]
    namespace.module(rules(21600))
    assert "21600" in namespace.loaded() and "21500" not in namespace.loaded()


def test_rules_in_place_that_the_kernel_does_not_hold_are_loaded_by_the_next_run(namespace):
    namespace.module(rules(21500))
    # A run that failed after writing: the file is new, the kernel holds the old rules.
    with open(namespace.path, "w") as f:
        f.write(rules(21600))
    result = namespace.module(rules(21600))
    assert result["changed"] and not result["written"] and result["loaded"]
    assert "21600" in namespace.loaded()
    # Rules flushed by someone else (nftables.service restarted): the table is gone, the next run loads it.
    namespace.enter(["nft", "flush", "ruleset"])
    result = namespace.module(rules(21600))
    assert result["loaded"] and "21600" in namespace.loaded()


def test_rules_nft_refuses_change_neither_the_file_nor_the_kernel(namespace):
    namespace.module(rules(21500))
    before = namespace.loaded()
    result = namespace.module(rules(21500).replace("accept", "acept", 1))
    assert result["failed"] and not result["changed"]
    assert result["msg"].startswith("nft refused the new rules for %s; the file and the rules loaded stay as they "
                                    "are. nft said: " % namespace.path)
    assert "acept" in result["msg"]
    assert namespace.file() == rules(21500) and namespace.loaded() == before
    assert sorted(os.listdir(os.path.dirname(namespace.path))) == ["firewall.nft", "firewall.nft.loaded"]


def test_without_load_the_file_is_written_and_the_kernel_left_alone(namespace):
    result = namespace.module(rules(21500), load=False)
    assert result["written"] and not result["loaded"]
    assert namespace.file() == rules(21500) and namespace.loaded() is None
    assert not os.path.exists(namespace.path + ".loaded")


def test_check_mode_shows_the_diff_and_changes_nothing(namespace):
    namespace.module(rules(21500))
    result = namespace.module(rules(21600), check_mode=True, diff=True)
    assert result["changed"] and result["written"] and result["loaded"]
    assert "21500" in result["diff"]["before"] and "21600" in result["diff"]["after"]
    assert namespace.file() == rules(21500) and "21500" in namespace.loaded()


def test_the_documentation_is_the_argument_spec(monkeypatch):
    assert_documentation_matches(monkeypatch, module, ["written", "loaded"])
