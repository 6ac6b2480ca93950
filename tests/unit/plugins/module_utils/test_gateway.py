"""The gateway's derivations: pools over the whole inventory, routes, splits, gRPC listeners."""

import re

import pytest

from ansible_collections.mlserve.tfserving.plugins.filter.gateway import FilterModule
from ansible_collections.mlserve.tfserving.plugins.module_utils import fleet, gateway, plan

from ..action.test_fleet_plan import ROLE_DEFAULTS

DECLARATION = [
    {"name": "half_plus", "source": "/src/half_plus", "versions": [1, 2], "labels": {"stable": 1, "canary": 2},
     "routes": {"split": {"stable": 80, "canary": 20}, "aliases": {"half_plus_v1": 1, "half_plus_v2": 2},
                "grpc_unversioned": "newest"}},
    {"name": "half_plus_iso", "source": "/src/half_plus", "versions": [1, 2, 3], "topology": "isolated",
     "labels": {"stable": 2}, "routes": {"default": "stable"}},
]
HOSTVARS = [
    {"inventory_hostname": "serving1", "group_names": ["tfserving"], "tfserving_port_base": 18500,
     "tfserving_address": "127.0.0.1"},
    {"inventory_hostname": "serving2", "group_names": ["tfserving"], "tfserving_port_base": 18600,
     "ansible_host": "127.0.0.2"},
    # An address: the serving hosts' firewall (on by default) lets gateways in by address.
    {"inventory_hostname": "gateway1", "group_names": ["gateway"], "ansible_host": "127.0.0.10"},
]


# Role defaults as the fleet_plan action reads them (the roles' defaults/main.yml).
DEFAULTS = dict(ROLE_DEFAULTS)
GROUPS = ["all", "ungrouped", "tfserving", "gateway", "batch", "gpu"]
GATEWAY_OPTIONS = {"grpc_port_base": "gateway_grpc_port_base", "pin_header": "gateway_pin_header",
                   "pin_cookie": "gateway_pin_cookie", "pin_version_header": "gateway_pin_version_header"}


def make_plan(declaration=None, hostvars=None, **options):
    """gateway1's routing, through the fleet plan as the roles get it (its problems included)."""
    hostvars = [dict(h) for h in (HOSTVARS if hostvars is None else hostvars)]
    defaults = dict(DEFAULTS, gateway_grpc_port_base=None)
    for key, var in GATEWAY_OPTIONS.items():
        if key in options:
            defaults[var] = options.pop(key)
    hosts = [plan.host_inputs(h["inventory_hostname"], h, defaults) for h in hostvars]
    built = plan.build_plan(DECLARATION if declaration is None else declaration, hosts, GROUPS,
                            dict(options, gateway_hosts=["gateway1"]))
    return dict(built["gateways"].get("gateway1") or {}, problems=built["problems"])


def route(plan, path, pin_version="$pinned"):
    """What nginx does with the plan's locations: the first regex that matches wins.

    Returns (upstream, path sent upstream, version header); variables of the
    unversioned route are replaced by `pin_version`.
    """
    for r in plan["routes"]:
        match = re.search(r["pattern"], path)
        if match:
            sent = path
            if r["rewrite"]:
                sent = r["rewrite"].replace("$1", match.group(1) or "")
            subst = dict((m["version_var"], pin_version) for m in plan["models"])
            for var, value in subst.items():
                sent = sent.replace("$" + var, value)
                upstream = r["upstream"].replace("$" + var, value)
                version = r["version"].replace("$" + var, value)
                r = dict(r, upstream=upstream, version=version)
            return r["upstream"], sent, r["version"]
    return None


def test_backend_address_falls_back_from_tfserving_address_to_ansible_host_to_name():
    hostvars = [dict(HOSTVARS[0], tfserving_address=None, ansible_host=None)] + HOSTVARS[1:]
    servers = set((s["host"], s["address"]) for p in make_plan(hostvars=hostvars)["pools"] for s in p["servers"])
    assert servers == {("serving1", "serving1"), ("serving2", "127.0.0.2")}
    servers = set((s["host"], s["address"]) for p in make_plan()["pools"] for s in p["servers"])
    assert servers == {("serving1", "127.0.0.1"), ("serving2", "127.0.0.2")}


