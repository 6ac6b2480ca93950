# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of mlserve.tfserving.fleet_plan (documented in plugins/modules/fleet_plan.py).

Runs on the controller only: it reads every inventory host's variables and
the model sources, and returns the plan that module_utils/plan.py builds.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import yaml
from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible_collections.mlserve.tfserving.plugins.module_utils import firewall, plan, saved_model

ROLES = os.path.join(os.path.dirname(__file__), "..", "..", "roles")
# The role defaults a host falls back to when it does not set the variable:
# read from the roles' own defaults/main.yml, so there is one default.
ROLE_VARIABLES = {
    "firewall": firewall.VARIABLES,
    # tfserving_port_base and tfserving_models_root are collection-wide (the
    # models, firewall and gateway plans use them too); their home is the
    # serving role's defaults.
    "serving": ("tfserving_port_base", "tfserving_models_root", "serving_image", "serving_resources", "serving_config_dir", "serving_flags", "serving_batching",
                "serving_gpu_host", "serving_user", "serving_config_poll_seconds", "serving_wait_timeout",
                "serving_read_only", "serving_tmpfs", "serving_cap_drop", "serving_no_new_privileges",
                "serving_pids_limit", "serving_monitoring_enabled", "serving_monitoring_path"),
    "gateway": ("gateway_grpc_port_base", "gateway_pin_header", "gateway_pin_cookie", "gateway_pin_version_header",
                "gateway_http_port", "gateway_listen_address", "gateway_status_address",
                "gateway_status_port", "gateway_https_port", "gateway_tls_certificate",
                "gateway_tls_certificate_key", "gateway_tls_client_ca", "gateway_grpc_plaintext", "gateway_max_fails", "gateway_fail_timeout",
                "gateway_upstream_keepalive", "gateway_api_keys", "gateway_api_key_header", "gateway_client_rate",
                "gateway_client_burst", "gateway_model_rate", "gateway_model_burst", "gateway_metrics_enabled",
                "gateway_mtail_port", "gateway_nginx_exporter_port", "gateway_access_log", "gateway_error_log",
                "gateway_access_log_rotate_period", "gateway_access_log_rotate_size", "gateway_access_log_rotate_keep"),
    "monitoring": ("monitoring_port", "monitoring_alertmanager_receivers", "monitoring_alertmanager_route",
                   "monitoring_alertmanager_inhibit_rules", "monitoring_alertmanager_smtp"),
    "models": ("models_verify",),
}


def role_defaults():
    defaults = {}
    for role, names in ROLE_VARIABLES.items():
        with open(os.path.join(ROLES, role, "defaults", "main.yml")) as f:
            values = yaml.safe_load(f) or {}
        defaults.update((name, values[name]) for name in names)
    return defaults


class ChecksumCache(object):
    """What the controller last read of each source version's files, kept between runs.

    One JSON file (``$XDG_CACHE_HOME/mlserve-tfserving/checksums.json``, by
    default under ``~/.cache``): version directory -> relative path ->
    [size, mtime_ns, inode, ctime_ns, sha256]. A file whose size, mtime,
    inode and ctime are unchanged is not read again (saved_model.directory_checksum). With
    `full` every file is read and the cache rewritten.
    """

    def __init__(self, path, full=False):
        self.path = path
        self.full = full
        self.changed = False
        try:
            with open(path) as f:
                self.entries = json.load(f)
        except (OSError, IOError, ValueError):
            self.entries = {}  # none yet, or unreadable: every file is read
        if not isinstance(self.entries, dict):
            self.entries = {}

    @staticmethod
    def default_path():
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "mlserve-tfserving", "checksums.json")

    def get(self, version_dir):
        return None if self.full else self.entries.get(os.path.abspath(version_dir))

    def put(self, version_dir, files, earlier):
        key = os.path.abspath(version_dir)
        if self.entries.get(key) != files:
            self.entries[key] = files
            self.changed = True

    def save(self):
        """Write the cache when it changed; a cache that cannot be written only costs the next run a read."""
        if not self.changed:
            return
        # Versions gone from the disk (a removed source, a test's temporary copy) leave the cache.
        self.entries = dict((k, v) for k, v in self.entries.items() if os.path.isdir(k))
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            staging = "%s.%d" % (self.path, os.getpid())
            with open(staging, "w") as f:
                json.dump(self.entries, f, sort_keys=True)
            os.replace(staging, self.path)
        except OSError:
            pass


