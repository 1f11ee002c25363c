import { ApiObject, Chart, Duration } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct, IConstruct } from 'constructs';
import { CloudNativePGCluster } from './backends/cloudnative-pg/cluster';
import { PostgresPrimary } from './backends/statefulset/primary';
import { StreamingReplica } from './backends/statefulset/replica';
import { checkClusterProps } from './cluster-props';
import { Resources, Scheduling, StorageSettings } from './common';
import { ferretdbFrontend, ferretdbLabels, ferretdbNetworkPolicy, serviceHostNames } from './ferretdb/frontend';
import { MONGODB_PORT, ReadService } from './ferretdb/read-service';
import { FerretDBTls } from './ferretdb/tls';
import { MonitoringOptions } from './observability/monitoring';
import { monitoringObjects } from './observability/objects';
import { PostgresConnection } from './postgres/connection';
import { Credentials } from './postgres/credentials';
import { ReplicationMode } from './postgres/replication-mode';
import { WalSettings } from './postgres/settings';
import { PostgresTls } from './postgres/tls';
import { PostgresBackend } from './postgres-backend';

export { MAX_CLUSTER_NAME } from './cluster-props';
export { FERRETDB_LABEL } from './ferretdb/frontend';

/**
 * Props of a FerretDB cluster.
 */
