"""Rolling upgrades: batches, command-line steps, and the union served in phase 1."""

import pytest

from ansible_collections.mlserve.tfserving.plugins.filter.rollout import FilterModule
from ansible_collections.mlserve.tfserving.plugins.module_utils import fleet, plan, rollout

from ..action.test_fleet_plan import ROLE_DEFAULTS

OLD = [
    {"name": "half_plus", "source": "/s", "versions": [1, 2], "labels": {"stable": 1, "canary": 2},
     "routes": {"split": {"stable": 80, "canary": 20}}},
    {"name": "gone", "source": "/g", "versions": [1]},
]
TARGET = [
    {"name": "half_plus", "source": "/s", "versions": [2, 3], "labels": {"stable": 3, "canary": 2},
     "routes": {"default": "stable"}},
    {"name": "new", "source": "/n", "versions": [1]},
]


@pytest.mark.parametrize("size, batches", [
    (1, [["a"], ["b"], ["c"]]),
    ("2", [["a", "b"], ["c"]]),
    ("50%", [["a", "b"], ["c"]]),
    ("10%", [["a"], ["b"], ["c"]]),
    ("100%", [["a", "b", "c"]]),
])
def test_batches(size, batches):
    assert rollout.rollout_batches(["a", "b", "c"], size) == batches


@pytest.mark.parametrize("size", [0, "half", "-1", "%"])
def test_a_bad_batch_size_names_the_variable(size):
    with pytest.raises(ValueError, match="rollout_batch: .* is not a host count or a percentage"):
        rollout.rollout_batches(["a"], size)


def test_union_serves_every_version_of_both_with_the_old_labels_and_routes():
    union = rollout.rollout_union(OLD, TARGET)
    assert [m["name"] for m in union] == ["half_plus", "new", "gone"]
    half_plus = union[0]
    assert half_plus["versions"] == [1, 2, 3]
    assert half_plus["labels"] == {"stable": 1, "canary": 2}
    # Version 3 is newest as soon as it loads: unversioned gRPC calls get it, while REST routes as before.
    assert half_plus["routes"] == {"split": {"stable": 80, "canary": 20}, "grpc_unversioned": "newest"}
    assert fleet.validate_models(union) == []
    same = rollout.rollout_union(OLD, [dict(OLD[0], labels={"stable": 2, "canary": 1})])
    assert same[0]["routes"] == OLD[0]["routes"]


def test_union_leaves_its_inputs_alone():
    rollout.rollout_union(OLD, TARGET)
    assert OLD[0]["versions"] == [1, 2] and TARGET[0]["labels"] == {"stable": 3, "canary": 2}


def test_steps_apply_cumulatively():
    steps = [{"model": "half_plus", "split": {"stable": 50, "canary": 50}},
             {"model": "half_plus", "labels": {"stable": 2, "canary": 2}, "split": {}}]
    first, second = rollout.rollout_targets(OLD, steps)
    assert first[0]["routes"]["split"] == {"stable": 50, "canary": 50}
    assert first[0]["labels"] == {"stable": 1, "canary": 2}
    assert second[0]["labels"] == {"stable": 2, "canary": 2}
    assert "split" not in second[0]["routes"]
    assert OLD[0]["routes"]["split"] == {"stable": 80, "canary": 20}


def test_a_step_leaves_a_model_without_routes_as_the_user_would_write_it():
    """site.yml compares the recorded declaration with the inventory's: an added `routes: {}` would differ."""
    plain = {"name": "m", "source": "/m", "versions": [1]}
    target = rollout.rollout_targets([plain], [{"model": "m", "versions": [2]}])[0]
    assert target == [dict(plain, versions=[2])]
    declared = dict(plain, routes={})
    assert rollout.rollout_targets([declared], [{"model": "m", "versions": [2]}])[0] == [dict(declared, versions=[2])]


def test_without_steps_the_target_is_the_declaration():
    assert rollout.rollout_targets(TARGET, []) == [TARGET]


