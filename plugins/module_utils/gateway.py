# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gateway's routing, derived from the declaration and the whole inventory.

Standard library only; the filter plugins in plugins/filter/gateway.py are
thin wrappers, and the nginx template only prints what is computed here.

Every served (model, version) gets its own upstream pool listing every
host:port that serves it, so a request can only ever reach the version it
asked for; labels, the unversioned path and aliases are rewritten to
`/versions/N` before they leave the gateway.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import ipaddress
import json

# TF Serving's REST suffixes; nothing (the status of a version) is matched too.
VERBS = "(:predict|:classify|:regress|/metadata)?"
# Model and label names are validated (fleet.MODEL_NAME, LABEL_NAME) to
# characters that go into a regular expression or an nginx string as they are.


# The gRPC methods that pass the gateway: inference and status. Everything
# else, ModelService's HandleReloadConfigRequest above all (it would let any
# client unload or repoint every model), is answered by nginx itself.
GRPC_ALLOWED = {
    "tensorflow.serving.PredictionService": ("Classify", "GetModelMetadata", "MultiInference", "Predict", "Regress"),
    "tensorflow.serving.ModelService": ("GetModelStatus",),
}
GRPC_REFUSED = ("/tensorflow.serving.ModelService/HandleReloadConfigRequest",)


def grpc_method_pattern():
    """The nginx location regex of the allowed methods' paths (/package.Service/Method)."""
    return "^/(%s)$" % "|".join("%s/(%s)" % (service.replace(".", "\\."), "|".join(methods))
                                for service, methods in sorted(GRPC_ALLOWED.items()))


def _var(index, what):
    """nginx variable names allow no '-', model names do: number them instead."""
    return "tfs_m%d_%s" % (index, what)


def _pool_name(model, version):
    return "tfs_%s_v%d" % (model, version)


def _route(kind, pattern, model, version, upstream, rewrite=None, example=None, log_label=""):
    """`log_label`: the label the access log records for the route ("" when a version or alias was named)."""
    return {"kind": kind, "pattern": pattern, "model": model, "version": str(version), "upstream": upstream,
            "rewrite": rewrite, "example": example, "log_label": log_label}


