"""Rolling upgrades: batches, command-line steps, and the union served in phase 1."""

import pytest

from ansible_collections.mlserve.tfserving.plugins.filter.rollout import FilterModule
from ansible_collections.mlserve.tfserving.plugins.module_utils import fleet, rollout

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
    assert half_plus["routes"] == {"split": {"stable": 80, "canary": 20}}
    assert fleet.validate_models(union) == []


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


def test_without_steps_the_target_is_the_declaration():
    assert rollout.rollout_targets(TARGET, []) == [TARGET]


def test_step_problems_name_the_step():
    assert rollout.step_problems(OLD, [{"model": "resnet", "split": {}}, {"model": "half_plus"},
                                       {"model": "half_plus", "weights": 1}, "x"]) == [
        "rollout_steps[0].model: 'resnet' is not a declared model (declared: half_plus, gone)",
        "rollout_steps[1]: changes nothing; give versions, labels, split or default",
        "rollout_steps[2].weights: unknown key; valid keys are model, versions, labels, split, default",
        "rollout_steps[3]: 'x' must be a mapping with model and any of versions, labels, split, default",
    ]
    assert rollout.step_problems(OLD, {"model": "x"})[0].startswith("rollout_steps: {'model': 'x'} must be a list")


def test_filters_are_the_module_utils_functions():
    filters = FilterModule().filters()
    assert filters["rollout_union"] is rollout.rollout_union
    assert filters["rollout_targets"] is rollout.rollout_targets
    assert filters["rollout_batches"] is rollout.rollout_batches
    assert filters["rollout_step_problems"] is rollout.step_problems


def test_stages_drain_each_batch_twice_and_switch_routes_with_the_first_drain_of_phase_3():
    stages = rollout.rollout_stages([["a"], ["b"]])
    assert [(s["phase"], s["batch"], s["routes"], s["serves"]) for s in stages] == [
        (1, ["a"], "from", "union"), (1, ["b"], "from", "union"),
        (3, ["a"], "to", "to"), (3, ["b"], "to", "to")]
    assert rollout.rollout_stages([]) == []


def test_every_stage_routes_only_versions_that_the_hosts_behind_it_serve():
    """Walk the stages as the playbook does: no route may name a version that no undrained host serves."""
    batches = [["a"], ["b"], ["c"]]
    union = rollout.rollout_union(OLD, TARGET)
    declarations = {"from": OLD, "to": TARGET, "union": union}
    served = dict((h, OLD) for b in batches for h in b)
    for stage in rollout.rollout_stages(batches) + [None]:
        drained = stage["batch"] if stage else []
        routes = declarations[stage["routes"]] if stage else TARGET
        for model in routes:
            for version in model["versions"]:
                assert any(h not in drained and any(m["name"] == model["name"] and version in m["versions"]
                                                    for m in decl) for h, decl in served.items()), (stage, version)
        if stage:
            served.update((h, declarations[stage["serves"]]) for h in stage["batch"])
    assert all(decl is TARGET for decl in served.values())
