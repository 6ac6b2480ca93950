# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rolling upgrades: batches of hosts, declaration steps, and the union state.

A step from declaration OLD to NEW never lets the gateway route to a
version that the hosts behind it do not serve, and never stops a container
that the gateway still sends requests to. Its stages (rollout_stages), in
this order:

- "serve the union": hosts serve union(OLD, NEW), every version of both
  with OLD's labels; the gateway still routes by OLD;
- "route to the new and drop the old": the gateway routes by NEW, which
  every host serves within the union, and hosts serve exactly NEW;
- "drop the old": the further batches serve exactly NEW.

A host whose containers the move keeps (versions and labels change in
models.config, which the server polls; new containers start beside) takes
each move in one stage with all such hosts, not drained. A host whose
containers the move recreates (restarting_hosts: a new image, resources or
port) is drained at the gateway for it, batch by batch. Each reload also
puts the previous drained batch back, and the step ends with one more
reload that puts the last one back. playbooks/tasks/stage.yml carries out
one stage.

Standard library only; plugins/filter/rollout.py wraps these functions.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import re

from ansible_collections.mlserve.tfserving.plugins.module_utils import fleet, gateway, metrics

try:
    from collections.abc import Mapping
except ImportError:  # Python 2
    from collections import Mapping

STEP_KEYS = ("model", "versions", "labels", "split", "default", "analysis")
# What a step changes (analysis only judges the change).
CHANGE_KEYS = ("versions", "labels", "split", "default")