def test_step_problems_name_the_step():
    assert rollout.step_problems(OLD, [{"model": "resnet", "split": {}}, {"model": "half_plus"},
                                       {"model": "half_plus", "weights": 1}, "x"]) == [
        "rollout_steps[0].model: 'resnet' is not a declared model (declared: half_plus, gone)",
        "rollout_steps[1]: changes nothing; give versions, labels, split or default",
        "rollout_steps[2].weights: unknown key; valid keys are model, versions, labels, split, default, analysis",
        # An unknown key is no change either.
        "rollout_steps[2]: changes nothing; give versions, labels, split or default",
        "rollout_steps[3]: 'x' must be a mapping with model and any of versions, labels, split, default, analysis",
    ]
    assert rollout.step_problems(OLD, {"model": "x"})[0].startswith("rollout_steps: {'model': 'x'} must be a list")


PROMETHEUS = "http://127.0.0.1:19090"
ANALYSIS = {"window": "60s", "min_requests": 200, "max_error_ratio": 0.01}


def test_a_step_may_hold_its_change_to_an_analysis():
    steps = [{"model": "half_plus", "split": {"stable": 50, "canary": 50}, "analysis": ANALYSIS},
             {"model": "half_plus", "labels": {"stable": 2}, "split": {}, "analysis": dict(ANALYSIS, max_p99_ms=50)}]
    assert rollout.step_problems(OLD, steps, PROMETHEUS) == []
    # The analysis is not a change of the declaration.
    assert "analysis" not in rollout.rollout_targets(OLD, steps)[0][0]


def test_analysis_problems_name_the_step():
    steps = [{"model": "half_plus", "split": {"stable": 50, "canary": 50}, "analysis": dict(ANALYSIS, window="60")},
             {"model": "half_plus", "analysis": ANALYSIS}]
    assert rollout.step_problems(OLD, steps, PROMETHEUS) == [
        "rollout_steps[0].analysis.window: '60' is not a duration; use seconds, minutes or hours such as 60s, 5m or 1h",
        # An analysis alone judges no change.
        "rollout_steps[1]: changes nothing; give versions, labels, split or default",
    ]


@pytest.mark.parametrize("url", [None, ""])
def test_an_analysis_needs_a_monitoring_host(url):
    steps = [{"model": "half_plus", "split": {"stable": 50, "canary": 50}, "analysis": ANALYSIS}]
    assert rollout.step_problems(OLD, steps, url) == [
        "rollout_steps[0].analysis: needs Prometheus, and the inventory has no monitoring host (group monitoring, "
        "the mlserve.tfserving.monitoring role)"]
    assert rollout.step_problems(OLD, [dict(steps[0], analysis={"window": "1m"})]) == [
        "rollout_steps[0].analysis: judges nothing; give max_error_ratio, max_p99_ms or both",
        "rollout_steps[0].analysis: needs Prometheus, and the inventory has no monitoring host (group monitoring, "
        "the mlserve.tfserving.monitoring role)"]


STABLE_ONLY = [dict(OLD[0], routes={"default": "stable"}), OLD[1]]


@pytest.mark.parametrize("before, step, judged", [
    # 100 % stable (1), then half to the canary: only the canary's share grew.
    (STABLE_ONLY, {"split": {"stable": 50, "canary": 50}}, [2]),
    # 80/20, then 50/50: the canary again.
    (OLD, {"split": {"stable": 50, "canary": 50}}, [2]),
    # stable moves to the canary's version and the split goes: all traffic to 2.
    (OLD, {"labels": {"stable": 2, "canary": 2}, "split": {}}, [2]),
    # A new version behind a label no route takes: no share moved, so every version the path reaches.
    (OLD, {"versions": [1, 2, 3], "labels": {"stable": 1, "canary": 2, "next": 3}}, [1, 2]),
    (STABLE_ONLY, {"versions": [1, 2, 3]}, [1]),
    # Back from the split to stable: version 1's share grew.
    (OLD, {"split": {}}, [1]),
])
def test_the_analysis_judges_the_versions_whose_share_grew(before, step, judged):
    after = rollout.rollout_targets(before, [dict(step, model="half_plus")])[0]
    assert rollout.analysis_versions(before, after, "half_plus") == [{"model": "half_plus", "version": v}
                                                                     for v in judged]


