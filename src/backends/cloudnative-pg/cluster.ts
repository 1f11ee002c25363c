import { ApiObject, Duration } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { BackupSchedule, CloudNativePGOptions, RecoveryTarget, RetentionPolicy } from './options';
import {
  BARMAN_CLOUD_PLUGIN, checkCnpgSettings, checkObjectStore, CNPG_CLUSTER_LABEL, CNPG_POD_ROLE_LABEL, CNPG_PORTS,
  cnpgClusterSpec, objectStoreSpec,
} from './spec';
import { DEFAULT_STORAGE_SIZE, Resources, Scheduling, StorageSettings } from '../../common';
import { ObjectStore } from '../../imports/barman-objectstore-barmancloud.cnpg.io';
import { Cluster } from '../../imports/cnpg-cluster-postgresql.cnpg.io';
import {
  ScheduledBackup, ScheduledBackupSpecBackupOwnerReference, ScheduledBackupSpecMethod,
} from '../../imports/cnpg-scheduledbackup-postgresql.cnpg.io';
import { PodMonitor } from '../../imports/prometheus-podmonitor-monitoring.coreos.com';
import { CONNECTION_HEADROOM, DEFAULT_POSTGRES_IMAGE } from '../../postgres/config';
import { PostgresConnection } from '../../postgres/connection';
import { Credentials } from '../../postgres/credentials';
import { CredentialsBootstrap } from '../../postgres/credentials-bootstrap';
import { ReplicationMode } from '../../postgres/replication-mode';
import { WalSettings } from '../../postgres/settings';
import { metadataLabels } from '../../private/labels';
import { defaultName, POSTGRES_CLIENT_LABEL, validateName } from '../../private/names';
import { checkResources } from '../../private/pod-spec';
import { checkImage, checkInteger, checkRoleName, invalid, parsePostgresSize, parseQuantity } from '../../private/validation';
import { POSTGRES_PORT } from '../statefulset/pod';

/**
 * Longest CloudNativePG cluster name (its admission webhook's limit). Every name CloudNativePG
 * derives stays valid: Services `-rw`/`-ro`/`-r`, Secrets `-ca`/`-server`/`-replication`, pods
 * and PVCs `<name>-N`, `<name>-N-wal`, Jobs `<name>-N-initdb`/`-join`; and so do ours
 * (`-backup`, `-restore`, `-postgresql`).
 */
export const MAX_CNPG_NAME = 50;

/** Bootstrap SQL and pg_hba rules of the CloudNativePG backend (pure; for tests on real PostgreSQL). */
export { cnpgPgHba, cnpgPostInitSql, DOCUMENTDB_SETTINGS } from './spec';

/**
 * Props of a CloudNativePG cluster for FerretDB.
 */
export interface CloudNativePGClusterProps extends CloudNativePGOptions {
  /**
   * Name of the `Cluster` (its Services are `<name>-rw`, `<name>-ro`, `<name>-r`).
   *
   * @default - derived from the construct path (at most 50 characters)
   */
  readonly name?: string;
  /**
   * Hot standbys: the cluster has `replicas + 1` instances. 0 is allowed (no failover then).
   *
   * @default 2
   */
  readonly replicas?: number;
  /**
   * PostgreSQL image with the DocumentDB extension; its tag must start with the PostgreSQL major
   * version, as CloudNativePG requires.
   *
   * @default "ghcr.io/ferretdb/postgres-documentdb:17-0.107.0-ferretdb-2.7.0"
   */
  readonly image?: string;
  /**
   * @default - 10Gi, the default StorageClass
   */
  readonly storage?: StorageSettings;
  /**
   * @default - requests 250m CPU and 512Mi memory, memory limit 1Gi
   */
  readonly resources?: Resources;
  /**
   * Node selector, tolerations and affinity of the instances (the affinity is added to the
   * default anti-affinity).
   *
   * @default - instances prefer distinct nodes and spread over zones
   */
  readonly scheduling?: Scheduling;
  /**
   * The password of FerretDB's role. A Secret of type `kubernetes.io/basic-auth` with the keys
   * `username` (the role name) and `password`, as CloudNativePG requires.
   *
   * @default Credentials.fromGeneratedSecret() (Secret `<name>-ferretdb`)
   */
  readonly credentials?: Credentials;
  /**
   * @default ReplicationMode.async()
   */
  readonly replicationMode?: ReplicationMode;
  /**
   * WAL settings. `walSenderTimeout`, `walReceiverTimeout`, `maxWalSenders` and
   * `maxReplicationSlots` keep CloudNativePG's defaults unless given.
   *
   * @default - see WalSettings
   */
  readonly wal?: WalSettings;
  /**
   * Extra PostgreSQL parameters. The settings CloudNativePG manages and the ones FerretDB needs
   * are rejected.
   *
   * @default - none
   */
  readonly parameters?: { [name: string]: string };
  /**
   * The role FerretDB connects with.
   *
   * @default "ferretdb"
   */
  readonly ferretdbUser?: string;
  /**
   * Connections the clients (the FerretDB pools) may open to one instance at once.
   *
   * @default 70
   */
  readonly clientConnections?: number;
  /**
   * `max_connections` of every instance. Must leave 30 connections beyond `clientConnections`
   * for DocumentDB's and pg_cron's own connections, the instance manager and administrators.
   *
   * @default - clientConnections + 30
   */
  readonly maxConnections?: number;
  /**
   * A standby is Ready (and behind the `-ro` Service) only while its WAL receiver is connected
   * and it has replayed the WAL it received to within this distance (CloudNativePG's `streaming`
   * readiness probe, `maximumLag`). A PostgreSQL size ("64MB", "1GB").
   *
   * @default "64MB"
   */
  readonly maxReplicationLag?: string;
  /**
   * A NetworkPolicy that lets only pods labelled `clientLabels` reach PostgreSQL (5432), the
   * instances reach each other (5432, 8000), the operator reach them (5432, 8000) and
   * `metricsScrapers` reach the exporter (9187).
   *
   * @default true
   */
  readonly networkPolicy?: boolean;
  /**
   * Who may scrape the instances' exporter (9187).
   *
   * @default - nobody
   */
  readonly metricsScrapers?: k8s.NetworkPolicyPeer[];
  /**
   * The `app.kubernetes.io/instance` label of this construct's objects.
   *
   * @default - the name
   */
  readonly instance?: string;
  /**
   * Extra labels for the metadata of every object (never used in selectors).
   *
   * @default - none
   */
  readonly labels?: { [key: string]: string };
}

