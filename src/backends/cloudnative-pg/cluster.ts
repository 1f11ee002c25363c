import { ApiObject } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { onDemandBackup } from './backup';
import { checkCnpgClusterProps, maxConnectionsErrors } from './cluster-props';
import { BARMAN_CLOUD_PLUGIN, CNPG_CLUSTER_LABEL, CNPG_POD_ROLE_LABEL, CNPG_RELOAD_LABEL, cnpgClusterSpec } from './cluster-spec';
import { cnpgNetworkPolicySpec } from './network-policy';
import { objectStoreSpec } from './object-store';
import { CloudNativePGOptions } from './options';
import { withAccess } from './security';
import { Resources, Scheduling, StorageSettings } from '../../common';
import { ObjectStore } from '../../imports/barman-objectstore-barmancloud.cnpg.io';
import { Cluster } from '../../imports/cnpg-cluster-postgresql.cnpg.io';
import {
  ScheduledBackup, ScheduledBackupSpecBackupOwnerReference, ScheduledBackupSpecMethod,
} from '../../imports/cnpg-scheduledbackup-postgresql.cnpg.io';
import { PodMonitor } from '../../imports/prometheus-podmonitor-monitoring.coreos.com';
import { cnpgPrometheusRule, CNPG_VOLUME_USED_FRACTION } from '../../observability/cnpg-alerts';
import { POSTGRES_PORT } from '../../postgres/config';
import { PostgresConnection } from '../../postgres/connection';
import { Credentials } from '../../postgres/credentials';
import { CredentialsBootstrap } from '../../postgres/credentials-bootstrap';
import { ReplicationMode } from '../../postgres/replication-mode';
import { WalSettings } from '../../postgres/settings';
import { kube } from '../../private/kube';
import { metadataLabels } from '../../private/labels';
import { POSTGRES_CLIENT_LABEL } from '../../private/names';

export { MAX_CNPG_NAME } from './cluster-props';

