#!/usr/bin/env bash
# Entry point of the `postgres` container of every PostgreSQL pod, primary and replicas alike.
#
# The pod named in the ConfigMap key `leader` runs as primary; every other pod runs as a hot
# standby that streams from the read-write Service through its own physical replication slot.
#   primary, no data      -> initdb (only the bootstrap pod may do this), roles, extension
#   primary, standby data -> promote it (the promotion runbook designates a replica)
#   standby, no data      -> pg_basebackup through the pod's slot
#   standby, former primary data -> pg_rewind against the new primary, then follow it
#   standby, slot lost    -> the WAL it needs is gone: re-clone automatically
set -Eeuo pipefail
# shellcheck source=lib.sh
. "${CONFIG_DIR:-/etc/ferretdb-postgres}/lib.sh"

CONF="$CONFIG_DIR/postgresql.conf"

init_primary() {
  log "initialising a new cluster in $PGDATA"
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  initdb -D "$PGDATA" --username=postgres --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 >&2
  start_local_server
  apply_setup
  stop_local_server
  log "cluster initialised"
}

promote_local_standby() {
  log "this pod is the designated primary and holds standby data: promoting it"
  start_local_server
  pg_ctl -D "$PGDATA" -w -t 3600 promote
  stop_local_server
  log "promoted; now on timeline $(pg_controldata "$PGDATA" | sed -n 's/^Latest checkpoint.s TimeLineID: *//p')"
}

# Clone the primary into a sibling directory and move it into place only when complete,
# so an interrupted clone never leaves a half-written data directory behind.
clone_from_primary() {
  local slot=$1 tmp="$PGDATA.clone"
  rm -rf "$tmp"
  touch "$RUN_DIR/cloning"
  log "cloning $PRIMARY_HOST with pg_basebackup through slot $slot"
  ensure_slot "$slot" || die "cannot create or check slot $slot on $PRIMARY_HOST as $REPLICATION_USER (see the error above); data directory left as it was"
  # In the background so that SIGTERM (this shell is the container's PID 1) stops the clone.
  pg_basebackup -D "$tmp" -d "$(leader_conninfo)" -X stream -S "$slot" -c fast --no-password -v >&2 &
  if ! wait $!; then
    rm -rf "$tmp"
    die "pg_basebackup from $PRIMARY_HOST failed (see the error above); data directory left as it was"
  fi
  touch "$tmp/standby.signal"
  rm -rf "$PGDATA"
  mv "$tmp" "$PGDATA"
  rm -f "$RUN_DIR/cloning"
  log "clone complete"
}

# The pod's slot on the primary, created if missing (idempotent; RESERVE_WAL so WAL is kept from now on).
ensure_slot() {
  leader_sql -v slot="$1" <<'SQL'
SELECT pg_create_physical_replication_slot(:'slot', true)
WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = :'slot');
SQL
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

wait_for_primary() {
  local i
  for i in $(seq 1 "${PRIMARY_WAIT_SECONDS:-120}"); do
    if [ "$(leader_sql -c 'SELECT pg_is_in_recovery()' 2>/dev/null || true)" = "f" ]; then
      return 0
    fi
    [ "$i" = 1 ] && log "waiting for a writable primary behind $PRIMARY_HOST"
    sleep 1
  done
  return 1
}

rejoin_as_standby() {
  log "the data directory belongs to a former primary: rewinding it to follow $PRIMARY_HOST"
  wait_for_primary || die "no writable primary behind $PRIMARY_HOST; refusing to start a former primary (it could accept writes)"
  # --config-file: if the target needs crash recovery first, it runs with the real settings
  # (wal_log_hints among them), not the data directory's initdb defaults.
  if ! pg_rewind --target-pgdata="$PGDATA" --source-server="$(leader_conninfo)" --config-file="$CONF" >&2; then
    die "pg_rewind failed; the data directory is kept for inspection. To re-clone this pod, empty its volume (see the README runbook)"
  fi
  touch "$PGDATA/standby.signal"
  log "rewound; starting as standby"
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
  chmod 0700 "$PGDATA"
  log "starting as primary"
  exec postgres -D "$PGDATA" -c "config_file=$CONF"
}

run_standby() {
  local slot status
  slot=$(slot_name "$POD_NAME")
  if ! has_data; then
    clone_from_primary "$slot"
  elif ! is_standby_data; then
    rejoin_as_standby
  fi
  status=$(slot_status "$slot")
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
  chmod 0700 "$PGDATA"
  log "starting as standby of $PRIMARY_HOST through slot $slot"
  exec postgres -D "$PGDATA" -c "config_file=$CONF" \
    -c "primary_conninfo=$(leader_conninfo)" -c "primary_slot_name=$slot"
}

main() {
  trap 'log "terminated"; kill $(jobs -p) 2>/dev/null; exit 143' TERM INT
  # Only this container runs PostgreSQL on this volume, and it has just started: a lock file
  # left by a killed server is stale (its PID may even be this shell's, PID 1).
  if [ -f "$PGDATA/postmaster.pid" ]; then
    log "removing the stale postmaster.pid of a server that did not shut down cleanly"
    rm -f "$PGDATA/postmaster.pid"
  fi
  write_pgpass
  rm -f "$RUN_DIR/cloning"
  if [ "$POD_NAME" = "$(current_leader)" ]; then
    run_primary
  else
    run_standby
  fi
}

main "$@"
