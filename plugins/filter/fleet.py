# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over the declaration and the plan; logic lives in module_utils/fleet.py.

Everything else derived from the declaration is in the fleet plan
(plugins/action/fleet_plan.py), computed once per run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.mlserve.tfserving.plugins.module_utils import fleet


class FilterModule(object):
    def filters(self):
        return {
            "declaration_problems": fleet.validate_models,
            "sync_plan": fleet.sync_plan,
            "copy_problems": fleet.copy_problems,
        }