/**
 * PostgreSQL for FerretDB on a CloudNativePG `Cluster`: the operator runs the instances, fails
 * over to the most advanced standby when the primary is lost, and serves TLS with its own CA.
 * The cluster has the DocumentDB extension, FerretDB's role (declared, password from a
 * basic-auth Secret generated at deploy time), replication slots for high availability, WAL
 * bounded by the volume, an optional synchronous quorum, a NetworkPolicy, and optionally WAL
 * archiving and scheduled backups (Barman Cloud plugin), point-in-time recovery and a PodMonitor.
 *
 * Needs the CloudNativePG operator (1.30) in the cluster; backups need the Barman Cloud plugin.
 */
export class CloudNativePGCluster extends Construct {
  /** Name of the `Cluster`. */
  public readonly name: string;
  /** Number of instances (replicas + 1). */
  public readonly instances: number;
  /** Number of hot standbys. */
  public readonly replicas: number;
  /** The Service of the current primary (`<name>-rw`). */
  public readonly readWriteServiceName: string;
  /** The Service of the standbys only (`<name>-ro`). */
  public readonly readOnlyServiceName: string;
  /** The Secret with the CA of the server certificates (`<name>-ca`, key `ca.crt`). */
  public readonly caSecretName: string;
  /** The basic-auth Secret of FerretDB's role (keys `username`, `password`). */
  public readonly secretName: string;
  /** The role FerretDB connects with. */
  public readonly ferretdbUser: string;
  public readonly port: number = POSTGRES_PORT;
  /** Labels a client pod needs for the NetworkPolicy to let it reach PostgreSQL. */
  public readonly clientLabels: { [key: string]: string };
  /** What FerretDB needs to connect. */
  public readonly connection: PostgresConnection;
  /** The `Cluster` object. */
  public readonly cluster: ApiObject;
  /** The ObjectStore backups go to, when backups are on. */
  public readonly backupObjectStoreName?: string;