/** Bootstrap SQL and pg_hba rules of the CloudNativePG backend (pure; for tests on real PostgreSQL). */
export { cnpgPgHba, cnpgPostInitSql, DOCUMENTDB_SETTINGS } from './cluster-spec';

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
   * readiness probe, `maximumLag`). A PostgreSQL size ("64MB", "1GB"). The default rides out
   * the replay backlog of bulk loads (see the README's CloudNativePG section).
   *
   * @default "1GB"
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
   * Who may scrape the instances' exporter (9187). Required with `podMonitor` while
   * `networkPolicy` is on: the PodMonitor would scrape nothing otherwise.
   *
   * @default - nobody
   */
  readonly metricsScrapers?: k8s.NetworkPolicyPeer[];
  /**
   * Extra labels of the PodMonitor (for example the label your Prometheus selects PodMonitors
   * by, such as `release: kube-prometheus-stack`).
   *
   * @default - none
   */
  readonly podMonitorLabels?: { [key: string]: string };
  /**
   * Extra labels of the PrometheusRule (for example the label your Prometheus selects rules by).
   *
   * @default - none
   */
  readonly prometheusRuleLabels?: { [key: string]: string };
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
  private readonly backupLabels: { [key: string]: string };

  constructor(scope: Construct, id: string, props: CloudNativePGClusterProps = {}) {
    super(scope, id);
    const c = checkCnpgClusterProps(this, props);
    this.name = c.name;
    this.replicas = c.replicas;
    this.instances = c.replicas + 1;
    this.ferretdbUser = c.ferretdbUser;
    this.node.addValidation({ validate: () => maxConnectionsErrors(c.maxConnections, c.clientConnections) });
    this.readWriteServiceName = `${this.name}-rw`;
    this.readOnlyServiceName = `${this.name}-ro`;
    this.caSecretName = `${this.name}-ca`;
    this.clientLabels = { [POSTGRES_CLIENT_LABEL]: this.name };
    const metadata = (component: string) => ({ labels: metadataLabels({ name: 'postgresql', instance: c.instance, component }, c.labels) });
    this.backupLabels = metadata('backup').labels;

    this.secretName = c.secretName;
    if (c.credentials.generated) {
      new CredentialsBootstrap(this, 'Credentials', {
        secretName: this.secretName,
        metadata: metadata('credentials'),
        scheduling: c.scheduling,
        basicAuthUsername: this.ferretdbUser,
        // The operator re-reads a Secret so labelled at once: a changed password reaches the role.
        secretLabels: { [CNPG_RELOAD_LABEL]: 'true' },
      });
    }

    if (c.backup) {
      this.backupObjectStoreName = `${this.name}-backup`;
      new ObjectStore(this, 'BackupStore', {
        metadata: { ...metadata('backup'), name: this.backupObjectStoreName },
        spec: objectStoreSpec(c.backup.store, c.backup.retention.value, c.backup.walMaxParallel),
      });
      new ScheduledBackup(this, 'ScheduledBackup', {
        metadata: { ...metadata('backup'), name: `${this.name}-backup` },
        spec: {
          cluster: { name: this.name },
          schedule: c.backup.schedule.expression,
          // A first backup right away: point-in-time recovery works from the start.
          immediate: true,
          method: ScheduledBackupSpecMethod.PLUGIN,
          pluginConfiguration: { name: BARMAN_CLOUD_PLUGIN },
          backupOwnerReference: ScheduledBackupSpecBackupOwnerReference.SELF,
        },
      });
    }

    let restore: { objectStore: string; sourceClusterName: string; targetTime?: string } | undefined;
    if (c.restore) {
      const restoreStore = `${this.name}-restore`;
      new ObjectStore(this, 'RestoreStore', {
        metadata: { ...metadata('restore'), name: restoreStore },
        spec: objectStoreSpec(c.restore.store),
      });
      restore = { objectStore: restoreStore, sourceClusterName: c.restore.sourceClusterName, targetTime: c.restore.target.targetTime };
    }

    this.cluster = new Cluster(this, 'Resource', {
      metadata: { ...metadata('postgresql'), name: this.name },
      spec: withAccess(cnpgClusterSpec({
        name: this.name,
        instances: this.instances,
        image: c.image,
        walVolumeBytes: c.walVolumeBytes,
        walStorage: c.walStorage,
        storage: c.storage,
        resources: c.resources,
        scheduling: c.scheduling,
        replicationMode: c.replicationMode,
        dataDurability: c.dataDurability,
        wal: c.wal,
        parameters: c.parameters,
        maxConnections: c.maxConnections,
        maxReplicationLagBytes: c.maxReplicationLagBytes,
        ferretdbUser: this.ferretdbUser,
        secretName: this.secretName,
        failoverDelaySeconds: c.failoverDelaySeconds,
        switchoverDelaySeconds: c.switchoverDelaySeconds,
        stopDelaySeconds: c.stopDelaySeconds,
        smartShutdownTimeoutSeconds: c.smartShutdownTimeoutSeconds,
        backupObjectStore: this.backupObjectStoreName,
        restore,
      }), c.access, this.ferretdbUser, this.clientLabels),
    });

    if (c.podMonitor) {
      new PodMonitor(this, 'PodMonitor', {
        metadata: { name: this.name, labels: { ...c.podMonitorLabels, ...metadata('metrics').labels } },
        spec: {
          selector: { matchLabels: { [CNPG_CLUSTER_LABEL]: this.name, [CNPG_POD_ROLE_LABEL]: 'instance' } },
          podMetricsEndpoints: [{ port: 'metrics' }],
        },
      });
    }

    if (c.prometheusRule) {
      cnpgPrometheusRule(this, 'PrometheusRule', {
        clusterName: this.name,
        backup: c.backup && { maxAgeSeconds: c.backup.maxAgeSeconds },
        volumeUsedFraction: CNPG_VOLUME_USED_FRACTION,
      }, { ...c.prometheusRuleLabels, ...metadata('alerts').labels });
    }

    if (c.networkPolicy) {
      kube(k8s.KubeNetworkPolicy, this, 'NetworkPolicy', {
        metadata: { ...metadata('postgresql'), name: `${this.name}-postgresql` },
        spec: cnpgNetworkPolicySpec({
          clusterName: this.name,
          clientLabels: this.clientLabels,
          operatorNamespace: c.networkPolicy.operatorNamespace,
          operatorLabels: c.networkPolicy.operatorLabels,
          metricsScrapers: c.metricsScrapers,
          statusClients: c.statusClients,
        }),
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

  /**
   * An on-demand base backup (a CloudNativePG `Backup` named `<name>-<suffix>`, through the
   * Barman Cloud plugin, to the backup ObjectStore): for example before an upgrade. CloudNativePG
   * takes it once, when the object is created; re-applying the same object changes nothing, so
   * use a new suffix for each backup. Needs `backup`.
   *
   * @param suffix lower-case letters, digits and '-' (for example "before-upgrade-2026-05")
   */
  public addBackup(suffix: string): ApiObject {
    return onDemandBackup(this, `Backup-${suffix}`, {
      clusterName: this.name,
      suffix,
      backupConfigured: this.backupObjectStoreName !== undefined,
      labels: this.backupLabels,
    });
  }
}
