#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: model_copies
short_description: Make the model directories of a serving host and read the versions already in them
version_added: 0.2.0
description:
  - The host side of the models role, in one task for all of a host's models. Each model base directory in
    O(paths) is made when missing, with O(owner), O(group) and O(mode), and given them when it has others.
  - Then the numeric version directories of each are listed with their checksums, file counts and sizes, as
    M(mlserve.tfserving.model_version_info) lists them with C(checksums_only) and C(strict=false), so the role can
    compare them with the sources and copy only what differs.
  - Needs nothing beyond Python's standard library on the host.
author:
  - mlserve maintainers
options:
  paths:
    description: The model base directories (C(<models root>/<model>)), in the order RV(copies) follows.
    type: list
    elements: path
    required: true
  owner:
    description: The directories' owner, a user of the host.
    type: str
    default: root
  group:
    description: The directories' group, a group of the host.
    type: str
    default: root
  mode:
    description: The directories' mode, such as C(0755).
    type: raw
    default: "0755"
  manifests:
    description:
      - What to do with the manifest beside each version, as M(mlserve.tfserving.model_version_info)'s option of
        that name. V(use) takes the checksum of every file whose size, mtime, inode and ctime are unchanged from it.
    type: str
    choices: [use, rewrite, "off"]
    default: use
notes:
  - Supports check mode (a directory that would be made or changed is reported; a missing one has no versions).
  - Writing a manifest is not reported as a change; check mode writes none.
  - Directories whose names are not versions (C(v2), staging copies) are reported as warnings and not listed.
"""

EXAMPLES = r"""
- name: Make each model's directory and read the versions already on the host
  mlserve.tfserving.model_copies:
    paths: [/srv/tfserving/models/half_plus, /srv/tfserving/models/resnet]
  register: copies

- name: Show the checksum of each version found
  ansible.builtin.debug:
    msg: "{{ copies.copies | map(attribute='versions') }}"
"""

RETURN = r"""
copies:
  description: Per path, in the order of O(paths), its versions (none when the directory was missing).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The model base directory.
      type: str
    versions:
      description: Each version with C(version), C(directory), C(checksum), C(file_count) and C(total_bytes).
      type: list
      elements: dict
directories:
  description: The directories made or given the owner, group or mode (or that would be, in check mode).
  returned: always
  type: list
  elements: str
manifests_written:
  description: The manifests written (O(manifests)).
  returned: always
  type: list
  elements: str
"""

import grp
import os
import pwd

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mlserve.tfserving.plugins.module_utils.config_files import mode_of
from ansible_collections.mlserve.tfserving.plugins.module_utils.saved_model import (Manifests, SavedModelError,
                                                                                 read_repository)


def wanted_ids(module):
    """(uid, gid, mode) of the options; fails naming each bad one."""
    p, problems, ids = module.params, [], []
    for name, lookup in (("owner", lambda v: pwd.getpwnam(v).pw_uid), ("group", lambda v: grp.getgrnam(v).gr_gid)):
        try:
            ids.append(lookup(p[name]))
        except KeyError:
            problems.append("%s: %r is not a %s of this host" % (name, p[name], "user" if name == "owner" else name))
    try:
        ids.append(mode_of(p, 0o755))
    except ValueError:
        problems.append("mode: %r is not an octal mode such as 0755" % (p["mode"],))
    if problems:
        module.fail_json(msg="model_copies: " + "; ".join(problems))
    return ids


def directory(path, uid, gid, mode, check_mode):
    """Whether the directory had to be made or changed; it is, unless check_mode."""
    try:
        status = os.stat(path)
    except OSError:
        if not check_mode:
            parent = os.path.dirname(path)
            if not os.path.isdir(parent):
                os.makedirs(parent, 0o755)
            os.mkdir(path)
            os.chown(path, uid, gid)
            os.chmod(path, mode)
        return True
    if (status.st_uid, status.st_gid, status.st_mode & 0o7777) == (uid, gid, mode):
        return False
    if not check_mode:
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    return True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type="list", elements="path", required=True),
            owner=dict(type="str", default="root"),
            group=dict(type="str", default="root"),
            mode=dict(type="raw", default="0755"),
            manifests=dict(type="str", choices=["use", "rewrite", "off"], default="use"),
        ),
        supports_check_mode=True,
    )
    uid, gid, mode = wanted_ids(module)
    for path in module.params["paths"]:
        if not os.path.isabs(path):
            module.fail_json(msg="model_copies: paths: %r is not an absolute path" % path)
    changed = [path for path in module.params["paths"] if directory(path, uid, gid, mode, module.check_mode)]
    manifests = Manifests(module.params["manifests"], module.check_mode)
    copies = []
    for path in module.params["paths"]:
        try:
            copies.append(read_repository(dict(path=path, checksums_only=True, strict=False, versions=None),
                                          module.warn, manifests))
        except SavedModelError as e:
            module.fail_json(msg=str(e), path=path, directories=changed, changed=bool(changed))
    module.exit_json(changed=bool(changed), copies=copies, directories=changed, manifests_written=manifests.written)


if __name__ == "__main__":
    main()
