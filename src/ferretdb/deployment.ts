import { ApiObject } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { CertificateWatch, certificateWatchPodParts } from './certificate-watch';
import { Resources, Scheduling } from '../common';
import { MONGODB_PORT } from './read-service';
import { TLS_KEYS } from '../private/certificates';
import { kube } from '../private/kube';
import { containerSecurityContext, podSecurityContext, renderResources, spreadOverNodes } from '../private/pod-spec';

/** The pinned FerretDB v2 image (built FROM scratch, runs as uid 1000). */
export const DEFAULT_FERRETDB_IMAGE = 'ghcr.io/ferretdb/ferretdb:2.7.0';
export const FERRETDB_UID = 1000;
/** FerretDB's debug handler: /debug/livez, /debug/readyz and /debug/metrics (Prometheus). */
export const METRICS_PORT = 8088;
/** FerretDB's TLS listener, with `ferretdbTls` (the Services' 27017 forwards to it). */
export const MONGODB_TLS_PORT = 27018;
/** Where the PostgreSQL CA certificate is mounted when the backend serves TLS. */
export const CA_DIR = '/etc/ferretdb/postgres-ca';
/**
 * Where the certificate-watch sidecar (only it) mounts the password FerretDB reads as PGPASSWORD
 * at start, to roll the pods when it changes.
 */
export const PASSWORD_WATCH_DIR = '/etc/ferretdb/postgres-password';
/** Where the listener's certificate and key are mounted, with `ferretdbTls`. */
export const LISTENER_TLS_DIR = '/etc/ferretdb/tls';
/**
 * How long a FerretDB pod may stay unready (its PostgreSQL unreachable through its pool) before
 * the kubelet restarts it: longer than a failover (CloudNativePG promotes within seconds to a
 * minute), so a normal failover restarts nothing.
 */
export const READINESS_RESTART_SECONDS = 120;
export const DEFAULT_FERRETDB_RESOURCES: Resources = { cpuRequest: '100m', memoryRequest: '128Mi', memoryLimit: '512Mi' };

export interface FerretDBDeploymentOptions {
  readonly name: string;
  readonly replicas: number;
  readonly selector: { [key: string]: string };
  readonly podLabels: { [key: string]: string };
  readonly metadataLabels: { [key: string]: string };
  readonly image: string;
  /** The PostgreSQL Service this side connects to (read-write or read-only). */
  readonly postgresHost: string;
  /**
   * A Service tried after `postgresHost` when no connection to it can be made (the readers:
   * the primary's, while no standby is behind the read-only Service).
   */
  readonly postgresFallbackHost?: string;
  readonly postgresUser: string;
  /** `pool_max_conns`: connections this pod may open to PostgreSQL. */
  readonly poolSize: number;
  /** Every transaction read-only (the reader side), even if its Service ever reaches a primary. */
  readonly readOnly: boolean;
  readonly secretName: string;
  /** Key of the password in `secretName`. */
  readonly passwordKey: string;
  /** Verify the server's certificate against this CA (`sslmode=verify-full`). */
  readonly tls?: { readonly caSecretName: string; readonly caKey: string };
  /**
   * Serve MongoDB clients over TLS only, with `tls.crt` and `tls.key` of this Secret (the plain
   * listener stays on the pod's loopback).
   */
  readonly listenerTls?: { readonly secretName: string };
  /**
   * Roll the Deployment when a file FerretDB reads at start changes: its PostgreSQL password
   * (PGPASSWORD) and, with `tls` or `listenerTls`, its TLS files.
   */
  readonly certificateWatch: CertificateWatch;
  readonly telemetry: boolean;
  readonly resources?: Resources;
  readonly scheduling?: Scheduling;
}

/**
 * How FerretDB's driver (pgx 5.7) connects, whatever the backend:
 * - `connect_timeout`: a connection attempt to an unreachable server (a lost node, dropped
 *   packets) fails after this many seconds instead of waiting for TCP's retransmissions;
 * - `pool_max_conn_lifetime` (+ jitter, so the pool is not emptied at once): every connection is
 *   replaced within this bound, through the Service again, so readers move back to standbys
 *   that rejoined `-ro` and writers leave a server that is no longer the primary; pgxpool's own
 *   default is an hour;
 * - `target_session_attrs`: writers accept only a server that takes writes (`read-write`: a
 *   demoted or not yet promoted server behind `-rw` is refused, and the pool retries), readers
 *   prefer a standby (`prefer-standby`);
 * - readers list two hosts, `-ro` then `-rw`: pgx tries them in order for each new connection,
 *   moving on when a host refuses, times out (`connect_timeout`) or fails the session check, and
 *   with `prefer-standby` keeps a primary only when no host gave a standby. So while `-ro` has no
 *   endpoint (every standby down or lagging) readers read from the primary, still read-only,
 *   and their connections return to standbys within the connection lifetime once `-ro` has one.
 *   (A wrong password or a missing database ends the attempt at the first host, as in libpq.)
 */
