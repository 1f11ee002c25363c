#!/usr/bin/env bash
# Entry point of the `postgres` container of every PostgreSQL pod, primary and replicas alike.
#
# The pod named in the ConfigMap key `leader` runs as primary; every other pod runs as a hot
# standby that streams from the read-write Service through its own physical replication slot.
#   primary, no data      -> initdb, once in the cluster's life (bootstrap pod only)
#   primary, standby data -> promote it, once it holds the cluster's Lease and no other member
#                            takes writes, is shutting down, is ahead or cannot be asked
#   primary, primary data -> start it once it holds the Lease and no member takes writes or is
#                            on a later timeline
#   standby, no data      -> pg_basebackup through the pod's slot
#   standby, former primary data -> pg_rewind against the new primary, then follow it
#   standby, data on an older timeline than the primary's -> pg_rewind (a no-op unless the data
#                            is past the switch point), then follow it
#   standby, primary cannot be asked its timeline -> read-only without streaming until it answers
#   standby, unfinished rewind -> re-clone (never a second pg_rewind over half-rewound data)
#   standby, slot lost    -> the WAL it needs is gone: re-clone automatically
# The server runs as this shell's child: when the leader key moves away from a running primary,
# or its last renewal of the cluster's Lease is older than LEASE_RENEW_DEADLINE (fencing.sh: a
# primary cut off from the API server), it stops the server at once (fencing) and starts over;
# when the key moves to a running standby, that standby streams on until its WAL receiver ends by
# itself (the former primary has sent everything up to its shutdown checkpoint), then starts over
# as primary (promotion) once it holds the Lease, unless another member blocks it. No primary
# starts without the Lease. When the agent requests a restart (restart-only settings changed, and
# it is this server's turn), it stops the server and starts over.
set -Eeuo pipefail
# shellcheck source=lib.sh
. "${CONFIG_DIR:-/etc/ferretdb-postgres}/lib.sh"
# shellcheck source=datadir.sh
. "$CONFIG_DIR/datadir.sh"
# shellcheck source=fencing.sh
. "$CONFIG_DIR/fencing.sh"

SERVER_PID=

# Runs the server and watches the leader key until the server exits or this pod's role changes.
supervise() {
  local role=$1 leader status=0
  shift
  [ "$role" = primary ] && mark_primary
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
    if [ "$role" = primary ] && ! lease_held; then
      log "FENCING: the cluster's Lease was last renewed $(lease_age_ms) ms ago (bound: ${LEASE_RENEW_DEADLINE:-10} s; see the 'lease' container's log); stopping this primary now (fast shutdown: sessions are disconnected and new ones refused), then waiting for the Lease again"
      stop_server
      exec bash "$0"
    fi
    [ "$role" = primary ] && mark_primary
    if [ "$role" = standby ] && [ "$leader" = "$POD_NAME" ] && handover_ready; then
      log "the leader key now names this pod, its WAL receiver has ended and no other member blocks a promotion: stopping the standby to promote it"
      stop_server
      exec bash "$0"
    fi
    if [ -f "$RESTART_REQUEST" ]; then
      log "restarting the server for settings that take effect only after a restart ($(cat "$RESTART_REQUEST")): its turn in the roll, as the agent found"
      rm -f "$RESTART_REQUEST"
      stop_server
      exec bash "$0"
    fi
    sleep "${LEADER_POLL_SECONDS:-1}" &
    wait $! || true
  done
  wait "$SERVER_PID" || status=$?
  SERVER_PID=
  unmark_primary
  die "the server exited (status $status)"
}

# A standby named leader keeps streaming until the WAL receiver that streamed when it was named
# has ended by itself: the former primary's walsenders end only once they have sent everything
# up to its shutdown checkpoint. It then promotes once it holds the Lease, unless another member
# blocks it (datadir.sh).
handover_ready() {
  local ours blockers
  if ! lease_held; then
    handover_log "the leader key now names this pod; not promoting before this pod holds the cluster's Lease (released by the former primary once it stopped, or not renewed for ${LEASE_DURATION:-15}s)"
    return 1
  fi
  if ! receiver_ended; then
    handover_log "the leader key now names this pod; streaming on until this standby's WAL receiver ends by itself (the former primary has then sent everything up to its shutdown checkpoint)"
    return 1
  fi
  ours=$(local_position) || return 1
  # shellcheck disable=SC2086
  blockers=$(promotion_blockers $ours)
  [ -z "$blockers" ] && return 0
  handover_log "the leader key now names this pod; not promoting yet: $blockers"
  return 1
}

# The pid of the WAL receiver streaming when the leader key came to name this pod ("none"), and
# whether it has stopped streaming since (once it has, it stays ended for this run).
HANDOVER_RECEIVER=
HANDOVER_RECEIVER_ENDED=
receiver_ended() {
  local now
  [ -n "$HANDOVER_RECEIVER_ENDED" ] && return 0
  now=$(local_sql -c "SELECT pid FROM pg_stat_wal_receiver WHERE status = 'streaming'") || return 1
  HANDOVER_RECEIVER=${HANDOVER_RECEIVER:-${now:-none}}
  [ "${now:-none}" = "$HANDOVER_RECEIVER" ] && [ "$now" != "" ] && return 1
  HANDOVER_RECEIVER_ENDED=1
}

HANDOVER_LOGGED=
handover_log() {
  [ "$1" = "$HANDOVER_LOGGED" ] && return 0
  log "$1"
  HANDOVER_LOGGED=$1
}

