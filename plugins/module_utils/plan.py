# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet plan: the declaration and the inventory checked and derived once.

Standard library only. The action plugin ``mlserve.tfserving.fleet_plan``
reads each host's variables and calls :func:`build_plan`; roles, playbooks
and reports consume what it returns and derive nothing again.

A plan::

    {"problems": [...],                      # every problem at once
     "warnings": [...],                      # what works but is likely a mistake
     "hosts": {host: {"profile": key}},      # each serving host's share ...
     "profiles": {key: {"units": [...],      # ... shared by hosts whose inputs
                        "models": [...]}},   #     are the same (a fleet of 200
                                             #     hosts has few distinct ones)
     "gateways": {host: gateway plan},       # pools, routes, gRPC listeners
     "firewalls": {host: {profile, gateways, monitors, allowed}},  # serving hosts with firewall_enabled
     "monitoring": {url, servers, versions, gateways},  # what Prometheus scrapes (metrics.py)
     "sources": {model: [{version, checksum}]}}
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import ipaddress
import json
import re

from ansible_collections.mlserve.tfserving.plugins.module_utils import (alerting, batching, firewall, fleet, gateway,
                                                                        gpus, hardening, metrics)

HOST_NAME = re.compile(r"\A[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z")

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
        "batching": var("serving_batching") or {},
        "gpu_host": var("serving_gpu_host"),
        "config_poll_seconds": var("serving_config_poll_seconds"),
        "wait_timeout": var("serving_wait_timeout"),
        "hardening": dict((name, var("serving_" + name)) for name in hardening.HARDENING),
        "monitoring": {"serving_enabled": var("serving_monitoring_enabled"),
                       "serving_path": var("serving_monitoring_path"), "port": var("monitoring_port")},
        # What is wrong with its Alertmanager settings, not the settings: a webhook URL or an SMTP
        # password is a secret, and the plan is a task result.
        "alerting_problems": alerting.problems(
            var("monitoring_alertmanager_receivers"), var("monitoring_alertmanager_route"),
            var("monitoring_alertmanager_inhibit_rules"), var("monitoring_alertmanager_smtp"))
        if "monitoring" in (hostvars.get("group_names") or []) else [],
        "firewall": dict((key[len("firewall_"):], var(key)) for key in firewall.VARIABLES),
        "gateway": dict((key[len("gateway_"):], _redacted(key, var(key)))
                        for key in sorted(defaults) if key.startswith("gateway_")),
    }


# No leading "~": nginx would read the map key as a regular expression.
API_KEY = re.compile(r"\A[A-Za-z0-9._+/=-][A-Za-z0-9._~+/=-]{15,511}\Z")
CLIENT_NAME = re.compile(r"\A[A-Za-z0-9_.-]{1,64}\Z")
RATE = re.compile(r"\A[1-9][0-9]{0,8}r/[sm]\Z")
HEADER = re.compile(r"\A[A-Za-z0-9-]{1,64}\Z")
# nginx reads a cookie as $cookie_<name>, and a variable's name ends at any other character.
COOKIE = re.compile(r"\A[A-Za-z0-9_]{1,64}\Z")
# logrotate's size: bytes, or k, M, G.
LOG_SIZE = re.compile(r"\A[1-9][0-9]{0,8}[kMG]?\Z")
LOG_PERIODS = ("hourly", "daily", "weekly", "monthly", "yearly")


def _redacted(key, value):
    """gateway_api_keys without the keys: the plan is a task result, which Ansible may log.

    Each key is replaced by whether it is usable and a digest, enough to
    find a malformed or repeated key and name it by its entry.
    """
    if key != "gateway_api_keys" or not isinstance(value, list):
        return value
    entries = []
    for entry in value:
        if not isinstance(entry, dict):
            entries.append({"malformed": True})
            continue
        secret = entry.get("key")
        entries.append({"name": entry.get("name"), "models": entry.get("models"),
                        "key_usable": isinstance(secret, str) and bool(API_KEY.match(secret)),
                        # nginx matches keys without regard to case.
                        "key_digest": hashlib.sha256(secret.lower().encode("utf-8")).hexdigest()
                        if isinstance(secret, str) else None})
    return entries


def api_key_model_problems(settings, model_names):
    """API keys that name a model the declaration does not serve."""
    entries = settings.get("api_keys") if isinstance(settings.get("api_keys"), list) else []
    return ["gateway_api_keys[%d].models: %r is not a model of tfserving_models (%s)"
            % (i, m, ", ".join(sorted(model_names)))
            for i, entry in enumerate(entries) if isinstance(entry.get("models"), list)
            for m in entry["models"] if m not in model_names]


