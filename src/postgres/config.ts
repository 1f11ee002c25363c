import { createHash } from 'crypto';
import { Setting, WalSettings } from './settings';
import { TLS_KEYS } from './tls';
import { RUN_DIR, TLS_DIR } from '../backends/statefulset/pod';
import { checkInteger, checkPostgresDuration, invalid, parsePostgresSize } from '../private/validation';

/** Settings the pods' scripts own: a parameters map may not change them. */
const RESERVED = new Set([
  'port', 'listen_addresses', 'unix_socket_directories', 'hba_file', 'ident_file', 'config_file',
  'data_directory', 'primary_conninfo', 'primary_slot_name', 'hot_standby', 'synchronous_standby_names',
  'restore_command', 'recovery_target_timeline', 'documentdb.localhost_connection_string', 'cron.host',
  // The tls prop owns these.
  'ssl', 'ssl_cert_file', 'ssl_key_file', 'ssl_ca_file',
]);

/** Settings with a typed, validated prop: the parameters map may not bypass its checks. */
const TYPED: { [name: string]: string } = {
  wal_keep_size: 'wal.walKeepSize',
  max_slot_wal_keep_size: 'wal.maxSlotWalKeepSize',
  max_wal_senders: 'wal.maxWalSenders',
  max_connections: 'maxConnections',
  max_replication_slots: 'wal.maxReplicationSlots',
  hot_standby_feedback: 'wal.hotStandbyFeedback',
  wal_sender_timeout: 'wal.walSenderTimeout',
  wal_receiver_timeout: 'wal.walReceiverTimeout',
};

/** The libraries FerretDB's DocumentDB extension needs preloaded on every server. */
export const DOCUMENTDB_PRELOAD = ['pg_cron', 'pg_documentdb_core', 'pg_documentdb'];

/**
 * Every `documentdb.*` setting FerretDB's postgres-documentdb image writes on first init (its
 * 10-preload.sh) that DocumentDB 0.107 knows. (Later images also set
 * enableSortbyIdPushDownToPrimaryKey, which 0.107 rejects as an unknown parameter; set it with
 * `parameters` together with such an image.)
 */
export const DOCUMENTDB_IMAGE_SETTINGS: ReadonlyArray<readonly [string, string]> = [
  ['documentdb.enableLetAndCollationForQueryMatch', 'true'],
  ['documentdb.enableNowSystemVariable', 'true'],
  ['documentdb.enableSchemaValidation', 'true'],
  ['documentdb.enableBypassDocumentValidation', 'true'],
  ['documentdb.enableUserCrud', 'true'],
  ['documentdb.maxUserLimit', '100'],
];

const PARAMETER_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;

export interface SettingsInput {
  readonly wal: WalSettings;
  readonly parameters: { [name: string]: string };
  /** Bytes of the smallest PostgreSQL volume. */
  readonly volumeBytes: number;
  /** Every PostgreSQL pod's name (its application_name). */
  readonly members: string[];
  readonly synchronousStandbyNames: string;
  /** `max_connections`, already checked against what the clients need. */
  readonly maxConnections: number;
  /** Serve TLS with the certificate mounted at TLS_DIR. */
  readonly tls?: boolean;
}

/**
 * Validates the user's WAL settings and parameters against the volume size; throws an error
 * that names the prop and the value.
 */
export function checkSettings(wal: WalSettings, parameters: { [name: string]: string }, volumeBytes: number): void {
  for (const [prop, value] of [['wal.walKeepSize', wal.walKeepSize], ['wal.maxSlotWalKeepSize', wal.maxSlotWalKeepSize]] as const) {
    if (value === undefined) continue;
    if (parsePostgresSize(prop, value) >= volumeBytes) {
      throw invalid(prop, value,
        `a size smaller than the PostgreSQL volume (${Math.floor(volumeBytes / 2 ** 20)}MB), so retained WAL cannot fill the disk`);
    }
  }
  if (wal.maxWalSenders !== undefined) checkInteger('wal.maxWalSenders', wal.maxWalSenders, 1, 10000);
  if (wal.maxReplicationSlots !== undefined) checkInteger('wal.maxReplicationSlots', wal.maxReplicationSlots, 1, 10000);
  if (wal.walSenderTimeout !== undefined) checkPostgresDuration('wal.walSenderTimeout', wal.walSenderTimeout);
  if (wal.walReceiverTimeout !== undefined) checkPostgresDuration('wal.walReceiverTimeout', wal.walReceiverTimeout);
  if (wal.hotStandbyFeedback !== undefined && typeof wal.hotStandbyFeedback !== 'boolean') {
    throw invalid('wal.hotStandbyFeedback', wal.hotStandbyFeedback, 'true or false');
  }
  for (const [name, value] of Object.entries(parameters ?? {})) {
    if (!PARAMETER_NAME.test(name)) {
      throw invalid(`parameters[${JSON.stringify(name)}]`, name,
        'a PostgreSQL parameter name (letters, digits and "_", optionally "prefix.name")');
    }
    if (TYPED[name.toLowerCase()]) {
      throw invalid(`parameters[${JSON.stringify(name)}]`, value, `no value: set ${TYPED[name.toLowerCase()]} instead (it is validated)`);
    }
    if (RESERVED.has(name.toLowerCase())) {
      throw invalid(`parameters[${JSON.stringify(name)}]`, value,
        `no value: ${name} is managed by cdk8s-ferretdb (see the README's defaults table)`);
    }
    if (typeof value !== 'string' || /[\n\r\0]/.test(value)) {
      throw invalid(`parameters[${JSON.stringify(name)}]`, value, 'a string on one line');
    }
    if (name.toLowerCase() === 'wal_level' && !['replica', 'logical'].includes(value)) {
      throw invalid('parameters["wal_level"]', value, '"replica" or "logical" (streaming replicas need at least replica)');
    }
    if (name.toLowerCase() === 'shared_preload_libraries') {
      const libraries = value.split(',').map((l) => l.trim());
      const missing = DOCUMENTDB_PRELOAD.filter((l) => !libraries.includes(l));
      if (missing.length > 0) {
        throw invalid('parameters["shared_preload_libraries"]', value, `a list that keeps ${DOCUMENTDB_PRELOAD.join(', ')} (FerretDB needs them)`);
      }
    }
  }
}

/** Every setting of postgresql.conf, in order, with the reason for each default. */
export function buildSettings(input: SettingsInput): Setting[] {
  const { wal, members } = input;
  const pods = members.length;
  const slotKeepMB = wal.maxSlotWalKeepSize !== undefined
    ? undefined
    : Math.max(64, Math.floor(input.volumeBytes / 4 / 2 ** 20));
  const settings: Setting[] = [
    { name: 'listen_addresses', value: '*', reason: 'reached through the Services' },
    { name: 'port', value: '5432', reason: 'the Services and probes use it' },
    { name: 'unix_socket_directories', value: RUN_DIR, reason: 'an emptyDir shared with the agent sidecar (peer auth)' },
    { name: 'hba_file', value: '/etc/ferretdb-postgres/pg_hba.conf', reason: 'from the ConfigMap' },
    { name: 'password_encryption', value: 'scram-sha-256', reason: 'no md5 hashes' },
    ...input.tls ? tlsSettings() : [],
    { name: 'shared_preload_libraries', value: DOCUMENTDB_PRELOAD.join(','), reason: 'DocumentDB (FerretDB v2) and pg_cron, on every server' },
    { name: 'cron.database_name', value: 'postgres', reason: 'DocumentDB schedules its jobs there (they run on the primary only)' },
    { name: 'cron.host', value: RUN_DIR, reason: 'pg_cron runs its jobs over the pod-local socket (pg_hba: local trust for the postgres database only)' },
    { name: 'documentdb.localhost_connection_string', value: `host=${RUN_DIR}`, reason: 'DocumentDB\'s own connections back to the server (finds, index builds) use the pod-local socket' },
    ...DOCUMENTDB_IMAGE_SETTINGS.map(([name, value]) => ({ name, value, reason: 'as FerretDB\'s postgres-documentdb image' })),
    { name: 'max_connections', value: String(input.maxConnections), reason: 'the FerretDB pools of both sides (each side\'s pods plus one rolling-update surge pod, times pool_max_conns: a promoted replica serves both) plus headroom for DocumentDB, pg_cron, the agent and administrators' },
    { name: 'wal_level', value: 'replica', reason: 'enough for physical streaming replication' },
    { name: 'max_wal_senders', value: String(wal.maxWalSenders ?? Math.max(16, 2 * pods + 4)), reason: 'every standby plus concurrent pg_basebackups (two each), with headroom; equal on all servers as hot standby requires' },
    { name: 'max_replication_slots', value: String(wal.maxReplicationSlots ?? Math.max(16, pods + 8)), reason: 'one slot per PostgreSQL pod, with headroom' },
    { name: 'wal_keep_size', value: wal.walKeepSize ?? '512MB', reason: 'recent WAL for standbys without a slot and for pg_rewind' },
    { name: 'max_slot_wal_keep_size', value: wal.maxSlotWalKeepSize ?? `${slotKeepMB}MB`, reason: 'a dead standby\'s slot may hold back at most this much WAL (default: a quarter of the volume), then it is invalidated and the standby re-clones' },
    { name: 'hot_standby', value: 'on', reason: 'replicas serve reads' },
    { name: 'hot_standby_feedback', value: (wal.hotStandbyFeedback ?? true) ? 'on' : 'off', reason: 'reads on replicas are not cancelled by vacuum on the primary' },
    { name: 'wal_log_hints', value: 'on', reason: 'a former primary can pg_rewind and rejoin as a standby' },
    { name: 'wal_sender_timeout', value: wal.walSenderTimeout ?? '10s', reason: 'drop dead standby connections quickly' },
    { name: 'wal_receiver_timeout', value: wal.walReceiverTimeout ?? '10s', reason: 'standbys notice a dead primary connection quickly and reconnect through the Service' },
    { name: 'synchronous_standby_names', value: input.synchronousStandbyNames, reason: 'the replication mode (empty: asynchronous)' },
    { name: 'logging_collector', value: 'off', reason: 'logs go to the container\'s stderr' },
    { name: 'log_line_prefix', value: '%m [%p] %q%u@%d ', reason: 'timestamps and users in the container log' },
    { name: 'log_replication_commands', value: 'on', reason: 'replication connections and slot use appear in the log' },
  ];
  const byName = new Map(settings.map((s) => [s.name.toLowerCase(), s] as const));
  for (const [name, value] of Object.entries(input.parameters ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    byName.set(name.toLowerCase(), { name, value, reason: 'set by the parameters prop' });
  }
  return [...byName.values()];
}

/** TLS from the mounted Secret; PostgreSQL re-reads these files on reload (the agent's, on rotation). */
function tlsSettings(): Setting[] {
  return [
    { name: 'ssl', value: 'on', reason: 'the tls prop: every network connection is encrypted (pg_hba: hostssl only)' },
    { name: 'ssl_cert_file', value: `${TLS_DIR}/${TLS_KEYS.cert}`, reason: 'from the TLS Secret; re-read on reload' },
    { name: 'ssl_key_file', value: `${TLS_DIR}/${TLS_KEYS.key}`, reason: 'from the TLS Secret (root-owned, group-readable: PostgreSQL accepts it); re-read on reload' },
    { name: 'ssl_ca_file', value: `${TLS_DIR}/${TLS_KEYS.ca}`, reason: 'the CA of the TLS Secret' },
    { name: 'ssl_min_protocol_version', value: 'TLSv1.2', reason: 'no TLS 1.0 or 1.1' },
  ];
}

function quote(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, '\'\'')}'`;
}

export function renderPostgresqlConf(settings: Setting[]): string {
  const lines = [
    '# postgresql.conf of every PostgreSQL pod (primary and standbys), rendered by cdk8s-ferretdb.',
    '# Standby-only settings (primary_conninfo, primary_slot_name) are passed by postgres.sh.',
  ];
  for (const s of settings) {
    lines.push(`# ${s.reason}`, `${s.name} = ${quote(s.value)}`);
  }
  return lines.join('\n') + '\n';
}

/**
 * pg_hba.conf: local socket by peer for the postgres superuser (probes, agent, setup), and
 * trusted for DocumentDB's and pg_cron's own connections to the postgres database (the socket is
 * pod-local); every network connection by scram-sha-256; the replication role may open replication
 * connections and (for pg_rewind and slot checks) connect to the postgres database; no trust.
 * With `tls`, a network connection without TLS is rejected first and every rule is `hostssl`.
 */
export function renderPgHba(replicationUser: string, ferretdbUser: string, tls = false): string {
  const host = tls ? 'hostssl' : 'host   ';
  return [
    '# TYPE  DATABASE     USER                 ADDRESS   METHOD',
    'local   all          postgres                       peer',
    // DocumentDB (finds, index builds) and pg_cron connect back to the server as the calling
    // role; they use the pod-local socket, which only this pod's own containers mount. Only the
    // postgres database, never the network.
    'local   postgres     all                            trust',
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
 * PostgreSQL 15 to 17, and those of pg_cron and DocumentDB). A change to any of them changes the
 * pod templates (a hash annotation), so the StatefulSets roll; every other setting reaches running
 * servers through a reload by the agent.
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

/** A short hash of the settings that need a restart: the pod templates carry it. */
export function restartSettingsHash(settings: Setting[]): string {
  const lines = settings.filter((s) => RESTART_SETTINGS.has(s.name.toLowerCase()))
    .map((s) => `${s.name.toLowerCase()}=${s.value}`).sort();
  return createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 16);
}

/** Connections kept free beyond the FerretDB pools: DocumentDB's and pg_cron's own, the agent, administrators. */
export const CONNECTION_HEADROOM = 30;

/**
 * `max_connections` for FerretDB pools of `poolSize` connections: any server may serve both
 * sides at once (a promoted replica is the primary and still behind the read-only Service), and
 * each side's pods plus one rolling-update surge pod may all reach one server.
 */
export function neededConnections(poolSize: number, ferretdbPodsPerSide: number[]): number {
  return ferretdbPodsPerSide.reduce((sum, pods) => sum + (pods + 1) * poolSize, 0) + CONNECTION_HEADROOM;
}
