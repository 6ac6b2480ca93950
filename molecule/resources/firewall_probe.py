#!/usr/bin/env python3
"""Prove an nft rule file inside a network namespace of the probe's own.

Run it under `unshare -n` (it refuses to run in a namespace that has any
interface but lo, so that it never loads rules where other hosts live):

    unshare -n python3 firewall_probe.py RULES --ports 21500,21501 --outside 21499 \
        --sources 127.0.0.1,127.0.0.2,127.0.0.3

It brings lo up, loads a table of another owner, then RULES twice (the
file must replace its own table, also when it exists, and leave the other
alone), listens on every port (dual-stack, as TF Serving's REST server
does), and connects to each port from each source address. Prints one JSON
object: {"tables": [...], "results": {source: {port: [outcome, seconds]}}},
outcome "accepted", "refused" or "timeout". Loopback addresses only.
"""

import argparse
import ipaddress
import json
import socket
import subprocess
import time

# A table of someone else's, with a base chain on the same hook.
OTHER_TABLE = ("add table inet probe_other_owner",
               "add chain inet probe_other_owner input { type filter hook input priority 10; policy accept; }")


def run(*argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def listen(port):
    try:
        server = socket.socket(socket.AF_INET6)
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        server.bind(("::", port))
    except OSError:  # no IPv6 in this kernel
        server = socket.socket(socket.AF_INET)
        server.bind(("0.0.0.0", port))
    server.listen(16)
    return server


def connect(source, port):
    family = socket.AF_INET6 if ipaddress.ip_address(source).version == 6 else socket.AF_INET
    target = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    client = socket.socket(family)
    client.settimeout(3)
    started = time.monotonic()
    try:
        client.bind((source, 0))
        client.connect((target, port))
        outcome = "accepted"
    except ConnectionRefusedError:
        outcome = "refused"
    except socket.timeout:
        outcome = "timeout"
    finally:
        client.close()
    return [outcome, round(time.monotonic() - started, 3)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("rules")
    parser.add_argument("--ports", required=True, help="comma-separated serving ports")
    parser.add_argument("--outside", type=int, required=True, help="a port that is not a serving port")
    parser.add_argument("--sources", required=True, help="comma-separated loopback source addresses")
    args = parser.parse_args()
    sources = args.sources.split(",")
    if not all(ipaddress.ip_address(s).is_loopback for s in sources):
        raise SystemExit("refusing %s: loopback sources only" % args.sources)
    if [name for _, name in socket.if_nameindex()] != ["lo"]:
        raise SystemExit("refusing to load rules: this is not a fresh network namespace (run under unshare -n)")
    run("ip", "link", "set", "lo", "up")
    for command in OTHER_TABLE:
        run("nft", command)
    run("nft", "-f", args.rules)
    run("nft", "-f", args.rules)  # again: replaces its own table
    tables = sorted(line.split(" ", 1)[1] for line in run("nft", "list", "tables").splitlines())
    ports = [int(p) for p in args.ports.split(",")] + [args.outside]
    listeners = [listen(port) for port in ports]
    has_v6 = listeners[0].family == socket.AF_INET6
    results = dict((source, dict((str(port), connect(source, port)) for port in ports))
                   for source in sources if has_v6 or ipaddress.ip_address(source).version == 4)
    print(json.dumps({"tables": tables, "results": results}))


if __name__ == "__main__":
    main()
