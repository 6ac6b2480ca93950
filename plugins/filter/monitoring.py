# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the monitoring role; logic lives in module_utils/monitoring.py, metrics.py and alerting.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.mlserve.tfserving.plugins.module_utils import alerting, metrics, monitoring


class FilterModule(object):
    def filters(self):
        return {
            "monitoring_alertmanager_config": alerting.config,
            "monitoring_host_port": monitoring.host_port,
            "monitoring_local_host_port": monitoring.local_host_port,
            "monitoring_port_problems": monitoring.port_problems,
            "monitoring_scrape_configs": monitoring.scrape_configs,
            "monitoring_selector": metrics.selector,
        }
