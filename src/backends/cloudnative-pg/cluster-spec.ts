// Pure renderers of the CloudNativePG objects (no constructs here): the Cluster spec, its
// settings, pg_hba rules and bootstrap SQL.
import { DataDurability } from './options';
import { DEFAULT_STORAGE_SIZE, Resources, Scheduling, StorageSettings } from '../../common';
import {
  ClusterSpec, ClusterSpecPostgresqlSynchronousDataDurability, ClusterSpecPostgresqlSynchronousMethod,
  ClusterSpecPrimaryUpdateMethod, ClusterSpecPrimaryUpdateStrategy,
  ClusterSpecResourcesLimits, ClusterSpecResourcesRequests, ClusterSpecManagedRoles, ClusterSpecManagedRolesEnsure,
  ClusterSpecProbesReadinessMaximumLag, ClusterSpecProbesReadinessType,
} from '../../imports/cnpg-cluster-postgresql.cnpg.io';
import {
  buildSettings, checkSettings, DEFAULT_POSTGRES_RESOURCES, DOCUMENTDB_IMAGE_SETTINGS, DOCUMENTDB_PRELOAD, POSTGRES_UID,
} from '../../postgres/config';
import { ReplicationMode } from '../../postgres/replication-mode';
import { WalSettings } from '../../postgres/settings';
import { renderResources } from '../../private/pod-spec';
import { invalid } from '../../private/validation';

/** Name of the Barman Cloud plugin (CNPG-I). */
export const BARMAN_CLOUD_PLUGIN = 'barman-cloud.cloudnative-pg.io';
/** Label CloudNativePG puts on every pod of a cluster (instances and its Jobs). */
export const CNPG_CLUSTER_LABEL = 'cnpg.io/cluster';
/** Label CloudNativePG puts on instance pods (value "instance"). */
export const CNPG_POD_ROLE_LABEL = 'cnpg.io/podRole';
/** Label of a Secret CloudNativePG re-reads as soon as it changes (value "true"). */
export const CNPG_RELOAD_LABEL = 'cnpg.io/reload';
/** Ports of every CloudNativePG instance: PostgreSQL, the instance manager's status, the exporter. */
export const CNPG_PORTS = { postgresql: 5432, status: 8000, metrics: 9187 };

/**
 * The `documentdb.*` and `cron.*` settings FerretDB's image writes at first start
 * (FerretDB/documentdb `packaging/10-preload.sh`) that its DocumentDB (0.107) knows, the same as
 * the StatefulSet backend's; CloudNativePG skips the image's entry point, so the Cluster sets them.
 */
export const DOCUMENTDB_SETTINGS: { [name: string]: string } = {
  'cron.database_name': 'postgres',
  ...Object.fromEntries(DOCUMENTDB_IMAGE_SETTINGS),
};

/**
 * Settings CloudNativePG owns (its `FixedConfigurationParameters`, 1.30.0) or that have a typed
 * prop here: the parameters map may not set them.
 */
const CNPG_OWNED = new Set([
  'allow_system_table_mods', 'archive_mode', 'bonjour', 'bonjour_name', 'cluster_name', 'config_file', 'data_directory',
  'data_sync_retry', 'event_source', 'external_pid_file', 'hba_file', 'hot_standby', 'ident_file', 'jit_provider',
  'listen_addresses', 'logging_collector', 'port', 'primary_conninfo', 'primary_slot_name', 'recovery_target',
  'recovery_target_action', 'recovery_target_inclusive', 'recovery_target_lsn', 'recovery_target_name',
  'recovery_target_time', 'recovery_target_timeline', 'recovery_target_xid', 'restore_command', 'shared_preload_libraries',
  'temp_tablespaces', 'unix_socket_directories', 'unix_socket_group', 'unix_socket_permissions', 'archive_cleanup_command',
  'archive_command', 'log_destination', 'log_directory', 'log_file_mode', 'log_filename', 'log_rotation_age',
  'log_rotation_size', 'log_truncate_on_rotation', 'promote_trigger_file', 'recovery_end_command',
  'recovery_min_apply_delay', 'restart_after_crash', 'ssl', 'ssl_ca_file', 'ssl_cert_file', 'ssl_crl_file',
  'ssl_dh_params_file', 'ssl_ecdh_curve', 'ssl_key_file', 'ssl_passphrase_command',
  'ssl_passphrase_command_supports_reload', 'ssl_prefer_server_ciphers', 'stats_temp_directory',
  'synchronous_standby_names', 'synchronized_standby_slots', 'syslog_facility', 'syslog_ident',
  'syslog_sequence_numbers', 'syslog_split_messages',
]);