@pytest.mark.parametrize("settings, url, address", [
    ({"listen_address": "0.0.0.0", "http_port": 80}, "http://gw.example:80", "gw.example"),
    ({"listen_address": "127.0.0.5", "http_port": 8080}, "http://127.0.0.5:8080", "127.0.0.5"),
    ({"listen_address": "::", "http_port": 80, "https_port": 8443, "tls_certificate": "/c.pem"},
     "https://gw.example:8443", "gw.example"),
    ({"listen_address": "::1", "http_port": 80}, "http://[::1]:80", "::1"),
])
def test_clients_reach_a_gateway_at_its_listen_address_or_its_inventory_address(settings, url, address):
    endpoint = gateway.client_endpoint(dict(settings, api_key_header="X-Key"), "gw.example")
    assert endpoint == {"url": url, "address": address, "key_header": "X-Key"}


@pytest.mark.parametrize("error_log, rotated", [
    ("/var/log/nginx/error.log", None),  # Debian's nginx rule rotates it
    ("/var/log/nginx/error.log warn", None),  # nginx's error_log FILE LEVEL
    ("/var/log/nginx/gateway-errors", "/var/log/nginx/gateway-errors"),
    ("/var/log/nginx/gateway-errors warn", "/var/log/nginx/gateway-errors"),
    ("/var/log/nginx/.hidden.log", "/var/log/nginx/.hidden.log"),  # the rule's glob skips dot files
    ("/var/log/nginx/old/error.log", "/var/log/nginx/old/error.log"),
    ("/var/log/tfserving/error.log", "/var/log/tfserving/error.log"),
    ("stderr", None),
    ("syslog:server=unix:/dev/log", None),
])
def test_the_gateway_rotates_an_error_log_file_that_debians_nginx_rule_does_not(error_log, rotated):
    assert gateway.log_rotation({"error_log": error_log}) == {"error_log": rotated}


def test_each_version_has_its_own_pool_over_every_host_that_serves_it():
    pools = dict((p["name"], [(s["address"], s["port"]) for s in p["servers"]]) for p in make_plan()["pools"])
    # serving1 (base 18500): half_plus (shared) 18500/18501, then half_plus_iso v1..v3 at 18502..18507.
    assert pools == {
        "tfs_half_plus_v1": [("127.0.0.1", 18501), ("127.0.0.2", 18601)],
        "tfs_half_plus_v2": [("127.0.0.1", 18501), ("127.0.0.2", 18601)],
        "tfs_half_plus_iso_v1": [("127.0.0.1", 18503), ("127.0.0.2", 18603)],
        "tfs_half_plus_iso_v2": [("127.0.0.1", 18505), ("127.0.0.2", 18605)],
        "tfs_half_plus_iso_v3": [("127.0.0.1", 18507), ("127.0.0.2", 18607)],
    }


def test_pools_use_the_serving_roles_own_port_plan():
    models = fleet.normalize_models(DECLARATION)
    units = fleet.serving_units(models, ["tfserving"], 18600)
    iso3 = [u for u in units if u["name"] == "tfserving-half_plus_iso-v3"][0]
    pool = [p for p in make_plan()["pools"] if p["name"] == "tfs_half_plus_iso_v3"][0]
    assert ("serving2", iso3["rest_port"]) in [(s["host"], s["port"]) for s in pool["servers"]]


def test_a_host_outside_the_models_group_is_in_no_pool():
    hostvars = HOSTVARS + [{"inventory_hostname": "other", "group_names": ["batch"], "tfserving_port_base": 30000}]
    hosts = set(s["host"] for p in make_plan(hostvars=hostvars)["pools"] for s in p["servers"])
    assert hosts == {"serving1", "serving2"}


