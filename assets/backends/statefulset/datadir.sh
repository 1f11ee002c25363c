# shellcheck shell=bash
# How postgres.sh prepares the data directory for the role this pod is to run. Sourced after
# lib.sh, never executed:
#   init_primary            initdb, once in the cluster's life (guarded by the state sidecar)
#   promote_local_standby   promotion of this pod's standby data, once no other member blocks it
#   wait_until_startable    former primary data: no member writable or on a later timeline
#   clone_from_primary      pg_basebackup through the pod's slot
#   rejoin_as_standby       pg_rewind of a former primary's data, or of standby data on an older
#                           timeline than the primary's, against the new primary (a rewind that
#                           did not finish is marked: the next start re-clones)

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
  # Into a sibling directory, moved into place only once initialised and set up: an initdb or a
  # setup that did not finish (killed, failed) never leaves data that a later start would take
  # for this cluster's database (and run without its roles); the next start begins again.
  local tmp="$PGDATA.init"
  log "initialising a new cluster in $PGDATA (in $tmp until it is complete)"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  chmod 0700 "$tmp"
  initdb -D "$tmp" --username=postgres --encoding=UTF8 --locale=C.UTF-8 --data-checksums \
    --auth-local=peer --auth-host=scram-sha-256 >&2
  PGDATA=$tmp start_local_server
  PGDATA=$tmp apply_setup
  PGDATA=$tmp stop_local_server
  rm -rf "$PGDATA"
  mv "$tmp" "$PGDATA"
  log "cluster initialised"
}

# What another member answers right now:
#   writable <TLI>       it takes writes, on timeline TLI
#   shutting-down        a shutdown is under way (57P03): its walsenders may still be sending WAL
#   standby <LSN> <TLI>  in recovery, having received (or replayed) WAL up to LSN on timeline TLI
#   stopped              connection refused: no server listens there
#   unknown <why>        any other error (timeout, too many clients, TLS, DNS, authentication):
#                        it may take writes or hold more WAL
member_state() {
  local out
  if out=$(psql -X -A -t -q -F ' ' -d "$(conninfo "$(member_host "$1")" 3)" -c "$POSITION_SQL" 2>&1); then
    case "$out" in
      f*) printf 'writable %s\n' "${out##* }" ;;
      t*) out=${out#t}; printf 'standby %s\n' "${out# }" ;;
      *) printf 'unknown unexpected answer: %s\n' "$out" ;;
    esac
  elif [[ $out == *"the database system is shutting down"* ]]; then
    echo shutting-down
  elif [[ $out == *"Connection refused"* || $out == *"connection refused"* ]]; then
    echo stopped
  else
    printf 'unknown %s\n' "$(printf '%s' "$out" | tr '\n' ' ')"
  fi
}

# In recovery?, WAL received or replayed (or written, on a primary), and the timeline of that
# position. A standby's last checkpoint (restartpoint) may be minutes older than a timeline switch
# it has replayed, and its WAL receiver's timeline is gone while no primary answers: the timeline
# is also read from the newest history file in pg_wal, as the timeline whose switch point lies
# past the position (or that newest one). The replication role may list and read pg_wal (setup.sql).
POSITION_SQL="WITH p AS (
  SELECT pg_is_in_recovery() AS r,
    CASE WHEN pg_is_in_recovery() THEN greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) ELSE pg_current_wal_lsn() END AS lsn
), h AS (
  SELECT max(('x' || substr(f, 1, 8))::bit(32)::int) AS tli FROM pg_ls_dir('pg_wal', false, false) f WHERE f ~ '^[0-9A-F]{8}[.]history\$'
), s AS (
  SELECT min(m[1]::int) AS tli FROM h, p,
    regexp_matches(convert_from(pg_read_binary_file('pg_wal/' || lpad(upper(to_hex(h.tli)), 8, '0') || '.history'), 'UTF8'),
      '^[[:space:]]*([0-9]+)[[:space:]]+([0-9A-Fa-f]+/[0-9A-Fa-f]+)', 'gn') m
  WHERE p.lsn < m[2]::pg_lsn
)
SELECT p.r, p.lsn, greatest((SELECT timeline_id FROM pg_control_checkpoint()), (SELECT max(received_tli) FROM pg_stat_wal_receiver),
  CASE WHEN p.lsn IS NOT NULL THEN coalesce(s.tli, h.tli) END)
FROM p, h, s"

# This pod's own WAL position and timeline ("LSN TLI") from its running server.
local_position() {
  local out
  out=$(local_sql -F ' ' -c "$POSITION_SQL") || return 1
  printf '%s\n' "${out#* }"
}

