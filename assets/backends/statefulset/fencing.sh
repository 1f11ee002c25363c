# shellcheck shell=bash
# The primary's side of the cluster's Lease (the `lease` sidecar, lease.sh, holds it through the
# Kubernetes API). Sourced by postgres.sh after lib.sh, never executed:
#   lease_held         the sidecar's last successful renewal was sent less than
#                      LEASE_RENEW_DEADLINE seconds ago (this node's monotonic clock)
#   wait_for_lease     before any primary start: until the Lease is held, or the key moved away
#   mark_primary       tells the sidecar a primary server runs here (refreshed every second; a
#   unmark_primary     holder the key no longer names keeps the Lease until the file goes)
#   expired_holder     the pod whose Lease this pod took after it was not renewed: it fenced itself
# A candidate acquires the Lease only after seeing it unrenewed for LEASE_DURATION seconds on its
# own clock; a primary stops taking writes once its last renewal is LEASE_RENEW_DEADLINE old, a
# bound shorter than LEASE_DURATION: never two primaries, whatever the nodes' clocks say.

LEASE_RENEWED_FILE="$STATE_DIR/lease-renewed"
PRIMARY_MARK="$STATE_DIR/primary"

# This node's monotonic clock in ms (/proc/uptime; the pod's containers share it).
uptime_ms() {
  local up rest
  read -r up rest < "${UPTIME_FILE:-/proc/uptime}"
  if [[ $up == *.* ]]; then
    rest=${up#*.}000
    echo $(( ${up%.*} * 1000 + 10#${rest:0:3} ))
  else
    echo $(( up * 1000 ))
  fi
}

# How long ago (ms) the sidecar sent its last successful renewal; nothing when it holds no Lease.
lease_age_ms() {
  local renewed
  renewed=$(cat "$LEASE_RENEWED_FILE" 2>/dev/null) || return 0
  [[ $renewed =~ ^[0-9]+$ ]] || return 0
  echo $(( $(uptime_ms) - renewed ))
}

lease_held() {
  local age
  age=$(lease_age_ms)
  [ -n "$age" ] && [ "$age" -le $(( ${LEASE_RENEW_DEADLINE:-10} * 1000 )) ]
}

# Waits until this pod holds the Lease (0), or the leader key names another pod (1). Gives up
# after LEASE_WAIT_SECONDS (the container restarts and waits again).
wait_for_lease() {
  local i
  for i in $(seq 1 "${LEASE_WAIT_SECONDS:-600}"); do
    lease_held && return 0
    [ "$(current_leader)" = "$POD_NAME" ] || return 1
    if [ "$i" = 1 ] || [ $(( i % 30 )) = 0 ]; then
      log "named primary; waiting for the cluster's Lease (container 'lease': it takes it once the former primary released it or did not renew it for ${LEASE_DURATION:-15}s)"
    fi
    sleep 1
  done
  die "this pod did not get the cluster's Lease within ${LEASE_WAIT_SECONDS:-600}s (see the 'lease' container's log)"
}

mark_primary() {
  uptime_ms > "$PRIMARY_MARK.tmp" && mv -f "$PRIMARY_MARK.tmp" "$PRIMARY_MARK"
}

unmark_primary() {
  rm -f "$PRIMARY_MARK"
}

expired_holder() {
  cat "$STATE_DIR/lease-expired-holder" 2>/dev/null || true
}
