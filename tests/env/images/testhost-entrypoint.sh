#!/bin/sh
# PID 1 of an OpsPilot test host: no systemd, just sshd in the foreground.
# The host has exactly one host key (ed25519), so the key a client pins is the key
# it is offered whatever algorithm it prefers. It is made on first start and kept
# across restarts; `envctl host rotate-hostkey` deletes it, makes a new one and
# sends SIGHUP, on which sshd re-executes itself (same PID) and loads the new key.
set -e

# What a kubelet from the bundle needs on a host without systemd:
# - /etc/machine-id;
# - writable kernel tunables it insists on setting (kernel.panic, vm.overcommit_memory,
#   ...). /proc/sys is read-only in the container and these are NOT namespaced: writing
#   them would change the shared machine's kernel. So each is shadowed by a plain file
#   of this host (bind mount); the kubelet's writes land there and go nowhere.
[ -s /etc/machine-id ] || { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; echo; } > /etc/machine-id
mkdir -p /run/opspilot-sysctl
for f in kernel/panic kernel/panic_on_oops vm/overcommit_memory vm/panic_on_oom \
         kernel/keys/root_maxkeys kernel/keys/root_maxbytes; do
  [ -e "/proc/sys/$f" ] || continue
  shadow="/run/opspilot-sysctl/$(echo "$f" | tr / _)"
  cat "/proc/sys/$f" > "$shadow"
  mount --bind "$shadow" "/proc/sys/$f" 2>/dev/null || echo "opspilot-entrypoint: cannot shadow /proc/sys/$f" >&2
done

mkdir -p /run/sshd
[ -s /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
exec /usr/sbin/sshd -D -e
