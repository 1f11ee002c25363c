import { createHash } from 'crypto';
import { ApiObjectMetadata } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { Scheduling } from '../common';
import { asset } from '../private/assets';
import { kube } from '../private/kube';
import { containerSecurityContext, podSecurityContext, renderResources } from '../private/pod-spec';

/** A pinned image with curl and a POSIX shell, running as a non-root user (uid 100). */
export const BOOTSTRAP_IMAGE = 'curlimages/curl:8.13.0';
const BOOTSTRAP_UID = 100;

export interface CredentialsBootstrapProps {
  readonly secretName: string;
  readonly metadata: ApiObjectMetadata;
  readonly scheduling?: Scheduling;
  /**
   * Create a `kubernetes.io/basic-auth` Secret (keys `username`, `password`) for this role
   * instead of the cluster's two-password Secret.
   */
  readonly basicAuthUsername?: string;
  /**
   * Labels of the Secret besides `metadata`'s (for example CloudNativePG's `cnpg.io/reload`).
   */
  readonly secretLabels?: { [key: string]: string };
}

/**
 * A Job that creates the credentials Secret with random passwords if it does not exist, with a
 * ServiceAccount whose Role may only create Secrets. Nothing secret is synthesized.
 */
export class CredentialsBootstrap extends Construct {
  /** The Job's name: `<secret>-bootstrap-<hash of its content>`. */
  public readonly jobName: string;

  constructor(scope: Construct, id: string, props: CredentialsBootstrapProps) {
    super(scope, id);
    const name = `${props.secretName}-bootstrap`.slice(0, 63).replace(/[-.]+$/, '');
    const metadata = { ...props.metadata, name };

    kube(k8s.KubeServiceAccount, this, 'ServiceAccount', { metadata, automountServiceAccountToken: false });
    kube(k8s.KubeRole, this, 'Role', {
      metadata,
      // `create` cannot be limited to one name; the Job never reads, updates or deletes Secrets.
      rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['create'] }],
    });
    kube(k8s.KubeRoleBinding, this, 'RoleBinding', {
      metadata,
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name }],
    });
    const script = asset('postgres/create-secret.sh');
    kube(k8s.KubeConfigMap, this, 'Script', { metadata, data: { 'create-secret.sh': script } });
    const template: k8s.PodTemplateSpec = {
      metadata: { labels: props.metadata.labels },
      spec: {
        serviceAccountName: name,
        // This Job's whole purpose is one API call: its token is automounted.
        automountServiceAccountToken: true,
        restartPolicy: 'OnFailure',
        enableServiceLinks: false,
        securityContext: podSecurityContext(BOOTSTRAP_UID),
        containers: [{
          name: 'create-secret',
          image: BOOTSTRAP_IMAGE,
          imagePullPolicy: 'IfNotPresent',
          command: ['sh', '/scripts/create-secret.sh'],
          env: [
            { name: 'SECRET_NAME', value: props.secretName },
            { name: 'SECRET_LABELS', value: JSON.stringify({ ...props.metadata.labels, ...props.secretLabels }) },
            ...props.basicAuthUsername !== undefined ? [{ name: 'SECRET_USERNAME', value: props.basicAuthUsername }] : [],
          ],
          volumeMounts: [
            { name: 'script', mountPath: '/scripts', readOnly: true },
            { name: 'tmp', mountPath: '/tmp' },
          ],
          resources: renderResources(undefined, { cpuRequest: '10m', memoryRequest: '16Mi', memoryLimit: '64Mi' }),
          securityContext: containerSecurityContext(),
        }],
        volumes: [
          { name: 'script', configMap: { name, defaultMode: 0o444 } },
          { name: 'tmp', emptyDir: {} },
        ],
        nodeSelector: props.scheduling?.nodeSelector,
        tolerations: props.scheduling?.tolerations,
        affinity: props.scheduling?.affinity,
      },
    };
    // A Job's template is immutable: the Job is named after its content (and the script it runs),
    // so a changed Job is a new Job for `kubectl apply`, never a rejected update. Finished Jobs
    // are removed after a day; a re-created one finds the Secret and leaves it unchanged.
    const digest = createHash('sha256').update(JSON.stringify({ template, script })).digest('hex').slice(0, 8);
    this.jobName = `${name.slice(0, 63 - 9).replace(/[-.]+$/, '')}-${digest}`;
    kube(k8s.KubeJob, this, 'Resource', {
      metadata: { ...metadata, name: this.jobName },
      spec: { backoffLimit: 10, ttlSecondsAfterFinished: 86400, template },
    });
  }
}
