import { ApiObject, ApiObjectMetadata } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { LeaseInfo, leaseContainer, leaseEnv } from './lease';
import { postgresScriptsHash } from './scripts';
import { DEFAULT_STORAGE_SIZE, Resources, Scheduling, StorageSettings } from '../../common';
import { DEFAULT_POSTGRES_RESOURCES, POSTGRES_PORT, POSTGRES_UID } from '../../postgres/config';
import { BOOTSTRAP_IMAGE } from '../../postgres/credentials-bootstrap';
import { TLS_KEYS } from '../../private/certificates';
import { kube } from '../../private/kube';
import { POSTGRES_CLUSTER_LABEL, SLOT_PREFIX } from '../../private/names';
import { API_TOKEN_DIR, API_TOKEN_MOUNT, apiTokenVolume, containerSecurityContext, SMALL_SIDECAR_RESOURCES, podSecurityContext, renderResources, spreadOverNodesAndZones } from '../../private/pod-spec';

export const CONFIG_DIR = '/etc/ferretdb-postgres';
export const SECRET_DIR = '/etc/ferretdb-postgres-secret';
/** The TLS Secret's `tls.crt`, `tls.key` and `ca.crt`, when PostgreSQL serves TLS. */
export const TLS_DIR = '/etc/ferretdb-postgres-tls';
export const RUN_DIR = '/var/run/postgresql';
/** Files between postgres.sh and the state and lease sidecars: an emptyDir without the server's socket. */
export const STATE_DIR = '/var/run/ferretdb-state';
export const DATA_MOUNT = '/var/lib/postgresql/data';
/** A subdirectory, so the volume's own root (lost+found) never is the data directory. */
export const PGDATA = `${DATA_MOUNT}/pgdata`;
export const AGENT_INTERVAL_SECONDS = 10;
/** Annotation of the PostgreSQL pod templates: a hash of the pods' scripts (scripts.ts). */
export const SCRIPTS_ANNOTATION = 'ferretdb.cdk8s.io/scripts';

const AGENT_RESOURCES: Resources = { cpuRequest: '10m', memoryRequest: '32Mi', memoryLimit: '64Mi' };

/** What every PostgreSQL pod of one cluster shares (owned by the primary). */
export interface PostgresClusterInfo {
  /** The primary's name: cluster label value. */
  readonly clusterName: string;
  readonly instance: string;
  readonly configMapName: string;
  readonly secretName: string;
  readonly primaryServiceName: string;
  readonly bootstrapPod: string;
  readonly replicationUser: string;
  readonly ferretdbUser: string;
  /** Bytes of replay lag above which a standby is not Ready. */
  readonly maxReplicationLagBytes: number;
  /** Seconds the preStop hook's fast shutdown may take (the grace period is 10 s more). */
  readonly shutdownTimeoutSeconds: number;
  /** The metrics sidecar of every PostgreSQL pod, if any. */
  readonly exporter?: k8s.Container;
  /** The Secret with the server certificate, its key and the CA, when PostgreSQL serves TLS. */
  readonly tlsSecretName?: string;
  /** The cluster's Lease: every pod runs a `lease` sidecar. */
  readonly lease: LeaseInfo;
}

/** The sidecar that records, through the Kubernetes API, that the cluster was initialised. */
export interface StateKeeper {
  /** The ConfigMap holding `systemIdentifier` once the cluster exists. */
  readonly configMapName: string;
  /** The ServiceAccount whose token only the sidecar mounts. */
  readonly serviceAccountName: string;
}

export interface PostgresStatefulSetOptions {
  readonly name: string;
  readonly headlessServiceName: string;
  readonly replicas: number;
  readonly selector: { [key: string]: string };
  readonly component: string;
  readonly metadata: ApiObjectMetadata;
  readonly podLabels: { [key: string]: string };
  readonly image: string;
  readonly storage: StorageSettings;
  readonly resources?: Resources;
  readonly scheduling?: Scheduling;
  readonly cluster: PostgresClusterInfo;
  /** Only on the bootstrap pod's StatefulSet: the only pod that may ever run initdb. */
  readonly stateKeeper?: StateKeeper;
}

function env(name: string, value: string): k8s.EnvVar {
  return { name, value };
}