def gateway_plan(models, backends, options=None):
    """Pools, routes, splits and gRPC listeners for the gateway.

    `models`: the normalized declaration; `backends`: each serving host's
    `host`, `address` and `units` (what it really serves, which during a
    rolling upgrade is not always `models`). `options`: `drained` (hosts
    whose servers are marked down), `grpc_port_base` (None: no gRPC
    listeners), `pin_header` and `pin_cookie` (how a client pins itself to
    a label), `pin_version_header` (how a gRPC client of an isolated model
    names a version), `grpc_tls` (the gRPC listeners serve TLS),
    `client_certificates` (every listener asks for a client certificate).
    Returns a dict with `pools`, `grpc_pools`, `grpc` (the listeners),
    `grpc_tls`, `client_certificates`, `models` (per-model split data), `routes` (nginx locations in
    match order), `pin` and `problems`.
    """
    options = options or {}
    drained = set(options.get("drained") or [])
    rest = {}
    grpc = {}
    for backend in backends:
        for unit in backend["units"]:
            for version in unit["versions"]:
                server = {"host": backend["host"], "address": backend["address"], "down": backend["host"] in drained}
                rest.setdefault((unit["model"], version), []).append(dict(server, port=unit["rest_port"]))
            # gRPC cannot be routed by version at the gateway (the version is
            # inside the request's ModelSpec), so a gRPC pool holds the
            # containers that can answer every version it is asked for: all
            # of a shared model's, or one isolated version's.
            key = (unit["model"], unit["versions"][0] if unit["topology"] == "isolated" else None)
            grpc.setdefault(key, []).append(dict(server, port=unit["grpc_port"]))

    problems = []
    pools = []
    plan_models = []
    routes = []
    for index, model in enumerate(models):
        name = model["name"]
        for version in model["versions"]:
            servers = rest.get((name, version), [])
            if not servers:
                problems.append("%s version %d is served by no host: inventory group %r has no hosts "
                                "(tfserving_models[%d].hosts)" % (name, version, model["hosts"],
                                                                  model.get("position", index)))
                continue
            if all(s["down"] for s in servers):
                problems.append("%s version %d would have no server left: every host serving it (%s) is drained "
                                "(gateway_drained_hosts)" % (name, version, ", ".join(s["host"] for s in servers)))
            pools.append({"name": _pool_name(name, version), "model": name, "version": version,
                          "servers": sorted(servers, key=lambda s: (s["host"], s["port"]))})
        base = "^/v1/models/%s" % name
        for version in model["versions"]:
            routes.append(_route("version", "%s/versions/%d%s$" % (base, version, VERBS), name, version,
                                 _pool_name(name, version),
                                 example="/v1/models/%s/versions/%d" % (name, version)))
        for label, version in sorted(model["labels"].items()):
            routes.append(dict(_route("label", "%s/labels/%s%s$" % (base, label, VERBS), name, version,
                                      _pool_name(name, version), "/v1/models/%s/versions/%d$1" % (name, version),
                                      example="/v1/models/%s/labels/%s" % (name, label), log_label=label),
                               label=label))
        for alias, version in sorted(model["routes"]["aliases"].items()):
            routes.append(_route("alias", "^/v1/models/%s%s$" % (alias, VERBS), name, version,
                                 _pool_name(name, version), "/v1/models/%s/versions/%d$1" % (name, version),
                                 example="/v1/models/%s" % alias))
        default_version, split = _unversioned(model)
        version_var = _var(index, "version")
        # The unversioned path chooses a label (pinned, else the split's or the
        # default's), then that label's version.
        label_var = _var(index, "label")
        if model["topology"] == "shared":
            # GET /v1/models/M answers every version's status: any server of a shared model has them all,
            # so the request goes as it is to the pool the unversioned path picks. (An isolated model's
            # container has one version: the default route below answers that one's status.)
            routes.append(_route("status", "%s$" % base, name, "$" + version_var, "tfs_%s_v$%s" % (name, version_var),
                                 example="/v1/models/%s" % name, log_label="$" + label_var))
        routes.append(_route("default", "%s%s$" % (base, VERBS), name, "$" + version_var,
                             "tfs_%s_v$%s" % (name, version_var), "/v1/models/%s/versions/$%s$1" % (name, version_var),
                             example="/v1/models/%s" % name, log_label="$" + label_var))
        plan_models.append({
            "name": name,
            "version_var": version_var,
            "label_var": label_var,
            "default_label": model["routes"]["default"] if model["routes"]["default"] in model["labels"] else "",
            "split_var": _var(index, "split") if split else None,
            "split": _split_buckets(split),
            "default_version": default_version,
            "weights": unversioned_weights(model),
            "labels": dict(model["labels"]),
            "grpc_unversioned": model["routes"].get("grpc_unversioned"),
        })

    header = options.get("pin_header") or "X-Model-Label"
    cookie = options.get("pin_cookie") or "model_label"
    version_header = options.get("pin_version_header") or "X-Model-Version"
    grpc_pools = []
    grpc_listeners = []
    port_base = options.get("grpc_port_base")
    if port_base is not None:
        grpc_pools = [{"name": "tfs_%s%s_grpc" % (model, "_v%d" % version if version is not None else ""),
                       "model": model, "version": version,
                       "servers": sorted(servers, key=lambda s: (s["host"], s["port"]))}
                      for (model, version), servers in sorted(grpc.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0))]
        # One listener per model, numbered in declaration order, so that a
        # model's port does not move when versions come and go (rollouts).
        for index, (model, plan_model) in enumerate(zip(models, plan_models)):
            grpc_listeners.append(_grpc_listener(model, plan_model, int(port_base) + index, grpc_pools))

    # Upstream names come from model names and versions: two models must not
    # make the same one (an isolated "ranker" version 1 and a shared "ranker_v1").
    owners = {}
    for pool in pools + grpc_pools:
        owner = "%s version %s" % (pool["model"], pool["version"]) if pool["version"] is not None else pool["model"]
        if pool["name"] in owners and owners[pool["name"]] != owner:
            problems.append("upstream %s would serve both %s and %s; rename one of the models in tfserving_models"
                            % (pool["name"], owners[pool["name"]], owner))
        owners.setdefault(pool["name"], owner)

    return {
        "pools": pools,
        "grpc_pools": grpc_pools,
        "grpc": grpc_listeners,
        "grpc_tls": bool(options.get("grpc_tls")),
        "client_certificates": bool(options.get("client_certificates")),
        "models": plan_models,
        "routes": routes,
        "grpc_methods": {"allowed": grpc_method_pattern(), "refused": list(GRPC_REFUSED)},
        "pin": {"header": header, "cookie": cookie, "version_header": version_header,
                "header_var": _header_var(header), "cookie_var": "cookie_" + cookie,
                "version_header_var": _header_var(version_header)},
        "problems": problems,
    }