@pytest.mark.parametrize("path, upstream, sent, version", [
    ("/v1/models/half_plus/versions/2:predict", "tfs_half_plus_v2", "/v1/models/half_plus/versions/2:predict", "2"),
    ("/v1/models/half_plus/versions/1", "tfs_half_plus_v1", "/v1/models/half_plus/versions/1", "1"),
    ("/v1/models/half_plus/versions/1/metadata", "tfs_half_plus_v1", "/v1/models/half_plus/versions/1/metadata", "1"),
    ("/v1/models/half_plus/labels/canary:regress", "tfs_half_plus_v2",
     "/v1/models/half_plus/versions/2:regress", "2"),
    # An isolated container knows no labels: the gateway names the version.
    ("/v1/models/half_plus_iso/labels/stable:predict", "tfs_half_plus_iso_v2",
     "/v1/models/half_plus_iso/versions/2:predict", "2"),
    ("/v1/models/half_plus_v2:classify", "tfs_half_plus_v2", "/v1/models/half_plus/versions/2:classify", "2"),
    ("/v1/models/half_plus_v1/metadata", "tfs_half_plus_v1", "/v1/models/half_plus/versions/1/metadata", "1"),
    ("/v1/models/half_plus:predict", "tfs_half_plus_v$pinned", "/v1/models/half_plus/versions/$pinned:predict",
     "$pinned"),
    ("/v1/models/half_plus_iso:predict", "tfs_half_plus_iso_v$pinned",
     "/v1/models/half_plus_iso/versions/$pinned:predict", "$pinned"),
    # A shared model's status lists every version, as its server answers it (TF Serving's
    # tensorflow_model_server_test asks it of saved_model_half_plus_two_2_versions); an
    # isolated model's container has one, the unversioned route's.
    ("/v1/models/half_plus", "tfs_half_plus_v$pinned", "/v1/models/half_plus", "$pinned"),
    ("/v1/models/half_plus_iso", "tfs_half_plus_iso_v$pinned", "/v1/models/half_plus_iso/versions/$pinned", "$pinned"),
])
def test_every_declared_route_reaches_exactly_its_versions_pool(path, upstream, sent, version):
    assert route(make_plan(), path) == (upstream, sent, version)


@pytest.mark.parametrize("path", [
    "/v1/models/half_plus/versions/3:predict",      # undeclared version
    "/v1/models/half_plus/versions/12:predict",     # a prefix of a declared version must not match
    "/v1/models/half_plus/labels/beta:predict",     # undeclared label
    "/v1/models/half_plus/labels/stable2:predict",
    "/v1/models/resnet:predict",                    # undeclared model
    "/v1/models/half_plus:explain",
    "/v1/models/half_plus/versions/1:predictx",
    "/v1/models/half_plus_v3:predict",              # undeclared alias
    "/v1/models",
])
def test_anything_undeclared_matches_no_route_and_is_left_to_the_gateways_error_answers(path):
    assert route(make_plan(), path) is None


def test_the_unversioned_path_follows_the_split_and_pins_by_label():
    half_plus, iso = make_plan()["models"]
    assert half_plus["split"] == [{"share": "20%", "version": 2, "label": "canary"},
                                  {"share": "*", "version": 1, "label": "stable"}]
    assert half_plus["weights"] == {1: 80, 2: 20}
    assert half_plus["labels"] == {"stable": 1, "canary": 2}
    assert half_plus["split_var"] == "tfs_m0_split"
    assert (iso["split"], iso["split_var"], iso["default_version"], iso["weights"]) == ([], None, 2, {2: 100})


def test_the_access_log_records_the_label_a_request_went_by():
    planned = make_plan(grpc_port_base=18090)
    labels = dict((r["example"], r["log_label"]) for r in planned["routes"])
    assert labels["/v1/models/half_plus/labels/canary"] == "canary"
    assert labels["/v1/models/half_plus/versions/2"] == labels["/v1/models/half_plus_v2"] == ""
    # The unversioned path: the pinned label, else the split's or the default's.
    assert labels["/v1/models/half_plus"] == "$tfs_m0_label"
    half_plus, iso = planned["models"]
    assert (half_plus["label_var"], iso["label_var"], iso["default_label"]) == ("tfs_m0_label", "tfs_m1_label", "stable")
    declaration = [{"name": "m", "source": "/m", "versions": [3, 7]}]
    assert make_plan(declaration)["models"][0]["default_label"] == ""
    # gRPC: an isolated model's metadata names the label or a version (""); a
    # shared model's label is inside the request, out of nginx's sight.
    shared, isolated = planned["grpc"]
    assert (shared["label_var"], shared["label_choices"]) == (None, [])
    assert isolated["label_var"] == "tfs_m1_grpc_label"
    assert isolated["label_choices"] == [(":", "$tfs_m1_label"), (":stable", "stable")]


