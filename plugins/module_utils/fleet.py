# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Everything the controller derives from the one declaration, ``tfserving_models``.

What a serving host renders from a planned unit and reads back (models.config,
the server's command, its status, the engine's containers) is serving_host.py.

Standard library only, no Ansible imports: the filter plugins are thin
wrappers around these functions, and the unit tests call them directly.

A declared model (see the README for the full form)::

    {"name": "half_plus", "source": "/models/half_plus", "versions": [1, 2],
     "labels": {"stable": 1}, "topology": "shared", "hosts": "tfserving",
     "routes": {"default": "stable", "split": {...}, "aliases": {...}}}
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.mlserve.tfserving.plugins.module_utils import batching, gpus
from ansible_collections.mlserve.tfserving.plugins.module_utils.saved_model import MANIFEST

# Whole strings (\Z, not $, which also matches before a final newline).
MODEL_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]*\Z")
LABEL_NAME = re.compile(r"\A[A-Za-z0-9_]+\Z")
ASCII_NUMBER = re.compile(r"\A[0-9]+\Z")
# An image reference as Docker parses it: [registry[:port]/]path[:tag][@digest],
# path components in lower case.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = re.compile(r"\A(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?%s(?:/%s)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
                             r"(?:@sha256:[0-9a-f]{64})?\Z" % (_PATH_COMPONENT, _PATH_COMPONENT))
TOPOLOGIES = ("shared", "isolated")
MODEL_KEYS = ("name", "source", "versions", "labels", "topology", "image", "hosts", "resources",
              "rest_port", "grpc_port", "overrides", "routes", "signature", "flags", "batching", "gpus",
              "gpus_shared")
# The signature every version must have, kept compatible from version to version.
DEFAULT_SIGNATURE = "serving_default"
OVERRIDE_KEYS = ("image", "resources", "rest_port", "grpc_port", "flags", "batching", "gpus")
RESOURCE_KEYS = ("memory", "cpus")
ROUTE_KEYS = ("default", "split", "aliases", "grpc_unversioned")
# What routes.grpc_unversioned may say: that unversioned gRPC calls of a
# shared model get its newest version, as TF Serving answers them.
GRPC_UNVERSIONED = ("newest",)

# Where a serving container sees the versions and its config.
CONTAINER_MODELS_ROOT = "/models"
CONTAINER_CONFIG = "/etc/tfserving/models.config"
# Beside it, in the same mounted directory (serving_monitoring_enabled).
CONTAINER_MONITORING_CONFIG = "/etc/tfserving/monitoring.config"
DEFAULT_GROUP = "tfserving"


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _version_key(value):
    """Versions may arrive as ints or as YAML dict keys that are strings."""
    if _is_int(value):
        return value
    if isinstance(value, str) and ASCII_NUMBER.match(value):
        return int(value)
    return None


def _declared(versions):
    return ", ".join(str(v) for v in versions)


def image_problems(where, image):
    """Problems of an image reference (None is no reference: the default applies)."""
    if image is None:
        return []
    if not isinstance(image, str) or not IMAGE_REFERENCE.match(image):
        return ["%s: %r is not an image reference; use [registry/]name[:tag] in lower case, such as "
                "tensorflow/serving:2.19.0" % (where, image)]
    return []


def _version_of(problems, where, target, name, versions):
    """Checks that a label, alias or default names a declared version, as an integer (1.0 and true are not)."""
    if not _is_int(target):
        problems.append("%s: %r is not a version number; use one of the declared versions of %s (%s) as an integer"
                        % (where, target, name, _declared(versions)))
    elif versions and target not in versions:
        problems.append("%s: %r is not a declared version of %s (declared: %s)"
                        % (where, target, name, _declared(versions)))


def _check_port(problems, where, value):
    if value is not None and not (_is_int(value) and 1 <= value <= 65535):
        problems.append("%s: %r is not a port; use an integer from 1 to 65535" % (where, value))


_MEMORY_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
# TF Serving's estimate of a version's RAM: its files' total size on disk
# times this (servables/tensorflow/util.cc, kResourceEstimateRAMMultiplier).
RAM_PER_DISK_BYTE = 1.2