def source_reader(cache):
    """read_source for plan.build_plan: a model source's versions, checksums and sizes, read like model_version_info."""
    def read_source(model):
        params = {"path": model["source"], "versions": model["versions"], "signature_name": model["signature"],
                  "tags": ["serve"], "compatible": True, "strict": True, "checksums_only": False}
        try:
            result = saved_model.read_repository(params, lambda message: None, cache)
        except (saved_model.SavedModelError, OSError) as e:
            raise ValueError(to_native(e))
        return [dict((k, v[k]) for k in ("version", "directory", "checksum", "total_bytes"))
                for v in result["versions"]]
    return read_source


def _declarations(hostvars, names, me, mine):
    """Each of `names`' tfserving_models, templated; `mine` is `me`'s.

    A host whose value as written is the same plain data as `me`'s (no
    template in it: the usual group_vars/all) reads the same, and is not
    templated again: at 200 hosts, templating each copy of a large
    declaration took seconds.
    """
    raw = hostvars.raw_get(me).get("tfserving_models")
    plain = plan.is_plain(raw)
    return dict((name, mine if plain and hostvars.raw_get(name).get("tfserving_models") == raw
                 else hostvars[name].get("tfserving_models")) for name in names)


class _TemplatedVars(object):
    """The task's variables, each templated when read (as hostvars are)."""

    def __init__(self, task_vars, templar):
        self._vars = task_vars
        self._templar = templar

    def get(self, key, default=None):
        if key not in self._vars:
            return default
        return self._templar.template(self._vars[key])


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("declaration", "drained", "served", "check_sources", "sources", "parts",
                             "fail_on_problems"))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        # Variables reach an action plugin untemplated; arguments do not.
        declaration = args.get("declaration", self._templar.template(task_vars.get("tfserving_models")))
        hostvars = task_vars["hostvars"]
        groups = task_vars["groups"]
        if declaration is None:
            result.update(failed=True, msg="tfserving_models is not set on %s: declare the fleet's models once, in the "
                                           "inventory's group_vars/all (see the collection README)"
                                           % task_vars.get("inventory_hostname"))
            return result
        options = {
            "drained": args.get("drained", self._templar.template(task_vars.get("gateway_drained_hosts"))),
            "served": args.get("served", self._templar.template(task_vars.get("gateway_served_models"))),
            "gateway_hosts": groups.get("gateway", []),
            "monitoring_hosts": groups.get("monitoring", []),
        }
        check = boolean(args.get("check_sources", True), strict=True)
        defaults = role_defaults()
        me = task_vars.get("inventory_hostname")
        try:
            # The host running this task is read with its task variables (a
            # role's or include's variables too); the others from the inventory.
            mine = plan.host_inputs(me, _TemplatedVars(task_vars, self._templar), defaults)
            # The run's plan: registered by the preflight as tfserving_plan,
            # read here as it is, without templating it.
            run_plan = (task_vars.get("tfserving_plan") or {}).get("plan")
            if plan.reusable(run_plan, declaration, options, mine, check):
                result.update(changed=False, plan=plan.for_ansible(run_plan, args.get("parts")))
                return result
            hosts = [mine if name == me else plan.host_inputs(name, hostvars[name], defaults)
                     for name in groups["all"]]
        except Exception as e:  # a host variable that does not template
            raise AnsibleError("fleet_plan: cannot read the inventory's host variables: %s" % to_native(e))
        # models_verify (the models role's): full reads every file of every source.
        verify = self._templar.template(task_vars.get("models_verify", defaults["models_verify"]))
        cache = ChecksumCache(ChecksumCache.default_path(), full=verify == "full")
        built = plan.build_plan(declaration, hosts, list(groups.keys()), options,
                                read_source=source_reader(cache) if check else None, sources=args.get("sources"))
        cache.save()
        # Every host must read the same declaration from the inventory (a
        # group_vars file of one group would otherwise plan the fleet from one
        # host's copy). Inventory values are compared: a role's or include's
        # variables (a rollout stage) are not the inventory's.
        reference = hostvars[me].get("tfserving_models")
        if reference is not None:
            names = [name for name in plan.served_hosts(declaration, groups) if name != me]
            built["problems"] += plan.declaration_differences(me, reference,
                                                         _declarations(hostvars, names, me, reference))
        if built["problems"] and boolean(args.get("fail_on_problems", True), strict=True):
            # The problems only: the plan of an invalid declaration would bury them.
            result.update(failed=True, problems=built["problems"],
                          msg="The fleet's declaration is not valid:\n" + "\n".join(built["problems"]))
            return result
        # Shown once, by the run's first plan: a reused plan does not repeat them.
        result.update(changed=False, plan=plan.for_ansible(built, args.get("parts")), warnings=built["warnings"])
        return result