def access_problems(settings):
    """Problems of a gateway's client access settings (API keys, rate limits), never quoting a key."""
    problems = []
    entries = settings.get("api_keys")
    if not isinstance(entries, list):
        return ["gateway_api_keys: %r is not a list; list entries {name, key, models}" % (type(entries).__name__,)]
    names, digests = set(), set()
    for i, entry in enumerate(entries):
        where = "gateway_api_keys[%d]" % i
        if entry.get("malformed"):
            problems.append("%s: is not a mapping; use {name: CLIENT, key: SECRET, models: [MODEL, ...]}" % where)
            continue
        name = entry.get("name")
        if not (isinstance(name, str) and CLIENT_NAME.match(name)):
            problems.append("%s.name: %r is not a client name; use 1 to 64 of A-Z a-z 0-9 _ . -" % (where, name))
        elif name.lower() in names:
            problems.append("%s.name: %r names two entries (names are compared without regard to case); give each "
                            "client one entry" % (where, name))
        names.add(name.lower() if isinstance(name, str) else name)
        if not entry.get("key_usable"):
            problems.append("%s.key (of %s): is not a usable key; use 16 to 512 of A-Z a-z 0-9 . _ ~ + / = -, not "
                            "starting with ~ (the value is not shown)" % (where, name))
        elif entry["key_digest"] in digests:
            problems.append("%s.key (of %s): is the key of another entry (keys are compared without regard to case); "
                            "give each client its own key" % (where, name))
        digests.add(entry.get("key_digest"))
        models = entry.get("models")
        if models is not None and not (isinstance(models, list) and all(isinstance(m, str) for m in models)):
            problems.append("%s.models: %r is not a list of model names (omit it to allow every model)" % (where, models))
    # Each header also names an nginx variable ($http_...) and gRPC metadata (lower case).
    headers = {}
    for key in ("api_key_header", "pin_header", "pin_version_header"):
        header = settings.get(key)
        if not (isinstance(header, str) and HEADER.match(header)):
            problems.append("gateway_%s: %r is not an HTTP header name; use 1 to 64 of A-Z a-z 0-9 -" % (key, header))
        elif header.lower() in headers:
            problems.append("gateway_%s: %r is already gateway_%s; give each its own header"
                            % (key, header, headers[header.lower()]))
        else:
            headers[header.lower()] = key
    cookie = settings.get("pin_cookie")
    if not (isinstance(cookie, str) and COOKIE.match(cookie)):
        problems.append("gateway_pin_cookie: %r is not a cookie name nginx can read; use 1 to 64 of A-Z a-z 0-9 _"
                        % (cookie,))
    for kind in ("client", "model"):
        rate, burst = settings.get("%s_rate" % kind), settings.get("%s_burst" % kind)
        if rate not in ("", None) and not (isinstance(rate, str) and RATE.match(rate)):
            problems.append("gateway_%s_rate: %r is not a rate; use requests per second or minute such as '20r/s' "
                            "or '600r/m', or '' for no limit" % (kind, rate))
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 0:
            problems.append("gateway_%s_burst: %r is not a number of requests (0 or more)" % (kind, burst))
    return problems


def rotation_problems(settings):
    """Problems of the access log's rotation settings, as logrotate reads them."""
    problems = []
    period, size, keep = (settings.get("access_log_rotate_%s" % k) for k in ("period", "size", "keep"))
    if period not in LOG_PERIODS:
        problems.append("gateway_access_log_rotate_period: %r is not a period; use one of %s"
                        % (period, ", ".join(LOG_PERIODS)))
    if not (isinstance(size, str) and LOG_SIZE.match(size)):
        problems.append("gateway_access_log_rotate_size: %r is not a size; use bytes, or a number with k, M or G "
                        "such as '100M'" % (size,))
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        problems.append("gateway_access_log_rotate_keep: %r is not a number of rotated files (1 or more)" % (keep,))
    log = settings.get("access_log")
    # logrotate reports a file in two rules as a duplicate and skips the
    # second rule's file: nginx's own logs would never rotate again.
    if isinstance(log, str) and gateway.debian_rotates(log):
        problems.append("gateway_access_log: %r is also in Debian's nginx logrotate rule (%s), which logrotate would "
                        "then skip; use a name not ending in .log (the default is /var/log/nginx/tfserving-access.json) "
                        "or another directory" % (log, gateway.DEBIAN_NGINX_LOGS))
    return problems


