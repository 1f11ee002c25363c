import { Duration } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { ObjectStoreCredentials, ObjectStoreEncryption } from './object-store-credentials';
import { StorageSettings } from '../../common';
import { invalid } from '../../private/validation';

/**
 * Where the CloudNativePG operator runs: its pods may reach the instances (status port 8000
 * and 5432) through the NetworkPolicy.
 */
export interface CloudNativePGOperator {
  /**
   * The operator's namespace.
   *
   * @default "cnpg-system"
   */
  readonly namespace?: string;
  /**
   * Labels of the operator's pods.
   *
   * @default - { "app.kubernetes.io/name": "cloudnative-pg" } (the release manifest's)
   */
  readonly podLabels?: { [key: string]: string };
}

/**
 * A CA certificate in a Secret (for example an object store's private CA).
 */
export interface CaCertificateSecret {
  /** The Secret, in the cluster's namespace. */
  readonly secretName: string;
  /**
   * The key holding the PEM certificate(s).
   *
   * @default "ca.crt"
   */
  readonly key?: string;
}

/**
 * An object store for the Barman Cloud plugin (WAL archive and base backups): S3 or an
 * S3-compatible service, Azure Blob Storage or Google Cloud Storage.
 */
export interface ObjectStoreSettings {
  /**
   * Where: `s3://bucket/path` (S3), `gs://bucket/path` (Google Cloud Storage) or
   * `https://ACCOUNT.blob.core.windows.net/container/path` (Azure), matching `credentials`.
   */
  readonly destinationPath: string;
  /**
   * Endpoint of an S3-compatible service (MinIO, Ceph, ...).
   *
   * @default - AWS S3
   */
  readonly endpointUrl?: string;
  /**
   * The CA that signed the endpoint's certificate, when it is not one the plugin's image trusts
   * (an in-cluster MinIO or Ceph behind a private CA, for example). Without it, archiving to
   * such an endpoint fails, and WAL that is not archived is never removed from the primary's
   * volume.
   *
   * @default - the public CAs of the plugin's image
   */
  readonly endpointCA?: CaCertificateSecret;
  /**
   * The Secret with S3 access keys, in the cluster's namespace (the keys below). Give either
   * this or `credentials`.
   *
   * @default - none: `credentials` says how to authenticate
   */
  readonly credentialsSecret?: string;
  /**
   * How the plugin authenticates: S3 access keys or IAM role, Azure, Google Cloud Storage.
   * Instead of `credentialsSecret`.
   *
   * @default - S3 access keys from `credentialsSecret`
   */
  readonly credentials?: ObjectStoreCredentials;
  /**
   * Server-side encryption S3 applies to the WAL and base backups (S3 only).
   *
   * @default - the bucket's own setting
   */
  readonly encryption?: ObjectStoreEncryption;
  /**
   * With `credentialsSecret`.
   *
   * @default "ACCESS_KEY_ID"
   */
  readonly accessKeyIdKey?: string;
  /**
   * @default "ACCESS_SECRET_KEY"
   */
  readonly secretAccessKeyKey?: string;
  /**
   * Key of the region in `credentialsSecret`.
   *
   * @default - none (the endpoint's default region)
   */
  readonly regionKey?: string;
}

/**
 * When CloudNativePG takes a base backup (`ScheduledBackup`, six-field cron with seconds, UTC).
 */
export class BackupSchedule {
  /**
   * Every day at `hour`:00 UTC.
   *
   * @param hour 0 to 23
   */
  public static daily(hour: number = 0): BackupSchedule {
    if (typeof hour !== 'number' || !Number.isInteger(hour) || hour < 0 || hour > 23) {
      throw invalid('backup.schedule (BackupSchedule.daily hour)', hour, 'an integer from 0 to 23');
    }
    return new BackupSchedule(`0 0 ${hour} * * *`);
  }

  /**
   * A six-field cron expression: seconds, minutes, hours, day of month, month, day of week
   * (for example "0 30 2 * * 0": Sundays at 02:30:00).
   */
  public static cron(expression: string): BackupSchedule {
    const fields = typeof expression === 'string' ? expression.trim().split(/\s+/) : [];
    if (fields.length !== 6 || !fields.every((f) => /^[0-9*/,\-A-Za-z?]+$/.test(f))) {
      throw invalid('backup.schedule (BackupSchedule.cron)', expression,
        'a six-field cron expression with seconds first, such as "0 0 3 * * *"');
    }
    return new BackupSchedule(fields.join(' '));
  }

  /**
   * @internal
   */
  public static _check(prop: string, value: unknown): BackupSchedule {
    if (!(value instanceof BackupSchedule)) throw invalid(prop, value, 'BackupSchedule.daily() or BackupSchedule.cron(expression)');
    return value;
  }

  /** The cron expression. */
  public readonly expression: string;

  private constructor(expression: string) {
    this.expression = expression;
  }
}

/**
 * How long backups and WAL stay in the object store (a recovery window).
 */
