#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: firewall_rules
short_description: Write an nftables rules file once nft accepts it, and make sure the kernel holds it
version_added: 0.3.0
description:
  - Takes the text of an nftables file that replaces one table in one transaction (as the firewall role's rules
    do), and makes it the file at O(path) and the rules the kernel runs, in one task.
  - When the text differs from the file, it is written beside it and checked there with C(nft -c -f). When nft
    refuses it, the module fails with nft's message, and neither the file nor the loaded rules change. Otherwise
    it is put in place by an atomic rename.
  - With O(load), the file is loaded with C(nft -f) when it changed, when the kernel has no O(table), or when
    C(<path>.loaded), the sum of the file last loaded, does not match it. A run that failed between writing and
    loading is therefore loaded by the next run, even though the file is already in place.
author:
  - mlserve maintainers
options:
  content:
    description: The rules file's text.
    type: str
    required: true
  path:
    description: The rules file. The sum of the file last loaded is kept beside it, in C(<path>.loaded).
    type: path
    required: true
  table:
    description: The table the file creates, as C(nft list table) names it, such as C(inet mlserve_tfserving).
    type: str
    required: true
  load:
    description: Whether to load the rules into the kernel, or only write the file (a host whose network is not its
      own, as the lab's hosts share one).
    type: bool
    default: true
notes:
  - Supports check mode (what would change, with C(--diff); nothing is written, checked or loaded, and nft need not
    be installed yet) and diff mode.
"""

EXAMPLES = r"""
- name: Write the rules once nft accepts them, and load them
  mlserve.tfserving.firewall_rules:
    content: "{{ lookup('ansible.builtin.template', 'rules.nft.j2') }}"
    path: /etc/tfserving/firewall.nft
    table: inet mlserve_tfserving
"""

RETURN = r"""
written:
  description: Whether the file was written, or would be in check mode.
  type: bool
  returned: always
loaded:
  description: Whether the rules were loaded into the kernel, or would be.
  type: bool
  returned: always
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mlserve.tfserving.plugins.module_utils.config_files import (
    differs, loaded_sum, read, temporary, write)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            content=dict(type="str", required=True),
            path=dict(type="path", required=True),
            table=dict(type="str", required=True),
            load=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    content, path, loaded_file = p["content"].encode("utf-8"), p["path"], p["path"] + ".loaded"
    # Check mode on a fresh host: nftables is not installed yet, and its rules would be loaded.
    nft = module.get_bin_path("nft", required=not module.check_mode)
    written = differs(path, content, 0o644)
    total = loaded_sum([content]).encode("ascii")
    loaded = p["load"] and (written or read(loaded_file) != total or nft is None
                            or module.run_command([nft, "list", "table"] + p["table"].split())[0] != 0)
    result = dict(changed=written or loaded, written=written, loaded=loaded)
    if module._diff and written:
        result["diff"] = dict(before_header=path, after_header=path,
                              before=(read(path) or b"").decode("utf-8", "replace"), after=p["content"])
    if module.check_mode or not result["changed"]:
        module.exit_json(**result)

    if written:
        candidate = temporary(path, content, 0o644)
        try:
            rc, out, err = module.run_command([nft, "-c", "-f", candidate])
            if rc != 0:
                module.fail_json(msg="nft refused the new rules for %s; the file and the rules loaded stay as they are. "
                                     "nft said: %s" % (path, (err or out).strip()),
                                 changed=False, written=False, loaded=False)
            os.rename(candidate, path)
        finally:
            if os.path.exists(candidate):
                os.unlink(candidate)
    if loaded:
        rc, out, err = module.run_command([nft, "-f", path])
        if rc != 0:
            module.fail_json(msg="nft did not load %s: %s" % (path, (err or out).strip()), **result)
        write(loaded_file, total, 0o644)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
