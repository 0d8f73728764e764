#!/bin/sh
# Runs inside the debootstrapped test-host rootfs (chroot) once, before docker import.
# Part of the image hash, like testhost-packages.txt and testhost-entrypoint.sh.
set -e
useradd -m -s /bin/bash ops
echo "ops ALL=(ALL) NOPASSWD:ALL" > /etc/sudoers.d/ops
chmod 0440 /etc/sudoers.d/ops
mkdir -p /root/.ssh /home/ops/.ssh
chmod 700 /root/.ssh /home/ops/.ssh
chown ops:ops /home/ops/.ssh
cat > /etc/ssh/sshd_config.d/opspilot-test.conf <<'CONF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
UseDNS no
CONF
rm -f /etc/ssh/ssh_host_*
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
