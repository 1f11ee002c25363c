#!/usr/bin/env bash
# Entry point of the `postgres` container of every PostgreSQL pod, primary and replicas alike.
#
# The pod named in the ConfigMap key `leader` runs as primary; every other pod runs as a hot
# standby that streams from the read-write Service through its own physical replication slot.
#   primary, no data      -> initdb, once in the cluster's life (bootstrap pod only)
#   primary, standby data -> promote it, once no other member accepts writes
#   standby, no data      -> pg_basebackup through the pod's slot
#   standby, former primary data -> pg_rewind against the new primary, then follow it
#   standby, slot lost    -> the WAL it needs is gone: re-clone automatically
# The server runs as this shell's child: when the leader key moves away from a running primary,
# it stops the server at once (fencing) and starts over as a standby; when the key moves to a
# running standby, that standby streams on until no other member accepts writes, then starts
# over as primary (promotion).
set -Eeuo pipefail
# shellcheck source=lib.sh
. "${CONFIG_DIR:-/etc/ferretdb-postgres}/lib.sh"
# shellcheck source=datadir.sh
. "$CONFIG_DIR/datadir.sh"

SERVER_PID=

# Runs the server and watches the leader key until the server exits or this pod's role changes.
supervise() {
  local role=$1 leader status=0
  shift
  "$@" &
  SERVER_PID=$!
  rm -f "$RUN_DIR/preparing"
  while kill -0 "$SERVER_PID" 2>/dev/null; do
    leader=$(current_leader)
    if [ "$role" = primary ] && [ "$leader" != "$POD_NAME" ]; then
      log "FENCING: the leader key now names $leader; stopping this primary now (fast shutdown: sessions are disconnected and new ones refused), then rejoining as its standby"
      stop_server
      exec bash "$0"
    fi
    if [ "$role" = standby ] && [ "$leader" = "$POD_NAME" ] && handover_ready; then
      log "the leader key now names this pod and no other member accepts writes: stopping the standby to promote it"
      stop_server
      exec bash "$0"
    fi
    sleep "${LEADER_POLL_SECONDS:-1}" &
    wait $! || true
  done
  wait "$SERVER_PID" || status=$?
  SERVER_PID=
  die "the server exited (status $status)"
}

# A standby named leader keeps streaming until the former primary has stopped taking writes:
# it then holds everything the former primary wrote, up to its shutdown checkpoint, and so can
# every other standby that follows it.
HANDOVER_LOGGED=
handover_ready() {
  local others
  others=$(other_writable_members | tr '\n' ' ')
  [ -z "$others" ] && return 0
  if [ -z "$HANDOVER_LOGGED" ]; then
    log "the leader key now names this pod; streaming on from ${others}until it stops taking writes"
    HANDOVER_LOGGED=1
  fi
  return 1
}

stop_server() {
  kill -INT "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" || true
  SERVER_PID=
}

run_primary() {
  if ! has_data; then
    [ "$POD_NAME" = "${BOOTSTRAP_POD:-}" ] \
      || die "$POD_NAME is the designated primary but its data directory is empty; refusing to initialise an empty database in an existing cluster. Designate a pod that has data (README: promotion runbook)"
    init_primary
  fi
  if is_standby_data; then
    promote_local_standby
  fi
  record_system_identifier
  chmod 0700 "$PGDATA"
  log "starting as primary"
  supervise primary postgres -D "$PGDATA" -c "config_file=$CONF"
}

# wal_status of the pod's slot on the primary: reserved|extended|unreserved|lost|missing, or
# nothing (and a log line saying why) when the primary cannot be asked.
slot_status() {
  local out
  if out=$(leader_sql -v slot="$1" 2>&1 <<'SQL'
SELECT coalesce((SELECT wal_status FROM pg_replication_slots WHERE slot_name = :'slot'), 'missing');
SQL
  ); then
    printf '%s' "$out"
  else
    log "cannot ask the primary behind $PRIMARY_HOST about slot $1: $out"
  fi
}

