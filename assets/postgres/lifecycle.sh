#!/usr/bin/env bash
# Probes and preStop hook of the `postgres` container.
#   lifecycle.sh ready  -> the server accepts connections (readiness)
#   lifecycle.sh live   -> the server or the clone in progress is alive (startup and liveness)
#   lifecycle.sh stop   -> fast shutdown (preStop): clients are disconnected instead of waited for
set -uo pipefail
RUN_DIR=${RUN_DIR:-/var/run/postgresql}
PGPORT=${PGPORT:-5432}

case "${1:-}" in
  ready)
    [ -f "$RUN_DIR/cloning" ] && exit 1
    exec pg_isready -q -h "$RUN_DIR" -p "$PGPORT" -U postgres -d postgres
    ;;
  live)
    # The agent found this standby's slot invalidated while it was running: restart to re-clone.
    [ -f "$RUN_DIR/reclone-needed" ] && exit 1
    [ -f "$RUN_DIR/cloning" ] && exit 0
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