# Whether WAL location $1 is past $2 (both "X/Y" as PostgreSQL prints them; empty: unknown, never past).
lsn_ahead() {
  [ -n "$1" ] && [ -n "$2" ] || return 1
  (( (16#${1%/*} << 32 | 16#${1#*/}) > (16#${2%/*} << 32 | 16#${2#*/}) ))
}

# Whether a member at WAL $1 on timeline $2 is ahead of this pod at WAL $3 on timeline $4: on a
# later timeline (it was promoted past this data), or else with more WAL (a timeline or WAL
# position not known: never ahead by it).
member_ahead() {
  if [[ $2 =~ ^[0-9]+$ && $4 =~ ^[0-9]+$ ]] && [ "$2" -ne "$4" ]; then
    [ "$2" -gt "$4" ]
    return
  fi
  lsn_ahead "$1" "$3"
}

# "<LSN>[ on timeline <TLI>]" (or "timeline <TLI>") for the messages.
position() {
  if [ -z "$1" ]; then
    printf 'timeline %s' "${2:-unknown}"
    return
  fi
  printf '%s' "$1"
  [ -z "$2" ] || printf ' on timeline %s' "$2"
}

# Why this pod must not start as primary yet, with its WAL up to $1 on timeline $2 (nothing
# printed: it may). Never two writable primaries, and nothing a member received is lost: another
# member takes writes, is shutting down (its last WAL may still be on its way), is ahead
# (timeline, then WAL), or cannot be asked (unknown), unless it is the former holder of the
# Lease this pod took after it went unrenewed: that one fenced itself (fencing.sh).
promotion_blockers() {
  local ours=${1:-} tli=${2:-} member state expired
  expired=$(expired_holder)
  while read -r member; do
    [ "$member" = "$POD_NAME" ] && continue
    state=$(member_state "$member")
    case "$state" in
      writable*) printf '%s still accepts writes; ' "$member" ;;
      shutting-down) printf '%s is shutting down; ' "$member" ;;
      standby\ *)
        # shellcheck disable=SC2086
        set -- ${state#standby }
        if member_ahead "${1:-}" "${2:-}" "$ours" "$tli"; then
          printf '%s has received WAL up to %s, this pod only up to %s; ' "$member" "$(position "${1:-}" "${2:-}")" "$(position "$ours" "$tli")"
        fi
        ;;
      unknown*)
        [ "$member" = "$expired" ] \
          || printf '%s cannot be asked (%s); ' "$member" "${state#unknown }"
        ;;
    esac
  done < <(members)
}

