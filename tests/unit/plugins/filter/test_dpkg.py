"""dpkg_installed against the real dpkg-query of this machine's packages, and its own rows."""

import subprocess

from ansible_collections.mlserve.tfserving.plugins.filter.dpkg import SHOWFORMAT, FilterModule

installed = FilterModule().filters()["dpkg_installed"]


def test_dpkg_query_s_own_answer_lists_installed_packages_with_their_versions_and_omits_unknown_ones():
    query = subprocess.run(["dpkg-query", "--show", "--showformat=" + SHOWFORMAT, "dpkg",
                            "no-such-package-mlserve"], capture_output=True, text=True)
    assert query.returncode == 1 and "no-such-package-mlserve" in query.stderr
    found = installed(query.stdout)
    assert list(found) == ["dpkg"] and found["dpkg"][0].isdigit()


def test_only_installed_rows_count():
    rows = "ii |nginx|1.22.1-9+deb12u1\nrc |mtail|3.0.0\nun |prometheus-nginx-exporter|\niU |njs|0.7\n"
    assert installed(rows) == {"nginx": "1.22.1-9+deb12u1"}
