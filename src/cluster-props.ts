import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { checkLeaseDuration } from './backends/statefulset/lease';
import { checkShutdownTimeout } from './backends/statefulset/primary-props';
import type { FerretDBClusterProps } from './cluster';
import { DEFAULT_FERRETDB_IMAGE } from './ferretdb/deployment';
import { FerretDBTls } from './ferretdb/tls';
import { CONNECTION_HEADROOM, neededConnections } from './postgres/config';
import { Credentials } from './postgres/credentials';
import { BackendContext, PostgresBackend } from './postgres-backend';
import { defaultName, validateName } from './private/names';
import { checkResources } from './private/pod-spec';
import { checkImage, checkInteger, invalid } from './private/validation';

/** Longest cluster name: every derived name stays valid (StatefulSets at most 52 characters). */
export const MAX_CLUSTER_NAME = 40;

/**
 * FerretDBCluster's props, checked and with their defaults: what the construct renders from.
 * The backend's own props are checked by the backend when it is bound (`backendContext`).
 */
export interface CheckedClusterProps {
  readonly name: string;
  readonly replicas: number;
  readonly writers: number;
  readonly readers: number;
  readonly ferretdbImage: string;
  /** `pool_max_conns` of each FerretDB pod. */
  readonly poolSize: number;
  readonly networkPolicy: boolean;
  readonly allowedClients: k8s.NetworkPolicyPeer[];
  readonly allowedNamespaces: string[];
  readonly ferretdbTls?: FerretDBTls;
  readonly telemetry: boolean;
  readonly backend: PostgresBackend;
  /** What the backend builds PostgreSQL from. */
  readonly backendContext: BackendContext;
}

/**
 * Checks every prop of FerretDBCluster that the cluster itself uses, in one place, before anything
 * is built; throws an error naming the prop and the value.
 */
export function checkClusterProps(scope: Construct, props: FerretDBClusterProps): CheckedClusterProps {
  const name = props.name !== undefined ? validateName('name', props.name, MAX_CLUSTER_NAME) : defaultName(scope, MAX_CLUSTER_NAME);
  const replicas = checkInteger('replicas', props.replicas ?? 2, 0, 100);
  const writers = checkInteger('ferretdbWriterReplicas', props.ferretdbWriterReplicas ?? 2, 1, 100);
  const readers = checkInteger('ferretdbReaderReplicas', props.ferretdbReaderReplicas ?? 2, 1, 100);
  const ferretdbImage = checkImage('ferretdbImage', props.ferretdbImage ?? DEFAULT_FERRETDB_IMAGE);
  checkResources('ferretdbResources', props.ferretdbResources);
  // Checked here too, so that errors name the cluster's props.
  checkResources('postgresResources', props.postgresResources);
  if (props.postgresImage !== undefined) checkImage('postgresImage', props.postgresImage);
  if (props.allowedClients !== undefined && props.allowedClients.length === 0) {
    // An empty `from` list means "every source" to Kubernetes.
    throw invalid('allowedClients', props.allowedClients, 'at least one peer (omit the prop to allow every pod of the namespace)');
  }
  if (props.monitoring?.exporterImage !== undefined) checkImage('monitoring.exporterImage', props.monitoring.exporterImage);
  checkResources('monitoring.exporterResources', props.monitoring?.exporterResources);
  const networkPolicy = props.networkPolicy ?? true;
  const poolSize = checkInteger('ferretdbPoolSize', props.ferretdbPoolSize ?? 20, 1, 1000);
  const clientConnections = neededConnections(poolSize, replicas > 0 ? [writers, readers] : [writers]) - CONNECTION_HEADROOM;
  for (const [i, ns] of (props.allowedNamespaces ?? []).entries()) {
    if (typeof ns !== 'string' || ns.length > 63 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns)) {
      throw invalid(`allowedNamespaces[${i}]`, ns, 'a namespace name (a DNS-1123 label: lower-case letters, digits and "-", at most 63 characters)');
    }
  }
  if (props.postgresShutdownTimeout !== undefined) checkShutdownTimeout('postgresShutdownTimeout', props.postgresShutdownTimeout);
  if (props.postgresLeaseDuration !== undefined) checkLeaseDuration('postgresLeaseDuration', props.postgresLeaseDuration);
  const backend = PostgresBackend._check('backend', props.backend ?? PostgresBackend.statefulSets());
  const ferretdbTls = props.ferretdbTls === undefined ? undefined : FerretDBTls._check('ferretdbTls', props.ferretdbTls);
  return {
    name,
    replicas,
    writers,
    readers,
    ferretdbImage,
    poolSize,
    networkPolicy,
    allowedClients: props.allowedClients ?? [{ podSelector: {} }],
    allowedNamespaces: props.allowedNamespaces ?? [],
    ferretdbTls,
    telemetry: props.telemetry ?? false,
    backend,
    backendContext: {
      name,
      replicas,
      credentials: clusterCredentials(name, props.credentials),
      networkPolicy,
      replicationMode: props.replicationMode,
      storage: props.storage,
      image: props.postgresImage,
      resources: props.postgresResources,
      clientConnections,
      maxConnections: props.maxConnections,
      maxReplicationLag: props.maxReplicationLag,
      wal: props.wal,
      parameters: props.parameters,
      scheduling: props.scheduling,
      currentPrimary: props.currentPrimary,
      metricsScrapers: props.metricsScrapers,
      labels: props.labels,
      monitoring: props.monitoring,
      tls: props.postgresTls,
      shutdownTimeout: props.postgresShutdownTimeout,
      leaseDuration: props.postgresLeaseDuration,
    },
  };
}

/** The generated Secret is called `<cluster name>-credentials` unless named. */
function clusterCredentials(name: string, credentials: Credentials | undefined): Credentials {
  const given = credentials === undefined ? undefined : Credentials._check('credentials', credentials);
  if (given && (!given.generated || given.secretName !== undefined)) return given;
  return Credentials.fromGeneratedSecret({ secretName: `${name}-credentials` });
}
