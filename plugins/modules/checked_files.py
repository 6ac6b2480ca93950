#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: checked_files
short_description: Write several files in one task, each checked before it is put in place
version_added: 0.2.0
description:
  - Each file that differs from the one on the host (content, mode or group), in the order of O(files), is written
    beside it, checked there with its O(files[].check) command, such as C(sh -n) or C(logrotate --debug), and put
    in place by an atomic rename. A check sees the files before it in place.
  - When a check refuses a file, the module fails with the checker's message. That file and the ones after it are
    not written; the files before it that changed are in place, and RV(written) names them.
  - One task for a role's files instead of a loop of M(ansible.builtin.copy) with C(validate), which costs a module
    run per file even when nothing changed. What the changed files call for (a reload, a restart) is the role's to
    do, from RV(written).
  - A new file belongs to the user the module runs as (root, with C(become)); its directory is made (mode C(0755))
    when missing.
author:
  - mlserve maintainers
options:
  files:
    description: The files, in the order they are checked and put in place.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: The file's absolute path.
        type: str
        required: true
      content:
        description: The file's text.
        type: str
        required: true
      mode:
        description: Its mode, such as C(0644) (the default) or C(0755).
        type: raw
      group:
        description: Its group, when not root's.
        type: str
      check:
        description:
          - The command that checks the file before it is put in place, as an argument vector in which C(%s) stands
            for the file's path, such as C([logrotate, --debug, "%s"]). No check when empty.
        type: list
        elements: str
        default: []
notes:
  - Supports check mode (what would change, with C(--diff); nothing is written or checked) and diff mode.
"""

EXAMPLES = r"""
- name: Write a shell script and a logrotate rule, each once its check accepts it
  mlserve.tfserving.checked_files:
    files:
      - {path: /usr/local/sbin/rotate-hook, content: "{{ lookup('ansible.builtin.file', 'rotate-hook') }}",
         mode: "0755", check: [/bin/sh, -n, "%s"]}
      - {path: /etc/logrotate.d/app, content: "{{ lookup('ansible.builtin.template', 'logrotate.j2') }}",
         check: [logrotate, --debug, "%s"]}
  register: written

- name: Reload what reads the rule
  ansible.builtin.debug:
    msg: The rule changed
  when: "'/etc/logrotate.d/app' in written.written"
"""

RETURN = r"""
written:
  description: The paths whose contents were written, or would be in check mode.
  type: list
  elements: str
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mlserve.tfserving.plugins.module_utils.config_files import (
    changed_files, checked_file_options, checked_files, diff_of, put_in_place)


def main():
    module = AnsibleModule(
        argument_spec=dict(files=dict(type="list", elements="dict", required=True, options=checked_file_options())),
        supports_check_mode=True,
    )
    written = changed_files(checked_files(module, "checked_files"))
    result = dict(changed=bool(written), written=[entry["path"] for entry in written])
    if module._diff:
        result["diff"] = diff_of(written)
    if not module.check_mode:
        put_in_place(module, written, "it and the files after it are as they were")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