/** The StatefulSet of a group of PostgreSQL pods (the primary's, or a replica group's). */
export function postgresStatefulSet(scope: Construct, id: string, o: PostgresStatefulSetOptions): ApiObject {
  const c = o.cluster;
  const mounts = {
    data: { name: 'data', mountPath: DATA_MOUNT },
    config: { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
    secret: { name: 'credentials', mountPath: SECRET_DIR, readOnly: true },
    run: { name: 'run', mountPath: RUN_DIR },
    state: { name: 'state', mountPath: STATE_DIR },
    tmp: { name: 'tmp', mountPath: '/tmp' },
    tls: { name: 'tls', mountPath: TLS_DIR, readOnly: true },
    shm: { name: 'shm', mountPath: '/dev/shm' },
  };
  const commonEnv: k8s.EnvVar[] = [
    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    env('PGDATA', PGDATA),
    env('CONFIG_DIR', CONFIG_DIR),
    env('SECRET_DIR', SECRET_DIR),
    env('RUN_DIR', RUN_DIR),
    env('STATE_DIR', STATE_DIR),
    env('PRIMARY_HOST', c.primaryServiceName),
    env('BOOTSTRAP_POD', c.bootstrapPod),
    env('REPLICATION_USER', c.replicationUser),
    env('FERRETDB_USER', c.ferretdbUser),
    env('SLOT_PREFIX', SLOT_PREFIX),
    env('MAX_REPLICATION_LAG_BYTES', String(c.maxReplicationLagBytes)),
    // `kubectl exec ... -- psql` reaches the local server as postgres over the socket.
    env('PGHOST', RUN_DIR),
    env('PGUSER', 'postgres'),
    // lib.sh: set only with TLS; the server's settings point there, every connection to another
    // member verifies its certificate against ca.crt (sslmode=verify-full).
    ...c.tlsSecretName ? [env('TLS_DIR', TLS_DIR)] : [],
  ];
  const lifecycle = (arg: string): k8s.ExecAction => ({ command: ['bash', `${CONFIG_DIR}/lifecycle.sh`, arg] });

  const postgres: k8s.Container = {
    name: 'postgres',
    image: o.image,
    imagePullPolicy: 'IfNotPresent',
    command: ['bash', `${CONFIG_DIR}/postgres.sh`],
    // STOP_TIMEOUT: lifecycle.sh stop (preStop) waits this long for the fast shutdown.
    env: [...commonEnv, env('STOP_TIMEOUT', String(c.shutdownTimeoutSeconds)), ...leaseEnv(c.lease)],
    ports: [{ name: 'postgresql', containerPort: POSTGRES_PORT, protocol: 'TCP' }],
    volumeMounts: [
      mounts.data, mounts.config, mounts.secret, mounts.run, mounts.state, mounts.tmp, mounts.shm, ...c.tlsSecretName ? [mounts.tls] : [],
    ],
    resources: renderResources(o.resources, DEFAULT_POSTGRES_RESOURCES),
    securityContext: containerSecurityContext(),
    // A clone (pg_basebackup) or crash recovery may take long: alive, not ready.
    startupProbe: { exec: lifecycle('live'), periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 360 },
    livenessProbe: { exec: lifecycle('live'), periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 6 },
    readinessProbe: { exec: lifecycle('ready'), periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 3 },
    lifecycle: { preStop: { exec: lifecycle('stop') } },
  };
  const agent: k8s.Container = {
    name: 'agent',
    image: o.image,
    imagePullPolicy: 'IfNotPresent',
    command: ['bash', `${CONFIG_DIR}/agent.sh`],
    env: [...commonEnv, env('AGENT_INTERVAL', String(AGENT_INTERVAL_SECONDS))],
    volumeMounts: [mounts.config, mounts.secret, mounts.run, mounts.tmp, ...c.tlsSecretName ? [mounts.tls] : []],
    resources: renderResources(undefined, AGENT_RESOURCES),
    securityContext: containerSecurityContext(),
  };
  // Every pod may be named primary: each takes part in the Lease, with the only API token it has
  // (the primary StatefulSet's pod: the state sidecar's too).
  const lease = leaseContainer(c.lease, { configDir: CONFIG_DIR, stateDir: STATE_DIR, mounts: [mounts.config, mounts.state] });
  const containers = [postgres, agent, lease];
  if (c.exporter) containers.push(c.exporter);
  const volumes: k8s.Volume[] = [
    { name: 'config', configMap: { name: c.configMapName, defaultMode: 0o444 } },
    { name: 'credentials', secret: { secretName: c.secretName, defaultMode: 0o440 } },
    { name: 'run', emptyDir: {} },
    { name: 'state', emptyDir: { sizeLimit: k8s.Quantity.fromString('1Mi') } },
    { name: 'tmp', emptyDir: {} },
    { name: 'shm', emptyDir: { medium: 'Memory', sizeLimit: k8s.Quantity.fromString('256Mi') } },
  ];
  if (c.tlsSecretName) {
    // root:999 (fsGroup) 0440: PostgreSQL accepts a key file owned by root and readable by its
    // group. Only the three keys, whatever else the Secret holds.
    volumes.push({
      name: 'tls',
      secret: {
        secretName: c.tlsSecretName,
        defaultMode: 0o440,
        items: [TLS_KEYS.cert, TLS_KEYS.key, TLS_KEYS.ca].map((key) => ({ key, path: key })),
      },
    });
  }
  if (o.stateKeeper) {
    // With the lease sidecar, the only containers with a Kubernetes API token (a projected volume,
    // not the automounted one).
    containers.push({
      name: 'state',
      image: BOOTSTRAP_IMAGE,
      imagePullPolicy: 'IfNotPresent',
      command: ['sh', `${CONFIG_DIR}/cluster-state.sh`],
      env: [
        { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        env('STATE_DIR', STATE_DIR),
        env('TOKEN_DIR', API_TOKEN_DIR),
        env('STATE_CONFIGMAP', o.stateKeeper.configMapName),
      ],
      volumeMounts: [mounts.config, mounts.state, API_TOKEN_MOUNT],
      resources: renderResources(undefined, SMALL_SIDECAR_RESOURCES),
      securityContext: containerSecurityContext(),
    });
  }
  volumes.push(apiTokenVolume());

  const scheduling = o.scheduling ?? {};
  const defaultAffinity: k8s.Affinity = {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [{
        weight: 100,
        podAffinityTerm: {
          topologyKey: 'kubernetes.io/hostname',
          labelSelector: { matchLabels: { [POSTGRES_CLUSTER_LABEL]: c.clusterName } },
        },
      }, {
        weight: 50,
        podAffinityTerm: {
          topologyKey: 'topology.kubernetes.io/zone',
          labelSelector: { matchLabels: { [POSTGRES_CLUSTER_LABEL]: c.clusterName } },
        },
      }],
    },
  };

  return kube(k8s.KubeStatefulSet, scope, id, {
    metadata: o.metadata,
    spec: {
      serviceName: o.headlessServiceName,
      replicas: o.replicas,
      // Any pod may be the primary: with OrderedReady a standby at ordinal 0 that cannot be Ready
      // without a primary would keep the controller from ever recreating the primary at ordinal k.
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'RollingUpdate' },
      selector: { matchLabels: o.selector },
      persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
      template: {
        metadata: {
          labels: { ...o.podLabels, ...o.selector, [POSTGRES_CLUSTER_LABEL]: c.clusterName },
          // Changed scripts (a library upgrade) change the template, so the StatefulSet rolls:
          // running shells would keep the old code. A changed restart-only setting does not: the
          // agents restart the servers in order, the primary last (agent.sh).
          annotations: {
            [SCRIPTS_ANNOTATION]: postgresScriptsHash(),
          },
        },
        spec: {
          serviceAccountName: o.stateKeeper?.serviceAccountName ?? c.lease.standbyServiceAccountName,
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: podSecurityContext(POSTGRES_UID),
          // The preStop hook's bound, plus time for SIGTERM to reach the rest.
          terminationGracePeriodSeconds: c.shutdownTimeoutSeconds + 10,
          containers,
          volumes,
          nodeSelector: scheduling.nodeSelector,
          tolerations: scheduling.tolerations,
          affinity: scheduling.affinity ?? defaultAffinity,
          topologySpreadConstraints: scheduling.affinity ? undefined : spreadOverNodesAndZones(o.selector),
        },
      },
      volumeClaimTemplates: [{
        metadata: { name: 'data' },
        spec: {
          accessModes: ['ReadWriteOnce'],
          storageClassName: o.storage.storageClassName,
          resources: { requests: { storage: k8s.Quantity.fromString(o.storage.size ?? DEFAULT_STORAGE_SIZE) } },
        },
      }],
    },
  });
}

/** A headless Service giving each pod of a StatefulSet a DNS name. */
export function headlessService(scope: Construct, id: string, name: string, metadata: ApiObjectMetadata,
  selector: { [key: string]: string }): ApiObject {
  return kube(k8s.KubeService, scope, id, {
    metadata: { ...metadata, name },
    spec: {
      clusterIp: 'None',
      publishNotReadyAddresses: true,
      selector,
      ports: [{ name: 'postgresql', port: POSTGRES_PORT, targetPort: k8s.IntOrString.fromString('postgresql') }],
    },
  });
}
