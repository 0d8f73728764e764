#!/usr/bin/env bash
# OpsPilot hook: post-install-verify.sh — proves the compose runtime installed by
# install-compose.sh works on this node. Changes nothing (the test container is
# removed again).
#
# Checks: the runtime is OpsPilot's (state file, service running), `docker info`
# answers, `docker compose version` runs, and — when the image opspilot-busybox:1 is
# loaded — `docker run --rm --network host opspilot-busybox:1 /bin/busybox true`
# succeeds (otherwise that check is reported as skipped).
# Last line: [INFO] verify_summary=ok ... (exit 0) or [ERROR] verify_summary=failed ... (exit 1).
set -euo pipefail
HOOK=post-install-verify.sh
# the helpers every hook shares (log lines, die, engine probes): lib/ beside this file
case $0 in */*) HOOK_LIB=${0%/*}/lib/common.sh ;; *) HOOK_LIB=lib/common.sh ;; esac
if [ ! -r "$HOOK_LIB" ]; then
  printf '[ERROR] step=init result=failed msg="hooks/lib/common.sh is missing beside the hook"\n[ERROR] verify_summary=failed failed_step=init\n'
  printf '%s: %s is missing: upload the bundle'"'"'s hooks/lib/common.sh with the hooks\n' "$HOOK" "$HOOK_LIB" >&2
  exit 1
fi
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$HOOK_LIB"

TEST_IMAGE=opspilot-busybox:1
ENGINE_GRACE_SECONDS=30
STEP=init
DIE_SUMMARY=verify_summary=failed   # die's last line: verify_summary=failed failed_step=<step>
trap 'die "internal error at line $LINENO: $BASH_COMMAND"' ERR

log_start step=start

STEP=check
[ "${OPS_RUNTIME_TYPE:-compose}" = compose ] || die "post-install-verify.sh checks the compose runtime, got OPS_RUNTIME_TYPE='${OPS_RUNTIME_TYPE}'"
[ "$(id -u)" -eq 0 ] || die "must run as root (log in as root or use passwordless sudo -n)"
[ -f "$STATE_FILE" ] || die "the compose runtime is not installed by OpsPilot on this host ($STATE_FILE missing): run install-compose.sh first"
[ -x "$DOCKER" ] || die "$DOCKER is missing"

STEP=service
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl is-active --quiet "$UNIT_NAME" || die "$UNIT_NAME is not active (systemctl status $UNIT_NAME)"
  SERVICE="systemd:$UNIT_NAME"
else
  pid=$(supervisor_pid) || die "the dockerd supervisor is not running (no live pid in $RUN_DIR/dockerd-supervisor.pid)"
  SERVICE="supervisor:$pid"
fi
log INFO "step=service result=ok service=$SERVICE"

STEP=docker_info
for ((i = 0; i < ENGINE_GRACE_SECONDS; i += 2)); do
  if engine_answers; then break; fi
  sleep 2
done
engine_answers || die "'docker info' does not answer on /var/run/docker.sock"
DOCKER_VERSION=$("$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null || echo unknown)
SD=$("$DOCKER" info --format '{{.Driver}}' 2>/dev/null || echo unknown)
log INFO "step=docker_info result=ok docker_version=$(tok "$DOCKER_VERSION") storage_driver=$(tok "$SD")"

STEP=compose_version
COMPOSE_VERSION=$("$DOCKER" compose version --short 2>/dev/null) || die "'docker compose version' failed: the compose CLI plugin is missing or broken"
log INFO "step=compose_version result=ok compose_version=$(tok "$COMPOSE_VERSION")"

STEP=test_container
TEST=skipped
if "$DOCKER" image inspect "$TEST_IMAGE" >/dev/null 2>&1; then
  NAME=opspilot-verify-$$
  if ! out=$(timeout 120 "$DOCKER" run --rm --name "$NAME" --network host "$TEST_IMAGE" /bin/busybox true 2>&1); then
    timeout 30 "$DOCKER" rm -f "$NAME" >/dev/null 2>&1 || true
    printf '%s\n' "$out" >&2
    die "a test container of $TEST_IMAGE did not run"
  fi
  TEST=ok
  log INFO "step=test_container result=ok image=$TEST_IMAGE"
else
  log INFO "step=test_container result=skipped msg=$(msgq "$TEST_IMAGE is not loaded")"
fi

log INFO "verify_summary=ok docker_version=$(tok "$DOCKER_VERSION") compose_version=$(tok "$COMPOSE_VERSION") storage_driver=$(tok "$SD") service=$SERVICE test_container=$TEST"
exit 0