stop_server() {
  kill -INT "$SERVER_PID" 2>/dev/null || true
  # A primary's shutdown (its walsenders still sending WAL) keeps the Lease until it has stopped.
  while kill -0 "$SERVER_PID" 2>/dev/null; do
    [ -f "$PRIMARY_MARK" ] && mark_primary
    sleep 0.2
  done
  wait "$SERVER_PID" || true
  SERVER_PID=
  unmark_primary
}

run_primary() {
  # A re-clone request is a standby's: on a pod named primary it would fail liveness forever.
  rm -f "$RUN_DIR/reclone-needed"
  [ -f "$REWIND_MARKER" ] \
    && die "a pg_rewind of $PGDATA did not finish: its data mixes two servers' files and cannot run as primary. Designate another pod (README: promotion runbook)"
  if ! has_data; then
    [ "$POD_NAME" = "${BOOTSTRAP_POD:-}" ] \
      || die "$POD_NAME is the designated primary but its data directory is empty; refusing to initialise an empty database in an existing cluster. Designate a pod that has data (README: promotion runbook)"
  fi
  # No primary starts without the Lease: a former primary cut off from the API server, or one
  # named again while the other side still serves, never runs writable beside another.
  wait_for_lease || exec bash "$0"
  if ! has_data; then
    init_primary
  elif is_standby_data; then
    promote_local_standby
  else
    wait_until_startable
  fi
  require_recorded_system
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

run_standby() {
  local slot status
  local -a minimums
  slot=$(slot_name "$POD_NAME")
  if has_data && is_standby_data && [ ! -f "$REWIND_MARKER" ]; then
    hold_until_primary_answers
  fi
  require_same_system
  if ! has_data; then
    clone_from_primary "$slot"
  elif [ -f "$REWIND_MARKER" ]; then
    log "a pg_rewind of this data directory did not finish: re-cloning it instead of rewinding it again"
    clone_from_primary "$slot"
  elif ! is_standby_data; then
    rejoin_as_standby
  elif behind_primary_timeline; then
    rejoin_as_standby "this standby's data is on an older timeline than the primary's and may be past the primary's switch point"
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

# Standby data streams only once this pod knows which database and timeline the primary behind
# the read-write Service runs: on a newer timeline it may have forked off before this data's end,
# and streaming would then fail forever ("forked off ... before current recovery point") instead
# of rewinding first. Until the primary answers IDENTIFY_SYSTEM, the data runs read-only without
# streaming (members, and the promotion runbook, can still ask its WAL position; the pod is not
# Ready); a leader key naming this pod ends the wait (it then starts over to promote).
# Whether the primary behind the read-write Service answers IDENTIFY_SYSTEM; when it does not,
# IDENTITY_ERROR says why, on one line (a wrong password, no endpoint, a timeout).
IDENTITY_ERROR=
ask_primary_identity() {
  local out
  if out=$(psql -X -A -t -q -d "$(leader_conninfo) replication=true" -c IDENTIFY_SYSTEM 2>&1) && [ -n "$out" ]; then
    IDENTITY_ERROR=
    return 0
  fi
  IDENTITY_ERROR=$(printf '%s' "${out:-no answer}" | tr -s '\n\t' '  ')
  return 1
}

hold_until_primary_answers() {
  local i=0 last
  local -a minimums
  ask_primary_identity && return 0
  mapfile -t minimums < <(standby_minimums)
  log "the primary behind $PRIMARY_HOST cannot be asked for its system identifier and timeline ($IDENTITY_ERROR): running this standby read-only without streaming until it answers"
  last=$IDENTITY_ERROR
  postgres -D "$PGDATA" -c "config_file=$CONF" -c primary_conninfo= "${minimums[@]}" &
  SERVER_PID=$!
  until ask_primary_identity; do
    if [ "$(current_leader)" = "$POD_NAME" ]; then
      log "the leader key now names this pod: stopping the read-only standby to promote it"
      stop_server
      exec bash "$0"
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || die "the read-only standby server exited while waiting for the primary behind $PRIMARY_HOST"
    i=$(( i + 1 ))
    if [ "$IDENTITY_ERROR" != "$last" ]; then
      log "the primary behind $PRIMARY_HOST still cannot be asked: $IDENTITY_ERROR"
      last=$IDENTITY_ERROR
    elif [ $(( i % 60 )) = 0 ]; then
      log "still waiting for the primary behind $PRIMARY_HOST to answer IDENTIFY_SYSTEM ($IDENTITY_ERROR)"
    fi
    sleep 1 &
    wait $! || true
  done
  log "the primary behind $PRIMARY_HOST answers: stopping the read-only standby to check its timeline and stream from it"
  stop_server
}

# The state sidecar (primary StatefulSet only) read the identifier the cluster recorded in the
# API: data of another database never runs as this cluster's primary.
require_recorded_system() {
  local state ours
  state=$(cat "$STATE_DIR/cluster-state" 2>/dev/null || true)
  case "$state" in initialized\ *) ;; *) return 0 ;; esac
  ours=$(local_system_identifier)
  [ "${state#initialized }" = "$ours" ] \
    || die "this data directory holds system identifier $ours, but the cluster recorded ${state#initialized } in its state ConfigMap: another database. Refusing to run it as primary; the data is kept as it is"
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
  # Stops the server, then the clone or rewind under way (and waits for them: nothing of theirs
  # outlives this shell).
  trap 'log "terminated"; [ -n "$SERVER_PID" ] && kill -INT "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID"; kill $(jobs -p) 2>/dev/null; wait; unmark_primary; exit 143' TERM INT
  # No server of this container runs yet (a former one's mark would hold the Lease).
  unmark_primary
  # A start reads the current settings anyway: a restart request of a former run is spent.
  rm -f "$RESTART_REQUEST"
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
