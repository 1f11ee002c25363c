import { ApiObject, Chart, Duration, Lazy } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { renderPgHba, renderPostgresqlConf, restartSettingsHash } from './config-files';
import { disruptionBudgets, postgresNetworkPolicy } from './guards';
import { clusterLease } from './lease';
import { headlessService, PostgresClusterInfo, postgresStatefulSet } from './pod';
import { checkPrimaryProps, CheckedPrimaryProps } from './primary-props';
import { postgresScripts } from './scripts';
import { stateKeeperAccess } from './state-keeper';
import { clusterSettings, Topology, topologyErrors } from './topology';
import { Resources, Scheduling, StorageSettings } from '../../common';
import { EXPORTER_ROLE, exporterContainer, QUERIES_KEY } from '../../observability/metrics';
import { PostgresExporter } from '../../observability/monitoring';
import { POSTGRES_PORT } from '../../postgres/config';
import { Credentials } from '../../postgres/credentials';
import { CredentialsBootstrap } from '../../postgres/credentials-bootstrap';
import { ReplicationMode } from '../../postgres/replication-mode';
import { Setting, WalSettings } from '../../postgres/settings';
import { PostgresTls } from '../../postgres/tls';
import { asset } from '../../private/assets';
import { kube } from '../../private/kube';
import { metadataLabels } from '../../private/labels';
import { GROUP_LABEL, POD_NAME_LABEL, POSTGRES_CLIENT_LABEL, POSTGRES_CLUSTER_LABEL } from '../../private/names';

export { DEFAULT_POSTGRES_IMAGE } from '../../postgres/config';

/**
 * Props of a PostgreSQL primary.
 */
export interface PostgresPrimaryProps {
  /**
   * Name of the StatefulSet (and its headless Service); its pod is `<name>-0`.
   *
   * @default - derived from the construct path
   */
  readonly name?: string;
  /**
   * Name of the read-write PostgreSQL Service (port 5432), which selects only the primary.
   *
   * @default - `<name>-rw`
   */
  readonly serviceName?: string;
  /**
   * The `app.kubernetes.io/instance` label.
   *
   * @default - the name
   */
  readonly instance?: string;
  /**
   * PostgreSQL image with the DocumentDB extension (`ghcr.io/ferretdb/postgres-documentdb`).
   *
   * @default "ghcr.io/ferretdb/postgres-documentdb:17-0.107.0-ferretdb-2.7.0"
   */
  readonly image?: string;
  /**
   * @default - 10Gi, the default StorageClass
   */
  readonly storage?: StorageSettings;
  /**
   * Resources of the postgres container.
   *
   * @default - requests 250m CPU and 512Mi memory, memory limit 1Gi
   */
  readonly resources?: Resources;
  /**
   * @default - pods spread over nodes
   */
  readonly scheduling?: Scheduling;
  /**
   * @default Credentials.fromGeneratedSecret()
   */
  readonly credentials?: Credentials;
  /**
   * @default ReplicationMode.async()
   */
  readonly replicationMode?: ReplicationMode;
  /**
   * @default - see WalSettings
   */
  readonly wal?: WalSettings;
  /**
   * Extra PostgreSQL parameters (postgresql.conf), applied on every server. They override the
   * defaults, except the settings the pods' scripts manage (listen_addresses, port, hba_file,
   * primary_conninfo, synchronous_standby_names, ...), which are rejected.
   *
   * @default - none
   */
  readonly parameters?: { [name: string]: string };
  /**
   * Connections the clients (the FerretDB pools) may open to one server at once.
   *
   * @default 70
   */
  readonly clientConnections?: number;
  /**
   * `max_connections` of every server (a standby needs at least the primary's value, so all
   * servers share one). Must leave 30 connections beyond `clientConnections` for DocumentDB's and
   * pg_cron's own connections, the agent and administrators.
   *
   * @default - clientConnections + 30
   */
  readonly maxConnections?: number;
  /**
   * A standby is Ready (and serves reads through the read-only Service) only while it streams
   * from the primary and has replayed WAL to within this distance of the primary's last
   * reported position. A PostgreSQL size ("64MB", "1GB").
   *
   * @default "64MB"
   */
  readonly maxReplicationLag?: string;
  /**
   * The role standbys replicate with (REPLICATION LOGIN only).
   *
   * @default "replicator"
   */
  readonly replicationUser?: string;
  /**
   * The role FerretDB connects with.
   *
   * @default "ferretdb"
   */
  readonly ferretdbUser?: string;
  /**
   * The pod that runs as primary. Change it only as the README's promotion runbook says: the
   * pods watch this key while they run; a primary that is no longer named stops taking writes
   * and rejoins as a standby (pg_rewind where needed), the named pod promotes itself once no
   * other member accepts writes, the read-write Service selects it, and every other pod follows it.
   *
   * @default - `<name>-0`
   */
  readonly currentPrimary?: string;
  /**
   * A NetworkPolicy that lets only this cluster's PostgreSQL pods and pods labelled
   * `clientLabels` reach PostgreSQL (5432).
   *
   * @default true
   */
  readonly networkPolicy?: boolean;
  /**
   * Extra labels for the metadata of every object (never used in selectors).
   *
   * @default - none
   */
  readonly labels?: { [key: string]: string };
  /**
   * A postgres_exporter sidecar `metrics` (port 9187) in every PostgreSQL pod, with the
   * library's custom queries (replication lag, slots, WAL). See the README's "Metrics and alerts".
   *
   * @default - no exporter
   */
  readonly metricsExporter?: PostgresExporter;
  /**
   * Who may reach the exporter (9187) through the NetworkPolicy; used only with `metricsExporter`.
   *
   * @default - nobody
   */
  readonly metricsScrapers?: k8s.NetworkPolicyPeer[];
  /**
   * TLS for every network connection to PostgreSQL: `ssl = on`, `hostssl` only, standbys
   * replicate and members check each other with `sslmode=verify-full`, and the agent reloads a
   * renewed certificate. The certificate must name every host in `tlsDnsNames`. See the README's
   * "TLS".
   *
   * @default - no TLS (connections are plain text; passwords are still SCRAM)
   */
  readonly tls?: PostgresTls;
  /**
   * How long a PostgreSQL pod's fast shutdown may take (its preStop hook's `pg_ctl stop -t`); the
   * pod's `terminationGracePeriodSeconds` is 10 s more. The shutdown checkpoint writes every dirty
   * buffer: a large `shared_buffers` on a slow disk needs minutes, and a shutdown cut short leaves
   * crash recovery to the next start and, during a switchover, WAL the standbys never received.
   * From 10 seconds to 1 day, in whole seconds.
   *
   * @default Duration.minutes(5)
   */
  readonly shutdownTimeout?: Duration;
  /**
   * The cluster's Lease (`<name>-leader`, coordination.k8s.io/v1): only the pod holding it runs as
   * primary. Every PostgreSQL pod's `lease` sidecar takes it for the pod `currentPrimary` names
   * once it is released, or once it saw it unrenewed for this long on its own clock; the holder
   * renews it every 2 s, and a primary whose last renewal is older than 2/3 of this (10 s by
   * default: cut off from the API server) stops taking writes on its own. A primary therefore
   * stops writing within 2/3 of this after losing the API server, and an unplanned promotion
   * waits at least this long; a planned switchover does not (the former primary releases it once
   * stopped). From 6 seconds to 10 minutes, in whole seconds.
   *
   * @default Duration.seconds(15)
   */
  readonly leaseDuration?: Duration;
}