def _plain(value):
    """A plain copy of nested mappings and lists.

    Not copy.deepcopy: Ansible hands filters lazily templated containers,
    and only reading them through their mapping and sequence interfaces
    yields the templated values.
    """
    if isinstance(value, Mapping):
        return dict((k, _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def rollout_batches(hosts, size=1):
    """The hosts in batches of `size`: a count, or a percentage such as "50%"."""
    hosts = list(hosts)
    if not hosts:
        return []
    text = str(size).strip()
    match = re.match(r"^(\d+)%$", text)
    if match:
        count = max(1, int(math.ceil(len(hosts) * int(match.group(1)) / 100.0)))
    elif text.isdigit() and int(text) > 0:
        count = int(text)
    else:
        raise ValueError("rollout_batch: %r is not a host count or a percentage (e.g. 1 or 50%%)" % (size,))
    return [hosts[i:i + count] for i in range(0, len(hosts), count)]


# What a container is made of besides its models.config (versions and labels).
_CONFIG_ONLY = ("versions", "labels")


def _units(plan, host):
    """The host's units in a plan as fleet_plan returns it (hosts, profiles); none when it serves nothing."""
    entry = plan["hosts"].get(host)
    return plan["profiles"][entry["profile"]]["units"] if entry else []


def restarting_hosts(before, after, removed=False):
    """The hosts whose containers moving from plan `before` to plan `after` recreates, sorted.

    Plans as fleet_plan returns them (hosts, profiles). A container that
    only one of them has is started or removed, not recreated: what starts
    is new to the gateway, and what goes is no longer routed to once the
    gateway routes by `after`. `removed`: count a host that loses a
    container too, for a move made while the gateway still routes by
    `before` (to the union: a model whose topology or hosts change drops
    its old containers there, and another may take their ports).
    """
    def containers(plan, host):
        return dict((u["name"], dict((k, v) for k, v in u.items() if k not in _CONFIG_ONLY))
                    for u in _units(plan, host))

    restarting = []
    for host in sorted(set(before["hosts"]) | set(after["hosts"])):
        old, new = containers(before, host), containers(after, host)
        if any(old[name] != new[name] for name in set(old) & set(new)) or (removed and set(old) - set(new)):
            restarting.append(host)
    return restarting


def drain_problems(stages, before, after, batch):
    """Drained stages that would leave a routed version no server: named with rollout_batch before any stage runs.

    `before`, `after`: the plans of the declarations the stages route by
    ("old", "new"); `batch`: rollout_batch as given. The gateway refuses
    such a stage itself, but only when the run reaches it.
    """
    served = {}
    for routes, plan in (("old", before), ("new", after)):
        served[routes] = {}
        for host in plan["hosts"]:
            for unit in _units(plan, host):
                served[routes].setdefault(unit["model"], set()).add(host)
    problems = []
    for stage in stages:
        if not stage["drain"]:
            continue
        for model, hosts in sorted(served[stage["routes"]].items()):
            if hosts <= set(stage["batch"]):
                problem = ("rollout_batch %s drains %s at once, every host that serves %s, whose containers this step "
                           "recreates: nothing would answer %s meanwhile. Use a smaller rollout_batch, or serve %s on "
                           "more hosts first." % (json.dumps(batch), ", ".join(sorted(hosts)), model, model, model))
                if problem not in problems:
                    problems.append(problem)
    return problems


def rollout_stages(batches, restarting=None):
    """The stages of one step, in order, each a mapping.

    does: what the stage does; batch: its hosts; drain: whether the gateway
    drains them first; reload: whether the stage reloads the gateway;
    routes: the declaration the gateway routes by ("old" or "new"); serves:
    the declaration the batch then serves ("union" or "new").

    `restarting`: {"union": hosts, "new": hosts} whose containers the move to
    that declaration recreates (restarting_hosts); None counts every host.
    A stage reloads the gateway to drain its batch, and at the switch to the
    new routes.
    """
    stages = []
    for serves, routes in (("union", "old"), ("new", "new")):
        hosts = None if restarting is None else set(restarting[serves])
        calm = [h for b in batches for h in b if hosts is not None and h not in hosts]
        drained = [[h for h in b if hosts is None or h in hosts] for b in batches]
        phase = ([(calm, False)] if calm else []) + [(b, True) for b in drained if b]
        for i, (batch, drain) in enumerate(phase):
            switch = serves == "new" and i == 0
            does = ("serve the union" if serves == "union" else
                    "route to the new and drop the old" if switch else "drop the old")
            stages.append({"does": does, "batch": batch, "drain": drain, "reload": drain or switch,
                           "routes": routes, "serves": serves})
    return stages


def step_problems(declaration, steps, monitoring_url=None):
    """What is wrong with the command line's steps, each naming the step.

    `monitoring_url`: the plan's Prometheus; a step with `analysis` needs one.
    """
    problems = []
    names = [m.get("name") for m in declaration if isinstance(m, dict)]
    if not isinstance(steps, list):
        return ["rollout_steps: %r must be a list of steps, e.g. [{model: m, split: {stable: 50, canary: 50}}]"
                % (steps,)]
    for i, step in enumerate(steps):
        where = "rollout_steps[%d]" % i
        if not isinstance(step, dict):
            problems.append("%s: %r must be a mapping with model and any of %s" % (where, step, ", ".join(STEP_KEYS[1:])))
            continue
        for key in sorted(set(step) - set(STEP_KEYS)):
            problems.append("%s.%s: unknown key; valid keys are %s" % (where, key, ", ".join(STEP_KEYS)))
        if step.get("model") not in names:
            problems.append("%s.model: %r is not a declared model (declared: %s)"
                            % (where, step.get("model"), ", ".join(str(n) for n in names)))
        elif not set(step) & set(CHANGE_KEYS):
            problems.append("%s: changes nothing; give versions, labels, split or default" % where)
        if "analysis" in step:
            problems += metrics.analysis_problems(step["analysis"], where + ".analysis")
            if not monitoring_url:
                problems.append("%s.analysis: needs Prometheus, and the inventory has no monitoring host (group "
                                "monitoring, the mlserve.tfserving.monitoring role)" % where)
    return problems


def analysis_versions(before, after, model):
    """The versions a step's analysis judges: those whose share of the unversioned path grew.

    A step that moves no traffic (it only adds a version, say) judges every
    version the unversioned path reaches after it.
    """
    def weights(declaration):
        found = [m for m in fleet.normalize_models([m for m in declaration if m["name"] == model])]
        return gateway.unversioned_weights(found[0]) if found else {}

    old, new = weights(before), weights(after)
    grown = sorted(v for v, share in new.items() if share > old.get(v, 0))
    return [{"model": model, "version": v} for v in grown or sorted(new)]


def rollout_targets(declaration, steps):
    """The declaration after each step, cumulatively; the declaration itself without steps.

    A step replaces the model's versions or labels, or its routes' split or
    default (an empty split removes it). Each result is validated like any
    declaration before the rollout starts.
    """
    current = _plain(declaration)
    if not steps:
        return [current]
    targets = []
    for step in steps:
        current = _plain(current)
        model = [m for m in current if m["name"] == step["model"]][0]
        for key in ("versions", "labels"):
            if key in step:
                model[key] = _plain(step[key])
        declared = "routes" in model
        routes = model.setdefault("routes", {})
        for key in ("split", "default"):
            if key in step:
                if step[key] in (None, {}):
                    routes.pop(key, None)
                else:
                    routes[key] = _plain(step[key])
        if not routes and not declared:
            del model["routes"]  # as the user writes it: the recorded state compares equal to it
        targets.append(current)
    return targets


def rollout_union(old, target):
    """What a host serves from "serve the union" on: every version of both, OLD's labels and routes.

    A model only in TARGET is served as TARGET declares it (the gateway does
    not route to it until the switch to the new routes); a model only in
    OLD stays as it was until its host drops the old.

    A shared model that gains a version newer than OLD's routes name gives
    it to unversioned gRPC calls as soon as its server loads it (TF Serving
    answers those with its newest version), while REST still routes by OLD:
    the union says so with routes.grpc_unversioned: newest, which the
    declaration check asks of such a model.
    """
    old_by_name = dict((m["name"], m) for m in old)
    union = []
    for model in target:
        before = old_by_name.pop(model["name"], None)
        if before is None:
            union.append(_plain(model))
            continue
        merged = _plain(model)
        merged["versions"] = sorted(set(model["versions"]) | set(before["versions"]))
        merged["labels"] = _plain(before.get("labels") or {})
        merged["routes"] = _plain(before.get("routes") or {})
        if merged["versions"] != sorted(before["versions"]) and merged.get("topology", "shared") == "shared":
            merged["routes"]["grpc_unversioned"] = "newest"
        union.append(merged)
    union += [_plain(m) for m in old if m["name"] in old_by_name]
    return union