export const POSTGRES_CONNECT_TIMEOUT_SECONDS = 5;
export const POSTGRES_CONN_LIFETIME = '5m';
export const POSTGRES_CONN_LIFETIME_JITTER = '1m';

/**
 * FerretDB's PostgreSQL URL: no password (PGPASSWORD), a bounded pool of connections that live
 * a bounded time, a bounded connect, the server role each side needs, read-only on the reader
 * side, and the server's certificate verified against the mounted CA when TLS is on.
 */
export function postgresUrl(
  o: Pick<FerretDBDeploymentOptions, 'postgresUser' | 'postgresHost' | 'postgresFallbackHost' | 'poolSize' | 'readOnly' | 'tls'>,
): string {
  const query = [
    `pool_max_conns=${o.poolSize}`, `pool_min_conns=${Math.min(o.poolSize, 2)}`,
    `pool_max_conn_lifetime=${POSTGRES_CONN_LIFETIME}`, `pool_max_conn_lifetime_jitter=${POSTGRES_CONN_LIFETIME_JITTER}`,
    `connect_timeout=${POSTGRES_CONNECT_TIMEOUT_SECONDS}`,
    `target_session_attrs=${o.readOnly ? 'prefer-standby' : 'read-write'}`,
  ];
  if (o.readOnly) query.push('default_transaction_read_only=on');
  if (o.tls) query.push('sslmode=verify-full', `sslrootcert=${CA_DIR}/${o.tls.caKey}`);
  const hosts = [o.postgresHost, ...o.postgresFallbackHost !== undefined ? [o.postgresFallbackHost] : []].map((h) => `${h}:5432`);
  return `postgres://${o.postgresUser}@${hosts.join(',')}/postgres?${query.join('&')}`;
}

/**
 * A FerretDB Deployment and its PodDisruptionBudget. The password reaches FerretDB as
 * PGPASSWORD (from the Secret), which its PostgreSQL driver reads, so the URL holds none.
 */
export function ferretdbDeployment(scope: Construct, id: string, o: FerretDBDeploymentOptions): ApiObject {
  const scheduling = o.scheduling ?? {};
  const probe = (path: string, periodSeconds: number, failureThreshold: number): k8s.Probe => ({
    httpGet: { path, port: k8s.IntOrString.fromString('metrics') },
    periodSeconds,
    timeoutSeconds: 3,
    failureThreshold,
  });
  const tlsFiles = ferretdbTlsFiles(o);
  // PGPASSWORD is read once, at start, too: the sidecar alone mounts the password's key.
  const passwordVolume: k8s.Volume = {
    name: 'postgres-password',
    secret: { secretName: o.secretName, defaultMode: 0o440, items: [{ key: o.passwordKey, path: 'password' }] },
  };
  const watch = certificateWatchPodParts(o.certificateWatch, {
    deployment: o.name,
    files: [...tlsFiles.files, `${PASSWORD_WATCH_DIR}/password`],
    mounts: [...tlsFiles.mounts, { name: passwordVolume.name, mountPath: PASSWORD_WATCH_DIR, readOnly: true }],
  });
  const deployment = kube(k8s.KubeDeployment, scope, id, {
    metadata: { name: o.name, labels: o.metadataLabels },
    spec: {
      replicas: o.replicas,
      selector: { matchLabels: o.selector },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: k8s.IntOrString.fromNumber(0), maxSurge: k8s.IntOrString.fromNumber(1) } },
      template: {
        metadata: { labels: { ...o.podLabels, ...o.selector } },
        spec: {
          automountServiceAccountToken: false,
          serviceAccountName: o.certificateWatch.serviceAccountName,
          enableServiceLinks: false,
          securityContext: podSecurityContext(FERRETDB_UID),
          containers: [{
            name: 'ferretdb',
            image: o.image,
            imagePullPolicy: 'IfNotPresent',
            env: [
              { name: 'FERRETDB_POSTGRESQL_URL', value: postgresUrl(o) },
              { name: 'PGPASSWORD', valueFrom: { secretKeyRef: { name: o.secretName, key: o.passwordKey } } },
              ...listenerEnv(o.listenerTls !== undefined),
              { name: 'FERRETDB_DEBUG_ADDR', value: `:${METRICS_PORT}` },
              { name: 'FERRETDB_STATE_DIR', value: '/state' },
              { name: 'FERRETDB_TELEMETRY', value: o.telemetry ? 'enable' : 'disable' },
            ],
            ports: [
              { name: 'mongodb', containerPort: o.listenerTls ? MONGODB_TLS_PORT : MONGODB_PORT, protocol: 'TCP' },
              { name: 'metrics', containerPort: METRICS_PORT, protocol: 'TCP' },
            ],
            startupProbe: probe('/debug/livez', 2, 30),
            // readyz pings PostgreSQL and DocumentDB: not ready while its server is unreachable.
            readinessProbe: probe('/debug/readyz', 5, 2),
            // Liveness is readiness over a longer bound: a pod whose pool stays stuck (pings on
            // connections to a lost server can wait for TCP's retransmissions, about 15 minutes)
            // is restarted with a fresh pool after READINESS_RESTART_SECONDS of failed readiness.
            // It also catches a hung process, as livez would (which never looks at PostgreSQL).
            livenessProbe: probe('/debug/readyz', 10, READINESS_RESTART_SECONDS / 10),
            resources: renderResources(o.resources, DEFAULT_FERRETDB_RESOURCES),
            securityContext: containerSecurityContext(),
            volumeMounts: [
              { name: 'state', mountPath: '/state' }, { name: 'tmp', mountPath: '/tmp' }, ...tlsFiles.mounts,
            ],
          }, watch.container],
          volumes: [
            { name: 'state', emptyDir: {} }, { name: 'tmp', emptyDir: {} }, ...tlsFiles.volumes, passwordVolume, ...watch.volumes,
          ],
          nodeSelector: scheduling.nodeSelector,
          tolerations: scheduling.tolerations,
          affinity: scheduling.affinity,
          topologySpreadConstraints: scheduling.affinity ? undefined : spreadOverNodes(o.selector),
        },
      },
    },
  });
  kube(k8s.KubePodDisruptionBudget, scope, `${id}Budget`, {
    metadata: { name: o.name, labels: o.metadataLabels },
    spec: { maxUnavailable: k8s.IntOrString.fromNumber(1), selector: { matchLabels: o.selector } },
  });
  return deployment;
}

