#!/bin/sh
# The `lease` sidecar of every PostgreSQL pod (a curl image, POSIX sh): holds the cluster's
# coordination.k8s.io Lease ($LEASE_NAME) for the pod the ConfigMap key `leader` names, as
# Kubernetes leader election does, with no reliance on clocks agreeing between nodes:
#   - the named pod acquires the Lease when it is free (no holder), already its own, or expired
#     by observation: this container saw the same resourceVersion for LEASE_DURATION seconds on
#     its own clock. Every write is a merge patch carrying the resourceVersion it read
#     (compare-and-swap: 409 means another writer came first);
#   - the holder renews every LEASE_RETRY seconds and writes the time it sent its last successful
#     renewal (this node's uptime, ms) to $STATE_DIR/lease-renewed: postgres.sh serves as primary
#     only while that time is recent (fencing.sh);
#   - a holder the key no longer names keeps renewing while its server still runs as primary
#     ($STATE_DIR/primary, refreshed by postgres.sh, is recent), releases the Lease (holder
#     cleared: the named pod takes it at once) once that server has stopped, and lets it expire
#     when postgres.sh stopped refreshing the file without stopping;
#   - a Lease taken by expiry records the former holder in $STATE_DIR/lease-expired-holder: it
#     fenced itself (it could not renew), so not reaching it does not block the promotion.
# Only this container (and the primary StatefulSet's `state` sidecar) has an API token: `get` and
# `patch` on this one Lease.
set -u
: "${LEASE_NAME:?LEASE_NAME must be set}" "${POD_NAME:?POD_NAME must be set}"
: "${KUBERNETES_SERVICE_HOST:?}" "${KUBERNETES_SERVICE_PORT:?}"
CONFIG_DIR=${CONFIG_DIR:-/etc/ferretdb-postgres}
STATE_DIR=${STATE_DIR:-/var/run/ferretdb-state}
TOKEN_DIR=${TOKEN_DIR:-/var/run/secrets/ferretdb.cdk8s.io/api}
UPTIME_FILE=${UPTIME_FILE:-/proc/uptime}
DURATION=${LEASE_DURATION:-15}
RETRY=${LEASE_RETRY:-2}
URL="https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/apis/coordination.k8s.io/v1/namespaces/$(cat "$TOKEN_DIR/namespace")/leases/$LEASE_NAME"
# The resourceVersion seen last and when (ms) it was first seen: expiry by observation.
SEEN_RV=
SEEN_AT=0
LOGGED=

log() {
  printf '%s lease.sh[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$POD_NAME" "$*" >&2
}

# Logs a message once until another one is logged.
say() {
  [ "$1" = "$LOGGED" ] && return 0
  log "$1"
  LOGGED=$1
}

# This node's monotonic clock in ms (never steps with NTP; the containers of a pod share it).
now_ms() {
  read -r up _ < "$UPTIME_FILE"
  case "$up" in
    *.*) frac=${up#*.}00; echo $(( ${up%.*} * 1000 + $(echo "$frac" | cut -c1-3 | sed 's/^0*//;s/^$/0/') )) ;;
    *) echo $(( up * 1000 )) ;;
  esac
}

# curl with the (rotating) token; prints the body, then the HTTP status on a line of its own.
api() {
  curl -sS --max-time "$RETRY" --cacert "$TOKEN_DIR/ca.crt" -H "Authorization: Bearer $(cat "$TOKEN_DIR/token")" \
    -w '\n%{http_code}' "$@" "$URL"
}

# A string field of the Lease JSON (compact or pretty-printed); empty when absent or null.
field() {
  printf '%s' "$LEASE" | tr -d '\n' | sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" | head -n 1
}

field_number() {
  printf '%s' "$LEASE" | tr -d '\n' | sed -n "s/.*\"$1\": *\([0-9][0-9]*\).*/\1/p" | head -n 1
}

micro_time() {
  date -u +%Y-%m-%dT%H:%M:%S.000000Z
}

write_file() {
  printf '%s\n' "$2" > "$STATE_DIR/$1.tmp" && mv -f "$STATE_DIR/$1.tmp" "$STATE_DIR/$1"
}

