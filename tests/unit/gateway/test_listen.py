"""The gateway's listeners on IPv6 addresses, rendered as the role renders them and run by the real nginx."""

import json
import urllib.error
import urllib.request

import pytest

from ansible_collections.mlserve.tfserving.plugins.module_utils import gateway

from ..ports import free_port
from .render import run_gateway


@pytest.mark.parametrize("address, listen", [
    ("0.0.0.0", "0.0.0.0:80"),
    ("127.0.0.5", "127.0.0.5:80"),
    ("gw.example", "gw.example:80"),
    ("::1", "[::1]:80"),
    ("[2001:db8::1]", "[2001:db8::1]:80"),
    # Every IPv6 address, and every IPv4 one too, as 0.0.0.0 would.
    ("::", "[::]:80 ipv6only=off"),
])
def test_nginx_listens_on_an_ipv6_address_in_brackets(address, listen):
    assert gateway.nginx_listen(address, 80) == listen


def answer(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_a_gateway_on_every_ipv6_address_answers_ipv4_and_ipv6_clients(tmp_path):
    ports = {"http": free_port(), "status": free_port()}
    gateway_vars = {"gateway_listen_address": "::", "gateway_http_port": ports["http"],
                    "gateway_status_address": "::1", "gateway_status_port": ports["status"],
                    "gateway_grpc_port_base": free_port()}
    running = run_gateway(tmp_path, gateway_vars)
    try:
        # The gateway itself answers a model it does not serve, over either family.
        for host in ("127.0.0.1", "[::1]"):
            assert answer("http://%s:%d/v1/models/nope" % (host, ports["http"]))[0] == 404
        assert answer("http://[::1]:%d/healthz" % ports["status"]) == (200, b"ok\n")
    finally:
        running.stop()
