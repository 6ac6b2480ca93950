# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that derive the gateway from the inventory; logic lives in module_utils/gateway.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.mlserve.tfserving.plugins.module_utils import gateway


class FilterModule(object):
    def filters(self):
        return {
            "gateway_port_problems": gateway.gateway_port_problems,
            "route_examples": gateway.route_examples,
            "route_results": gateway.route_results,
            "grpc_route_results": gateway.grpc_route_results,
            "route_table": gateway.route_table,
        }