def memory_bytes(value):
    """A resources.memory size ('512m', '2g', 1073741824) in bytes, as Docker reads it (units of 1024)."""
    number, unit = re.match(r"^(\d+)([bkmg]?)$", str(value), re.IGNORECASE).groups()
    return int(number) * _MEMORY_UNITS[unit.lower()]


def _size(number):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if number >= size:
            return "%.1f %s" % (number / float(size), unit)
    return "%d bytes" % number


def memory_problem(unit, disk_bytes):
    """Why `unit`'s versions, loaded at once, do not fit its resources.memory by TF Serving's estimate; or None.

    `disk_bytes`: {version: the version's total bytes on disk}.
    """
    limit = (unit.get("resources") or {}).get("memory")
    if limit is None or any(v not in disk_bytes for v in unit["versions"]):
        return None
    disk = sum(disk_bytes[v] for v in unit["versions"])
    estimate = int(disk * RAM_PER_DISK_BYTE)
    if estimate <= memory_bytes(limit):
        return None
    return ("%s: version%s %s of %s, loaded at once, need about %s of RAM by TF Serving's estimate (%.1f x their %s "
            "on disk), above resources.memory %s; raise resources.memory, or serve fewer versions in one container "
            "(topology: isolated)" % (unit["name"], "s" if len(unit["versions"]) > 1 else "",
                                      ", ".join(str(v) for v in unit["versions"]), unit["model"], _size(estimate),
                                      RAM_PER_DISK_BYTE, _size(disk), limit))


def _check_resources(problems, where, value):
    if value is None:
        return
    if not isinstance(value, dict):
        problems.append("%s: %r must be a mapping with memory and/or cpus" % (where, value))
        return
    for key in sorted(set(value) - set(RESOURCE_KEYS)):
        problems.append("%s.%s: unknown key; valid keys are %s" % (where, key, ", ".join(RESOURCE_KEYS)))
    memory = value.get("memory")
    if memory is not None and not re.match(r"^\d+[bkmg]?$", str(memory), re.IGNORECASE):
        problems.append("%s.memory: %r is not a size; use a number with an optional unit b, k, m or g (e.g. 2g)"
                        % (where, memory))
    cpus = value.get("cpus")
    if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or cpus <= 0):
        problems.append("%s.cpus: %r is not a CPU count; use a positive number (e.g. 1.5)" % (where, cpus))


