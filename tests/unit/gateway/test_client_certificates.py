"""gateway_tls_client_ca against a real nginx running the role's configuration.

Every call, REST and gRPC, needs a client certificate that the client CA
signed; without one it is refused in TF Serving's error shape, and with one
it reaches the routes (here the gateway's own answers: nothing serves the
model, so the check alone is proved).
"""

import datetime
import ipaddress
import json
import ssl
import urllib.error
import urllib.request

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..ports import free_port
from .render import run_gateway

REFUSAL = ("Missing or untrusted client certificate: call the gateway over TLS with a certificate that its client CA "
           "signed")


def certificate(directory, name, issuer=None, server=False, expired=False):
    """A key and a certificate for `name`, signed by `issuer` (a previous result), else self-signed (a CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2 if expired else 0)
    builder = (x509.CertificateBuilder().subject_name(subject).public_key(key.public_key())
               .issuer_name(issuer["cert"].subject if issuer else subject).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(name))]),
                                        critical=False)
    cert = builder.sign(issuer["key"] if issuer else key, hashes.SHA256())
    made = {"cert": cert, "key": key, "cert_path": directory / (name + ".pem"), "key_path": directory / (name + ".key")}
    made["cert_path"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    made["key_path"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    return made


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mtls")
    pki = tmp_path_factory.mktemp("pki")
    server_ca = certificate(pki, "server-ca")
    client_ca = certificate(pki, "client-ca")
    certs = {"server": certificate(pki, "127.0.0.1", server_ca, server=True),
             "client": certificate(pki, "client", client_ca),
             # nginx refuses it itself (495), not the check: answered alike.
             "expired": certificate(pki, "expired", client_ca, expired=True),
             "stranger": certificate(pki, "stranger", certificate(pki, "other-ca"))}
    ports = {"http": free_port(), "https": free_port(), "status": free_port(), "grpc": free_port()}
    gateway_vars = {"gateway_listen_address": "127.0.0.1", "gateway_http_port": ports["http"],
                    "gateway_https_port": ports["https"], "gateway_status_port": ports["status"],
                    "gateway_grpc_port_base": ports["grpc"],
                    "gateway_tls_certificate": str(certs["server"]["cert_path"]),
                    "gateway_tls_certificate_key": str(certs["server"]["key_path"]),
                    "gateway_tls_client_ca": str(client_ca["cert_path"])}
    running = run_gateway(tmp, gateway_vars)
    yield dict(ports=ports, certs=certs, server_ca=server_ca)
    running.stop()


def rest(url, context=None):
    try:
        with urllib.request.urlopen(url, context=context, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def tls_context(gateway, client=None):
    context = ssl.create_default_context(cafile=str(gateway["server_ca"]["cert_path"]))
    if client:
        context.load_cert_chain(str(gateway["certs"][client]["cert_path"]), str(gateway["certs"][client]["key_path"]))
    return context


@pytest.mark.parametrize("scheme, client", [("http", None), ("https", None), ("https", "stranger"),
                                            ("https", "expired")])
def test_a_rest_call_without_a_certificate_of_the_client_ca_is_refused_in_tf_servings_shape(gateway, scheme, client):
    url = "%s://127.0.0.1:%d/v1/models/half_plus/versions/1/metadata" % (scheme, gateway["ports"][scheme])
    assert rest(url, tls_context(gateway, client) if scheme == "https" else None) == (401, {"error": REFUSAL})


def test_a_rest_call_with_a_certificate_of_the_client_ca_reaches_the_routes(gateway):
    url = "https://127.0.0.1:%d/v1/models/nope/versions/1/metadata" % gateway["ports"]["https"]
    assert rest(url, tls_context(gateway, "client")) == (
        404, {"error": "Servable not found for request: Specific(nope, 1)"})


def grpc_call(gateway, client=None):
    """A method the gateway answers itself (it refuses it), so that only the certificate check is in the way."""
    pem = dict((k, gateway["certs"][client][k + "_path"].read_bytes()) for k in ("cert", "key")) if client else {}
    credentials = grpc.ssl_channel_credentials(root_certificates=gateway["server_ca"]["cert_path"].read_bytes(),
                                               private_key=pem.get("key"), certificate_chain=pem.get("cert"))
    with grpc.secure_channel("127.0.0.1:%d" % gateway["ports"]["grpc"], credentials) as channel:
        try:
            channel.unary_unary("/tensorflow.serving.ModelService/HandleReloadConfigRequest")(b"", timeout=5)
        except grpc.RpcError as e:
            return e.code(), e.details()
    raise AssertionError("the gateway answered a refused method")


@pytest.mark.parametrize("client", [None, "stranger", "expired"])
def test_a_grpc_call_without_a_certificate_of_the_client_ca_is_unauthenticated(gateway, client):
    assert grpc_call(gateway, client) == (grpc.StatusCode.UNAUTHENTICATED, REFUSAL)


def test_a_grpc_call_with_a_certificate_of_the_client_ca_reaches_the_routes(gateway):
    assert grpc_call(gateway, "client") == (
        grpc.StatusCode.PERMISSION_DENIED,
        "/tensorflow.serving.ModelService/HandleReloadConfigRequest is not allowed through the gateway")