/** What a replica group tells its primary. */
export interface ReplicaGroupInfo {
  readonly podNames: string[];
  /**
   * The group's Services (headless and read-only), for the names the TLS certificate carries.
   *
   * @default - none
   */
  readonly serviceNames?: string[];
  readonly selector: { [key: string]: string };
  /** Bytes of each pod's volume. */
  readonly volumeBytes: number;
}

/**
 * A PostgreSQL primary: a one-pod StatefulSet with a volume claim template, a headless Service,
 * the read-write Service, a PodDisruptionBudget, the cluster's ConfigMap (settings, pg_hba,
 * scripts, membership) and, by default, the credentials Secret's bootstrap Job and a NetworkPolicy.
 */
export class PostgresPrimary extends Construct {
  /** Name of the StatefulSet and its headless Service. */
  public readonly name: string;
  /** The read-write PostgreSQL Service (5432): always the current primary. */
  public readonly serviceName: string;
  /** The headless Service of the primary's StatefulSet. */
  public readonly headlessServiceName: string;
  /** The ConfigMap shared by every PostgreSQL pod of the cluster. */
  public readonly configMapName: string;
  /** The credentials Secret (keys `replication-password`, `ferretdb-password`). */
  public readonly secretName: string;
  /**
   * The ConfigMap where the primary records the cluster's system identifier once it is
   * initialised; while it holds one, a primary pod with an empty volume refuses to run initdb.
   */
  public readonly stateConfigMapName: string;
  /** The Lease only the pod running as primary holds (`<name>-leader`). */
  public readonly leaseName: string;
  /** The Job that creates the credentials Secret (only with generated credentials). */
  public readonly credentialsJobName?: string;
  /** PostgreSQL port of every Service. */
  public readonly port: number = POSTGRES_PORT;
  public readonly replicationUser: string;
  public readonly ferretdbUser: string;
  public readonly image: string;
  public readonly storage: StorageSettings;
  public readonly resources?: Resources;
  public readonly replicationMode: ReplicationMode;
  /** The pod that runs as primary. */
  public readonly currentPrimary: string;
  /** The primary StatefulSet's pod. */
  public readonly podName: string;
  /** Labels that select the primary StatefulSet's pod. */
  public readonly selector: { [key: string]: string };
  /** Labels a client pod needs for the NetworkPolicy to let it reach PostgreSQL. */
  public readonly clientLabels: { [key: string]: string };
  /** Labels on every PostgreSQL pod of this cluster. */
  public readonly memberLabels: { [key: string]: string };
  public readonly statefulSet: ApiObject;
  /** `app.kubernetes.io/instance` of every object. */
  public readonly instance: string;
  /** Extra metadata labels. */
  public readonly labels: { [key: string]: string };
  /** The Secret with PostgreSQL's certificate (`tls.crt`, `tls.key`, `ca.crt`), with `tls`. */
  public readonly tlsSecretName?: string;

