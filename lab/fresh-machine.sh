#!/usr/bin/env bash
# Checks the README's two commands as a fresh machine would run them: stops the
# Docker engine, removes every Debian package on lab/commands.txt that this
# machine did not start with (and the engine's images and volumes, the lab's
# state and the project's download caches), then runs `make demo && make test`
# in a new clone of HEAD. Only what the project's own files install is there.
#
# It changes this machine for good (that is the point), so it asks for --yes.
# Usage: lab/fresh-machine.sh --yes [CLONE_DIR]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
[ "${1:-}" = "--yes" ] || {
  echo "usage: $0 --yes [CLONE_DIR]: removes the lab's Debian packages, the Docker engine's data and" >&2
  echo "the project's caches from this machine, then runs make demo && make test in a new clone" >&2
  exit 2
}
clone=${2:-$(mktemp -d /var/tmp/mlserve-fresh.XXXXXX)}

# Essential packages (dash, util-linux) stay: a Debian machine always has them.
packages=()
while read -r cmd package _; do
  case "$cmd" in ''|'#'*) continue ;; esac
  [ "$(dpkg-query -W -f '${Status} ${Essential}' "$package" 2>/dev/null)" = "install ok installed no" ] \
    && packages+=("$package")
done <"$repo/lab/commands.txt"

if [ -d /var/lib/docker ] && docker info >/dev/null 2>&1; then
  docker ps -aq | xargs -r docker rm -f >/dev/null
fi
pkill -x dockerd 2>/dev/null || true
pkill -x containerd 2>/dev/null || true
for _ in $(seq 30); do pgrep -x dockerd >/dev/null || break; sleep 1; done
if [ ${#packages[@]} -gt 0 ]; then
  echo "removing: ${packages[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${packages[@]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get autoremove --purge -y -qq >&2
fi
# The engines' data: their contents, since a directory may be a mount point.
for dir in /var/lib/docker /var/lib/containerd; do
  if [ -d "$dir" ]; then find "$dir" -mindepth 1 -maxdepth 1 -exec rm -rf {} +; fi
done
# The project's download caches, and the collection's own checksum cache.
rm -rf "${XDG_CACHE_HOME:-$HOME/.cache}/mlserve" "${XDG_CACHE_HOME:-$HOME/.cache}/mlserve-tfserving"

git clone --quiet "$repo" "$clone"
cd "$clone"
echo "fresh check in $clone" >&2
start=$(date +%s)
make demo
demo=$(date +%s)
make test
echo "fresh machine: make demo (passed in $(( demo - start )) s) && make test (passed in $(( $(date +%s) - demo )) s) ($clone)"
