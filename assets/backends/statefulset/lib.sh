# shellcheck shell=bash
# Helpers shared by the scripts of the PostgreSQL pods (postgres.sh, agent.sh, lifecycle.sh).
# Sourced, never executed. Everything a pod needs comes from its environment (see postgres-pod.ts).

: "${PGDATA:?PGDATA must be set}"
: "${POD_NAME:?POD_NAME must be set (downward API metadata.name)}"
: "${PRIMARY_HOST:?PRIMARY_HOST must be set (the read-write PostgreSQL Service)}"
: "${REPLICATION_USER:?REPLICATION_USER must be set}"
: "${FERRETDB_USER:?FERRETDB_USER must be set}"
: "${SLOT_PREFIX:?SLOT_PREFIX must be set}"
CONFIG_DIR=${CONFIG_DIR:-/etc/ferretdb-postgres}
SECRET_DIR=${SECRET_DIR:-/etc/ferretdb-postgres-secret}
RUN_DIR=${RUN_DIR:-/var/run/postgresql}
# Shared with the state sidecar (primary StatefulSet only), which must not see RUN_DIR's socket.
STATE_DIR=${STATE_DIR:-/var/run/ferretdb-state}
PGPORT=${PGPORT:-5432}
# Written by the agent when it is this server's turn to restart for restart-only settings;
# postgres.sh then stops the server and starts over (agent.sh: reconcile_restart).
# shellcheck disable=SC2034 # used by postgres.sh and agent.sh
RESTART_REQUEST="$RUN_DIR/restart-requested"
# In /tmp, an emptyDir only the postgres and agent containers mount: no sidecar of another
# image (the metrics exporter, the state and lease sidecars) reads the replication password.
PGPASSFILE=${PGPASSFILE:-/tmp/.pgpass}
export PGPASSFILE

log() {
  printf '%s %s[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${LOG_TAG:-postgres.sh}" "$POD_NAME" "$*" >&2
}

die() {
  log "FATAL: $*"
  exit 1
}

# The physical replication slot of a pod: prefix + pod name, lower case, [^a-z0-9_] -> '_', at most 63 bytes.
slot_name() {
  local name
  name=$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9_' '_')
  name="${SLOT_PREFIX}${name}"
  printf '%s' "${name:0:63}"
}

# The pod that must run as primary (the ConfigMap key 'leader').
current_leader() {
  tr -d '[:space:]' < "$CONFIG_DIR/leader"
}

# Every PostgreSQL pod of the cluster, one per line (the ConfigMap key 'members').
members() {
  grep -v '^[[:space:]]*$' "$CONFIG_DIR/members" || true
}

read_secret() {
  local file="$SECRET_DIR/$1"
  [ -r "$file" ] || die "cannot read the Secret key '$1' (expected at $file)"
  cat "$file"
}

