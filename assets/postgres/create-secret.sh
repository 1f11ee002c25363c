#!/bin/sh
# Bootstrap Job: creates the cluster's credentials Secret with random passwords, only if it does
# not exist yet (HTTP 409 from the API server leaves an existing Secret untouched). Runs in a
# curl image (POSIX sh); talks to the API server with the Job's own service account token,
# which may only create Secrets in this namespace. Two shapes:
#   default              Opaque: `replication-password` and `ferretdb-password` (StatefulSets)
#   SECRET_USERNAME set  kubernetes.io/basic-auth: `username` and `password`, the form
#                        CloudNativePG reads for managed roles
set -eu

: "${SECRET_NAME:?SECRET_NAME must be set}"
case "${SECRET_USERNAME:-}" in
  *[!a-z0-9_]*) echo "SECRET_USERNAME must match [a-z0-9_]+: $SECRET_USERNAME" >&2; exit 1 ;;
esac
SA_DIR=${SA_DIR:-/var/run/secrets/kubernetes.io/serviceaccount}
API="https://${KUBERNETES_SERVICE_HOST:?}:${KUBERNETES_SERVICE_PORT:?}"
NAMESPACE=$(cat "$SA_DIR/namespace")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
umask 077
LABELS='{}'
[ -n "${SECRET_LABELS:-}" ] && LABELS=$SECRET_LABELS

# 32 random bytes as 64 hex characters: URL- and conninfo-safe.
random_password() {
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

b64() {
  printf '%s' "$1" | base64 | tr -d '\n'
}

if [ -n "${SECRET_USERNAME:-}" ]; then
  TYPE=kubernetes.io/basic-auth
  DATA="\"username\":\"$(b64 "$SECRET_USERNAME")\",\"password\":\"$(b64 "$(random_password)")\""
else
  TYPE=Opaque
  DATA="\"replication-password\":\"$(b64 "$(random_password)")\",\"ferretdb-password\":\"$(b64 "$(random_password)")\""
fi

printf 'Authorization: Bearer %s\n' "$(cat "$SA_DIR/token")" > "$WORK/headers"
printf 'Content-Type: application/json\n' >> "$WORK/headers"

cat > "$WORK/secret.json" <<JSON
{"apiVersion":"v1","kind":"Secret","type":"$TYPE",
 "metadata":{"name":"$SECRET_NAME","namespace":"$NAMESPACE","labels":$LABELS},
 "data":{$DATA}}
JSON

code=$(curl -sS -o "$WORK/response" -w '%{http_code}' --cacert "$SA_DIR/ca.crt" -H "@$WORK/headers" \
  -X POST --data-binary "@$WORK/secret.json" "$API/api/v1/namespaces/$NAMESPACE/secrets")
case "$code" in
  201) echo "created Secret $NAMESPACE/$SECRET_NAME ($TYPE) with generated passwords" ;;
  409) echo "Secret $NAMESPACE/$SECRET_NAME already exists; left unchanged" ;;
  *)
    echo "creating Secret $NAMESPACE/$SECRET_NAME failed with HTTP $code:" >&2
    cat "$WORK/response" >&2
    exit 1
    ;;
esac
