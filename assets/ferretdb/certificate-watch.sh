#!/bin/sh
# The `certificate-watch` sidecar of the FerretDB pods (a curl image, POSIX sh). FerretDB reads
# some files once, at start: its PostgreSQL password (PGPASSWORD, from the Secret this sidecar
# alone mounts) and, with TLS, its listener's certificate and key and the CA certificate it
# verifies PostgreSQL with (its driver reads sslrootcert when it parses the URL). A rotated
# password or a renewed file would be used only after a restart. Every few seconds
# this script fingerprints the files in $WATCH_FILES. When they differ from what the pod started
# with, it sets the annotation ferretdb.cdk8s.io/certificates of its Deployment's pod template to
# the new fingerprint: the Deployment controller then replaces the pods one at a time, as for
# `kubectl rollout restart`. Every pod sees the same new files, so every pod asks for the same
# value: one rollout, however many pods ask. Its only API right: `patch` on the FerretDB
# Deployments.
set -u
: "${DEPLOYMENT:?DEPLOYMENT must be set}" "${WATCH_FILES:?WATCH_FILES must be set}"
: "${KUBERNETES_SERVICE_HOST:?}" "${KUBERNETES_SERVICE_PORT:?}"
STATE_DIR=${STATE_DIR:-/var/run/ferretdb-certificate}
TOKEN_DIR=${TOKEN_DIR:-/var/run/secrets/ferretdb.cdk8s.io/api}
INTERVAL=${WATCH_INTERVAL:-10}
ANNOTATION=ferretdb.cdk8s.io/certificates
URL="https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/apis/apps/v1/namespaces/$(cat "$TOKEN_DIR/namespace")/deployments/$DEPLOYMENT"

log() {
  printf '%s certificate-watch.sh[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${POD_NAME:-}" "$*" >&2
}

# Whether every watched file is there (a Secret volume's files all are, or none).
present() {
  for f in $WATCH_FILES; do [ -f "$f" ] || return 1; done
}

# One fingerprint of the watched files, in order, as FerretDB would read them.
fingerprint() {
  for f in $WATCH_FILES; do cat "$f"; done 2>/dev/null | sha256sum | cut -c1-32
}

# The Deployment's pod template gets the new fingerprint (a merge patch: nothing else changes).
request_rollout() {
  response=$(curl -sS --max-time 10 --cacert "$TOKEN_DIR/ca.crt" -H "Authorization: Bearer $(cat "$TOKEN_DIR/token")" \
    -X PATCH -H 'Content-Type: application/merge-patch+json' \
    --data "{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{\"$ANNOTATION\":\"$1\"}}}}}" \
    -o /dev/null -w '%{http_code}' "$URL") || { log "cannot reach the Kubernetes API"; return 1; }
  [ "$response" = 200 ] || { log "patching Deployment $DEPLOYMENT failed with HTTP $response"; return 1; }
  log "the files FerretDB read at start (password, certificates) changed ($2 -> $1): asked Deployment $DEPLOYMENT to replace its pods"
}

# What FerretDB read at the pod's start: the first fingerprint this pod saw. It is kept in an
# emptyDir, so a restart of this container does not forget a renewal FerretDB has not loaded.
started() {
  if [ ! -s "$STATE_DIR/started" ]; then
    present || return 1
    fingerprint > "$STATE_DIR/started.tmp" && mv -f "$STATE_DIR/started.tmp" "$STATE_DIR/started"
  fi
  cat "$STATE_DIR/started"
}

check() {
  first=$(started) || { log "waiting for $WATCH_FILES"; return 1; }
  present || return 1
  current=$(fingerprint)
  [ "$current" != "$first" ] || return 0
  [ "$current" != "$(cat "$STATE_DIR/requested" 2>/dev/null)" ] || return 0
  request_rollout "$current" "$first" && printf '%s\n' "$current" > "$STATE_DIR/requested"
}

trap 'exit 0' TERM INT
while :; do
  check || true
  sleep "$INTERVAL" &
  wait $!
done