def validate_models(models, groups=None):
    """Every problem of the declaration at once, each naming where and why.

    `groups` is the inventory's group names; when given, each model's
    `hosts` must be one of them.
    """
    problems = []
    if not isinstance(models, list):
        return ["tfserving_models: must be a list of models, got %s" % type(models).__name__]
    names = {}
    aliases = {}
    for i, model in enumerate(models):
        where = "tfserving_models[%d]" % i
        if not isinstance(model, dict):
            problems.append("%s: must be a mapping with at least name, source and versions" % where)
            continue
        for key in sorted(set(model) - set(MODEL_KEYS)):
            problems.append("%s.%s: unknown key; valid keys are %s" % (where, key, ", ".join(MODEL_KEYS)))
        name = model.get("name")
        if not isinstance(name, str) or not MODEL_NAME.match(name):
            problems.append("%s.name: %r is not a valid model name; use letters, digits, '_' and '-', "
                            "starting with a letter or digit" % (where, name))
            name = "model %d" % i
        elif name in names:
            problems.append("%s.name: %r is already declared by tfserving_models[%d]; model names must be unique"
                            % (where, name, names[name]))
        else:
            names[name] = i
        if not isinstance(model.get("source"), str) or not model.get("source"):
            problems.append("%s.source: %r must be the model's base directory on the controller"
                            % (where, model.get("source")))
        versions = model.get("versions")
        if not isinstance(versions, list) or not versions or not all(_is_int(v) and v > 0 for v in versions):
            problems.append("%s.versions: %r must be a non-empty list of positive integers (the version "
                            "directory names, e.g. [1, 2]; a directory named v2 is never served)" % (where, versions))
            versions = []
        elif len(set(versions)) != len(versions):
            problems.append("%s.versions: %r lists a version twice" % (where, versions))
        signature = model.get("signature", DEFAULT_SIGNATURE)
        if not isinstance(signature, str) or not signature:
            problems.append("%s.signature: %r is not a signature name; name the signature every version has "
                            "(default %s; TF Serving's counter model, for one, has get_counter)"
                            % (where, signature, DEFAULT_SIGNATURE))
        topology = model.get("topology", "shared")
        if topology not in TOPOLOGIES:
            problems.append("%s.topology: %r is not valid; use one of %s" % (where, topology, ", ".join(TOPOLOGIES)))
        labels = model.get("labels") or {}
        if not isinstance(labels, dict):
            problems.append("%s.labels: %r must map label names to versions" % (where, labels))
            labels = {}
        for label, target in sorted(labels.items(), key=lambda kv: str(kv[0])):
            if not isinstance(label, str) or not LABEL_NAME.match(label):
                problems.append("%s.labels: %r is not a valid label name; use letters, digits and '_'"
                                % (where, label))
            _version_of(problems, "%s.labels.%s" % (where, label), target, name, versions)
        hosts = model.get("hosts", DEFAULT_GROUP)
        if groups is not None and hosts not in groups:
            problems.append("%s.hosts: %r is not a group of this inventory (groups: %s)"
                            % (where, hosts, ", ".join(sorted(g for g in groups if g not in ("all", "ungrouped")))))
        problems += _container_problems(where, model)
        if not isinstance(model.get("gpus_shared", False), bool):
            problems.append("%s.gpus_shared: %r is not true or false" % (where, model["gpus_shared"]))
        for key in ("rest_port", "grpc_port"):
            _check_port(problems, "%s.%s" % (where, key), model.get(key))
            if model.get(key) is not None and topology == "isolated":
                problems.append("%s.%s: an isolated model runs one container per version; pin ports per version "
                                "under overrides instead" % (where, key))
        overrides = model.get("overrides") or {}
        if overrides and topology != "isolated":
            problems.append("%s.overrides: only an isolated model has a container per version to override; "
                            "set topology: isolated or move these settings to the model" % where)
        elif not isinstance(overrides, dict):
            problems.append("%s.overrides: %r must map versions to settings" % (where, overrides))
        else:
            for key, settings in sorted(overrides.items(), key=lambda kv: str(kv[0])):
                owhere = "%s.overrides.%s" % (where, key)
                if versions and _version_key(key) not in versions:
                    problems.append("%s: %r is not a declared version of %s (declared: %s)"
                                    % (owhere, key, name, _declared(versions)))
                if not isinstance(settings, dict):
                    problems.append("%s: %r must be a mapping of %s" % (owhere, settings, ", ".join(OVERRIDE_KEYS)))
                    continue
                for bad in sorted(set(settings) - set(OVERRIDE_KEYS)):
                    problems.append("%s.%s: unknown key; valid keys are %s" % (owhere, bad, ", ".join(OVERRIDE_KEYS)))
                problems += _container_problems(owhere, settings)
                for port in ("rest_port", "grpc_port"):
                    _check_port(problems, "%s.%s" % (owhere, port), settings.get(port))
        _validate_routes(problems, where, name, model.get("routes") or {}, versions, labels, aliases, topology)
    for alias, (where, _) in sorted(aliases.items()):
        if alias in names:
            problems.append("%s: alias %r is also the name of tfserving_models[%d]; a request for it would be "
                            "ambiguous" % (where, alias, names[alias]))
    return problems


def _container_problems(where, settings):
    """The container settings a model and an isolated version's override both take: image, resources, flags,
    batching, gpus."""
    problems = image_problems(where + ".image", settings.get("image"))
    _check_resources(problems, where + ".resources", settings.get("resources"))
    for key, check in (("flags", flag_problems), ("batching", batching.problems), ("gpus", gpus.problems)):
        if key in settings:
            problems += check(settings[key], "%s.%s" % (where, key))
    return problems


