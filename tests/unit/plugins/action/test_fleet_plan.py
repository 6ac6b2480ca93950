"""mlserve.tfserving.fleet_plan: the plan every role and playbook consumes, built once."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.mlserve.tfserving.plugins.action import fleet_plan
from ansible_collections.mlserve.tfserving.plugins.module_utils import firewall, fleet, gateway, plan, serving_host

from ...conftest import FIXTURES, REPO

ROLE_DEFAULTS = fleet_plan.role_defaults()
GROUPS = ["all", "ungrouped", "tfserving", "gateway"]


def declaration(source=os.path.join(FIXTURES, "half_plus")):
    return [
        {"name": "half_plus", "source": source, "versions": [1, 2], "labels": {"stable": 1, "canary": 2},
         "routes": {"split": {"stable": 80, "canary": 20}, "grpc_unversioned": "newest"}},
        {"name": "half_plus_iso", "source": source, "versions": [1, 2, 3], "topology": "isolated",
         "labels": {"stable": 2}},
    ]


def hosts(*specs):
    """host_inputs of inventory hosts given as (name, groups, variables).

    A gateway gets an address unless the test gives one: the serving hosts'
    firewall, on by default, lets gateways in by address.
    """
    return [plan.host_inputs(name, dict({"ansible_host": "192.0.2.10"} if "gateway" in groups else {},
                                        group_names=groups, **variables), ROLE_DEFAULTS)
            for name, groups, variables in specs]


LAB = hosts(("s1", ["tfserving"], {"tfserving_port_base": 18500}), ("s2", ["tfserving"], {"tfserving_port_base": 18600}),
            ("gw", ["gateway"], {"gateway_http_port": 18080, "gateway_status_port": 18081}))


def build(decl=None, inventory=None, **options):
    inventory = LAB if inventory is None else inventory
    options.setdefault("gateway_hosts", [h["name"] for h in inventory if "gateway" in h["groups"]])
    return plan.build_plan(declaration() if decl is None else decl, inventory, GROUPS, options,
                           read_source=fleet_plan.source_reader(None))


def test_role_defaults_come_from_the_roles_own_defaults_files():
    assert ROLE_DEFAULTS["serving_image"] == "tensorflow/serving:2.19.0"
    assert ROLE_DEFAULTS["serving_config_dir"] == "/etc/tfserving"
    assert ROLE_DEFAULTS["serving_user"] == "65534:65534" and ROLE_DEFAULTS["serving_pids_limit"] == 4096
    assert ROLE_DEFAULTS["gateway_grpc_port_base"] == 8500
    assert ROLE_DEFAULTS["tfserving_port_base"] == 8500
    assert ROLE_DEFAULTS["tfserving_models_root"] == "/srv/tfserving/models"


def test_each_serving_host_gets_its_units_models_and_config_dirs():
    built = build()
    assert built["problems"] == []
    assert sorted(built["hosts"]) == ["s1", "s2"]
    units = built["profiles"][built["hosts"]["s2"]["profile"]]["units"]
    assert [(u["name"], u["grpc_port"], u["rest_port"]) for u in units] == [
        ("tfserving-half_plus", 18600, 18601), ("tfserving-half_plus_iso-v1", 18602, 18603),
        ("tfserving-half_plus_iso-v2", 18604, 18605), ("tfserving-half_plus_iso-v3", 18606, 18607)]
    assert units[0]["config_dir"] == "/etc/tfserving/tfserving-half_plus"
    assert units[0]["image"] == "tensorflow/serving:2.19.0"
    models = built["profiles"][built["hosts"]["s2"]["profile"]]["models"]
    assert [m["host_path"] for m in models] == ["/srv/tfserving/models/half_plus", "/srv/tfserving/models/half_plus_iso"]


def test_hosts_with_the_same_inputs_share_one_profile():
    inventory = hosts(*[("s%d" % i, ["tfserving"], {"tfserving_address": "192.0.2.%d" % i}) for i in range(50)])
    built = build(inventory=inventory, gateway_hosts=[])
    assert len(built["hosts"]) == 50
    assert len(built["profiles"]) == 1


def test_sources_are_read_once_with_their_directories_and_checksums():
    built = build()
    assert [v["version"] for v in built["sources"]["half_plus_iso"]] == [1, 2, 3]
    assert all(len(v["checksum"]) == 64 for v in built["sources"]["half_plus"])
    # A later plan of the run reuses them and reads only what they lack.
    read = []
    again = plan.build_plan(declaration(), LAB, GROUPS, {"gateway_hosts": ["gw"]},
                            read_source=lambda m: read.append(m["name"]) or [], sources=built["sources"])
    assert read == [] and again["sources"] == built["sources"]
    wider = [dict(declaration()[0], versions=[1, 2, 3]), declaration()[1]]
    plan.build_plan(wider, LAB, GROUPS, {}, read_source=lambda m: read.append(m["name"]) or [],
                    sources=built["sources"])
    assert read == ["half_plus"]


def _disk_bytes(model, version):
    return fleet_plan.source_reader(None)({"source": os.path.join(FIXTURES, model), "versions": [version],
                                           "signature": "serving_default"})[0]["total_bytes"]


def test_the_controller_cache_spares_unchanged_files_between_runs_and_full_reads_them_all(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = fleet_plan.ChecksumCache.default_path()
    assert path == str(tmp_path / "cache" / "mlserve-tfserving" / "checksums.json")
    source = tmp_path / "half_plus"
    shutil.copytree(os.path.join(FIXTURES, "half_plus"), str(source))
    model = {"source": str(source), "versions": [1], "signature": "serving_default"}

    def read(full=False):
        cache = fleet_plan.ChecksumCache(path, full=full)
        checksum = fleet_plan.source_reader(cache)(model)[0]["checksum"]
        cache.save()
        return checksum

    first = read()
    assert list(json.load(open(path))) == [str(source / "1")]
    # A byte changed with the file's size, mtime and inode kept: the write moved its ctime, so it is read again.
    pb = source / "1" / "saved_model.pb"
    before = os.stat(str(pb))
    data = bytearray(pb.read_bytes())
    data[-1] ^= 1
    with open(str(pb), "r+b") as f:
        f.write(bytes(data))
    os.utime(str(pb), ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(str(pb)).st_ino == before.st_ino
    changed = read()
    assert changed != first
    # Only a full read sees bytes that changed under an unchanged stat (a failing disk; here the cache says so).
    cache = json.load(open(path))
    cache[str(source / "1")]["saved_model.pb"][-1] = "0" * 64
    with open(path, "w") as f:
        json.dump(cache, f)
    assert read() != changed
    assert read(full=True) == changed
    # The full read rewrote the cache; a byte changed back with a new mtime is read again.
    assert read() == changed
    data[-1] ^= 1
    with open(str(pb), "r+b") as f:
        f.write(bytes(data))
    os.utime(str(pb), ns=(1, 1))
    assert read() == first
    # Versions gone from the disk leave the cache when it is next written.
    shutil.rmtree(str(source))
    other = tmp_path / "other"
    shutil.copytree(os.path.join(FIXTURES, "half_plus"), str(other))
    model["source"] = str(other)
    read()
    assert list(json.load(open(path))) == [str(other / "1")]


def test_an_unreadable_controller_cache_means_reading_the_files(tmp_path):
    (tmp_path / "checksums.json").write_text("[not a cache")
    cache = fleet_plan.ChecksumCache(str(tmp_path / "checksums.json"))
    assert cache.entries == {} and cache.get(FIXTURES) is None


def test_versions_loaded_at_once_must_fit_the_memory_limit_by_tf_servings_estimate():
    one, two = _disk_bytes("half_plus", 1), _disk_bytes("half_plus", 2)
    need = int((one + two) * 1.2)  # TF Serving: 1.2 x the files' bytes on disk
    decl = declaration()
    decl[0]["resources"] = {"memory": "%db" % need}
    assert build(decl)["problems"] == []
    decl[0]["resources"] = {"memory": "%db" % (need - 1)}
    assert build(decl)["problems"] == [
        "tfserving-half_plus: versions 1, 2 of half_plus, loaded at once, need about %.1f KiB of RAM by TF Serving's "
        "estimate (1.2 x their %.1f KiB on disk), above resources.memory %db; raise resources.memory, or serve fewer "
        "versions in one container (topology: isolated) (on s1, s2)" % (need / 1024.0, (one + two) / 1024.0, need - 1)]
    # Isolated: each container loads one version; a per-version override is its own limit.
    decl = declaration()
    decl[1]["resources"] = {"memory": "1k"}
    decl[1]["overrides"] = {3: {"resources": {"memory": "1m"}}}
    problems = build(decl)["problems"]
    assert [p.split(":")[0] for p in problems] == ["tfserving-half_plus_iso-v1", "tfserving-half_plus_iso-v2"]
    assert problems[0].startswith("tfserving-half_plus_iso-v1: version 1 of half_plus_iso, loaded at once, need "
                                  "about %.1f KiB" % (int(one * 1.2) / 1024.0))
    assert problems[0].endswith("above resources.memory 1k; raise resources.memory, or serve fewer versions in one "
                                "container (topology: isolated) (on s1, s2)")
    # Without reading the sources there is nothing to estimate from.
    assert plan.build_plan(decl, LAB, GROUPS, {"gateway_hosts": ["gw"]})["problems"] == []


def test_the_checked_signature_is_the_declared_one():
    """Versions must share serving_default unless the model names another (TF Serving's counter has none)."""
    model = {"name": "two", "source": os.path.join(FIXTURES, "tf1_half_plus_two"), "versions": [1, 2]}
    assert build([model])["problems"] == []
    problems = build([dict(model, signature="get_counter")])["problems"]
    assert problems == ["tfserving_models[0].source: %s/tf1_half_plus_two: version 1 (1): signature 'get_counter' is "
                        "missing (found: classify_x2_to_y3, classify_x_to_y, regress_x2_to_y3, regress_x_to_y, "
                        "regress_x_to_y2, serving_default)" % FIXTURES]
    assert build([dict(model, signature="classify_x_to_y")])["problems"] == []
    assert build([dict(model, signature="")])["problems"] == [
        "tfserving_models[0].signature: '' is not a signature name; name the signature every version has (default "
        "serving_default; TF Serving's counter model, for one, has get_counter)"]


def test_every_problem_at_once_each_naming_where():
    decl = declaration("/nonexistent/half_plus")
    decl[0]["labels"]["stable"] = 7
    problems = build(decl)["problems"]
    assert "tfserving_models[0].labels.stable: 7 is not a declared version of half_plus (declared: 1, 2)" in problems
    # Declaration problems stop the derivation; fixed, the source problems show.
    problems = build(declaration("/nonexistent/half_plus"))["problems"]
    assert problems == ["tfserving_models[0].source: model base path /nonexistent/half_plus is not a directory",
                        "tfserving_models[1].source: model base path /nonexistent/half_plus is not a directory"]


def test_port_conflicts_name_every_host_that_has_them():
    decl = declaration()
    decl[0]["rest_port"] = 30001
    decl[1]["overrides"] = {2: {"grpc_port": 30001}}
    problems = build(decl)["problems"]
    assert any(p.startswith("port 30001 on s1 is claimed by tfserving-half_plus (REST) and "
                            "tfserving-half_plus_iso-v2 (gRPC)") for p in problems), problems


def test_host_variables_are_checked_for_every_host():
    inventory = hosts(("s1", ["tfserving"], {"tfserving_port_base": "abc", "serving_flags": {"prot": 1}}),
                      ("gw", ["gateway"], {"gateway_tls_certificate": "/etc/ssl/gw.pem"}))
    problems = build(inventory=inventory)["problems"]
    assert any(p.startswith("serving_flags.prot: not a tensorflow_model_server flag") and p.endswith("(on s1)")
               for p in problems), problems


def test_gateway_problems_are_in_the_plan():
    inventory = LAB[:2] + hosts(("gw", ["gateway"], {"gateway_tls_certificate": "/etc/ssl/gw.pem",
                                                     "gateway_http_port": 9000, "gateway_status_port": 9000}))
    problems = build(inventory=inventory, drained=["s1", "s2", "nohost"])["problems"]
    assert "gateway_drained_hosts: 'nohost' is not a host of this inventory" in problems
    built = build(inventory=inventory, drained=["s1", "s2"])
    assert ("half_plus version 1 would have no server left: every host serving it (s1, s2) is drained (gateway_drained_hosts)"
            in built["problems"])
    assert ('gateway_tls_certificate ("/etc/ssl/gw.pem") and gateway_tls_certificate_key ("") must be set '
            'together (TLS on) or both left empty (TLS off) (on gw)') in built["problems"]
    assert any(p.startswith("gateway port 9000 on gw is claimed by http and status") for p in built["problems"])


def test_a_plan_is_reused_only_for_its_own_inputs():
    built = build()
    options = {"drained": [], "served": {}}
    assert plan.reusable(built, declaration(), options, LAB[0], True)
    assert not plan.reusable(built, declaration()[:1], options, LAB[0], True)
    assert not plan.reusable(built, declaration(), {"drained": ["s1"]}, LAB[0], False)
    changed_host = plan.host_inputs("s1", {"group_names": ["tfserving"], "tfserving_port_base": 18900}, ROLE_DEFAULTS)
    assert not plan.reusable(built, declaration(), options, changed_host, False)
    no_sources = dict(built, sources={})
    assert plan.reusable(no_sources, declaration(), options, LAB[0], False)
    assert not plan.reusable(no_sources, declaration(), options, LAB[0], True)


def test_zero_padded_source_directories_sync_to_their_canonical_number(tmp_path):
    source = tmp_path / "half_plus"
    source.mkdir()
    shutil.copytree(os.path.join(FIXTURES, "half_plus", "1"), str(source / "00000001"))
    shutil.copytree(os.path.join(FIXTURES, "half_plus", "2"), str(source / "2"))
    decl = [dict(declaration(str(source))[0])]
    built = build(decl)
    assert built["problems"] == []
    models = built["profiles"][built["hosts"]["s1"]["profile"]]["models"]
    sync = plan.fleet.sync_plan(models, built["sources"], [{"versions": []}])
    assert [(c["src"], c["version"]) for c in sync["to_copy"]] == [
        ("%s/00000001/" % source, 1), ("%s/2/" % source, 2)]


def run_action(tmp_path, inventory):
    """ansible-playbook running the action once over a real inventory: (return code, output, plan)."""
    (tmp_path / "hosts.yml").write_text(json.dumps(inventory))
    out = tmp_path / "plan.json"
    (tmp_path / "plan.yml").write_text(json.dumps([{
        "hosts": "all", "gather_facts": False,
        "tasks": [{"mlserve.tfserving.fleet_plan": None, "register": "planned", "run_once": True},
                  {"ansible.builtin.copy": {"content": "{{ planned.plan | to_json }}", "dest": str(out)},
                   "run_once": True, "delegate_to": "localhost"}]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    run = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
                          str(tmp_path / "hosts.yml"), str(tmp_path / "plan.yml")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    return run.returncode, run.stdout + run.stderr, json.loads(out.read_text()) if out.exists() else None


def test_the_action_plans_a_real_inventory_once(tmp_path):
    """Templated host variables, role defaults, one plan for every host."""
    rc, output, built = run_action(tmp_path, {"all": {
        "vars": {"ansible_connection": "local", "tfserving_models": declaration(),
                 "port_bases": {"s1": 18500, "s2": 18600}},
        "children": {"tfserving": {"hosts": {"s1": {"tfserving_port_base": "{{ port_bases[inventory_hostname] }}"},
                                             "s2": {"tfserving_port_base": "{{ port_bases[inventory_hostname] }}"}}},
                     "gateway": {"hosts": {"gw": {"gateway_http_port": 18080, "ansible_host": "192.0.2.10"}}}}}})
    assert rc == 0, output
    units = built["profiles"][built["hosts"]["s2"]["profile"]]["units"]
    assert units[0]["rest_port"] == 18601
    assert sorted(built["gateways"]) == ["gw"]
    assert [p["name"] for p in built["gateways"]["gw"]["pools"]][:2] == ["tfs_half_plus_v1", "tfs_half_plus_v2"]
    # Where clients reach it, with the gateway role's own defaults (every address, the Authorization header).
    assert built["gateways"]["gw"]["client"] == {"address": "192.0.2.10", "url": "http://192.0.2.10:18080",
                                                 "key_header": "Authorization"}
    # The role's default error log is Debian's nginx rule's to rotate.
    assert built["gateways"]["gw"]["rotate"] == {"error_log": None}


def test_a_declaration_only_some_hosts_read_is_refused(tmp_path):
    rc, output, _ = run_action(tmp_path, {"all": {
        "vars": {"ansible_connection": "local"},
        "children": {"tfserving": {"vars": {"tfserving_models": declaration()}, "hosts": {"s1": {}}},
                     "gateway": {"hosts": {"gw": {}}}}}})
    assert rc != 0
    assert ("tfserving_models is not set on gw (it is on s1): declare the fleet once, in group_vars/all"
            in " ".join(output.split())), output


@pytest.mark.parametrize("override", [
    # Plain data of its own on one host.
    {"tfserving_models": declaration()[:1]},
    # The same template on every host, reading a variable that differs on one.
    {"first_only": True},
], ids=["plain", "templated"])
def test_a_host_that_reads_another_declaration_is_refused(tmp_path, override):
    templated = "{{ models[:1] if first_only | default(false) else models }}"
    shared = {"tfserving_models": declaration()} if "tfserving_models" in override else {
        "models": declaration(), "tfserving_models": templated}
    rc, output, _ = run_action(tmp_path, {"all": {
        "vars": dict(shared, ansible_connection="local"),
        "children": {"tfserving": {"hosts": {"s1": {}, "s2": override}}, "gateway": {"hosts": {"gw": {}}}}}})
    assert rc != 0
    assert "tfserving_models on s2 differs from the one on s1" in " ".join(output.split()), output


def test_only_a_template_makes_a_declaration_read_differently_on_another_host():
    assert plan.is_plain(declaration()) and plan.is_plain([{"name": "a", "versions": [1], "labels": {"s": 1}}])
    for marked in ("{{ models }}", "a {% if x %}b{% endif %}", "{# note #}"):
        assert not plan.is_plain([{"name": "a", "source": marked}])
        assert not plan.is_plain({marked: 1})


def test_the_action_returns_server_lines_as_nginx_text_and_only_the_parts_asked_for():
    built = build(drained=["s1"])
    compact = plan.for_ansible(built)
    routing = compact["gateways"]["gw"]
    assert "servers" not in routing["pools"][0]
    lines = routing["upstreams"].splitlines()
    assert lines[:4] == ["upstream tfs_half_plus_v1 {",
                         "    server s1:18501 max_fails=2 fail_timeout=10s down;  # s1",
                         "    server s2:18601 max_fails=2 fail_timeout=10s;  # s2",
                         "    keepalive 32;"]
    # One upstream per REST pool and per gRPC listener.
    assert sum(line.startswith("upstream ") for line in lines) == len(routing["pools"]) + len(routing["grpc_pools"])
    # A plan the action returned before passes through unchanged.
    assert plan.for_ansible(compact) == compact
    assert sorted(plan.for_ansible(built, ["hosts", "profiles"])) == ["hosts", "problems", "profiles"]


def with_model(index, **changes):
    decl = declaration()
    decl[index] = dict(decl[index], **changes)
    return decl


ISO_THOUSANDS = [dict(declaration()[1], versions=list(range(1, 29001)))]


def test_poll_and_wait_given_on_the_command_line_are_numbers():
    """-e serving_wait_timeout=120 arrives as a string, which the role's int type takes."""
    inventory = LAB[:1] + hosts(("s2", ["tfserving"], {"tfserving_port_base": 18600, "serving_wait_timeout": "120",
                                                        "serving_config_poll_seconds": "2"}))
    assert plan.timing_problems("2", "120") == []
    assert not [p for p in build(inventory=inventory)["problems"] if "serving_" in p]


@pytest.mark.parametrize("decl, inventory, message", [
    # Names are whole strings: a trailing newline would reach routes.conf and models.config.
    (with_model(0, name="half_plus\n"), None, "tfserving_models[0].name: 'half_plus\\n' is not a valid model name"),
    (with_model(0, labels={"stable\n": 1}), None, "tfserving_models[0].labels: 'stable\\n' is not a valid label name"),
    (with_model(0, routes={"aliases": {"hp_v1\n": 1}}), None,
     "tfserving_models[0].routes.aliases.hp_v1\n: 'hp_v1\\n' is not a valid alias name"),
    # An integer is not a float or a bool.
    (with_model(0, labels={"stable": 1.0, "canary": 2}), None,
     "tfserving_models[0].labels.stable: 1.0 is not a version number; use one of the declared versions of "
     "half_plus (1, 2) as an integer"),
    (with_model(0, labels={"stable": True, "canary": 2}), None, "tfserving_models[0].labels.stable: True is not a version"),
    (with_model(0, routes={"default": 2.0}), None, "tfserving_models[0].routes.default: 2.0 is neither a label"),
    (with_model(0, routes={"default": True}), None, "tfserving_models[0].routes.default: True is neither a label"),
    (with_model(0, routes={"aliases": {"hp_v1": 1.0}}), None,
     "tfserving_models[0].routes.aliases.hp_v1: 1.0 is not a version number"),
    (with_model(1, overrides={"\u00b2": {}}), None, "tfserving_models[1].overrides.\u00b2: '\u00b2' is not a declared version"),
    # Image references.
    (with_model(0, image="Tensorflow/Serving:2.19 0"), None,
     "tfserving_models[0].image: 'Tensorflow/Serving:2.19 0' is not an image reference"),
    (None, hosts(("s1", ["tfserving"], {"serving_image": "tensorflow/serving:2.19 tag"})),
     "serving_image: 'tensorflow/serving:2.19 tag' is not an image reference; use [registry/]name[:tag] in lower "
     "case, such as tensorflow/serving:2.19.0 (on s1)"),
    # Container hardening: refused at the plan, before any host changes.
    (None, hosts(("s1", ["tfserving"], {"serving_user": "nobody"})),
     "serving_user: 'nobody' is not a numeric uid:gid; use e.g. \"65534:65534\" (nobody), or \"\" for the image's "
     "own user (on s1)"),
    (None, hosts(("s1", ["tfserving"], {"serving_pids_limit": -1, "serving_cap_drop": ["ALL", "NET_RAWW"]})),
     "serving_cap_drop: 'NET_RAWW' is not a Linux capability; use ALL or names such as NET_RAW (on s1)"),
    (None, hosts(("s1", ["tfserving"], {"serving_read_only": "no"})), "serving_read_only: 'no' is not true or false"),
    (None, hosts(("s1", ["tfserving"], {"serving_tmpfs": {"/tmp": "size=64m,exec=1"}})),
     "serving_tmpfs: /tmp has options Docker's tmpfs does not take: exec=1"),
    # Ports, as set and as derived.
    (None, hosts(("s1", ["tfserving"], {"tfserving_port_base": 0})),
     "tfserving_port_base: 0 is not a port; use an integer from 1 to 65535 (on s1)"),
    (None, hosts(("s1", ["tfserving"], {"tfserving_port_base": -5})), "tfserving_port_base: -5 is not a port"),
    (None, hosts(("s1", ["tfserving"], {"tfserving_port_base": "abc"})), "tfserving_port_base: 'abc' is not a port"),
    (None, hosts(("s1", ["tfserving"], {"tfserving_port_base": 65530})),
     "tfserving-half_plus_iso-v3 on s1 gets port 65536, past 65535; lower tfserving_port_base or pin its ports"),
    (ISO_THOUSANDS, hosts(("s1", ["tfserving"], {"tfserving_port_base": 8500})), "past 65535"),
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_http_port": 70000})),
     "gateway_http_port: 70000 is not a port; use an integer from 1 to 65535 (on gw)"),
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_grpc_port_base": 65535})),
     "is not a port from 1 to 65535; lower gateway_grpc_port_base"),
    # Client access at the gateway; a key is never quoted.
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_api_keys": [{"name": "team a", "key": "0123456789abcdef"}]})),
     "gateway_api_keys[0].name: 'team a' is not a client name; use 1 to 64 of A-Z a-z 0-9 _ . - (on gw)"),
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_api_keys": [{"name": "a", "key": "s3cret"}]})),
     "gateway_api_keys[0].key (of a): is not a usable key; use 16 to 512 of A-Z a-z 0-9 . _ ~ + / = -, not starting "
     "with ~ (the value is not shown) (on gw)"),
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_api_keys": [{"name": "a", "key": "~" * 16}]})),
     "gateway_api_keys[0].key (of a): is not a usable key"),
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_api_keys": [{"name": "a", "key": "0123456789abcdef"},
                                                                     {"name": "b", "key": "0123456789ABCDEF"}]})),
     "gateway_api_keys[1].key (of b): is the key of another entry (keys are compared without regard to case); give "
     "each client its own key (on gw)"),
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_api_keys": [{"name": "a", "key": "0123456789abcdef"},
                                                                     {"name": "A", "key": "fedcba9876543210"}]})),
     "gateway_api_keys[1].name: 'A' names two entries (names are compared without regard to case)"),
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_api_keys": [{"name": "a", "key": "0123456789abcdef",
                                                                      "models": ["resnet"]}]})),
     "gateway_api_keys[0].models: 'resnet' is not a model of tfserving_models (half_plus, half_plus_iso) (on gw)"),
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_pin_version_header": "X Version"})),
     "gateway_pin_version_header: 'X Version' is not an HTTP header name; use 1 to 64 of A-Z a-z 0-9 - (on gw)"),
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_pin_version_header": "x-model-label"})),
     "gateway_pin_version_header: 'x-model-label' is already gateway_pin_header; give each its own header (on gw)"),
    # The server must re-read models.config, and a label move must fit in the wait.
    (None, LAB[:1] + hosts(("s2", ["tfserving"], {"tfserving_port_base": 18600, "serving_config_poll_seconds": 0})),
     "serving_config_poll_seconds: 0 is not a number of seconds (1 or more); with 0 the server reads models.config "
     "once, and no version or label change reaches it without a restart (on s2)"),
    (None, LAB[:1] + hosts(("s2", ["tfserving"], {"tfserving_port_base": 18600, "serving_wait_timeout": 10})),
     "serving_wait_timeout: 10 is not more than two polls of serving_config_poll_seconds (5 s each), which a label "
     "move waits for; give it more than 10 (on s2)"),
    (None, LAB[:1] + hosts(("s2", ["tfserving"], {"tfserving_port_base": 18600,
                                                   "serving_flags": {"model_config_file_poll_wait_seconds": 30}})),
     "serving_flags.model_config_file_poll_wait_seconds: set by the collection from serving_config_poll_seconds "
     "(this value would be ignored); set that instead (on s2)"),
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_pin_cookie": "model-label"})),
     "gateway_pin_cookie: 'model-label' is not a cookie name nginx can read; use 1 to 64 of A-Z a-z 0-9 _ (on gw)"),
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_client_rate": "100/s"})),
     "gateway_client_rate: '100/s' is not a rate; use requests per second or minute such as '20r/s' or '600r/m', or "
     "'' for no limit (on gw)"),
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_model_burst": -1})),
     "gateway_model_burst: -1 is not a number of requests (0 or more) (on gw)"),
    # The access log's rotation, as logrotate reads it.
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_access_log_rotate_period": "nightly"})),
     "gateway_access_log_rotate_period: 'nightly' is not a period; use one of hourly, daily, weekly, monthly, yearly "
     "(on gw)"),
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_access_log_rotate_size": "100MB"})),
     "gateway_access_log_rotate_size: '100MB' is not a size; use bytes, or a number with k, M or G such as '100M' "
     "(on gw)"),
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_access_log_rotate_size": 100})),
     "gateway_access_log_rotate_size: 100 is not a size"),
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_access_log_rotate_keep": 0})),
     "gateway_access_log_rotate_keep: 0 is not a number of rotated files (1 or more) (on gw)"),
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_access_log": "/var/log/nginx/tfserving.log"})),
     "gateway_access_log: '/var/log/nginx/tfserving.log' is also in Debian's nginx logrotate rule "
     "(/var/log/nginx/*.log), which logrotate would then skip; use a name not ending in .log (the default is "
     "/var/log/nginx/tfserving-access.json) or another directory (on gw)"),
    # Two serving hosts at one address and port.
    (None, hosts(("s1", ["tfserving"], {"tfserving_address": "127.0.0.1", "tfserving_port_base": 18500}),
                 ("s2", ["tfserving"], {"tfserving_address": "127.0.0.1", "tfserving_port_base": 18500})),
     "s1 and s2 both answer at 127.0.0.1:18500 (tfserving-half_plus, tfserving-half_plus); give each serving host "
     "its own tfserving_address or tfserving_port_base"),
    # One host in both groups: the gateway on a serving port; two gateway listeners on one port.
    (None, hosts(("s1", ["tfserving", "gateway"], {"tfserving_port_base": 18500, "gateway_http_port": 18501,
                                                    "gateway_status_port": 18081, "gateway_grpc_port_base": None})),
     "gateway port 18501 on s1 is claimed by tfserving-half_plus (REST) and http"),
    (None, hosts(("s1", ["tfserving", "gateway"], {"tfserving_port_base": 18500, "gateway_http_port": 18080,
                                                    "gateway_status_port": 18081, "gateway_grpc_port_base": 18502})),
     "gateway port 18502 on s1 is claimed by tfserving-half_plus_iso-v1 (gRPC) and gRPC of tfs_half_plus_grpc"),
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_http_port": 9000, "gateway_status_port": 9000})),
     "gateway port 9000 on gw is claimed by http and status"),
    # Client certificates need TLS on every listener.
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_tls_client_ca": "/etc/ssl/clients.pem"})),
     'gateway_tls_client_ca ("/etc/ssl/clients.pem") needs TLS: set gateway_tls_certificate and '
     'gateway_tls_certificate_key, or leave gateway_tls_client_ca empty (on gw)'),
    (None, LAB[:2] + hosts(("gw", ["gateway"], {"gateway_tls_client_ca": "/etc/ssl/clients.pem",
                                                "gateway_tls_certificate": "/etc/ssl/gw.pem",
                                                "gateway_tls_certificate_key": "/etc/ssl/gw.key",
                                                "gateway_grpc_plaintext": True})),
     'gateway_tls_client_ca ("/etc/ssl/clients.pem") and gateway_grpc_plaintext: true exclude each other: a '
     'plaintext gRPC listener cannot ask for a client certificate; set gateway_grpc_plaintext: false, or leave '
     'gateway_tls_client_ca empty (on gw)'),
    # Generated names.
    ([dict(declaration()[1], name="ranker", versions=[1], labels={}),
      dict(declaration()[0], name="ranker_v1", labels={}, routes={})], None,
     "upstream tfs_ranker_v1_grpc would serve both ranker version 1 and ranker_v1; rename one of the models"),
    ([dict(declaration()[1], name="a", versions=[1], labels={}), dict(declaration()[0], name="a-v1", labels={},
                                                                      routes={})], None,
     "container tfserving-a-v1 on s1 would run both version 1 of a and model a-v1; rename one of the models"),
    # Server flags, per host, per model and per isolated version: names and the server's types.
    (with_model(0, flags={"rest_api_num_thread": 4}), None,
     "tfserving_models[0].flags.rest_api_num_thread: not a tensorflow_model_server flag this collection renders"),
    (with_model(0, flags={"tensorflow_intra_op_parallelism": "4"}), None,
     "tfserving_models[0].flags.tensorflow_intra_op_parallelism: '4' is not valid; use an integer from 0 to "
     "9223372036854775807 (the server's int64)"),
    (with_model(0, flags={"enable_model_warmup": "yes"}), None,
     "tfserving_models[0].flags.enable_model_warmup: 'yes' is not true or false"),
    (with_model(1, overrides={2: {"flags": {"rest_api_num_threads": 1.5}}}), None,
     "tfserving_models[1].overrides.2.flags.rest_api_num_threads: 1.5 is not valid; use an integer from 0 to "
     "2147483647 (the server's int32)"),
    (None, hosts(("s1", ["tfserving"], {"serving_flags": {"grpc_max_threads": -1}})),
     "serving_flags.grpc_max_threads: -1 is not valid; use an integer from 0 to 2147483647 (the server's int32) "
     "(on s1)"),
    (None, hosts(("s1", ["tfserving"], {"serving_flags": {"saved_model_tags": ["serve"]}})),
     "serving_flags.saved_model_tags: ['serve'] is not a string (on s1)"),
    # What the server refuses at start, from the host's and the model's flags together.
    (with_model(0, flags={"tensorflow_intra_op_parallelism": 2, "tensorflow_inter_op_parallelism": 2}),
     hosts(("s1", ["tfserving"], {"serving_flags": {"tensorflow_session_parallelism": 2}})),
     "tfserving-half_plus: tensorflow_session_parallelism with tensorflow_intra_op_parallelism and "
     "tensorflow_inter_op_parallelism: the server refuses to start (Either configure "
     "server_options.tensorflow_session_parallelism or (server_options.tensorflow_intra_op_parallelism, "
     "server_options.tensorflow_inter_op_parallelism) separately. You cannot configure all.); set "
     "tensorflow_session_parallelism or the other two (on s1)"),
    (with_model(1, overrides={3: {"flags": {"batching_parameters_file": "/etc/tfserving/batching.config"}}}), None,
     "tfserving_models[1].overrides.3.flags.batching_parameters_file: set by the collection from the batching "
     "parameters; declare them in serving_batching or a model's batching instead"),
    # Batching parameters: TF Serving's fields, and what the server would refuse at start or at each load.
    (with_model(0, batching={"max_batch": 8}), None,
     "tfserving_models[0].batching.max_batch: not a field of TF Serving's BatchingParameters; valid: "
     "allowed_batch_sizes, batch_timeout_micros,"),
    (with_model(1, overrides={2: {"batching": {"max_batch_size": 8, "allowed_batch_sizes": [8, 4]}}}), None,
     "tfserving_models[1].overrides.2.batching.allowed_batch_sizes: [8, 4] must be increasing"),
    (None, hosts(("s1", ["tfserving"], {"serving_batching": {"batch_timeout_micros": -1}})),
     "serving_batching.batch_timeout_micros: -1 is not valid; use an integer from 0 (on s1)"),
    (None, hosts(("s1", ["tfserving"], {"serving_batching": ["max_batch_size", 8]})),
     "serving_batching: ['max_batch_size', 8] must map BatchingParameters fields to values ({} turns batching off) "
     "(on s1)"),
    (with_model(0, flags={"enable_batching": True}), None,
     "tfserving_models[0].flags.enable_batching: set by the collection from the batching parameters"),
    # GPUs: a form docker run --gpus takes, on GPU hosts, one device per container unless shared.
    (with_model(0, gpus="two"), None,
     "tfserving_models[0].gpus: 'two' is not valid; use all, a number of GPUs (1 or more), or a list of device "
     "indexes or UUIDs"),
    (with_model(1, overrides={3: {"gpus": [0, 0]}}), None, "tfserving_models[1].overrides.3.gpus: [0, 0] names a "
                                                            "device twice"),
    (with_model(0, gpus_shared="yes"), None, "tfserving_models[0].gpus_shared: 'yes' is not true or false"),
    (with_model(0, gpus=1), None,
     "tfserving-half_plus: gpus (1) on a host without GPUs (serving_gpu_host: false); serve the model on GPU hosts "
     "(hosts: a group of them) or set serving_gpu_host: true where they are (on s1, s2)"),
    (with_model(1, overrides={1: {"gpus": [0]}, 2: {"gpus": ["0"]}}),
     hosts(("s1", ["tfserving"], {"serving_gpu_host": True})),
     "GPU 0 is pinned by tfserving-half_plus_iso-v1 and tfserving-half_plus_iso-v2; give each its own device, or "
     "set gpus_shared: true on their models if they may share it (on s1)"),
    (None, hosts(("s1", ["tfserving"], {"serving_gpu_host": "yes"})), "serving_gpu_host: 'yes' is not true or false "
                                                                       "(on s1)"),
    # Addresses.
    (None, hosts(("s1", ["tfserving"], {"tfserving_address": "127.0.0.1:18500"})),
     "tfserving_address: '127.0.0.1:18500' is not a host name or IP address (without a port); the gateway adds "
     "each server's port itself (on s1)"),
])
def test_bad_input_is_refused_naming_the_variable(decl, inventory, message):
    problems = build(decl, inventory)["problems"]
    assert any(message in p for p in problems), problems


