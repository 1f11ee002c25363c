#!/usr/bin/env bash
# The `agent` sidecar of every PostgreSQL pod. Every AGENT_INTERVAL seconds:
#   on the primary: applies roles/passwords/extension when they change, and keeps exactly one
#     physical slot per cluster member (creates missing ones; drops inactive slots of pods that
#     are no longer members, so a scaled-down replica cannot retain WAL);
#   on a standby: when it is not streaming and its slot on the primary has been invalidated,
#     marks the pod for a re-clone (the liveness probe then restarts the postgres container).
set -uo pipefail
LOG_TAG=agent.sh
# shellcheck source=lib.sh
. "${CONFIG_DIR:-/etc/ferretdb-postgres}/lib.sh"

INTERVAL=${AGENT_INTERVAL:-10}
APPLIED="$RUN_DIR/.setup-applied"

reconcile_setup() {
  local fingerprint
  fingerprint=$(setup_fingerprint) || return 1
  [ -f "$APPLIED" ] && [ "$(cat "$APPLIED")" = "$fingerprint" ] && return 0
  if apply_setup; then
    printf '%s' "$fingerprint" > "$APPLIED"
    log "roles, passwords and extension applied"
  else
    log "WARNING: applying setup.sql failed; retrying"
  fi
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

watch_standby() {
  local streaming status
  streaming=$(local_sql -c "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'" 2>/dev/null || echo 0)
  [ "$streaming" = "0" ] || return 0
  status=$(leader_sql -v slot="$(slot_name "$POD_NAME")" 2>/dev/null <<'SQL' || true
SELECT coalesce((SELECT wal_status FROM pg_replication_slots WHERE slot_name = :'slot'), 'missing');
SQL
)
  if [ "$status" = "lost" ] && [ ! -f "$RUN_DIR/reclone-needed" ]; then
    log "this standby's slot was invalidated and it is not streaming: requesting a restart to re-clone"
    touch "$RUN_DIR/reclone-needed"
  fi
}

# PID 1 of its container: without a handler SIGTERM would be ignored until the grace period ends.
trap 'exit 0' TERM INT

while true; do
  if pg_isready -q -h "$RUN_DIR" -p "$PGPORT" -U postgres -d postgres; then
    case "$(local_sql -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" in
      f)
        write_pgpass
        reconcile_setup
        reconcile_slots
        ;;
      t)
        write_pgpass
        watch_standby
        ;;
    esac
  fi
  sleep "$INTERVAL" &
  wait $!
done
