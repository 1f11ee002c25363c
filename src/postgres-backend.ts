import { Duration } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { CloudNativePGCluster } from './backends/cloudnative-pg/cluster';
import { CloudNativePGOptions } from './backends/cloudnative-pg/options';
import { PostgresPrimary } from './backends/statefulset/primary';
import { StreamingReplica } from './backends/statefulset/replica';
import { Resources, Scheduling, StorageSettings } from './common';
import { MonitoringOptions } from './observability/monitoring';
import { PostgresConnection } from './postgres/connection';
import { Credentials, SECRET_KEYS } from './postgres/credentials';
import { ReplicationMode } from './postgres/replication-mode';
import { WalSettings } from './postgres/settings';
import { PostgresTls } from './postgres/tls';
import { TLS_KEYS } from './private/certificates';
import { invalid } from './private/validation';

/**
 * What FerretDBCluster hands to its backend (its own props, checked).
 * @internal
 */
export interface BackendContext {
  readonly name: string;
  readonly replicas: number;
  readonly credentials: Credentials;
  readonly networkPolicy: boolean;
  readonly replicationMode?: ReplicationMode;
  readonly storage?: StorageSettings;
  readonly image?: string;
  readonly resources?: Resources;
  readonly wal?: WalSettings;
  readonly parameters?: { [name: string]: string };
  /** Connections the FerretDB pools may open to one server (sizes `max_connections`). */
  readonly clientConnections: number;
  readonly maxConnections?: number;
  readonly maxReplicationLag?: string;
  readonly scheduling?: Scheduling;
  readonly currentPrimary?: string;
  readonly metricsScrapers?: k8s.NetworkPolicyPeer[];
  readonly labels?: { [key: string]: string };
  readonly monitoring?: MonitoringOptions;
  readonly tls?: PostgresTls;
  readonly shutdownTimeout?: Duration;
  readonly leaseDuration?: Duration;
}

/**
 * What a backend built: the connection FerretDB uses, and its constructs.
 * @internal
 */
export interface BoundBackend {
  readonly connection: PostgresConnection;
  readonly primary?: PostgresPrimary;
  readonly replicas?: StreamingReplica;
  readonly cloudNativePG?: CloudNativePGCluster;
}

/**
 * Where FerretDBCluster's PostgreSQL runs.
 */
export class PostgresBackend {
  /**
   * A primary StatefulSet and a StatefulSet of hot standbys, managed by their own scripts
   * (PostgresPrimary + StreamingReplica). Needs nothing installed; failover is the README's
   * manual promotion runbook.
   */
  public static statefulSets(): PostgresBackend {
    return new PostgresBackend('statefulSets', bindStatefulSets);
  }

  /**
   * A CloudNativePG `Cluster` named `<name>-pg` (CloudNativePGCluster): automatic failover by
   * the operator, TLS to PostgreSQL, optional metrics, backups and point-in-time recovery.
   * Needs the CloudNativePG operator (and the Barman Cloud plugin for backups).
   */
  public static cloudNativePG(options: CloudNativePGOptions = {}): PostgresBackend {
    if (options === null || typeof options !== 'object') {
      throw invalid('backend (PostgresBackend.cloudNativePG options)', options, 'CloudNativePG options ({ failoverDelay, backup, ... })');
    }
    return new PostgresBackend('cloudNativePG', (scope, ctx) => bindCloudNativePG(scope, ctx, options));
  }

  /**
   * @internal
   */
  public static _check(prop: string, value: unknown): PostgresBackend {
    if (!(value instanceof PostgresBackend)) {
      throw invalid(prop, value, 'PostgresBackend.statefulSets() or PostgresBackend.cloudNativePG()');
    }
    return value;
  }

  /** "statefulSets" or "cloudNativePG". */
  public readonly kind: string;

  private constructor(kind: string, private readonly binder: (scope: Construct, ctx: BackendContext) => BoundBackend) {
    this.kind = kind;
  }

  /**
   * Builds the backend's constructs in `scope` and returns how FerretDB connects.
   * @internal
   */
  public _bind(scope: Construct, ctx: BackendContext): BoundBackend {
    return this.binder(scope, ctx);
  }
}