def test_two_labels_on_one_version_add_their_weights():
    declaration = [dict(DECLARATION[0], labels={"stable": 2, "canary": 2})]
    assert make_plan(declaration)["models"][0]["weights"] == {2: 100}


def test_a_zero_weight_label_gets_no_bucket():
    declaration = [dict(DECLARATION[0], routes={"split": {"stable": 100, "canary": 0}, "grpc_unversioned": "newest"})]
    assert make_plan(declaration)["models"][0]["split"] == [{"share": "*", "version": 1, "label": "stable"}]


def test_the_default_route_without_routes_is_stable_or_the_newest_version():
    declaration = [{"name": "m", "source": "/m", "versions": [3, 7]}]
    assert make_plan(declaration)["models"][0]["default_version"] == 7


def test_pin_header_and_cookie_become_nginx_variables():
    pin = make_plan(pin_header="X-Canary-Label", pin_cookie="lbl", pin_version_header="X-Ver")["pin"]
    assert pin == {"header": "X-Canary-Label", "cookie": "lbl", "header_var": "http_x_canary_label",
                   "cookie_var": "cookie_lbl", "version_header": "X-Ver", "version_header_var": "http_x_ver"}


def test_model_names_with_dashes_get_numbered_nginx_variables():
    declaration = [{"name": "my-model", "source": "/m", "versions": [1]}]
    plan = make_plan(declaration)
    assert plan["models"][0]["version_var"] == "tfs_m0_version"
    assert route(plan, "/v1/models/my-model/versions/1:predict")[0] == "tfs_my-model_v1"


def test_drained_hosts_stay_listed_but_down():
    pool = make_plan(drained=["serving1"])["pools"][0]
    assert [(s["host"], s["down"]) for s in pool["servers"]] == [("serving1", True), ("serving2", False)]
    assert make_plan(drained=["serving1"])["problems"] == []


def test_draining_every_server_of_a_version_is_a_problem():
    problems = make_plan(drained=["serving1", "serving2"])["problems"]
    assert "half_plus version 1 would have no server left: every host serving it (serving1, serving2) is drained (gateway_drained_hosts)" \
        in problems
    assert len(problems) == 5


def test_a_model_whose_group_has_no_hosts_is_a_problem_not_an_empty_pool():
    declaration = [dict(DECLARATION[0], hosts="gpu")]
    plan = make_plan(declaration)
    assert plan["pools"] == []
    assert plan["problems"] == [
        "half_plus version %d is served by no host: inventory group 'gpu' has no hosts (tfserving_models[0].hosts)" % v
        for v in (1, 2)]


def test_grpc_listens_once_per_model_in_declaration_order():
    planned = make_plan(grpc_port_base=18090)
    assert [(g["name"], g["port"], g["topology"]) for g in planned["grpc"]] == [
        ("tfs_half_plus_grpc", 18090, "shared"), ("tfs_half_plus_iso_grpc", 18091, "isolated")]
    assert [(p["name"], [s["port"] for s in p["servers"]]) for p in planned["grpc_pools"]] == [
        ("tfs_half_plus_grpc", [18500, 18600]),
        ("tfs_half_plus_iso_v1_grpc", [18502, 18602]),
        ("tfs_half_plus_iso_v2_grpc", [18504, 18604]),
        ("tfs_half_plus_iso_v3_grpc", [18506, 18606]),
    ]
    assert make_plan()["grpc"] == make_plan()["grpc_pools"] == []


def test_grpc_of_an_isolated_model_maps_metadata_to_the_version():
    iso = make_plan(grpc_port_base=18090)["grpc"][1]
    # "version:label" as nginx sees the two metadata; nothing named: the unversioned route's version.
    assert iso["choices"] == [(":", "$tfs_m1_version"), ("1:", "1"), ("2:", "2"), ("3:", "3"), (":stable", "2")]
    assert (iso["pool_prefix"], iso["version_var"]) == ("tfs_half_plus_iso_v", "tfs_m1_grpc_version")