/** pg_failover_slots' settings: CloudNativePG writes them (replicationSlots.highAvailability). */
const CNPG_OWNED_PREFIX = 'pg_failover_slots.';

/** Validates WAL settings and parameters for a CloudNativePG cluster; throws an error naming prop and value. */
export function checkCnpgSettings(wal: WalSettings, parameters: { [name: string]: string }, volumeBytes: number): void {
  for (const [name, value] of Object.entries(parameters ?? {})) {
    if (CNPG_OWNED.has(name.toLowerCase()) || name.toLowerCase().startsWith(CNPG_OWNED_PREFIX)) {
      throw invalid(`parameters[${JSON.stringify(name)}]`, value, `no value: CloudNativePG manages ${name}`);
    }
    if (DOCUMENTDB_SETTINGS[name] !== undefined) {
      throw invalid(`parameters[${JSON.stringify(name)}]`, value, `no value: FerretDB needs ${name} = ${DOCUMENTDB_SETTINGS[name]}`);
    }
  }
  checkSettings(wal, parameters, volumeBytes);
}

/**
 * postgresql.conf parameters of the Cluster (`spec.postgresql.parameters`): DocumentDB's
 * settings, `max_connections` (sized for the FerretDB pools, as with StatefulSets), the WAL
 * bounds the StatefulSet backend uses (`max_slot_wal_keep_size` a quarter of the volume unless
 * set), then the user's parameters. Timeouts, `max_wal_senders` and `max_replication_slots` keep
 * CloudNativePG's defaults unless set under `wal`.
 */
export function cnpgParameters(
  wal: WalSettings, parameters: { [name: string]: string }, volumeBytes: number, maxConnections: number,
): { [name: string]: string } {
  const settings = new Map(buildSettings({ wal, parameters: {}, volumeBytes, members: [], synchronousStandbyNames: '', maxConnections })
    .map((s) => [s.name, s.value] as const));
  const out: { [name: string]: string } = { ...DOCUMENTDB_SETTINGS };
  for (const name of ['max_connections', 'wal_keep_size', 'max_slot_wal_keep_size', 'hot_standby_feedback']) out[name] = settings.get(name)!;
  const explicit: [string, unknown][] = [
    ['max_wal_senders', wal.maxWalSenders], ['max_replication_slots', wal.maxReplicationSlots],
    ['wal_sender_timeout', wal.walSenderTimeout], ['wal_receiver_timeout', wal.walReceiverTimeout],
  ];
  for (const [name, value] of explicit) if (value !== undefined) out[name] = settings.get(name)!;
  for (const [name, value] of Object.entries(parameters ?? {}).sort(([a], [b]) => a.localeCompare(b))) out[name] = value;
  return out;
}

/**
 * pg_hba rules added to CloudNativePG's (`spec.postgresql.pg_hba`). CloudNativePG renders, in
 * order: `local all all peer map=local` (the socket: only the operator's own users), cert rules
 * for `streaming_replica`, these rules, then `host all all all scram-sha-256`.
 *
 * DocumentDB opens its own libpq connection to localhost as the calling role (every MongoDB
 * find), and pg_cron connects to localhost for every job: neither has a password, so the final
 * scram rule would refuse them ("no password supplied"). A `local` rule cannot help: the socket's
 * peer rule comes first and maps only the operator's users. So: trust on the loopback addresses,
 * for the `postgres` database only (where FerretDB's data and the cron jobs live). Only processes
 * inside an instance pod reach its loopback interface (PostgreSQL, the instance manager and, with
 * backups, the Barman Cloud sidecar, all of which can already read the data directory).
 *
 * Every other network connection must use TLS (`hostnossl ... reject`); it then falls through to
 * CloudNativePG's scram-sha-256 rule.
 */
export function cnpgPgHba(): string[] {
  return [
    'host postgres all 127.0.0.1/32 trust',
    'host postgres all ::1/128 trust',
    'hostnossl all all all reject',
  ];
}

/**
 * DocumentDB's schemas. Once the extension is loaded, any SQL with an operator or a function call
 * (even `SELECT pg_is_in_recovery()`) needs USAGE on them; usage only: no table, no function.
 * (The StatefulSet backend grants the same to its replication role in setup.sql.)
 */
export const DOCUMENTDB_SCHEMAS = ['documentdb_core', 'documentdb_api_internal', 'documentdb_api_catalog', 'documentdb_api'];