/** The cluster's props that both backends take as they are. */
function sharedProps(ctx: BackendContext) {
  return {
    instance: ctx.name,
    image: ctx.image,
    storage: ctx.storage,
    resources: ctx.resources,
    scheduling: ctx.scheduling,
    credentials: ctx.credentials,
    replicationMode: ctx.replicationMode,
    clientConnections: ctx.clientConnections,
    maxConnections: ctx.maxConnections,
    maxReplicationLag: ctx.maxReplicationLag,
    wal: ctx.wal,
    parameters: ctx.parameters,
    networkPolicy: ctx.networkPolicy,
    metricsScrapers: ctx.metricsScrapers,
    labels: ctx.labels,
  };
}

function bindStatefulSets(scope: Construct, ctx: BackendContext): BoundBackend {
  const primary = new PostgresPrimary(scope, 'Primary', {
    ...sharedProps(ctx),
    name: `${ctx.name}-pg-primary`,
    serviceName: `${ctx.name}-pg-rw`,
    currentPrimary: ctx.currentPrimary,
    metricsExporter: ctx.monitoring && { image: ctx.monitoring.exporterImage, resources: ctx.monitoring.exporterResources },
    tls: ctx.tls,
    shutdownTimeout: ctx.shutdownTimeout,
    leaseDuration: ctx.leaseDuration,
  });
  const replicas = new StreamingReplica(scope, 'Replicas', {
    primary,
    replicas: ctx.replicas,
    name: `${ctx.name}-pg-replica`,
    serviceName: `${ctx.name}-pg-ro`,
    scheduling: ctx.scheduling,
  });
  return {
    connection: {
      readWriteHost: primary.serviceName,
      readOnlyHost: replicas.serviceName,
      port: primary.port,
      username: primary.ferretdbUser,
      secretName: primary.secretName,
      passwordKey: SECRET_KEYS.ferretdbPassword,
      clientLabels: primary.clientLabels,
      ...primary.tlsSecretName !== undefined ? { caSecretName: primary.tlsSecretName, caKey: TLS_KEYS.ca } : {},
    },
    primary,
    replicas,
  };
}

function bindCloudNativePG(scope: Construct, ctx: BackendContext, options: CloudNativePGOptions): BoundBackend {
  if (ctx.currentPrimary !== undefined) {
    throw invalid('currentPrimary', ctx.currentPrimary,
      'no value with PostgresBackend.cloudNativePG(): the operator chooses the primary (switch over with `kubectl cnpg promote`)');
  }
  if (ctx.shutdownTimeout !== undefined) {
    throw invalid('postgresShutdownTimeout', `${ctx.shutdownTimeout.toSeconds({ integral: false })}s`,
      'no value with PostgresBackend.cloudNativePG(): CloudNativePG stops its instances itself');
  }
  if (ctx.leaseDuration !== undefined) {
    throw invalid('postgresLeaseDuration', `${ctx.leaseDuration.toSeconds({ integral: false })}s`,
      'no value with PostgresBackend.cloudNativePG(): CloudNativePG runs its own leader election');
  }
  if (ctx.tls !== undefined) {
    throw invalid('postgresTls', ctx.tls,
      'no value with PostgresBackend.cloudNativePG(): CloudNativePG always serves TLS with its own CA (FerretDB verifies it)');
  }
  // CloudNativePG runs its own exporter (9187) with its own metrics: the dashboard and the
  // thresholds are written for this library's exporter queries; the PrometheusRule has the
  // backend's own alerts (CloudNativePGCluster).
  for (const key of ['exporterImage', 'exporterResources', 'dashboard', 'alertThresholds'] as const) {
    const value = ctx.monitoring?.[key];
    if (value !== undefined && value !== false) {
      throw invalid(`monitoring.${key}`, value,
        'no value with PostgresBackend.cloudNativePG(): CloudNativePG runs its own exporter (only monitoring.podMonitor, prometheusRule and labels apply)');
    }
  }
  const cluster = new CloudNativePGCluster(scope, 'Postgres', {
    ...options,
    ...sharedProps(ctx),
    podMonitor: (options.podMonitor ?? false) || (ctx.monitoring?.podMonitor ?? false),
    podMonitorLabels: ctx.monitoring?.labels,
    prometheusRule: (options.prometheusRule ?? false) || (ctx.monitoring?.prometheusRule ?? false),
    prometheusRuleLabels: ctx.monitoring?.labels,
    name: `${ctx.name}-pg`,
    replicas: ctx.replicas,
  });
  return { connection: cluster.connection, cloudNativePG: cluster };
}
