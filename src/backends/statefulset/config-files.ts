import { createHash } from 'crypto';
import { Setting } from '../../postgres/settings';

/*
 * The files the StatefulSet pods read from the cluster's ConfigMap: postgresql.conf (with the
 * hash of the settings that need a restart) and pg_hba.conf.
 */

/**
 * The custom setting that carries the hash of the restart-only settings in postgresql.conf: each
 * pod's agent compares it with the other members' to roll restarts through the servers in order.
 */
export const RESTART_SETTINGS_GUC = 'ferretdb.restart_settings';

function quote(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, '\'\'')}'`;
}

export function renderPostgresqlConf(settings: Setting[], restartHash: string): string {
  const lines = [
    '# postgresql.conf of every PostgreSQL pod (primary and standbys), rendered by cdk8s-ferretdb.',
    '# Standby-only settings (primary_conninfo, primary_slot_name) are passed by postgres.sh.',
  ];
  for (const s of settings) {
    lines.push(`# ${s.reason}`, `${s.name} = ${quote(s.value)}`);
  }
  lines.push(
    '# The hash of the settings above that take effect only after a restart: each pod\'s agent restarts',
    '# its server once per value, the standbys one at a time, the primary last (agent.sh).',
    `${RESTART_SETTINGS_GUC} = ${quote(restartHash)}`,
  );
  return lines.join('\n') + '\n';
}

/**
 * pg_hba.conf: local socket by peer for the postgres superuser (probes, agent, setup), and
 * trusted for DocumentDB's and pg_cron's own connections to the postgres database; with a metrics
 * exporter, its role trusted from the pod's loopback for the postgres database; every other network
 * connection by scram-sha-256; the replication role may open replication connections and (for
 * pg_rewind and slot checks) connect to the postgres database. With `tls`, a network connection
 * without TLS is rejected (the exporter's loopback line comes first) and every rule is `hostssl`.
 */
export function renderPgHba(replicationUser: string, ferretdbUser: string, exporterRole: string | undefined, tls = false): string {
  const host = tls ? 'hostssl' : 'host   ';
  return [
    '# TYPE  DATABASE     USER                 ADDRESS   METHOD',
    'local   all          postgres                       peer',
    // DocumentDB (finds, index builds) and pg_cron connect back to the server as the calling
    // role, any role, from the server's own uid: peer cannot map one OS user to every role on
    // PostgreSQL 15. Only the postgres database. The socket is in the run directory, which only
    // the containers of the PostgreSQL image mount (postgres and agent); never the network.
    'local   postgres     all                            trust',
    // postgres_exporter (the `metrics` sidecar, another image, without the run directory): its
    // pg_monitor role only, the postgres database only, only from 127.0.0.1, which only the
    // containers of this pod share (their network namespace).
    ...exporterRole !== undefined ? [`host    postgres     ${exporterRole.padEnd(20)} 127.0.0.1/32 trust`] : [],
    // `all` does not match replication connections: both are named.
    ...tls ? ['hostnossl replication all              all       reject', 'hostnossl all        all                  all       reject'] : [],
    `${host} replication  ${replicationUser.padEnd(20)} all       scram-sha-256`,
    `${host} postgres     ${replicationUser.padEnd(20)} all       scram-sha-256`,
    `${host} all          ${ferretdbUser.padEnd(20)} all       scram-sha-256`,
    // MongoDB users created through FerretDB are PostgreSQL roles too.
    `${host} postgres     all                  all       scram-sha-256`,
    `${host} all          all                  all       reject`,
    '',
  ].join('\n');
}

/**
 * Settings PostgreSQL reads only at server start (`pg_settings.context = 'postmaster'` in
 * PostgreSQL 15 to 17, and those of pg_cron and DocumentDB). A change to any of them changes
 * their hash in postgresql.conf, and the pods' agents restart the servers in order; every other
 * setting reaches running servers through a reload by the agent.
 */
export const RESTART_SETTINGS = new Set([
  'archive_mode', 'autovacuum_freeze_max_age', 'autovacuum_max_workers', 'autovacuum_multixact_freeze_max_age',
  'bonjour', 'bonjour_name', 'cluster_name', 'commit_timestamp_buffers', 'config_file', 'data_directory',
  'data_sync_retry', 'debug_io_direct', 'dynamic_shared_memory_type', 'event_source', 'external_pid_file',
  'hba_file', 'hot_standby', 'huge_page_size', 'huge_pages', 'ident_file', 'ignore_invalid_pages', 'jit_provider',
  'listen_addresses', 'logging_collector', 'max_connections', 'max_files_per_process', 'max_locks_per_transaction',
  'max_logical_replication_workers', 'max_notify_queue_pages', 'max_pred_locks_per_transaction',
  'max_prepared_transactions', 'max_replication_slots', 'max_wal_senders', 'max_worker_processes',
  'min_dynamic_shared_memory', 'multixact_member_buffers', 'multixact_offset_buffers', 'notify_buffers',
  'old_snapshot_threshold', 'port', 'recovery_target', 'recovery_target_action', 'recovery_target_inclusive',
  'recovery_target_lsn', 'recovery_target_name', 'recovery_target_time', 'recovery_target_timeline',
  'recovery_target_xid', 'reserved_connections', 'serializable_buffers', 'shared_buffers', 'shared_memory_type',
  'shared_preload_libraries', 'subtransaction_buffers', 'superuser_reserved_connections', 'track_activity_query_size',
  'track_commit_timestamp', 'transaction_buffers', 'unix_socket_directories', 'unix_socket_group',
  'unix_socket_permissions', 'wal_buffers', 'wal_decode_buffer_size', 'wal_level', 'wal_log_hints',
  'cron.database_name', 'cron.enable_superuser_jobs', 'cron.host', 'cron.log_run', 'cron.log_statement',
  'cron.max_running_jobs', 'cron.timezone', 'cron.use_background_workers',
  'documentdb.bg_worker_database_name', 'documentdb.bg_worker_latch_timeout', 'documentdb.rum_library_load_option',
]);

/** A short hash of the settings that need a restart: postgresql.conf carries it (RESTART_SETTINGS_GUC). */
export function restartSettingsHash(settings: Setting[]): string {
  const lines = settings.filter((s) => RESTART_SETTINGS.has(s.name.toLowerCase()))
    .map((s) => `${s.name.toLowerCase()}=${s.value}`).sort();
  return createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 16);
}