/**
 * SQL CloudNativePG runs once, as the superuser in the `postgres` database, when it creates the
 * cluster (`bootstrap.initdb.postInitSQL`), after it created FerretDB's role (the initdb owner):
 * the DocumentDB extension, the role's attributes, and the grants DocumentDB's user management
 * needs WITH ADMIN OPTION (MongoDB createUser runs `GRANT <role> TO <new user>` as FerretDB's
 * role; from PostgreSQL 16 on CREATEROLE alone no longer allows it). Once the extension is
 * loaded, every role that runs SQL needs USAGE on DocumentDB's schemas: CloudNativePG's
 * `streaming_replica` (pg_rewind of a former primary; created here if the operator has not yet)
 * and its metrics exporter (a member of `pg_monitor`).
 */
export function cnpgPostInitSql(ferretdbUser: string): string[] {
  const role = ferretdbUser;
  return [
    'CREATE EXTENSION IF NOT EXISTS documentdb CASCADE',
    `ALTER ROLE ${role} WITH LOGIN INHERIT CREATEROLE NOSUPERUSER NOCREATEDB NOREPLICATION NOBYPASSRLS`,
    ...DOCUMENTDB_ROLES.map((r) => `GRANT ${r} TO ${role} WITH ADMIN OPTION`),
    'DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = \'streaming_replica\') '
      + 'THEN CREATE ROLE streaming_replica LOGIN REPLICATION; END IF; END$$',
    `GRANT USAGE ON SCHEMA ${DOCUMENTDB_SCHEMAS.join(', ')} TO streaming_replica`,
    `GRANT USAGE ON SCHEMA ${DOCUMENTDB_SCHEMAS.join(', ')} TO pg_monitor`,
  ];
}

/** Roles FerretDB's role is a member of (with ADMIN OPTION, see cnpgPostInitSql). */
export const DOCUMENTDB_ROLES = ['documentdb_admin_role', 'documentdb_readonly_role', 'pg_read_all_data'];

/**
 * FerretDB's role, declared (`spec.managed.roles`): the operator keeps its attributes,
 * memberships and password (from the basic-auth Secret) as written here. The memberships must
 * list every role cnpgPostInitSql grants, or the operator would revoke them.
 */
export function cnpgManagedRole(ferretdbUser: string, secretName: string): ClusterSpecManagedRoles {
  return {
    name: ferretdbUser,
    ensure: ClusterSpecManagedRolesEnsure.PRESENT,
    login: true,
    inherit: true,
    createrole: true,
    superuser: false,
    createdb: false,
    replication: false,
    bypassrls: false,
    inRoles: DOCUMENTDB_ROLES,
    passwordSecret: { name: secretName },
    comment: 'FerretDB (cdk8s-ferretdb)',
  };
}

export interface CnpgClusterSpecInput {
  readonly name: string;
  readonly instances: number;
  readonly image: string;
  /** Size of the volume holding pg_wal (the WAL bounds follow it). */
  readonly walVolumeBytes: number;
  readonly storage: StorageSettings;
  readonly walStorage?: StorageSettings;
  readonly resources?: Resources;
  readonly scheduling?: Scheduling;
  readonly replicationMode: ReplicationMode;
  /** What a synchronous quorum does with fewer healthy standbys (unused when asynchronous). */
  readonly dataDurability: DataDurability;
  readonly wal: WalSettings;
  readonly parameters: { [name: string]: string };
  /** `max_connections`, already checked against what the clients need. */
  readonly maxConnections: number;
  /** A standby is Ready (behind the `-ro` Service) only while it streams within this many bytes. */
  readonly maxReplicationLagBytes: number;
  readonly ferretdbUser: string;
  /** The basic-auth Secret of FerretDB's role. */
  readonly secretName: string;
  readonly failoverDelaySeconds: number;
  readonly switchoverDelaySeconds: number;
  readonly stopDelaySeconds: number;
  readonly smartShutdownTimeoutSeconds: number;
  /** The ObjectStore WAL and backups go to. */
  readonly backupObjectStore?: string;
  /** Bootstrap from another cluster's backups. */
  readonly restore?: { readonly objectStore: string; readonly sourceClusterName: string; readonly targetTime?: string };
}

/** The name of the external cluster a restore reads from. */
export const RESTORE_SOURCE = 'origin';