/**
 * The TLS files FerretDB reads once, at start, with their volumes and FerretDB's mounts of them:
 * the PostgreSQL CA (its driver reads sslrootcert when it parses the URL) and the listener's
 * certificate and key.
 */
function ferretdbTlsFiles(o: FerretDBDeploymentOptions): { files: string[]; mounts: k8s.VolumeMount[]; volumes: k8s.Volume[] } {
  const files: string[] = [];
  const mounts: k8s.VolumeMount[] = [];
  const volumes: k8s.Volume[] = [];
  if (o.tls) {
    files.push(`${CA_DIR}/${o.tls.caKey}`);
    mounts.push({ name: 'postgres-ca', mountPath: CA_DIR, readOnly: true });
    // Only the certificate: the CA Secret may also hold the CA's key.
    volumes.push({ name: 'postgres-ca', secret: { secretName: o.tls.caSecretName, items: [{ key: o.tls.caKey, path: o.tls.caKey }] } });
  }
  if (o.listenerTls) {
    const keys = [TLS_KEYS.cert, TLS_KEYS.key];
    files.push(...keys.map((key) => `${LISTENER_TLS_DIR}/${key}`));
    mounts.push({ name: 'listener-tls', mountPath: LISTENER_TLS_DIR, readOnly: true });
    // The certificate and key only, readable by FerretDB's group (fsGroup).
    volumes.push({ name: 'listener-tls', secret: { secretName: o.listenerTls.secretName, defaultMode: 0o440, items: keys.map((key) => ({ key, path: key })) } });
  }
  return { files, mounts, volumes };
}

/**
 * Where FerretDB listens. With TLS, the plain listener stays on the pod's loopback only: FerretDB's
 * /debug/readyz pings through it (it cannot ping its TLS listener), so readiness still checks
 * PostgreSQL; nothing outside the pod reaches it. FerretDB gets no CA file: with one it would
 * demand client certificates.
 */
function listenerEnv(tls: boolean): k8s.EnvVar[] {
  if (!tls) return [{ name: 'FERRETDB_LISTEN_ADDR', value: `:${MONGODB_PORT}` }];
  return [
    { name: 'FERRETDB_LISTEN_ADDR', value: `127.0.0.1:${MONGODB_PORT}` },
    { name: 'FERRETDB_LISTEN_TLS', value: `:${MONGODB_TLS_PORT}` },
    { name: 'FERRETDB_LISTEN_TLS_CERT_FILE', value: `${LISTENER_TLS_DIR}/${TLS_KEYS.cert}` },
    { name: 'FERRETDB_LISTEN_TLS_KEY_FILE', value: `${LISTENER_TLS_DIR}/${TLS_KEYS.key}` },
  ];
}
