# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet plan: the declaration and the inventory checked and derived once.

Standard library only. The action plugin ``mlserve.tfserving.fleet_plan``
reads each host's variables and calls :func:`build_plan`; roles, playbooks
and reports consume what it returns and derive nothing again.

A plan::

    {"problems": [...],                      # every problem at once
     "hosts": {host: {"profile": key}},      # each serving host's share ...
     "profiles": {key: {"units": [...],      # ... shared by hosts whose inputs
                        "models": [...]}},   #     are the same (a fleet of 200
                                             #     hosts has few distinct ones)
     "gateways": {host: gateway plan},       # pools, routes, gRPC listeners
     "sources": {model: [{version, checksum}]}}
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.mlserve.tfserving.plugins.module_utils import fleet, gateway

# Host variables the plan reads, with the value a host gets when it sets
# none. Role-prefixed ones come from the roles' defaults/main.yml (the
# action plugin passes those in); these two are collection-wide.
COLLECTION_DEFAULTS = {
    "tfserving_port_base": fleet.DEFAULT_PORT_BASE,
    "tfserving_models_root": fleet.DEFAULT_MODELS_ROOT,
}


def host_inputs(name, hostvars, defaults):
    """What the plan needs of one inventory host, with defaults filled in.

    `hostvars`: the host's variables (a mapping); `defaults`: variable name
    -> default, for variables the host does not set.
    """
    def var(key):
        value = hostvars.get(key)
        return defaults.get(key) if value is None else value

    return {
        "name": name,
        "groups": list(hostvars.get("group_names") or []),
        "address": hostvars.get("tfserving_address") or hostvars.get("ansible_host") or name,
        "port_base": var("tfserving_port_base"),
        "models_root": var("tfserving_models_root"),
        "image": var("serving_image"),
        "resources": var("serving_resources") or {},
        "config_dir": var("serving_config_dir"),
        "flags": var("serving_flags") or {},
        "gateway": dict((key[len("gateway_"):], var(key)) for key in sorted(defaults) if key.startswith("gateway_")),
    }


def _profile(host, groups_served):
    """The inputs that decide a host's units; hosts sharing them share a profile."""
    return json.dumps([sorted(g for g in host["groups"] if g in groups_served), host["port_base"],
                       host["models_root"], host["image"], host["resources"], host["config_dir"]], sort_keys=True)


def _share(declaration, host):
    """One host's models and units, from the (validated) declaration."""
    models = fleet.normalize_models(declaration, {"image": host["image"], "resources": host["resources"],
                                                  "models_root": host["models_root"]})
    units = fleet.serving_units(models, host["groups"], host["port_base"])
    for unit in units:
        unit["config_dir"] = "%s/%s" % (str(host["config_dir"]).rstrip("/"), unit["name"])
    return {"models": fleet.models_on_host(models, host["groups"]), "units": units}


def _port_base_problem(host):
    base = host["port_base"]
    if not (fleet._is_int(base) and 1 <= base <= 65535):
        return "tfserving_port_base on %s: %r is not a port; use an integer from 1 to 65535" % (host["name"], base)
    return None


def plan_inputs(declaration, options):
    """What a plan was built from, so that a role can tell whether a plan it is handed is its own."""
    return {"declaration": declaration, "drained": sorted(options.get("drained") or []),
            "served": dict(options.get("served") or {})}


def reusable(plan, declaration, options, host, need_sources):
    """Whether `plan` (from earlier in the run) answers for these inputs.

    `host`: host_inputs() of the host asking, whose role and include
    variables may differ from what the plan read from the inventory.
    """
    return (isinstance(plan, dict) and not plan.get("problems")
            and plan.get("inputs") == plan_inputs(declaration, options)
            and plan.get("host_inputs", {}).get(host["name"]) == host
            and (bool(plan.get("sources")) or not need_sources))


