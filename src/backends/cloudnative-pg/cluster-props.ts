import { Duration } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import type { CloudNativePGClusterProps } from './cluster';
import { checkCnpgSettings } from './cluster-spec';
import { checkObjectStore } from './object-store';
import { BackupSchedule, DataDurability, ObjectStoreSettings, RecoveryTarget, RetentionPolicy } from './options';
import { checkAccess, CnpgAccess } from './security';
import { DEFAULT_STORAGE_SIZE, Resources, Scheduling, StorageSettings } from '../../common';
import { CONNECTION_HEADROOM, DEFAULT_POSTGRES_IMAGE } from '../../postgres/config';
import { Credentials } from '../../postgres/credentials';
import { ReplicationMode } from '../../postgres/replication-mode';
import { WalSettings } from '../../postgres/settings';
import { defaultName, validateName } from '../../private/names';
import { checkResources } from '../../private/pod-spec';
import { checkImage, checkInteger, checkRoleName, invalid, parsePostgresSize, parseQuantity } from '../../private/validation';

/**
 * Longest CloudNativePG cluster name (its admission webhook's limit). Every name CloudNativePG
 * derives stays valid: Services `-rw`/`-ro`/`-r`, Secrets `-ca`/`-server`/`-replication`, pods
 * and PVCs `<name>-N`, `<name>-N-wal`, Jobs `<name>-N-initdb`/`-join`; and so do ours
 * (`-backup`, `-restore`, `-postgresql`).
 */
export const MAX_CNPG_NAME = 50;

/**
 * The default `maximumLag` of the `streaming` readiness probe. CloudNativePG compares a
 * standby's replay position with the WAL it has received, so this measures how far its single
 * replay process trails, not the network. A bulk load (an import, an index build) writes WAL
 * faster than one process replays it, and backlogs of hundreds of MB are ordinary: at 64MB every
 * standby left `-ro` during each load (reads through `-ro` failed, and a drain's switchover had
 * no Ready standby to choose). 1GB rides out such bursts; replay, at tens of MB/s at least,
 * clears it within a minute or so, which bounds how stale a Ready standby's reads are. A standby
 * that trails by more is not keeping up and leaves `-ro` until it does.
 */
export const CNPG_DEFAULT_MAX_REPLICATION_LAG = '1GB';

/** CloudNativePGCluster's props, checked and with their defaults: what the construct renders from. */
export interface CheckedCnpgClusterProps {
  readonly name: string;
  readonly replicas: number;
  readonly image: string;
  readonly storage: StorageSettings;
  readonly volumeBytes: number;
  /** The separate WAL volume, if any. */
  readonly walStorage?: StorageSettings;
  /** Size of the volume holding pg_wal (the WAL volume, or the data volume): the WAL bounds follow it. */
  readonly walVolumeBytes: number;
  readonly resources?: Resources;
  readonly scheduling?: Scheduling;
  readonly replicationMode: ReplicationMode;
  readonly dataDurability: DataDurability;
  readonly ferretdbUser: string;
  readonly wal: WalSettings;
  readonly parameters: { [name: string]: string };
  readonly clientConnections: number;
  readonly maxConnections: number;
  readonly maxReplicationLagBytes: number;
  readonly failoverDelaySeconds: number;
  readonly switchoverDelaySeconds: number;
  readonly stopDelaySeconds: number;
  readonly smartShutdownTimeoutSeconds: number;
  readonly instance: string;
  readonly labels?: { [key: string]: string };
  readonly credentials: Credentials;
  readonly secretName: string;
  readonly backup?: {
    readonly store: ObjectStoreSettings;
    readonly schedule: BackupSchedule;
    readonly retention: RetentionPolicy;
    readonly walMaxParallel: number;
    /** The newest base backup's age above which the PrometheusRule alerts. */
    readonly maxAgeSeconds: number;
  };
  readonly restore?: { readonly store: ObjectStoreSettings; readonly sourceClusterName: string; readonly target: RecoveryTarget };
  readonly podMonitor: boolean;
  readonly prometheusRule: boolean;
  readonly prometheusRuleLabels?: { [key: string]: string };
  /** The operator's pods, admitted by the NetworkPolicy; none without one. */
  readonly networkPolicy?: { readonly operatorNamespace: string; readonly operatorLabels: { [key: string]: string } };
  readonly metricsScrapers?: k8s.NetworkPolicyPeer[];
  readonly statusClients?: k8s.NetworkPolicyPeer[];
  readonly podMonitorLabels?: { [key: string]: string };
  readonly access: CnpgAccess;
}

/**
 * Checks every prop of CloudNativePGCluster in one place, before anything is built; throws an
 * error naming the prop and the value.
 */
