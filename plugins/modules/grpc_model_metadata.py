#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: grpc_model_metadata
short_description: Ask a TensorFlow Serving gRPC endpoint which version answers a ModelSpec
version_added: 0.2.0
description:
  - Calls C(tensorflow.serving.PredictionService/GetModelMetadata) on a server or a gateway's gRPC listener, with a
    ModelSpec and gRPC metadata, and returns the ModelSpec of the answer, which names the version that answered.
  - Reports the gRPC status code and message of a failed call instead of failing, so that a playbook can judge it
    (C(playbooks/routes.yml) does).
  - Needs the C(grpcio) Python package where it runs (usually the controller, with C(delegate_to)). The request and
    the answer's ModelSpec are encoded by the module itself, so neither TensorFlow nor tensorflow-serving-api is needed.
author:
  - mlserve maintainers
options:
  target:
    description: The endpoint, C(host:port).
    type: str
    required: true
  model_spec:
    description: The request's ModelSpec.
    type: dict
    required: true
    suboptions:
      name:
        description: The model name.
        type: str
        required: true
      version:
        description: A version number.
        type: int
      version_label:
        description: A version label; not together with O(model_spec.version).
        type: str
  metadata:
    description: gRPC metadata sent with the call, key to value (keys in lower case).
    type: dict
    default: {}
  timeout:
    description: Seconds the call may take.
    type: int
    default: 10
  tls:
    description: Call over TLS (a gateway with C(gateway_tls_certificate)), verifying the target's certificate.
    type: bool
    default: false
  ca_file:
    description:
      - PEM file of the CA that signed the target's certificate, where it runs; the system's CAs when not given.
      - Only with O(tls).
    type: path
  client_certificate:
    description:
      - PEM file of a client certificate to present, where it runs, for a gateway with C(gateway_tls_client_ca)
        (mTLS).
      - Only with O(tls) and O(client_key).
    type: path
  client_key:
    description: PEM file of the private key of O(client_certificate).
    type: path
requirements:
  - grpcio
attributes:
  check_mode:
    support: full
    description: The call only reads; it runs in check mode too.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Which version answers label stable of half_plus?
  mlserve.tfserving.grpc_model_metadata:
    target: 127.0.0.1:8500
    model_spec:
      name: half_plus
      version_label: stable
  delegate_to: localhost
  register: answer

- name: An isolated model's label, named in metadata
  mlserve.tfserving.grpc_model_metadata:
    target: gateway.example:8501
    model_spec:
      name: ranker
    metadata:
      x-model-label: stable
  delegate_to: localhost

- name: Through a gateway with TLS and client certificates (gateway_tls_client_ca)
  mlserve.tfserving.grpc_model_metadata:
    target: gateway.example:8500
    model_spec:
      name: half_plus
    tls: true
    ca_file: /etc/mlserve/gateway-ca.pem
    client_certificate: /etc/mlserve/client.pem
    client_key: /etc/mlserve/client.key
  delegate_to: localhost
"""

RETURN = r"""
code:
  description: The gRPC status code of the call, C(OK) when it succeeded.
  returned: always
  type: str
  sample: OK
details:
  description: The gRPC status message of a failed call.
  returned: always
  type: str
  sample: "Servable not found for request: Latest(nope)"
model_spec:
  description: The ModelSpec of the answer (name, version, signature_name); empty when the call failed.
  returned: always
  type: dict
  sample: {"name": "half_plus", "version": 2, "signature_name": ""}
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.mlserve.tfserving.plugins.module_utils import saved_model

try:
    import grpc
except ImportError:
    grpc = None
    GRPC_IMPORT_ERROR = traceback.format_exc()
else:
    GRPC_IMPORT_ERROR = None

METHOD = "/tensorflow.serving.PredictionService/GetModelMetadata"


def _varint(value):
    out = bytearray()
    value &= (1 << 64) - 1  # negative int64s are ten bytes, as protobuf writes them
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number, payload):
    """A length-delimited field (strings and messages)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_request(spec):
    """GetModelMetadataRequest{model_spec, metadata_field: ["signature_def"]}, serialized."""
    model_spec = _field(1, spec["name"].encode("utf-8"))
    if spec.get("version") is not None:
        model_spec += _field(2, _varint(1 << 3) + _varint(spec["version"]))  # google.protobuf.Int64Value
    if spec.get("version_label"):
        model_spec += _field(4, spec["version_label"].encode("utf-8"))
    return _field(1, model_spec) + _field(2, b"signature_def")


def decode_model_spec(data):
    """The answer's ModelSpec (GetModelMetadataResponse field 1)."""
    answer = saved_model.decode_message(data, "GetModelMetadataResponse")
    spec = (answer.get("model_spec") or [{}])[0]
    version = (spec.get("version") or [{}])[0].get("value") or [None]
    return {"name": (spec.get("name") or [""])[0], "version": version[0],
            "signature_name": (spec.get("signature_name") or [""])[0]}


def main():
    module = AnsibleModule(
        argument_spec={
            "target": {"type": "str", "required": True},
            "model_spec": {"type": "dict", "required": True, "options": {
                "name": {"type": "str", "required": True},
                "version": {"type": "int"},
                "version_label": {"type": "str"},
            }, "mutually_exclusive": [["version", "version_label"]]},
            "metadata": {"type": "dict", "default": {}},
            "timeout": {"type": "int", "default": 10},
            "tls": {"type": "bool", "default": False},
            "ca_file": {"type": "path"},
            "client_certificate": {"type": "path"},
            "client_key": {"type": "path", "no_log": False},
        },
        required_together=[["client_certificate", "client_key"]],
        supports_check_mode=True,
    )
    if grpc is None:
        module.fail_json(msg=missing_required_lib("grpcio"), exception=GRPC_IMPORT_ERROR)
    params = module.params
    metadata = [(str(k).lower(), str(v)) for k, v in sorted(params["metadata"].items())]
    files = ("ca_file", "client_certificate", "client_key")
    for name in files:
        if params[name] and not params["tls"]:
            module.fail_json(msg="%s: %s is only used with tls: true" % (name, params[name]))
    if params["tls"]:
        pem = dict((name, None) for name in files)
        for name in files:
            if params[name]:
                try:
                    with open(params[name], "rb") as f:
                        pem[name] = f.read()
                except (IOError, OSError) as e:
                    module.fail_json(msg="%s: %s" % (name, e))
        channel = grpc.secure_channel(params["target"], grpc.ssl_channel_credentials(
            root_certificates=pem["ca_file"], private_key=pem["client_key"],
            certificate_chain=pem["client_certificate"]))
    else:
        channel = grpc.insecure_channel(params["target"])
    with channel:
        call = channel.unary_unary(METHOD)
        try:
            answer = call(encode_request(params["model_spec"]), metadata=metadata, timeout=params["timeout"])
        except grpc.RpcError as e:
            module.exit_json(changed=False, code=e.code().name, details=e.details() or "", model_spec={})
    try:
        spec = decode_model_spec(answer)
    except saved_model.SavedModelError as e:
        module.fail_json(msg="%s answered something that is not a GetModelMetadataResponse: %s" % (params["target"], e))
    module.exit_json(changed=False, code="OK", details="", model_spec=spec)


if __name__ == "__main__":
    main()