  private readonly groups: ReplicaGroupInfo[] = [];
  private settingsCache?: { groups: number; settings: Setting[]; restartHash: string };
  private readonly spec: CheckedPrimaryProps;
  /** What every PostgreSQL pod of the cluster shares (replica groups use it too). @internal */
  public readonly _clusterInfo: PostgresClusterInfo;

  constructor(scope: Construct, id: string, props: PostgresPrimaryProps = {}) {
    super(scope, id);
    const spec = checkPrimaryProps(this, props);
    this.spec = spec;
    this.name = spec.name;
    this.serviceName = spec.serviceName;
    this.headlessServiceName = spec.name;
    this.configMapName = `${spec.name}-config`;
    this.instance = spec.instance;
    this.labels = spec.labels;
    this.image = spec.image;
    this.storage = spec.storage;
    this.resources = spec.resources;
    this.replicationMode = spec.replicationMode;
    this.replicationUser = spec.replicationUser;
    this.ferretdbUser = spec.ferretdbUser;
    this.podName = spec.podName;
    this.currentPrimary = spec.currentPrimary;
    this.selector = { [GROUP_LABEL]: this.name };
    this.clientLabels = { [POSTGRES_CLIENT_LABEL]: this.name };
    this.memberLabels = { [POSTGRES_CLUSTER_LABEL]: this.name };
    this.secretName = spec.secretName;
    this.stateConfigMapName = `${this.name}-state`;

    this.tlsSecretName = spec.tls?._bind(this, {
      defaultSecretName: `${this.name}-tls`,
      labels: this._metadataLabels('postgresql'),
      dnsNames: () => this.tlsDnsNames,
    });
    const lease = clusterLease(this, {
      name: this.name, primaryServiceAccountName: this.name, timing: spec.lease, metadata: this.metadata('lease'),
    });
    this.leaseName = lease.leaseName;
    this._clusterInfo = {
      clusterName: this.name,
      instance: this.instance,
      configMapName: this.configMapName,
      secretName: this.secretName,
      primaryServiceName: this.serviceName,
      bootstrapPod: this.podName,
      replicationUser: this.replicationUser,
      ferretdbUser: this.ferretdbUser,
      maxReplicationLagBytes: spec.maxReplicationLagBytes,
      shutdownTimeoutSeconds: spec.shutdownTimeoutSeconds,
      exporter: spec.exporter && exporterContainer(spec.exporter.image, spec.exporter.resources),
      tlsSecretName: this.tlsSecretName,
      lease,
    };
    if (spec.credentials.generated) {
      this.credentialsJobName = new CredentialsBootstrap(this, 'Credentials', {
        secretName: this.secretName,
        metadata: this.metadata('credentials'),
        scheduling: spec.scheduling,
      }).jobName;
    }

    kube(k8s.KubeConfigMap, this, 'Config', {
      metadata: { ...this.metadata('postgresql'), name: this.configMapName },
      data: Lazy.any({ produce: () => this.configMapData() }) as any,
    });

    this.statefulSet = postgresStatefulSet(this, 'Resource', {
      name: this.name,
      headlessServiceName: this.headlessServiceName,
      replicas: 1,
      selector: this.selector,
      component: 'primary',
      metadata: { ...this.metadata('primary'), name: this.name },
      podLabels: this.metadata('primary').labels ?? {},
      image: this.image,
      storage: this.storage,
      resources: this.resources,
      scheduling: spec.scheduling,
      cluster: this._clusterInfo,
      stateKeeper: { configMapName: this.stateConfigMapName, serviceAccountName: this.name },
    });
    stateKeeperAccess(this, { configMapName: this.stateConfigMapName, serviceAccountName: this.name, metadata: this.metadata('state') });
    headlessService(this, 'Headless', this.headlessServiceName, this.metadata('primary'), this.selector);

    kube(k8s.KubeService, this, 'Service', {
      metadata: { ...this.metadata('primary'), name: this.serviceName },
      spec: {
        type: 'ClusterIP',
        selector: Lazy.any({ produce: () => this.primarySelector() }) as any,
        ports: [{ name: 'postgresql', port: POSTGRES_PORT, targetPort: k8s.IntOrString.fromString('postgresql') }],
      },
    });

    disruptionBudgets(this, {
      name: this.name,
      primaryMetadata: this.metadata('primary'),
      standbyMetadata: this.metadata('replica'),
      memberLabels: this.memberLabels,
      primarySelector: () => this.primarySelector(),
      currentPrimary: this.currentPrimary,
      hasStandbys: () => this.replicaCount > 0,
    });

    if (spec.networkPolicy) {
      postgresNetworkPolicy(this, {
        name: this.name,
        metadata: this.metadata('postgresql'),
        memberLabels: this.memberLabels,
        clientLabels: this.clientLabels,
        metricsScrapers: this.hasExporter ? spec.metricsScrapers : undefined,
      });
    }

    this.node.addValidation({ validate: () => topologyErrors(this.spec, this.topology, this.derivedSettings().settings) });
  }

