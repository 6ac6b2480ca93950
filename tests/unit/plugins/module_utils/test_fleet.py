"""The derivations from tfserving_models: validation, port plan, sync plan (what a host renders: test_serving_host)."""

import pytest

from ansible_collections.mlserve.tfserving.plugins.filter.fleet import FilterModule
from ansible_collections.mlserve.tfserving.plugins.module_utils import fleet

GROUPS = ["all", "ungrouped", "tfserving", "gateway"]


def model(**overrides):
    base = {"name": "half_plus", "source": "/src/half_plus", "versions": [1, 2]}
    base.update(overrides)
    return base


ROOT = "/srv/tfserving/models"


def plan(*models, groups=("tfserving",), port_base=18500, **defaults):
    defaults.setdefault("models_root", ROOT)
    return fleet.serving_units(fleet.normalize_models(list(models), defaults), list(groups), port_base)


def test_a_good_declaration_has_no_problems():
    assert fleet.validate_models([
        model(labels={"stable": 1, "canary": 2}, routes={"default": "stable", "split": {"stable": 90, "canary": 10},
                                                       "aliases": {"half_plus_v1": 1}, "grpc_unversioned": "newest"}),
        model(name="iso", topology="isolated", versions=[1, 2, 3], overrides={3: {"image": "x:1", "rest_port": 9000}},
              resources={"memory": "2g", "cpus": 1.5}),
    ], GROUPS) == []


@pytest.mark.parametrize("declaration, message", [
    ("nope", "tfserving_models: must be a list of models, got str"),
    ([model(name="a b")], "tfserving_models[0].name: 'a b' is not a valid model name"),
    ([model(), model()], "tfserving_models[1].name: 'half_plus' is already declared by tfserving_models[0]"),
    ([model(source=None)], "tfserving_models[0].source: None must be the model's base directory on the controller"),
    ([model(versions=["v2"])], "tfserving_models[0].versions: ['v2'] must be a non-empty list of positive integers"),
    ([model(versions=[])], "tfserving_models[0].versions: [] must be a non-empty list"),
    ([model(versions=[1, 1])], "tfserving_models[0].versions: [1, 1] lists a version twice"),
    ([model(topology="pooled")], "tfserving_models[0].topology: 'pooled' is not valid; use one of shared, isolated"),
    ([model(labels={"stable": 3})],
     "tfserving_models[0].labels.stable: 3 is not a declared version of half_plus (declared: 1, 2)"),
    ([model(labels={"st-able": 1})], "tfserving_models[0].labels: 'st-able' is not a valid label name"),
    ([model(hosts="web")], "tfserving_models[0].hosts: 'web' is not a group of this inventory (groups: gateway, tfserving)"),
    ([model(rest_port=70000)], "tfserving_models[0].rest_port: 70000 is not a port; use an integer from 1 to 65535"),
    ([model(topology="isolated", rest_port=9000)], "tfserving_models[0].rest_port: an isolated model runs one container"),
    ([model(overrides={2: {"image": "x"}})], "tfserving_models[0].overrides: only an isolated model"),
    ([model(topology="isolated", overrides={5: {}})],
     "tfserving_models[0].overrides.5: 5 is not a declared version of half_plus (declared: 1, 2)"),
    ([model(topology="isolated", overrides={2: {"ports": 1}})],
     "tfserving_models[0].overrides.2.ports: unknown key; valid keys are image, resources, rest_port, grpc_port"),
    ([model(resources={"memory": "lots"})], "tfserving_models[0].resources.memory: 'lots' is not a size"),
    ([model(resources={"cpus": 0})], "tfserving_models[0].resources.cpus: 0 is not a CPU count"),
    ([model(replicas=2)], "tfserving_models[0].replicas: unknown key"),
    ([model(routes={"default": "beta"})],
     "tfserving_models[0].routes.default: 'beta' is neither a label (none) nor a declared version (1, 2) of half_plus"),
    ([model(labels={"stable": 1}, routes={"split": {"stable": 90, "canary": 10}})],
     "tfserving_models[0].routes.split.canary: 'canary' is not a label of half_plus (labels: stable)"),
    ([model(labels={"stable": 1, "canary": 2}, routes={"split": {"stable": 90, "canary": 20}})],
     "tfserving_models[0].routes.split: weights canary=20, stable=90 add up to 110; they must add up to 100"),
    ([model(routes={"aliases": {"half_plus_v3": 3}})],
     "tfserving_models[0].routes.aliases.half_plus_v3: 3 is not a declared version of half_plus (declared: 1, 2)"),
    ([model(routes={"aliases": {"other": 1}}), model(name="other")],
     "alias 'other' is also the name of tfserving_models[1]"),
])
def test_each_problem_names_the_variable_the_value_and_what_is_valid(declaration, message):
    problems = fleet.validate_models(declaration, GROUPS)
    assert any(message in p for p in problems), problems