def test_filters_are_the_module_utils_functions():
    filters = FilterModule().filters()
    assert filters["rollout_union"] is rollout.rollout_union
    assert filters["rollout_analysis_versions"] is rollout.analysis_versions
    assert filters["rollout_step_problems"] is rollout.step_problems
    assert filters["rollout_targets"] is rollout.rollout_targets
    assert filters["rollout_batches"] is rollout.rollout_batches
    assert filters["rollout_restarting_hosts"] is rollout.restarting_hosts
    assert filters["rollout_stages"] is rollout.rollout_stages


def stage_rows(stages):
    return [(s["does"], s["batch"], s["drain"], s["reload"], s["routes"], s["serves"]) for s in stages]


def test_without_restart_facts_each_batch_is_drained_twice_and_the_routes_switch_with_the_first_drop():
    assert stage_rows(rollout.rollout_stages([["a"], ["b"]])) == [
        ("serve the union", ["a"], True, True, "old", "union"),
        ("serve the union", ["b"], True, True, "old", "union"),
        ("route to the new and drop the old", ["a"], True, True, "new", "new"),
        ("drop the old", ["b"], True, True, "new", "new")]
    assert rollout.rollout_stages([]) == []


def test_hosts_that_keep_their_containers_move_together_undrained_with_one_reload():
    assert stage_rows(rollout.rollout_stages([["a"], ["b"]], {"union": [], "new": []})) == [
        ("serve the union", ["a", "b"], False, False, "old", "union"),
        ("route to the new and drop the old", ["a", "b"], False, True, "new", "new")]


def test_only_the_restarting_hosts_are_drained_batch_by_batch():
    assert stage_rows(rollout.rollout_stages([["a"], ["b"], ["c"]], {"union": ["b", "c"], "new": ["a"]})) == [
        ("serve the union", ["a"], False, False, "old", "union"),
        ("serve the union", ["b"], True, True, "old", "union"),
        ("serve the union", ["c"], True, True, "old", "union"),
        ("route to the new and drop the old", ["b", "c"], False, True, "new", "new"),
        ("drop the old", ["a"], True, True, "new", "new")]


HOSTS = [plan.host_inputs(name, {"inventory_hostname": name, "group_names": groups, "tfserving_port_base": base,
                                 "firewall_enabled": False}, dict(ROLE_DEFAULTS))
         for name, base, groups in (("a", 18500, ["tfserving", "first"]), ("b", 18600, ["tfserving"]))]
SHARED = {"name": "half_plus", "source": "/s", "versions": [1], "labels": {"stable": 1}}
ISOLATED = {"name": "iso", "source": "/i", "versions": [2], "topology": "isolated"}


def planned(declaration):
    built = plan.build_plan(declaration, HOSTS, ["all", "tfserving", "first"], {})
    assert built["problems"] == []
    return built


@pytest.mark.parametrize("change, restarting", [
    # models.config changes only, or a container beside the others.
    ({"versions": [1, 3], "labels": {"stable": 1, "canary": 3}, "routes": {"grpc_unversioned": "newest"}}, []),
    ({"versions": [3], "labels": {"stable": 3}}, []),
    # What the container is made of.
    ({"image": "tensorflow/serving:2.18.0"}, ["a", "b"]),
    ({"resources": {"memory": "2g"}}, ["a", "b"]),
    # Off b: its container goes, once the gateway routes elsewhere.
    ({"hosts": "first"}, []),
])
def test_a_host_restarts_when_a_container_it_keeps_changes(change, restarting):
    before = planned([SHARED])
    assert rollout.restarting_hosts(before, planned([dict(SHARED, **change)])) == restarting