def _validate_routes(problems, where, name, routes, versions, labels, aliases, topology):
    where = where + ".routes"
    found = len(problems)
    if not isinstance(routes, dict):
        problems.append("%s: %r must be a mapping of %s" % (where, routes, ", ".join(ROUTE_KEYS)))
        return
    for key in sorted(set(routes) - set(ROUTE_KEYS)):
        problems.append("%s.%s: unknown key; valid keys are %s" % (where, key, ", ".join(ROUTE_KEYS)))
    default = routes.get("default")
    is_label = isinstance(default, str) and default in labels
    is_version = _is_int(default) and (not versions or default in versions)
    if default is not None and not is_label and not is_version:
        problems.append("%s.default: %r is neither a label (%s) nor a declared version (%s) of %s, as an integer"
                        % (where, default, ", ".join(sorted(str(k) for k in labels)) or "none",
                           _declared(versions), name))
    split = routes.get("split")
    if split is not None:
        if not isinstance(split, dict) or not split:
            problems.append("%s.split: %r must map labels to weights" % (where, split))
        else:
            for label, weight in sorted(split.items(), key=lambda kv: str(kv[0])):
                if label not in labels:
                    problems.append("%s.split.%s: %r is not a label of %s (labels: %s)"
                                    % (where, label, label, name, ", ".join(sorted(str(k) for k in labels)) or "none"))
                if not _is_int(weight) or weight < 0:
                    problems.append("%s.split.%s: %r must be a non-negative integer weight" % (where, label, weight))
            weights = [w for w in split.values() if _is_int(w)]
            if len(weights) == len(split) and sum(weights) != 100:
                problems.append("%s.split: weights %s add up to %d; they must add up to 100"
                                % (where, ", ".join("%s=%s" % kv for kv in sorted(split.items(), key=lambda kv: str(kv[0]))), sum(weights)))
    for alias, target in sorted((routes.get("aliases") or {}).items(), key=lambda kv: str(kv[0])):
        awhere = "%s.aliases.%s" % (where, alias)
        if not isinstance(alias, str) or not MODEL_NAME.match(alias):
            problems.append("%s: %r is not a valid alias name; use letters, digits, '_' and '-'" % (awhere, alias))
        _version_of(problems, awhere, target, name, versions)
        if alias in aliases:
            problems.append("%s: alias %r is already declared at %s" % (awhere, alias, aliases[alias][0]))
        else:
            aliases[alias] = (awhere, name)
    grpc_unversioned = routes.get("grpc_unversioned")
    if grpc_unversioned is not None and grpc_unversioned not in GRPC_UNVERSIONED:
        problems.append("%s.grpc_unversioned: %r is not valid; the one value is newest (unversioned gRPC calls of a "
                        "shared model get its newest version, as TF Serving answers them)" % (where, grpc_unversioned))
    if (topology == "shared" and grpc_unversioned is None and versions and len(problems) == found
            and all(_is_int(v) and v in versions for v in labels.values())):
        problems += _grpc_unversioned_problems(where, name, routes, versions, labels)


def _grpc_unversioned_problems(where, name, routes, versions, labels):
    """A shared model whose unversioned REST route names other versions than an unversioned gRPC call gets.

    TF Serving gives a ModelSpec without version or label its newest
    version, and the gateway cannot change it (it is inside the protobuf).
    """
    default = _default_route(routes, labels, versions)
    split = sorted(((label, weight) for label, weight in (routes.get("split") or {}).items() if weight > 0),
                   key=lambda side: (labels[side[0]], side[0]))
    rest = sorted(set(labels[label] for label, _ in split)) if split else [labels.get(default, default)]
    newest = max(versions)
    if rest == [newest]:
        return []
    if split:
        gets = " and ".join("version %d (%s: %d %%)" % (labels[label], label, weight) for label, weight in split)
    else:
        gets = "version %d (routes.default: %s)" % (rest[0], default)
    return ["%s: an unversioned gRPC call to %s (a ModelSpec with neither version nor version_label) gets TF "
            "Serving's newest version, %d, while its unversioned REST route gets %s. Have gRPC clients name a version "
            "or label and set routes.grpc_unversioned: newest to accept this, or set topology: isolated, whose gateway "
            "routes unversioned gRPC calls as it routes REST ones" % (where, name, newest, gets)]