  constructor(scope: Construct, id: string, props: CloudNativePGClusterProps = {}) {
    super(scope, id);
    this.name = props.name !== undefined ? validateName('name', props.name, MAX_CNPG_NAME) : defaultName(this, MAX_CNPG_NAME);
    this.replicas = checkInteger('replicas', props.replicas ?? 2, 0, 100);
    this.instances = this.replicas + 1;
    const image = checkImage('image', props.image ?? DEFAULT_POSTGRES_IMAGE);
    if (!/:\d+/.test(image.split('/').pop() ?? '')) {
      throw invalid('image', image, 'an image whose tag starts with the PostgreSQL major version (CloudNativePG reads it), such as "...:17-..."');
    }
    const storage = props.storage ?? {};
    const volumeBytes = parseQuantity('storage.size', storage.size ?? DEFAULT_STORAGE_SIZE);
    checkResources('resources', props.resources);
    const replicationMode = ReplicationMode._check('replicationMode', props.replicationMode ?? ReplicationMode.async());
    if (replicationMode.synchronousStandbys > this.replicas) {
      throw invalid('replicationMode', `ReplicationMode.synchronousQuorum(${replicationMode.synchronousStandbys})`,
        `a quorum of at most the number of replicas (${this.replicas}); commits would never return`);
    }
    this.ferretdbUser = checkRoleName('ferretdbUser', props.ferretdbUser ?? 'ferretdb');
    if (this.ferretdbUser === 'streaming_replica' || this.ferretdbUser.startsWith('cnpg_')) {
      throw invalid('ferretdbUser', this.ferretdbUser, 'a role CloudNativePG does not reserve (not streaming_replica, not cnpg_*)');
    }
    const wal = props.wal ?? {};
    const parameters = props.parameters ?? {};
    checkCnpgSettings(wal, parameters, volumeBytes);
    const clientConnections = checkInteger('clientConnections', props.clientConnections ?? 70, 0, 100_000);
    const maxConnections = props.maxConnections === undefined
      ? clientConnections + CONNECTION_HEADROOM
      : checkInteger('maxConnections', props.maxConnections, 1, 262_143);
    this.node.addValidation({ validate: () => checkMaxConnections(maxConnections, clientConnections) });
    const maxReplicationLagBytes = parsePostgresSize('maxReplicationLag', props.maxReplicationLag ?? '64MB');
    const failoverDelaySeconds = delaySeconds('failoverDelay', props.failoverDelay ?? Duration.seconds(0));
    const switchoverDelaySeconds = delaySeconds('switchoverDelay', props.switchoverDelay ?? Duration.seconds(3600));

    this.readWriteServiceName = `${this.name}-rw`;
    this.readOnlyServiceName = `${this.name}-ro`;
    this.caSecretName = `${this.name}-ca`;
    this.clientLabels = { [POSTGRES_CLIENT_LABEL]: this.name };
    const instance = props.instance ?? this.name;
    const metadata = (component: string) => ({ labels: metadataLabels({ name: 'postgresql', instance, component }, props.labels) });

    const credentials = Credentials._check('credentials', props.credentials ?? Credentials.fromGeneratedSecret());
    this.secretName = credentials.secretName ?? `${this.name}-ferretdb`;
    if (credentials.generated) {
      new CredentialsBootstrap(this, 'Credentials', {
        secretName: this.secretName,
        metadata: metadata('credentials'),
        scheduling: props.scheduling,
        basicAuthUsername: this.ferretdbUser,
      });
    }

    let backupObjectStore: string | undefined;
    if (props.backup !== undefined) {
      if (props.backup === null || typeof props.backup !== 'object') throw invalid('backup', props.backup, 'backup settings ({ objectStore, ... })');
      const store = checkObjectStore('backup.objectStore', props.backup.objectStore);
      const schedule = BackupSchedule._check('backup.schedule', props.backup.schedule ?? BackupSchedule.daily(0));
      const retention = RetentionPolicy._check('backup.retention', props.backup.retention ?? RetentionPolicy.days(30));
      backupObjectStore = `${this.name}-backup`;
      new ObjectStore(this, 'BackupStore', {
        metadata: { ...metadata('backup'), name: backupObjectStore },
        spec: objectStoreSpec(store, retention.value),
      });
      new ScheduledBackup(this, 'ScheduledBackup', {
        metadata: { ...metadata('backup'), name: `${this.name}-backup` },
        spec: {
          cluster: { name: this.name },
          schedule: schedule.expression,
          // A first backup right away: point-in-time recovery works from the start.
          immediate: true,
          method: ScheduledBackupSpecMethod.PLUGIN,
          pluginConfiguration: { name: BARMAN_CLOUD_PLUGIN },
          backupOwnerReference: ScheduledBackupSpecBackupOwnerReference.SELF,
        },
      });
    }
    this.backupObjectStoreName = backupObjectStore;

    let restore: { objectStore: string; sourceClusterName: string; targetTime?: string } | undefined;
    if (props.restore !== undefined) {
      if (props.restore === null || typeof props.restore !== 'object') throw invalid('restore', props.restore, 'restore settings ({ objectStore, sourceClusterName, ... })');
      const store = checkObjectStore('restore.objectStore', props.restore.objectStore);
      const source = validateName('restore.sourceClusterName', props.restore.sourceClusterName, MAX_CNPG_NAME);
      const target = RecoveryTarget._check('restore.target', props.restore.target ?? RecoveryTarget.latest());
      if (source === this.name && props.backup?.objectStore.destinationPath === store.destinationPath) {
        throw invalid('restore.sourceClusterName', source,
          `a cluster other than this one (${this.name}) when backups go to the same destinationPath: the restored cluster would archive its WAL over the source's`);
      }
      const restoreStore = `${this.name}-restore`;
      new ObjectStore(this, 'RestoreStore', {
        metadata: { ...metadata('restore'), name: restoreStore },
        spec: objectStoreSpec(store),
      });
      restore = { objectStore: restoreStore, sourceClusterName: source, targetTime: target.targetTime };
    }

    this.cluster = new Cluster(this, 'Resource', {
      metadata: { ...metadata('postgresql'), name: this.name },
      spec: cnpgClusterSpec({
        name: this.name,
        instances: this.instances,
        image,
        volumeBytes,
        storage,
        resources: props.resources,
        scheduling: props.scheduling,
        replicationMode,
        wal,
        parameters,
        maxConnections,
        maxReplicationLagBytes,
        ferretdbUser: this.ferretdbUser,
        secretName: this.secretName,
        failoverDelaySeconds,
        switchoverDelaySeconds,
        backupObjectStore,
        restore,
      }),
    });

    const instanceLabels = { [CNPG_CLUSTER_LABEL]: this.name };
    if (props.podMonitor ?? false) {
      new PodMonitor(this, 'PodMonitor', {
        metadata: { ...metadata('metrics'), name: this.name },
        spec: {
          selector: { matchLabels: { ...instanceLabels, [CNPG_POD_ROLE_LABEL]: 'instance' } },
          podMetricsEndpoints: [{ port: 'metrics' }],
        },
      });
    }

    if (props.networkPolicy ?? true) {
      const operator = props.operator ?? {};
      const operatorNamespace = validateName('operator.namespace', operator.namespace ?? 'cnpg-system', 63);
      const operatorLabels = operator.podLabels ?? { 'app.kubernetes.io/name': 'cloudnative-pg' };
      if (Object.keys(operatorLabels).length === 0) {
        throw invalid('operator.podLabels', operatorLabels, 'at least one label (an empty selector would admit every pod of the namespace)');
      }
      const tcp = (...ports: number[]) => ports.map((port) => ({ protocol: 'TCP', port: k8s.IntOrString.fromNumber(port) }));
      const ingress: k8s.NetworkPolicyIngressRule[] = [
        { from: [{ podSelector: { matchLabels: this.clientLabels } }], ports: tcp(CNPG_PORTS.postgresql) },
        // Instances (streaming, pg_rewind, status) and the operator's Jobs (initdb, join) of this cluster.
        { from: [{ podSelector: { matchLabels: instanceLabels } }], ports: tcp(CNPG_PORTS.postgresql, CNPG_PORTS.status) },
        {
          from: [{
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': operatorNamespace } },
            podSelector: { matchLabels: operatorLabels },
          }],
          ports: tcp(CNPG_PORTS.status, CNPG_PORTS.postgresql),
        },
      ];
      if (props.metricsScrapers && props.metricsScrapers.length > 0) {
        ingress.push({ from: props.metricsScrapers, ports: tcp(CNPG_PORTS.metrics) });
      }
      new k8s.KubeNetworkPolicy(this, 'NetworkPolicy', {
        metadata: { ...metadata('postgresql'), name: `${this.name}-postgresql` },
        spec: { podSelector: { matchLabels: instanceLabels }, policyTypes: ['Ingress'], ingress },
      });
    }

    this.connection = {
      readWriteHost: this.readWriteServiceName,
      readOnlyHost: this.readOnlyServiceName,
      port: this.port,
      username: this.ferretdbUser,
      secretName: this.secretName,
      passwordKey: 'password',
      caSecretName: this.caSecretName,
      caKey: 'ca.crt',
      clientLabels: this.clientLabels,
    };
  }
}

/** `max_connections` must hold the clients' pools and the headroom (as with StatefulSets). */
function checkMaxConnections(maxConnections: number, clientConnections: number): string[] {
  const needed = clientConnections + CONNECTION_HEADROOM;
  return maxConnections < needed
    ? [`Invalid maxConnections: ${maxConnections}. Expected at least ${needed}: the clients' ${clientConnections} connections (the FerretDB pools) plus ${CONNECTION_HEADROOM} for DocumentDB, pg_cron, the instance manager and administrators.`]
    : [];
}

/** A delay in whole seconds (CloudNativePG's fields are integers). */
function delaySeconds(prop: string, value: Duration): number {
  if (!(value instanceof Duration)) throw invalid(prop, value, 'a Duration such as Duration.seconds(30)');
  const seconds = value.toSeconds({ integral: false });
  if (!Number.isInteger(seconds) || seconds < 0 || seconds > 2147483647) {
    throw invalid(prop, `${seconds}s`, 'a whole number of seconds from 0 to 2147483647');
  }
  return seconds;
}
