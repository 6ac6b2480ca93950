# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for rolling upgrades; logic lives in module_utils/rollout.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.mlserve.tfserving.plugins.module_utils import rollout


class FilterModule(object):
    def filters(self):
        return {
            "rollout_analysis_versions": rollout.analysis_versions,
            "rollout_batches": rollout.rollout_batches,
            "rollout_drain_problems": rollout.drain_problems,
            "rollout_restarting_hosts": rollout.restarting_hosts,
            "rollout_stages": rollout.rollout_stages,
            "rollout_step_problems": rollout.step_problems,
            "rollout_targets": rollout.rollout_targets,
            "rollout_union": rollout.rollout_union,
        }