def test_a_models_grpc_port_stays_when_another_model_gains_a_version():
    before = make_plan(grpc_port_base=18090)["grpc"]
    declaration = [dict(DECLARATION[0], versions=[1, 2, 3]), DECLARATION[1]]
    after = make_plan(declaration, grpc_port_base=18090)["grpc"]
    assert [(g["model"], g["port"]) for g in after] == [(g["model"], g["port"]) for g in before]


def test_gateway_ports_must_differ():
    grpc = make_plan(grpc_port_base=8080)["grpc"]
    problems = gateway.gateway_port_problems({"http": 8080, "https": None, "status": 8081}, grpc, "gw")
    assert problems == [
        "gateway port 8080 on gw is claimed by http and gRPC of tfs_half_plus_grpc; give each listener its own port "
        "(see gateway_http_port, gateway_https_port, gateway_status_port, gateway_grpc_port_base)",
        "gateway port 8081 on gw is claimed by status and gRPC of tfs_half_plus_iso_grpc; give each listener its "
        "own port (see gateway_http_port, gateway_https_port, gateway_status_port, gateway_grpc_port_base)",
    ]
    assert gateway.gateway_port_problems({"http": 80, "status": 8081}, make_plan(grpc_port_base=8500)["grpc"]) == []


def test_filters_are_the_module_utils_functions():
    filters = FilterModule().filters()
    assert filters["gateway_port_problems"] is gateway.gateway_port_problems


def test_a_gateway_port_held_by_another_process_is_a_problem_but_nginx_itself_is_not():
    listeners = [{"port": 8080, "pid": 7, "name": "python3"}, {"port": 8081, "pid": 9, "name": "nginx"},
                 {"port": 9000, "pid": 0, "name": "unknown"}]
    problems = gateway.gateway_port_problems({"http": 8080, "status": 8081, "https": 9000}, [], "gw", listeners)
    assert problems == [
        "gateway port 8080 on gw (http) is already held by python3 (pid 7); free it or choose another port",
        "gateway port 9000 on gw (https) is already held by a process this host cannot name (another container or "
        "namespace); free it or choose another port",
    ]


def test_the_metrics_ports_may_be_held_by_their_own_exporters_and_only_by_them():
    ports = {"http": 8080, "status": 8081, "mtail": 3903, "nginx exporter": 9113}
    holders = {"mtail": ["mtail"], "nginx exporter": ["prometheus-nginx-exporter"]}
    # ss names a process by its first 15 characters; IPv4 and IPv6 entries of one port.
    own = [{"port": 8080, "pid": 2, "name": "nginx"}, {"port": 3903, "pid": 3, "name": "mtail"},
           {"port": 9113, "pid": 4, "name": "prometheus-ngin"}, {"port": 9113, "pid": 4, "name": "prometheus-ngin"}]
    assert gateway.gateway_port_problems(ports, [], "gw", own, holders=holders) == []
    swapped = [{"port": 3903, "pid": 2, "name": "nginx"}, {"port": 9113, "pid": 3, "name": "mtail"},
               {"port": 8081, "pid": 4, "name": "prometheus-ngin"}]
    assert gateway.gateway_port_problems(ports, [], "gw", swapped, holders=holders) == [
        "gateway port 3903 on gw (mtail) is already held by nginx (pid 2); free it or choose another port",
        "gateway port 9113 on gw (nginx exporter) is already held by mtail (pid 3); free it or choose another port",
        "gateway port 8081 on gw (status) is already held by prometheus-ngin (pid 4); free it or choose another port",
    ]


def test_a_metrics_port_that_collides_with_a_listener_is_a_problem():
    problems = gateway.gateway_port_problems({"http": 8080, "status": 8081, "mtail": 8081, "nginx exporter": None},
                                             [], "gw", holders={"mtail": ["mtail"]})
    assert problems == [
        "gateway port 8081 on gw is claimed by mtail and status; give each listener its own port (see "
        "gateway_http_port, gateway_https_port, gateway_status_port, gateway_grpc_port_base)",
    ]


def test_a_host_serving_another_declaration_is_pooled_by_what_it_serves():
    # serving1 is upgraded first and already serves version 3 too.
    upgraded = [dict(DECLARATION[0], versions=[1, 2, 3]), DECLARATION[1]]
    plan = make_plan(served={"serving1": upgraded})
    pools = dict((p["name"], [s["host"] for s in p["servers"]]) for p in plan["pools"])
    # Routes follow the declaration routed by (versions 1 and 2): no pool for version 3 yet.
    assert "tfs_half_plus_v3" not in pools
    assert pools["tfs_half_plus_v1"] == ["serving1", "serving2"]