export interface FerretDBClusterProps {
  /**
   * Where PostgreSQL runs: StatefulSets managed by this library, or a CloudNativePG `Cluster`
   * (automatic failover; needs the operator).
   *
   * @default PostgresBackend.statefulSets()
   */
  readonly backend?: PostgresBackend;
  /**
   * Base name of every object (`<name>-rw`, `<name>-ro`, `<name>-pg-primary`, ...).
   *
   * @default - derived from the construct path (at most 40 characters)
   */
  readonly name?: string;
  /**
   * Number of streaming replicas (PostgreSQL hot standbys). 0 is allowed: the read Service then
   * serves reads from the primary side.
   *
   * @default 2
   */
  readonly replicas?: number;
  /**
   * @default ReplicationMode.async()
   */
  readonly replicationMode?: ReplicationMode;
  /**
   * With `PostgresBackend.cloudNativePG()` the Secret is of type `kubernetes.io/basic-auth`
   * (keys `username`, `password`).
   *
   * @default Credentials.fromGeneratedSecret()
   */
  readonly credentials?: Credentials;
  /**
   * Volume of each PostgreSQL pod.
   *
   * @default - 10Gi, the default StorageClass
   */
  readonly storage?: StorageSettings;
  /**
   * @default "ghcr.io/ferretdb/postgres-documentdb:17-0.107.0-ferretdb-2.7.0"
   */
  readonly postgresImage?: string;
  /**
   * @default "ghcr.io/ferretdb/ferretdb:2.7.0"
   */
  readonly ferretdbImage?: string;
  /**
   * @default - requests 250m CPU and 512Mi memory, memory limit 1Gi
   */
  readonly postgresResources?: Resources;
  /**
   * @default - requests 100m CPU and 128Mi memory, memory limit 512Mi
   */
  readonly ferretdbResources?: Resources;
  /**
   * @default - see WalSettings
   */
  readonly wal?: WalSettings;
  /**
   * Extra PostgreSQL parameters for every server.
   *
   * @default - none
   */
  readonly parameters?: { [name: string]: string };
  /**
   * FerretDB pods in front of the primary (the write Service).
   *
   * @default 2
   */
  readonly ferretdbWriterReplicas?: number;
  /**
   * FerretDB pods in front of the replicas (the read Service). Ignored with 0 replicas.
   *
   * @default 2
   */
  readonly ferretdbReaderReplicas?: number;
  /**
   * Connections each FerretDB pod may open to PostgreSQL (`pool_max_conns` in its URL).
   * PostgreSQL's `max_connections` is derived from it: each FerretDB side's pods plus one
   * rolling-update surge pod, times this, summed over both sides (a promoted replica serves
   * both), plus 30.
   *
   * @default 20
   */
  readonly ferretdbPoolSize?: number;
  /**
   * `max_connections` of every PostgreSQL server. A value too small for the FerretDB pools
   * (see `ferretdbPoolSize`) is a synth-time error.
   *
   * @default - derived from the FerretDB pods and `ferretdbPoolSize`
   */
  readonly maxConnections?: number;
  /**
   * A standby serves reads only while it streams and has replayed WAL to within this distance
   * of the primary's (a PostgreSQL size). With `PostgresBackend.cloudNativePG()` this is the
   * `maximumLag` of CloudNativePG's `streaming` readiness probe, which measures replay against
   * the WAL the standby has received.
   *
   * @default - "64MB" with StatefulSets; "1GB" with CloudNativePG (a bulk load's replay backlog)
   */
  readonly maxReplicationLag?: string;
  /**
   * Node selector, tolerations and affinity of every pod.
   *
   * @default - each group's pods spread over nodes
   */
  readonly scheduling?: Scheduling;
  /**
   * The pod that runs as PostgreSQL primary; see the README's promotion runbook.
   *
   * Only with `PostgresBackend.statefulSets()`.
   *
   * @default - the primary StatefulSet's pod 0
   */
  readonly currentPrimary?: string;
  /**
   * NetworkPolicies: only `allowedClients` reach FerretDB (27017), only FerretDB and the
   * PostgreSQL pods reach PostgreSQL (5432), `metricsScrapers` reach 8088.
   *
   * @default true
   */
  readonly networkPolicy?: boolean;
  /**
   * Who may connect to FerretDB (27017).
   *
   * @default - every pod in the namespace
   */
  readonly allowedClients?: k8s.NetworkPolicyPeer[];
  /**
   * Namespaces whose pods may connect to FerretDB (27017), besides `allowedClients`.
   *
   * @default - none: only `allowedClients` (by default the cluster's own namespace)
   */
  readonly allowedNamespaces?: string[];
  /**
   * Who may scrape FerretDB's metrics (8088, /debug/metrics) and, with `monitoring`, the
   * PostgreSQL exporters (9187).
   *
   * @default - nobody (kubelet probes are not affected)
   */
  readonly metricsScrapers?: k8s.NetworkPolicyPeer[];
  /**
   * PostgreSQL metrics (a postgres_exporter sidecar in every PostgreSQL pod) and, opt-in,
   * PodMonitors, a PrometheusRule and a Grafana dashboard. See the README's "Metrics and alerts".
   * With `PostgresBackend.cloudNativePG()` only `podMonitor`, `prometheusRule` and `labels` apply
   * (CloudNativePG runs its own exporter on 9187): PodMonitors for FerretDB and for the instances,
   * which need `metricsScrapers` while `networkPolicy` is on, and the CloudNativePG cluster's
   * PrometheusRule (its backups, WAL archiving and volumes; README "CloudNativePG alerts").
   *
   * @default - no exporter, no monitoring objects
   */
  readonly monitoring?: MonitoringOptions;
  /**
   * TLS for every network connection to PostgreSQL (replication, member checks, FerretDB), from
   * a Secret or a cert-manager Certificate; FerretDB and the standbys verify the server with
   * `sslmode=verify-full`. See the README's "TLS". Only with `PostgresBackend.statefulSets()`
   * (CloudNativePG always serves TLS with its own certificates).
   *
   * @default - no TLS
   */
  readonly postgresTls?: PostgresTls;
  /**
   * How long a PostgreSQL pod's fast shutdown may take (see `PostgresPrimaryProps.shutdownTimeout`).
   * Only with `PostgresBackend.statefulSets()` (CloudNativePG stops its instances itself).
   *
   * @default Duration.minutes(5)
   */
  readonly postgresShutdownTimeout?: Duration;
  /**
   * The PostgreSQL primary's Lease duration (see `PostgresPrimaryProps.leaseDuration`): a primary
   * cut off from the Kubernetes API stops taking writes within 2/3 of it, and a promotion while the
   * former primary cannot be reached waits for it. Only with `PostgresBackend.statefulSets()`
   * (CloudNativePG runs its own leader election).
   *
   * @default Duration.seconds(15)
   */
  readonly postgresLeaseDuration?: Duration;
  /**
   * TLS for MongoDB clients, from a Secret or a cert-manager Certificate: FerretDB serves the
   * Services' port 27017 over TLS only (clients connect with `tls=true`), and a renewed
   * certificate rolls the FerretDB pods one at a time. Works with either backend. See the
   * README's "TLS".
   *
   * @default - no TLS: MongoDB clients connect in plain text
   */
  readonly ferretdbTls?: FerretDBTls;
  /**
   * FerretDB's anonymous usage telemetry.
   *
   * @default false
   */
  readonly telemetry?: boolean;
  /**
   * Extra labels for every object's metadata (never used in selectors).
   *
   * @default - none
   */
  readonly labels?: { [key: string]: string };
}

