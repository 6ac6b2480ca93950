#!/usr/bin/env bash
# Writes a tiny image archive (busybox only, about 1 MB) to $1, the way an
# air-gapped user carries an image to a host: `docker save` here, `docker load`
# there. Used by tests that need "some image" without a registry.
set -euo pipefail
out=${1:?usage: $0 OUT.tar}
if ! docker image inspect mlserve-lab:tiny >/dev/null 2>&1; then
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin"
  cp /bin/busybox "$root/bin/busybox"
  for applet in sh echo cat sleep; do ln -s busybox "$root/bin/$applet"; done
  tar -C "$root" -c . | docker import --change 'CMD ["/bin/sh"]' - mlserve-lab:tiny >/dev/null
fi
docker save -o "$out" mlserve-lab:tiny
