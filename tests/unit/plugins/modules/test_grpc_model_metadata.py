"""mlserve.tfserving.grpc_model_metadata: its hand-written wire encoding agrees with TF Serving's own messages."""

import json

import pytest
from ansible.module_utils.testing import patch_module_args
from tensorflow_serving.apis import get_model_metadata_pb2

from ansible_collections.mlserve.tfserving.plugins.modules import grpc_model_metadata as module


@pytest.mark.parametrize("spec", [
    {"name": "half_plus"},
    {"name": "half_plus", "version": 2},
    {"name": "half_plus", "version": 0},
    {"name": "half_plus", "version": 2 ** 40},
    {"name": "half_plus", "version_label": "stable"},
    {"name": "é", "version": None, "version_label": None},
])
def test_the_request_is_what_tensorflow_serving_api_parses(spec):
    request = get_model_metadata_pb2.GetModelMetadataRequest.FromString(module.encode_request(spec))
    assert request.model_spec.name == spec["name"]
    assert request.model_spec.HasField("version") == (spec.get("version") is not None)
    assert request.model_spec.version.value == (spec.get("version") or 0)
    assert request.model_spec.version_label == (spec.get("version_label") or "")
    assert list(request.metadata_field) == ["signature_def"]


def test_the_answers_model_spec_is_read_from_a_real_response():
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = "half_plus_iso"
    response.model_spec.version.value = 3
    response.model_spec.signature_name = "serving_default"
    response.metadata["signature_def"].Pack(get_model_metadata_pb2.SignatureDefMap())
    assert module.decode_model_spec(response.SerializeToString()) == {
        "name": "half_plus_iso", "version": 3, "signature_name": "serving_default"}
    assert module.decode_model_spec(b"")["version"] is None


@pytest.mark.parametrize("files, message", [
    ({"ca_file": "/etc/ssl/ca.pem"}, "ca_file: /etc/ssl/ca.pem is only used with tls: true"),
    ({"client_certificate": "/etc/ssl/c.pem", "client_key": "/etc/ssl/c.key"},
     "client_certificate: /etc/ssl/c.pem is only used with tls: true"),
    ({"tls": True, "client_certificate": "/etc/ssl/c.pem"},
     "parameters are required together: client_certificate, client_key"),
])
def test_tls_files_without_tls_or_a_lone_client_certificate_are_refused_before_any_call(capsys, files, message):
    args = dict({"target": "127.0.0.1:9", "model_spec": {"name": "half_plus"}}, **files)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] and result["msg"] == message