# A hot standby refuses to replay with lower values of these settings than its primary's, which
# pg_control records: start with the higher of the two (one "-c name=value" argument per line),
# so a change to them can roll over the pods in any order.
standby_minimums() {
  local name key recorded configured
  while read -r name key; do
    recorded=$(pg_controldata "$PGDATA" | sed -n "s/^$key setting: *//p")
    configured=$(postgres -D "$PGDATA" -c "config_file=$CONF" -C "$name")
    if [ -n "$recorded" ] && [ "$recorded" -gt "$configured" ]; then
      log "$name: using the primary's $recorded instead of $configured until this standby has replayed the primary's change"
      printf -- '-c\n%s=%s\n' "$name" "$recorded"
    fi
  done <<'LIST'
max_connections max_connections
max_worker_processes max_worker_processes
max_wal_senders max_wal_senders
max_prepared_transactions max_prepared_xacts
max_locks_per_transaction max_locks_per_xact
LIST
}

run_standby() {
  local slot status
  local -a minimums
  slot=$(slot_name "$POD_NAME")
  if ! has_data; then
    clone_from_primary "$slot"
  elif ! is_standby_data; then
    rejoin_as_standby
  fi
  status=$(slot_status "$slot")
  if [ -f "$RUN_DIR/reclone-needed" ] && [ "$status" != lost ]; then
    log "the agent found that the primary no longer has the WAL this standby needs: re-cloning"
    clone_from_primary "$slot"
  fi
  case "$status" in
    lost)
      log "slot $slot was invalidated: the primary removed WAL this standby still needed (max_slot_wal_keep_size). Re-cloning"
      leader_sql -v slot="$slot" <<'SQL' || die "cannot drop invalidated slot $slot on $PRIMARY_HOST"
SELECT pg_drop_replication_slot(:'slot');
SQL
      clone_from_primary "$slot"
      ;;
    missing)
      ensure_slot "$slot" || log "WARNING: could not create slot $slot on $PRIMARY_HOST; starting anyway"
      ;;
    '')
      log "WARNING: cannot reach the primary behind $PRIMARY_HOST; starting from local data (streaming resumes when it is back)"
      ;;
  esac
  rm -f "$RUN_DIR/reclone-needed"
  record_system_identifier
  chmod 0700 "$PGDATA"
  mapfile -t minimums < <(standby_minimums)
  log "starting as standby of $PRIMARY_HOST through slot $slot"
  supervise standby postgres -D "$PGDATA" -c "config_file=$CONF" \
    -c "primary_conninfo=$(leader_conninfo)" -c "primary_slot_name=$slot" "${minimums[@]}"
}

# For the state sidecar (primary StatefulSet only): the identifier it records in the API.
record_system_identifier() {
  pg_controldata "$PGDATA" | sed -n 's/^Database system identifier: *//p' > "$STATE_DIR/system-identifier"
}

# Only this container runs PostgreSQL on this volume: a lock file whose process is not a live
# postgres of this container (a killed server's, whose PID may even be this shell's) is stale.
remove_stale_lock() {
  local pid
  [ -f "$PGDATA/postmaster.pid" ] || return 0
  pid=$(head -n 1 "$PGDATA/postmaster.pid")
  if [ -n "$pid" ] && [ "$pid" != "$$" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ]; then
    die "a server of this container (pid $pid) still holds $PGDATA"
  fi
  log "removing the stale postmaster.pid of a server that did not shut down cleanly"
  rm -f "$PGDATA/postmaster.pid"
}

main() {
  trap 'log "terminated"; [ -n "$SERVER_PID" ] && kill -INT "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID"; kill $(jobs -p) 2>/dev/null; exit 143' TERM INT
  # Alive while the data directory is prepared (waits, clone, rewind, promotion): see lifecycle.sh.
  touch "$RUN_DIR/preparing"
  remove_stale_lock
  write_pgpass
  if [ "$POD_NAME" = "$(current_leader)" ]; then
    run_primary
  else
    run_standby
  fi
}

main "$@"
