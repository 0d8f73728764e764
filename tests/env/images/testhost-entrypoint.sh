#!/bin/sh
# PID 1 of an OpsPilot test host: no systemd, just sshd in the foreground.
# The host has exactly one host key (ed25519), so the key a client pins is the key
# it is offered whatever algorithm it prefers. It is made on first start and kept
# across restarts; `envctl host rotate-hostkey` deletes it, makes a new one and
# sends SIGHUP, on which sshd re-executes itself (same PID) and loads the new key.
set -e
mkdir -p /run/sshd
[ -s /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
exec /usr/sbin/sshd -D -e