/** The `spec` of a CloudNativePG Cluster for FerretDB. */
export function cnpgClusterSpec(i: CnpgClusterSpecInput): ClusterSpec {
  const resources = renderResources(i.resources, DEFAULT_POSTGRES_RESOURCES);
  const quantities = <T>(map: { [key: string]: { value: string | number } } | undefined, from: (v: string) => T) =>
    Object.fromEntries(Object.entries(map ?? {}).map(([k, q]) => [k, from(String(q.value))]));
  const quorum = i.replicationMode.synchronousStandbys;
  const scheduling = i.scheduling ?? {};
  // initdb creates `database` owned by `owner` (without them, an `app` role, database and Secret).
  // FerretDB, DocumentDB and pg_cron use `postgres`, which initdb made already and which FerretDB's
  // role must not own; so this database, named after the role, stays empty.
  const owner = { database: i.ferretdbUser, owner: i.ferretdbUser, secret: { name: i.secretName } };
  return {
    instances: i.instances,
    imageName: i.image,
    postgresUid: POSTGRES_UID,
    postgresGid: POSTGRES_UID,
    enableSuperuserAccess: false,
    primaryUpdateStrategy: ClusterSpecPrimaryUpdateStrategy.UNSUPERVISED,
    primaryUpdateMethod: ClusterSpecPrimaryUpdateMethod.SWITCHOVER,
    failoverDelay: i.failoverDelaySeconds,
    switchoverDelay: i.switchoverDelaySeconds,
    stopDelay: i.stopDelaySeconds,
    smartShutdownTimeout: i.smartShutdownTimeoutSeconds,
    postgresql: {
      sharedPreloadLibraries: DOCUMENTDB_PRELOAD,
      parameters: cnpgParameters(i.wal, i.parameters, i.walVolumeBytes, i.maxConnections),
      pgHba: cnpgPgHba(),
      // failoverQuorum: a standby is promoted only when the quorum the primary last published
      // proves it holds every acknowledged commit (otherwise the operator waits).
      synchronous: quorum > 0
        ? {
          method: ClusterSpecPostgresqlSynchronousMethod.ANY,
          number: quorum,
          dataDurability: i.dataDurability === DataDurability.PREFERRED
            ? ClusterSpecPostgresqlSynchronousDataDurability.PREFERRED
            : ClusterSpecPostgresqlSynchronousDataDurability.REQUIRED,
          failoverQuorum: true,
        }
        : undefined,
    },
    replicationSlots: { highAvailability: { enabled: true } },
    // The instance manager's `streaming` readiness check: a standby is Ready only while its WAL
    // receiver is connected and its replay is within maximumLag bytes of the WAL it has received
    // and reported to the primary (the primary is always Ready). Failover ignores readiness.
    probes: {
      readiness: {
        type: ClusterSpecProbesReadinessType.STREAMING,
        maximumLag: ClusterSpecProbesReadinessMaximumLag.fromNumber(i.maxReplicationLagBytes),
      },
    },
    bootstrap: i.restore
      ? {
        recovery: {
          source: RESTORE_SOURCE,
          ...owner,
          recoveryTarget: i.restore.targetTime ? { targetTime: i.restore.targetTime } : undefined,
        },
      }
      : { initdb: { ...owner, postInitSql: cnpgPostInitSql(i.ferretdbUser) } },
    externalClusters: i.restore
      ? [{
        name: RESTORE_SOURCE,
        plugin: {
          name: BARMAN_CLOUD_PLUGIN,
          parameters: { barmanObjectName: i.restore.objectStore, serverName: i.restore.sourceClusterName },
        },
      }]
      : undefined,
    plugins: i.backupObjectStore
      ? [{ name: BARMAN_CLOUD_PLUGIN, isWalArchiver: true, parameters: { barmanObjectName: i.backupObjectStore } }]
      : undefined,
    managed: { roles: [cnpgManagedRole(i.ferretdbUser, i.secretName)] },
    storage: { size: i.storage.size ?? DEFAULT_STORAGE_SIZE, storageClass: i.storage.storageClassName },
    walStorage: i.walStorage && { size: i.walStorage.size ?? DEFAULT_STORAGE_SIZE, storageClass: i.walStorage.storageClassName },
    resources: {
      requests: quantities(resources.requests as any, (v) => ClusterSpecResourcesRequests.fromString(v)),
      limits: quantities(resources.limits as any, (v) => ClusterSpecResourcesLimits.fromString(v)),
    },
    affinity: {
      // One instance per node when possible (preferred, so a small cluster still schedules).
      enablePodAntiAffinity: true,
      topologyKey: 'kubernetes.io/hostname',
      podAntiAffinityType: 'preferred',
      nodeSelector: scheduling.nodeSelector,
      tolerations: scheduling.tolerations as any,
      nodeAffinity: scheduling.affinity?.nodeAffinity as any,
      additionalPodAffinity: scheduling.affinity?.podAffinity as any,
      additionalPodAntiAffinity: scheduling.affinity?.podAntiAffinity as any,
    },
    // ... and over zones.
    topologySpreadConstraints: [{
      maxSkew: 1,
      topologyKey: 'topology.kubernetes.io/zone',
      whenUnsatisfiable: 'ScheduleAnyway',
      labelSelector: { matchLabels: { [CNPG_CLUSTER_LABEL]: i.name, [CNPG_POD_ROLE_LABEL]: 'instance' } },
    }],
  };
}
