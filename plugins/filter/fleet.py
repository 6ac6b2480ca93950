# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that derive the fleet from tfserving_models; logic lives in module_utils/fleet.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.mlserve.tfserving.plugins.module_utils import fleet


class FilterModule(object):
    def filters(self):
        return {
            "declaration_problems": fleet.validate_models,
            "normalize_declaration": fleet.normalize_models,
            "models_on_host": fleet.models_on_host,
            "serving_units": fleet.serving_units,
            "port_conflicts": fleet.check_port_plan,
            "models_config": fleet.models_config,
            "stage_labels": fleet.stage_labels,
            "versions_to_copy": fleet.versions_to_copy,
            "versions_to_prune": fleet.versions_to_prune,
            "flag_problems": fleet.flag_problems,
            "server_command": fleet.server_command,
            "config_labels": fleet.config_labels,
            "available_versions": fleet.available_versions,
            "status_problems": fleet.status_problems,
            "port_use_problems": fleet.port_use_problems,
            "managed_ports": fleet.managed_ports,
        }