def test_flags_of_the_host_the_model_and_the_version_add_up_and_reach_the_command():
    decl = with_model(1, flags={"rest_api_num_threads": 8, "enable_model_warmup": False},
                      overrides={3: {"flags": {"rest_api_num_threads": 2, "rest_api_timeout_in_ms": 5000}}})
    built = build(decl, hosts(("s1", ["tfserving"], {"serving_flags": {"grpc_max_threads": 4,
                                                                       "rest_api_num_threads": 16},
                                                     "firewall_enabled": False})))
    assert built["problems"] == [] and built["warnings"] == []
    units = dict((u["name"], u) for u in built["profiles"][built["hosts"]["s1"]["profile"]]["units"])

    def flags(name):
        return [f for f in serving_host.server_command(units[name], {"grpc_max_threads": 4, "rest_api_num_threads": 16})
                if f.split("=")[0] in ("--grpc_max_threads", "--rest_api_num_threads", "--enable_model_warmup",
                                       "--rest_api_timeout_in_ms")]
    assert flags("tfserving-half_plus") == ["--grpc_max_threads=4", "--rest_api_num_threads=16"]
    assert flags("tfserving-half_plus_iso-v1") == ["--enable_model_warmup=false", "--grpc_max_threads=4",
                                                   "--rest_api_num_threads=8"]
    assert flags("tfserving-half_plus_iso-v3") == ["--enable_model_warmup=false", "--grpc_max_threads=4",
                                                   "--rest_api_num_threads=2", "--rest_api_timeout_in_ms=5000"]


