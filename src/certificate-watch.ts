import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { BOOTSTRAP_IMAGE } from './credentials-bootstrap';
import { API_TOKEN_DIR, apiTokenVolume, containerSecurityContext, renderResources, SMALL_SIDECAR_RESOURCES } from './pod-spec';
import { asset } from './scripts';
import { TLS_KEYS } from './tls';

/** Where FerretDB's listener certificate and key are mounted. */
export const LISTENER_TLS_DIR = '/etc/ferretdb/tls';
/** The pod template annotation the certificate-watch sidecar sets to roll a Deployment. */
export const LISTENER_CERTIFICATE_ANNOTATION = 'ferretdb.cdk8s.io/listener-certificate';
const SCRIPT_DIR = '/etc/ferretdb/scripts';
const WATCH_STATE_DIR = '/var/run/ferretdb-certificate';

/** What the FerretDB pods of a cluster need for a TLS listener. */
export interface ListenerTls {
  /** The Secret with `tls.crt` and `tls.key`. */
  readonly secretName: string;
  /** The ServiceAccount of the certificate-watch sidecar (`patch` on the FerretDB Deployments). */
  readonly serviceAccountName: string;
  /** The ConfigMap holding certificate-watch.sh. */
  readonly scriptsConfigMap: string;
}

/**
 * The API access of the certificate-watch sidecars and their script: a ServiceAccount whose Role
 * may only `patch` the given Deployments, and a ConfigMap with certificate-watch.sh.
 */
export function certificateWatchAccess(scope: Construct, o: {
  name: string; deployments: string[]; metadata: k8s.ObjectMeta; secretName: string;
}): ListenerTls {
  const metadata = { ...o.metadata, name: o.name };
  new k8s.KubeServiceAccount(scope, 'CertificateWatchAccount', { metadata, automountServiceAccountToken: false });
  new k8s.KubeRole(scope, 'CertificateWatchRole', {
    metadata,
    rules: [{ apiGroups: ['apps'], resources: ['deployments'], resourceNames: o.deployments, verbs: ['patch'] }],
  });
  new k8s.KubeRoleBinding(scope, 'CertificateWatchRoleBinding', {
    metadata,
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: o.name },
    subjects: [{ kind: 'ServiceAccount', name: o.name }],
  });
  new k8s.KubeConfigMap(scope, 'CertificateWatchScript', {
    metadata,
    data: { 'certificate-watch.sh': asset('ferretdb/certificate-watch.sh') },
  });
  return { secretName: o.secretName, serviceAccountName: o.name, scriptsConfigMap: o.name };
}

/** The FerretDB container's mount of the certificate and key. */
export const listenerTlsMount: k8s.VolumeMount = { name: 'listener-tls', mountPath: LISTENER_TLS_DIR, readOnly: true };

/**
 * The volumes of a FerretDB pod with a TLS listener, and its certificate-watch sidecar: the only
 * container of the pod with an API token.
 */
export function certificateWatchPodParts(tls: ListenerTls, deployment: string): { container: k8s.Container; volumes: k8s.Volume[] } {
  const env = (name: string, value: string): k8s.EnvVar => ({ name, value });
  return {
    container: {
      name: 'certificate-watch',
      image: BOOTSTRAP_IMAGE,
      imagePullPolicy: 'IfNotPresent',
      command: ['sh', `${SCRIPT_DIR}/certificate-watch.sh`],
      env: [
        { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        env('DEPLOYMENT', deployment),
        env('CERT_DIR', LISTENER_TLS_DIR),
        env('STATE_DIR', WATCH_STATE_DIR),
        env('TOKEN_DIR', API_TOKEN_DIR),
      ],
      volumeMounts: [
        { name: 'certificate-watch', mountPath: SCRIPT_DIR, readOnly: true },
        { name: 'certificate-watch-state', mountPath: WATCH_STATE_DIR },
        listenerTlsMount,
        { name: 'api-token', mountPath: API_TOKEN_DIR, readOnly: true },
      ],
      resources: renderResources(undefined, SMALL_SIDECAR_RESOURCES),
      securityContext: containerSecurityContext(),
    },
    volumes: [
      // The certificate and key only: FerretDB never needs the CA's certificate.
      { name: 'listener-tls', secret: { secretName: tls.secretName, defaultMode: 0o440, items: [TLS_KEYS.cert, TLS_KEYS.key].map((key) => ({ key, path: key })) } },
      { name: 'certificate-watch', configMap: { name: tls.scriptsConfigMap } },
      { name: 'certificate-watch-state', emptyDir: { sizeLimit: k8s.Quantity.fromString('1Mi') } },
      apiTokenVolume(),
    ],
  };
}
