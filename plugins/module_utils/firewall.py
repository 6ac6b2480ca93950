# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The serving hosts' firewall: who may reach the TF Serving ports, as nftables rules.

Standard library only. TF Serving listens on every address of its host
(gRPC on 0.0.0.0, REST on ::), and the real server has no flag to bind a
TCP port to one address; so each serving host filters its own gRPC and REST
ports instead: the gateways and the host itself pass, anyone else gets a TCP
reset. The fleet plan (plan.py) checks the variables and derives each
host's ports and sources with the functions below; the firewall role writes
:func:`render`'s text and loads it with ``nft -f``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import posixpath

# The collection's own table: loading the rules replaces it and nothing else.
TABLE = "inet mlserve_tfserving"
# The host variables the plan reads (defaults in roles/firewall/defaults/main.yml).
VARIABLES = ("firewall_enabled", "firewall_allowed_sources", "firewall_gateway_sources", "firewall_rules_file")
# Debian's ruleset file, the administrator's: nftables.service loads it.
DEBIAN_RULESET = "/etc/nftables.conf"
WHY = "the serving hosts' firewall (firewall_enabled) allows gateways and monitoring hosts by address"


def network_problem(value):
    """None when `value` is an IP address or network nftables can match, else why not (without the value)."""
    if not isinstance(value, str):
        return "is not an IP address or network"
    try:
        network = ipaddress.ip_network(value)
    except ValueError:
        return "is not an IP address or network"
    if getattr(network.network_address, "scope_id", None):  # fe80::1%eth0: nft matches no zone
        return "is not an IP address or network"
    if network.prefixlen == 0:
        return "would let every address in; set firewall_enabled: false on the serving hosts instead"
    return None


def _list_problems(values, what):
    """Problems of a list of addresses or networks, each naming `what` and the value."""
    if not isinstance(values, list):
        return ["%s: %r is not a list; list IP addresses or networks, e.g. ['192.0.2.10', '2001:db8::/64']"
                % (what, values)]
    return ["%s: %r %s" % (what, value, network_problem(value)) for value in values if network_problem(value)]


def _enabled(host):
    return host["firewall"]["enabled"] is True


def rules_file_problem(path):
    """Why the collection cannot write its table to `path` (firewall_rules_file), or None."""
    if not (isinstance(path, str) and path.startswith("/")):
        return "firewall_rules_file: %r is not an absolute path" % (path,)
    if posixpath.normpath(path) == DEBIAN_RULESET:
        return ("firewall_rules_file: %r is Debian's ruleset, the administrator's, which the collection's table would "
                "replace (every other rule gone at the next nftables.service start); keep the default "
                "/etc/tfserving/firewall.nft or another file of its own" % (path,))
    return None


def gateway_sources(host):
    """The addresses a gateway's (or monitoring host's) connections come from: firewall_gateway_sources, else its address."""
    return host["firewall"]["gateway_sources"] or [host["address"]]


def plan_problems(hosts, serving_names, gateway_names, monitor_names=()):
    """Problems of the firewall variables of the inventory, every one at once.

    `hosts`: host_inputs() of every host; `serving_names`: the serving hosts;
    `gateway_names`: the hosts that render a gateway; `monitor_names`: the
    monitoring hosts, whose Prometheus scrapes the REST ports. Their sources
    are only checked when some serving host enables the firewall.
    """
    by_message = {}
    for host in hosts:
        if host["name"] not in serving_names:
            continue
        settings = host["firewall"]
        if not isinstance(settings["enabled"], bool):
            by_message.setdefault("firewall_enabled: %r is not a boolean; use true or false"
                                  % (settings["enabled"],), []).append(host["name"])
        elif settings["enabled"]:
            for problem in _list_problems(settings["allowed_sources"], "firewall_allowed_sources"):
                by_message.setdefault(problem, []).append(host["name"])
            problem = rules_file_problem(settings["rules_file"])
            if problem:
                by_message.setdefault(problem, []).append(host["name"])
            if not gateway_names and not settings["allowed_sources"]:
                by_message.setdefault(
                    "firewall_enabled: the inventory has no gateway (group gateway) and firewall_allowed_sources is "
                    "empty, so no one but the host itself could reach its serving ports; add the gateways to the "
                    "inventory, list the clients in firewall_allowed_sources, or set firewall_enabled: false",
                    []).append(host["name"])
    problems = ["%s (on %s)" % (message, ", ".join(sorted(names))) for message, names in sorted(by_message.items())]
    if not any(_enabled(h) for h in hosts if h["name"] in serving_names):
        return problems
    for host in hosts:
        if host["name"] not in gateway_names and host["name"] not in monitor_names:
            continue
        explicit = host["firewall"]["gateway_sources"]
        if explicit:
            problems += ["%s; %s" % (p, WHY)
                         for p in _list_problems(explicit, "firewall_gateway_sources on %s" % host["name"])]
        elif network_problem(host["address"]):
            problems.append("firewall_gateway_sources on %s is not set and its address %r (tfserving_address, "
                            "ansible_host or the inventory name) %s; %s: set firewall_gateway_sources on %s to the "
                            "addresses its connections to the serving hosts come from"
                            % (host["name"], host["address"], network_problem(host["address"]), WHY, host["name"]))
    return problems