export class RetentionPolicy {
  public static days(count: number): RetentionPolicy {
    return new RetentionPolicy(count, 'd', 'days');
  }

  public static weeks(count: number): RetentionPolicy {
    return new RetentionPolicy(count, 'w', 'weeks');
  }

  public static months(count: number): RetentionPolicy {
    return new RetentionPolicy(count, 'm', 'months');
  }

  /**
   * @internal
   */
  public static _check(prop: string, value: unknown): RetentionPolicy {
    if (!(value instanceof RetentionPolicy)) throw invalid(prop, value, 'RetentionPolicy.days(n), .weeks(n) or .months(n)');
    return value;
  }

  /** The Barman Cloud form, for example "30d". */
  public readonly value: string;

  private constructor(count: number, unit: string, what: string) {
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > 9999) {
      throw invalid(`backup.retention (RetentionPolicy.${what})`, count, 'an integer from 1 to 9999');
    }
    this.value = `${count}${unit}`;
  }
}

/**
 * WAL archiving, scheduled base backups and their retention, through the Barman Cloud plugin.
 */
export interface BackupSettings {
  /** Where backups and WAL go. */
  readonly objectStore: ObjectStoreSettings;
  /**
   * @default BackupSchedule.daily(0)
   */
  readonly schedule?: BackupSchedule;
  /**
   * @default RetentionPolicy.days(30)
   */
  readonly retention?: RetentionPolicy;
  /**
   * WAL files archived (and, in a restore, fetched) in parallel (`configuration.wal.maxParallel`
   * of the ObjectStore): raise it when writes outpace archiving one file at a time, since WAL
   * waiting for the archive stays on the primary's volume.
   *
   * @default 1
   */
  readonly walMaxParallel?: number;
  /**
   * With `prometheusRule`: the age of the newest completed base backup above which
   * `FerretDBPostgresBackupTooOld` fires. Keep it above the schedule's period plus a backup's
   * duration (the default suits the daily schedule).
   *
   * @default Duration.hours(26)
   */
  readonly maxAge?: Duration;
}

/**
 * How far a restored cluster replays the WAL archive.
 */
export class RecoveryTarget {
  /** Every archived transaction (the end of the archive). */
  public static latest(): RecoveryTarget {
    return new RecoveryTarget(undefined);
  }

  /**
   * Up to a point in time.
   *
   * @param timestamp RFC 3339 with a time zone, for example "2026-05-04T10:30:00Z"
   */
  public static time(timestamp: string): RecoveryTarget {
    const valid = typeof timestamp === 'string'
      && /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$/.test(timestamp)
      && !Number.isNaN(Date.parse(timestamp.replace(' ', 'T')));
    if (!valid) {
      throw invalid('restore.target (RecoveryTarget.time)', timestamp, 'an RFC 3339 timestamp with a time zone, such as "2026-05-04T10:30:00Z"');
    }
    return new RecoveryTarget(timestamp);
  }

  /**
   * @internal
   */
  public static _check(prop: string, value: unknown): RecoveryTarget {
    if (!(value instanceof RecoveryTarget)) throw invalid(prop, value, 'RecoveryTarget.latest() or RecoveryTarget.time(timestamp)');
    return value;
  }

  /** The target time; undefined for the end of the archive. */
  public readonly targetTime?: string;

  private constructor(targetTime: string | undefined) {
    this.targetTime = targetTime;
  }
}

/**
 * Bootstrap a new cluster from another cluster's backups (point-in-time recovery).
 */
export interface RestoreSettings {
  /** The object store holding the source cluster's backups and WAL. */
  readonly objectStore: ObjectStoreSettings;
  /**
   * The CloudNativePG cluster name the backups were taken from (the folder in the store).
   */
  readonly sourceClusterName: string;
  /**
   * @default RecoveryTarget.latest()
   */
  readonly target?: RecoveryTarget;
}

/**
 * What a synchronous quorum does when fewer standbys are healthy than it counts
 * (`postgresql.synchronous.dataDurability`).
 */
export enum DataDurability {
  /**
   * Commits wait until the quorum's number of standbys confirm them, however many are down:
   * no acknowledged commit exists on fewer standbys than the quorum.
   */
  REQUIRED = 'required',
  /**
   * The quorum shrinks to the healthy standbys while some are down (with none, commits return
   * once durable on the primary) and grows back as they return: writes go on through a standby
   * restart, a rolling update or a drain, at the cost of commits that fewer standbys confirmed
   * meanwhile.
   */
  PREFERRED = 'preferred',
}

/**
 * Which standbys may count in the synchronous quorum (`postgresql.syncReplicaElectionConstraint`).
 */
export interface SyncReplicaElectionConstraint {
  /**
   * Node labels, such as `topology.kubernetes.io/zone`: a standby whose node has the same values
   * for all of them as the primary's node is no quorum candidate, so an acknowledged commit is
   * also on a standby in another zone.
   */
  readonly nodeLabelsAntiAffinity: string[];
}

/**
 * What is specific to the CloudNativePG backend.
 */