def _header_var(header):
    return "http_" + header.lower().replace("-", "_")


def _grpc_listener(model, plan_model, port, grpc_pools):
    """The gRPC listener of one model.

    A gRPC call names its model, version or label inside the protobuf body,
    which nginx does not read. A shared model's containers each serve every
    version and label, so the listener forwards to all of them and the
    request's ModelSpec chooses. An isolated model's versions live in
    separate containers that know no labels: the client names the version
    or label in gRPC metadata (the pin headers), which nginx maps to the
    version's pool; without either, the unversioned route's version answers.
    `choices` are the nginx map entries "version:label" -> version,
    `label_choices` those -> label (the access log's; a shared model's
    listener logs none: the label is inside the request).
    """
    name = model["name"]
    listener = {"name": "tfs_%s_grpc" % name, "model": name, "port": port, "topology": model["topology"],
                "version_var": None, "pool_prefix": None, "choices": [], "label_var": None, "label_choices": []}
    if model["topology"] == "isolated":
        served = [p["version"] for p in grpc_pools if p["model"] == name]
        listener["pool_prefix"] = "tfs_%s_v" % name
        listener["version_var"] = plan_model["version_var"].replace("_version", "_grpc_version")
        listener["choices"] = ([(":", "$" + plan_model["version_var"])]
                               + [("%d:" % v, str(v)) for v in model["versions"] if v in served]
                               + [(":%s" % label, str(v)) for label, v in sorted(model["labels"].items())
                                  if v in served])
        # The label the access log records; "" when a version is named.
        listener["label_var"] = plan_model["label_var"].replace("_label", "_grpc_label")
        listener["label_choices"] = [(key, "$" + plan_model["label_var"] if key == ":" else key[1:])
                                     for key, _ in listener["choices"] if key.startswith(":")]
    return listener


def render_upstreams(plan, settings):
    """The nginx upstream blocks of every REST and gRPC pool, as text.

    The bulk of a large fleet's configuration (a pool per version, listing
    every host that serves it): written here rather than looped over in the
    template, where it would cost more than everything else together.
    `settings`: `max_fails`, `fail_timeout` and `upstream_keepalive`.
    """
    suffix = " max_fails=%s fail_timeout=%s" % (settings["max_fails"], settings["fail_timeout"])
    lines = []
    for pool in list(plan["pools"]) + list(plan["grpc_pools"]):
        lines.append("upstream %s {" % pool["name"])
        lines += ["    server %s:%d%s%s;  # %s" % ("[%s]" % s["address"] if ":" in s["address"] else s["address"],
                                                   s["port"], suffix, " down" if s["down"] else "", s["host"])
                  for s in pool["servers"]]
        lines += ["    keepalive %s;" % settings["upstream_keepalive"], "}", ""]
    return "\n".join(lines)