def _default_route(routes, labels, versions):
    """What the unversioned path follows: routes.default, else the label stable, else the newest version."""
    if routes.get("default") is not None:
        return routes["default"]
    return "stable" if "stable" in labels else max(versions)


def normalize_models(models, defaults=None):
    """The declaration with every default filled in; assumes it validated.

    `defaults` may set `image`, `resources`, `batching` and `models_root`
    (where the versions live on a host: its tfserving_models_root); each
    model gains `container_path`, and `host_path` when `models_root` is
    given (routing needs neither). A model's `batching` replaces the
    default one ({} is off).
    """
    defaults = defaults or {}
    out = []
    for model in models:
        versions = sorted(model["versions"])
        labels = dict(model.get("labels") or {})
        routes = dict(model.get("routes") or {})
        routes["default"] = _default_route(routes, labels, versions)
        routes["split"] = dict(routes.get("split") or {})
        routes["aliases"] = dict(routes.get("aliases") or {})
        out.append({
            "name": model["name"],
            "source": model["source"].rstrip("/"),
            "versions": versions,
            "labels": labels,
            "topology": model.get("topology", "shared"),
            "signature": model.get("signature", DEFAULT_SIGNATURE),
            "image": model.get("image") or defaults.get("image"),
            "hosts": model.get("hosts", DEFAULT_GROUP),
            "resources": dict(model.get("resources") or defaults.get("resources") or {}),
            "flags": dict(model.get("flags") or {}),
            "batching": dict(model["batching"] if "batching" in model else defaults.get("batching") or {}),
            "gpus": model.get("gpus"),
            "gpus_shared": model.get("gpus_shared", False),
            "rest_port": model.get("rest_port"),
            "grpc_port": model.get("grpc_port"),
            "overrides": dict((_version_key(k), dict(v)) for k, v in (model.get("overrides") or {}).items()),
            "routes": routes,
            "container_path": "%s/%s" % (CONTAINER_MODELS_ROOT, model["name"]),
        })
        if defaults.get("models_root"):
            out[-1]["host_path"] = "%s/%s" % (defaults["models_root"].rstrip("/"), model["name"])
    return out


def models_on_host(models, host_groups):
    """The normalized models whose serving group includes a host with these groups."""
    return [m for m in models if m["hosts"] in host_groups]


def serving_units(models, host_groups, port_base):
    """The containers one host runs, with their port plan.

    shared: one unit per model serving all its versions and labels.
    isolated: one unit per version, without labels (the gateway maps those).
    Units are ordered by (model, version); unit i gets gRPC port base+2i and
    REST port base+2i+1, skipping ports that another unit pins.
    """
    port_base = int(port_base)
    units = []
    for model in sorted(models_on_host(models, host_groups), key=lambda m: m["name"]):
        if model["topology"] == "shared":
            units.append(_unit(model, "tfserving-%s" % model["name"], model["versions"], model["labels"], model))
        else:
            for version in model["versions"]:
                override = model["overrides"].get(version, {})
                settings = dict(model, **override)
                # A version's resources and flags add to its model's.
                for key in ("resources", "flags"):
                    if key in override:
                        settings[key] = dict(model[key], **override[key] or {})
                units.append(_unit(model, "tfserving-%s-v%d" % (model["name"], version), [version], {}, settings))
    pinned = set(p for u in units for p in (u["grpc_port"], u["rest_port"]) if p is not None)
    port = port_base
    for unit in units:
        for key in ("grpc_port", "rest_port"):
            if unit[key] is None:
                while port in pinned:
                    port += 1
                unit[key] = port
                port += 1
    return units


def _unit(model, name, versions, labels, settings):
    return {
        "name": name,
        "model": model["name"],
        "topology": model["topology"],
        "versions": list(versions),
        "labels": dict(labels),
        "image": settings.get("image"),
        "resources": dict(settings.get("resources") or {}),
        "flags": dict(settings.get("flags") or {}),
        "batching": dict(settings.get("batching") or {}),
        "gpus": settings.get("gpus"),
        "gpus_shared": model["gpus_shared"],
        "grpc_port": settings.get("grpc_port"),
        "rest_port": settings.get("rest_port"),
        "host_path": model.get("host_path"),
        "container_path": model["container_path"],
    }