def test_batching_of_the_host_is_replaced_by_a_model_s_and_a_version_s_and_reaches_the_command():
    decl = with_model(1, batching={"max_batch_size": 16}, overrides={3: {"batching": {}}})
    built = build(decl, hosts(("s1", ["tfserving"], {"serving_batching": {"max_batch_size": 8},
                                                     "firewall_enabled": False})))
    assert built["problems"] == []
    units = dict((u["name"], u) for u in built["profiles"][built["hosts"]["s1"]["profile"]]["units"])
    assert [units[n]["batching"] for n in ("tfserving-half_plus", "tfserving-half_plus_iso-v1",
                                           "tfserving-half_plus_iso-v3")] == [
        {"max_batch_size": 8}, {"max_batch_size": 16}, {}]
    command = serving_host.server_command(units["tfserving-half_plus_iso-v1"])
    assert "--enable_batching=true" in command and "--batching_parameters_file=/etc/tfserving/batching.config" in command
    assert not any("batching" in flag for flag in serving_host.server_command(units["tfserving-half_plus_iso-v3"]))
    # Hosts with other batching defaults have other units: they do not share a profile.
    two = build(decl, hosts(("s1", ["tfserving"], {"firewall_enabled": False}),
                            ("s2", ["tfserving"], {"serving_batching": {"max_batch_size": 8}, "firewall_enabled": False,
                                                   "tfserving_port_base": 18600})))
    assert two["hosts"]["s1"]["profile"] != two["hosts"]["s2"]["profile"]