# A hot standby refuses to replay with lower values of these settings than its primary's, which
# pg_control records: start with the higher of the two (one "-c name=value" argument per line),
# so a change to them can roll over the pods in any order, and a promotion replays with them too.
standby_minimums() {
  local name key recorded configured control
  control=$(pg_controldata "$PGDATA")
  while read -r name key; do
    recorded=$(printf '%s\n' "$control" | sed -n "s/^$key setting: *//p")
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

# Whether the leader key still names this pod: a human may name another one while this pod
# waits to promote or to start as primary, and it then starts over as that one's standby.
still_named() {
  local leader
  leader=$(current_leader)
  [ "$leader" = "$POD_NAME" ] && return 0
  log "the leader key now names ${leader:-no pod}: not starting as primary; starting over"
  return 1
}

# The local server (started for the promotion) has replayed its WAL: wait until no member
# blocks the promotion (a former primary stops by itself once it sees the leader key move).
wait_until_promotable() {
  local i blockers
  for i in $(seq 1 "${PROMOTE_WAIT_SECONDS:-600}"); do
    still_named || { stop_local_server || true; exit 1; }
    # shellcheck disable=SC2046
    blockers=$(promotion_blockers $(local_position || echo '- -'))
    [ -z "$blockers" ] && return 0
    if [ "$i" = 1 ] || [ $(( i % 30 )) = 0 ]; then
      log "not promoting yet: $blockers"
    fi
    sleep 1
  done
  stop_local_server || true
  die "not promoting after ${PROMOTE_WAIT_SECONDS:-600}s: ${blockers}(README: promotion runbook, step 1)"
}

# Former primary data (not a standby's) starts writable only while no member takes writes or is
# ahead of it: switched back to after a failed rejoin, the other side may have been promoted past
# it. On its own timeline this data is where the WAL came from (and its checkpoint location is
# short of its end after a crash): a member is ahead of it only on a later timeline.
wait_until_startable() {
  local i blockers tli
  tli=$(pg_controldata "$PGDATA" | sed -n "s/^Latest checkpoint's TimeLineID: *//p")
  for i in $(seq 1 "${PROMOTE_WAIT_SECONDS:-600}"); do
    still_named || exit 1
    blockers=$(promotion_blockers "" "$tli")
    [ -z "$blockers" ] && return 0
    if [ "$i" = 1 ] || [ $(( i % 30 )) = 0 ]; then
      log "not starting as primary yet: $blockers"
    fi
    sleep 1
  done
  die "not starting as primary after ${PROMOTE_WAIT_SECONDS:-600}s: ${blockers}(README: promotion runbook)"
}

promote_local_standby() {
  local -a minimums
  log "this pod is the designated primary and holds standby data: promoting it"
  mapfile -t minimums < <(standby_minimums)
  start_local_server "${minimums[@]}"
  wait_until_promotable
  lease_held || { stop_local_server || true; die "lost the cluster's Lease before promoting; starting over"; }
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

# This data directory's system identifier.
local_system_identifier() {
  pg_controldata "$PGDATA" | sed -n 's/^Database system identifier: *//p'
}

# Never stream from, rewind against or re-clone from another database over this pod's data: a
# primary with another system identifier stops this pod (the data is kept). A primary that
# cannot be asked does not stop it (it streams once the primary is back, or asks again).
require_same_system() {
  local ours theirs
  has_data || return 0
  ours=$(local_system_identifier)
  theirs=$(primary_system_identifier)
  if [ -n "$theirs" ] && [ -n "$ours" ] && [ "$theirs" != "$ours" ]; then
    die "$(different_system_message "$theirs" "$ours")"
  fi
}

# Clone the primary into a sibling directory and move it into place only when complete,
# so an interrupted clone never leaves a half-written data directory behind.
clone_from_primary() {
  local slot=$1 tmp="$PGDATA.clone"
  rm -rf "$tmp"
  # Applied all at once, standbys start before the primary: wait for it rather than fail.
  wait_for_primary || die "no writable primary behind $PRIMARY_HOST to clone; data directory left as it was"
  require_same_system
  log "cloning $PRIMARY_HOST with pg_basebackup through slot $slot"
  ensure_slot "$slot" || die "cannot create or check slot $slot on $PRIMARY_HOST as $REPLICATION_USER (see the error above); data directory left as it was"
  # In the background so that SIGTERM (this shell is the container's PID 1) stops the clone.
  # Its own application_name: synchronous_standby_names lists pod names, and a clone must never
  # acknowledge a commit (its copy is deleted if the clone fails).
  pg_basebackup -D "$tmp" -d "$(conninfo "$PRIMARY_HOST" 5 "$POD_NAME-clone")" -X stream -S "$slot" -c fast --no-password -v >&2 &
  if ! wait $!; then
    rm -rf "$tmp"
    die "pg_basebackup from $PRIMARY_HOST failed (see the error above); data directory left as it was"
  fi
  touch "$tmp/standby.signal"
  rm -rf "$PGDATA"
  mv "$tmp" "$PGDATA"
  rm -f "$REWIND_MARKER"
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

# Marks a data directory while pg_rewind changes it: a rewind that did not finish (failed,
# killed, pod deleted) leaves a mix of two servers' files that must never be rewound again.
REWIND_MARKER="$PGDATA.rewinding"

# Standby data on an older timeline than the primary's may hold WAL past the point where the
# primary's timeline forked off (the promoted standby had received less than this one): streaming
# can never follow it ("forked off ... before current recovery point"). pg_rewind finds out: it
# rewinds such data, or says no rewind is required.
behind_primary_timeline() {
  local ours theirs
  theirs=$(primary_timeline)
  ours=$(pg_controldata "$PGDATA" | sed -n "s/^Latest checkpoint's TimeLineID: *//p")
  [[ $theirs =~ ^[0-9]+$ && $ours =~ ^[0-9]+$ ]] && [ "$theirs" -gt "$ours" ]
}

# $1: why (a former primary's data, or standby data behind the primary's timeline).
rejoin_as_standby() {
  log "${1:-the data directory belongs to a former primary}: rewinding it to follow $PRIMARY_HOST"
  wait_for_primary || die "no writable primary behind $PRIMARY_HOST; refusing to start a former primary (it could accept writes)"
  require_same_system
  touch "$REWIND_MARKER"
  # pg_rewind may first run crash recovery in single-user mode, which refuses standby mode.
  rm -f "$PGDATA/standby.signal"
  # --config-file: if the target needs crash recovery first, it runs with the real settings
  # (wal_log_hints among them), not the data directory's initdb defaults. In the background so
  # that SIGTERM (this shell is the container's PID 1) stops it.
  pg_rewind --target-pgdata="$PGDATA" --source-server="$(leader_conninfo)" --config-file="$CONF" >&2 &
  if ! wait $!; then
    die "pg_rewind failed (see the error above); $PGDATA is half-rewound and is never rewound again: the next start re-clones it from $PRIMARY_HOST"
  fi
  touch "$PGDATA/standby.signal"
  rm -f "$REWIND_MARKER"
  log "rewound; starting as standby"
}