/**
 * A replicated FerretDB: a PostgreSQL primary with the DocumentDB extension, N hot standbys fed
 * by WAL streaming through one physical replication slot each, FerretDB Deployments in front of
 * each side, and separate read-write and read-only Services.
 *
 * @example
 * new ferretdb.FerretDBCluster(chart, 'orders', {
 *   name: 'orders',
 *   replicas: 2,
 *   replicationMode: ferretdb.ReplicationMode.synchronousQuorum(1),
 *   credentials: ferretdb.Credentials.fromSecret('orders-credentials'),
 * });
 *
 * new ferretdb.FerretDBCluster(chart, 'catalog', {
 *   name: 'catalog',
 *   replicas: 2,
 *   backend: ferretdb.PostgresBackend.cloudNativePG(),
 * });
 */
export class FerretDBCluster extends Construct {
  /** Base name of every object. */
  public readonly name: string;
  /** The FerretDB read-write Service (27017): writes and reads on the primary. */
  public readonly writeServiceName: string;
  /** The FerretDB read-only Service (27017): reads on the replicas (the primary with 0 replicas). */
  public readonly readServiceName: string;
  /** MongoDB wire protocol port of both Services. */
  public readonly port: number = MONGODB_PORT;
  public readonly readService: ReadService;
  /**
   * The Secret with FerretDB's password: `replication-password` and `ferretdb-password`
   * (StatefulSets), or `username` and `password` (CloudNativePG).
   */
  public readonly secretName: string;
  /** The PostgreSQL role (and MongoDB user) FerretDB connects with. */
  public readonly username: string;
  /** How FerretDB reaches PostgreSQL (the backend's Services, role, Secret, CA). */
  public readonly postgres: PostgresConnection;
  /** The CloudNativePG cluster, with `PostgresBackend.cloudNativePG()`. */
  public readonly cloudNativePG?: CloudNativePGCluster;
  private readonly statefulSetPrimary?: PostgresPrimary;
  private readonly statefulSetReplicas?: StreamingReplica;

