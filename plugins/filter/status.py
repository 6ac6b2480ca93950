# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for the fleet status report; logic lives in module_utils/status.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.mlserve.tfserving.plugins.module_utils import status


class FilterModule(object):
    def filters(self):
        return {
            "status_rows": status.status_rows,
            "status_table": status.status_table,
            "status_versions": status.status_versions,
        }