export function checkCnpgClusterProps(scope: Construct, props: CloudNativePGClusterProps): CheckedCnpgClusterProps {
  const name = props.name !== undefined ? validateName('name', props.name, MAX_CNPG_NAME) : defaultName(scope, MAX_CNPG_NAME);
  const replicas = checkInteger('replicas', props.replicas ?? 2, 0, 100);
  const image = checkImage('image', props.image ?? DEFAULT_POSTGRES_IMAGE);
  if (!/:\d+/.test(image.split('/').pop() ?? '')) {
    throw invalid('image', image, 'an image whose tag starts with the PostgreSQL major version (CloudNativePG reads it), such as "...:17-..."');
  }
  const storage = props.storage ?? {};
  const volumeBytes = parseQuantity('storage.size', storage.size ?? DEFAULT_STORAGE_SIZE);
  checkResources('resources', props.resources);
  const replicationMode = ReplicationMode._check('replicationMode', props.replicationMode ?? ReplicationMode.async());
  if (replicationMode.synchronousStandbys > replicas) {
    throw invalid('replicationMode', `ReplicationMode.synchronousQuorum(${replicationMode.synchronousStandbys})`,
      `a quorum of at most the number of replicas (${replicas}); commits would never return`);
  }
  const dataDurability = checkDataDurability(props.dataDurability ?? DataDurability.REQUIRED);
  const quorum = replicationMode.synchronousStandbys;
  if (dataDurability === DataDurability.REQUIRED && quorum > 0 && quorum === replicas) {
    throw invalid('replicationMode', `ReplicationMode.synchronousQuorum(${quorum})`,
      `a quorum below the number of replicas (${replicas}) with DataDurability.REQUIRED, or dataDurability: DataDurability.PREFERRED: `
      + 'with every standby in the quorum, each commit would wait while any standby restarts (a rolling update, a drain)');
  }
  const ferretdbUser = checkRoleName('ferretdbUser', props.ferretdbUser ?? 'ferretdb');
  // CloudNativePG owns `postgres` (its superuser, which a managed role may not be; the bootstrap's
  // `ALTER ROLE ... NOSUPERUSER` would fail on it), `streaming_replica` (its replication role)
  // and the `cnpg_` prefix (its poolers' roles).
  if (['postgres', 'streaming_replica'].includes(ferretdbUser) || ferretdbUser.startsWith('cnpg_')) {
    throw invalid('ferretdbUser', ferretdbUser, 'a role CloudNativePG does not reserve (not postgres, not streaming_replica, not cnpg_*)');
  }
  const wal = props.wal ?? {};
  const parameters = props.parameters ?? {};
  const walStorage = props.walStorage;
  if (walStorage !== undefined && (walStorage === null || typeof walStorage !== 'object')) {
    throw invalid('walStorage', walStorage, 'storage settings ({ size, storageClassName })');
  }
  const walVolumeBytes = walStorage ? parseQuantity('walStorage.size', walStorage.size ?? DEFAULT_STORAGE_SIZE) : volumeBytes;
  checkCnpgSettings(wal, parameters, walVolumeBytes);
  const clientConnections = checkInteger('clientConnections', props.clientConnections ?? 70, 0, 100_000);
  const maxConnections = props.maxConnections === undefined
    ? clientConnections + CONNECTION_HEADROOM
    : checkInteger('maxConnections', props.maxConnections, 1, 262_143);
  const access = checkAccess(props, quorum, clientConnections, maxConnections);
  const maxReplicationLagBytes = parsePostgresSize('maxReplicationLag', props.maxReplicationLag ?? CNPG_DEFAULT_MAX_REPLICATION_LAG);
  const failoverDelaySeconds = delaySeconds('failoverDelay', props.failoverDelay ?? Duration.seconds(0));
  const switchoverDelaySeconds = delaySeconds('switchoverDelay', props.switchoverDelay ?? Duration.seconds(3600));
  const stopDelaySeconds = delaySeconds('stopDelay', props.stopDelay ?? Duration.seconds(1800));
  const smartShutdownTimeoutSeconds = delaySeconds('smartShutdownTimeout', props.smartShutdownTimeout ?? Duration.seconds(180));
  if (smartShutdownTimeoutSeconds >= stopDelaySeconds) {
    throw invalid('smartShutdownTimeout', `${smartShutdownTimeoutSeconds}s`,
      `less than stopDelay (${stopDelaySeconds}s): the rest of stopDelay is the fast shutdown's`);
  }
  const credentials = Credentials._check('credentials', props.credentials ?? Credentials.fromGeneratedSecret());

  let backup: CheckedCnpgClusterProps['backup'];
  if (props.backup !== undefined) {
    if (props.backup === null || typeof props.backup !== 'object') throw invalid('backup', props.backup, 'backup settings ({ objectStore, ... })');
    backup = {
      store: checkObjectStore('backup.objectStore', props.backup.objectStore),
      schedule: BackupSchedule._check('backup.schedule', props.backup.schedule ?? BackupSchedule.daily(0)),
      retention: RetentionPolicy._check('backup.retention', props.backup.retention ?? RetentionPolicy.days(30)),
      walMaxParallel: checkInteger('backup.walMaxParallel', props.backup.walMaxParallel ?? 1, 1, 64),
      maxAgeSeconds: delaySeconds('backup.maxAge', props.backup.maxAge ?? Duration.hours(26)),
    };
    if (backup.maxAgeSeconds < 3600) throw invalid('backup.maxAge', `${backup.maxAgeSeconds}s`, 'at least an hour (Duration.hours(1)): a base backup takes a while');
  }

  let restore: CheckedCnpgClusterProps['restore'];
  if (props.restore !== undefined) {
    if (props.restore === null || typeof props.restore !== 'object') throw invalid('restore', props.restore, 'restore settings ({ objectStore, sourceClusterName, ... })');
    const store = checkObjectStore('restore.objectStore', props.restore.objectStore);
    const source = validateName('restore.sourceClusterName', props.restore.sourceClusterName, MAX_CNPG_NAME);
    const target = RecoveryTarget._check('restore.target', props.restore.target ?? RecoveryTarget.latest());
    if (source === name && props.backup?.objectStore.destinationPath === store.destinationPath) {
      throw invalid('restore.sourceClusterName', source,
        `a cluster other than this one (${name}) when backups go to the same destinationPath: the restored cluster would archive its WAL over the source's`);
    }
    restore = { store, sourceClusterName: source, target };
  }

  let networkPolicy: CheckedCnpgClusterProps['networkPolicy'];
  if (props.networkPolicy ?? true) {
    const operator = props.operator ?? {};
    const operatorNamespace = validateName('operator.namespace', operator.namespace ?? 'cnpg-system', 63);
    const operatorLabels = operator.podLabels ?? { 'app.kubernetes.io/name': 'cloudnative-pg' };
    if (Object.keys(operatorLabels).length === 0) {
      throw invalid('operator.podLabels', operatorLabels, 'at least one label (an empty selector would admit every pod of the namespace)');
    }
    networkPolicy = { operatorNamespace, operatorLabels };
  }

  const podMonitor = props.podMonitor ?? false;
  if (podMonitor && networkPolicy && !(Array.isArray(props.metricsScrapers) && props.metricsScrapers.length > 0)) {
    throw invalid('metricsScrapers', props.metricsScrapers,
      'the pods that scrape metrics (your Prometheus\'s) with podMonitor while the NetworkPolicy is on: '
      + 'without them the NetworkPolicies admit nobody to the exporter (9187) or FerretDB\'s metrics (8088), '
      + 'and the PodMonitor scrapes nothing (or set networkPolicy: false)');
  }

  return {
    name,
    replicas,
    image,
    storage,
    volumeBytes,
    walStorage,
    walVolumeBytes,
    resources: props.resources,
    scheduling: props.scheduling,
    replicationMode,
    dataDurability,
    ferretdbUser,
    wal,
    parameters,
    clientConnections,
    maxConnections,
    maxReplicationLagBytes,
    failoverDelaySeconds,
    switchoverDelaySeconds,
    stopDelaySeconds,
    smartShutdownTimeoutSeconds,
    instance: props.instance ?? name,
    labels: props.labels,
    credentials,
    secretName: credentials.secretName ?? `${name}-ferretdb`,
    backup,
    restore,
    podMonitor,
    prometheusRule: props.prometheusRule ?? false,
    prometheusRuleLabels: props.prometheusRuleLabels,
    networkPolicy,
    metricsScrapers: props.metricsScrapers,
    statusClients: props.statusClients,
    podMonitorLabels: props.podMonitorLabels,
    access,
  };
}

/** `max_connections` must hold the clients' pools and the headroom (as with StatefulSets). */
export function maxConnectionsErrors(maxConnections: number, clientConnections: number): string[] {
  const needed = clientConnections + CONNECTION_HEADROOM;
  return maxConnections < needed
    ? [`Invalid maxConnections: ${maxConnections}. Expected at least ${needed}: the clients' ${clientConnections} connections (the FerretDB pools) plus ${CONNECTION_HEADROOM} for DocumentDB, pg_cron, the instance manager and administrators.`]
    : [];
}

function checkDataDurability(value: unknown): DataDurability {
  if (!Object.values(DataDurability).includes(value as DataDurability)) {
    throw invalid('dataDurability', value, 'DataDurability.REQUIRED or DataDurability.PREFERRED');
  }
  return value as DataDurability;
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