def test_gpus_on_gpu_hosts_reach_the_units_and_a_gpu_image_without_them_is_a_warning():
    decl = with_model(1, image="tensorflow/serving:2.19.0-gpu", gpus_shared=True,
                      overrides={1: {"gpus": [0]}, 2: {"gpus": [0]}})
    built = build(decl, hosts(("s1", ["tfserving"], {"serving_gpu_host": True, "firewall_enabled": False})))
    assert built["problems"] == []
    units = dict((u["name"], u) for u in built["profiles"][built["hosts"]["s1"]["profile"]]["units"])
    assert [units["tfserving-half_plus_iso-v%d" % v]["gpus"] for v in (1, 2, 3)] == [[0], [0], None]
    assert built["warnings"] == [
        "tfserving-half_plus_iso-v3: image tensorflow/serving:2.19.0-gpu without gpus: the container gets no GPU and "
        "serves on the CPU; declare gpus for it (on s1)"]


def test_more_op_threads_than_cpus_is_a_warning_naming_the_unit_and_both_figures():
    decl = with_model(0, resources={"cpus": 2}, flags={"tensorflow_intra_op_parallelism": 8,
                                                       "tensorflow_inter_op_parallelism": 2})
    built = build(decl)
    assert built["problems"] == []
    assert built["warnings"] == [
        "tfserving-half_plus: tensorflow_intra_op_parallelism 8 above resources.cpus 2: more op threads than CPUs "
        "contend for them and add latency; lower them to at most 2, or raise resources.cpus (on s1, s2)"]
    # Within the CPUs, or with no CPU limit, nothing to say.
    assert build(with_model(0, resources={"cpus": 2}, flags={"tensorflow_intra_op_parallelism": 2}))["warnings"] == []
    assert build(with_model(0, flags={"tensorflow_intra_op_parallelism": 8}))["warnings"] == []