def build_plan(declaration, hosts, groups, options=None, read_source=None, sources=None):
    """Check and derive everything; returns the plan (see the module doc).

    `hosts`: host_inputs() of every inventory host; `groups`: the
    inventory's group names. `options`: `drained` and `served` for the
    gateway (rolling upgrades) and `gateway_hosts`, the hosts that render a
    gateway. `read_source(model)` returns a model source's
    [{version, directory, checksum}] or raises ValueError with the reason;
    without it sources are not read. `sources`: what an earlier plan of the
    run read; only models whose declared versions it lacks are read again.
    """
    options = options or {}
    problems = fleet.validate_models(declaration, groups)
    served = options.get("served") or {}
    for host, other in sorted(served.items()):
        problems += ["gateway_served_models.%s: %s" % (host, p) for p in fleet.validate_models(other, groups)]
    names = set(h["name"] for h in hosts)
    for host in sorted(set(options.get("drained") or []) - names):
        problems.append("gateway_drained_hosts: %r is not a host of this inventory" % host)
    flag_messages = {}
    for host in hosts:
        for problem in fleet.flag_problems(host["flags"], "serving_flags"):
            flag_messages.setdefault(problem, []).append(host["name"])
    problems += ["%s (on %s)" % (p, ", ".join(h)) for p, h in sorted(flag_messages.items())]
    plan = {"inputs": plan_inputs(declaration, options), "host_inputs": dict((h["name"], h) for h in hosts),
            "problems": problems, "hosts": {}, "profiles": {}, "gateways": {}, "sources": dict(sources or {})}
    if problems:
        # Later stages read the declaration's fields; they need it valid.
        return plan

    groups_served = set(m.get("hosts", fleet.DEFAULT_GROUP) for m in declaration)
    for other in served.values():
        groups_served |= set(m.get("hosts", fleet.DEFAULT_GROUP) for m in other)
    backends = []
    for host in hosts:
        if not groups_served & set(host["groups"]):
            continue
        problem = _port_base_problem(host)
        if problem:
            problems.append(problem)
            continue
        key = _profile(host, groups_served)
        if key not in plan["profiles"]:
            plan["profiles"][key] = _share(declaration, host)
        share = plan["profiles"][key]
        if share["units"]:
            plan["hosts"][host["name"]] = {"profile": key}
        units = _share(served[host["name"]], host)["units"] if host["name"] in served else share["units"]
        backends.append({"host": host["name"], "address": host["address"], "units": units})
    # Port conflicts are a property of a profile: report them once, naming its hosts.
    for key, share in sorted(plan["profiles"].items()):
        members = sorted(h for h, v in plan["hosts"].items() if v["profile"] == key)
        problems += fleet.check_port_plan(share["units"], ", ".join(members))

    models = fleet.normalize_models(declaration)
    for host in hosts:
        if host["name"] not in (options.get("gateway_hosts") or []):
            continue
        settings = host["gateway"]
        routing = gateway.gateway_plan(models, backends, {
            "drained": options.get("drained") or [], "grpc_port_base": settings.get("grpc_port_base"),
            "pin_header": settings.get("pin_header"), "pin_cookie": settings.get("pin_cookie")})
        problems += [p for p in routing.pop("problems") if p not in problems]
        tls = bool(settings.get("tls_certificate"))
        if tls != bool(settings.get("tls_certificate_key")):
            problems.append("gateway_tls_certificate (%s) and gateway_tls_certificate_key (%s) on %s must be set "
                            "together (TLS on) or both left empty (TLS off)"
                            % (json.dumps(settings.get("tls_certificate")),
                               json.dumps(settings.get("tls_certificate_key")), host["name"]))
        problems += gateway.gateway_port_problems(
            {"http": settings.get("http_port"), "status": settings.get("status_port"),
             "https": settings.get("https_port") if tls else None}, routing["grpc"], host["name"])
        plan["gateways"][host["name"]] = routing

    if read_source is not None:
        for index, model in enumerate(models):
            known = dict((v["version"], v) for v in plan["sources"].get(model["name"], []))
            if set(model["versions"]) <= set(known):
                continue
            try:
                plan["sources"][model["name"]] = read_source(model)
            except ValueError as e:
                problems.append("tfserving_models[%d].source: %s" % (index, e))
    return plan


def for_ansible(plan, parts=None):
    """The plan as the action returns it: only `parts` (all when None), and
    each gateway's upstream blocks as text instead of server lists.

    Ansible processes a task result object by object; a large fleet's server
    lists (a pool per version times every host) would cost it seconds per
    task, the same lists as one text almost nothing.
    """
    out = dict((key, value) for key, value in plan.items() if parts is None or key in parts or key == "problems")
    if "gateways" in out:
        gateways = {}
        for host, routing in plan["gateways"].items():
            if "upstreams" in routing:  # a plan the action returned before
                gateways[host] = routing
                continue
            compact = dict(routing, upstreams=gateway.render_upstreams(routing, plan["host_inputs"][host]["gateway"]))
            compact["pools"] = [dict((k, v) for k, v in p.items() if k != "servers") for p in routing["pools"]]
            compact["grpc"] = [dict((k, v) for k, v in g.items() if k != "servers") for g in routing["grpc"]]
            gateways[host] = compact
        out["gateways"] = gateways
    return out
