# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Alertmanager for the fleet: its configuration from the monitoring role's variables, and their checks.

The fleet plan checks the variables of every monitoring host before any host
changes (plan.host_problems); the monitoring role writes config()'s result
as alertmanager.yml, which `amtool check-config` checks again on the host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# The labels the collection's alerts carry (roles/monitoring/templates/tfserving.rules.yml.j2
# and the targets' labels, monitoring.scrape_configs): what an inhibition can compare.
ALERT_LABELS = ("alertname", "severity", "model", "version", "label", "host", "container", "instance", "job")
# A receiver that sends nothing: the route's receiver while none is declared.
SILENT = "none"
_URL = re.compile(r"\Ahttps?://[^\s/]+(/\S*)?\Z")
_EMAIL = re.compile(r"\A[^@\s]+@[^@\s]+\Z")


def config(receivers, route, inhibit_rules, smtp=None):
    """alertmanager.yml as a mapping: every receiver sends resolved notifications too."""
    built = {}
    if smtp:
        built["global"] = dict(("smtp_" + key, value) for key, value in sorted(smtp.items()))
    entries = [{"name": SILENT}] if not receivers else []
    for receiver in receivers:
        entry = {"name": receiver["name"]}
        if receiver.get("webhook_url"):
            entry["webhook_configs"] = [{"url": receiver["webhook_url"], "send_resolved": True}]
        if receiver.get("email_to"):
            entry["email_configs"] = [{"to": receiver["email_to"], "send_resolved": True}]
        entries.append(entry)
    built["route"] = dict(route, receiver=route.get("receiver") or entries[0]["name"])
    built["receivers"] = entries
    built["inhibit_rules"] = list(inhibit_rules)
    return built


def _routes(route, where):
    """(where, route) for the route and every route below it."""
    yield where, route
    for index, child in enumerate(route.get("routes") or []):
        for found in _routes(child, "%s.routes[%d]" % (where, index)):
            yield found


def problems(receivers, route, inhibit_rules, smtp):
    """What Alertmanager would refuse or never deliver, each naming its variable and value.

    No message quotes monitoring_alertmanager_smtp's values (a password).
    """
    found = []
    if smtp is not None and not isinstance(smtp, dict):
        found.append("monitoring_alertmanager_smtp: is not a mapping such as {smarthost: mail.example.com:587, "
                     "from: alerts@example.com}")
    smtp_keys = set(smtp) if isinstance(smtp, dict) else set()
    var = "monitoring_alertmanager_receivers"
    if not isinstance(receivers, list) or not all(isinstance(r, dict) for r in receivers):
        return ["%s: %r is not a list of receivers such as [{name: oncall, webhook_url: https://...}]" % (var, receivers)]
    names = []
    for index, receiver in enumerate(receivers):
        name = receiver.get("name")
        where = "%s[%d] (%s)" % (var, index, name)
        if not isinstance(name, str) or not name or name == SILENT or name in names:
            found.append("%s: the name %r is empty, taken or reserved (%r is the collection's silent receiver); give "
                         "each receiver a name of its own" % (where, name, SILENT))
        names.append(name)
        url, email = receiver.get("webhook_url"), receiver.get("email_to")
        if not url and not email:
            found.append("%s: has no webhook_url and no email_to; give it a webhook URL (http:// or https://) or an "
                         "email address" % where)
        if url and not (isinstance(url, str) and _URL.match(url)):
            found.append("%s: webhook_url %r is not an http:// or https:// URL" % (where, url))
        if email and not (isinstance(email, str) and _EMAIL.match(email)):
            found.append("%s: email_to %r is not an email address" % (where, email))
        if email and not {"smarthost", "from"} <= smtp_keys:
            found.append("%s: email_to needs monitoring_alertmanager_smtp.smarthost and .from (the mail server and the "
                         "sender)" % where)
    if not isinstance(route, dict):
        return found + ["monitoring_alertmanager_route: %r is not a mapping such as {group_by: [alertname]}" % (route,)]
    known = names or [SILENT]
    for where, each in _routes(route, "monitoring_alertmanager_route"):
        if each.get("receiver") and each["receiver"] not in known:
            found.append("%s.receiver: %r is not one of monitoring_alertmanager_receivers (%s)"
                         % (where, each["receiver"], ", ".join(map(str, known))))
    var = "monitoring_alertmanager_inhibit_rules"
    if not isinstance(inhibit_rules, list) or not all(isinstance(r, dict) for r in inhibit_rules):
        return found + ["%s: %r is not a list of inhibitions such as [{source_matchers: [...], target_matchers: [...], "
                        "equal: [model, version]}]" % (var, inhibit_rules)]
    for index, rule in enumerate(inhibit_rules):
        unknown = [label for label in rule.get("equal") or [] if label not in ALERT_LABELS]
        if unknown:
            verb = "is" if len(unknown) == 1 else "are"
            found.append("%s[%d].equal: %s %s not a label of the collection's alerts; use %s"
                         % (var, index, ", ".join(repr(label) for label in unknown), verb, ", ".join(ALERT_LABELS)))
    return found