def test_problems_of_every_stage_show_at_once():
    decl = with_model(0, labels={"stable": 7, "canary": 2})
    inventory = hosts(("s1", ["tfserving"], {"tfserving_port_base": "abc", "serving_flags": {"prot": 1}}),
                      ("gw", ["gateway"], {"gateway_tls_certificate": "/x.pem"}))
    problems = build(decl, inventory)["problems"]
    assert [p.split(":")[0] for p in problems] == [
        "tfserving_models[0].labels.stable", "gateway_tls_certificate (\"/x.pem\") and gateway_tls_certificate_key (\"\") "
        "must be set together (TLS on) or both left empty (TLS off) (on gw)", "serving_flags.prot",
        "tfserving_port_base"], problems


def test_ipv6_addresses_are_bracketed_in_the_upstreams():
    inventory = hosts(("s1", ["tfserving"], {"tfserving_address": "::1", "tfserving_port_base": 18500}),
                      ("gw", ["gateway"], {}))
    built = build(inventory=inventory)
    assert built["problems"] == []
    assert "    server [::1]:18501 " in plan.for_ansible(built)["gateways"]["gw"]["upstreams"]


def test_every_host_must_read_the_same_declaration():
    assert plan.declaration_differences("s1", declaration(), {"s2": declaration()}) == []
    problems = plan.declaration_differences("s1", declaration(), {"s2": None, "gw": declaration()[:1], "s3": None})
    assert problems == [
        "tfserving_models is not set on s2, s3 (it is on s1): declare the fleet once, in group_vars/all, so that "
        "every serving and gateway host reads it",
        "tfserving_models on gw differs from the one on s1: declare the fleet once, in group_vars/all, and override "
        "it nowhere"]
    groups = {"all": ["s1", "s2", "gw", "batch1"], "tfserving": ["s1", "s2"], "gateway": ["gw"], "batch": ["batch1"]}
    assert plan.served_hosts(declaration(), groups) == {"s1", "s2", "gw"}


