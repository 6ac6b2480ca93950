#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: model_version_info
short_description: Read and check the versions of a TensorFlow Serving model repository
version_added: 0.1.0
description:
  - Reads one model's base directory the way TensorFlow Serving discovers versions, and reports each version's
    SavedModel (MetaGraph tags, signatures, TensorFlow version), its file count, size and a content checksum.
  - Needs nothing beyond Python's standard library on the host; TensorFlow is not required.
  - Fails, naming the path, the version and the reason, on anything TensorFlow Serving would refuse or silently
    mishandle, before a server ever sees it.
  - Checks a version's warmup records (C(assets.extra/tf_serving_warmup_requests)) as TensorFlow Serving replays
    them while loading (TFRecord framing and checksums), each record a PredictionLog whose request names a signature
    the version has, at most 1000 records. A broken file is named with its record number.
author:
  - mlserve maintainers
options:
  path:
    description:
      - The model base directory, whose numeric sub-directories are the versions (C(<path>/1/saved_model.pb)).
    type: path
    required: true
  versions:
    description:
      - The versions that must be present and valid.
      - When omitted, every version found is checked.
    type: list
    elements: int
  signature_name:
    description:
      - The signature every checked version must have.
    type: str
    default: serving_default
  tags:
    description:
      - The tags of the MetaGraph TensorFlow Serving loads (its C(--saved_model_tags)).
    type: list
    elements: str
    default: [serve]
  compatible:
    description:
      - Check that each checked version's signature is compatible with the previous version's, so that a client
        of one version can call the next unchanged.
      - Incompatible means an input added, removed, or changed in dtype, rank or a fixed dimension, or an output
        removed or changed in dtype.
    type: bool
    default: true
  strict:
    description:
      - Treat directories that TensorFlow Serving would silently skip as errors rather than warnings.
      - These are directories that look like versions but are not numbers (C(v2), C(2.0)) and two directories
        with the same number (C(1) and C(001)).
    type: bool
    default: true
  checksums_only:
    description:
      - Only list the numeric version directories with their checksums, file counts and sizes, without reading
        or checking the SavedModels. Used to compare a copy with its source.
      - A missing O(path) then reports no versions instead of failing.
    type: bool
    default: false
  manifests:
    description:
      - What to do with the manifest beside each version (C(<path>/.manifest-<dir>.json)), which lists each file's
        relative path, size, mtime, inode, ctime and SHA-256 as last read.
      - V(use) takes the SHA-256 of every file whose size, mtime, inode and ctime are unchanged from the manifest, so
        an unchanged version costs a stat per file; new or stale manifests are written. Every write moves a file's
        ctime; bytes that change without a write (a failing disk) are not seen then.
      - V(rewrite) reads every file, as V(off) does, and writes every manifest (a scheduled audit).
      - V(off) reads every file and writes nothing.
      - Writing a manifest is not reported as a change; check mode writes none.
    type: str
    choices: [use, rewrite, "off"]
    default: "off"
extends_documentation_fragment: []
attributes:
  check_mode:
    support: full
    description: The module changes nothing but its own manifests (O(manifests)), and writes none in check mode.
notes:
  - Directories whose names start with a dot are staging copies and are ignored, as TensorFlow Serving ignores them.
  - Only directory names of ASCII digits are versions, as TensorFlow Serving parses them (C(00000123) is version 123);
    a name of other digits (C(²), C(١)) is reported like C(v2).
  - Only regular files and directories are read. A symbolic link, FIFO, socket or device inside a version fails the
    module naming it (a FIFO would never end a read; a link would be copied as a link), and so does a version
    directory that is the same directory as another version. Reads are bounded (100000 files per version, 2 GiB per
    C(saved_model.pb)).
  - Signatures named C(__saved_model_init_op), which TensorFlow 2 adds to every export, are not reported.
seealso:
  - name: TensorFlow Serving
    description: Serving models, version directories and model config files.
    link: https://www.tensorflow.org/tfx/guide/serving