def _profile(host, groups_served):
    """The inputs that decide a host's units; hosts sharing them share a profile."""
    return json.dumps([sorted(g for g in host["groups"] if g in groups_served), host["port_base"],
                       host["models_root"], host["image"], host["resources"], host["batching"],
                       host["config_dir"], _metrics_path(host)], sort_keys=True)


def _metrics_path(host):
    """Where the host's servers answer Prometheus; None when serving_monitoring_enabled is off."""
    settings = host["monitoring"]
    return settings["serving_path"] if settings["serving_enabled"] is True else None


def declaration_differences(me, declaration, others):
    """Hosts whose tfserving_models is missing or differs from `me`'s: one declaration serves the whole fleet.

    `others`: host -> that host's tfserving_models (None when not set).
    """
    missing = sorted(h for h, d in others.items() if d is None)
    differ = sorted(h for h, d in others.items() if d is not None and d != declaration)
    problems = []
    if missing:
        problems.append("tfserving_models is not set on %s (it is on %s): declare the fleet once, in "
                        "group_vars/all, so that every serving and gateway host reads it" % (", ".join(missing), me))
    if differ:
        problems.append("tfserving_models on %s differs from the one on %s: declare the fleet once, in "
                        "group_vars/all, and override it nowhere" % (", ".join(differ), me))
    return problems


