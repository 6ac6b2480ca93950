# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host side: what systemd says of units, read for several at once.

systemd_units and prometheus_config share these, so that "enabled" and
"running" mean the same in both.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

PROPERTIES = ("Id", "LoadState", "ActiveState", "UnitFileState")
# What `systemctl is-enabled` answers with status 0.
ENABLED = ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated", "transient")
RUNNING = ("active", "activating", "reloading")


def unit_states(module, names, who):
    """Each unit's PROPERTIES, in the order of names: one `systemctl show` for all; fails naming `who`."""
    rc, out, err = module.run_command(["systemctl", "show", "--property=" + ",".join(PROPERTIES), "--"] + names)
    if rc != 0:
        module.fail_json(msg="%s: systemctl show failed: %s" % (who, (err or out).strip()))
    blocks = [dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
              for block in out.strip().split("\n\n")]
    if len(blocks) != len(names):
        module.fail_json(msg="%s: systemctl show answered %d units for %d: %s" % (who, len(blocks), len(names), out))
    return blocks


def enabled(state):
    """Whether a unit of unit_states starts at boot (a unit the host lacks does not)."""
    return state.get("LoadState") != "not-found" and state.get("UnitFileState") in ENABLED


def running(state):
    return state.get("LoadState") != "not-found" and state.get("ActiveState") in RUNNING
