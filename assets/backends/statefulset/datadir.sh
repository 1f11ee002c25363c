# shellcheck shell=bash
# How postgres.sh prepares the data directory for the role this pod is to run. Sourced after
# lib.sh, never executed:
#   init_primary            initdb, once in the cluster's life (guarded by the state sidecar)
#   promote_local_standby   promotion of this pod's standby data, once no other member accepts writes
#   clone_from_primary      pg_basebackup through the pod's slot
#   rejoin_as_standby       pg_rewind of a former primary's data against the new primary

CONF="$CONFIG_DIR/postgresql.conf"

# What the state sidecar last read from the Kubernetes API: "new", or "initialized <system
# identifier>" once this cluster has been initialised. Only a fresh answer counts.
cluster_state() {
  local file="$STATE_DIR/cluster-state" i
  for i in $(seq 1 "${STATE_WAIT_SECONDS:-300}"); do
    if [ -f "$file" ] && [ $(( $(date +%s) - $(stat -c %Y "$file") )) -le 30 ]; then
      cat "$file"
      return 0
    fi
    [ "$i" = 1 ] && log "waiting for the state sidecar to read the cluster's state from the Kubernetes API"
    sleep 1
  done
  return 1
}

# initdb happens once in a cluster's life: never over a cluster whose primary volume was lost.
init_primary() {
  local state
  state=$(cluster_state) \
    || die "no answer from the state sidecar (container 'state'): cannot tell whether this cluster existed before; refusing to run initdb"
  case "$state" in
    new) ;;
    initialized*)
      die "this cluster was initialised before (system identifier ${state#initialized }) but the data directory of $POD_NAME is empty: its volume was lost or replaced. Refusing to create an empty database in its place. Promote the most advanced replica instead (README: lost primary volume)"
      ;;
    *) die "unexpected cluster state '$state' from the state sidecar" ;;
  esac
  log "initialising a new cluster in $PGDATA"
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  initdb -D "$PGDATA" --username=postgres --encoding=UTF8 --locale=C.UTF-8 --data-checksums \
    --auth-local=peer --auth-host=scram-sha-256 >&2
  start_local_server
  apply_setup
  stop_local_server
  log "cluster initialised"
}

# Never two writable primaries: the former primary fences itself when it sees the leader key
# move; until it has, this pod waits.
wait_until_sole_primary() {
  local i others
  for i in $(seq 1 "${PROMOTE_WAIT_SECONDS:-600}"); do
    others=$(other_writable_members | tr '\n' ' ')
    [ -z "$others" ] && return 0
    if [ "$i" = 1 ] || [ $(( i % 30 )) = 0 ]; then
      log "not promoting yet: ${others}still accepts writes (a former primary stops by itself once it sees the leader key move)"
    fi
    sleep 1
  done
  die "another member still accepts writes after ${PROMOTE_WAIT_SECONDS:-600}s; not promoting (README: promotion runbook, step 1)"
}

promote_local_standby() {
  log "this pod is the designated primary and holds standby data: promoting it"
  wait_until_sole_primary
  start_local_server
  pg_ctl -D "$PGDATA" -w -t 3600 promote
  stop_local_server
  log "promoted; now on timeline $(pg_controldata "$PGDATA" | sed -n 's/^Latest checkpoint.s TimeLineID: *//p')"
}

# The pod's slot on the primary, created if missing (idempotent; RESERVE_WAL so WAL is kept from now on).
ensure_slot() {
  leader_sql -v slot="$1" <<'SQL'
SELECT pg_create_physical_replication_slot(:'slot', true)
WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = :'slot');
SQL
}

# Clone the primary into a sibling directory and move it into place only when complete,
# so an interrupted clone never leaves a half-written data directory behind.
clone_from_primary() {
  local slot=$1 tmp="$PGDATA.clone"
  rm -rf "$tmp"
  # Applied all at once, standbys start before the primary: wait for it rather than fail.
  wait_for_primary || die "no writable primary behind $PRIMARY_HOST to clone; data directory left as it was"
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
  log "clone complete"
}

wait_for_primary() {
  local i out
  for i in $(seq 1 "${PRIMARY_WAIT_SECONDS:-120}"); do
    out=$(leader_sql -c 'SELECT pg_is_in_recovery()' 2>&1) || true
    [ "$out" = "f" ] && return 0
    if [ "$i" = 1 ] || [ $(( i % 30 )) = 0 ]; then
      log "waiting for a writable primary behind $PRIMARY_HOST: ${out:-none answered}"
    fi
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