GRPC_WAYS_OUT = ("Have gRPC clients name a version or label and set routes.grpc_unversioned: newest to accept this, "
                 "or set topology: isolated, whose gateway routes unversioned gRPC calls as it routes REST ones")


@pytest.mark.parametrize("declared, rest", [
    ({"labels": {"stable": 1}}, "version 1 (routes.default: stable)"),
    ({"labels": {"stable": 1}, "routes": {"default": 1}}, "version 1 (routes.default: 1)"),
    ({"labels": {"stable": 1, "canary": 2}, "routes": {"split": {"stable": 90, "canary": 10}}},
     "version 1 (stable: 90 %) and version 2 (canary: 10 %)"),
])
def test_a_shared_model_whose_unversioned_grpc_call_gets_another_version_than_rest_is_refused(declared, rest):
    assert fleet.validate_models([model(**declared)], GROUPS) == [
        "tfserving_models[0].routes: an unversioned gRPC call to half_plus (a ModelSpec with neither version nor "
        "version_label) gets TF Serving's newest version, 2, while its unversioned REST route gets %s. %s"
        % (rest, GRPC_WAYS_OUT)]


@pytest.mark.parametrize("declared", [
    {},  # no label: REST's unversioned route is the newest version too
    {"labels": {"stable": 2}},
    {"labels": {"stable": 2, "canary": 1}, "routes": {"split": {"stable": 100, "canary": 0}}},
    {"labels": {"stable": 1}, "routes": {"grpc_unversioned": "newest"}},
    {"labels": {"stable": 1}, "topology": "isolated"},
])
def test_unversioned_grpc_is_allowed_where_it_gets_what_rest_gets_or_where_the_declaration_says_so(declared):
    assert fleet.validate_models([model(**declared)], GROUPS) == []


def test_grpc_unversioned_takes_only_newest():
    assert fleet.validate_models([model(routes={"grpc_unversioned": "stable"})], GROUPS) == [
        "tfserving_models[0].routes.grpc_unversioned: 'stable' is not valid; the one value is newest (unversioned "
        "gRPC calls of a shared model get its newest version, as TF Serving answers them)"]


def test_every_problem_is_reported_at_once():
    problems = fleet.validate_models([model(labels={"stable": 7}, topology="x"), model(name="b", versions=[])], GROUPS)
    assert len(problems) == 3


def test_normalize_fills_defaults():
    [m] = fleet.normalize_models([model(labels={"stable": 1})], {"image": "tensorflow/serving:2.19.0",
                                                                 "models_root": "/data/models/"})
    assert m["topology"] == "shared" and m["hosts"] == "tfserving" and m["image"] == "tensorflow/serving:2.19.0"
    assert m["routes"] == {"default": "stable", "split": {}, "aliases": {}}
    assert m["host_path"] == "/data/models/half_plus" and m["container_path"] == "/models/half_plus"
    # Routing needs no host's directory.
    [m] = fleet.normalize_models([model(versions=[3, 1])])
    assert m["routes"]["default"] == 3 and m["versions"] == [1, 3]
    assert "host_path" not in m and m["container_path"] == "/models/half_plus"


def test_port_plan_is_deterministic_and_unique():
    units = plan(model(name="zeta"), model(name="alpha", topology="isolated", versions=[2, 1]))
    assert [(u["name"], u["grpc_port"], u["rest_port"], u["versions"]) for u in units] == [
        ("tfserving-alpha-v1", 18500, 18501, [1]),
        ("tfserving-alpha-v2", 18502, 18503, [2]),
        ("tfserving-zeta", 18504, 18505, [1, 2]),
    ]
    assert units == plan(model(name="alpha", topology="isolated", versions=[1, 2]), model(name="zeta"))
    assert fleet.check_port_plan(units) == []


def test_port_plan_skips_pinned_ports():
    units = plan(model(name="a", rest_port=18500), model(name="b"))
    assert [(u["grpc_port"], u["rest_port"]) for u in units] == [(18501, 18500), (18502, 18503)]


def test_units_only_for_the_hosts_group():
    assert plan(model(hosts="tfserving_gpu")) == []
    assert len(plan(model(hosts="tfserving_gpu"), groups=("tfserving_gpu",))) == 1


def test_isolated_units_know_no_labels_and_take_overrides():
    units = plan(model(topology="isolated", labels={"stable": 2}, image="base:1", resources={"memory": "1g", "cpus": 1},
                       overrides={2: {"image": "gpu:1", "resources": {"memory": "4g"}}}))
    assert [u["labels"] for u in units] == [{}, {}]
    assert [u["image"] for u in units] == ["base:1", "gpu:1"]
    assert units[1]["resources"] == {"memory": "4g", "cpus": 1}


