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