def is_plain(value):
    """Whether `value` (an inventory variable as written) holds no Jinja template: it reads the same on every host."""
    if isinstance(value, str):
        return not any(marker in value for marker in ("{{", "{%", "{#"))
    if isinstance(value, dict):
        return all(is_plain(k) and is_plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(is_plain(v) for v in value)
    return True


def served_hosts(declaration, groups):
    """The hosts that serve the declaration or render the gateway."""
    names = set(groups.get("gateway") or [])
    for group in _groups_served([declaration]):
        names |= set(groups.get(group) or [])
    return names


def _usable_models(declaration, problems):
    """The positions of the models that no problem names; None when the declaration is not a list of models."""
    if not isinstance(declaration, list):
        return None
    named = set()
    for problem in problems:
        match = re.match(r"tfserving_models\[(\d+)\]", problem)
        if match:
            named.add(int(match.group(1)))
        elif problem.startswith("tfserving_models"):
            return None
    return [i for i in range(len(declaration)) if i not in named]


def _groups_served(declarations):
    """The inventory groups that serve models, read from declarations that may not be valid yet."""
    groups = set()
    for declaration in declarations:
        for model in declaration if isinstance(declaration, list) else []:
            hosts = model.get("hosts", fleet.DEFAULT_GROUP) if isinstance(model, dict) else None
            groups.add(hosts if isinstance(hosts, str) else fleet.DEFAULT_GROUP)
    return groups


def _share(declaration, host):
    """One host's models and units, from the (validated) declaration."""
    # Invalid batching defaults are a host problem already; the rest is still derived without them.
    defaults = {"image": host["image"], "resources": host["resources"], "models_root": host["models_root"],
                "batching": {} if batching.problems(host["batching"], "") else host["batching"]}
    models = fleet.normalize_models(declaration, defaults)
    units = fleet.serving_units(models, host["groups"], host["port_base"])
    for unit in units:
        unit["config_dir"] = "%s/%s" % (str(host["config_dir"]).rstrip("/"), unit["name"])
        unit["metrics_path"] = _metrics_path(host)
    return {"models": fleet.models_on_host(models, host["groups"]), "units": units}


def _metrics_port(settings, key):
    """A gateway's metrics listener port, when metrics are on and it is a port."""
    value = settings.get(key)
    return value if settings.get("metrics_enabled") is True and _is_port(value) else None


def _is_port(value):
    return fleet._is_int(value) and 1 <= value <= 65535


def _address_problem(address):
    """An address the gateway can put in front of a port: a host name, IPv4 or IPv6 address, without a port."""
    try:
        ipaddress.ip_address(address)
        return None
    except ValueError:
        pass
    if isinstance(address, str) and HOST_NAME.match(address):
        return None
    return ("tfserving_address: %r is not a host name or IP address (without a port); the gateway adds each "
            "server's port itself" % (address,))


def timing_problems(poll, timeout):
    """serving_config_poll_seconds and serving_wait_timeout: the server must re-read models.config, and a
    label move (two config writes, each read at the next poll) must fit in the wait."""
    def seconds(value):
        """As the roles' int type takes it (-e serving_wait_timeout=120 is a string), when 1 or more."""
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        return value if not isinstance(value, bool) and isinstance(value, int) and value >= 1 else None
    poll_seconds, wait_seconds = seconds(poll), seconds(timeout)
    problems = []
    if poll_seconds is None:
        problems.append("serving_config_poll_seconds: %r is not a number of seconds (1 or more); with 0 the server "
                        "reads models.config once, and no version or label change reaches it without a restart"
                        % (poll,))
    if wait_seconds is None:
        problems.append("serving_wait_timeout: %r is not a number of seconds (1 or more)" % (timeout,))
    elif poll_seconds is not None and wait_seconds <= 2 * poll_seconds:
        problems.append("serving_wait_timeout: %s is not more than two polls of serving_config_poll_seconds (%s s "
                        "each), which a label move waits for; give it more than %d" % (timeout, poll, 2 * poll_seconds))
    return problems


def host_problems(host, serving, gateway_host, monitor=False):
    """Problems of one host's own variables, without the host's name (build_plan adds the hosts)."""
    problems = metrics.host_problems(host, serving, gateway_host, monitor)
    if monitor:
        problems += host["alerting_problems"]
    if serving:
        if not _is_port(host["port_base"]):
            problems.append("tfserving_port_base: %r is not a port; use an integer from 1 to 65535" % (host["port_base"],))
        problems += [p for p in [_address_problem(host["address"])] if p]
        problems += fleet.image_problems("serving_image", host["image"])
        problems += fleet.flag_problems(host["flags"], "serving_flags")
        problems += batching.problems(host["batching"], "serving_batching")
        problems += timing_problems(host["config_poll_seconds"], host["wait_timeout"])
        if not isinstance(host["gpu_host"], bool):
            problems.append("serving_gpu_host: %r is not true or false" % (host["gpu_host"],))
        problems += hardening.hardening_problems(host["hardening"], "serving_")
    if gateway_host:
        settings = host["gateway"]
        for key in ("http_port", "status_port", "https_port"):
            if not _is_port(settings.get(key)):
                problems.append("gateway_%s: %r is not a port; use an integer from 1 to 65535" % (key, settings.get(key)))
        base = settings.get("grpc_port_base")
        if base is not None and not _is_port(base):
            problems.append("gateway_grpc_port_base: %r is not a port; use an integer from 1 to 65535, or null for "
                            "no gRPC listeners" % (base,))
        problems += access_problems(settings) + rotation_problems(settings)
        if bool(settings.get("tls_certificate")) != bool(settings.get("tls_certificate_key")):
            problems.append("gateway_tls_certificate (%s) and gateway_tls_certificate_key (%s) must be set together "
                            "(TLS on) or both left empty (TLS off)"
                            % (json.dumps(settings.get("tls_certificate")), json.dumps(settings.get("tls_certificate_key"))))
        problems += client_ca_problems(settings)
    return problems


def client_ca_problems(settings):
    """gateway_tls_client_ca: client certificates can only be asked for on TLS listeners, all of them."""
    client_ca = settings.get("tls_client_ca")
    if not client_ca:
        return []
    if not settings.get("tls_certificate"):
        return ["gateway_tls_client_ca (%s) needs TLS: set gateway_tls_certificate and gateway_tls_certificate_key, "
                "or leave gateway_tls_client_ca empty" % json.dumps(client_ca)]
    if settings.get("grpc_plaintext"):
        return ["gateway_tls_client_ca (%s) and gateway_grpc_plaintext: true exclude each other: a plaintext gRPC "
                "listener cannot ask for a client certificate; set gateway_grpc_plaintext: false, or leave "
                "gateway_tls_client_ca empty" % json.dumps(client_ca)]
    return []


def _on_hosts(messages):
    """Problems found on several hosts, once each, naming the hosts."""
    by_message = {}
    for message, host in messages:
        by_message.setdefault(message, []).append(host)
    return ["%s (on %s)" % (m, ", ".join(h)) for m, h in sorted(by_message.items())]


def _unit_problems(units, hosts):
    """Within one profile: container names used twice, ports past 65535."""
    problems = []
    seen = {}
    for unit in units:
        if unit["name"] in seen:
            problems.append("container %s on %s would run both %s and %s; rename one of the models in "
                            "tfserving_models"
                            % (unit["name"], hosts, seen[unit["name"]], _describe(unit)))
        seen.setdefault(unit["name"], _describe(unit))
        for key in ("grpc_port", "rest_port"):
            if not _is_port(unit[key]):
                problems.append("%s on %s gets port %d, past 65535; lower tfserving_port_base or pin its ports"
                                % (unit["name"], hosts, unit[key]))
    return problems


def _describe(unit):
    if unit["topology"] == "isolated":
        return "version %d of %s" % (unit["versions"][0], unit["model"])
    return "model %s" % unit["model"]


def _shared_addresses(backends):
    """Two serving hosts answering at one address and port: a pool would list one server twice."""
    claims = {}
    problems = []
    for backend in backends:
        for unit in backend["units"]:
            for key in ("grpc_port", "rest_port"):
                where = (backend["address"], unit[key])
                other = claims.setdefault(where, (backend["host"], unit["name"]))
                if other[0] != backend["host"]:
                    problems.append("%s and %s both answer at %s:%d (%s, %s); give each serving host its own "
                                    "tfserving_address or tfserving_port_base"
                                    % (other[0], backend["host"], where[0], where[1], other[1], unit["name"]))
    return problems


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
    # The models without a problem of their own are still derived, so that
    # a mistake in one model does not hide the port or routing problems of
    # the others.
    usable = _usable_models(declaration, problems)
    served = options.get("served") or {}
    for host, other in sorted(served.items()):
        served_problems = fleet.validate_models(other, groups)
        problems += ["gateway_served_models.%s: %s" % (host, p) for p in served_problems]
        if served_problems:
            served = {}
    names = set(h["name"] for h in hosts)
    for host in sorted(set(options.get("drained") or []) - names, key=str):
        problems.append("gateway_drained_hosts: %r is not a host of this inventory" % (host,))
    for host in sorted(set(served) - names, key=str):
        problems.append("gateway_served_models: %r is not a host of this inventory" % (host,))
    gateway_hosts = set(options.get("gateway_hosts") or [])
    monitor_hosts = set(options.get("monitoring_hosts") or [])
    groups_served = _groups_served([declaration] + list(served.values()))
    serving_hosts = [h for h in hosts if groups_served & set(h["groups"])]
    serving_names = set(h["name"] for h in serving_hosts)
    host_level = _on_hosts((p, h["name"]) for h in hosts
                           for p in host_problems(h, h["name"] in serving_names, h["name"] in gateway_hosts,
                                                  h["name"] in monitor_hosts))
    problems += host_level
    problems += firewall.plan_problems(hosts, serving_names, gateway_hosts, monitor_hosts)
    plan = {"inputs": plan_inputs(declaration, options), "host_inputs": dict((h["name"], h) for h in hosts),
            "problems": problems, "warnings": [], "hosts": {}, "profiles": {}, "gateways": {}, "firewalls": {},
            "monitoring": {"url": None, "servers": [], "versions": [], "gateways": []},
            "sources": dict(sources or {})}
    if usable is None or any(not _is_port(h["port_base"]) for h in serving_hosts):
        # The derivation needs a list of models and every port base.
        return plan
    declaration = [declaration[i] for i in usable]

    backends = []
    for host in serving_hosts:
        key = _profile(host, groups_served)
        if key not in plan["profiles"]:
            plan["profiles"][key] = _share(declaration, host)
        share = plan["profiles"][key]
        if share["units"]:
            plan["hosts"][host["name"]] = {"profile": key}
        units = _share(served[host["name"]], host)["units"] if host["name"] in served else share["units"]
        backends.append({"host": host["name"], "address": host["address"], "units": units})
    # A profile's problems are the same on each of its hosts: reported once, naming them.
    for key, share in sorted(plan["profiles"].items()):
        members = ", ".join(sorted(h for h, v in plan["hosts"].items() if v["profile"] == key))
        problems += _unit_problems(share["units"], members) or fleet.check_port_plan(share["units"], members)
    problems += _shared_addresses(backends)
    unit_problems, plan["warnings"] = _unit_findings(plan)
    problems += unit_problems
    plan["firewalls"] = firewall.host_firewalls(
        hosts, dict((h["name"], _profile(h, groups_served)) for h in serving_hosts), gateway_hosts, monitor_hosts)
    plan["monitoring"] = metrics.scrape_plan(plan["host_inputs"], plan, gateway_hosts, monitor_hosts)

    models = fleet.normalize_models(declaration)
    for position, model in zip(usable, models):
        model["position"] = position  # in tfserving_models, for the messages
    for host in hosts:
        if host["name"] not in gateway_hosts:
            continue
        settings = host["gateway"]
        problems += ["%s (on %s)" % (p, host["name"])
                     for p in api_key_model_problems(settings, [m["name"] for m in models])]
        routing = gateway.gateway_plan(models, backends, {
            "drained": options.get("drained") or [], "grpc_port_base": settings.get("grpc_port_base"),
            "pin_header": settings.get("pin_header"), "pin_cookie": settings.get("pin_cookie"),
            "pin_version_header": settings.get("pin_version_header"),
            "grpc_tls": bool(settings.get("tls_certificate")) and not settings.get("grpc_plaintext"),
            "client_certificates": bool(settings.get("tls_certificate") and settings.get("tls_client_ca"))})
        problems += [p for p in routing.pop("problems") if p not in problems]
        routing["client"] = gateway.client_endpoint(settings, host["address"])
        routing["rotate"] = gateway.log_rotation(settings)
        routing["listen"] = gateway.listeners(settings, routing["grpc"])
        # A host in both groups: its gateway must not listen on its serving ports.
        own = plan["hosts"].get(host["name"])
        serving_ports = dict((u[key], "%s (%s)" % (u["name"], kind)) for u in (
            plan["profiles"][own["profile"]]["units"] if own else []) for key, kind in (("grpc_port", "gRPC"),
                                                                                      ("rest_port", "REST")))
        problems += gateway.gateway_port_problems(
            {"http": settings.get("http_port"), "status": settings.get("status_port"),
             "https": settings.get("https_port") if settings.get("tls_certificate") else None,
             # Not a port: host_problems has said so already.
             "mtail": _metrics_port(settings, "mtail_port"),
             "nginx exporter": _metrics_port(settings, "nginx_exporter_port")},
            routing["grpc"], host["name"], taken=serving_ports)
        plan["gateways"][host["name"]] = routing

    if read_source is not None:
        for index, model in zip(usable, models):
            known = dict((v["version"], v) for v in plan["sources"].get(model["name"], []))
            if set(model["versions"]) <= set(known):
                continue
            try:
                plan["sources"][model["name"]] = read_source(model)
            except ValueError as e:
                problems.append("tfserving_models[%d].source: %s" % (index, e))
        problems += _memory_problems(plan)
    return plan


def _unit_findings(plan):
    """(problems, warnings) of each host's units: their GPUs, and their server flags (the host's
    serving_flags with their own `flags`)."""
    problems, warnings = [], []
    for host, entry in sorted(plan["hosts"].items()):
        units = plan["profiles"][entry["profile"]]["units"]
        gpu_problems, gpu_warnings = gpus.host_findings(units, plan["host_inputs"][host]["gpu_host"] is True)
        problems += [(p, host) for p in gpu_problems]
        warnings += [(w, host) for w in gpu_warnings]
        host_flags = plan["host_inputs"][host]["flags"]
        if fleet.flag_problems(host_flags):
            continue  # host_problems has said so already
        for unit in units:
            flags = fleet.server_flags(host_flags, unit)
            problems += [("%s: %s" % (unit["name"], p), host) for p in fleet.server_flag_problems(flags)]
            warnings += [(w, host) for w in [fleet.thread_warning(flags, unit)] if w]
    return _on_hosts(problems), _on_hosts(warnings)


def _memory_problems(plan):
    """Units whose versions, loaded at once, would not fit their memory limit (read sources only)."""
    disk = dict((model, dict((v["version"], v["total_bytes"]) for v in versions if "total_bytes" in v))
                for model, versions in plan["sources"].items())
    found = []
    for host, entry in sorted(plan["hosts"].items()):
        for unit in plan["profiles"][entry["profile"]]["units"]:
            problem = fleet.memory_problem(unit, disk.get(unit["model"], {}))
            if problem:
                found.append((problem, host))
    return _on_hosts(found)


def for_ansible(plan, parts=None):
    """The plan as the action returns it: only `parts` (all when None), each
    gateway's upstream blocks as text instead of server lists, and the
    monitoring part's targets as one text (metrics.compact_scrape_plan).

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
            compact["grpc_pools"] = [dict((k, v) for k, v in g.items() if k != "servers") for g in routing["grpc_pools"]]
            gateways[host] = compact
        out["gateways"] = gateways
    if "monitoring" in out:
        out["monitoring"] = metrics.compact_scrape_plan(plan["monitoring"])
    return out