def route_examples(plan):
    """One request per route and the versions that may answer it.

    The unversioned path may be answered by any version its split (or its
    default) names; every other route by exactly one.
    """
    weights = dict((m["name"], sorted(m["weights"])) for m in plan["models"])
    examples = []
    for route in _routes_with_metadata(plan):
        expected = weights[route["model"]] if route["kind"] == "default" else [int(route["version"])]
        examples.append({"kind": route["kind"], "model": route["model"], "path": route["example"],
                         "versions": expected})
    return examples


def _routes_with_metadata(plan):
    """The routes a metadata request can be sent by (a model's status route answers only its status)."""
    return [route for route in plan["routes"] if route["kind"] != "status"]


def client_endpoint(settings, address):
    """Where clients reach one gateway, from its settings (gateway_<name> without the prefix).

    `address`: the host's inventory address. Returns `address` (its listen
    address, or the inventory address when it listens on every address),
    `url` (the REST base URL: https on gateway_https_port when TLS is on)
    and `key_header` (the header that carries an API key).
    """
    listen = settings.get("listen_address")
    host = address if listen in (None, "", "0.0.0.0", "::") else listen
    tls = bool(settings.get("tls_certificate"))
    return {"address": host, "key_header": settings.get("api_key_header"),
            "url": "%s://%s:%s" % ("https" if tls else "http", "[%s]" % host if ":" in host else host,
                                   settings.get("https_port") if tls else settings.get("http_port"))}


def listeners(settings, grpc):
    """nginx's listen parameters of one gateway, from its settings (gateway_<name> without the prefix):
    `http`, `https` and `status`; each listener of its plan's `grpc` gets its own as `listen`."""
    address = settings["listen_address"]
    for listener in grpc:
        listener["listen"] = nginx_listen(address, listener["port"])
    return {"http": nginx_listen(address, settings["http_port"]),
            "https": nginx_listen(address, settings["https_port"]),
            "status": nginx_listen(settings["status_address"], settings["status_port"])}


def nginx_listen(address, port):
    """nginx's listen parameters for `address` and `port`: an IPv6 address in brackets, and `::` (every
    IPv6 address) takes IPv4 too (ipv6only=off), as `0.0.0.0` takes every IPv4 address."""
    bare = str(address).strip("[]")
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:  # a host name
        return "%s:%s" % (bare, port)
    if ip.version == 4:
        return "%s:%s" % (bare, port)
    return "[%s]:%s%s" % (bare, port, " ipv6only=off" if ip.is_unspecified else "")


# Debian's nginx package rotates the files its rule names (/etc/logrotate.d/nginx).
DEBIAN_NGINX_LOGS = "/var/log/nginx/*.log"


def debian_rotates(path):
    """Whether Debian's nginx rule rotates `path`: its glob's `*` matches no '/' and no leading '.'."""
    directory, _, name = path.rpartition("/")
    return directory == "/var/log/nginx" and name.endswith(".log") and not name.startswith(".")


def log_rotation(settings):
    """The files the gateway's own logrotate rule rotates besides the access log (which it always does).

    `error_log`: the file of nginx's `error_log FILE [LEVEL]` when Debian's
    nginx rule does not rotate it (a name other than *.log, or another
    directory), else None (that rule's, or not a file: stderr, syslog:...).
    """
    words = (settings.get("error_log") or "").split()
    error_log = words[0] if words and words[0].startswith("/") and not debian_rotates(words[0]) else None
    return {"error_log": error_log}


