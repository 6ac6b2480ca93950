#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: installed_packages
short_description: Which of several Debian packages a host has installed, and what system it runs
version_added: 0.2.0
description:
  - One C(dpkg-query --show) of every package named, without the package index, so a run that finds them all
    installed asks apt nothing; and the host's system from C(/etc/os-release), so a role can check it is a Debian
    host without gathering facts.
  - Reads only; never changes anything. A host without dpkg has none of the packages.
author:
  - mlserve maintainers
options:
  names:
    description: The packages to look for.
    type: list
    elements: str
    required: true
notes:
  - Supports check mode (it reads only).
  - A package dpkg has never seen, or one removed but not purged, is not installed.
"""

EXAMPLES = r"""
- name: Read which of the packages are installed
  mlserve.tfserving.installed_packages:
    names: [nginx, mtail]
  register: _packages

- name: Install the missing ones
  ansible.builtin.apt:
    name: "{{ _packages.missing }}"
  when: _packages.missing | length > 0
"""

RETURN = r"""
installed:
  description: Each installed package of O(names) with its version.
  returned: always
  type: dict
  sample: {nginx: 1.22.1-9+deb12u1}
missing:
  description: The packages of O(names) that are not installed, in their order.
  returned: always
  type: list
  elements: str
  sample: [mtail]
system:
  description: >-
    The host's system, under the names of Ansible's facts: C(os_family) (C(Debian) for Debian and its derivatives,
    else os-release's C(ID_LIKE) or C(ID)), C(distribution) (C(NAME)) and C(distribution_release)
    (C(VERSION_CODENAME)). Empty strings for what os-release does not say.
  returned: always
  type: dict
  sample: {os_family: Debian, distribution: Debian GNU/Linux, distribution_release: bookworm}
"""

import shlex

from ansible.module_utils.basic import AnsibleModule

# The status abbreviation ("ii " when installed), the package, its version.
SHOWFORMAT = "${db:Status-Abbrev}|${Package}|${Version}\\n"
OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")


def dpkg_installed(output):
    """package -> version, for each line of dpkg-query's output (SHOWFORMAT) whose package is installed ("ii")."""
    installed = {}
    for line in output.splitlines():
        fields = line.split("|")
        if len(fields) == 3 and fields[0].strip() == "ii":
            installed[fields[1]] = fields[2]
    return installed


def os_release(text):
    """The KEY=value pairs of an os-release file, values unquoted."""
    values = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            words = shlex.split(value) if value.strip() else [""]
            values[key.strip()] = words[0] if words else ""
    return values


def system_of(release):
    """os-release's values under the names of Ansible's facts."""
    family = [release.get("ID", "")] + release.get("ID_LIKE", "").split()
    return {"os_family": "Debian" if "debian" in family else (release.get("ID_LIKE") or release.get("ID", "")),
            "distribution": release.get("NAME", ""),
            "distribution_release": release.get("VERSION_CODENAME", "")}


def read_release():
    for path in OS_RELEASE:
        try:
            with open(path) as handle:
                return os_release(handle.read())
        except (IOError, OSError):
            continue
    return {}


def main():
    module = AnsibleModule(
        argument_spec=dict(names=dict(type="list", elements="str", required=True)),
        supports_check_mode=True,
    )
    names = module.params["names"]
    installed = {}
    dpkg_query = module.get_bin_path("dpkg-query")
    if names and dpkg_query:
        # Status 1 when one of them is unknown to dpkg; the others are still listed.
        rc, out, err = module.run_command([dpkg_query, "--show", "--showformat=" + SHOWFORMAT, "--"] + names)
        if rc not in (0, 1):
            module.fail_json(msg="installed_packages: dpkg-query failed: %s" % (err or out).strip())
        installed = dict((name, version) for name, version in dpkg_installed(out).items() if name in names)
    module.exit_json(changed=False, installed=installed, missing=[name for name in names if name not in installed],
                     system=system_of(read_release()))


if __name__ == "__main__":
    main()
