#!/bin/sh
# Runs inside a copy of the test-host rootfs (chroot) once, before docker import:
# the same host with systemd as PID 1, as most real hosts are. Part of the
# systemd image hash (with the test-host image it starts from).
set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends systemd systemd-sysv dbus >/dev/null
# One ed25519 host key, made on first boot like the plain test host does.
mkdir -p /etc/systemd/system/ssh.service.d
cat > /etc/systemd/system/ssh.service.d/opspilot-hostkey.conf <<'CONF'
[Service]
ExecStartPre=
ExecStartPre=/bin/sh -c '[ -s /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key'
ExecStartPre=/usr/sbin/sshd -t
CONF
systemctl enable ssh.service >/dev/null 2>&1
# Nothing of a console or of the machine's kernel in a container.
for u in getty@tty1.service console-getty.service systemd-logind.service systemd-udevd.service \
         systemd-udevd-control.socket systemd-udevd-kernel.socket sys-kernel-config.mount \
         systemd-modules-load.service systemd-sysctl.service; do
  systemctl mask "$u" >/dev/null 2>&1 || true
done
: > /etc/machine-id
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
