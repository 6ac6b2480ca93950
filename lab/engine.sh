#!/usr/bin/env bash
# Makes sure this machine has what the lab and the tests need from Debian
# (lab/commands.txt: the Docker engine, debootstrap, nginx, nftables, the
# Prometheus tools, ...) and that the engine is running.
# Safe to run again: installs only what is missing, starts only what is stopped.
set -euo pipefail

# Each outside command the tests, benchmarks and lab run is named once, with
# its Debian package, in lab/commands.txt.
need=()
while read -r cmd package _; do
  case "$cmd" in ''|'#'*) continue ;; esac
  case "$cmd" in
    /*) [ -e "$cmd" ] || need+=("$package") ;;
    *) command -v "$cmd" >/dev/null 2>&1 || need+=("$package") ;;
  esac
done <"$(dirname "$0")/commands.txt"
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  # No package may start its service here (nginx would take this machine's
  # port 80): policy-rc.d, Debian's switch for that, holds starts back.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy=yes
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
  [ -z "$policy" ] || rm -f /usr/sbin/policy-rc.d
fi

if docker info >/dev/null 2>&1; then
  exit 0
fi
if [ -d /run/systemd/system ]; then
  systemctl start docker
else
  # No systemd: run dockerd in the background. No bridge, no iptables, no
  # masquerading, so no private-range network is ever created; everything in
  # the lab uses host networking on loopback.
  mkdir -p /var/lib/docker /var/log
  nohup dockerd --bridge=none --iptables=false --ip-masq=false \
    >/var/log/mlserve-dockerd.log 2>&1 &
fi
for _ in $(seq 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "the Docker engine did not start; see /var/log/mlserve-dockerd.log" >&2
exit 1