def check_port_plan(units, host=None):
    """Conflicts within one host's plan, each naming both claimants."""
    problems = []
    claims = {}
    where = " on %s" % host if host else ""
    for unit in units:
        for key, kind in (("grpc_port", "gRPC"), ("rest_port", "REST")):
            port = unit[key]
            if port in claims:
                problems.append("port %d%s is claimed by %s (%s) and %s (%s); pin different ports or change "
                                "tfserving_port_base" % (port, where, claims[port][0], claims[port][1],
                                                          unit["name"], kind))
            else:
                claims[port] = (unit["name"], kind)
    return problems


def sync_plan(models, sources, copies, prune=False):
    """What the models role does on one host, for all its models at once.

    `models`: the host's models (plan profile); `sources`: the plan's
    sources (model -> [{version, directory, checksum}]); `copies`: the
    model_copies module's `copies` (each with `versions`) on the host, in
    the order of `models`. A version is copied when its copy
    is missing or differs, from the source's own directory name (which may
    be zero-padded, as in TF Serving's test models) to its canonical
    number. With `prune`, directories of undeclared versions (and their
    manifests) are listed for removal; a version a label still names is
    never pruned. `to_place`: the model_place module's `versions` for the
    copies, in their order.
    """
    copy, remove = [], []
    for model, found in zip(models, copies):
        on_host = dict((v["version"], v["checksum"]) for v in found["versions"])
        for version in sources[model["name"]]:
            if version["version"] in model["versions"] and on_host.get(version["version"]) != version["checksum"]:
                copy.append({"model": model["name"], "version": version["version"], "checksum": version["checksum"],
                             "src": "%s/%s/" % (model["source"], version["directory"]),
                             "host_path": model["host_path"], "signature": model["signature"]})
        if prune:
            keep = set(model["versions"]) | set(model["labels"].values())
            for v in found["versions"]:
                if v["version"] not in keep:
                    # The version and the manifest beside it (saved_model.Manifests).
                    remove += ["%s/%s" % (model["host_path"], name) for name in (v["directory"],
                                                                                 MANIFEST % v["directory"])]
    return {"to_copy": copy, "to_remove": remove,
            "to_place": [{"path": c["host_path"], "version": c["version"], "signature": c["signature"]} for c in copy]}


def copy_problems(host, copied, checks):
    """Copies whose checksum on the host differs from the source's after the sync.

    `copied`: sync_plan's `to_copy` entries; `checks`: the model_place
    module's `placed` on the host, one per entry, in their order.
    """
    problems = []
    for entry, check in zip(copied, checks):
        found = [v["checksum"] for v in check.get("versions", [])]
        if found != [entry["checksum"]]:
            problems.append("%s:%s/%d differs from %s after the copy: %s" % (
                host, entry["host_path"], entry["version"], entry["src"], check.get("msg") or "checksum differs"))
    return problems


# tensorflow_model_server flags this collection may render, with their
# types in the server (main.cc). The server ignores an unknown flag after
# printing "unknown argument", so a typo would pass silently: anything
# outside this list is refused instead.
SERVER_FLAGS = {
    "allow_version_labels_for_unavailable_models": "bool", "enable_grpc_healthcheck_service": "bool",
    "enable_model_warmup": "bool",
    "file_system_poll_wait_seconds": "int32", "grpc_channel_arguments": "string", "grpc_max_threads": "int32",
    "load_retry_interval_micros": "int64", "max_num_load_retries": "int32",
    "model_config_file_poll_wait_seconds": "int32", "monitoring_config_file": "string",
    "rest_api_num_threads": "int32", "rest_api_timeout_in_ms": "int32", "saved_model_tags": "string",
    "tensorflow_inter_op_parallelism": "int64", "tensorflow_intra_op_parallelism": "int64",
    "tensorflow_session_parallelism": "int64",
}
_FLAG_MAXIMUM = {"int32": 2 ** 31 - 1, "int64": 2 ** 63 - 1}
# The server's threads that compete for a container's CPUs: TensorFlow's
# op threads run each request's work (0: one per CPU the host has).
OP_THREAD_FLAGS = ("tensorflow_intra_op_parallelism", "tensorflow_inter_op_parallelism")
# Set by the collection itself from the port plan and config layout.
MANAGED_FLAGS = frozenset(["port", "rest_api_port", "model_config_file", "model_name", "model_base_path"])
# Set by the collection from a role variable, after the user's flags.
ROLE_FLAGS = {"model_config_file_poll_wait_seconds": "serving_config_poll_seconds"}
# Set by the collection from a unit's batching parameters.
BATCHING_FLAGS = ("enable_batching", "batching_parameters_file")


