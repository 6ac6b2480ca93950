"""Random declarations and inventories: each is refused naming a variable, or renders configs the servers accept.

Every plan without problems is rendered the way the gateway role renders it
and checked with `nginx -t`, and every models.config it implies is parsed
with TF Serving's own ModelServerConfig.
"""

import subprocess

from google.protobuf import text_format
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tensorflow_serving.config import model_server_config_pb2

from ansible_collections.mlserve.tfserving.plugins.module_utils import plan, serving_host

from ...gateway.render import render_gateway
from .test_fleet_plan import ROLE_DEFAULTS

GROUPS = ["all", "ungrouped", "tfserving", "gateway", "gpu"]
# What a problem must name: the variable to change.
VARIABLES = ("tfserving_models", "tfserving_port_base", "tfserving_address", "serving_image", "serving_flags",
             "gateway_")

# Declarations and inventories are valid by construction, then now and then
# given one of the mistakes users make, so that both outcomes are common.
MODEL_MISTAKES = [
    ("name", "half_plus\n"), ("name", "a b"), ("versions", [1, 1]), ("versions", [1.0]), ("versions", []),
    ("topology", "pooled"), ("labels", {"stable": 1.0}), ("labels", {"stable": True}), ("labels", {"st-able": 1}),
    ("labels", {"stable": 9}), ("routes", {"default": 2.0}), ("routes", {"default": "beta"}),
    ("routes", {"aliases": {"x\n": 1}}), ("rest_port", 70000), ("hosts", "nope"), ("image", "Bad Image"),
]
HOST_MISTAKES = [
    ("tfserving_port_base", 65530), ("tfserving_port_base", 0), ("tfserving_port_base", "abc"),
    ("tfserving_address", "127.0.0.1:18500"), ("serving_image", "UPPER/case:1"), ("serving_flags", {"prot": 1}),
]
GATEWAY_MISTAKES = [("gateway_http_port", 70000), ("gateway_status_port", 18080), ("gateway_grpc_port_base", 65535),
                    ("gateway_tls_certificate", "/x.pem"), ("gateway_client_rate", "fast"),
                    ("gateway_api_keys", [{"name": "a b", "key": "short"}]),
                    ("gateway_api_keys", [{"name": "a", "key": "k" * 20, "models": ["undeclared"]}])]
# Client access settings a gateway may have (off, keys for every model or one, limits).
ACCESS = [{}, {"gateway_api_keys": [{"name": "all", "key": "Key-0123456789abcdef"}]},
          {"gateway_api_keys": [{"name": "all", "key": "Key-0123456789abcdef"},
                                {"name": "some.one", "key": "Other+key/0123456789=", "models": []}],
           "gateway_api_key_header": "X-Api-Key", "gateway_client_rate": "5r/s", "gateway_model_rate": "600r/m"},
          {"gateway_client_rate": "20r/s", "gateway_client_burst": 0}]


@st.composite
def declarations(draw):
    declaration = []
    for name in draw(st.lists(st.sampled_from(["m", "half_plus", "ranker", "ranker_v1", "a", "a-v1"]),
                              min_size=1, max_size=3, unique=True)):
        versions = sorted(draw(st.sets(st.integers(1, 4), min_size=1, max_size=3)))
        model = {"name": name, "source": "/src/" + name, "versions": versions,
                 "topology": draw(st.sampled_from(["shared", "isolated"])),
                 "hosts": draw(st.sampled_from(["tfserving", "gpu"]))}
        labels = draw(st.dictionaries(st.sampled_from(["stable", "canary"]), st.sampled_from(versions), max_size=2))
        if labels:
            model["labels"] = labels
            model["routes"] = {"default": draw(st.sampled_from(sorted(labels)))}
        if draw(st.booleans()):
            model.setdefault("routes", {})["aliases"] = {"%s_v%d" % (name, versions[0]): versions[0]}
        if draw(st.integers(0, 3)) == 0:
            key, value = draw(st.sampled_from(MODEL_MISTAKES))
            model[key] = value
        declaration.append(model)
    return declaration