# libpq password file for the replication role; the password never appears in a command line or setting.
write_pgpass() {
  local password tmp
  password=$(read_secret replication-password)
  password=${password//\\/\\\\}
  password=${password//:/\\:}
  tmp="$PGPASSFILE.tmp.$$"
  (umask 077 && printf '*:*:*:%s:%s\n' "$REPLICATION_USER" "$password" > "$tmp")
  mv -f "$tmp" "$PGPASSFILE"
}

# A replication-role connection to a host; the password comes from the pgpass file. With TLS
# (TLS_DIR set) the server must present a certificate for that host name, signed by the CA.
# $3: the application_name (default: the pod's name, which synchronous_standby_names lists).
conninfo() {
  printf 'host=%s port=%s user=%s dbname=postgres passfile=%s connect_timeout=%s application_name=%s' \
    "$1" "$PGPORT" "$REPLICATION_USER" "$PGPASSFILE" "${2:-5}" "${3:-$POD_NAME}"
  if [ -n "${TLS_DIR:-}" ]; then
    printf ' sslmode=verify-full sslrootcert=%s/ca.crt' "$TLS_DIR"
  fi
}

# Connection to the current primary, through the read-write Service (never a pod name).
leader_conninfo() {
  conninfo "$PRIMARY_HOST"
}

# Every maintenance session (the agent's loop, postgres.sh's checks) gives up instead of waiting
# without end: behind a lock a client holds (an ALTER ROLE or ALTER EXTENSION would also queue
# every later session behind it) or on a statement that does not finish.
SQL_TIMEOUTS="-c statement_timeout=${SQL_STATEMENT_TIMEOUT:-120s} -c lock_timeout=${SQL_LOCK_TIMEOUT:-10s}"

leader_sql() {
  PGOPTIONS=$SQL_TIMEOUTS psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$(leader_conninfo)" "$@"
}

# The system identifier of the primary behind the read-write Service (IDENTIFY_SYSTEM over a
# replication connection), or nothing when it cannot be asked.
primary_system_identifier() {
  primary_identity | cut -d'|' -f1
}

# The timeline the primary behind the read-write Service runs on, or nothing.
primary_timeline() {
  primary_identity | cut -d'|' -f2
}

# IDENTIFY_SYSTEM's answer (systemid|timeline|xlogpos|dbname), or nothing when it cannot be asked.
primary_identity() {
  psql -X -A -t -q -d "$(leader_conninfo) replication=true" -c IDENTIFY_SYSTEM 2>/dev/null || true
}

# What a standby says when its primary is another database (never streamed from, never cloned over).
different_system_message() {
  printf 'the primary behind %s is a different database (system identifier %s) than this pod'"'"'s data (%s): not streaming from it and never re-cloning over this data, which is kept as it is. If the primary was initialised anew by mistake (lost state ConfigMap and primary volume), designate a pod that holds the data (README: lost primary volume)' \
    "$PRIMARY_HOST" "$1" "$2"
}

# A member pod's own address: every StatefulSet of a cluster has a headless Service of its name,
# and a StatefulSet pod is <statefulset>-<ordinal>.
member_host() {
  printf '%s.%s' "$1" "${1%-*}"
}

# Maintenance sessions on the local server (roles, slots) commit locally: they must never wait
# for a synchronous standby, which may itself be waiting for the slot they create.
local_sql() {
  PGOPTIONS="-c synchronous_commit=local $SQL_TIMEOUTS" psql -X -A -t -q -v ON_ERROR_STOP=1 -h "$RUN_DIR" -p "$PGPORT" -U postgres -d postgres "$@"
}

has_data() {
  [ -s "$PGDATA/PG_VERSION" ]
}

is_standby_data() {
  [ -f "$PGDATA/standby.signal" ]
}

# Start a server reachable only through the local socket (for initialisation and promotion).
# No standby can reach it, so its commits must not wait for synchronous standbys. Arguments:
# more server options ("-c" "name=value" pairs, values without spaces).
start_local_server() {
  pg_ctl -D "$PGDATA" -w -t "${PG_START_TIMEOUT:-3600}" -l "$RUN_DIR/local-server.log" \
    -o "-c config_file=$CONFIG_DIR/postgresql.conf -c listen_addresses='' -c synchronous_standby_names='' $*" start \
    || { cat "$RUN_DIR/local-server.log" >&2; die "local server did not start"; }
}

stop_local_server() {
  pg_ctl -D "$PGDATA" -m fast -w -t 600 stop
}

# Roles, passwords (from the Secret, re-applied so a reused volume never keeps stale passwords),
# the grants pg_rewind needs, the DocumentDB extension, and the exporter's view of the state
# sidecar's file. Idempotent; runs on the primary only.
# $1: whether to run ALTER EXTENSION documentdb UPDATE (true|false; default true).
apply_setup() {
  {
    printf '\\set update_extension %s\n' "${1:-true}"
    printf '\\set replication_user %s\n' "$REPLICATION_USER"
    printf '\\set ferretdb_user %s\n' "$FERRETDB_USER"
    printf '\\set state_file %s/cluster-state\n' "$STATE_DIR"
    # The backticks are psql's: it reads the password files itself, so they never reach argv.
    # shellcheck disable=SC2016
    printf '\\set replication_password `cat %s/replication-password`\n' "$SECRET_DIR"
    # shellcheck disable=SC2016
    printf '\\set ferretdb_password `cat %s/ferretdb-password`\n' "$SECRET_DIR"
    cat "$CONFIG_DIR/setup.sql"
  } | local_sql -f -
}

# The md5 of standard input: the fingerprints below tell when something must be re-applied.
fingerprint() {
  md5sum | cut -d' ' -f1
}

# A fingerprint of what apply_setup applies, to re-apply only when it changes: the SQL, the
# passwords, the DocumentDB version the image ships (a new image updates the extension), and
# $1, whether the extension update is allowed yet.
setup_fingerprint() {
  local version
  version=$(local_sql -c "SELECT default_version FROM pg_available_extensions WHERE name = 'documentdb'") || return 1
  { cat "$CONFIG_DIR/setup.sql" "$SECRET_DIR/replication-password" "$SECRET_DIR/ferretdb-password"; echo "$version"; echo "${1:-}"; } \
    | fingerprint
}

# A fingerprint of the server configuration files (the agent reloads when it changes).
config_fingerprint() {
  cat "$CONFIG_DIR/postgresql.conf" "$CONFIG_DIR/pg_hba.conf" | fingerprint
}

# A fingerprint of the mounted certificate, key and CA (empty without TLS): a renewed Secret
# changes it, and a reload makes PostgreSQL use the new files for new connections.
tls_fingerprint() {
  [ -n "${TLS_DIR:-}" ] || return 0
  cat "$TLS_DIR/tls.crt" "$TLS_DIR/tls.key" "$TLS_DIR/ca.crt" | fingerprint
}