  constructor(scope: Construct, id: string, props: FerretDBClusterProps = {}) {
    super(scope, id);
    const spec = checkClusterProps(this, props);
    this.name = spec.name;

    // The backend builds PostgreSQL and says how FerretDB reaches it.
    const bound = spec.backend._bind(this, spec.backendContext);
    this.postgres = bound.connection;
    this.statefulSetPrimary = bound.primary;
    this.statefulSetReplicas = bound.replicas;
    this.cloudNativePG = bound.cloudNativePG;
    this.secretName = this.postgres.secretName;
    this.username = this.postgres.username;

    // FerretDB in front of it, through the connection only.
    const frontend = ferretdbFrontend(this, {
      name: this.name,
      postgres: this.postgres,
      replicas: spec.replicas,
      writers: spec.writers,
      readers: spec.readers,
      image: spec.ferretdbImage,
      poolSize: spec.poolSize,
      ferretdbTls: spec.ferretdbTls,
      telemetry: spec.telemetry,
      resources: props.ferretdbResources,
      scheduling: props.scheduling,
      labels: props.labels,
    });
    this.writeServiceName = frontend.writeServiceName;
    this.readService = frontend.readService;
    this.readServiceName = this.readService.serviceName;

    if (props.monitoring) {
      const primary = this.statefulSetPrimary;
      monitoringObjects(this, props.monitoring, {
        name: this.name,
        // The StatefulSet backend's exporters; CloudNativePG monitors its own instances.
        postgres: primary && {
          clusterName: primary.name,
          pods: () => primary.members,
          maxReplicationLagBytes: primary._clusterInfo.maxReplicationLagBytes,
        },
        ferretdbLabels: frontend.podLabels,
        ferretdbDeployments: frontend.deployments,
        metadataLabels: (component: string) => ferretdbLabels(this.name, component, props.labels),
      });
    }

    // One check per chart (a check per cluster would scan the chart once per cluster).
    const chart = Chart.of(this);
    if (!CHECKED_CHARTS.has(chart)) {
      CHECKED_CHARTS.add(chart);
      this.node.addValidation({ validate: () => duplicateNames(chart) });
    }

    if (spec.networkPolicy) {
      ferretdbNetworkPolicy(this, {
        name: this.name,
        frontend,
        allowedClients: spec.allowedClients,
        allowedNamespaces: spec.allowedNamespaces,
        metricsScrapers: props.metricsScrapers,
        labels: props.labels,
      });
    }
  }

  /** The PostgreSQL primary; only with `PostgresBackend.statefulSets()` (the default). */
  public get primary(): PostgresPrimary {
    if (!this.statefulSetPrimary) throw new Error(`FerretDBCluster ${this.name}: primary exists only with PostgresBackend.statefulSets(); use cloudNativePG`);
    return this.statefulSetPrimary;
  }

  /**
   * The hot standbys (a StatefulSet with `replicas` pods; none with 0); only with
   * `PostgresBackend.statefulSets()` (the default).
   */
  public get replicas(): StreamingReplica {
    if (!this.statefulSetReplicas) throw new Error(`FerretDBCluster ${this.name}: replicas exists only with PostgresBackend.statefulSets(); use cloudNativePG`);
    return this.statefulSetReplicas;
  }

  /**
   * The host names FerretDB's listener certificate must carry (with `ferretdbTls`): both
   * Services, each also as `<name>.<namespace>`, `<name>.<namespace>.svc` and
   * `<name>.<namespace>.svc.cluster.local` when the chart has a namespace.
   */
  public get tlsDnsNames(): string[] {
    return serviceHostNames([this.writeServiceName, this.readServiceName], Chart.of(this).namespace);
  }

  /** `host:port` of the read-write endpoint inside the namespace. */
  public get writeEndpoint(): string {
    return `${this.writeServiceName}:${this.port}`;
  }

  /** `host:port` of the read-only endpoint inside the namespace. */
  public get readEndpoint(): string {
    return `${this.readServiceName}:${this.port}`;
  }
}

const CHECKED_CHARTS = new WeakSet<Chart>();

/** Two objects of one kind with one name in a chart (for example clusters "app" and "app-pg"). */
function duplicateNames(chart: Chart): string[] {
  const owners = new Map<string, string[]>();
  for (const c of chart.node.findAll()) {
    if (!(c instanceof ApiObject)) continue;
    const key = `${c.kind} ${c.metadata.namespace ?? ''}/${c.name}`;
    let cluster: IConstruct | undefined = c.node.scope;
    while (cluster && !(cluster instanceof FerretDBCluster)) cluster = cluster.node.scope;
    const owner = cluster instanceof FerretDBCluster ? cluster.name : c.node.path;
    const names = owners.get(key);
    if (names) names.push(owner);
    else owners.set(key, [owner]);
  }
  return [...owners.entries()].filter(([, names]) => names.length > 1).map(([key, names]) =>
    `Invalid name: ${names.map((n) => JSON.stringify(n)).join(' and ')}. Expected names that do not collide: two objects would be ${key}.`);
}
