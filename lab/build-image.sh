#!/usr/bin/env bash
# Builds a Debian systemd "host" image for the lab and Molecule without any
# image registry: debootstrap a root filesystem, then `docker import` it.
# Usage: lab/build-image.sh debian12|debian13
# Prints the stable tag (mlserve-lab:<platform>). The image is rebuilt only
# when this recipe changes: each build is also tagged with the recipe's hash.
set -euo pipefail

platform=${1:?usage: $0 debian12|debian13}
case "$platform" in
  debian12) suite=bookworm ;;
  debian13) suite=trixie ;;
  *) echo "unknown platform '$platform' (valid: debian12, debian13)" >&2; exit 2 ;;
esac

# Everything a managed host needs before Ansible's first task: python3 for
# modules, systemd as PID 1, gnupg/ca-certificates for apt repositories,
# sshd and sudo for hosts reached over SSH as a user (lab/tasks/ssh.yml).
packages=python3,python3-apt,systemd,systemd-sysv,dbus,ca-certificates,gnupg,iproute2,procps,sudo,openssh-server

here=$(cd "$(dirname "$0")" && pwd)
recipe_hash=$(cat "$0" | sha256sum | cut -c1-12)
tag="mlserve-lab:${platform}-${recipe_hash}"
stable="mlserve-lab:${platform}"

if ! docker image inspect "$tag" >/dev/null 2>&1; then
  # The mirror comes from this machine's own apt configuration.
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
  rootfs=$(mktemp -d /var/tmp/mlserve-lab-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  echo "building $tag from $suite ($mirror)" >&2
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >&2
  # A container has no consoles or hardware to wait for.
  for unit in getty.target systemd-udevd.service systemd-udev-trigger.service \
              systemd-remount-fs.service systemd-modules-load.service \
              sys-kernel-debug.mount dev-hugepages.mount; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
  done
  echo "$platform" > "$rootfs/etc/mlserve-lab-platform"
  # Every host sharing one host key would make them indistinguishable, and
  # every host's sshd on port 22 of the one loopback would collide: each host
  # gets its keys and its port when it is created, and only if it asks.
  rm -f "$rootfs"/etc/ssh/ssh_host_*
  rm -f "$rootfs"/etc/systemd/system/multi-user.target.wants/ssh.service "$rootfs"/etc/systemd/system/sshd.service
  # Like a fresh install: no package index yet (roles must refresh it).
  rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  # ... and never refreshed: apt's cache_valid_time reads this directory's age.
  touch -d 2000-01-01 "$rootfs"/var/lib/apt/lists
  tar -C "$rootfs" -c . | docker import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    --change 'ENV container=docker' - "$tag" >&2
fi
docker tag "$tag" "$stable"
# Drop builds of earlier recipes.
docker image ls --format '{{.Repository}}:{{.Tag}}' "mlserve-lab" \
  | grep "^mlserve-lab:${platform}-" | grep -vx "$tag" | xargs -r docker rmi >/dev/null || true
echo "$stable"
