#!/usr/bin/env bash
# The `agent` sidecar of every PostgreSQL pod. Every AGENT_INTERVAL seconds:
#   on every server: reloads the configuration when postgresql.conf or pg_hba.conf changed (a
#     ConfigMap update) or, with TLS, when the mounted certificate changed (a renewal); when
#     settings wait for a restart, restarts the server in its turn: standbys one at a time, the
#     primary last (reconcile_restart);
#   on the primary: applies roles/passwords/extension when they change, and keeps exactly one
#     physical slot per cluster member (creates missing ones; drops inactive slots of pods that
#     are no longer members, so a scaled-down replica cannot retain WAL);
#   on a standby: drops the slots a former primary kept (a standby serves none);
#   on a standby that is not streaming: when its slot on the primary has been invalidated, or the
#     primary no longer has the WAL it needs next, marks the pod for a re-clone (the liveness
#     probe then restarts the postgres container, and postgres.sh clones it again); never when
#     the primary is another database (a different system identifier): it says so instead.
set -uo pipefail
LOG_TAG=agent.sh
# shellcheck source=lib.sh
. "${CONFIG_DIR:-/etc/ferretdb-postgres}/lib.sh"

INTERVAL=${AGENT_INTERVAL:-10}
APPLIED="$RUN_DIR/.setup-applied"

reconcile_setup() {
  local fingerprint
  extension_update_allowed
  fingerprint=$(setup_fingerprint "$EXTENSION_UPDATE") || return 1
  [ -f "$APPLIED" ] && [ "$(cat "$APPLIED")" = "$fingerprint" ] && return 0
  if apply_setup "$EXTENSION_UPDATE"; then
    printf '%s' "$fingerprint" > "$APPLIED"
    log "roles, passwords and extension applied"
  else
    log "WARNING: applying setup.sql failed; retrying"
  fi
}

# ALTER EXTENSION documentdb UPDATE installs SQL that calls the new image's library: a standby
# still on an older image would replay it and fail on functions its library lacks, whereas a newer
# library runs the older SQL (DocumentDB gates its features on the installed version). So the
# update waits until every member's image ships the primary's version (EXTENSION_UPDATE=false
# meanwhile, saying so once per reason); the rest of setup.sql is applied all the same.
EXTENSION_UPDATE=true
EXTENSION_WAIT_LOGGED=
extension_update_allowed() {
  local ours installed member theirs why=
  EXTENSION_UPDATE=false
  ours=$(local_sql -c "SELECT default_version FROM pg_available_extensions WHERE name = 'documentdb'") || return 0
  installed=$(local_sql -c "SELECT extversion FROM pg_extension WHERE extname = 'documentdb'") || return 0
  if [ -n "$installed" ] && [ "$installed" != "$ours" ]; then
    while read -r member; do
      [ "$member" = "$POD_NAME" ] && continue
      theirs=$(PGOPTIONS=$SQL_TIMEOUTS psql -X -A -t -q -d "$(conninfo "$(member_host "$member")" 3)" \
        -c "SELECT default_version FROM pg_available_extensions WHERE name = 'documentdb'" 2>/dev/null) || theirs="cannot be asked"
      [ "$theirs" = "$ours" ] || why="$why $member ships ${theirs:-no documentdb};"
    done < <(members)
  fi
  if [ -n "$why" ]; then
    [ "$why" = "$EXTENSION_WAIT_LOGGED" ] \
      || log "not updating documentdb from $installed to $ours yet: every member's image must ship $ours first ($why roll the standbys to the new image)"
    EXTENSION_WAIT_LOGGED=$why
    return 0
  fi
  EXTENSION_UPDATE=true
}

CONFIG_LOADED=
TLS_LOADED=
PENDING_LOGGED=

reconcile_config() {
  local fingerprint tls pending
  fingerprint=$(config_fingerprint) || return 1
  tls=$(tls_fingerprint) || { log "WARNING: cannot read the TLS certificate files in $TLS_DIR; retrying"; return 1; }
  if [ "$fingerprint" != "$CONFIG_LOADED" ] || [ "$tls" != "$TLS_LOADED" ]; then
    local_sql -c 'SELECT pg_reload_conf()' >/dev/null || { log "WARNING: reloading the configuration failed; retrying"; return 1; }
    [ -n "$CONFIG_LOADED" ] && [ "$fingerprint" != "$CONFIG_LOADED" ] && log "configuration changed: reloaded"
    [ -n "$TLS_LOADED" ] && [ "$tls" != "$TLS_LOADED" ] && log "TLS certificate changed: reloaded (new connections use it)"
    CONFIG_LOADED=$fingerprint
    TLS_LOADED=$tls
    sleep 1
  fi
  pending=$(pending_restart_settings) || return 1
  if [ "$pending" != "$PENDING_LOGGED" ]; then
    [ -n "$pending" ] && log "settings that take effect only after a restart: $pending (the agents restart the servers for them, standbys first, the primary last)"
    PENDING_LOGGED=$pending
  fi
}

# Settings that take effect only after a restart roll through the servers, never all at once:
# the standbys one at a time (in the order of `members`), the primary last, once every standby runs
# the new settings with nothing pending. A value a server cannot start with (memory it cannot map,
# a library its image lacks) then stops one standby, never the primary: the roll waits there,
# saying why, until the value is fixed. Each server restarts once per restart-only configuration
# (ferretdb.restart_settings, their hash in postgresql.conf); postgres.sh does the restart.
RESTARTED_FOR="$RUN_DIR/.restarted-for"
ROLL_LOGGED=
reconcile_restart() {
  local role=$1 pending ours blockers
  pending=$(pending_restart_settings) || return 1
  [ -n "$pending" ] || return 0
  ours=$(local_sql -c "SELECT current_setting('ferretdb.restart_settings', true)") || return 1
  if [ -f "$RESTARTED_FOR" ] && [ "$(cat "$RESTARTED_FOR")" = "$ours" ]; then
    roll_log "WARNING: $pending still wait for a restart after this server restarted for them (configuration $ours): not restarting again"
    return 0
  fi
  blockers=$(roll_blockers "$role" "$ours")
  if [ -n "$blockers" ]; then
    roll_log "not restarting yet for $pending:$blockers"
    return 0
  fi
  printf '%s' "$ours" > "$RESTARTED_FOR"
  printf '%s' "$pending" > "$RESTART_REQUEST"
  roll_log "restarting this $role for $pending (configuration $ours): its turn in the roll"
}

# The settings of postgresql.conf this server runs with another value until it restarts. A value
# postgres.sh passed on the command line (a standby's minimums: the primary's recorded value,
# higher than the file's) counts only when the file now asks for more: a reload marks it
# pending_restart all the same, although a restart would keep the command line's value.
pending_restart_settings() {
  local_sql <<'SQL'
SELECT string_agg(s.name, ', ' ORDER BY s.name) FROM pg_settings s
WHERE s.pending_restart AND (s.source <> 'command line' OR (
  SELECT f.setting ~ '^[0-9]+$' AND f.setting::numeric > s.setting::numeric
  FROM pg_file_settings f WHERE f.name = s.name ORDER BY f.seqno DESC LIMIT 1));
SQL
}

roll_log() {
  [ "$1" = "$ROLL_LOGGED" ] || log "$1"
  ROLL_LOGGED=$1
}

# Why this server may not restart yet for configuration $2 (nothing when it may): as primary,
# every standby that has not restarted into it; as a standby, every standby before it in the order
# of `members` that has not.
roll_blockers() {
  local role=$1 ours=$2 leader member
  leader=$(current_leader)
  while read -r member; do
    [ "$member" = "$POD_NAME" ] && { [ "$role" = primary ] && continue; break; }
    [ "$member" = "$leader" ] && continue
    member_rolled "$member" "$ours" || printf ' %s' "$ROLLED_WHY"
  done < <(members)
}

# Whether a standby member runs configuration $2 with no setting waiting for a restart (values
# on its command line aside: its minimums, see pending_restart_settings); when it does not,
# ROLLED_WHY says why (it cannot be asked, it has not got the configuration yet, it has not
# restarted yet).
ROLLED_WHY=
member_rolled() {
  local answer
  answer=$(PGOPTIONS=$SQL_TIMEOUTS psql -X -A -t -q -d "$(conninfo "$(member_host "$1")" 3)" -c \
    "SELECT coalesce(current_setting('ferretdb.restart_settings', true), ''), EXISTS (SELECT 1 FROM pg_settings WHERE pending_restart AND source <> 'command line')" \
    2>/dev/null) || { ROLLED_WHY="$1 cannot be asked (down, or not started with the new settings);"; return 1; }
  case "$answer" in
    "$2|f") return 0 ;;
    "$2|t") ROLLED_WHY="$1 has not restarted for them yet;" ;;
    *) ROLLED_WHY="$1 has not got this configuration yet;" ;;
  esac
  return 1
}

reconcile_slots() {
  local member expected="" slot existing active
  while read -r member; do
    [ "$member" = "$POD_NAME" ] && continue
    slot=$(slot_name "$member")
    expected="$expected $slot "
    local_sql -v slot="$slot" <<'SQL' >/dev/null || log "WARNING: cannot create slot $slot"
SELECT pg_create_physical_replication_slot(:'slot', true)
WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = :'slot');
SQL
  done < <(members)
  while IFS='|' read -r existing active; do
    [ -n "$existing" ] || continue
    case "$expected" in *" $existing "*) continue ;; esac
    if [ "$active" = "t" ]; then
      continue
    fi
    if local_sql -v slot="$existing" >/dev/null <<'SQL'; then
SELECT pg_drop_replication_slot(:'slot');
SQL
      log "dropped slot $existing: its pod is no longer a member of the cluster"
    fi
  done < <(local_sql -v prefix="$SLOT_PREFIX" <<'SQL'
SELECT slot_name, active FROM pg_replication_slots
WHERE slot_type = 'physical' AND starts_with(slot_name::text, :'prefix');
SQL
)
}

# A former primary rejoins as a standby with the slots it served as primary (pg_rewind keeps
# them): nothing advances them there, they hold its WAL back until max_slot_wal_keep_size
# invalidates them, and a switch back to this pod would then re-clone every standby. A standby
# serves no slot (no cascading): it drops its inactive ones; the primary's agent creates them anew.
drop_standby_slots() {
  local slot
  while read -r slot; do
    [ -n "$slot" ] || continue
    if local_sql -v slot="$slot" >/dev/null <<'SQL'; then
SELECT pg_drop_replication_slot(:'slot');
SQL
      log "dropped slot $slot: this pod is a standby now (a primary's slot, kept by its rejoin)"
    fi
  done < <(local_sql -v prefix="$SLOT_PREFIX" <<'SQL'
SELECT slot_name FROM pg_replication_slots
WHERE slot_type = 'physical' AND NOT active AND starts_with(slot_name::text, :'prefix');
SQL
)
}

watch_standby() {
  local streaming status missing
  # Named primary, about to promote: not streaming is expected, and a re-clone would lose its data.
  [ "$(current_leader)" = "$POD_NAME" ] && return 0
  streaming=$(local_sql -c "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'" 2>/dev/null || echo 0)
  [ "$streaming" = "0" ] || return 0
  [ -f "$RUN_DIR/reclone-needed" ] && return 0
  different_system && return 0
  status=$(leader_sql -v slot="$(slot_name "$POD_NAME")" 2>/dev/null <<'SQL' || true
SELECT coalesce((SELECT wal_status FROM pg_replication_slots WHERE slot_name = :'slot'), 'missing');
SQL
)
  if [ "$status" = "lost" ]; then
    log "this standby's slot was invalidated and it is not streaming: requesting a restart to re-clone"
    touch "$RUN_DIR/reclone-needed"
    return 0
  fi
  [ -n "$status" ] || return 0
  # Away longer than the primary keeps WAL (its slot had been dropped): the segment it must
  # stream from next is gone. pg_ls_dir is granted to the replication role for pg_rewind.
  missing=$(leader_sql -v segment="$(needed_segment)" 2>/dev/null <<'SQL' || true
SELECT :'segment' <> '' AND NOT EXISTS (
  SELECT 1 FROM pg_ls_dir('pg_wal', false, false) f WHERE length(f) = 24 AND right(f, 16) = :'segment');
SQL
)
  if [ "$missing" = "t" ]; then
    log "the primary no longer has the WAL this standby needs next (segment $(needed_segment)): requesting a restart to re-clone"
    touch "$RUN_DIR/reclone-needed"
  fi
}

# Whether the primary is another database than this standby's (then it is never re-cloned from
# it: the data may be the last copy). Said once per identifier.
MISMATCH_LOGGED=
different_system() {
  local ours theirs
  theirs=$(primary_system_identifier)
  ours=$(local_sql -c 'SELECT system_identifier FROM pg_control_system()' 2>/dev/null) || return 1
  [ -n "$theirs" ] && [ "$theirs" != "$ours" ] || return 1
  [ "$MISMATCH_LOGGED" = "$theirs" ] || log "WARNING: $(different_system_message "$theirs" "$ours")"
  MISMATCH_LOGGED=$theirs
}

# The log and segment number (16 hex digits) of the WAL segment this standby streams from next.
needed_segment() {
  local_sql <<'SQL' 2>/dev/null || true
WITH s AS (SELECT setting::numeric AS size FROM pg_settings WHERE name = 'wal_segment_size'),
     n AS (SELECT floor(pg_wal_lsn_diff(coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), '0/0') / size) AS seg,
                  4294967296 / size AS per_log FROM s)
SELECT lpad(to_hex(floor(seg / per_log)::bigint), 8, '0') || lpad(to_hex((seg % per_log)::bigint), 8, '0') FROM n;
SQL
}

# PID 1 of its container: without a handler SIGTERM would be ignored until the grace period ends.
trap 'exit 0' TERM INT

while true; do
  # While postgres.sh prepares the data directory, the server on the socket is its own local one
  # (initdb and setup.sql, a promotion): reconciling it would race its setup.sql and spend the
  # first reload on a server about to stop.
  if [ ! -f "$RUN_DIR/preparing" ] && pg_isready -q -h "$RUN_DIR" -p "$PGPORT" -U postgres -d postgres; then
    case "$(local_sql -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" in
      f)
        write_pgpass
        reconcile_config
        reconcile_setup
        reconcile_slots
        reconcile_restart primary
        ;;
      t)
        write_pgpass
        reconcile_config
        drop_standby_slots
        watch_standby
        reconcile_restart standby
        ;;
    esac
  fi
  sleep "$INTERVAL" &
  wait $!
done
