import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { CertificateWatch, certificateWatchPodParts } from './certificate-watch';
import { Resources, Scheduling } from '../common';
import { MONGODB_PORT } from './read-service';
import { TLS_KEYS } from '../private/certificates';
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
/** Where the listener's certificate and key are mounted, with `ferretdbTls`. */
export const LISTENER_TLS_DIR = '/etc/ferretdb/tls';
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
   * Roll the Deployment when a TLS file FerretDB reads at start changes (needed with `tls` or
   * `listenerTls`).
   */
  readonly certificateWatch?: CertificateWatch;
  readonly telemetry: boolean;
  readonly resources?: Resources;
  readonly scheduling?: Scheduling;
}

/**
 * FerretDB's PostgreSQL URL: no password (PGPASSWORD), a bounded pool, read-only on the reader
 * side, and the server's certificate verified against the mounted CA when TLS is on.
 */
export function postgresUrl(o: Pick<FerretDBDeploymentOptions, 'postgresUser' | 'postgresHost' | 'poolSize' | 'readOnly' | 'tls'>): string {
  const query = [`pool_max_conns=${o.poolSize}`, `pool_min_conns=${Math.min(o.poolSize, 2)}`];
  if (o.readOnly) query.push('default_transaction_read_only=on');
  if (o.tls) query.push('sslmode=verify-full', `sslrootcert=${CA_DIR}/${o.tls.caKey}`);
  return `postgres://${o.postgresUser}@${o.postgresHost}:5432/postgres?${query.join('&')}`;
}

/**
 * A FerretDB Deployment and its PodDisruptionBudget. The password reaches FerretDB as
 * PGPASSWORD (from the Secret), which its PostgreSQL driver reads, so the URL holds none.
 */
export function ferretdbDeployment(scope: Construct, id: string, o: FerretDBDeploymentOptions): k8s.KubeDeployment {
  const scheduling = o.scheduling ?? {};
  const probe = (path: string, periodSeconds: number, failureThreshold: number): k8s.Probe => ({
    httpGet: { path, port: k8s.IntOrString.fromString('metrics') },
    periodSeconds,
    timeoutSeconds: 3,
    failureThreshold,
  });
  const tlsFiles = ferretdbTlsFiles(o);
  const watch = tlsFiles.files.length === 0 ? undefined : certificateWatchPodParts(mustWatch(o), { deployment: o.name, ...tlsFiles });
  const deployment = new k8s.KubeDeployment(scope, id, {
    metadata: { name: o.name, labels: o.metadataLabels },
    spec: {
      replicas: o.replicas,
      selector: { matchLabels: o.selector },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: k8s.IntOrString.fromNumber(0), maxSurge: k8s.IntOrString.fromNumber(1) } },
      template: {
        metadata: { labels: { ...o.podLabels, ...o.selector } },
        spec: {
          automountServiceAccountToken: false,
          serviceAccountName: watch && o.certificateWatch?.serviceAccountName,
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
            livenessProbe: probe('/debug/livez', 10, 3),
            // readyz pings PostgreSQL and DocumentDB: not ready while its server is unreachable.
            readinessProbe: probe('/debug/readyz', 5, 2),
            resources: renderResources(o.resources, DEFAULT_FERRETDB_RESOURCES),
            securityContext: containerSecurityContext(),
            volumeMounts: [
              { name: 'state', mountPath: '/state' }, { name: 'tmp', mountPath: '/tmp' }, ...tlsFiles.mounts,
            ],
          }, ...watch ? [watch.container] : []],
          volumes: [
            { name: 'state', emptyDir: {} }, { name: 'tmp', emptyDir: {} }, ...tlsFiles.volumes,
            ...watch ? watch.volumes : [],
          ],
          nodeSelector: scheduling.nodeSelector,
          tolerations: scheduling.tolerations,
          affinity: scheduling.affinity,
          topologySpreadConstraints: scheduling.affinity ? undefined : spreadOverNodes(o.selector),
        },
      },
    },
  });
  new k8s.KubePodDisruptionBudget(scope, `${id}Budget`, {
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

function mustWatch(o: FerretDBDeploymentOptions): CertificateWatch {
  if (!o.certificateWatch) throw new Error(`FerretDB Deployment ${o.name}: TLS files without a certificateWatch`);
  return o.certificateWatch;
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