def test_pools_drop_a_host_that_no_longer_serves_a_version():
    shrunk = [dict(DECLARATION[0], versions=[2], labels={"stable": 2, "canary": 2}, routes={}), DECLARATION[1]]
    plan = make_plan(served={"serving1": shrunk})
    pools = dict((p["name"], [s["host"] for s in p["servers"]]) for p in plan["pools"])
    assert pools["tfs_half_plus_v1"] == ["serving2"]
    assert pools["tfs_half_plus_v2"] == ["serving1", "serving2"]


def test_route_examples_expect_one_version_or_the_splits_versions():
    examples = gateway.route_examples(make_plan())
    by_path = dict((e["path"], e["versions"]) for e in examples)
    assert by_path == {
        "/v1/models/half_plus/versions/1": [1], "/v1/models/half_plus/versions/2": [2],
        "/v1/models/half_plus/labels/canary": [2], "/v1/models/half_plus/labels/stable": [1],
        "/v1/models/half_plus_v1": [1], "/v1/models/half_plus_v2": [2], "/v1/models/half_plus": [1, 2],
        "/v1/models/half_plus_iso/versions/1": [1], "/v1/models/half_plus_iso/versions/2": [2],
        "/v1/models/half_plus_iso/versions/3": [3], "/v1/models/half_plus_iso/labels/stable": [2],
        "/v1/models/half_plus_iso": [2],
    }
    # Every example is routed to a pool that serves one of its versions.
    for example in examples:
        upstream = route(make_plan(), example["path"] + "/metadata", "%d" % example["versions"][0])[0]
        assert upstream.endswith("_v%d" % example["versions"][0])


def test_route_results_judge_the_version_that_answered():
    answers = [
        {"item": {"path": "/v1/models/m/labels/stable", "versions": [1]}, "status": 200,
         "json": {"model_spec": {"name": "m", "version": "1"}}},
        {"item": {"path": "/v1/models/m", "versions": [1, 2]}, "status": 200, "json": {"model_spec": {"version": "3"}}},
        {"item": {"path": "/v1/models/m_v2", "versions": [2]}, "status": 502, "json": None},
    ]
    rows = gateway.route_results(answers)
    assert [(r["answered"], r["ok"]) for r in rows] == [(1, True), (3, False), (None, False)]
    assert rows[0]["line"] == "/v1/models/m/labels/stable               -> version 1 (declared 1)"
    assert rows[1]["line"].endswith("-> version 3 (declared 1 or 2)  ! WRONG")
    assert rows[2]["line"].endswith("-> HTTP 502  (declared 2)  ! WRONG")


def test_the_unversioned_grpc_route_of_a_shared_model_says_which_setting_declares_it():
    accepted = make_plan(grpc_port_base=18010)
    newest = [dict(DECLARATION[0], labels={"stable": 2}, routes={})]
    table = dict(("accepted", r) for r in gateway.route_table(accepted, "http://gw", "gw")
                 if r["protocol"] == "grpc" and r["model_spec"] == {"name": "half_plus"})
    table.update(("newest", r) for r in gateway.route_table(make_plan(newest, grpc_port_base=18010), "http://gw", "gw")
                 if r["protocol"] == "grpc" and r["model_spec"] == {"name": "half_plus"})
    assert (table["accepted"]["version"], table["accepted"]["declared_by"]) == (2, "routes.grpc_unversioned: newest")
    assert (table["newest"]["version"], table["newest"]["declared_by"]) == (2, "routes.default")
    rows = gateway.grpc_route_results([{"item": table["accepted"], "code": "OK", "model_spec": {"version": 2}},
                                       {"item": table["accepted"], "code": "OK", "model_spec": {"version": 1}}])
    assert rows[0]["line"].endswith('-> version 2 (declared 2 by routes.grpc_unversioned: newest)')
    assert rows[1]["line"].endswith('-> version 1 (declared 2 by routes.grpc_unversioned: newest)  ! WRONG')