  /** Whether the pods run the metrics exporter sidecar. */
  private get hasExporter(): boolean {
    return this._clusterInfo.exporter !== undefined;
  }

  /** Every PostgreSQL pod of the cluster (primary and every registered replica group). */
  public get members(): string[] {
    return [this.podName, ...this.groups.flatMap((g) => g.podNames)];
  }

  /** The pods and volumes of every group registered so far. */
  private get topology(): Topology {
    return {
      members: this.members,
      // Any pod may become primary: WAL bounds follow the smallest PostgreSQL volume.
      smallestVolumeBytes: Math.min(this.spec.volumeBytes, ...this.groups.map((g) => g.volumeBytes)),
    };
  }

  /**
   * The host names PostgreSQL's certificate must carry (clients verify them with
   * `sslmode=verify-full`): every Service (read-write, headless, each replica group's read-only
   * and headless) and every pod's `<pod>.<statefulset>`, each also as `<name>.<namespace>.svc`
   * when the chart has a namespace.
   */
  public get tlsDnsNames(): string[] {
    const services = [this.serviceName, this.headlessServiceName, ...this.groups.flatMap((g) => g.serviceNames ?? [])];
    const pods = this.members.map((pod) => `${pod}.${pod.replace(/-[0-9]+$/, '')}`);
    const namespace = Chart.of(this).namespace;
    return [...services, ...pods].flatMap((name) => namespace ? [name, `${name}.${namespace}.svc`] : [name]);
  }

  /** Number of standbys over every replica group. */
  public get replicaCount(): number {
    return this.members.length - 1;
  }

  /** Every postgresql.conf setting with the reason for its value. */
  public get settings(): Setting[] {
    return [...this.derivedSettings().settings];
  }

  /**
   * The settings and their restart hash, computed once per set of replica groups: the checks,
   * the ConfigMap and every pod template read them.
   */
  private derivedSettings(): { settings: Setting[]; restartHash: string } {
    if (this.settingsCache?.groups !== this.groups.length) {
      const settings = clusterSettings(this.spec, this.topology);
      this.settingsCache = { groups: this.groups.length, settings, restartHash: restartSettingsHash(settings) };
    }
    return this.settingsCache;
  }

  /**
   * Registers a group of replica pods (called by StreamingReplica).
   * @internal
   */
  public _registerReplicaGroup(group: ReplicaGroupInfo): void {
    this.groups.push(group);
  }

  /**
   * Metadata of an object of this cluster.
   * @internal
   */
  public _metadataLabels(component: string, name = 'postgresql'): { [key: string]: string } {
    return metadataLabels({ name, instance: this.instance, component }, this.labels);
  }

  private metadata(component: string): { labels: { [key: string]: string } } {
    return { labels: this._metadataLabels(component) };
  }

  private primarySelector(): { [key: string]: string } {
    if (this.currentPrimary === this.podName) return this.selector;
    // After a promotion: the promoted pod, by the label Kubernetes puts on StatefulSet pods.
    return { ...this.memberLabels, [POD_NAME_LABEL]: this.currentPrimary };
  }

  private configMapData(): { [key: string]: string } {
    return {
      'postgresql.conf': renderPostgresqlConf(this.derivedSettings().settings, this.derivedSettings().restartHash),
      'pg_hba.conf': renderPgHba(this.replicationUser, this.ferretdbUser, this.hasExporter ? EXPORTER_ROLE : undefined,
        this.tlsSecretName !== undefined),
      'leader': this.currentPrimary + '\n',
      'members': this.members.join('\n') + '\n',
      ...postgresScripts(),
      ...this.hasExporter ? { [QUERIES_KEY]: asset(`observability/${QUERIES_KEY}`) } : {},
    };
  }
}