@st.composite
def inventories(draw):
    hosts = []
    for i in range(draw(st.integers(1, 3))):
        variables = {"group_names": ["tfserving"] + (["gpu"] if draw(st.booleans()) else []),
                     "tfserving_port_base": 18500 + 1000 * i, "tfserving_address": draw(
                         st.sampled_from(["127.0.0.1", "::1", "localhost"]))}
        if draw(st.integers(0, 5)) == 0:
            key, value = draw(st.sampled_from(HOST_MISTAKES))
            variables[key] = value
        if draw(st.integers(0, 7)) == 0:  # two hosts at one address and port
            variables.update(tfserving_port_base=18500, tfserving_address="127.0.0.1")
        hosts.append(plan.host_inputs("s%d" % i, variables, ROLE_DEFAULTS))
    gateway = {"group_names": ["gateway"], "gateway_http_port": 18080, "gateway_status_port": 18081,
               "gateway_grpc_port_base": draw(st.sampled_from([None, 18090]))}
    gateway.update(draw(st.sampled_from(ACCESS)))
    if draw(st.integers(0, 5)) == 0:
        key, value = draw(st.sampled_from(GATEWAY_MISTAKES))
        gateway[key] = value
    hosts.append(plan.host_inputs("gw", gateway, ROLE_DEFAULTS))
    return hosts, gateway


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(declaration=declarations(), inventory=inventories())
def test_a_declaration_is_refused_naming_a_variable_or_renders_configs_the_servers_accept(declaration, inventory,
                                                                                         tmp_path):
    inventory, gateway_vars = inventory
    built = plan.build_plan(declaration, inventory, GROUPS, {"gateway_hosts": ["gw"]})
    event("refused" if built["problems"] else "rendered")
    if built["problems"]:
        for problem in built["problems"]:
            assert any(v in problem for v in VARIABLES), problem
        return
    for share in built["profiles"].values():
        for unit in share["units"]:
            text_format.Parse(serving_host.models_config(unit), model_server_config_pb2.ModelServerConfig())
    conf = render_gateway(built, "gw", tmp_path, gateway_vars)
    check = subprocess.run(["nginx", "-t", "-q", "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr + (tmp_path / "mlserve" / "routes.conf").read_text()[:3000]


def test_a_shared_models_grpc_listener_reads_the_answering_version_and_nginx_accepts_it(tmp_path):
    declaration = [{"name": "half_plus", "source": "/src/half_plus", "versions": [1, 2], "topology": "shared",
                    "labels": {"stable": 1, "canary": 2}, "routes": {"default": "canary"}},
                   {"name": "ranker", "source": "/src/ranker", "versions": [1, 2], "topology": "isolated"}]
    gateway = {"group_names": ["gateway"], "gateway_http_port": 18080, "gateway_status_port": 18081,
               "gateway_grpc_port_base": 18090}
    inventory = [plan.host_inputs("s0", {"group_names": ["tfserving"], "tfserving_port_base": 18500,
                                        "tfserving_address": "127.0.0.1", "firewall_enabled": False}, ROLE_DEFAULTS),
                 plan.host_inputs("gw", gateway, ROLE_DEFAULTS)]
    built = plan.build_plan(declaration, inventory, GROUPS, {"gateway_hosts": ["gw"]})
    assert built["problems"] == []
    conf = render_gateway(built, "gw", tmp_path, gateway)
    routes = (tmp_path / "mlserve" / "routes.conf").read_text()
    # The shared model's listener only: an isolated model's version is chosen by the gateway itself.
    assert routes.count("js_body_filter tfserving_grpc.version buffer_type=buffer;") == 1
    check = subprocess.run(["nginx", "-t", "-q", "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr

