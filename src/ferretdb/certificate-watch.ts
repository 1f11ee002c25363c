import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { BOOTSTRAP_IMAGE } from '../postgres/credentials-bootstrap';
import { asset } from '../private/assets';
import { kube } from '../private/kube';
import { API_TOKEN_DIR, API_TOKEN_MOUNT, apiTokenVolume, containerSecurityContext, renderResources, SMALL_SIDECAR_RESOURCES } from '../private/pod-spec';

const SCRIPT_DIR = '/etc/ferretdb/scripts';
const WATCH_STATE_DIR = '/var/run/ferretdb-certificate';

/** The API access and script of the certificate-watch sidecars of a cluster's FerretDB pods. */
export interface CertificateWatch {
  /** The ServiceAccount of the sidecar (`patch` on the FerretDB Deployments). */
  readonly serviceAccountName: string;
  /** The ConfigMap holding certificate-watch.sh. */
  readonly scriptsConfigMap: string;
}

/**
 * The API access of the certificate-watch sidecars and their script: a ServiceAccount whose Role
 * may only `patch` the given Deployments, and a ConfigMap with certificate-watch.sh.
 */
export function certificateWatchAccess(scope: Construct, o: { name: string; deployments: string[]; metadata: k8s.ObjectMeta }): CertificateWatch {
  const metadata = { ...o.metadata, name: o.name };
  kube(k8s.KubeServiceAccount, scope, 'CertificateWatchAccount', { metadata, automountServiceAccountToken: false });
  kube(k8s.KubeRole, scope, 'CertificateWatchRole', {
    metadata,
    rules: [{ apiGroups: ['apps'], resources: ['deployments'], resourceNames: o.deployments, verbs: ['patch'] }],
  });
  kube(k8s.KubeRoleBinding, scope, 'CertificateWatchRoleBinding', {
    metadata,
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: o.name },
    subjects: [{ kind: 'ServiceAccount', name: o.name }],
  });
  kube(k8s.KubeConfigMap, scope, 'CertificateWatchScript', {
    metadata,
    data: { 'certificate-watch.sh': asset('ferretdb/certificate-watch.sh') },
  });
  return { serviceAccountName: o.name, scriptsConfigMap: o.name };
}

/**
 * The certificate-watch sidecar of a FerretDB pod, the only container of the pod with an API
 * token, and its own volumes. It mounts the volumes holding `files` (the same mounts as
 * FerretDB's) and rolls `deployment` when they change.
 */
export function certificateWatchPodParts(watch: CertificateWatch, o: {
  deployment: string; mounts: k8s.VolumeMount[]; files: string[];
}): { container: k8s.Container; volumes: k8s.Volume[] } {
  const env = (name: string, value: string): k8s.EnvVar => ({ name, value });
  return {
    container: {
      name: 'certificate-watch',
      image: BOOTSTRAP_IMAGE,
      imagePullPolicy: 'IfNotPresent',
      command: ['sh', `${SCRIPT_DIR}/certificate-watch.sh`],
      env: [
        { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        env('DEPLOYMENT', o.deployment),
        env('WATCH_FILES', o.files.join(' ')),
        env('STATE_DIR', WATCH_STATE_DIR),
        env('TOKEN_DIR', API_TOKEN_DIR),
      ],
      volumeMounts: [
        { name: 'certificate-watch', mountPath: SCRIPT_DIR, readOnly: true },
        { name: 'certificate-watch-state', mountPath: WATCH_STATE_DIR },
        ...o.mounts,
        API_TOKEN_MOUNT,
      ],
      resources: renderResources(undefined, SMALL_SIDECAR_RESOURCES),
      securityContext: containerSecurityContext(),
    },
    volumes: [
      { name: 'certificate-watch', configMap: { name: watch.scriptsConfigMap } },
      { name: 'certificate-watch-state', emptyDir: { sizeLimit: k8s.Quantity.fromString('1Mi') } },
      apiTokenVolume(),
    ],
  };
}
