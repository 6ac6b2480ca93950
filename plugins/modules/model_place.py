#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: model_place
short_description: Put staged model versions in place, each in one rename, and read each copy whole
version_added: 0.2.0
description:
  - The models role's last step after a copy, in one task for all of a host's copied versions. Each version was
    copied into C(<path>/.incoming-<version>), which TensorFlow Serving ignores; it is renamed to
    C(<path>/<version>), the version it replaces (if any) moved aside first and removed after, so a polling server
    never sees half a version.
  - Then each version is read whole and checked as M(mlserve.tfserving.model_version_info) checks it (with
    C(compatible=false) and C(manifests=rewrite)), for its checksum, which the role compares with the source's, and
    its SavedModel. A version that does not read is reported in RV(placed) with its message, not as a failure, so the
    role can name every bad copy at once.
  - Needs nothing beyond Python's standard library on the host.
author:
  - mlserve maintainers
options:
  versions:
    description: The copied versions, in the order RV(placed) follows.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: The model base directory (C(<models root>/<model>)).
        type: path
        required: true
      version:
        description: The version number, the directory's name once in place.
        type: int
        required: true
      signature:
        description: The signature the version must have.
        type: str
        default: serving_default
notes:
  - Supports check mode (the versions that would be put in place are reported as a change; nothing is renamed or
    read).
  - The version's manifest is rewritten: the next runs trust it.
"""

EXAMPLES = r"""
- name: Put the copied versions in place and read them
  mlserve.tfserving.model_place:
    versions:
      - {path: /srv/tfserving/models/half_plus, version: 3}
  register: placed

- name: Every copy read
  ansible.builtin.assert:
    that: placed.placed | selectattr('msg', 'defined') | list | length == 0
"""

RETURN = r"""
placed:
  description: Per entry of O(versions), in their order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The model base directory.
      type: str
    version:
      description: The version.
      type: int
    versions:
      description: >-
        The version as read (C(version), C(directory), C(checksum), C(signatures) and the rest, as
        M(mlserve.tfserving.model_version_info) returns them); empty when it did not read, and in check mode.
      type: list
      elements: dict
    replaced:
      description: >-
        Whether a copy of the version was there before (it differed from the source): a server that loaded it keeps
        serving it, which the module warns about.
      type: bool
    msg:
      description: Why the version did not read; absent when it did.
      type: str
manifests_written:
  description: The manifests written.
  returned: always
  type: list
  elements: str
"""

import os
import shutil

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mlserve.tfserving.plugins.module_utils.saved_model import (Manifests, SavedModelError,
                                                                                 read_repository)


def put_in_place(path, version):
    """Rename <path>/.incoming-<version> to <path>/<version>, the version there before moved aside, then removed."""
    live, staged, old = (os.path.join(path, name % version) for name in ("%d", ".incoming-%d", ".outgoing-%d"))
    if not os.path.isdir(staged):
        raise SavedModelError("%s is missing: no copy of version %d to put in place" % (staged, version))
    if os.path.lexists(old):
        shutil.rmtree(old)
    if os.path.lexists(live):
        os.rename(live, old)
    os.rename(staged, live)
    if os.path.lexists(old):
        shutil.rmtree(old)


def main():
    module = AnsibleModule(
        argument_spec=dict(versions=dict(type="list", elements="dict", required=True, options=dict(
            path=dict(type="path", required=True),
            version=dict(type="int", required=True),
            signature=dict(type="str", default="serving_default")))),
        supports_check_mode=True,
    )
    manifests = Manifests("rewrite", module.check_mode)
    placed = []
    for entry in module.params["versions"]:
        result = {"path": entry["path"], "version": entry["version"], "versions": [],
                  "replaced": os.path.lexists(os.path.join(entry["path"], str(entry["version"])))}
        placed.append(result)
        if result["replaced"]:
            # TF Serving knows a version by its number only: it does not load the new files again.
            module.warn("version %d in %s replaced a copy that differed from its source: a server that loaded it "
                        "serves the old one until its container restarts. Publish a changed model as a new version "
                        "number." % (entry["version"], entry["path"]))
        if module.check_mode:
            continue
        try:
            put_in_place(entry["path"], entry["version"])
        except (OSError, IOError) as e:
            module.fail_json(msg="model_place: could not put %s version %d in place: %s"
                                 % (entry["path"], entry["version"], e), placed=placed, changed=True)
        except SavedModelError as e:
            module.fail_json(msg="model_place: %s" % e, placed=placed, changed=len(placed) > 1)
        try:
            result["versions"] = read_repository(
                dict(path=entry["path"], versions=[entry["version"]], signature_name=entry["signature"],
                     tags=["serve"], compatible=False, strict=True, checksums_only=False),
                module.warn, manifests)["versions"]
        except SavedModelError as e:
            result["msg"] = str(e)
    module.exit_json(changed=bool(placed), placed=placed, manifests_written=manifests.written)


if __name__ == "__main__":
    main()