export interface CloudNativePGOptions {
  /**
   * How long the operator waits after the primary fails before promoting a standby
   * (`failoverDelay`, whole seconds).
   *
   * @default Duration.seconds(0)
   */
  readonly failoverDelay?: Duration;
  /**
   * How long a switchover waits for the former primary to shut down cleanly before stopping it
   * immediately (`switchoverDelay`, whole seconds).
   *
   * @default Duration.seconds(3600)
   */
  readonly switchoverDelay?: Duration;
  /**
   * How long an instance may take to shut down cleanly (`stopDelay`, whole seconds): a smart
   * shutdown first (`smartShutdownTimeout`), then a fast one for the rest of it. The pods'
   * termination grace period follows it.
   *
   * @default Duration.seconds(1800)
   */
  readonly stopDelay?: Duration;
  /**
   * The part of `stopDelay` a smart shutdown may take (waiting for sessions to end) before the
   * instance manager asks for a fast one (`smartShutdownTimeout`, whole seconds). Must leave
   * `stopDelay` time for the fast shutdown.
   *
   * @default Duration.seconds(180)
   */
  readonly smartShutdownTimeout?: Duration;
  /**
   * A separate volume for the WAL (`walStorage`): WAL writes no longer compete with the data
   * files, and a WAL backlog (a failing archive, a lagging slot) fills this volume, not the data
   * volume. The WAL bounds (`max_slot_wal_keep_size` a quarter of the volume, `wal.*` checks) then
   * follow this volume's size.
   *
   * @default - the WAL on the data volume
   */
  readonly walStorage?: StorageSettings;
  /**
   * With `ReplicationMode.synchronousQuorum(k)`: whether commits keep waiting for `k` standbys
   * while fewer are healthy. `REQUIRED` needs `k` below the number of replicas, so that one
   * standby may restart (a rolling update, a drain) without stopping every write.
   *
   * @default DataDurability.REQUIRED
   */
  readonly dataDurability?: DataDurability;
  /**
   * With `ReplicationMode.synchronousQuorum(k)`: only standbys on nodes that differ from the
   * primary's in these node labels count in the quorum (a zone-aware quorum). Keep at least `k`
   * standbys in other zones (the instances' zone spread prefers it; `scheduling` can require it):
   * with fewer candidates, commits wait (`DataDurability.REQUIRED`) or the quorum shrinks
   * (`DataDurability.PREFERRED`).
   *
   * @default - every standby is a candidate
   */
  readonly syncReplicaElectionConstraint?: SyncReplicaElectionConstraint;
  /**
   * Concurrent connections FerretDB's role may hold on one instance (the managed role's
   * `connectionLimit`). At least `clientConnections` (what the FerretDB pools may open) and at
   * most `max_connections`. DocumentDB's own loopback connections run as the same role and count
   * too, so leave room above the pools.
   *
   * @default - no limit
   */
  readonly connectionLimit?: number;
  /**
   * Pin FerretDB's role to the client pods: a pg_hba rule admits it (scram-sha-256 over TLS)
   * only from the IPs of the pods in the cluster's namespace labelled `clientLabels`
   * (CloudNativePG 1.30's `${podselector:...}` and `podSelectorRefs`), and rejects it from every
   * other address. A new client pod can log in once the operator has added its IP to pg_hba.
   *
   * @default false
   */
  readonly pinRoleToClientPods?: boolean;
  /**
   * @default - namespace "cnpg-system", pods labelled app.kubernetes.io/name=cloudnative-pg
   */
  readonly operator?: CloudNativePGOperator;
  /**
   * A PodMonitor (prometheus-operator) for the instances' exporter (9187). With the
   * NetworkPolicy on, `metricsScrapers` must name the scrapers.
   *
   * @default false
   */
  readonly podMonitor?: boolean;
  /**
   * A PrometheusRule (prometheus-operator) named after the Cluster with its alerts: with
   * `backup`, the newest base backup's age (`backup.maxAge`), a failed base backup and failing
   * WAL archiving; on every cluster, a volume more than 85% full. They read the metrics of
   * CloudNativePG's exporter and the Barman Cloud plugin, so Prometheus must scrape the
   * instances (`podMonitor`). See the README's "CloudNativePG alerts".
   *
   * @default false
   */
  readonly prometheusRule?: boolean;
  /**
   * Who else may reach the instance manager's status port (8000) through the NetworkPolicy.
   * `kubectl cnpg status` reads each instance's status through the API server's `pods/proxy`,
   * so those requests come from the API server: admit its addresses here (an `ipBlock`; they
   * depend on the platform) for that part of the report.
   *
   * @default - only the cluster's own pods and the operator
   */
  readonly statusClients?: k8s.NetworkPolicyPeer[];
  /**
   * WAL archiving and scheduled base backups to an object store.
   *
   * @default - no backups
   */
  readonly backup?: BackupSettings;
  /**
   * Bootstrap from another cluster's backups instead of an empty database.
   *
   * @default - a new, empty database
   */
  readonly restore?: RestoreSettings;
}