def route_table(plan, rest_url, grpc_address):
    """Every route of one gateway, REST and gRPC, as a client uses it.

    `rest_url`: the gateway's REST base URL; `grpc_address`: the host name
    or address gRPC clients dial. Each route: `protocol` (rest, grpc),
    `model`, `version` (the version it resolves to now; null where a split
    picks, with `split` giving each version's share), `label` (or null),
    `url` (REST), `target` (gRPC host:port), `tls` (whether the gRPC target
    serves TLS), `model_spec` (what a gRPC client puts in its ModelSpec) and
    `metadata` (gRPC metadata it sends).
    A shared model's unversioned gRPC route also has `declared_by`: the
    routes key that names the version it gets.
    """
    models = dict((m["name"], m) for m in plan["models"])
    table = []

    def add(protocol, model, versions, label, **where):
        version = versions[0] if len(versions) == 1 else None
        row = {"protocol": protocol, "model": model, "version": version, "label": label, "url": None,
               "target": None, "model_spec": None, "metadata": {}}
        row.update(where)
        if version is None:
            row["split"] = dict((str(v), w) for v, w in sorted(models[model]["weights"].items()))
        table.append(row)

    for route, example in zip(_routes_with_metadata(plan), route_examples(plan)):
        add("rest", route["model"], example["versions"], route.get("label"), url=rest_url + example["path"])
    for listener in plan["grpc"]:
        name = listener["model"]
        model = models[name]
        versions = sorted(p["version"] for p in plan["pools"] if p["model"] == name)
        target = "%s:%d" % (grpc_address, listener["port"])
        add_grpc = functools.partial(add, "grpc", tls=plan.get("grpc_tls", False), target=target)
        if listener["topology"] == "shared":
            # TF Serving answers a ModelSpec without version with its newest version: the plan
            # refuses a model whose unversioned REST route differs, unless its routes accept it.
            accepted = model.get("grpc_unversioned") == "newest"
            add_grpc(name, versions[-1:], None, model_spec={"name": name},
                     declared_by="routes.grpc_unversioned: newest" if accepted else "routes.default")
            for v in versions:
                add_grpc(name, [v], None, model_spec={"name": name, "version": v})
            for label, v in sorted(model["labels"].items()):
                add_grpc(name, [v], label, model_spec={"name": name, "version_label": label})
            continue
        # An isolated model's containers know no labels: the metadata chooses.
        pin = plan["pin"]
        add_grpc(name, sorted(model["weights"]), None, model_spec={"name": name})
        for v in versions:
            add_grpc(name, [v], None, model_spec={"name": name, "version": v},
                     metadata={pin["version_header"].lower(): str(v)})
        for label, v in sorted(model["labels"].items()):
            add_grpc(name, [v], label, model_spec={"name": name},
                     metadata={pin["header"].lower(): label})
    return table


def route_results(answers):
    """The uri answers to route_examples' metadata requests, judged.

    `answers`: uri results, each with `item` (a route example), `status`
    and, when the server answered, `json`. Each row gets the version that
    answered, `ok`, and a printable `line`.
    """
    rows = []
    for answer in answers:
        example = answer["item"]
        spec = (answer.get("json") or {}).get("model_spec") or {}
        version = int(spec["version"]) if str(spec.get("version", "")).isdigit() else None
        ok = version in example["versions"]
        declared = " or ".join(str(v) for v in example["versions"])
        got = ("version %d" % version if version is not None
               else "HTTP %s %s" % (answer.get("status"), (answer.get("json") or {}).get("error", "")))
        rows.append({"path": example["path"], "versions": example["versions"], "answered": version, "ok": ok,
                     "line": "%-40s -> %s (declared %s)%s" % (example["path"], got, declared, "" if ok else "  ! WRONG")})
    return rows