# A merge patch of the Lease, with the resourceVersion read ($RV) as precondition. $1: the spec
# fields as JSON members. Returns 0 on 200; 1 otherwise (409: another writer came first).
patch_lease() {
  response=$(api -X PATCH -H 'Content-Type: application/merge-patch+json' \
    --data "{\"metadata\":{\"resourceVersion\":\"$RV\"},\"spec\":{$1}}") || { log "the Lease update did not complete: $response"; return 1; }
  code=$(printf '%s' "$response" | tail -n 1)
  [ "$code" = 200 ] && return 0
  [ "$code" = 409 ] && { log "the Lease changed since it was read (409): reading it again"; return 1; }
  log "updating Lease $LEASE_NAME failed with HTTP $code: $(printf '%s' "$response" | sed '$d' | tr -d '\n')"
  return 1
}

# Takes the Lease (from $1: empty, this pod, or the holder whose lease expired) or renews it.
hold() {
  sent=$(now_ms)
  now=$(micro_time)
  if [ "$HOLDER" = "$POD_NAME" ]; then
    spec="\"holderIdentity\":\"$POD_NAME\",\"leaseDurationSeconds\":$DURATION,\"renewTime\":\"$now\""
  else
    transitions=$(( ${TRANSITIONS:-0} + 1 ))
    spec="\"holderIdentity\":\"$POD_NAME\",\"leaseDurationSeconds\":$DURATION,\"acquireTime\":\"$now\",\"renewTime\":\"$now\",\"leaseTransitions\":$transitions"
  fi
  patch_lease "$spec" || return 1
  write_file lease-renewed "$sent"
  if [ "$HOLDER" != "$POD_NAME" ]; then
    if [ -n "$HOLDER" ]; then
      write_file lease-expired-holder "$HOLDER"
      log "acquired Lease $LEASE_NAME: $HOLDER did not renew it for ${DURATION}s"
    else
      rm -f "$STATE_DIR/lease-expired-holder"
      log "acquired Lease $LEASE_NAME (it was free)"
    fi
  fi
}

release() {
  if patch_lease '"holderIdentity":null,"acquireTime":null,"renewTime":null'; then
    rm -f "$STATE_DIR/lease-renewed"
    log "released Lease $LEASE_NAME: the leader key names another pod and this pod's primary has stopped"
  fi
}

# Whether postgres.sh runs a primary server here (the file it refreshes every second is recent).
serving() {
  [ -f "$STATE_DIR/primary" ] || return 1
  at=$(cat "$STATE_DIR/primary" 2>/dev/null)
  case "$at" in ''|*[!0-9]*) return 0 ;; esac
  [ $(( $(now_ms) - at )) -le $(( ${SERVING_STALE_SECONDS:-5} * 1000 )) ] && return 0
  say "postgres.sh has not confirmed its primary for ${SERVING_STALE_SECONDS:-5}s: no longer renewing; the Lease expires"
  return 2
}

step() {
  response=$(api) || { say "cannot reach the Kubernetes API: $response"; return 1; }
  code=$(printf '%s' "$response" | tail -n 1)
  if [ "$code" != 200 ]; then
    say "reading Lease $LEASE_NAME failed with HTTP $code: $(printf '%s' "$response" | sed '$d' | tr -d '\n')"
    return 1
  fi
  LEASE=$(printf '%s' "$response" | sed '$d')
  RV=$(field resourceVersion)
  HOLDER=$(field holderIdentity)
  TRANSITIONS=$(field_number leaseTransitions)
  seen=$(now_ms)
  if [ "$RV" != "$SEEN_RV" ]; then
    SEEN_RV=$RV
    SEEN_AT=$seen
  fi
  leader=$(tr -d '[:space:]' < "$CONFIG_DIR/leader")
  if [ "$HOLDER" != "$POD_NAME" ]; then
    rm -f "$STATE_DIR/lease-renewed"
    [ "$leader" = "$POD_NAME" ] || return 0
    if [ -z "$HOLDER" ] || [ $(( seen - SEEN_AT )) -ge $(( DURATION * 1000 )) ]; then
      hold
    else
      say "named leader; Lease $LEASE_NAME is held by $HOLDER: waiting until it is released or not renewed for ${DURATION}s"
    fi
    return 0
  fi
  if [ "$leader" = "$POD_NAME" ]; then
    hold
    return 0
  fi
  serving
  case $? in
    0) hold ;;
    1) release ;;
  esac
}

trap 'exit 0' TERM INT
while :; do
  step || true
  sleep "$RETRY" &
  wait $!
done
