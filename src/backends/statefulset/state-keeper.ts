import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { kube } from '../../private/kube';

/**
 * The ConfigMap the state sidecar writes the system identifier to, and the only API access of
 * the PostgreSQL pods: `get` and `patch` on that one ConfigMap, through a ServiceAccount whose
 * token only the sidecar mounts.
 */
export function stateKeeperAccess(scope: Construct, o: {
  configMapName: string; serviceAccountName: string; metadata: { labels: { [key: string]: string } };
}): void {
  const metadata = { ...o.metadata, name: o.configMapName };
  kube(k8s.KubeConfigMap, scope, 'State', {
    metadata: {
      ...metadata,
      annotations: { 'ferretdb.cdk8s.io/note': 'systemIdentifier is written by the primary pod once the cluster is initialised; see the README before deleting it' },
    },
  });
  const account = { ...o.metadata, name: o.serviceAccountName };
  kube(k8s.KubeServiceAccount, scope, 'ServiceAccount', { metadata: account, automountServiceAccountToken: false });
  kube(k8s.KubeRole, scope, 'StateRole', {
    metadata: metadata,
    rules: [{ apiGroups: [''], resources: ['configmaps'], resourceNames: [o.configMapName], verbs: ['get', 'patch'] }],
  });
  kube(k8s.KubeRoleBinding, scope, 'StateRoleBinding', {
    metadata: metadata,
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: o.configMapName },
    subjects: [{ kind: 'ServiceAccount', name: o.serviceAccountName }],
  });
}