def flag_problems(flags, where="serving_flags"):
    """Problems with user-given server flags (a dict of name -> value)."""
    problems = []
    if not isinstance(flags, dict):
        return ["%s: %r must map flag names (without --) to values" % (where, flags)]
    for name in sorted(flags, key=str):
        kind = SERVER_FLAGS.get(name)
        if name in MANAGED_FLAGS:
            problems.append("%s.%s: set by the collection from the port plan and models.config; remove it"
                            % (where, name))
        elif name in ROLE_FLAGS:
            problems.append("%s.%s: set by the collection from %s (this value would be ignored); set that instead"
                            % (where, name, ROLE_FLAGS[name]))
        elif name in BATCHING_FLAGS:
            problems.append("%s.%s: set by the collection from the batching parameters; declare them in "
                            "serving_batching or a model's batching instead (the file would not reach the "
                            "container otherwise)" % (where, name))
        elif name not in SERVER_FLAGS:
            problems.append("%s.%s: not a tensorflow_model_server flag this collection renders (a typo would be "
                            "ignored by the server); valid: %s" % (where, name, ", ".join(sorted(SERVER_FLAGS))))
        elif kind == "bool" and not isinstance(flags[name], bool):
            problems.append("%s.%s: %r is not true or false" % (where, name, flags[name]))
        elif kind == "string" and not isinstance(flags[name], str):
            problems.append("%s.%s: %r is not a string" % (where, name, flags[name]))
        elif kind in _FLAG_MAXIMUM and not (_is_int(flags[name]) and 0 <= flags[name] <= _FLAG_MAXIMUM[kind]):
            problems.append("%s.%s: %r is not valid; use an integer from 0 to %d (the server's %s)"
                            % (where, name, flags[name], _FLAG_MAXIMUM[kind], kind))
    return problems


def server_flags(host_flags, unit):
    """The flags one unit's server gets: the host's serving_flags, then the model's and its version's `flags`."""
    return dict(host_flags or {}, **unit.get("flags") or {})


def server_flag_problems(flags):
    """What tensorflow_model_server refuses at start in a unit's flags (server_flags), in its words."""
    problems = []
    if all(flags.get(name, 0) > 0 for name in OP_THREAD_FLAGS + ("tensorflow_session_parallelism",)):
        problems.append("tensorflow_session_parallelism with tensorflow_intra_op_parallelism and "
                        "tensorflow_inter_op_parallelism: the server refuses to start (Either configure "
                        "server_options.tensorflow_session_parallelism or (server_options.tensorflow_intra_op_parallelism, "
                        "server_options.tensorflow_inter_op_parallelism) separately. You cannot configure all.); "
                        "set tensorflow_session_parallelism or the other two")
    return problems


def thread_warning(flags, unit):
    """Why the op threads of a unit's server (server_flags) would outnumber its resources.cpus; or None."""
    cpus = (unit.get("resources") or {}).get("cpus")
    over = ["%s %d" % (name, flags[name]) for name in OP_THREAD_FLAGS if cpus and flags.get(name, 0) > cpus]
    if not over:
        return None
    return ("%s: %s above resources.cpus %s: more op threads than CPUs contend for them and add latency; lower "
            "them to at most %d, or raise resources.cpus" % (unit["name"], " and ".join(over), cpus, int(cpus) or 1))