def test_a_mistake_in_one_model_does_not_hide_the_others_problems():
    decl = [dict(declaration()[0], labels={"stable": 7}),
            dict(declaration()[1], rest_port=None, overrides={2: {"rest_port": 30001}, 3: {"grpc_port": 30001}}),
            dict(declaration()[0], name="elsewhere", hosts="gpu", source="/nonexistent/x")]
    problems = plan.build_plan(
        decl, LAB, GROUPS + ["gpu"], {"gateway_hosts": ["gw"]}, read_source=fleet_plan.source_reader(None))["problems"]
    assert any(p.startswith("tfserving_models[0].labels.stable: 7") for p in problems), problems
    assert any(p.startswith("port 30001 on s1 is claimed by tfserving-half_plus_iso-v2 (REST) and "
                            "tfserving-half_plus_iso-v3 (gRPC)") for p in problems), problems
    assert any(p.startswith("elsewhere version 1 is served by no host: inventory group 'gpu' has no hosts "
                            "(tfserving_models[2].hosts)") for p in problems), problems
    assert "tfserving_models[2].source: model base path /nonexistent/x is not a directory" in problems


def test_the_plan_keeps_no_api_key():
    secret = "Never-in-a-log-0123456789"
    inventory = LAB[:2] + hosts(("gw", ["gateway"], {"gateway_api_keys": [{"name": "a", "key": secret}]}))
    built = build(inventory=inventory)
    assert built["problems"] == []
    assert secret not in json.dumps(plan.for_ansible(built))


def test_each_serving_host_firewall_lets_in_its_own_ports_from_the_gateways():
    inventory = LAB[:1] + hosts(
        ("s2", ["tfserving"], {"tfserving_port_base": 18600, "firewall_allowed_sources": ["198.51.100.0/24"]}),
        ("gw", ["gateway"], {}), ("gw2", ["gateway"], {"firewall_gateway_sources": ["2001:db8::7", "192.0.2.77"]}))
    built = build(inventory=inventory)
    assert built["problems"] == []
    assert built["firewalls"]["s2"] == {
        "profile": built["hosts"]["s2"]["profile"],
        "gateways": {"gw": ["192.0.2.10"], "gw2": ["2001:db8::7", "192.0.2.77"]}, "monitors": {},
        "allowed": ["198.51.100.0/24"]}
    assert built["firewalls"]["s1"]["allowed"] == []
    # The gRPC and REST port of each of the host's four units.
    ports = dict((h, firewall.serving_ports(built["profiles"][f["profile"]]["units"]))
                 for h, f in built["firewalls"].items())
    assert ports == {"s1": list(range(18500, 18508)), "s2": list(range(18600, 18608))}
    assert sorted(plan.for_ansible(built, ["firewalls"])) == ["firewalls", "problems"]


