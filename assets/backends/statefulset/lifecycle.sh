#!/usr/bin/env bash
# Probes and preStop hook of the `postgres` container.
#   lifecycle.sh ready  -> readiness: a primary while it is writable and still the leader; a standby
#                          not named leader while it streams and has replayed WAL to within
#                          MAX_REPLICATION_LAG_BYTES of the primary's last reported position
#   lifecycle.sh live   -> the server, or postgres.sh preparing the data directory (clone, rewind,
#                          promotion), is alive (startup and liveness)
#   lifecycle.sh stop   -> fast shutdown (preStop): clients are disconnected instead of waited for
set -uo pipefail
RUN_DIR=${RUN_DIR:-/var/run/postgresql}
PGPORT=${PGPORT:-5432}

case "${1:-}" in
  ready)
    # Preparing the data directory (its servers then listen on the socket only): never an endpoint.
    [ -f "$RUN_DIR/preparing" ] && exit 1
    role=$(psql -X -A -t -q -h "$RUN_DIR" -p "$PGPORT" -U postgres -d postgres -v max_lag="${MAX_REPLICATION_LAG_BYTES:-67108864}" <<'SQL'
SELECT CASE
  WHEN NOT pg_is_in_recovery() THEN 'primary'
  WHEN (SELECT status = 'streaming'
          AND coalesce(pg_wal_lsn_diff(latest_end_lsn, pg_last_wal_replay_lsn()), 0) <= :max_lag
        FROM pg_stat_wal_receiver) THEN 'standby'
  ELSE 'behind' END;
SQL
) || exit 1
    leader=$(tr -d '[:space:]' < "${CONFIG_DIR:-/etc/ferretdb-postgres}/leader")
    case "$role" in
      # A primary that is no longer the leader is fencing itself: never an endpoint.
      primary) [ "$leader" = "${POD_NAME:?}" ] ;;
      # A standby named leader is about to promote: the read-write Service must not send
      # clients to it while it is still read-only.
      standby) [ "$leader" != "${POD_NAME:?}" ] ;;
      *) exit 1 ;;
    esac
    ;;
  live)
    # The agent found this standby's slot invalidated while it was running: restart to re-clone.
    [ -f "$RUN_DIR/reclone-needed" ] && exit 1
    [ -f "$RUN_DIR/preparing" ] && exit 0
    pg_isready -q -h "$RUN_DIR" -p "$PGPORT" -U postgres -d postgres
    # 0: accepting, 1: rejecting (starting up, recovering): both alive. 2/3: no response.
    [ $? -le 1 ]
    ;;
  stop)
    pg_ctl -D "${PGDATA:?}" -m fast -w -t "${STOP_TIMEOUT:-50}" stop || true
    ;;
  *)
    echo "usage: $0 ready|live|stop" >&2
    exit 2
    ;;
esac
