#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: systemd_units
short_description: Keep several systemd units started or stopped, enabled or disabled, in one task
version_added: 0.2.0
description:
  - One C(systemctl show) reads every unit's state; only the units that differ are enabled, disabled, started or
    stopped, each in the order of O(units), the enabling first as M(ansible.builtin.systemd_service) does.
  - One task for a role's services instead of a loop of M(ansible.builtin.systemd_service), which costs a module run
    per unit even when nothing changes.
  - A unit the host does not have is stopped and disabled, so nothing is done for it when that is what is asked. Asked
    to be started or enabled, it fails the module naming it; in check mode it is reported as what would be done, as a
    package installed by an earlier task (skipped in check mode) would bring it.
author:
  - mlserve maintainers
options:
  units:
    description: The units, in the order they are acted on.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The unit's name; without a suffix it is a service (C(nginx) is C(nginx.service)).
        type: str
        required: true
      state:
        description: Whether it runs. Omitted, it is left as it is.
        type: str
        choices: [started, stopped]
      enabled:
        description: Whether it starts at boot. Omitted, that is left as it is.
        type: bool
notes:
  - Supports check mode (RV(actions) names what would be done).
  - A unit is enabled when C(systemctl is-enabled) would say so with status 0 (C(enabled), C(static), C(alias),
    C(indirect), C(generated), C(transient)); running when C(active), C(activating) or C(reloading).
"""

EXAMPLES = r"""
- name: Run nginx and the rotation timer, and stop the exporter
  mlserve.tfserving.systemd_units:
    units:
      - {name: nginx, state: started, enabled: true}
      - {name: logrotate-app.timer, state: started, enabled: true}
      - {name: prometheus-nginx-exporter, state: stopped, enabled: false}
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), in order, each as C(<verb> <unit>).
  returned: always
  type: list
  elements: str
  sample: [enable mtail.service, start mtail.service]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mlserve.tfserving.plugins.module_utils.systemd import enabled, running, unit_states


def actions_for(unit, found):
    """The (verb, unit) pairs that bring one unit where it is asked to be; the enabling first."""
    name = found.get("Id") or unit["name"]
    actions = []
    if unit["enabled"] is not None and unit["enabled"] != enabled(found):
        actions.append(("enable" if unit["enabled"] else "disable", name))
    if unit["state"] is not None and (unit["state"] == "started") != running(found):
        actions.append(("start" if unit["state"] == "started" else "stop", name))
    return found.get("LoadState") == "not-found", actions


def main():
    module = AnsibleModule(
        argument_spec=dict(units=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["started", "stopped"]),
            enabled=dict(type="bool")))),
        supports_check_mode=True,
    )
    units = module.params["units"]
    planned = []
    for unit, found in zip(units, unit_states(module, [unit["name"] for unit in units], "systemd_units") if units else []):
        missing, actions = actions_for(unit, found)
        if missing and actions and not module.check_mode:
            module.fail_json(msg="systemd_units: this host has no unit %s to %s (is its package installed?)"
                                 % (unit["name"], " and ".join(verb for verb, _ in actions)))
        planned += actions
    done = []
    for verb, name in planned:
        if not module.check_mode:
            rc, out, err = module.run_command(["systemctl", verb, name])
            if rc != 0:
                module.fail_json(msg="systemd_units: systemctl %s %s failed: %s" % (verb, name, (err or out).strip()),
                                 actions=done, changed=bool(done))
        done.append("%s %s" % (verb, name))
    module.exit_json(changed=bool(done), actions=done)


if __name__ == "__main__":
    main()
