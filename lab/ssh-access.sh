#!/bin/sh
# Run inside a lab host when it is created (lab/tasks/ssh.yml): it is then
# reached as real fleets are, over SSH as an unprivileged user with
# passwordless sudo, its sshd alone on its own loopback port.
# Usage: ssh-access.sh USER PORT "PUBLIC KEY"; prints the host's ed25519 key.
set -eu
user=$1 port=$2 key=$3
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
home=$(getent passwd "$user" | cut -d: -f6)
install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
printf '%s\n' "$key" >"$home/.ssh/authorized_keys"
chown "$user:$user" "$home/.ssh/authorized_keys"
chmod 0600 "$home/.ssh/authorized_keys"
printf '%s ALL=(ALL) NOPASSWD: ALL\n' "$user" >"/etc/sudoers.d/$user"
chmod 0440 "/etc/sudoers.d/$user"
visudo -cq
# This host's own keys, made now (the image has none).
ssh-keygen -A >/dev/null
cat >/etc/ssh/sshd_config.d/lab.conf <<CONF
ListenAddress 127.0.0.1:$port
PasswordAuthentication no
PermitRootLogin no
AllowUsers $user
CONF
# ssh.service checks the configuration (sshd -t) before it starts.
systemctl enable --quiet ssh
systemctl restart ssh
cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub
