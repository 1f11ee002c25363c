import { Setting, WalSettings } from './settings';
import { RUN_DIR, TLS_DIR } from '../backends/statefulset/pod';
import { Resources } from '../common';
import { TLS_KEYS } from '../private/certificates';
import { checkInteger, checkPostgresDuration, invalid, parsePostgresSize } from '../private/validation';

/** Settings the pods' scripts own: a parameters map may not change them. */
const RESERVED = new Set([
  'port', 'listen_addresses', 'unix_socket_directories', 'hba_file', 'ident_file', 'config_file',
  'data_directory', 'primary_conninfo', 'primary_slot_name', 'hot_standby', 'synchronous_standby_names',
  'restore_command', 'recovery_target_timeline', 'documentdb.localhost_connection_string', 'cron.host',
  // The StatefulSet backend's hash of the restart-only settings (its agents roll restarts by it).
  'ferretdb.restart_settings',
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

/** PostgreSQL's port on every server and Service, of both backends. */
export const POSTGRES_PORT = 5432;

/** uid/gid of the postgres user in the official postgres (and postgres-documentdb) images. */
export const POSTGRES_UID = 999;

export const DEFAULT_POSTGRES_RESOURCES: Resources = { cpuRequest: '250m', memoryRequest: '512Mi', memoryLimit: '1Gi' };

/** The pinned PostgreSQL image with the DocumentDB extension FerretDB v2 needs (both backends). */
export const DEFAULT_POSTGRES_IMAGE = 'ghcr.io/ferretdb/postgres-documentdb:17-0.107.0-ferretdb-2.7.0';

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