def test_shared_unit_serves_all_versions_with_labels():
    [unit] = plan(model(labels={"stable": 1}))
    assert unit["versions"] == [1, 2] and unit["labels"] == {"stable": 1}
    assert unit["host_path"] == "/srv/tfserving/models/half_plus"


def test_conflicts_name_both_claimants():
    units = plan(model(name="a", rest_port=18600), model(name="b", grpc_port=18600))
    assert fleet.check_port_plan(units, "serving1") == [
        "port 18600 on serving1 is claimed by tfserving-a (REST) and tfserving-b (gRPC); "
        "pin different ports or change tfserving_port_base"]
    [same] = plan(model(name="a", rest_port=18600, grpc_port=18600))
    assert "claimed by tfserving-a (gRPC) and tfserving-a (REST)" in fleet.check_port_plan([same])[0]


def test_sync_plan_copies_missing_and_changed_versions_and_prunes_undeclared_ones():
    [m] = fleet.normalize_models([model(versions=[1, 2, 3], labels={"stable": 1})], {"models_root": ROOT})
    sources = {"half_plus": [{"version": v, "directory": "%08d" % v, "checksum": "s%d" % v} for v in (1, 2, 3)]}
    copy = [{"version": 1, "checksum": "s1", "directory": "1"}, {"version": 2, "checksum": "old", "directory": "2"},
            {"version": 9, "checksum": "s9", "directory": "9"}]
    sync = fleet.sync_plan([m], sources, [{"versions": copy}], prune=True)
    assert [(c["version"], c["src"], c["checksum"]) for c in sync["to_copy"]] == [
        (2, "/src/half_plus/00000002/", "s2"), (3, "/src/half_plus/00000003/", "s3")]
    # Put in place under their canonical numbers, the source's directory names aside.
    assert sync["to_place"] == [{"path": "/srv/tfserving/models/half_plus", "version": v, "signature": "serving_default"}
                                for v in (2, 3)]
    assert sync["to_remove"] == ["/srv/tfserving/models/half_plus/9", "/srv/tfserving/models/half_plus/.manifest-9.json"]
    assert fleet.sync_plan([m], sources, [{"versions": copy}])["to_remove"] == []


def test_prune_never_removes_a_labelled_version():
    m = fleet.normalize_models([model(versions=[2])], {"models_root": ROOT})[0]
    m["labels"] = {"stable": 1}  # as if validation had been bypassed
    sources = {"half_plus": [{"version": 2, "directory": "2", "checksum": "s2"}]}
    sync = fleet.sync_plan([m], sources, [{"versions": [{"version": 1, "directory": "1", "checksum": "s1"}]}], True)
    assert sync["to_remove"] == []


def test_copy_problems_name_the_host_path_and_version():
    entry = {"model": "half_plus", "version": 2, "checksum": "s2", "src": "/src/half_plus/2/",
             "host_path": "/srv/tfserving/models/half_plus"}
    placed = {"path": entry["host_path"], "version": 2}
    assert fleet.copy_problems("h1", [entry], [dict(placed, versions=[{"version": 2, "checksum": "s2"}])]) == []
    assert fleet.copy_problems("h1", [entry], [dict(placed, versions=[{"version": 2, "checksum": "x"}])]) == [
        "h1:/srv/tfserving/models/half_plus/2 differs from /src/half_plus/2/ after the copy: checksum differs"]
    assert fleet.copy_problems("h1", [entry], [dict(placed, versions=[], msg="no saved_model.pb")]) == [
        "h1:/srv/tfserving/models/half_plus/2 differs from /src/half_plus/2/ after the copy: no saved_model.pb"]


def test_filters_are_the_module_functions():
    filters = FilterModule().filters()
    assert filters == {"declaration_problems": fleet.validate_models, "sync_plan": fleet.sync_plan,
                       "copy_problems": fleet.copy_problems}


def test_flag_problems():
    assert fleet.flag_problems({"enable_model_warmup": False, "rest_api_timeout_in_ms": 5000}) == []
    problems = fleet.flag_problems({"rest_api_prot": 1, "port": 1, "batching_parameters_file": "/b"})
    assert any(p.startswith("serving_flags.rest_api_prot: not a tensorflow_model_server flag") for p in problems)
    assert any(p.startswith("serving_flags.port: set by the collection") for p in problems)
    assert any(p.startswith("serving_flags.batching_parameters_file: set by the collection from the batching "
                            "parameters") for p in problems)
    assert fleet.flag_problems(["--port=1"]) == ["serving_flags: ['--port=1'] must map flag names (without --) to values"]