def host_firewalls(hosts, profile_by_host, gateway_names, monitor_names=()):
    """Each serving host's firewall, for the hosts that enable it.

    `profile_by_host`: serving host -> its profile key in the plan (whose
    units give the ports: hosts that share a profile share them, so a large
    fleet's plan does not repeat them per host). Returns host -> {profile,
    gateways: {gateway: sources}, monitors: {monitoring host: sources},
    allowed: firewall_allowed_sources}.
    """
    gateways = dict((h["name"], list(gateway_sources(h))) for h in hosts if h["name"] in gateway_names)
    monitors = dict((h["name"], list(gateway_sources(h))) for h in hosts if h["name"] in monitor_names)
    return dict((h["name"], {"profile": profile_by_host[h["name"]], "gateways": gateways, "monitors": monitors,
                             "allowed": list(h["firewall"]["allowed_sources"])})
                for h in hosts if h["name"] in profile_by_host and _enabled(h))


def serving_ports(units):
    """Every gRPC and REST port of the units, sorted."""
    return sorted(set(u[key] for u in units for key in ("grpc_port", "rest_port")))


def _elements(networks):
    """nft set elements: overlapping networks merged (an interval set refuses overlaps), hosts without /32."""
    merged = ipaddress.collapse_addresses(networks)
    return ", ".join(str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n) for n in merged)


def _set(name, kind, networks):
    lines = ["\tset %s {" % name, "\t\ttype %s" % kind, "\t\tflags interval"]
    if networks:
        lines.append("\t\telements = { %s }" % _elements(networks))
    return lines + ["\t}"]


def render(firewall, units, host):
    """The nft file of one serving host: its own table, replaced in one transaction by ``nft -f``.

    `firewall`: host_firewalls()'s entry for `host`; `units`: its profile's units.
    """
    sources = [(source, "gateway %s" % gateway) for gateway, addresses in sorted(firewall["gateways"].items())
               for source in addresses]
    sources += [(source, "firewall_allowed_sources") for source in firewall["allowed"]]
    networks = [ipaddress.ip_network(source) for source, _ in sources]
    monitors = [(source, "monitoring host %s" % monitor)
                for monitor, addresses in sorted(firewall.get("monitors", {}).items()) for source in addresses]
    scrapers = [ipaddress.ip_network(source) for source, _ in monitors]
    ports = ", ".join(str(p) for p in serving_ports(units))
    rest_ports = ", ".join(str(p) for p in sorted(set(u["rest_port"] for u in units)))
    lines = [
        "#!/usr/sbin/nft -f",
        "# mlserve.tfserving firewall of %s, written by Ansible (roles/firewall): its TF Serving" % host,
        "# ports answer the gateways, the host itself and firewall_allowed_sources only, and its",
        "# REST ports the monitoring hosts too. Loaded",
        "# with nft -f, which applies the file in one transaction: the first line creates the",
        "# table when it is missing, so that the delete always succeeds, and the new table",
        "# replaces the old one. Other tables are left alone.",
        "table %s" % TABLE,
        "delete table %s" % TABLE,
        "table %s {" % TABLE,
        "\t# Every gRPC and REST port of the host's TF Serving containers (from the fleet plan).",
        "\tset serving_ports {",
        "\t\ttype inet_service",
    ]
    if ports:
        lines.append("\t\telements = { %s }" % ports)
    lines += ["\t}", "\t# Who else may reach them:"]
    lines += ["\t#   %s: %s" % (source, why) for source, why in sources] or ["\t#   no one"]
    lines += _set("allowed_v4", "ipv4_addr", [n for n in networks if n.version == 4])
    lines += _set("allowed_v6", "ipv6_addr", [n for n in networks if n.version == 6])
    lines += ["\t# The REST ports (metrics page, version status), which Prometheus may reach:",
              "\tset rest_ports {", "\t\ttype inet_service"]
    if rest_ports:
        lines.append("\t\telements = { %s }" % rest_ports)
    lines += ["\t}"]
    lines += ["\t#   %s: %s" % (source, why) for source, why in monitors] or ["\t#   no monitoring host"]
    lines += _set("monitors_v4", "ipv4_addr", [n for n in scrapers if n.version == 4])
    lines += _set("monitors_v6", "ipv6_addr", [n for n in scrapers if n.version == 6])
    lines += [
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy accept;",
        "\t\ttcp dport @serving_ports jump serving_ports",
        "\t}",
        "\tchain serving_ports {",
        "\t\tip saddr 127.0.0.1 accept comment \"the host itself\"",
        "\t\tip6 saddr ::1 accept comment \"the host itself\"",
        "\t\tip saddr @allowed_v4 accept",
        "\t\tip6 saddr @allowed_v6 accept",
        "\t\ttcp dport @rest_ports ip saddr @monitors_v4 accept",
        "\t\ttcp dport @rest_ports ip6 saddr @monitors_v6 accept",
        "\t\t# A reset, not a silent drop: a client that bypasses the gateway is told at once.",
        "\t\tmeta l4proto tcp reject with tcp reset comment \"not a gateway\"",
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"