"""

EXAMPLES = r"""
- name: Check three versions of a model on the controller
  mlserve.tfserving.model_version_info:
    path: models/half_plus
    versions: [1, 2, 3]
  delegate_to: localhost
  register: source

- name: Show each version's signature inputs
  ansible.builtin.debug:
    msg: "{{ source.versions | items2dict(key_name='version', value_name='signatures') }}"

- name: Allow a version directory named v2 to sit beside the real versions
  mlserve.tfserving.model_version_info:
    path: /srv/tfserving/models/half_plus
    strict: false

- name: Compare a host's copy with its source, reading only files changed since the last read
  mlserve.tfserving.model_version_info:
    path: /srv/tfserving/models/half_plus
    checksums_only: true
    manifests: use
  register: copy
"""

RETURN = r"""
path:
  description: The model base directory that was read.
  returned: always
  type: str
  sample: /srv/tfserving/models/half_plus
versions:
  description: One entry per checked version, in ascending order.
  returned: always
  type: list
  elements: dict
  contains:
    version:
      description: The version number.
      type: int
      sample: 2
    directory:
      description: The directory name that holds the version.
      type: str
      sample: "2"
    format:
      description: C(pb) for saved_model.pb, C(pbtxt) for saved_model.pbtxt. Not returned with O(checksums_only).
      type: str
      sample: pb
    tags:
      description: The tags of the MetaGraph that matched O(tags). Not returned with O(checksums_only).
      type: list
      elements: str
      sample: [serve]
    tensorflow_version:
      description: The TensorFlow version that wrote the SavedModel. Not returned with O(checksums_only).
      type: str
      sample: 2.21.0
    signatures:
      description:
        - The MetaGraph's signatures by name, each with C(method_name), C(inputs) and C(outputs); each input and
          output has C(name) (the tensor), C(dtype) (such as C(DT_FLOAT)) and C(shape) (a list, -1 for an unknown
          dimension, null for an unknown rank).
        - Not returned with O(checksums_only).
      type: dict
      sample:
        serving_default:
          method_name: tensorflow/serving/predict
          inputs: {x: {name: "x:0", dtype: DT_FLOAT, shape: [-1]}}
          outputs: {y: {name: "y:0", dtype: DT_FLOAT, shape: [-1]}}
    warmup_records:
      description:
        - The number of warmup records in C(assets.extra/tf_serving_warmup_requests), 0 without the file.
        - Not returned with O(checksums_only).
      type: int
      sample: 0
    file_count:
      description: Number of files in the version directory.
      type: int
      sample: 3
    total_bytes:
      description: Total size of those files.
      type: int
      sample: 13025
    checksum:
      description: SHA-256 over the sorted relative paths and contents; independent of file order and timestamps.
      type: str
      sample: 51ef17f543298d71f94d9a4a21cba1addf3468c565ec1b098e8948da32621e48
manifests_written:
  description: The manifests written (O(manifests)).
  returned: always
  type: list
  elements: str
  sample: [/srv/tfserving/models/half_plus/.manifest-2.json]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mlserve.tfserving.plugins.module_utils.saved_model import (Manifests, SavedModelError,
                                                                                 read_repository)

def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            versions=dict(type="list", elements="int"),
            signature_name=dict(type="str", default="serving_default"),
            tags=dict(type="list", elements="str", default=["serve"]),
            compatible=dict(type="bool", default=True),
            strict=dict(type="bool", default=True),
            checksums_only=dict(type="bool", default=False),
            manifests=dict(type="str", choices=["use", "rewrite", "off"], default="off"),
        ),
        supports_check_mode=True,
    )
    manifests = Manifests(module.params["manifests"], module.check_mode)
    try:
        result = read_repository(module.params, module.warn, manifests)
    except SavedModelError as e:
        module.fail_json(msg=str(e), path=module.params["path"])
    module.exit_json(changed=False, manifests_written=manifests.written, **result)


if __name__ == "__main__":
    main()