def grpc_route_results(answers):
    """grpc_model_metadata's answers to route_table's gRPC routes, judged like route_results."""
    rows = []
    for answer in answers:
        route = answer["item"]
        expected = [route["version"]] if route["version"] is not None else sorted(int(v) for v in route["split"])
        version = (answer.get("model_spec") or {}).get("version")
        ok = answer.get("code") == "OK" and version in expected
        asked = "%s %s%s" % (route["target"], json.dumps(route["model_spec"], sort_keys=True),
                             " " + json.dumps(route["metadata"], sort_keys=True) if route["metadata"] else "")
        got = ("version %d" % version if answer.get("code") == "OK" and version is not None
               else "%s %s" % (answer.get("code") or "no answer", answer.get("details") or answer.get("msg") or ""))
        declared = " or ".join(str(v) for v in expected)
        if route.get("declared_by"):
            declared += " by " + route["declared_by"]
        rows.append({"route": route, "answered": version, "ok": ok,
                     "line": "%-60s -> %s (declared %s)%s" % (asked, got, declared, "" if ok else "  ! WRONG")})
    return rows


def _unversioned(model):
    """The unversioned path of a normalized model: its default version and its split's sides."""
    default = model["routes"]["default"]
    split = [{"label": label, "weight": weight, "version": model["labels"][label]}
             for label, weight in sorted(model["routes"]["split"].items()) if weight > 0]
    return model["labels"].get(default, default), split


def unversioned_weights(model):
    """Each version's share (percent) of a normalized model's unversioned path."""
    default_version, split = _unversioned(model)
    return _weights(split) or {default_version: 100}


def _weights(split):
    """Share of the unversioned path per version (two labels may name one version)."""
    weights = {}
    for side in split:
        weights[side["version"]] = weights.get(side["version"], 0) + side["weight"]
    return weights


def _split_buckets(split):
    """split_clients buckets: percentages for all but the last, which takes the rest."""
    buckets = []
    for i, side in enumerate(split):
        share = "*" if i == len(split) - 1 else "%d%%" % side["weight"]
        buckets.append({"share": share, "version": side["version"], "label": side["label"]})
    return buckets


def gateway_port_problems(ports, grpc, host=None, listeners=None, server="nginx", taken=None, holders=None):
    """Listen ports of one gateway that collide with each other or are taken.

    `ports`: mapping of what -> port for the fixed listeners (http, https,
    status, mtail...); `grpc`: the plan's gRPC listeners; `listeners`: the
    host's listen_ports_facts entries, where only `server` itself may hold a
    port; `holders`: what -> the process names that may hold that port
    instead (the metrics exporters hold their own); `taken`: port -> what
    else on the host the plan gives it (serving containers of a host that is
    a gateway too).
    """
    claims = dict(taken or {})
    problems = []
    where = " on %s" % host if host else ""
    wanted = [(what, port) for what, port in sorted(ports.items()) if port]
    wanted += [("gRPC of %s" % g["name"], g["port"]) for g in grpc]
    for what, port in wanted:
        if not (isinstance(port, int) and 0 < port < 65536):
            problems.append("gateway port %r%s (%s) is not a port from 1 to 65535; lower gateway_grpc_port_base or "
                            "the port that is set" % (port, where, what))
            continue
        if port in claims:
            problems.append("gateway port %d%s is claimed by %s and %s; give each listener its own port (see "
                            "gateway_http_port, gateway_https_port, gateway_status_port, gateway_grpc_port_base)"
                            % (port, where, claims[port], what))
            continue
        claims[port] = what
        # ss shows a process name as the kernel keeps it: its first 15 characters.
        allowed = set(name[:15] for name in (holders or {}).get(what, [server]))
        held = [e for e in listeners or [] if int(e["port"]) == port and e.get("name") not in allowed]
        if held:
            name = held[0].get("name") or "unknown"
            who = ("%s (pid %s)" % (name, held[0].get("pid")) if name != "unknown"
                   else "a process this host cannot name (another container or namespace)")
            problems.append("gateway port %d%s (%s) is already held by %s; free it or choose another port"
                            % (port, where, what, who))
    return problems