@pytest.mark.parametrize("change, restarting", [
    # The shared container goes on every host, and version 1's isolated one takes its ports.
    ({"topology": "isolated"}, ["a", "b"]),
    ({"hosts": "first"}, ["b"]),
    # Versions and labels: the union keeps every container.
    ({"versions": [1, 3], "labels": {"stable": 1, "canary": 3}}, []),
])
def test_a_host_that_drops_a_container_while_the_gateway_routes_to_it_restarts(change, restarting):
    """Old to union: the gateway still routes by the old declaration, so a host losing a container is drained."""
    before = planned([SHARED])
    union = planned(rollout.rollout_union([SHARED], [dict(SHARED, **change)]))
    assert rollout.restarting_hosts(before, union, removed=True) == restarting


@pytest.mark.parametrize("model, batch, problem", [
    (SHARED, 1, None),
    (SHARED, "100%", "rollout_batch \"100%\" drains a, b at once, every host that serves half_plus, whose containers this "
                     "step recreates: nothing would answer half_plus meanwhile. Use a smaller rollout_batch, or serve "
                     "half_plus on more hosts first."),
    (dict(SHARED, hosts="first"), 1, "rollout_batch 1 drains a at once, every host that serves half_plus"),
])
def test_a_batch_that_drains_every_host_serving_a_model_is_named_before_any_stage(model, batch, problem):
    """An image change recreates every container: each batch is drained, which the gateway refuses for a model's last hosts."""
    before, after = planned([model]), planned([dict(model, image="tensorflow/serving:2.18.0")])
    union = planned(rollout.rollout_union([model], [dict(model, image="tensorflow/serving:2.18.0")]))
    stages = rollout.rollout_stages(rollout.rollout_batches(["a", "b"], batch),
                                    {"union": rollout.restarting_hosts(before, union, removed=True),
                                     "new": rollout.restarting_hosts(union, after)})
    found = rollout.drain_problems(stages, before, after, batch)
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].startswith(problem), found


def test_a_new_isolated_version_that_moves_another_containers_port_restarts_that_host():
    before = planned([SHARED, ISOLATED])
    # Version 1 sorts first: the isolated version 2 container gets new ports.
    after = planned([SHARED, dict(ISOLATED, versions=[1, 2])])
    assert rollout.restarting_hosts(before, after) == ["a", "b"]
    assert rollout.restarting_hosts(before, planned([SHARED, dict(ISOLATED, versions=[2, 3])])) == []


@pytest.mark.parametrize("restarting", [None, {"union": [], "new": []}, {"union": ["b"], "new": ["a", "c"]}])
def test_every_stage_routes_only_versions_that_the_hosts_behind_it_serve(restarting):
    """Walk the stages as the playbook does: no route may name a version that no routed host serves.

    A host that is not drained serves the stage's routes both before and
    after its move, since its containers keep serving while they change.
    """
    batches = [["a"], ["b"], ["c"]]
    union = rollout.rollout_union(OLD, TARGET)
    declarations = {"old": OLD, "new": TARGET, "union": union}
    served = dict((h, OLD) for b in batches for h in b)
    routes, drained = OLD, []
    for stage in rollout.rollout_stages(batches, restarting) + [None]:
        if stage is None or stage["reload"]:
            routes = declarations[stage["routes"]] if stage else TARGET
            drained = stage["batch"] if stage and stage["drain"] else []
        assert stage is None or not stage["drain"] or drained == stage["batch"], stage
        after = dict(served, **dict((h, declarations[stage["serves"]]) for h in stage["batch"])) if stage else served
        for model in routes:
            for version in model["versions"]:
                assert any(h not in drained and all(any(m["name"] == model["name"] and version in m["versions"]
                                                        for m in decl) for decl in (served[h], after[h]))
                           for h in served), (stage, version)
        served = after
    assert all(decl is TARGET for decl in served.values())
