"""installed_packages: dpkg's answer for several packages at once, and the host's system from os-release."""

import pytest

from ansible_collections.mlserve.tfserving.plugins.modules import installed_packages as module

from .module_docs import assert_documentation_matches, module_runner

run = module_runner(module)

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_CODENAME=bookworm\nID=debian\n'
UBUNTU = 'NAME="Ubuntu"\nVERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\n'
ROCKY = '# a comment\nNAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'


def test_this_machine_s_dpkg_lists_installed_packages_with_their_versions_and_the_unknown_ones_as_missing(capsys):
    # The unit tests run on a Debian machine: dpkg is installed, the other name is known to no one.
    result = run(capsys, {"names": ["no-such-package-mlserve", "dpkg"]})
    assert result["changed"] is False
    assert list(result["installed"]) == ["dpkg"] and result["installed"]["dpkg"][0].isdigit()
    assert result["missing"] == ["no-such-package-mlserve"]
    assert set(result["system"]) == {"os_family", "distribution", "distribution_release"}


def test_check_mode_reads_the_same(capsys):
    assert run(capsys, {"names": ["dpkg"]}, check_mode=True)["installed"] == run(capsys, {"names": ["dpkg"]})["installed"]


def test_only_installed_rows_count():
    rows = "ii |nginx|1.22.1-9+deb12u1\nrc |mtail|3.0.0\nun |prometheus-nginx-exporter|\niU |njs|0.7\n"
    assert module.dpkg_installed(rows) == {"nginx": "1.22.1-9+deb12u1"}


@pytest.mark.parametrize("text, system", [
    (DEBIAN, {"os_family": "Debian", "distribution": "Debian GNU/Linux", "distribution_release": "bookworm"}),
    (UBUNTU, {"os_family": "Debian", "distribution": "Ubuntu", "distribution_release": "noble"}),
    (ROCKY, {"os_family": "rhel centos fedora", "distribution": "Rocky Linux", "distribution_release": ""}),
    ("", {"os_family": "", "distribution": "", "distribution_release": ""}),
])
def test_the_system_is_named_as_ansible_s_facts_name_it(text, system):
    assert module.system_of(module.os_release(text)) == system


def test_a_host_without_dpkg_has_none_of_the_packages(capsys, monkeypatch):
    monkeypatch.setattr(module.AnsibleModule, "get_bin_path", lambda self, name, **kwargs: None)
    monkeypatch.setattr(module.AnsibleModule, "run_command", lambda self, argv, **kwargs: pytest.fail(argv))
    result = run(capsys, {"names": ["docker.io", "python3-docker"]})
    assert result["installed"] == {} and result["missing"] == ["docker.io", "python3-docker"]


def test_a_failing_dpkg_query_fails_the_module_with_its_message(capsys, monkeypatch):
    monkeypatch.setattr(module.AnsibleModule, "run_command",
                        lambda self, argv, **kwargs: (2, "", "dpkg-query: error: parsing file '/var/lib/dpkg/status'"))
    result = run(capsys, {"names": ["nginx"]})
    assert result["failed"] is True
    assert result["msg"] == "installed_packages: dpkg-query failed: dpkg-query: error: parsing file '/var/lib/dpkg/status'"


def test_documentation_matches_the_argument_spec(monkeypatch):
    assert_documentation_matches(monkeypatch, module, ["installed", "missing", "system"])