def test_only_the_hosts_of_the_groups_that_serve_get_a_firewall():
    decl = [dict(declaration()[0], hosts="gpu")]
    inventory = LAB + hosts(("g1", ["gpu"], {"tfserving_port_base": 18700}))
    built = plan.build_plan(decl, inventory, GROUPS + ["gpu"], {"gateway_hosts": ["gw"]})
    assert built["problems"] == []
    assert sorted(built["firewalls"]) == ["g1"]  # s1 and s2 (group tfserving) serve nothing of this declaration
    assert firewall.serving_ports(built["profiles"][built["firewalls"]["g1"]["profile"]]["units"]) == [18700, 18701]


def test_a_host_without_the_firewall_gets_none_and_a_fleet_without_one_checks_no_gateway_address():
    built = build(inventory=LAB[:1] + hosts(("s2", ["tfserving"], {"tfserving_port_base": 18600,
                                                                   "firewall_enabled": False}), ("gw", ["gateway"], {})))
    assert sorted(built["firewalls"]) == ["s1"]
    off = dict(firewall_enabled=False)
    built = build(inventory=hosts(("s1", ["tfserving"], off), ("gw", ["gateway"], {"ansible_host": "gw.example"})))
    assert built["problems"] == [] and built["firewalls"] == {}


WHY = "the serving hosts' firewall (firewall_enabled) allows gateways and monitoring hosts by address"


@pytest.mark.parametrize("inventory, message", [
    (LAB[:2] + hosts(("gw", ["gateway"], {"firewall_gateway_sources": ["gw.example"]})),
     "firewall_gateway_sources on gw: 'gw.example' is not an IP address or network; " + WHY),
    # Not set: the gateway's address, which a name is not.
    (LAB[:2] + hosts(("gw", ["gateway"], {"ansible_host": "gw.example"})),
     "firewall_gateway_sources on gw is not set and its address 'gw.example' (tfserving_address, ansible_host or "
     "the inventory name) is not an IP address or network; " + WHY + ": set firewall_gateway_sources on gw to the "
     "addresses its connections to the serving hosts come from"),
    (LAB[:2] + hosts(("gw", ["gateway"], {"firewall_gateway_sources": "192.0.2.10"})),
     "firewall_gateway_sources on gw: '192.0.2.10' is not a list; list IP addresses or networks"),
    (LAB[:2] + hosts(("gw", ["gateway"], {"firewall_gateway_sources": ["192.0.2.10/24"]})),
     "firewall_gateway_sources on gw: '192.0.2.10/24' is not an IP address or network"),
    (LAB[:2] + hosts(("gw", ["gateway"], {"firewall_gateway_sources": ["::/0"]})),
     "firewall_gateway_sources on gw: '::/0' would let every address in; set firewall_enabled: false"),
    (hosts(("s1", ["tfserving"], {"firewall_allowed_sources": ["prometheus"]}),
           ("s2", ["tfserving"], {"tfserving_port_base": 18600, "firewall_allowed_sources": ["prometheus"]}),
           ("gw", ["gateway"], {})),
     "firewall_allowed_sources: 'prometheus' is not an IP address or network (on s1, s2)"),
    (LAB[:1] + hosts(("s2", ["tfserving"], {"tfserving_port_base": 18600, "firewall_enabled": "yes"})),
     "firewall_enabled: 'yes' is not a boolean; use true or false (on s2)"),
    # The administrator's ruleset, which nftables.service loads: never the collection's file.
    (LAB[:1] + hosts(("s2", ["tfserving"], {"tfserving_port_base": 18600, "firewall_rules_file": "/etc//nftables.conf"}),
                     ("gw", ["gateway"], {})),
     "firewall_rules_file: '/etc//nftables.conf' is Debian's ruleset, the administrator's, which the collection's "
     "table would replace (every other rule gone at the next nftables.service start); keep the default "
     "/etc/tfserving/firewall.nft or another file of its own (on s2)"),
    (LAB[:1] + hosts(("s2", ["tfserving"], {"tfserving_port_base": 18600, "firewall_rules_file": "firewall.nft"}),
                     ("gw", ["gateway"], {})),
     "firewall_rules_file: 'firewall.nft' is not an absolute path (on s2)"),
    # No gateway: the firewall would keep everyone out.
    (LAB[:2], "firewall_enabled: the inventory has no gateway (group gateway) and firewall_allowed_sources is empty, "
              "so no one but the host itself could reach its serving ports; add the gateways to the inventory, list "
              "the clients in firewall_allowed_sources, or set firewall_enabled: false (on s1, s2)"),
])
def test_firewall_input_that_cannot_be_rules_is_refused(inventory, message):
    problems = build(inventory=inventory)["problems"]
    assert message in " ".join(problems), problems


def test_without_a_gateway_an_explicit_allow_list_is_enough():
    inventory = hosts(("s1", ["tfserving"], {"firewall_allowed_sources": ["192.0.2.99"]}))
    built = build(inventory=inventory)
    assert built["problems"] == []
    assert built["firewalls"]["s1"]["gateways"] == {} and built["firewalls"]["s1"]["allowed"] == ["192.0.2.99"]


# ---------------------------------------------------------------- monitoring

def with_monitor(inventory=None, **variables):
    return (LAB if inventory is None else inventory) + hosts(
        ("mon", ["monitoring"], dict({"ansible_host": "192.0.2.20", "monitoring_port": 19090}, **variables)))


def test_role_defaults_turn_metrics_on():
    assert ROLE_DEFAULTS["serving_monitoring_enabled"] is True
    assert ROLE_DEFAULTS["serving_monitoring_path"] == "/monitoring/prometheus/metrics"
    assert ROLE_DEFAULTS["gateway_metrics_enabled"] is True
    assert (ROLE_DEFAULTS["gateway_mtail_port"], ROLE_DEFAULTS["gateway_nginx_exporter_port"]) == (3903, 9113)
    assert ROLE_DEFAULTS["monitoring_port"] == 9090


def test_the_plan_says_what_prometheus_scrapes_and_where_it_answers():
    built = build(inventory=with_monitor(), monitoring_hosts=["mon"])
    assert built["problems"] == []
    monitoring = built["monitoring"]
    assert monitoring["url"] == "http://192.0.2.20:19090"
    # Every container of both hosts, on its REST port.
    assert [(s["host"], s["container"], s["target"]) for s in monitoring["servers"]] == [
        (h, c, "%s:%d" % (h, base + 1 + 2 * i)) for h, base in (("s1", 18500), ("s2", 18600))
        for i, c in enumerate(["tfserving-half_plus", "tfserving-half_plus_iso-v1", "tfserving-half_plus_iso-v2",
                               "tfserving-half_plus_iso-v3"])]
    assert set(s["metrics_path"] for s in monitoring["servers"]) == {"/monitoring/prometheus/metrics"}
    assert [(v["host"], v["model"], v["version"], v["url"]) for v in monitoring["versions"]][:3] == [
        ("s1", "half_plus", 1, "http://s1:18501/v1/models/half_plus/versions/1"),
        ("s1", "half_plus", 2, "http://s1:18501/v1/models/half_plus/versions/2"),
        ("s1", "half_plus_iso", 1, "http://s1:18503/v1/models/half_plus_iso/versions/1")]
    assert len(monitoring["versions"]) == 2 * (2 + 3)
    assert monitoring["gateways"] == [{"host": "gw", "requests": "192.0.2.10:3903", "nginx": "192.0.2.10:9113"}]
    # The serving hosts' firewalls let Prometheus in (to the REST ports, firewall.render).
    assert built["firewalls"]["s1"]["monitors"] == {"mon": ["192.0.2.20"]}
    # The units carry the path: the serving role writes their monitoring.config.
    units = built["profiles"][built["hosts"]["s1"]["profile"]]["units"]
    assert set(u["metrics_path"] for u in units) == {"/monitoring/prometheus/metrics"}
    assert sorted(plan.for_ansible(built, ["monitoring"])) == ["monitoring", "problems"]


def test_without_a_monitoring_host_the_plan_has_targets_but_no_url():
    built = build()
    assert built["problems"] == [] and built["monitoring"]["url"] is None
    assert len(built["monitoring"]["servers"]) == 8 and built["firewalls"]["s1"]["monitors"] == {}


