#!/bin/sh
# The `state` sidecar of the primary StatefulSet's pod (a curl image, POSIX sh): the only
# container of the PostgreSQL pods with a Kubernetes API token, allowed to get and patch one
# ConfigMap ($STATE_CONFIGMAP). Every few seconds it
#   - writes what the ConfigMap says to $STATE_DIR/cluster-state for postgres.sh: "new", or
#     "initialized <system identifier>" once the cluster exists (postgres.sh refuses to run
#     initdb over an existing cluster);
#   - records the system identifier postgres.sh wrote to $STATE_DIR/system-identifier, once.
# $STATE_DIR is an emptyDir of its own: this container never sees the server's socket.
set -u
: "${STATE_CONFIGMAP:?STATE_CONFIGMAP must be set}"
: "${KUBERNETES_SERVICE_HOST:?}" "${KUBERNETES_SERVICE_PORT:?}"
STATE_DIR=${STATE_DIR:-/var/run/ferretdb-state}
TOKEN_DIR=${TOKEN_DIR:-/var/run/secrets/ferretdb.cdk8s.io/api}
INTERVAL=${STATE_INTERVAL:-5}
URL="https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api/v1/namespaces/$(cat "$TOKEN_DIR/namespace")/configmaps/$STATE_CONFIGMAP"
WARNED=

log() {
  printf '%s cluster-state.sh[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${POD_NAME:-}" "$*" >&2
}

# curl with the (rotating) token; prints the body, then the HTTP status on a line of its own.
api() {
  curl -sS --max-time 10 --cacert "$TOKEN_DIR/ca.crt" -H "Authorization: Bearer $(cat "$TOKEN_DIR/token")" \
    -w '\n%{http_code}' "$@" "$URL"
}

publish() {
  printf '%s\n' "$1" > "$STATE_DIR/cluster-state.tmp" && mv -f "$STATE_DIR/cluster-state.tmp" "$STATE_DIR/cluster-state"
}

record() {
  body=$(api -X PATCH -H 'Content-Type: application/merge-patch+json' \
    --data "{\"data\":{\"systemIdentifier\":\"$1\",\"initializedBy\":\"${POD_NAME:-}\"}}") || return 1
  [ "$(printf '%s' "$body" | tail -n 1)" = 200 ] || { log "recording the system identifier failed: $body"; return 1; }
  log "recorded system identifier $1 in ConfigMap $STATE_CONFIGMAP"
}

check() {
  response=$(api) || { log "cannot reach the Kubernetes API: $response"; return 1; }
  code=$(printf '%s' "$response" | tail -n 1)
  if [ "$code" != 200 ]; then
    log "reading ConfigMap $STATE_CONFIGMAP failed with HTTP $code: $(printf '%s' "$response" | sed '$d')"
    return 1
  fi
  recorded=$(printf '%s' "$response" | sed -n 's/.*"systemIdentifier": *"\([0-9]*\)".*/\1/p' | head -n 1)
  local_id=$(cat "$STATE_DIR/system-identifier" 2>/dev/null || true)
  if [ -z "$recorded" ] && [ -n "$local_id" ]; then
    # This pod's data proves the cluster exists, recorded or not (yet).
    record "$local_id" || true
    recorded=$local_id
  elif [ -n "$recorded" ] && [ -n "$local_id" ] && [ "$recorded" != "$local_id" ] && [ -z "$WARNED" ]; then
    log "WARNING: this pod's data has system identifier $local_id, the ConfigMap records $recorded (a different database); left as it is"
    WARNED=1
  fi
  if [ -n "$recorded" ]; then publish "initialized $recorded"; else publish new; fi
}

trap 'exit 0' TERM INT
while :; do
  check || true
  sleep "$INTERVAL" &
  wait $!
done
