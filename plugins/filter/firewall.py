# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The serving hosts' nftables rules; logic lives in module_utils/firewall.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.mlserve.tfserving.plugins.module_utils import firewall


class FilterModule(object):
    def filters(self):
        return {
            "nft_ruleset": firewall.render,
        }