def test_metrics_turned_off_leave_no_target_and_no_flag():
    inventory = hosts(("s1", ["tfserving"], {"tfserving_port_base": 18500, "serving_monitoring_enabled": False}),
                      ("gw", ["gateway"], {"gateway_http_port": 18080, "gateway_metrics_enabled": False}))
    built = build(inventory=with_monitor(inventory), monitoring_hosts=["mon"])
    assert built["problems"] == []
    assert built["monitoring"]["servers"] == [] and built["monitoring"]["gateways"] == []
    assert len(built["monitoring"]["versions"]) == 5  # still probed for AVAILABLE
    units = built["profiles"][built["hosts"]["s1"]["profile"]]["units"]
    assert set(u["metrics_path"] for u in units) == {None}


def test_hosts_that_differ_only_in_their_metrics_path_do_not_share_a_profile():
    inventory = hosts(("s1", ["tfserving"], {"tfserving_address": "192.0.2.1", "firewall_enabled": False}),
                      ("s2", ["tfserving"], {"tfserving_address": "192.0.2.2", "serving_monitoring_path": "/metrics",
                                             "firewall_enabled": False}))
    built = build(inventory=inventory, gateway_hosts=[])
    assert built["problems"] == []
    assert built["hosts"]["s1"]["profile"] != built["hosts"]["s2"]["profile"]
    assert [s["metrics_path"] for s in built["monitoring"]["servers"] if s["host"] == "s2"][0] == "/metrics"


@pytest.mark.parametrize("inventory, message", [
    (LAB[:1] + hosts(("s2", ["tfserving"], {"tfserving_port_base": 18600, "serving_monitoring_enabled": "yes"})),
     "serving_monitoring_enabled: 'yes' is not a boolean; use true or false (on s2)"),
    (hosts(("s1", ["tfserving"], {"serving_monitoring_path": "metrics"})),
     "serving_monitoring_path: 'metrics' is not a URL path such as /monitoring/prometheus/metrics (on s1)"),
    (hosts(("s1", ["tfserving"], {"serving_flags": {"monitoring_config_file": "/etc/tfserving/mine.config"}})),
     "serving_flags.monitoring_config_file: written by the collection while serving_monitoring_enabled is true; "
     "remove the flag or turn monitoring off (on s1)"),
    (LAB[:2] + hosts(("gw", ["gateway"], {"gateway_http_port": 18080, "gateway_mtail_port": 18080})),
     "gateway port 18080 on gw is claimed by http and mtail"),
    (LAB[:2] + hosts(("gw", ["gateway"], {"gateway_http_port": 18080, "gateway_status_port": 18081,
                                          "gateway_nginx_exporter_port": 18081})),
     "gateway port 18081 on gw is claimed by nginx exporter and status"),
    (LAB[:2] + hosts(("gw", ["gateway"], {"gateway_http_port": 18080, "gateway_metrics_enabled": "no"})),
     "gateway_metrics_enabled: 'no' is not a boolean; use true or false (on gw)"),
    # Not ports: named, and the plan is still made (no target is built of them).
    (LAB[:2] + hosts(("gw", ["gateway"], {"gateway_http_port": 18080, "gateway_mtail_port": "3903"})),
     "gateway_mtail_port: '3903' is not a port; use an integer from 1 to 65535 (on gw)"),
    (with_monitor(monitoring_port="abc"), "monitoring_port: 'abc' is not a port; use an integer from 1 to 65535 "
                                          "(on mon)"),
    # Alertmanager's receivers and inhibitions (issue 21): checked before any host changes.
    (with_monitor(monitoring_alertmanager_receivers=[{"name": "oncall"}]),
     "monitoring_alertmanager_receivers[0] (oncall): has no webhook_url and no email_to; give it a webhook URL "
     "(http:// or https://) or an email address (on mon)"),
    (with_monitor(monitoring_alertmanager_inhibit_rules=[{"equal": ["modle"]}]),
     "monitoring_alertmanager_inhibit_rules[0].equal: 'modle' is not a label of the collection's alerts; use "
     "alertname, severity, model, version, label, host, container, instance, job (on mon)"),
    # Prometheus must be let through the serving hosts' firewall by address.
    (with_monitor(ansible_host="mon.example"),
     "firewall_gateway_sources on mon is not set and its address 'mon.example' (tfserving_address, ansible_host or "
     "the inventory name) is not an IP address or network; " + WHY),
])
def test_bad_metrics_input_is_refused_naming_the_variable(inventory, message):
    monitors = [h["name"] for h in inventory if "monitoring" in h["groups"]]
    problems = build(inventory=inventory, monitoring_hosts=monitors)["problems"]
    assert message in " ".join(problems), problems


def test_monitoring_turned_off_leaves_the_monitoring_flag_to_the_user():
    mine = {"monitoring_config_file": "/etc/tfserving/mine.config"}
    inventory = hosts(("s1", ["tfserving"], {"serving_monitoring_enabled": False, "serving_flags": mine}),
                      ("gw", ["gateway"], {}))
    assert build(inventory=inventory)["problems"] == []


def test_the_action_passes_the_monitoring_group(tmp_path):
    rc, output, built = run_action(tmp_path, {"all": {
        "vars": {"ansible_connection": "local", "tfserving_models": declaration()},
        "children": {"tfserving": {"hosts": {"s1": {"ansible_host": "192.0.2.1"}}},
                     "gateway": {"hosts": {"gw": {"gateway_http_port": 18080, "ansible_host": "192.0.2.10"}}},
                     "monitoring": {"hosts": {"mon": {"ansible_host": "192.0.2.20"}}}}}})
    assert rc == 0, output
    assert built["monitoring"]["url"] == "http://192.0.2.20:9090"
    assert built["monitoring"]["gateways"] == [{"host": "gw", "requests": "192.0.2.10:3903",
                                                "nginx": "192.0.2.10:9113"}]
    assert built["firewalls"]["s1"]["monitors"] == {"mon": ["192.0.2.20"]}


def test_alertmanager_settings_are_refused_by_the_action_and_never_shown(tmp_path):
    secret = "https://hooks.example.com/T000/B000/s3cret-token"
    rc, output, built = run_action(tmp_path, {"all": {
        "vars": {"ansible_connection": "local", "tfserving_models": declaration()},
        "children": {"tfserving": {"hosts": {"s1": {"ansible_host": "192.0.2.1"}}},
                     "monitoring": {"hosts": {"mon": {
                         "ansible_host": "192.0.2.20",
                         "monitoring_alertmanager_receivers": [{"name": "oncall", "webhook_url": secret},
                                                               {"name": "team", "email_to": "team@example.com"}],
                         "monitoring_alertmanager_smtp": {"smarthost": "mail.example.com:587",
                                                          "auth_password": "s3cret-password"}}}}}}})
    assert rc != 0
    assert ("monitoring_alertmanager_receivers[1] (team): email_to needs monitoring_alertmanager_smtp.smarthost and "
            ".from (the mail server and the sender) (on mon)" in " ".join(output.split())), output
    assert "s3cret" not in output


def test_with_tls_the_grpc_routes_are_tls_unless_kept_plaintext():
    tls = {"gateway_tls_certificate": "/etc/ssl/gw.pem", "gateway_tls_certificate_key": "/etc/ssl/gw.key"}
    for gateway_vars, want in (({}, False), (tls, True), (dict(tls, gateway_grpc_plaintext=True), False)):
        built = build(inventory=LAB[:2] + hosts(("gw", ["gateway"], gateway_vars)))
        assert built["problems"] == []
        rows = gateway.route_table(plan.for_ansible(built)["gateways"]["gw"], "http://gw", "gw")
        assert set(row["tls"] for row in rows if row["protocol"] == "grpc") == {want}, gateway_vars
